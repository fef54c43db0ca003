#!/usr/bin/python3
"""One Fashion-MNIST test image as the Cortex-M example's input, for the trained demo/fmnist_vit.

Usage:  /usr/bin/python3 examples/cortex-m7/fmnist_input.py OUT_DIR [INDEX]

Writes OUT_DIR/input.bin: test image INDEX (default 0) of Debian's dataset-fashion-mnist, preprocessed
as the model was trained (tools/export/fmnist_data.py preprocess('vit'): 1x1x28x28 float32), and prints
its label and the class PyTorch predicted for it (demo/fmnist_vit.top1.bin). NumPy only.
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, '..', '..')
sys.path.insert(0, os.path.join(ROOT, 'tools', 'export'))

import numpy as np  # noqa: E402

import fmnist_data  # noqa: E402


def main(argv):
    if len(argv) not in (1, 2):
        sys.exit(__doc__)
    out = argv[0]
    index = int(argv[1]) if len(argv) == 2 else 0
    images, labels = fmnist_data.load('test')
    if not 0 <= index < len(images):
        sys.exit(f'fmnist_input.py: index {index} outside the {len(images)} test images')
    x = fmnist_data.preprocess('vit', images[index:index + 1])
    if x.shape != (1, 1, 28, 28):
        sys.exit(f'fmnist_input.py: preprocess gave {x.shape}, expected (1, 1, 28, 28)')
    os.makedirs(out, exist_ok=True)
    x.astype('<f4').tofile(os.path.join(out, 'input.bin'))
    top1 = np.fromfile(os.path.join(ROOT, 'demo', 'fmnist_vit.top1.bin'), dtype=np.uint8)
    print(f'input: Fashion-MNIST test image {index}, label {labels[index]} '
          f'({fmnist_data.CLASSES[labels[index]]}), PyTorch predicts {top1[index]}')


if __name__ == '__main__':
    main(sys.argv[1:])
