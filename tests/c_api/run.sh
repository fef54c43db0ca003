#!/usr/bin/env bash
# vitcc-pack --emit-object, vitcc-compile, and a C program compiled by `cc` that links both and runs
# the demo model (see main.c).
# Usage: run.sh VITCC_PACK VITCC_COMPILE SOURCE_DIR OUT_DIR
set -euo pipefail
pack=$1 compile=$2 src=$3 out=$4
rm -rf "$out"; mkdir -p "$out"
"$pack" "$src/demo/demo.onnx" -o "$out/model" --name demo --emit-object --emit-c-array
# --emit-c-array's header is C too: the array has the blob's size and bytes.
printf '#include "demo_weights.h"\n_Static_assert(sizeof demo_blob == DEMO_BLOB_BYTES, "size");\nint main(void) { return demo_blob[0] == 0x56 && demo_blob[7] == 0x42 ? 0 : 1; }\n' > "$out/c_array.c"
cc -std=c11 -Wall -Wextra -Werror -I"$out/model" "$out/c_array.c" -o "$out/c_array" && "$out/c_array" \
  || { echo "FAIL: the --emit-c-array header does not hold the blob (magic VITCCBLB)"; exit 1; }
for f in demo_blob.o demo_blob.s demo_blob.h; do [ -f "$out/model/$f" ] || { echo "FAIL: --emit-object wrote no $f"; exit 1; }; done
"$compile" "$out/model/demo.json" -o "$out/lib"
[ -f "$out/lib/libdemo.a" ] && [ -f "$out/lib/demo.h" ] || { echo "FAIL: vitcc-compile wrote no libdemo.a/demo.h"; exit 1; }
# The header is plain C: it compiles on its own as C89-compatible declarations.
cc -std=c99 -pedantic -Wall -Wextra -Werror -fsyntax-only -x c "$out/lib/demo.h"
cc -std=c11 -O2 -Wall -Wextra -Werror -I"$out/lib" -I"$out/model" "$src/tests/c_api/main.c" \
  "$out/model/demo_blob.o" -L"$out/lib" -ldemo -lm -o "$out/c_api_demo"
# No C++ runtime behind a C program's back.
if nm -u "$out/lib/libdemo.a" | grep -E "_Z|__cxa|__gxx" ; then echo "FAIL: libdemo.a needs the C++ runtime"; exit 1; fi
"$out/c_api_demo" "$out/model" "$src/demo/input.bin" "$src/demo/reference.bin"
