#!/usr/bin/env bash
# Builds the Cortex-M7 example from scratch, runs it under QEMU and holds its logits to a reference.
# Usage: run_test.sh VITCC_PACK PYTHON OUT_DIR [m7|m4f] [tiny_vit|fmnist_vit] [fp32|bf16|int8] [VITCC_RUN]
#   m7   Cortex-M7 with its double-precision FPU (fpv5-d16), board mps2-an500 (the default)
#   m4f  Cortex-M4F, single-precision FPU only (fpv4-sp-d16), board mps2-an386
#   tiny_vit (the default; fp32 only): make_model.py builds a random tiny ViT (32x32 RGB) with the
#        project's timm-mirroring PyTorch module; the firmware's logits are held to PyTorch's.
#   fmnist_vit: the trained demo/fmnist_vit.onnx (Fashion-MNIST, 28x28x1) packed at the precision given
#        (default int8), run on Fashion-MNIST test image 0 (fmnist_input.py); the firmware's logits are
#        held to the host's vitcc-run on the same blob and image, built scalar (-DVITCC_DISABLE_SIMD,
#        -march=native so that fp::madd is an FMA instruction as on the Cortex-M). VITCC_RUN defaults to
#        the vitcc-run next to VITCC_PACK. README.md says which bits agree and why the rest may not.
# Steps: model + input -> vitcc-pack --emit-c-array [--precision P] -> make (arm-none-eabi-g++,
# newlib-nano) -> section sizes -> qemu-system-arm -M mps2-an500 (semihosting) -> comparison.
set -euo pipefail
pack=$1 python=$2 out=$3 target=${4:-m7} model=${5:-tiny_vit}
case "$model" in
  tiny_vit) precision=${6:-fp32} ;;
  fmnist_vit) precision=${6:-int8} ;;
  *) echo "run_test.sh: unknown model $model (tiny_vit or fmnist_vit)" >&2; exit 2 ;;
esac
run=${7:-$(dirname "$pack")/vitcc-run}
case "$target" in
  m7) board=mps2-an500 cpu=cortex-m7 ;;
  m4f) board=mps2-an386 cpu=cortex-m4 ;;
  *) echo "run_test.sh: unknown target $target (m7 or m4f)" >&2; exit 2 ;;
esac
case "$model/$precision" in
  tiny_vit/fp32 | fmnist_vit/fp32 | fmnist_vit/bf16 | fmnist_vit/int8) ;;
  *) echo "run_test.sh: no $precision build of $model (tiny_vit: fp32; fmnist_vit: fp32, bf16, int8)" >&2; exit 2 ;;
esac
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
fail() { echo "FAIL: $*" >&2; exit 1; }
for tool in arm-none-eabi-g++ qemu-system-arm; do
  command -v "$tool" >/dev/null || fail "$tool is not installed (bash tools/install-deps.sh)"
done
[ "$model" = tiny_vit ] || [ -x "$run" ] || fail "no vitcc-run at $run (give it as the 7th argument)"
rm -rf "$out"; mkdir -p "$out/model"

if [ "$model" = tiny_vit ]; then
  "$python" "$here/make_model.py" "$out/model"
  onnx=$out/model/tiny_vit.onnx
else
  "$python" "$here/fmnist_input.py" "$out/model" 0
  onnx=$root/demo/fmnist_vit.onnx
fi
"$pack" "$onnx" -o "$out/model" --name "$model" --precision "$precision" --emit-c-array --summary \
  | grep -E "parameters|weights|workspace|vs the float32"
make --no-print-directory -C "$here" MODEL_DIR="$out/model" NAME="$model" OUT="$out/build" TARGET="$target" all \
  | tee "$out/build.log"

# The board: no operating system, semihosting for printf and exit; give up after 120 s.
# -icount shift=0: the virtual clock advances 1 ns per instruction, which makes the firmware's SysTick
# count (and so its "forward instructions" line) an instruction count.
log=$(timeout 120 qemu-system-arm -M "$board" -cpu "$cpu" -nographic -monitor none -serial none -icount shift=0 \
        -semihosting-config enable=on,target=native -kernel "$out/build/firmware.elf" 2>&1) \
  || fail "the firmware did not exit cleanly under QEMU; it said: $log"
echo "$log" | grep -v "^logit"
grep -q "^done" <<<"$log" || fail "no 'done' from the firmware"
grep "^logit" <<<"$log" > "$out/firmware_logits.txt"

