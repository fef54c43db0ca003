#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz) with clang, ASan and UBSan, builds their seed corpora,
# and runs each target for SECONDS (default 60). CI runs it with 30.
#
#   tools/fuzz.sh [SECONDS]          environment: FUZZ_BUILD (default build-fuzz), JOBS (default 2),
#                                    FUZZ_TARGETS (default: all six), FUZZ_ONNX_MODELS=1 (fuzz_onnx_graph
#                                    also starts from the demo models: slow, for long runs)
#
# Corpora grow in $FUZZ_BUILD/fuzz-corpus/<target> (kept between runs, seeded from
# $FUZZ_BUILD/fuzz-seeds); a crash is written to $FUZZ_BUILD/fuzz-artifacts/<target>/ and makes the
# script fail, printing the reproducer command. Prints one line per target: executions, corpus size.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-60}
build=${FUZZ_BUILD:-$root/build-fuzz}
jobs=${JOBS:-2}
targets=${FUZZ_TARGETS:-"fuzz_blob fuzz_onnx fuzz_onnx_graph fuzz_config fuzz_npy fuzz_image"}
CLANG=${CLANG:-clang++}
command -v "$CLANG" >/dev/null || { echo "fuzz.sh: $CLANG not found (Debian: apt-get install clang libclang-rt-14-dev)" >&2; exit 1; }

flags="-fsanitize=address,undefined,fuzzer-no-link -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g -O1"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER="$CLANG" \
  -DCMAKE_CXX_FLAGS="$flags" -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1" \
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" \
  -DVITCC_FUZZ=ON -DVITCC_BUILD_TESTS=ON -DVITCC_INSTALL=OFF >/dev/null
cmake --build "$build" --target vitcc_fuzzers -j"$jobs"
# The seeds need bad-models from the main build when they are there; the script skips what is missing.
cmake --build "$build" --target vitcc_fuzz_seeds

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1:suppressions=$root/tests/fuzz/ubsan.supp}
status=0
for t in $targets; do
  corpus="$build/fuzz-corpus/$t" artifacts="$build/fuzz-artifacts/$t/"
  mkdir -p "$corpus" "$artifacts"
  extra=() seeds=("$build/fuzz-seeds/${t#fuzz_}")
  case $t in
    fuzz_blob)  extra=(-max_len=2500000) ;;  # the demo blob is the seed
    fuzz_onnx)  extra=(-max_len=600000 -timeout=20) ;;
    # structure-aware: hand-made shape graphs and the tiny ViT exports (and the demo models if asked)
    fuzz_onnx_graph)
      extra=(-max_len=600000 -timeout=20) seeds+=("$build/fuzz-seeds/onnx")
      if [ "${FUZZ_ONNX_MODELS:-0}" = 1 ]; then
        extra=(-max_len=2500000 -timeout=20) seeds+=("$build/fuzz-seeds/onnx_models")
      fi ;;
    fuzz_image) extra=(-max_len=200000 -timeout=20) ;;
    *)          extra=(-max_len=200000) ;;
  esac
  log="$build/fuzz-$t.log"
  rc=0
  "$build/bin/$t" "$corpus" "${seeds[@]}" -max_total_time="$seconds" -rss_limit_mb=3000 \
    -artifact_prefix="$artifacts" -print_final_stats=1 "${extra[@]}" >"$log" 2>&1 || rc=$?
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  if [ "$rc" -ne 0 ]; then
    status=1
    echo "fuzz.sh: $t FAILED after $execs executions (log: $log); reproduce with: $build/bin/$t $(ls -t "$artifacts" | head -1 | sed "s|^|$artifacts|")"
    grep -E "ERROR|SUMMARY|unexpected|runtime error" "$log" | head -5 || true
  else
    echo "fuzz.sh: $t: $execs executions in ${seconds}s, corpus $(ls "$corpus" | wc -l) inputs, no findings"
  fi
done
exit $status
