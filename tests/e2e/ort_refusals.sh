#!/usr/bin/env bash
# What vitcc-pack refuses of ONNX Runtime's optimised graphs, and how (issue 17): a clear error that names
# the op and node and says to save at the 'basic' level; never a crash, never an output.
#   ort_refusals.sh VITCC_PACK SOURCE_DIR FIXTURES_DIR ORT_DIR ORT_VERSION PYTHON WORK_DIR
set -euo pipefail
pack=$1 src=$2 fixtures=$3 ort=$4 version=$5 python=$6 work=$7
module=$(bash "$src/tests/tools/ort_install.sh" "$ort" "$version" ort_refusals) || exit $?
rm -rf "$work" && mkdir -p "$work"
fails=0
# expect_refusal NAME MODEL NEEDLE...: the pack fails with exit 5 (a valid model vitcc does not pack), says
# "vitcc-pack: error:" and every needle
expect_refusal() {
  local name=$1 model=$2
  shift 2
  local rc=0
  "$pack" "$model" -o "$work/$name.out" >"$work/$name.log" 2>&1 || rc=$?
  local ok=1
  [ "$rc" = 5 ] || ok=0
  grep -q "vitcc-pack: error:" "$work/$name.log" || ok=0
  for needle in "$@"; do grep -qF -- "$needle" "$work/$name.log" || ok=0; done
  [ ! -e "$work/$name.out" ] || ok=0
  if [ $ok = 1 ]; then
    echo "ok   $name: $(head -c 400 "$work/$name.log")"
  else
    echo "FAIL $name (exit $rc, wanted 5 and: $*):"; cat "$work/$name.log"; fails=$((fails + 1))
  fi
}
vit17=$fixtures/vit_tiny_patch16_224_op17/model.onnx
node "$src/tools/export/ort_optimize.js" "$module" all "$vit17" "$work/vit17_all.onnx"
expect_refusal all_level "$work/vit17_all.onnx" "com.microsoft.nchwc::" "'basic'"
node "$src/tools/export/ort_optimize.js" "$module" extended "$fixtures/deit_tiny_patch16_224_op13/model.onnx" "$work/deit13_ext.onnx"
expect_refusal ln_before_opset17 "$work/deit13_ext.onnx" "'LayerNormalization'" "opset 17" "'basic'"
node "$src/tools/export/ort_optimize.js" "$module" extended "$vit17" "$work/vit17_ext.onnx"
# ops of ONNX Runtime's that stand for what vitcc does not compute, put where the Gelu and FusedMatMul are
"$python" - "$work" <<'PY'
import sys, onnx
from onnx import helper
work = sys.argv[1]
def edit(fn, out):
    m = onnx.load(f'{work}/vit17_ext.onnx')
    fn(m)
    onnx.save(m, f'{work}/{out}.onnx')
def fast_gelu(m):
    n = next(n for n in m.graph.node if n.op_type == 'Gelu'); n.op_type = 'FastGelu'
def skip_ln_mean(m):
    n = next(n for n in m.graph.node if n.op_type == 'SkipLayerNormalization')
    while len(n.output) < 2: n.output.append('')
    n.output[1] = 'skip_ln_mean'  # the mean output, which vitcc does not compute, now named (used)
def other_domain(m):
    n = next(n for n in m.graph.node if n.op_type == 'Gelu'); n.domain = 'com.example'
    m.opset_import.append(helper.make_opsetid('com.example', 1))
edit(fast_gelu, 'fast_gelu'); edit(skip_ln_mean, 'skip_ln_mean'); edit(other_domain, 'other_domain')
PY
expect_refusal fast_gelu "$work/fast_gelu.onnx" "'com.microsoft::FastGelu'" "approximation of GELU" "'basic'"
expect_refusal skip_ln_mean "$work/skip_ln_mean.onnx" "com.microsoft::SkipLayerNormalization" "mean / inverse standard deviation" "'basic'"
expect_refusal other_domain "$work/other_domain.onnx" "'com.example::Gelu'" "default ONNX domain"
# and the extended level at opset 17 packs (the e2e test holds it to PyTorch)
if "$pack" "$work/vit17_ext.onnx" -o "$work/ext.out" >"$work/ext.log" 2>&1; then echo "ok   extended opset 17 packs"; else echo "FAIL extended opset 17:"; cat "$work/ext.log"; fails=$((fails + 1)); fi
[ $fails = 0 ] && echo "ort_refusals: all passed" || { echo "ort_refusals: $fails failed"; exit 1; }
