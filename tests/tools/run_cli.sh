#!/usr/bin/env bash
# vitcc-run's command line as someone shipping a model uses it (issue 19): --version of every tool,
# several --input in one call (one batch, in order), --labels (top-5 as softmax probabilities with
# class names, checked against numpy's softmax of the output file), the compile note on every first
# compile (not only at a terminal), --cache-info and --clear-cache, and the warning when --threads
# exceeds the cores this process may use.
# Usage: run_cli.sh VITCC_PACK VITCC_RUN VITCC_COMPILE SOURCE_DIR OUT_DIR
set -euo pipefail
pack=$1 run=$2 compile=$3 src=$4 out=$5
python=${VITCC_PYTHON:-/usr/bin/python3}
rm -rf "$out"; mkdir -p "$out"
fail() { echo "FAIL: $*" >&2; exit 1; }

for tool in "$pack" "$run" "$compile"; do
  v=$("$tool" --version) || fail "$tool --version failed"
  [[ "$v" =~ ^vitcc-(pack|run|compile)\ [0-9]+\.[0-9]+\.[0-9]+\  ]] || fail "$tool --version printed: $v"
  echo "ok   --version: $v"
done

"$pack" "$src/demo/demo.onnx" -o "$out/m" --name demo >/dev/null
cfg=$out/m/demo.json
bin=$src/demo/input.bin png=$src/demo/input.png

# A cache of this test's own, so that it sees a first compile (one: the later runs reuse it).
export VITCC_CACHE_DIR=$out/cache
"$run" "$cfg" --input "$bin" --output "$out/a.bin" --threads 1 >/dev/null 2>"$out/err1"
grep -q "^vitcc-run: note: compiling demo for this machine" "$out/err1" \
  || fail "no note on the first compile (stderr is a file here, not a terminal): $(cat "$out/err1")"
[ "$(grep -c '' "$out/err1")" -eq 1 ] || fail "the first compile wrote more than its note: $(cat "$out/err1")"
"$run" "$cfg" --input "$png" --output "$out/b.bin" --threads 1 >"$out/log_b" 2>"$out/err2"
[ ! -s "$out/err2" ] || fail "a run with a cached runner wrote on stderr: $(cat "$out/err2")"
echo "ok   the note on the first compile, nothing on stderr once cached"

# Several inputs: one batch in the order given, the bits of the runs one at a time.
"$run" "$cfg" --input "$bin" --input "$png" --input "$bin" --output "$out/abc.bin" >"$out/log3"
cat "$out/a.bin" "$out/b.bin" "$out/a.bin" | cmp -s - "$out/abc.bin" \
  || fail "three --input: the output is not the three single runs' outputs in order"
grep -q "^output  3 image(s)" "$out/log3" || fail "three --input: $(cat "$out/log3")"
grep -q "^top-5   $png: " "$out/log3" || fail "three --input: no top-5 line for the image: $(cat "$out/log3")"
echo "ok   three --input: one batch of 3, the single runs' bits in order"
"$run" "$cfg" --input "$bin" --output "$out/x.bin" --output "$out/y.bin" >/dev/null 2>"$out/err" \
  && fail "two --output were accepted"
grep -q "^vitcc-run: error: --output given twice" "$out/err" || fail "two --output: $(cat "$out/err")"
echo "ok   two --output refused: $(cat "$out/err")"

# --labels: one name per class; top-5 of every image with softmax probabilities.
classes=$("$run" "$cfg" --info | "$python" -c 'import json, sys; print(json.load(sys.stdin)["output_shape"][-1])')
for ((k = 0; k < classes; ++k)); do echo "class number $k"; done >"$out/labels.txt"
"$run" "$cfg" --input "$bin" --input "$png" --output "$out/l.bin" --labels "$out/labels.txt" >"$out/log_l"
"$python" - "$out/l.bin" "$classes" "$out/log_l" <<'PY'
import re, sys
import numpy as np
logits = np.fromfile(sys.argv[1], dtype='<f4').reshape(-1, int(sys.argv[2])).astype(np.float64)
lines = open(sys.argv[3]).read().splitlines()
rows = [(float(m.group(1)), m.group(2), int(m.group(3)))
        for m in (re.match(r'^\s+([0-9.]+)%\s+(.*) \((\d+)\)$', l) for l in lines) if m]
assert len(rows) == 5 * len(logits), 'expected 5 rows per image, got %d: %s' % (len(rows), lines)
for i, z in enumerate(logits):
    p = np.exp(z - z.max()); p /= p.sum()
    want = sorted(range(len(z)), key=lambda c: (-z[c], c))[:5]
    for (pct, name, idx), c in zip(rows[5 * i:5 * i + 5], want):
        assert idx == c and name == 'class number %d' % c, (i, idx, name, c)
        assert abs(pct - 100 * p[c]) <= 0.006, (i, c, pct, 100 * p[c])
