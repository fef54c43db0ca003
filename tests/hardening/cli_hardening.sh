#!/usr/bin/env bash
# The command-line tools under failure (docs/SECURITY.md):
#   1. vitcc-pack killed while writing leaves the previous output intact and no partial file:
#      deterministically (SIGKILL at the test hook that pauses with the blob written but not yet
#      published) and at several moments of a real run;
#   2. every error is exactly one line on stderr ("vitcc-pack: error: ..." / "vitcc-run: error: ..."
#      / "vitcc-compile: error: ..."), including a config that does not match its compiled header or
#      its blob, a damaged blob, and configs whose name or files would lead a tool out of its folder;
#   3. vitcc-run gives identical output bits for --threads 1, 2 and 3 and across repeated runs, for a
#      batch and for a single image (whatever --threads parallelises, now or later).
# Usage: cli_hardening.sh VITCC_PACK VITCC_RUN VITCC_COMPILE SOURCE_DIR OUT_DIR
set -euo pipefail
pack=$1 run=$2 compile=$3 src=$4 out=$5
rm -rf "$out"; mkdir -p "$out"
fail() { echo "FAIL: $*" >&2; exit 1; }
python=${VITCC_PYTHON:-/usr/bin/python3}

# expect_one_line_error TOOL "words" command...: non-zero exit, stderr exactly one line starting
# "TOOL: error:" and containing the words.
expect_one_line_error() {
  local tool=$1 want=$2; shift 2
  local rc=0
  "$@" >"$out/stdout" 2>"$out/stderr" || rc=$?
  [ "$rc" -ne 0 ] || fail "expected failure of: $* (exit 0)"
  local n; n=$(grep -c '' "$out/stderr" || true)
  [ "$n" -eq 1 ] || fail "$tool wrote $n lines on stderr for: $*: $(cat "$out/stderr")"
  grep -q "^$tool: error: " "$out/stderr" || fail "stderr does not start with '$tool: error:': $(cat "$out/stderr")"
  grep -qF -- "$want" "$out/stderr" || fail "error of '$*' lacks '$want': $(cat "$out/stderr")"
  echo "ok   one-line error: $(cat "$out/stderr")"
}

# ---- 1. killed mid-write ---------------------------------------------------------------------
m="$out/model"
"$pack" "$src/demo/demo.onnx" -o "$m" --name demo >/dev/null
snapshot() { (cd "$m" && ls -A | sort && sha256sum demo.vitcc demo.json demo.hpp); }
before=$(snapshot)
[ "$(ls -A "$m" | wc -l)" -eq 3 ] || fail "expected exactly three output files, found: $(ls -A "$m")"

# Deterministic: the hook pauses with the new blob written and synced but not yet published.
marker="$out/paused"
VITCC_TEST_PAUSE_BEFORE_PUBLISH="$marker" "$pack" "$src/demo/demo.onnx" -o "$m" --name demo --crop-pct 0.9 \
  >/dev/null 2>&1 & pid=$!
for _ in $(seq 1 600); do [ -e "$marker" ] && break; kill -0 $pid 2>/dev/null || break; sleep 0.2; done
[ -e "$marker" ] || fail "vitcc-pack never reached the pause before publishing"
[ "$(snapshot)" = "$before" ] || fail "while the new blob is being written, the folder already changed: $(ls -A "$m")"
kill -KILL $pid; wait $pid 2>/dev/null || true
[ "$(snapshot)" = "$before" ] || fail "after SIGKILL mid-write the previous output changed or a file was left: $(ls -A "$m")"
echo "ok   SIGKILL with the blob written but unpublished: previous output intact, nothing left behind"

