#!/usr/bin/env bash
# Runs vitcc-recognize-check on every fixture of a tools/export/make_fixtures.py output folder: each must be
# recognised, its interpreter output must match the PyTorch reference and the VitSpec's own forward pass
# must match the interpreter. Fixtures this packer knowingly refuses must fail with the expected message.
#   tools/pack/check_fixtures.sh BUILD/bin/vitcc-recognize-check FIXTURES_DIR
set -u
check=${1:?usage: $0 VITCC_RECOGNIZE_CHECK FIXTURES_DIR}
dir=${2:?usage: $0 VITCC_RECOGNIZE_CHECK FIXTURES_DIR}
# fixture name -> a piece of the expected refusal
declare -A refused=(
  [variant_all_tokens_head_op13]="applied to every token"
)
pass=0 failed=0
for fx in "$dir"/*/; do
  fx=${fx%/}
  name=$(basename "$fx")
  [ -f "$fx/model.onnx" ] || continue
  out=$("$check" "$fx/model.onnx" --input "$fx/input.bin" --ref "$fx/reference.bin" 2>&1)
  rc=$?
  if [ -n "${refused[$name]+x}" ]; then
    if [ $rc -eq 1 ] && grep -qF -- "${refused[$name]}" <<<"$out"; then
      pass=$((pass + 1)); echo "ok      $name (refused as expected)"
    else
      failed=$((failed + 1)); echo "FAILED  $name: expected a refusal mentioning '${refused[$name]}'"; echo "$out" | tail -3
    fi
  elif [ $rc -eq 0 ]; then
    pass=$((pass + 1)); echo "ok      $name: $(grep -m1 -o 'vs reference: max abs err [^ ]*' <<<"$out")"
  else
    failed=$((failed + 1)); echo "FAILED  $name"; echo "$out" | tail -3
  fi
done
echo "$pass passed, $failed failed"
[ $failed -eq 0 ]
