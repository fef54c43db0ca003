#!/usr/bin/python3
"""Build the small bundled vitcc demo model.

Usage:  /usr/bin/python3 tools/export/make_demo.py DEMO_DIR      (normally: demo)

Writes into DEMO_DIR:
    demo.onnx      timm-layout ViT (config 'vit_demo' in timm_vit.py), opset 17
    input.png      96x96 RGB synthetic picture (the demo's test image)
    input.bin      1x3x96x96 float32 little-endian NCHW = normalize(input.png)
    reference.bin  1x10 float32 little-endian PyTorch logits for input.bin
    meta.json      same schema as the test fixtures' meta.json
    README.md      how the files were produced
    evit_demo.onnx, evit_reference.bin
                   a tiny EfficientViT-M layout on input.bin (timm form of the mirror, 96x96, windows of 4x4 on
                   a padded 6x6 map in stage 0), for the tests that compile a model in

Everything is seeded, and re-running produces byte-identical files (the
script checks this by exporting twice).
"""
import json
import os
import struct
import sys
import tempfile
import warnings
import zlib
from collections import OrderedDict

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402
import torch  # noqa: E402

import timm_efficientvit  # noqa: E402
import timm_vit  # noqa: E402

MODEL = 'vit_demo'
SEED = 20240611
OPSET = 17


