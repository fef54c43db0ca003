#!/usr/bin/env bash
# test_onnx_ops_vs_ort: installs onnxruntime-node VERSION into ORT_DIR (ort_install.sh), writes
# the one-node graphs (make_ort_op_cases.py, cached by a stamp), runs them in ORT (ort_op_runner.js)
# and then the comparison (TEST_BINARY). Exit 77, which CTest reports as skipped, only when node or
# npm is missing and VITCC_REQUIRE_ORT is not 1; CI (.ci/run) sets it, so there a missing node is a
# failure, as is a failed install (no network) everywhere.
#   ort_ops.sh TEST_BINARY SOURCE_DIR ORT_DIR CASES_DIR VERSION PYTHON
set -euo pipefail
bin=$1 src=$2 ort=$3 cases=$4 version=$5 python=$6
module=$(bash "$src/tests/tools/ort_install.sh" "$ort" "$version" test_onnx_ops_vs_ort) || exit $?
"$python" "$src/tests/tools/make_ort_op_cases.py" "$cases"
node "$src/tests/tools/ort_op_runner.js" "$module" "$cases"
VITCC_ORT_CASES="$cases" exec "$bin"