print('ok   --labels: top-5 names and softmax probabilities of %d images match numpy' % len(logits))
PY
head -n "$((classes - 1))" "$out/labels.txt" >"$out/short.txt"
"$run" "$cfg" --input "$bin" --output "$out/l.bin" --labels "$out/short.txt" >/dev/null 2>"$out/err" \
  && fail "a labels file one line short was accepted"
grep -q "short.txt: --labels: $((classes - 1)) lines, expected one per class: $classes" "$out/err" \
  || fail "labels one short: $(cat "$out/err")"
echo "ok   a labels file one line short refused: $(cat "$out/err")"

# More threads than cores: a warning, and the output is the same.
cores=$("$python" -c 'import os; print(len(os.sched_getaffinity(0)))')
"$run" "$cfg" --input "$bin" --output "$out/t.bin" --threads $((cores + 1)) >/dev/null 2>"$out/err"
grep -q "^vitcc-run: warning: --threads $((cores + 1)) is more than the $cores core" "$out/err" \
  || fail "no warning for --threads $((cores + 1)) on $cores cores: $(cat "$out/err")"
cmp -s "$out/t.bin" "$out/a.bin" || fail "--threads $((cores + 1)) changed the output"
echo "ok   --threads $((cores + 1)) on $cores cores: $(cat "$out/err")"

# Exit codes (README, "Exit codes"), each tool: 2 usage, 3 input, 4 parity, 5 unsupported, 6 I/O.
expect_code() {  # expect_code CODE command...
  local want=$1 rc=0; shift
  "$@" >/dev/null 2>"$out/err" || rc=$?
  [ "$rc" -eq "$want" ] || fail "exit $rc, expected $want, from: $* ($(cat "$out/err"))"
  echo "ok   exit $rc: $(cat "$out/err")"
}
printf 'not an onnx file' >"$out/garbage.onnx"
"$python" - "$out/mod.onnx" <<'PY'
import sys, onnx
from onnx import helper, TensorProto
x = helper.make_tensor_value_info('x', TensorProto.FLOAT, [1, 3, 8, 8])
y = helper.make_tensor_value_info('y', TensorProto.FLOAT, [1, 3, 8, 8])
node = helper.make_node('Mod', ['x', 'x'], ['y'], name='the_mod', fmod=1)
onnx.save(helper.make_model(helper.make_graph([node], 'g', [x], [y]), opset_imports=[helper.make_opsetid('', 13)]), sys.argv[1])
PY
touch "$out/a_file"
expect_code 2 "$pack" "$src/demo/demo.onnx" -o "$out/p" --frobnicate
expect_code 3 "$pack" "$out/garbage.onnx" -o "$out/p"
expect_code 3 "$pack" "$out/missing.onnx" -o "$out/p"
expect_code 5 "$pack" "$out/mod.onnx" -o "$out/p"
expect_code 6 "$pack" "$src/demo/demo.onnx" -o "$out/a_file/sub" --no-check
expect_code 2 "$run" "$cfg" --input "$bin"
expect_code 2 "$run" "$cfg" --input "$bin" --output "$out/x.txt"
expect_code 2 "$run" "$cfg" --check --input "$bin" --output "$out/x.bin"
expect_code 3 "$run" "$out/missing.json" --check
expect_code 3 "$run" "$cfg" --input "$out/garbage.onnx" --output "$out/x.bin"
head -c 20 "$out/a.bin" >"$out/short_ref.bin"
expect_code 3 "$run" "$cfg" --input "$bin" --output "$out/x.bin" --reference "$out/short_ref.bin"
"$python" -c 'import numpy as np, sys; (np.fromfile(sys.argv[1], "<f4") + 1).astype("<f4").tofile(sys.argv[2])' "$out/a.bin" "$out/off_ref.bin"
expect_code 4 "$run" "$cfg" --input "$bin" --output "$out/x.bin" --reference "$out/off_ref.bin"
expect_code 6 "$run" "$cfg" --input "$bin" --output "$out/a_file/x.bin"
expect_code 2 "$compile" "$cfg"
expect_code 3 "$compile" "$out/missing.json" -o "$out/lib"
expect_code 6 "$compile" "$cfg" -o "$out/a_file/lib"
# The cache: what is in it, then emptied (of vitcc-run's files only).
touch "$VITCC_CACHE_DIR/not-ours.txt" "$VITCC_CACHE_DIR/runner-of-someone-else" "$VITCC_CACHE_DIR/runner-0123456789abcdef.txt"
"$run" --cache-info >"$out/info"
grep -q "^runners 1 (" "$out/info" || fail "--cache-info: $(cat "$out/info")"
"$run" --clear-cache >"$out/clear"
grep -q "removed 1 file(s)" "$out/clear" || fail "--clear-cache: $(cat "$out/clear")"
"$run" --cache-info | grep -q "^runners 0 (" || fail "--clear-cache left a runner: $(ls -A "$VITCC_CACHE_DIR")"
for f in not-ours.txt runner-of-someone-else runner-0123456789abcdef.txt; do
  [ -f "$VITCC_CACHE_DIR/$f" ] || fail "--clear-cache removed $f, which vitcc-run did not write"
