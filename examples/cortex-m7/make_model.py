#!/usr/bin/python3
"""The tiny ViT of the Cortex-M7 example, its input and PyTorch's output for it.

Usage:  /usr/bin/python3 examples/cortex-m7/make_model.py OUT_DIR

Writes OUT_DIR/tiny_vit.onnx (timm layout: 32x32 RGB, patch 8, dim 64, depth 2, 2 heads, 10 classes,
seeded weights; opset 17), OUT_DIR/input.bin (1x3x32x32 float32, seeded) and OUT_DIR/reference.bin
(the 10 float32 logits PyTorch computes for it).
"""
import os
import sys
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', '..', 'tools', 'export'))

import torch  # noqa: E402

import timm_vit  # noqa: E402

SEED = 5
CONFIG = dict(img_size=32, patch_size=8, embed_dim=64, depth=2, num_heads=2, num_classes=10)


def main(argv):
    if len(argv) != 1:
        sys.exit(__doc__)
    out = argv[0]
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(SEED)
    model = timm_vit.make_model('vit_tiny_patch16_224', seed=SEED, **CONFIG)
    gen = torch.Generator().manual_seed(SEED + 1)
    x = torch.randn((1, 3, 32, 32), generator=gen, dtype=torch.float32)
    with torch.no_grad():
        y = model(x)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        torch.onnx.export(model, x, os.path.join(out, 'tiny_vit.onnx'), opset_version=17,
                          do_constant_folding=True, input_names=['input'], output_names=['output'])
    x.numpy().astype('<f4').tofile(os.path.join(out, 'input.bin'))
    y.numpy().astype('<f4').tofile(os.path.join(out, 'reference.bin'))
    print(f'wrote {out}/tiny_vit.onnx, input.bin, reference.bin (logits {y.shape[1]})')


if __name__ == '__main__':
    main(sys.argv[1:])
