#!/usr/bin/env bash
# Installs onnxruntime-node VERSION into ORT_DIR with npm, once (--ignore-scripts: the package ships
# its libonnxruntime.so and Node binding), and prints the module's folder. Concurrent tests share the
# install under a lock. Exit 77 (CTest: skipped) when node or npm is missing and VITCC_REQUIRE_ORT is
# not 1; CI (.ci/run) sets it, so there that is a failure, as is a failed install (no network).
#   ort_install.sh ORT_DIR VERSION WHAT   (WHAT: the test that needs it, for the messages)
set -euo pipefail
ort=$1 version=$2 what=$3
for tool in node npm; do
  if ! command -v "$tool" >/dev/null; then
    msg="$what needs $tool to install onnxruntime-node $version (bash tools/install-deps.sh installs nodejs and npm)"
    if [ "${VITCC_REQUIRE_ORT:-0}" = 1 ]; then
      echo "FAILED: $msg; VITCC_REQUIRE_ORT=1 does not allow skipping it" >&2
      exit 1
    fi
    {
      echo "************************************************************************************"
      echo "SKIPPED: $msg."
      echo "************************************************************************************"
    } >&2
    exit 77
  fi
done
module="$ort/node_modules/onnxruntime-node"
mkdir -p "$ort"
(
  flock 9
  if [ ! -f "$module/package.json" ] || ! grep -q "\"version\": \"$version\"" "$module/package.json"; then
    echo "ort_install: installing onnxruntime-node $version into $ort" >&2
    [ -f "$ort/package.json" ] || echo '{"name":"vitcc-test-ort","private":true}' >"$ort/package.json"
    (cd "$ort" && npm install --ignore-scripts --no-audit --no-fund "onnxruntime-node@$version" >&2)
  fi
) 9>"$ort/.install.lock"
echo "$module"