# At several moments of a real run (early, mid-fold, mid-write, late): whatever instant the kill
# lands, the folder holds exactly the three files, and they form one consistent set (the config
# names the blob's checksum; the blob's bytes hash to it), old or new.
consistent() {
  "$python" - "$m" <<'EOF'
import json, os, struct, sys
d = sys.argv[1]
names = sorted(os.listdir(d))
assert names == ['demo.hpp', 'demo.json', 'demo.vitcc'], names
cfg = json.load(open(os.path.join(d, 'demo.json')))
blob = open(os.path.join(d, 'demo.vitcc'), 'rb').read()
recorded = struct.unpack_from('<Q', blob, 32)[0]
assert len(blob) == cfg['blob']['bytes'], 'blob size'
assert int(cfg['blob']['checksum'], 16) == recorded, 'config names another blob'
assert '0x%016xull' % recorded in open(os.path.join(d, 'demo.hpp')).read(), 'header names another blob'
EOF
}
for delay in 0.05 0.2 0.4 0.7 1.0 1.5; do
  "$pack" "$src/demo/demo.onnx" -o "$m" --name demo --crop-pct 0.95 >/dev/null 2>&1 & pid=$!
  sleep "$delay"
  kill -KILL $pid 2>/dev/null || true
  wait $pid 2>/dev/null || true
  consistent || fail "after SIGKILL at ${delay}s the output folder is not one consistent set: $(ls -A "$m")"
done
echo "ok   SIGKILL at 6 moments of a real run: always exactly one consistent set of three files"

# ---- 2. one line on stderr -------------------------------------------------------------------
printf 'not an onnx file' > "$out/garbage.onnx"
expect_one_line_error vitcc-pack "protobuf parsing failed" "$pack" "$out/garbage.onnx" -o "$out/bad"
expect_one_line_error vitcc-pack "no such file" "$pack" "$out/missing.onnx" -o "$out/bad"
expect_one_line_error vitcc-pack "unknown option" "$pack" "$src/demo/demo.onnx" -o "$out/bad" --frobnicate

"$pack" "$src/demo/demo.onnx" -o "$m" --name demo >/dev/null   # a clean set again
cfg="$m/demo.json"
blob=$m/$("$python" -c 'import json, sys; print(json.load(open(sys.argv[1]))["blob"]["file"])' "$cfg")
edit_config() {  # edit_config NEW.json PYTHON-EXPRESSION-ON-c
  "$python" -c "import json,sys; c=json.load(open('$cfg')); $2; json.dump(c, open('$1','w'))"
}
printf '{"format": ' > "$m/broken.json"
expect_one_line_error vitcc-run "not a valid JSON config" "$run" "$m/broken.json" --check
edit_config "$m/escape.json" "c['header']='../../etc/passwd'"
expect_one_line_error vitcc-run "is not a plain file name" "$run" "$m/escape.json" --check
# A config whose config_hash is not its header's: the runner compiled from that header says which
# configuration it holds, and vitcc-run refuses it before caching it under the config's hash.
edit_config "$m/other_hash.json" "c['config_hash']='0x0123456789abcdef'"
expect_one_line_error vitcc-run "was generated for config" "$run" "$m/other_hash.json" --check
# The same with the config's own hash and another configuration's header (the EfficientViT demo's,
# packed under the same name), on an empty cache: the runner compiled from that header is refused
# and not cached, so the model with that hash still runs afterwards.
"$pack" "$src/demo/evit_demo.onnx" -o "$out/other" --name demo >/dev/null
cp "$out/other/$("$python" -c 'import json, sys; print(json.load(open(sys.argv[1]))["header"])' "$out/other/demo.json")" "$m/other.hpp"
edit_config "$m/other_header.json" "c['header']='other.hpp'; c.pop('header_checksum', None)"
VITCC_CACHE_DIR="$out/fresh-cache" expect_one_line_error vitcc-run "was generated for config" "$run" "$m/other_header.json" --check
VITCC_CACHE_DIR="$out/fresh-cache" "$run" "$cfg" --check >/dev/null || fail "a refused header left a wrong runner in the cache"
# A config that names another blob: binding refuses it (wrong_blob).
edit_config "$m/other_blob.json" "c['blob']['checksum']='0x%016x' % (int(c['blob']['checksum'],16) ^ 1)"
expect_one_line_error vitcc-run "this model expects" "$run" "$m/other_blob.json" --check
# A damaged blob: one flipped byte.
cp "$blob" "$m/damaged.vitcc"
printf '\x55' | dd of="$m/damaged.vitcc" bs=1 seek=100000 conv=notrunc status=none
edit_config "$m/damaged.json" "c['blob']['file']='damaged.vitcc'"
expect_one_line_error vitcc-run "does not match the recorded" "$run" "$m/damaged.json" --check
head -c 1000 "$src/demo/input.bin" > "$out/partial.bin"
expect_one_line_error vitcc-run "not a whole" "$run" "$cfg" --input "$out/partial.bin" --output "$out/x.bin"
expect_one_line_error vitcc-run "unknown option" "$run" "$cfg" --frobnicate
# A blob that is a symbolic link out of the config's folder.
mkdir -p "$out/elsewhere"; cp "$blob" "$out/elsewhere/x.vitcc"; ln -s "$(realpath "$out/elsewhere/x.vitcc")" "$m/linked.vitcc"
edit_config "$m/linked.json" "c['blob']['file']='linked.vitcc'"
expect_one_line_error vitcc-run "blob.file: 'linked.vitcc' leads outside the config's folder" "$run" "$m/linked.json" --check