# ---------------------------------------------------------------------------
# Synthetic picture + PNG writer
# ---------------------------------------------------------------------------
def synth_picture(h: int, w: int) -> np.ndarray:
    """A colourful deterministic landscape: sky, sun, hills, a house, a tree."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    u, v = xx / (w - 1), yy / (h - 1)
    img = np.zeros((h, w, 3), dtype=np.float64)
    # sky: blue -> orange towards the horizon
    img[..., 0] = 0.25 + 0.70 * v
    img[..., 1] = 0.45 + 0.30 * v
    img[..., 2] = 0.95 - 0.45 * v
    # sun with soft glow
    d = np.hypot(u - 0.75, v - 0.25)
    glow = np.clip(1.0 - d / 0.35, 0, 1) ** 2
    img += glow[..., None] * np.array([0.5, 0.35, 0.0])
    img[d < 0.09] = (1.0, 0.92, 0.35)
    # far hills (blue-green) and near hills (green), sinusoidal ridge lines
    ridge1 = 0.55 + 0.06 * np.sin(2 * np.pi * (1.3 * u + 0.1)) + 0.03 * np.sin(2 * np.pi * 4.1 * u)
    ridge2 = 0.70 + 0.05 * np.sin(2 * np.pi * (0.8 * u + 0.6)) + 0.02 * np.sin(2 * np.pi * 6.3 * u)
    far = v > ridge1
    img[far] = np.stack([0.20 + 0.1 * u, 0.45 + 0.1 * v, 0.45 - 0.1 * u], -1)[far]
    near = v > ridge2
    stripes = 0.06 * np.sin(2 * np.pi * (10 * u + 25 * v))
    img[near] = np.stack([0.25 + stripes, 0.62 - 0.25 * (v - 0.7) + stripes, 0.18 + 0 * u], -1)[near]
    # house: red walls, dark roof, yellow window
    x0, x1, y0, y1 = 0.12, 0.38, 0.62, 0.86
    wall = (u > x0) & (u < x1) & (v > y0) & (v < y1)
    img[wall] = (0.80, 0.22, 0.18)
    roof = (v <= y0) & (v > y0 - 0.16) & (np.abs(u - (x0 + x1) / 2) < (v - (y0 - 0.16)) * 1.0)
    img[roof] = (0.30, 0.12, 0.10)
    win = (u > 0.18) & (u < 0.26) & (v > 0.68) & (v < 0.76)
    img[win] = (1.0, 0.90, 0.30)
    door = (u > 0.29) & (u < 0.34) & (v > 0.74) & (v < y1)
    img[door] = (0.35, 0.20, 0.08)
    # tree: trunk + round crown
    trunk = (u > 0.55) & (u < 0.59) & (v > 0.66) & (v < 0.84)
    img[trunk] = (0.40, 0.25, 0.10)
    crown = np.hypot(u - 0.57, (v - 0.60) * 1.1) < 0.10
    img[crown] = np.stack([0.10 + 0.1 * u, 0.50 + 0.2 * np.sin(40 * u) * np.sin(40 * v), 0.12 + 0 * u],
                          -1)[crown]
    # mild deterministic texture
    rng = np.random.RandomState(SEED)
    img += rng.normal(0, 0.015, img.shape)
    return (np.clip(img, 0, 1) * 255.0 + 0.5).astype(np.uint8)


def write_png(path: str, rgb: np.ndarray) -> None:
    """Minimal deterministic 8-bit RGB PNG writer (filter 0, zlib level 9)."""
    h, w, c = rgb.shape
    assert c == 3 and rgb.dtype == np.uint8
    raw = b''.join(b'\x00' + rgb[y].tobytes() for y in range(h))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack('>I', len(data)) + tag + data + struct.pack('>I', zlib.crc32(tag + data) & 0xffffffff)

    png = b'\x89PNG\r\n\x1a\n'
    png += chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 8, 2, 0, 0, 0))
    png += chunk(b'IDAT', zlib.compress(raw, 9))
    png += chunk(b'IEND', b'')
    with open(path, 'wb') as f:
        f.write(png)


def read_png_rgb(path: str) -> np.ndarray:
    """Decode the PNG we wrote (8-bit RGB, filter 0) -- used as a self-check."""
    with open(path, 'rb') as f:
        data = f.read()
    assert data[:8] == b'\x89PNG\r\n\x1a\n'
    pos, idat, w, h = 8, b'', 0, 0
    while pos < len(data):
        ln, = struct.unpack('>I', data[pos:pos + 4])
        tag = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + ln]
        if tag == b'IHDR':
            w, h = struct.unpack('>II', body[:8])
        elif tag == b'IDAT':
            idat += body
        pos += 12 + ln
    raw = np.frombuffer(zlib.decompress(idat), dtype=np.uint8).reshape(h, 1 + 3 * w)
    assert (raw[:, 0] == 0).all()
    return raw[:, 1:].reshape(h, w, 3)


# ---------------------------------------------------------------------------
def _write_atomic(path: str, data: bytes) -> None:
    d = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix='.' + os.path.basename(path) + '.', dir=d)
    with os.fdopen(fd, 'wb') as f:
        f.write(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def export_bytes(model, x) -> bytes:
    with tempfile.TemporaryDirectory() as td:
        p = os.path.join(td, 'demo.onnx')
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            torch.onnx.export(model, x, p, opset_version=OPSET, do_constant_folding=True,
                              input_names=['input'], output_names=['output'])
        with open(p, 'rb') as f:
            return f.read()


EVIT_SEED = 20261129


def make_evit_demo(out: str, x: torch.Tensor) -> None:
    """The EfficientViT counterpart of demo.onnx: small enough to commit (~0.2 MB), with every part
    of the family (windowed and whole-map attention, window padding, patch merging with
    squeeze-excite, per-head q kernels of two sizes, the BatchNorm1d head), weights seeded at
    realistic scales and BatchNorm statistics calibrated as in the fixtures."""
    torch.manual_seed(EVIT_SEED)
    model = timm_efficientvit.EfficientViTMSRA(
        img_size=96, num_classes=10, embed_dim=(16, 32, 48), key_dim=(8, 8, 8), depth=(1, 1, 1),
        num_heads=(2, 2, 3), window_size=(4, 4, 4), kernels=(5, 3, 3, 3), form='timm')
    gen = torch.Generator().manual_seed(EVIT_SEED)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith('attention_biases'):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
            elif '.bn.' in name or name.startswith('head.bn'):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1 + (0.5 if name.endswith('weight') else 0.0))
            elif name.endswith('bias'):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
            else:
                p.copy_(torch.randn(p.shape, generator=gen) / float(p[0].numel()) ** 0.5)
        timm_efficientvit.calibrate_batchnorm_(model, (timm_vit.make_image(EVIT_SEED + k, 4, 96, 96) for k in range(3)))
        y = model(x)
    onnx_bytes = export_bytes(model, x)
    _write_atomic(os.path.join(out, 'evit_demo.onnx'), onnx_bytes)
    _write_atomic(os.path.join(out, 'evit_reference.bin'), y.numpy().astype('<f4').tobytes())


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print(__doc__)
        return 2
    out = os.path.abspath(argv[0])
    os.makedirs(out, exist_ok=True)

    model = timm_vit.make_model(MODEL, seed=SEED)
    h, w = model.patch_embed.img_size
    cfg = timm_vit.MODEL_CONFIGS[MODEL]

    # Picture -> PNG; the float input is derived from the PNG's 8-bit pixels.
    png_path = os.path.join(out, 'input.png')
    pic = synth_picture(h, w)
    write_png(png_path + '.tmp', pic)
    os.replace(png_path + '.tmp', png_path)
    assert np.array_equal(read_png_rgb(png_path), pic)
    x = torch.from_numpy(pic.astype(np.float32) / 255.0).permute(2, 0, 1).unsqueeze(0)
    mean = torch.tensor(timm_vit.IMAGENET_MEAN, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(timm_vit.IMAGENET_STD, dtype=torch.float32).view(1, 3, 1, 1)
    x = ((x - mean) / std).contiguous()

    stats = timm_vit.sanity_check(model, x, MODEL)
    if not stats['ok']:
        raise SystemExit('demo model is degenerate')
    with torch.no_grad():
        y = model(x)

    onnx_bytes = export_bytes(model, x)
    if export_bytes(model, x) != onnx_bytes:
        print('warning: torch.onnx.export is not byte-deterministic here', file=sys.stderr)
    _write_atomic(os.path.join(out, 'demo.onnx'), onnx_bytes)
    _write_atomic(os.path.join(out, 'input.bin'), x.numpy().astype('<f4').tobytes())
    _write_atomic(os.path.join(out, 'reference.bin'), y.numpy().astype('<f4').tobytes())

    logits = y[0].tolist()
    top = sorted(range(len(logits)), key=lambda i: -logits[i])[:3]
    meta = OrderedDict([
        ('name', 'vitcc_demo'), ('family', 'timm'), ('opset', OPSET), ('constant_folding', True),
        ('dynamic_batch', False), ('batch', 1), ('input_shape', list(x.shape)),
        ('output_shape', list(y.shape)),
        ('description', f"bundled demo: timm-layout ViT img {h}x{w} patch {cfg['patch_size']} "
                        f"dim {cfg['embed_dim']} depth {cfg['depth']} heads {cfg['num_heads']} "
                        f"LayerScale, {cfg['num_classes']} classes, random seeded weights"),
    ])
    _write_atomic(os.path.join(out, 'meta.json'), (json.dumps(meta, indent=2) + '\n').encode())

    n_params = sum(p.numel() for p in model.parameters())
    readme = f"""# vitcc demo model

