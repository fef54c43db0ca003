#!/usr/bin/env bash
# One command for the comparison (`make bench-compare`): builds vitcc's tools and benchmarks in
# build-bench, installs onnxruntime-node there (npm, --ignore-scripts: the package ships its
# libonnxruntime.so and Node binding), then runs tools/bench/compare.py, which writes this CPU's
# benchmarks/results/CPU.md and CPU.svg and the BENCHMARKS.md index: vitcc at fp32, bf16 and int8 against ONNX Runtime fp32, ONNX Runtime int8
# (the model rewritten by tools/bench/ort_quantize.py; needs /usr/bin/python3 with onnx and numpy) and
# PyTorch. Extra arguments go to compare.py (--models vit_s16,vit_b16 --precisions fp32,int8 --rounds 5 ...).
# Environment: BUILD (default build-bench), JOBS (default 2), VITCC_BENCH_FIXTURES (colon-separated
# folders of make_fixtures.py fixtures to use; what they lack is generated into BUILD/fixtures).
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build-bench}
JOBS=${JOBS:-2}
ORT_VERSION=${ORT_VERSION:-1.30.0}

bash tools/install-deps.sh
command -v node >/dev/null && command -v npm >/dev/null || {
  echo "compare: installing nodejs and npm"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
}

cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DVITCC_BUILD_BENCHMARKS=ON >/dev/null
cmake --build "$BUILD" -j"$JOBS" --target vitcc-pack vitcc-run vitcc_bench_kernels vitcc_bench_models

ort="$BUILD/ort/node_modules/onnxruntime-node"
if [ ! -f "$ort/package.json" ] || ! grep -q "\"version\": \"$ORT_VERSION\"" "$ort/package.json"; then
  mkdir -p "$BUILD/ort"
  [ -f "$BUILD/ort/package.json" ] || echo '{"name":"vitcc-bench-ort","private":true}' >"$BUILD/ort/package.json"
  (cd "$BUILD/ort" && npm install --ignore-scripts --no-audit --no-fund "onnxruntime-node@$ORT_VERSION" >/dev/null)
fi

fixtures=()
[ -z "${VITCC_BENCH_FIXTURES:-}" ] || fixtures=("--fixtures" "$VITCC_BENCH_FIXTURES")
echo "compare: load average $(cut -d' ' -f1-3 /proc/loadavg) (final figures want < 1)"
exec /usr/bin/python3 tools/bench/compare.py --build "$BUILD" "${fixtures[@]}" \
  --command "make bench-compare${BENCH_ARGS:+ BENCH_ARGS=\"$BENCH_ARGS\"}" ${BENCH_ARGS:-} "$@"
