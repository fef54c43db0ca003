#!/usr/bin/env bash
# The command-line tools under failure (docs/SECURITY.md):
#   1. vitcc-pack killed at any moment leaves the old set of outputs or the new one, whole: SIGKILL
#      at every step of a real run (the test hook VITCC_TEST_PAUSE_AT pauses before each change to
#      the folder), and at moments spread over an unhooked run. After each kill the model in the
#      folder is run by vitcc-run and must give the old or the new model's output bit for bit (the
#      old one before the commit step, the new one from it on), every file must be whole and every
#      view (NAME.hpp, the embedded outputs) must lead to a whole blob of one of the two sets
#      (tests/hardening/pack_set.py); the next run must leave exactly its own set;
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
here=$(cd "$(dirname "$0")" && pwd)

# expect_one_line_error TOOL "words" command...: non-zero exit, stderr exactly one line starting
# "TOOL: error:" and containing the words (besides, at most, vitcc-run's note on a first compile).
expect_one_line_error() {
  local tool=$1 want=$2; shift 2
  local rc=0
  "$@" >"$out/stdout" 2>"$out/stderr.all" || rc=$?
  [ "$rc" -ne 0 ] || fail "expected failure of: $* (exit 0)"
  grep -v '^vitcc-run: note: compiling ' "$out/stderr.all" >"$out/stderr" || true
  [ "$(grep -c '^vitcc-run: note: ' "$out/stderr.all" || true)" -le 1 ] || fail "more than one note: $(cat "$out/stderr.all")"
  local n; n=$(grep -c '' "$out/stderr" || true)
  [ "$n" -eq 1 ] || fail "$tool wrote $n lines on stderr for: $*: $(cat "$out/stderr")"
  grep -q "^$tool: error: " "$out/stderr" || fail "stderr does not start with '$tool: error:': $(cat "$out/stderr")"
  grep -qF -- "$want" "$out/stderr" || fail "error of '$*' lacks '$want': $(cat "$out/stderr")"
  echo "ok   one-line error: $(cat "$out/stderr")"
}

# ---- 1. killed mid-write ---------------------------------------------------------------------
# VITCC_CLI_KILL=0 (the sanitized build) leaves this part to the plain build: a killed process never
# reaches a sanitizer's report, and its ~20 packs take ~10x longer under ASan.
m="$out/model" input=$src/demo/input.bin
if [ "${VITCC_CLI_KILL:-1}" = 1 ]; then
# Models packed under one name, each writing other bytes into every file: OLD = the demo ViT,
# NEW = the demo EfficientViT (another architecture: another blob, header, config hash and output),
# NEW2 = the demo ViT with one weight changed (the same configuration, so that only the blob's
# checksum tells the two sets apart). Every run writes the embedded outputs too.
old_onnx=$src/demo/demo.onnx new_onnx=$src/demo/evit_demo.onnx new2_onnx=$out/demo_changed.onnx
"$python" - "$old_onnx" "$new2_onnx" <<'PY'
import sys, onnx, numpy as np
from onnx import numpy_helper
m = onnx.load(sys.argv[1])
init = max(m.graph.initializer, key=lambda t: int(np.prod(t.dims)) if len(t.dims) == 2 else 0)
w = numpy_helper.to_array(init).copy()
w.flat[0] += 0.5
init.CopyFrom(numpy_helper.from_array(w, init.name))
onnx.save(m, sys.argv[2])
PY
embed=(--emit-c-array --emit-object)
declare -A onnx_of=([old]=$old_onnx [new]=$new_onnx [new2]=$new2_onnx) ref_out ref_cs
for which in old new new2; do
  "$pack" "${onnx_of[$which]}" -o "$out/ref-$which" --name demo "${embed[@]}" >/dev/null
  "$run" "$out/ref-$which/demo.json" --input "$input" --output "$out/ref-$which.bin" >/dev/null
  ref_out[$which]=$out/ref-$which.bin
  ref_cs[$which]=$("$python" -c 'import json, sys; print(json.load(open(sys.argv[1]))["blob"]["checksum"])' \
                     "$out/ref-$which/demo.json")
done
! cmp -s "${ref_out[old]}" "${ref_out[new]}" && ! cmp -s "${ref_out[old]}" "${ref_out[new2]}" \
  || fail "the models of the kill test must give different outputs"
echo "ok   reference runs: old ${ref_cs[old]}, new ${ref_cs[new]}, new2 ${ref_cs[new2]}"

