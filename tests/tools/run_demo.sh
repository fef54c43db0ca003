#!/usr/bin/env bash
# vitcc-pack and vitcc-run as a user drives them, on the bundled demo model: summary, an image
# input, a batch of raw images, .npy output, the self-check, and refusals with their messages.
# Usage: run_demo.sh VITCC_PACK VITCC_RUN SOURCE_DIR OUT_DIR
set -euo pipefail
pack=$1 run=$2 src=$3 out=$4
rm -rf "$out"; mkdir -p "$out"
fail() { echo "FAIL: $*" >&2; exit 1; }
expect_error() {  # expect_error "substring" command...
  local want=$1; shift
  local log rc=0
  log=$("$@" 2>&1) || rc=$?
  [ "$rc" -ne 0 ] || fail "expected failure of: $* (got exit 0)"
  grep -qF -- "$want" <<<"$log" || fail "error of '$*' lacks '$want'; it said: $log"
  echo "refused as expected: $(head -n1 <<<"$log")"
}

summary=$("$pack" "$src/demo/demo.onnx" -o "$out/m" --name demo --summary --crop-pct 1.0)
echo "$summary"
for field in architecture parameters FLOPs weights workspace self-check; do
  grep -q "^$field\|^$field " <<<"$summary" || grep -q "$field" <<<"$summary" || fail "--summary lacks $field"
done
# The set: the config, the header to include, and the content-addressed blob and config header.
[ -f "$out/m/demo.json" ] && [ -f "$out/m/demo.hpp" ] || fail "missing outputs: $(ls "$out/m")"
[ "$(ls "$out/m" | grep -cE '^demo\.[0-9a-f]{16}\.vitcc$')" -eq 1 ] || fail "expected one demo.<checksum>.vitcc: $(ls "$out/m")"
[ "$(ls "$out/m" | grep -cE '^demo\.[0-9a-f]{16}\.hpp$')" -eq 1 ] || fail "expected one demo.<hash>.hpp: $(ls "$out/m")"
[ "$(ls -A "$out/m" | wc -l)" -eq 4 ] || fail "expected exactly four files: $(ls -A "$out/m")"

# One image from a picture, with top-5.
log=$("$run" "$out/m/demo.json" --input "$src/demo/input.png" --output "$out/png.npy")
echo "$log"
grep -q "top-5" <<<"$log" || fail "no top-5 for an image input"
head -c 6 "$out/png.npy" | grep -q "NUMPY" || fail "output is not .npy"

# Three images in one raw file: N is inferred, each output equals the single-image reference.
cat "$src/demo/input.bin" "$src/demo/input.bin" "$src/demo/input.bin" > "$out/three.bin"
cat "$src/demo/reference.bin" "$src/demo/reference.bin" "$src/demo/reference.bin" > "$out/three_ref.bin"
log=$("$run" "$out/m/demo.json" --input "$out/three.bin" --output "$out/three_out.bin" --threads 2 --reference "$out/three_ref.bin")
echo "$log"
# The runner counted the heap allocations of every forward() call, thread pool included.
grep -q "forward_allocations=0" <<<"$log" || fail "no forward_allocations=0 with 2 threads"
[ "$(stat -c %s "$out/three_out.bin")" -eq "$(stat -c %s "$out/three_ref.bin")" ] || fail "batch output size"

# Timing and the artifact's self-check.
"$run" "$out/m/demo.json" --input "$src/demo/input.bin" --output "$out/one.bin" --repeat 5 | grep -q "latency" || fail "no latency"
"$run" "$out/m/demo.json" --check

# Refusals.
head -c 1000 "$src/demo/input.bin" > "$out/partial.bin"
expect_error "not a whole" "$run" "$out/m/demo.json" --input "$out/partial.bin" --output "$out/x.bin"
expect_error "--output" "$run" "$out/m/demo.json" --input "$src/demo/input.bin"
expect_error "extension" "$run" "$out/m/demo.json" --input "$src/demo/input.bin" --output "$out/x.txt"
head -c 5000 "$src/demo/demo.onnx" > "$out/truncated.onnx"
expect_error "truncated.onnx" "$pack" "$out/truncated.onnx" -o "$out/bad"
printf 'this is not an onnx file' > "$out/garbage.onnx"
expect_error "garbage.onnx" "$pack" "$out/garbage.onnx" -o "$out/bad"
expect_error "no such file" "$pack" "$out/missing.onnx" -o "$out/bad"
[ ! -e "$out/bad" ] || [ -z "$(ls -A "$out/bad")" ] || fail "a refused model left output files: $(ls -A "$out/bad")"
echo "run_demo: all checks passed"
