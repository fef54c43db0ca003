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

# Instruction-set targets (docs/TARGETS.md). A library exports its entry points and its copies' own
# (vitcc_demo_vK_*), nothing else, and runs nothing before main().
check_symbols() {  # check_symbols LIB
  local want="demo_bind demo_context_bytes demo_context_error demo_context_forward demo_context_init demo_forward demo_input_floats demo_isa demo_last_error demo_output_floats demo_preprocess demo_preprocess_scratch_bytes demo_target demo_version demo_workspace_bytes demo_workspace_bytes_for "
  local got
  got=$(nm -g --defined-only "$1" | awk 'NF==3{print $3}' | grep -v '^vitcc_demo_v[0-9]*_' | sort | tr '\n' ' ')
  [ "$got" = "$want" ] || { echo "FAIL: $1 exports '$got', expected '$want' and vitcc_demo_vK_*"; exit 1; }
  if readelf -S -W "$1" | grep -E "\.init_array|\.ctors"; then echo "FAIL: $1 runs code before main()"; exit 1; fi
}
check_symbols "$out/lib/libdemo.a"

# --shared: libdemo.so exports the C API and nothing else (not the copies' entry points), needs no
# C++ runtime, and the same C program runs against it.
"$compile" "$out/model/demo.json" -o "$out/shared" --shared >/dev/null
want_so=$(nm -g --defined-only "$out/lib/libdemo.a" | awk 'NF==3{print $3}' | grep -v '^vitcc_demo_v[0-9]*_' | sort | tr '\n' ' ')
got_so=$(nm -D --defined-only "$out/shared/libdemo.so" | awk 'NF==3{print $3}' | sort | tr '\n' ' ')
[ "$got_so" = "$want_so" ] || { echo "FAIL: libdemo.so exports '$got_so', expected '$want_so'"; exit 1; }
if readelf -d "$out/shared/libdemo.so" | grep NEEDED | grep -E "libstdc\+\+|libgcc_s"; then
  echo "FAIL: libdemo.so needs the C++ runtime"; exit 1
fi
cc -std=c11 -O2 -Wall -Wextra -Werror -I"$out/shared" -I"$out/model" "$src/tests/c_api/main.c" \
  "$out/model/demo_blob.o" -L"$out/shared" -ldemo -lm -o "$out/c_api_shared"
LD_LIBRARY_PATH="$out/shared" "$out/c_api_shared" "$out/model" "$src/demo/input.bin" "$src/demo/reference.bin"
LD_LIBRARY_PATH="$out/shared" ldd "$out/c_api_shared" | grep -q "$out/shared/libdemo.so" || { echo "FAIL: c_api_shared did not load libdemo.so"; exit 1; }

# The C example (examples/c-classify): decode a photo, the model's own preprocessing through the C
# API (an RGBA frame), forward, top-5; held to PyTorch's logits. The demo model's input.bin is its
# 96x96 picture normalised without resize or crop, hence --crop-pct 1.0 for this pack.
"$pack" "$src/demo/demo.onnx" -o "$out/cls-model" --name demo --emit-object --crop-pct 1.0 >/dev/null
"$compile" "$out/cls-model/demo.json" -o "$out/cls-lib" >/dev/null
cc -std=c11 -O2 -Wall -Wextra -Werror -I"$out/cls-lib" -I"$out/cls-model" "$src/examples/c-classify/classify.c" \
  "$out/cls-model/demo_blob.o" -L"$out/cls-lib" -ldemo -lm -o "$out/classify"
"$out/classify" "$src/demo/input.png" "$src/demo/reference.bin"

if [ "${VITCC_C_API_TARGETS:-1}" = 0 ]; then echo "VITCC_C_API_TARGETS=0: the other targets are skipped"; exit 0; fi