# check_folder OLD_OR_NEW_OR_EITHER NEW PID TEXT: after a kill of PID (TEXT says where), every file
# is whole and every view leads to OLD's or NEW's blob (pack_set.py), and vitcc-run on the folder's
# config gives, bit for bit, the output of the set the config names, which must be the one asked for.
check_folder() {
  local want=$1 new=$2 pid=$3 text=$4 views got=none v
  views=$("$python" "$here/pack_set.py" "$m" demo --killed "$pid" --memo "$out/pack_set.memo") \
    || fail "killed $text: a file is not whole or not consistent ($(ls -A "$m" | tr '\n' ' '))"
  "$run" "$m/demo.json" --input "$input" --output "$out/got.bin" >"$out/run.log" 2>&1 \
    || fail "killed $text: the model in the folder does not run: $(cat "$out/run.log")"
  for which in old "$new"; do
    if cmp -s "$out/got.bin" "${ref_out[$which]}"; then got=$which; break; fi
  done
  [ "$got" != none ] || fail "killed $text: vitcc-run's output is neither the old nor the new model's"
  [ "$want" = either ] || [ "$got" = "$want" ] || fail "killed $text: the $got model runs, expected the $want one"
  [[ "$views" == "config=${ref_cs[$got]} "* ]] || fail "killed $text: the output is $got's, the config view is not: $views"
  for v in $views; do
    case ${v#*=} in "${ref_cs[old]}"|"${ref_cs[$new]}"|-) ;; *) fail "killed $text: $v leads to neither set";; esac
  done
  echo "$got ($views)"
}
restore_old() {  # a normal run of OLD from whatever a kill left: exactly OLD's set afterwards
  "$pack" "$old_onnx" -o "$m" --name demo "${embed[@]}" >/dev/null
  local views c=${ref_cs[old]}
  views=$("$python" "$here/pack_set.py" "$m" demo --exact --memo "$out/pack_set.memo") || fail "the run after a kill left: $(ls -A "$m" | tr '\n' ' ')"
  [ "$views" = "config=$c header=$c weights=$c stub=$c object=$c object_h=$c" ] \
    || fail "the run after a kill did not leave exactly its own set: $views"
}

# Every step of a real run of NEW over OLD: first the list, then a SIGKILL while paused at each.
restore_old
VITCC_TEST_STEPS="$out/steps.txt" "$pack" "$new_onnx" -o "$m" --name demo "${embed[@]}" >/dev/null
steps=$(grep -c '' "$out/steps.txt")
commit=$(grep -n 'demo.json: committed' "$out/steps.txt" | cut -d: -f1)
[ -n "$commit" ] && [ "$steps" -gt "$commit" ] || fail "no commit step, or no removal after it: $(cat "$out/steps.txt")"
echo "ok   a run of NEW over OLD has $steps steps; the commit (NAME.json in place) is step $commit:"
sed 's/^/       /' "$out/steps.txt"
kill_steps=$(seq 1 "$steps")
for k in $kill_steps; do
  restore_old
  marker="$out/paused.$k"
  VITCC_TEST_PAUSE_AT="$k:$marker" "$pack" "$new_onnx" -o "$m" --name demo "${embed[@]}" >/dev/null 2>&1 & pid=$!
  for _ in $(seq 1 900); do [ -s "$marker" ] && break; kill -0 $pid 2>/dev/null || break; sleep 0.2; done
  [ -s "$marker" ] || fail "vitcc-pack never paused at step $k"
  kill -KILL $pid; wait $pid 2>/dev/null || true
  # Before the commit step the old set is in place; from it on, the new one.
  if [ "$k" -lt "$commit" ]; then want=old; else want=new; fi
  got=$(check_folder $want new $pid "at step $(cat "$marker")")
  echo "ok   SIGKILL at step $k of $steps: $got"
done

# An unhooked run of NEW2 over OLD, killed at moments spread over its duration (most land before
# the writing starts, the last ones in it).
restore_old
t0=$(date +%s%N)
"$pack" "$new2_onnx" -o "$out/timing" --name demo "${embed[@]}" >/dev/null
duration_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
fracs="20 50 80 90 95 98 100 105"
for frac in $fracs; do
  restore_old
  delay=$(awk -v d="$duration_ms" -v f="$frac" 'BEGIN { printf "%.3f", d * f / 100000 }')
  "$pack" "$new2_onnx" -o "$m" --name demo "${embed[@]}" >/dev/null 2>&1 & pid=$!
  sleep "$delay"
  kill -KILL $pid 2>/dev/null || true
  wait $pid 2>/dev/null || true
  got=$(check_folder either new2 $pid "after ${delay}s")
  echo "ok   SIGKILL after ${delay}s (${frac}% of a run): $got"
done
restore_old
else
  echo "skip kill test (VITCC_CLI_KILL=0): the plain build runs it"
fi

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