done
echo "ok   --cache-info, then --clear-cache: $(cat "$out/clear")"

# Whole-number mean and std (--mean 0,0,0 --std 1,1,1) must still give a config header that compiles
# (its preprocessing constants are float literals). One more runner: left to the unsanitized builds
# with the --target checks below (VITCC_CLI_TARGETS=0 under the sanitizers).
if [ "${VITCC_CLI_TARGETS:-1}" != 0 ]; then
  "$pack" "$src/demo/demo.onnx" -o "$out/m01" --name demo01 --mean 0,0,0 --std 1,1,1 >/dev/null
  "$run" "$out/m01/demo01.json" --check >"$out/log01" 2>&1 || fail "--mean 0,0,0 --std 1,1,1: $(cat "$out/log01")"
  grep -q "{0.00000000f, 0.00000000f, 0.00000000f}, {1.00000000f, 1.00000000f, 1.00000000f}" "$out"/m01/demo01.*.hpp \
    || fail "the header's preprocessing constants: $(grep preprocessing "$out"/m01/demo01.*.hpp)"
  echo "ok   whole-number mean/std: the header compiles and holds them"
fi

# --target (docs/TARGETS.md): a named instruction set instead of this machine's. Runners compile for
# seconds each (a minute under the sanitizers, which set VITCC_CLI_TARGETS=0: nothing here is about memory).
if [ "${VITCC_CLI_TARGETS:-1}" != 0 ]; then
  export VITCC_CACHE_DIR=$out/cache-targets
  expect_code 2 "$run" "$cfg" --check --target pentium4
  expect_code 2 "$run" "$cfg" --check --target cortex-m7
  expect_code 2 env VITCC_RUN_FLAGS=-O2 "$run" "$cfg" --check --target scalar
  "$run" "$cfg" --input "$bin" --output "$out/s.bin" --reference "$src/demo/reference.bin" --target scalar >"$out/log_s" 2>&1 \
    || fail "--target scalar: $(cat "$out/log_s")"
  grep -q "^isa     scalar (target scalar)$" "$out/log_s" || fail "--target scalar did not say so: $(cat "$out/log_s")"
  echo "ok   --target scalar: within the parity bound, and it says which instruction set ran"
  if [ "$(uname -m)" = x86_64 ] && grep -qw avx2 /proc/cpuinfo; then
    "$run" "$cfg" --input "$bin" --output "$out/v3.bin" --reference "$src/demo/reference.bin" --target x86-64-v3 \
      >"$out/log_v3" 2>&1 || fail "--target x86-64-v3: $(cat "$out/log_v3")"
    grep -q "^isa     fma3+avx2 (target x86-64-v3)$" "$out/log_v3" || fail "--target x86-64-v3: $(cat "$out/log_v3")"
    echo "ok   --target x86-64-v3: AVX2 code, within the parity bound"
    # A CPU without AVX-512 (qemu-x86_64's Haswell runs the runner): a clear refusal, exit 5, no SIGILL.
    if command -v qemu-x86_64 >/dev/null; then
      set +e
      VITCC_RUN_LAUNCHER="qemu-x86_64 -cpu Haswell" "$run" "$cfg" --check --target x86-64-v4 >"$out/log_v4" 2>&1
      rc=$?
      set -e
      [ $rc = 5 ] || fail "--target x86-64-v4 on an emulated Haswell: exit $rc, expected 5: $(tail -c 600 "$out/log_v4")"
      grep -q "cannot run on this CPU" "$out/log_v4" && grep -q "lacks avx512f" "$out/log_v4" \
        || fail "--target x86-64-v4 on an emulated Haswell: $(tail -c 600 "$out/log_v4")"
      echo "ok   --target x86-64-v4 on an emulated Haswell: refused (exit 5), the missing AVX-512 named"
    fi
  fi
fi

echo "run_cli: all checks passed"