# Cortex-M targets (bare metal): each library carries its FPU in the ARM attributes, and two that
# differ cannot share a library.
if command -v arm-none-eabi-g++ >/dev/null; then
  for t in cortex-m7:FPv5/FP-D16:dp cortex-m7-sp:FPv5/FP-D16:sp cortex-m4:VFPv4-D16:sp; do
    name=${t%%:*} rest=${t#*:}; fp=${rest%%:*} prec=${rest#*:}
    "$compile" "$out/model/demo.json" -o "$out/$name" --target "$name" >/dev/null
    attrs=$(arm-none-eabi-readelf -A "$out/$name/libdemo.a")
    echo "$attrs" | grep -q "Tag_FP_arch: $fp" && echo "$attrs" | grep -q "Tag_ABI_VFP_args: VFP registers" \
      || { echo "FAIL: --target $name: expected Tag_FP_arch $fp and hard-float arguments"; exit 1; }
    sp=dp; if echo "$attrs" | grep -q "Tag_ABI_HardFP_use: SP only"; then sp=sp; fi
    [ "$sp" = "$prec" ] || { echo "FAIL: --target $name: expected a $prec FPU, the objects say $sp"; exit 1; }
  done
  if "$compile" "$out/model/demo.json" -o "$out/m-mixed" --target cortex-m7,cortex-m4 2>"$out/m-mixed.err"; then
    echo "FAIL: cortex-m7 and cortex-m4 in one library were accepted"; exit 1
  fi
  grep -q "one set per library" "$out/m-mixed.err" || { echo "FAIL: mixed Cortex-M targets: $(cat "$out/m-mixed.err")"; exit 1; }
fi
if [ "$(uname -m)" = x86_64 ]; then
  # A fat library for x86-64-v2..v4: on this CPU it must pick the best its /proc/cpuinfo flags allow.
  "$compile" "$out/model/demo.json" -o "$out/fat" --target x86-64-v4,x86-64-v2,x86-64-v3
  grep -q '#define DEMO_TARGETS "x86-64-v2,x86-64-v3,x86-64-v4"' "$out/fat/demo.h" \
    || { echo "FAIL: the fat header does not state its targets, weakest first"; exit 1; }
  has() { grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -qx "$1"; }
  expect=x86-64-v2
  if has avx2 && has fma && has bmi2 && has f16c && has movbe && has abm; then expect=x86-64-v3; fi
  if [ $expect = x86-64-v3 ] && has avx512f && has avx512bw && has avx512dq && has avx512vl && has avx512cd; then expect=x86-64-v4; fi
  check_symbols "$out/fat/libdemo.a"
  cc -std=c99 -pedantic -Wall -Wextra -Werror -fsyntax-only -x c "$out/fat/demo.h"
  cc -std=c11 -O2 -Wall -Wextra -Werror -I"$out/fat" -I"$out/model" "$src/tests/c_api/main.c" \
    "$out/model/demo_blob.o" -L"$out/fat" -ldemo -lm -o "$out/c_api_fat"
  "$out/c_api_fat" "$out/model" "$src/demo/input.bin" "$src/demo/reference.bin" $expect
  # Older CPUs, emulated (qemu-x86_64's TCG has AVX2 but no AVX-512): the fat library steps down, and
  # one built for x86-64-v4 alone refuses at bind with the missing extensions named, instead of SIGILL.
  if command -v qemu-x86_64 >/dev/null; then
  q() { qemu-x86_64 -cpu "$@" 2> >(grep -v "TCG doesn't support" >&2); }
  q Haswell "$out/c_api_fat" "$out/model" "$src/demo/input.bin" "$src/demo/reference.bin" x86-64-v3
  q Nehalem "$out/c_api_fat" "$out/model" "$src/demo/input.bin" "$src/demo/reference.bin" x86-64-v2
  "$compile" "$out/model/demo.json" -o "$out/v4" --target x86-64-v4
  cc -std=c11 -O2 -Wall -Wextra -Werror -I"$out/v4" -I"$out/model" "$src/tests/c_api/main.c" \
    "$out/model/demo_blob.o" -L"$out/v4" -ldemo -lm -o "$out/c_api_v4"
  q Haswell "$out/c_api_v4" "$out/model" "$src/demo/input.bin" "$src/demo/reference.bin" refuse
  echo "c_api x86 targets: native, fat x86-64-v2..v4 (picked $expect here, v3 on Haswell, v2 on Nehalem), v4 refused on Haswell"
  else echo "no qemu-x86_64: the emulated-CPU checks are skipped"; fi
fi

# 64-bit Arm, cross-compiled and emulated: a fat library for armv8-a and armv8.2-a+dotprod+i8mm picks
# the first on a Cortex-A53 (no dot products) and on a Cortex-A76 (SDOT, no SMMLA), the second on QEMU's
# "max" CPU; the outputs hold the parity bound everywhere.
if command -v aarch64-linux-gnu-g++ >/dev/null && command -v qemu-aarch64 >/dev/null; then
  "$compile" "$out/model/demo.json" -o "$out/a64" --target armv8.2-a+dotprod+i8mm,armv8-a
  aarch64-linux-gnu-gcc -c -I"$out/model" "$out/model/demo_blob.s" -o "$out/a64/demo_blob.o"
  aarch64-linux-gnu-gcc -std=c11 -O2 -Wall -Wextra -Werror -I"$out/a64" -I"$out/model" "$src/tests/c_api/main.c" \
    "$out/a64/demo_blob.o" -L"$out/a64" -ldemo -lm -o "$out/c_api_a64"
  for cpu_target in cortex-a53:armv8-a cortex-a76:armv8-a max:armv8.2-a+dotprod+i8mm; do
    QEMU_LD_PREFIX=/usr/aarch64-linux-gnu qemu-aarch64 -cpu "${cpu_target%%:*}" "$out/c_api_a64" "$out/model" \
      "$src/demo/input.bin" "$src/demo/reference.bin" "${cpu_target#*:}"
  done
  echo "c_api aarch64 targets: fat armv8-a + armv8.2-a+dotprod+i8mm, each picked where it runs"
else
  echo "no aarch64-linux-gnu-g++ or qemu-aarch64: the 64-bit Arm target checks are skipped"
fi
