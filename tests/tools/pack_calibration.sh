#!/usr/bin/env bash
# vitcc-pack --calibration and --smooth (int8 SmoothQuant smoothing, docs/PRECISION.md) on the
# bundled Fashion-MNIST ViT (1x28x28) and the demo EfficientViT:
#   1. every bad use is refused with one line naming the file or flag and what was expected;
#   2. a good calibration file is used (NAME.json "smoothing" names it and counts its images), the
#      fixed alpha is applied as given, "off" applies nothing, and the packer's own probe images are
#      used without the flag; whenever smoothing is applied, the smoothed model at float32 must
#      agree with the unsmoothed one (recorded by the packer's guard) and the int8 pack passes its
#      self-check against the float32 graph;
#   3. a copy with outlier channels in its norms is refused unsmoothed and passes smoothed;
#   4. an architecture without norm-fed GEMMs (EfficientViT) records why nothing was smoothed.
# Usage: pack_calibration.sh VITCC_PACK SOURCE_DIR OUT_DIR [PYTHON]
set -euo pipefail
pack=$1 src=$2 out=$3 python=${4:-/usr/bin/python3}
rm -rf "$out"; mkdir -p "$out"
fail() { echo "FAIL: $*" >&2; exit 1; }
model=$src/demo/fmnist_vit.onnx

expect_error() {
  local want=$1; shift
  local rc=0
  "$pack" "$@" >"$out/stdout" 2>"$out/stderr" || rc=$?
  [ "$rc" -ne 0 ] || fail "expected failure of: vitcc-pack $* (exit 0)"
  [ "$(grep -c '' "$out/stderr")" -eq 1 ] || fail "more than one line on stderr for: $*: $(cat "$out/stderr")"
  grep -qF -- "$want" "$out/stderr" || fail "error of 'vitcc-pack $*' lacks '$want': $(cat "$out/stderr")"
  echo "ok   refused: $(cat "$out/stderr")"
}

"$python" - "$out" <<'PY'
import sys, numpy as np
out = sys.argv[1]
np.save(f'{out}/bad_shape.npy', np.zeros((2, 3, 28, 28), '<f4'))
np.save(f'{out}/bad_dtype.npy', np.zeros((2, 1, 28, 28), '<i4'))
bad = np.zeros((2, 1, 28, 28), '<f4'); bad[1, 0, 3, 4] = np.nan
np.save(f'{out}/nan.npy', bad)
# Fashion-MNIST-like inputs: the training script normalises pixels in [0, 1] with mean 0.286, std 0.353.
rng = np.random.RandomState(0)
np.save(f'{out}/good.npy', ((rng.rand(3, 1, 28, 28) - 0.286) / 0.353).astype('<f4'))
np.save(f'{out}/one.npy', ((rng.rand(1, 28, 28) - 0.286) / 0.353).astype('<f4'))
PY

o="$out/pack"
expect_error "--calibration applies only to --precision int8" "$model" -o "$o" --calibration "$out/good.npy"
expect_error "--smooth applies only to --precision int8" "$model" -o "$o" --precision bf16 --smooth 0.5
expect_error "--smooth: '1.5' is not auto, off or a number in [0, 1]" "$model" -o "$o" --precision int8 --smooth 1.5
expect_error "--calibration needs a value" "$model" -o "$o" --precision int8 --calibration
expect_error "--calibration: $out/missing.npy: cannot open" "$model" -o "$o" --precision int8 --calibration "$out/missing.npy"
expect_error "bad_shape.npy: .npy shape [2, 3, 28, 28] does not match the expected [N, 1, 28, 28]" \
  "$model" -o "$o" --precision int8 --calibration "$out/bad_shape.npy"
expect_error "bad_dtype.npy: unsupported .npy dtype '<i4'" "$model" -o "$o" --precision int8 --calibration "$out/bad_dtype.npy"
expect_error "nan.npy: holds NaN or Inf" "$model" -o "$o" --precision int8 --calibration "$out/nan.npy"
expect_error "input.png: image inputs give 3 channels (RGB) but the model expects 1" \
  "$model" -o "$o" --precision int8 --calibration "$src/demo/input.png"