# vitcc-compile reads configs with the same reader, and writes nothing outside -o: a config whose
# name climbs out of the folder (it would name DIR/../../x_capi.cpp) or holds a slash, and a header
# whose quote and newline would end the generated #include early, are refused before anything is
# written.
mkdir -p "$out/compile/a/b"
edit_config "$m/climb.json" "c['name']='../../x'"
expect_one_line_error vitcc-compile "climb.json: name: \"../../x\" is not a model name" \
  "$compile" "$m/climb.json" -o "$out/compile/a/b/lib"
edit_config "$m/slash.json" "c['name']='sub/x'"
expect_one_line_error vitcc-compile "slash.json: name: \"sub/x\" is not a model name" "$compile" "$m/slash.json" -o "$out/compile/a/b/lib"
edit_config "$m/quote.json" "c['header']='demo.hpp\"\\n#include \"/etc/passwd'"
expect_one_line_error vitcc-compile "quote.json: header: " "$compile" "$m/quote.json" -o "$out/compile/a/b/lib"
# A folder whose path holds a quote: its header's path cannot be written in an #include.
q="$out/quote\"dir"; mkdir -p "$q"; cp "$m"/demo.* "$q"/
expect_one_line_error vitcc-compile "which cannot be written in an #include" "$compile" "$q/demo.json" -o "$out/compile/q"
[ -z "$(find "$out/compile" -type f)" ] || fail "a refused vitcc-compile wrote: $(find "$out/compile" -type f)"
expect_one_line_error vitcc-pack "--name '../x': expected 1 to 64 letters" "$pack" "$src/demo/demo.onnx" -o "$out/bad" --name ../x

# ---- 3. determinism across --threads and runs ------------------------------------------------
"$python" - "$src/demo/input.bin" "$out/batch.bin" <<'EOF'
import sys, numpy as np
x = np.fromfile(sys.argv[1], dtype='<f4')
rng = np.random.default_rng(7)
imgs = [x] + [rng.uniform(-2.5, 2.5, x.size).astype('<f4') for _ in range(4)]
np.concatenate(imgs).astype('<f4').tofile(sys.argv[2])
EOF
"$run" "$cfg" --input "$out/batch.bin" --output "$out/t1.bin" --threads 1 >/dev/null
for t in 2 3; do
  "$run" "$cfg" --input "$out/batch.bin" --output "$out/t$t.bin" --threads $t >/dev/null
  cmp -s "$out/t1.bin" "$out/t$t.bin" || fail "batch output differs between --threads 1 and --threads $t"
done
"$run" "$cfg" --input "$out/batch.bin" --output "$out/t1b.bin" --threads 1 --repeat 3 >/dev/null
cmp -s "$out/t1.bin" "$out/t1b.bin" || fail "batch output differs between two runs"
"$run" "$cfg" --input "$src/demo/input.bin" --output "$out/s1.bin" --threads 1 >/dev/null
"$run" "$cfg" --input "$src/demo/input.bin" --output "$out/s2.bin" --threads 2 >/dev/null
cmp -s "$out/s1.bin" "$out/s2.bin" || fail "single-image output differs between --threads 1 and 2"
cmp -s "$out/s1.bin" <(head -c "$(stat -c %s "$out/s1.bin")" "$out/t1.bin") || fail "an image's output depends on its batch"
echo "ok   identical bits for --threads 1/2/3, repeated runs, single image vs batch"
echo "cli_hardening: all checks passed"
