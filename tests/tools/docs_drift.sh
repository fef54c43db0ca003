#!/usr/bin/env bash
# Docs that cannot drift (issue 19, part 7):
#  1. every option in any tool's --help is written somewhere in the docs (README.md, docs/, the
#     examples' and demo's READMEs);
#  2. the README's command block (the one that shows vitcc-pack and vitcc-run) runs as written, with
#     its placeholder files (vit_small.onnx, cat.jpg, ...) standing for the bundled demo model and its
#     input, and every command must succeed.
# Usage: docs_drift.sh BIN_DIR SOURCE_DIR OUT_DIR
set -euo pipefail
bin=$1 src=$2 out=$3
rm -rf "$out"; mkdir -p "$out"
fail() { echo "FAIL: $*" >&2; exit 1; }
docs=("$src/README.md" "$src"/docs/*.md "$src"/examples/*/README.md "$src/demo/README.md")

for tool in vitcc-pack vitcc-run vitcc-compile; do
  help=$("$bin/$tool" --help) || fail "$tool --help failed"
  n=0
  for opt in $(grep -oE -- '--[a-z][a-z0-9-]+' <<<"$help" | sort -u); do
    grep -qE -- "(^|[^a-z0-9-])$opt([^a-z0-9-]|\$)" "${docs[@]}" \
      || fail "$tool --help lists $opt, which no doc mentions as a whole option (README.md, docs/*.md)"
    n=$((n + 1))
  done
  [ $n -gt 3 ] || fail "$tool --help lists only $n options: $help"
  echo "ok   $tool: all $n options of --help are in the docs"
done

# The README's command block: from the first ```sh block that runs vitcc-pack, to its end.
block=$(awk '/^```sh/{inb=1; buf=""; next} /^```/{if (inb && buf ~ /vitcc-pack/) {printf "%s", buf; exit} inb=0; next} inb{buf = buf $0 "\n"}' "$src/README.md")
[ -n "$block" ] || fail "README.md has no \`\`\`sh block with vitcc-pack"
cp "$src/demo/demo.onnx" "$out/vit_small.onnx"
cp "$src/demo/input.png" "$out/cat.jpg.png"   # the README's photos are placeholders: the demo's image
cp "$src/demo/input.png" "$out/a.png"
cp "$src/demo/input.png" "$out/b.png"
cp "$src/demo/input.bin" "$out/batch.bin"
export VITCC_CACHE_DIR=$out/cache
count=0
while IFS= read -r line; do
  cmd=${line%%#*}                       # the comment after the command
  [ -n "${cmd// /}" ] || continue
  cmd=${cmd//build\/bin\//$bin/}
  cmd=${cmd//cat.jpg/cat.jpg.png}
  cmd=${cmd//a.jpg/a.png}
  if [[ $cmd == *imagenet.txt* ]]; then   # one class name per output of the demo model
    classes=$("$bin/vitcc-run" "$out/out/vit_small.json" --info | "${VITCC_PYTHON:-/usr/bin/python3}" -c \
      'import json,sys; print(json.load(sys.stdin)["output_shape"][-1])')
    for i in $(seq 1 "$classes"); do echo "class $i"; done >"$out/imagenet.txt"
  fi
  echo "run  $line"
  (cd "$out" && eval "$cmd") >"$out/log" 2>&1 || fail "the README's command failed: $line
$(cat "$out/log")"
  count=$((count + 1))
done <<<"$block"
[ $count -ge 5 ] || fail "only $count commands found in the README's block"
echo "docs_drift: all checks passed ($count README commands run)"
