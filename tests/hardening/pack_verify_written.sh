#!/usr/bin/env bash
# vitcc-pack reads its blob back from the file system before putting it in place, and refuses bytes
# that do not verify (BlobView::open, checksum included). The test hook VITCC_TEST_CORRUPT_WRITTEN
# flips one byte of the written temporary file, as a faulty write path would (the read-back comes from the page cache, so it does not model a disk that corrupts stored data):
#   1. into an empty folder: one error line naming the blob, and nothing of the model is left
#      (no blob, header, NAME.json or temporary);
#   2. over an existing set: that set stays as it was, byte for byte.
# Usage: pack_verify_written.sh VITCC_PACK SOURCE_DIR OUT_DIR
set -euo pipefail
pack=$1 src=$2 out=$3
rm -rf "$out"; mkdir -p "$out"
fail() { echo "FAIL: $*" >&2; exit 1; }

rc=0
VITCC_TEST_CORRUPT_WRITTEN=.vitcc "$pack" "$src/demo/evit_demo.onnx" -o "$out/empty" --name demo >/dev/null 2>"$out/stderr" || rc=$?
[ "$rc" -ne 0 ] || fail "a corrupted blob was accepted (exit 0)"
[ "$(grep -c '' "$out/stderr")" -eq 1 ] || fail "expected one error line: $(cat "$out/stderr")"
grep -q '^vitcc-pack: error: .*\.vitcc: the written file does not verify' "$out/stderr" ||
  fail "error does not name the blob and the failed check: $(cat "$out/stderr")"
left=$(ls -A "$out/empty")
[ -z "$left" ] || fail "files left after a refused blob: $left"
echo "ok   refused: $(cat "$out/stderr")"

"$pack" "$src/demo/demo.onnx" -o "$out/set" --name demo >/dev/null
before=$(cd "$out/set" && ls -A | sort && sha256sum $(ls -A | sort))
rc=0
VITCC_TEST_CORRUPT_WRITTEN=.vitcc "$pack" "$src/demo/evit_demo.onnx" -o "$out/set" --name demo >/dev/null 2>"$out/stderr" || rc=$?
[ "$rc" -ne 0 ] || fail "a corrupted blob replaced a set (exit 0)"
after=$(cd "$out/set" && ls -A | sort && sha256sum $(ls -A | sort))
[ "$before" = "$after" ] || fail "the existing set changed: before
$before
after
$after"
echo "ok   the existing set is untouched"
