"""Fashion-MNIST as Debian's dataset-fashion-mnist ships it, and the two models' preprocessing.

One module for the training script (tools/export/train_fashion_mnist.py) and the accuracy harness
(tests/tools/check_accuracy.py), so the tensor PyTorch was evaluated on and the tensor vitcc is given
come from the same code. NumPy only (no torch), so the harness needs nothing else.

Files: /usr/share/datasets/fashion-mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz, gzip'd IDX:
  images: big-endian int32 magic 0x00000803, count, rows (28), cols (28), then count*28*28 uint8
          pixels, row-major, 0 = background (white in the original pictures is 0 here: ink is high);
  labels: big-endian int32 magic 0x00000801, count, then count uint8 labels 0..9.
60,000 training and 10,000 test images.
"""
import gzip
import os

import numpy as np

DATA_DIR = '/usr/share/datasets/fashion-mnist'
CLASSES = ('T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat',
           'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot')

# Mean and standard deviation of the 60,000 training images' pixels / 255 (0.28604, 0.35302), to
# four places; train_fashion_mnist.py checks them against the data.
MEAN = 0.2860
STD = 0.3530


def _read_idx(path, magic, dims):
    with gzip.open(path, 'rb') as f:
        raw = f.read()
    head = np.frombuffer(raw, dtype='>i4', count=1 + dims)
    if int(head[0]) != magic:
        raise ValueError(f'{path}: magic {int(head[0]):#010x}, expected {magic:#010x} (not an IDX file of this kind)')
    shape = tuple(int(v) for v in head[1:])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 * (1 + dims))
    if data.size != int(np.prod(shape)):
        raise ValueError(f'{path}: {data.size} bytes of data, the header says {shape}')
    return data.reshape(shape)


def load(split, data_dir=DATA_DIR):
    """(images uint8 [N, 28, 28], labels uint8 [N]) of split 'train' (60,000) or 'test' (10,000)."""
    stem = {'train': 'train', 'test': 't10k'}[split]
    images = _read_idx(os.path.join(data_dir, f'{stem}-images-idx3-ubyte.gz'), 0x803, 3)
    labels = _read_idx(os.path.join(data_dir, f'{stem}-labels-idx1-ubyte.gz'), 0x801, 1)
    if images.shape[1:] != (28, 28) or images.shape[0] != labels.shape[0]:
        raise ValueError(f'{data_dir}: {split} images {images.shape}, labels {labels.shape}')
    if labels.max() > 9:
        raise ValueError(f'{data_dir}: {split} label {int(labels.max())} out of 0..9')
    return images, labels


def bilinear_matrix(n_out, n_in):
    """[n_out, n_in] float32 matrix R such that R @ x resizes one axis as PyTorch's
    F.interpolate(mode='bilinear', align_corners=False, antialias=False) does: output pixel i samples
    the input at (i + 0.5) * n_in / n_out - 0.5, clamped at 0 and at n_in - 1, mixing its two
    neighbours linearly. A 2-D resize is R_h @ x @ R_w^T."""
    scale = n_in / n_out
    r = np.zeros((n_out, n_in), dtype=np.float64)
    for i in range(n_out):
        src = max((i + 0.5) * scale - 0.5, 0.0)
        i0 = min(int(src), n_in - 1)
        i1 = min(i0 + 1, n_in - 1)
        w1 = src - i0
        r[i, i0] += 1.0 - w1
        r[i, i1] += w1
    return r.astype(np.float32)


# Each model's input, from raw uint8 [N, 28, 28] images. Spelled out in each model's JSON too.
PREPROCESS = {
    'vit': dict(shape=[1, 28, 28], resize=None, channels=1, mean=MEAN, std=STD,
                steps='x = u8 / 255 (float32); x = (x - 0.2860) / 0.3530; shape [N, 1, 28, 28]'),
    'evit': dict(shape=[3, 64, 64], resize=[64, 64], channels=3, mean=MEAN, std=STD,
                 steps=('x = u8 / 255 (float32); x = R @ x @ R^T with R the 64x28 bilinear matrix '
                        '(PyTorch F.interpolate(size=64, mode="bilinear", align_corners=False, '
                        'antialias=False)); x = (x - 0.2860) / 0.3530; the one channel repeated '
                        '3 times; shape [N, 3, 64, 64]')),
}


def preprocess(kind, images_u8):
    """float32 [N, C, H, W] model input for uint8 [N, 28, 28] images; kind 'vit' or 'evit'."""
    p = PREPROCESS[kind]
    x = images_u8.astype(np.float32) / np.float32(255.0)
    if p['resize']:
        r = bilinear_matrix(p['resize'][0], 28)
        x = np.matmul(np.matmul(r, x), r.T)
    x = (x - np.float32(p['mean'])) / np.float32(p['std'])
    x = np.repeat(x[:, None], p['channels'], axis=1)
    return np.ascontiguousarray(x, dtype=np.float32)
