#!/usr/bin/env bash
# Writes docs/MEMORY.md: for every model of the fixture set (one fixture per model), the weight
# bytes, the workspace bytes, the measured stack high-water mark of forward(), and the cost of
# compiling that model's translation unit (wall time, peak compiler memory); then the Cortex-M7
# example's section sizes and stack, measured under QEMU, for its tiny ViT (fp32, M7 and M4F) and for
# the trained demo/fmnist_vit at each precision (fp32, bf16, int8).
#
# Usage: tools/memory_report.sh [BUILD_DIR [OUT.md]]      (defaults: build, docs/MEMORY.md)
# Needs BUILD_DIR/bin/vitcc-pack, vitcc-run and BUILD_DIR/fixtures (make test makes them; VITCC_FIXTURES
# overrides the latter). Environment: CXX (default g++), VITCC_MEMORY_FLAGS (default
# "-O2 -DNDEBUG -march=native", vitcc-run's flags).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
out=${2:-$root/docs/MEMORY.md}
pack=$build/bin/vitcc-pack
run=$build/bin/vitcc-run
fixtures=${VITCC_FIXTURES:-$build/fixtures}
cxx=${CXX:-g++}
flags=${VITCC_MEMORY_FLAGS:--O2 -DNDEBUG -march=native}
python=/usr/bin/python3
[ -x "$pack" ] && [ -x "$run" ] || { echo "memory_report: no $pack or $run (build first)" >&2; exit 1; }
[ -f "$fixtures/manifest.json" ] || { echo "memory_report: no $fixtures/manifest.json (run make test first)" >&2; exit 1; }
load_at_start=$(cut -d' ' -f1-3 /proc/loadavg)  # compile times mean little on a busy machine: say so
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# One fixture per model (names differ only after "_op"), the configuration variants left out.
mapfile -t models < <("$python" - "$fixtures/manifest.json" <<'PY'
import json, sys
seen = set()
for f in json.load(open(sys.argv[1]))['fixtures']:
    key = f['name'].split('_op')[0]
    if key in seen or key.startswith('variant_'):
        continue
    seen.add(key)
    print(key, f['dir'])
PY
)