if [ "$model" = fmnist_vit ]; then
  # The host's vitcc on the same blob and image: a scalar runner (the reference), and the host
  # build's own runner with its SIMD kernels (printed beside it).
  VITCC_RUN_FLAGS="-O2 -DNDEBUG -march=native -DVITCC_DISABLE_SIMD=1" \
    "$run" "$out/model/$model.json" --input "$out/model/input.bin" --output "$out/host_scalar.bin" >/dev/null
  "$run" "$out/model/$model.json" --input "$out/model/input.bin" --output "$out/host_simd.bin" >/dev/null
  "$python" - "$out/firmware_logits.txt" "$out/host_scalar.bin" "$out/host_simd.bin" "$target $precision" <<'PY'
import math, struct, sys
fw_file, scalar_file, simd_file, what = sys.argv[1:]
fw = {}
for line in open(fw_file):
    _, i, bits = line.split()
    fw[int(i)] = int(bits, 16)


def as_float(b):
    return struct.unpack('<f', struct.pack('<I', b))[0]


def compare(name, path, tol, min_cos):
    data = open(path, 'rb').read()
    n = len(data) // 4
    if sorted(fw) != list(range(n)):
        sys.exit(f'FAIL: the firmware printed logits {sorted(fw)}; {path} holds {n}')
    ref_bits = struct.unpack(f'<{n}I', data)
    got_bits = [fw[i] for i in range(n)]
    ref, got = [as_float(b) for b in ref_bits], [as_float(b) for b in got_bits]
    same = sum(a == b for a, b in zip(got_bits, ref_bits))
    err = max(abs(a - b) for a, b in zip(got, ref))
    mag = max(abs(b) for b in ref)
    cos = sum(a * b for a, b in zip(got, ref)) / math.sqrt(sum(a * a for a in got) * sum(b * b for b in ref))
    print(f'{what} vs host {name}: {same} of {n} logits bit-identical, max abs error {err:.3g} '
          f'(max |ref| {mag:.3g}), cosine {cos:.9f}')
    return err <= tol * max(1.0, mag) and cos >= min_cos


logits = [as_float(fw[i]) for i in sorted(fw)]
print('logits  ' + ' '.join(f'{v:.5f}' for v in logits) + f'  (class {logits.index(max(logits))})')
# The scalar host runs the same kernels in the same order: the project's parity bound (README.md).
ok = compare('scalar', scalar_file, 1e-4, 0.99999)
# The host's SIMD kernels sum in another order; at int8 a changed float can round to another int8
# step. The precision's own pack-time bound (docs/PRECISION.md) applies.
bound = {'fp32': (1e-4, 0.99999), 'bf16': (2e-2, 0.9999), 'int8': (1e-1, 0.999)}[what.split()[1]]
ok_simd = compare('SIMD', simd_file, *bound)
if not ok:
    sys.exit("FAIL: the firmware disagrees with the host's scalar vitcc-run (parity bound)")
if not ok_simd:
    sys.exit("FAIL: the firmware disagrees with the host's vitcc-run beyond the precision's bound")
PY
  exit 0
fi

# Its logits (exact float bits) against PyTorch's, with the project's parity bound.
"$python" - "$out/model/reference.bin" <<PY
import struct, sys, math
ref = struct.unpack('<10f', open(sys.argv[1], 'rb').read())
got = {}
for line in """$log""".splitlines():
    if line.startswith('logit '):
        _, i, bits = line.split()
        got[int(i)] = struct.unpack('<f', struct.pack('<I', int(bits, 16)))[0]
assert sorted(got) == list(range(len(ref))), f'firmware printed logits {sorted(got)}'
g = [got[i] for i in range(len(ref))]
err = max(abs(a - b) for a, b in zip(g, ref))
mag = max(abs(b) for b in ref)
cos = sum(a * b for a, b in zip(g, ref)) / math.sqrt(sum(a * a for a in g) * sum(b * b for b in ref))
print(f'$target vs PyTorch: max abs error {err:.3g} (max |ref| {mag:.3g}), cosine {cos:.9f}')
print('logits  ' + ' '.join(f'{v:.5f}' for v in g))
print('pytorch ' + ' '.join(f'{v:.5f}' for v in ref))
if not (err <= 1e-4 * max(1.0, mag) and cos >= 0.99999):
    sys.exit('FAIL: the firmware disagrees with PyTorch')
PY
