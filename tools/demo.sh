#!/usr/bin/env bash
# The main job on the bundled model: pack demo/demo.onnx, run it natively on the bundled picture
# and on the bundled tensor, and compare with the PyTorch output stored beside it. Then the bundled
# Fashion-MNIST models' test top-1 at fp32, bf16 and int8 next to PyTorch's (the first run compiles
# six runners and writes the preprocessed test set under $build/fmnist/data; later runs reuse both).
set -euo pipefail
build=${1:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
out="$build/demo"
export VITCC_CACHE_DIR=${VITCC_CACHE_DIR:-$build/runner-cache}

echo "== vitcc-pack demo/demo.onnx"
"$build/bin/vitcc-pack" "$root/demo/demo.onnx" -o "$out" --name demo --summary \
  --crop-pct 1.0
echo
echo "== vitcc-run on demo/input.png (preprocessed as demo.json says)"
"$build/bin/vitcc-run" "$out/demo.json" --input "$root/demo/input.png" --output "$out/png_logits.npy" --repeat 20
echo
echo "== vitcc-run on demo/input.bin, compared with PyTorch's output (demo/reference.bin)"
"$build/bin/vitcc-run" "$out/demo.json" --input "$root/demo/input.bin" --output "$out/logits.bin" \
  --reference "$root/demo/reference.bin"
echo
echo "== The bundled Fashion-MNIST models on the 10,000 test images: PyTorch's top-1 (demo/*.meta.json)"
echo "   next to vitcc's at each weight precision (the accuracy test, tests/tools/check_accuracy.py, asserts the bounds)"
"${VITCC_PYTHON:-/usr/bin/python3}" "$root/tests/tools/check_accuracy.py" "$build/bin/vitcc-pack" "$build/bin/vitcc-run" \
  "$root" "$out/fmnist" --data-dir "$build/fmnist/data" --report-only