rows=()
for entry in "${models[@]}"; do
  read -r name dir <<<"$entry"
  id=${name//[^A-Za-z0-9_]/_}
  echo "memory_report: $name" >&2
  if ! err=$("$pack" "$fixtures/$dir/model.onnx" -o "$work/$name" --name "$name" 2>&1 >/dev/null); then
    echo "memory_report: $name: $err" >&2
    rows+=("| $name | not packed: vitcc-pack refused this export (its message is in the script's log) | | | | | | | |")
    continue
  fi
  printf '#include "%s"\n#include "stack_probe.hpp"\nVITCC_STACK_PROBE_MAIN(vitcc_models::%s_model)\n' \
    "$work/$name/$name.hpp" "$id" > "$work/$name/probe.cpp"
  # shellcheck disable=SC2086
  /usr/bin/time -v "$cxx" -std=c++17 $flags -I"$root/include" -I"$root/tools/memory" "$work/$name/probe.cpp" \
    -o "$work/$name/probe" -pthread 2> "$work/$name/time.log" || { cat "$work/$name/time.log" >&2; exit 1; }
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$work/$name/time.log")
  rss_kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/$name/time.log")
  # The config as vitcc-run's checked reader sees it (never parsed here): the blob it names, stats.
  info=$("$run" "$work/$name/$name.json" --info)
  blob=$("$python" -c 'import json, sys; print(json.loads(sys.argv[1])["blob"]["path"])' "$info")
  probe=$("$work/$name/probe" "$blob")
  rows+=("$("$python" - "$info" "$probe" "$wall" "$rss_kb" <<'PY'
import json, sys
j = json.loads(sys.argv[1])
probe = dict(kv.split('=') for kv in sys.argv[2].split())
m, s = sys.argv[3].split(':')[-2:]
secs = int(m) * 60 + float(s)
st = j['stats']
assert int(probe['workspace_bytes']) == st['workspace_bytes'], 'workspace differs from the JSON'
def mib(b): return f'{b / 2**20:.2f} MiB'
print(f"| {j['name'].split('_op')[0]} | {j['architecture']} | {j['input_shape'][2]}x{j['input_shape'][3]} "
      f"| {st['parameters'] / 1e6:.2f} M | {st['weight_bytes']:,} ({mib(st['weight_bytes'])}) "
      f"| {st['workspace_bytes']:,} ({mib(st['workspace_bytes'])}) | {int(probe['forward_stack_bytes']):,} "
      f"| {secs:.1f} s | {int(sys.argv[4]) / 1024:.0f} MiB |")
PY
)")
done

# The Cortex-M example, built and run under QEMU for the M7 and the M4F (skipped without the ARM toolchain).
m7="" m4f=""
if command -v arm-none-eabi-g++ >/dev/null && command -v qemu-system-arm >/dev/null; then
  echo "memory_report: cortex-m7 example" >&2
  m7=$(bash "$root/examples/cortex-m7/run_test.sh" "$pack" "$python" "$work/cortex-m7" m7 2>&1) || { echo "$m7" >&2; exit 1; }
  echo "memory_report: cortex-m4f example" >&2
  m4f=$(bash "$root/examples/cortex-m7/run_test.sh" "$pack" "$python" "$work/cortex-m4f" m4f 2>&1) || { echo "$m4f" >&2; exit 1; }
  # One row per precision of the trained Fashion-MNIST ViT on the M7: the firmware's sections, its
  # workspace and forward() stack, the instructions of one forward pass, and its agreement with the
  # host's vitcc-run on the same blob and image.
  m7_rows=() m7_agree=()
  for precision in fp32 bf16 int8; do
    echo "memory_report: cortex-m7 example, fmnist_vit $precision" >&2
    log=$(bash "$root/examples/cortex-m7/run_test.sh" "$pack" "$python" "$work/cortex-m7-$precision" m7 fmnist_vit \
            "$precision" "$run" 2>&1) || { echo "$log" >&2; exit 1; }
    m7_rows+=("$("$python" - "$precision" "$log" <<'PY'
import re, sys
precision, log = sys.argv[1:]
sec = dict(re.findall(r'^\.(text|rodata|data|bss)\s+(\d+)$', log, re.M))
m = re.search(r'^model \S+ \((\w+)\): (\d+) weight bytes \(in place: yes\), (\d+) workspace bytes, '
              r'forward stack (\d+) bytes$', log, re.M)
ins = re.search(r'^forward instructions (\d+) ', log, re.M)
assert m and ins and len(sec) == 4 and m.group(1) == precision, f'unexpected firmware report:\n{log}'
f = lambda v: f'{int(v):,}'
print(f'| {precision} | {f(sec["text"])} | {f(sec["rodata"])} | {f(m.group(2))} | {f(sec["data"])} | {f(sec["bss"])} '
      f'| {f(m.group(3))} | {f(m.group(4))} | {f(ins.group(1))} |')
PY
)")
    m7_agree+=("$(grep -E '^m7 [a-z0-9]+ vs host' <<<"$log")")
  done
fi

{
  cat <<EOF2
# Memory, stated up front

Produced by \`tools/memory_report.sh\` (do not edit by hand; re-run it). For each model of the test
fixture set (one export per model, ImageNet-size inputs, random weights), packed by \`vitcc-pack\`:

- **weights**: the blob (\`NAME.<checksum>.vitcc\`, \`stats.weight_bytes\` in \`NAME.json\`, \`NAME_BLOB_BYTES\` of
  \`--emit-c-array\` / \`--emit-object\`). \`forward()\` reads it in place: a mapped file, flash, or an
  array linked into the program. It is never copied.
- **workspace**: \`Model::workspace_bytes\` (= \`vitcc::workspace_bytes<Model>\`, a \`constexpr\`; also
  \`stats.workspace_bytes\`). The caller owns it (a static array, an arena, one aligned allocation);
  \`static_assert(vitcc::workspace_fits<Model, BUDGET>)\` turns a budget into a compile-time check.
- **forward stack**: the measured high-water mark of one \`forward()\` call: it runs on a thread whose
  stack was painted with a pattern, minus the same thread running an empty function. It does not
  grow with the model: every tensor lives in the workspace.
- **compile**: one translation unit holding that model (its generated header, the library, a small
  main), compiled by \`$("$cxx" --version | head -n1)\` with \`$flags\` on this machine
  ($(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo) (family $(awk -F': ' '/^cpu family/ {print $2; exit}' /proc/cpuinfo), model $(awk -F': ' '/^model\t/ {print $2; exit}' /proc/cpuinfo)); load average $load_at_start when the
  report started, $(cut -d' ' -f1-3 /proc/loadavg) when it ended): wall time and the compiler's peak
  resident memory (\`/usr/bin/time -v\`). The weights are not part of it.

Nothing else is allocated: model + weights + workspace + stack is the whole footprint (the model
object itself holds the weight views: a few hundred bytes).

| model | arch | input | parameters | weights (bytes) | workspace (bytes) | forward stack (bytes) | compile time | compiler peak memory |
|---|---|---|---|---|---|---|---|---|
EOF2
  printf '%s\n' "${rows[@]}"
  cat <<EOF2

EfficientViT's workspace over time (224x224, one worker; the figures of the earlier layouts are those
this table showed then):

| layout | M0 (bytes) | M5 (bytes) |
|---|---|---|
| four copies of the largest map (issue 3) | 5.5 MB | 11.0 MB |
| two activation maps, an FFN hidden map, the patch-merging map and a scratch slice, each sized for its own largest use (issue 3, last stop) | 1,130,176 | 3,325,376 |
| the patch-embedding and stage phases laid over each other, so the maps take the largest set ever live at once (the first two patch-embedding outputs) plus the scratch slice (issue 10) | see the table above | see the table above |
EOF2
  if [ -n "$m7" ]; then
    cat <<EOF2

## Cortex-M7 (examples/cortex-m7)

The tiny ViT of the example (32x32, patch 8, dim 64, depth 2, 2 heads, 10 classes), weights
compiled in with \`--emit-c-array\`, built with \`arm-none-eabi-g++ -mcpu=cortex-m7 -mfpu=fpv5-d16
-mfloat-abi=hard -O2 -fno-exceptions -fno-rtti\` and newlib-nano, run under
\`qemu-system-arm -M mps2-an500\`. Sections of the linked firmware (bytes; \`.rodata\` holds the
weights and lives in flash, \`.bss\` holds the static workspace):

\`\`\`
$(grep -E '^\.(text|rodata|data|bss) ' <<<"$m7")
\`\`\`

Its own report, the instructions one forward pass executes (the firmware counts SysTick ticks under
\`qemu-system-arm -icount shift=0\`, calibrated on a loop of known length) and its agreement with
PyTorch:

\`\`\`
$(grep -E '^model tiny_vit|^forward instructions|^m7 vs PyTorch' <<<"$m7")
\`\`\`

The same firmware for a Cortex-M4F (\`-mcpu=cortex-m4 -mfpu=fpv4-sp-d16\`: a single-precision FPU,
so double arithmetic would run in software), under \`qemu-system-arm -M mps2-an386\`:

\`\`\`
$(grep -E '^\.(text|rodata|data|bss) ' <<<"$m4f")
$(grep -E '^forward instructions|^m4f vs PyTorch' <<<"$m4f")
\`\`\`

### Per precision: the trained Fashion-MNIST ViT

\`demo/fmnist_vit.onnx\` (28x28x1, patch 4, dim 64, depth 4, 4 heads, 10 classes; 139k parameters,
trained: docs/PRECISION.md) packed with \`vitcc-pack --precision P --emit-c-array\`, built for the
Cortex-M7 as above and run on Fashion-MNIST test image 0
(\`examples/cortex-m7/run_test.sh BUILD/bin/vitcc-pack /usr/bin/python3 OUT m7 fmnist_vit P\`; CTest
\`cortex_m7_example_int8\` runs the int8 row). Bytes, except the last column; \`.rodata\` (flash) holds
the weight blob, the input image (3,136 bytes) and constants; \`.bss\` (RAM) holds the workspace
(\`Model::workspace_bytes\`); the stack is \`forward()\`'s, measured by painting it; instructions are
those of one forward pass, counted as above:

| precision | .text | .rodata | weight blob | .data | .bss | workspace | forward stack | instructions per inference |
|---|---|---|---|---|---|---|---|---|
$(printf '%s\n' "${m7_rows[@]}")

The firmware's logits against the host's \`vitcc-run\` on the same blob and image: a scalar runner
(\`VITCC_RUN_FLAGS="-O2 -DNDEBUG -march=native -DVITCC_DISABLE_SIMD=1"\`) and the host build's own
(SIMD) one, on this machine ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)).
examples/cortex-m7/README.md says which bits agree and why the others may not:

\`\`\`
$(printf '%s\n' "${m7_agree[@]}")
\`\`\`

On this core the reduced precisions save flash, not instructions: the library has no SIMD back end
for it, and the scalar bf16 and int8 kernels add work to the fp32 kernel's (widening each bf16
weight to float; quantising each GEMM's input rows to int8 and converting its int32 sums back to
float). Where the instructions go was not profiled.

Instructions per inference, before and after the scalar path became fp32 (issue 18; the "before"
figures were measured the same way on the double-accumulating kernels of commit 2a1c7dc):

| scalar path | Cortex-M7 | Cortex-M4F |
|---|---|---|
| double accumulation (the test oracle, which was also the product's scalar path) | 16,691,923 | 292,881,344 |
| fp32, 4x4 register tile, fp::madd (VFMA.F32) | see above | see above |
EOF2
  fi
} > "$out.tmp"
mv "$out.tmp" "$out"
echo "memory_report: wrote $out" >&2
