#!/usr/bin/env bash
# Builds the Cortex-M7 example from scratch and runs it under QEMU, comparing its logits with
# PyTorch's: make_model.py (ONNX + input + reference) -> vitcc-pack --emit-c-array -> make
# (arm-none-eabi-g++, newlib-nano) -> section sizes -> qemu-system-arm -M mps2-an500 (semihosting).
# Usage: run_test.sh VITCC_PACK PYTHON OUT_DIR [m7|m4f]
#   m7   Cortex-M7 with its double-precision FPU (fpv5-d16), board mps2-an500 (the default)
#   m4f  Cortex-M4F, single-precision FPU only (fpv4-sp-d16), board mps2-an386
set -euo pipefail
pack=$1 python=$2 out=$3 target=${4:-m7}
case "$target" in
  m7) board=mps2-an500 cpu=cortex-m7 ;;
  m4f) board=mps2-an386 cpu=cortex-m4 ;;
  *) echo "run_test.sh: unknown target $target (m7 or m4f)" >&2; exit 2 ;;
esac
here=$(cd "$(dirname "$0")" && pwd)
fail() { echo "FAIL: $*" >&2; exit 1; }
for tool in arm-none-eabi-g++ qemu-system-arm; do
  command -v "$tool" >/dev/null || fail "$tool is not installed (bash tools/install-deps.sh)"
done
rm -rf "$out"; mkdir -p "$out/model"

"$python" "$here/make_model.py" "$out/model"
"$pack" "$out/model/tiny_vit.onnx" -o "$out/model" --name tiny_vit --emit-c-array --summary | grep -E "parameters|weights|workspace"
make --no-print-directory -C "$here" MODEL_DIR="$out/model" OUT="$out/build" TARGET="$target" all | tee "$out/build.log"

# The board: no operating system, semihosting for printf and exit; give up after 120 s.
# -icount shift=0: the virtual clock advances 1 ns per instruction, which makes the firmware's SysTick
# count (and so its "forward instructions" line) an instruction count.
log=$(timeout 120 qemu-system-arm -M "$board" -cpu "$cpu" -nographic -monitor none -serial none -icount shift=0 \
        -semihosting-config enable=on,target=native -kernel "$out/build/firmware.elf" 2>&1) \
  || fail "the firmware did not exit cleanly under QEMU; it said: $log"
echo "$log" | grep -v "^logit"
grep -q "^done" <<<"$log" || fail "no 'done' from the firmware"

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
