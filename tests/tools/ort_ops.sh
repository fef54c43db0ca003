#!/usr/bin/env bash
# test_onnx_ops_vs_ort: installs onnxruntime-node VERSION into ORT_DIR (npm, once; --ignore-scripts:
# the package ships its libonnxruntime.so and Node binding, as tools/bench/compare.sh uses it), writes
# the one-node graphs (make_ort_op_cases.py, cached by a stamp), runs them in ORT (ort_op_runner.js)
# and then the comparison (TEST_BINARY). Exit 77, which CTest reports as skipped, only when node or
# npm is missing and VITCC_REQUIRE_ORT is not 1; CI (.ci/run) sets it, so there a missing node is a
# failure, as is a failed install (no network) everywhere.
#   ort_ops.sh TEST_BINARY SOURCE_DIR ORT_DIR CASES_DIR VERSION PYTHON
set -euo pipefail
bin=$1 src=$2 ort=$3 cases=$4 version=$5 python=$6
for tool in node npm; do
  if ! command -v "$tool" >/dev/null; then
    msg="test_onnx_ops_vs_ort needs $tool to install onnxruntime-node $version (bash tools/install-deps.sh installs nodejs and npm)"
    if [ "${VITCC_REQUIRE_ORT:-0}" = 1 ]; then
      echo "FAILED: $msg; VITCC_REQUIRE_ORT=1 does not allow skipping it" >&2
      exit 1
    fi
    {
      echo "************************************************************************************"
      echo "SKIPPED: $msg."
      echo "vitcc-pack's evaluator is NOT compared with ONNX Runtime in this run."
      echo "************************************************************************************"
    } >&2
    exit 77
  fi
done
module="$ort/node_modules/onnxruntime-node"
if [ ! -f "$module/package.json" ] || ! grep -q "\"version\": \"$version\"" "$module/package.json"; then
  echo "ort_ops: installing onnxruntime-node $version into $ort"
  mkdir -p "$ort"
  [ -f "$ort/package.json" ] || echo '{"name":"vitcc-test-ort","private":true}' >"$ort/package.json"
  (cd "$ort" && npm install --ignore-scripts --no-audit --no-fund "onnxruntime-node@$version")
fi
"$python" "$src/tests/tools/make_ort_op_cases.py" "$cases"
node "$src/tests/tools/ort_op_runner.js" "$module" "$cases"
VITCC_ORT_CASES="$cases" exec "$bin"