Files in this folder (except `fmnist_*`, see the table) are generated by

    /usr/bin/python3 tools/export/make_demo.py demo

(Debian python3-torch {torch.__version__.split('a')[0]}, deterministic: re-running reproduces the same bytes).

| file | content |
|------|---------|
| `demo.onnx` | ViT exported with `torch.onnx.export(..., opset_version={OPSET}, do_constant_folding=True, input_names=["input"], output_names=["output"])`, static batch 1, {len(onnx_bytes) / 1e6:.2f} MB |
| `input.png` | {w}x{h} RGB synthetic landscape picture (drawn with NumPy, written by a small zlib PNG writer) |
| `input.bin` | 1x3x{h}x{w} float32, little-endian, NCHW: the preprocessed `input.png` |
| `reference.bin` | 1x{cfg['num_classes']} float32 little-endian PyTorch logits for `input.bin` |
| `meta.json` | shapes and export settings (same schema as the test fixtures) |
| `evit_demo.onnx`, `evit_reference.bin` | a tiny EfficientViT-M (timm layout, 96x96, embed 16/32/48, heads 2/2/3, windows 4x4), and PyTorch's 10 logits for `input.bin`; the tests compile it in (`test_evit_model`, `test_evit_no_exceptions`) |
| `fmnist_vit.*`, `fmnist_evit.*` | not made by this script: two models trained on Fashion-MNIST by `tools/export/train_fashion_mnist.py` (a 28x28x1 ViT and a 64x64x3 EfficientViT-M0 structure at 5/8 width); `.onnx`, `.top1.bin` (PyTorch's predicted class for each of the 10,000 test images, uint8) and `.meta.json` (PyTorch's test top-1, preprocessing, training settings and times). `make demo` and the `fmnist_accuracy` test run them at fp32, bf16 and int8 |

## Model

A timm `VisionTransformer` layout (state_dict names as in timm; see
`tools/export/timm_vit.py`, config `{MODEL}`): image {h}x{w}, patch {cfg['patch_size']}
({(h // cfg['patch_size']) * (w // cfg['patch_size'])} patches + class token), embed dim {cfg['embed_dim']},
depth {cfg['depth']}, {cfg['num_heads']} heads, MLP ratio 4, exact-erf GELU, LayerNorm eps 1e-6,
LayerScale in every block, class-token pooling, final LayerNorm, linear head with
{cfg['num_classes']} classes; {n_params:,} parameters.  Weights are random (seed {SEED}) at
realistic magnitudes (not trained), so the class indices carry no meaning.
At opset 17, torch exports the LayerNorms as fused `LayerNormalization`
and GELU as `Div/Erf/Add/Mul/Mul`.

## Preprocessing

    x = png_rgb_uint8 / 255.0                      # HWC, [0, 1]
    x = (x - mean) / std   per channel             # mean = {list(timm_vit.IMAGENET_MEAN)}
                                                   # std  = {list(timm_vit.IMAGENET_STD)}
    x = x.transpose(2, 0, 1)[None]                 # 1x3x{h}x{w}, float32

(ImageNet mean/std; the picture already has the model's input size, so there is
no resize or crop.)

## Expected output

Top-3 classes for `input.png`: {', '.join(f'{i} ({logits[i]:.4f})' for i in top)}.
The full logits are in `reference.bin`.
"""
    _write_atomic(os.path.join(out, 'README.md'), readme.encode())
    make_evit_demo(out, x)
    for fn in ('demo.onnx', 'input.png', 'input.bin', 'reference.bin', 'meta.json', 'README.md', 'evit_demo.onnx',
               'evit_reference.bin'):
        print(f"  {fn:14s} {os.path.getsize(os.path.join(out, fn)):>9d} bytes")
    print(f"top-3: {top}")
    return 0


if __name__ == '__main__':
    sys.exit(main())
