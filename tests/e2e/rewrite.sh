#!/usr/bin/env bash
# VITCC_E2E_REWRITE for the end-to-end tests on rewritten graphs (issue 17):
#   rewrite.sh KIND SOURCE_DIR ORT_DIR ORT_VERSION PYTHON IN.onnx OUT.onnx
# KIND: ort-basic / ort-extended (ONNX Runtime saves its optimised graph, tools/export/ort_optimize.js,
# onnxruntime-node installed by tests/tools/ort_install.sh) or simplified (tools/export/simplify_onnx.py).
set -euo pipefail
kind=$1 src=$2 ort=$3 version=$4 python=$5 in=$6 out=$7
case "$kind" in
  ort-basic|ort-extended)
    module=$(bash "$src/tests/tools/ort_install.sh" "$ort" "$version" "the end-to-end test on ONNX Runtime's optimised graphs")
    exec node "$src/tools/export/ort_optimize.js" "$module" "${kind#ort-}" "$in" "$out" ;;
  simplified)
    exec "$python" "$src/tools/export/simplify_onnx.py" "$in" "$out" --gemm-variants ;;
  *) echo "rewrite.sh: unknown kind '$kind'" >&2; exit 2 ;;
esac