[ ! -e "$o" ] || fail "a refused pack wrote $o"

# check_json FILE 'python expression over j (the smoothing record) and s (self_check)'
check_json() {
  "$python" - "$1" "$2" <<'PY' || fail "$1: $2"
import json, sys
c = json.load(open(sys.argv[1]))
j, s = c['smoothing'], c['self_check']
ok = eval(sys.argv[2])
if j['applied']:
    # the packer's guard: the smoothed float32 model agrees with the unsmoothed one
    ok = ok and j['fp32_unchanged']['cosine'] >= 0.99999
ok = ok and s['precision_vs_fp32']['cosine'] >= 0.999
print(('ok   ' if ok else 'BAD  ') + sys.argv[1] + ': ' + json.dumps(j['calibration']) + ' applied ' + str(j['applied']) +
      ' alpha ' + str(j['alpha']) + ' int8 self-check cosine ' + str(s['precision_vs_fp32']['cosine']))
sys.exit(0 if ok else 1)
PY
}
"$pack" "$model" -o "$out/files" --name m --precision int8 --calibration "$out/good.npy" --calibration "$out/one.npy" --smooth 0.5
check_json "$out/files/m.json" "j['applied'] and j['alpha'] == 0.5 and j['mode'] == 'fixed' and j['calibration'] == {'source': 'files', 'files': ['good.npy', 'one.npy'], 'images': 4}"
"$pack" "$model" -o "$out/probe" --name m --precision int8
check_json "$out/probe/m.json" "j['mode'] == 'auto' and j['calibration']['source'] == 'probe' and j['calibration']['images'] == 2 and (j['applied'] == (max(t['cosine'] for t in j['cosine_on_calibration']['tried']) > 1 - 0.9 * (1 - j['cosine_on_calibration']['off'])))"
"$pack" "$model" -o "$out/off" --name m --precision int8 --smooth off
check_json "$out/off/m.json" "not j['applied'] and j['alpha'] is None and j['note'] == '--smooth off' and j['calibration']['source'] == 'none'"
# Smoothing changes the int8 weights, never the float32 blob.
cmp -s "$out/files/"m.*.vitcc "$out/off/"m.*.vitcc && fail "--smooth 0.5 wrote the same int8 blob as --smooth off"
"$pack" "$model" -o "$out/fp32a" --name m
"$pack" "$model" -o "$out/fp32b" --name m
cmp "$out/fp32a/"m.*.vitcc "$out/fp32b/"m.*.vitcc || fail "float32 packs differ"
# The case smoothing is for: the same model with trained-ViT-like outlier channels in every norm's
# output (tools/export/inject_outliers.py; float32 function unchanged). Unsmoothed int8 misses the
# pack-time bound; smoothed (auto, probe calibration) it must pass, with the outliers measured.
"$python" "$src/tools/export/inject_outliers.py" "$model" "$out/outliers.onnx" --factor 30 --channels 3
expect_error "at int8 the packed model is too far from the float32 graph" "$out/outliers.onnx" -o "$out/ol_off" --precision int8 --smooth off
"$pack" "$out/outliers.onnx" -o "$out/ol" --name m --precision int8
check_json "$out/ol/m.json" "j['applied'] and j['channel_outliers']['median'] > 10 and j['cosine_on_calibration']['chosen'] > 0.9999"
"$pack" "$src/demo/evit_demo.onnx" -o "$out/evit" --name m --precision int8 --no-check
"$python" -c "import json,sys; j=json.load(open('$out/evit/m.json'))['smoothing']; sys.exit(0 if not j['applied'] and 'reads a norm' in j['note'] else 1)" \
  || fail "EfficientViT's smoothing record: $(cat "$out/evit/m.json")"
echo "ok   EfficientViT: nothing smoothed, reason recorded"
echo "PASS"
