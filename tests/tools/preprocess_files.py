#!/usr/bin/python3
"""vitcc-run's image preprocessing against timm's eval transform on PIL + torchvision, on image files.

Usage: preprocess_files.py PREPROCESS_DUMP OUT_DIR

Writes camera-sized image files into OUT_DIR (generated here from Fashion-MNIST test images: tinted
mosaics over smooth colour gradients, with noise), then for every file and setting compares
  vitcc:     PREPROCESS_DUMP (tests/tools/preprocess_dump.cpp): stb_image decode, vitcc::preprocess,
             i.e. vitcc::run::read_input as vitcc-run calls it;
  reference: Image.open(f).convert('RGB'), then timm's transforms_imagenet_eval (crop_mode 'center')
             as written below with torchvision 0.14's transforms: scale = floor(size / crop_pct) per
             side; equal sides: Resize(scale, interpolation) (shorter side), else timm's
             ResizeKeepRatio(scale) (ratio = min(H / scale_h, W / scale_w), new side = round(side /
             ratio), and bilinear whatever the configured interpolation, as timm does); then
             CenterCrop(size), ToTensor, Normalize(mean, std).
The differences are measured in 8-bit levels of the pixels before normalisation (vitcc's value * std
+ mean, times 255, against the reference's uint8 pixels), plus the largest difference of the
normalised tensors themselves.

Bounds (measured on Pillow 9.4 / libjpeg-turbo 2.1 and stb_image 2.27; see BOUNDS):
  lossless files (PNG RGB/RGBA/grey/palette, PPM, PGM, a small PNG that is upscaled): the same
    uint8 pixels (max difference below 0.01 levels, i.e. float32 rounding of value * std + mean only)
    and the tensors within 1e-5 (measured: identical); vitcc reproduces Pillow's 8-bit resampling.
  JPEG (4:2:0 q90, 4:2:2 q90, 4:4:4 q95): stb_image and libjpeg-turbo decode differently (IDCT
    rounding, chroma upsampling), so the bound is a measured one, with modest margin: max 4 levels
    and mean 0.15 (4:2:0), 0.30 (4:2:2), 0.05 (4:4:4) levels.
Every case also checks the bound has teeth: the reference recomputed with the crop shifted one
pixel right and down, and with a different interpolation (bilinear <-> bicubic, nearest -> bilinear;
bicubic for the ResizeKeepRatio path, which timm always runs bilinear), must each FAIL the bound.

Exit 0 when every case is within its bound, 1 otherwise; 77 (CTest: skipped) when numpy, PIL, torch
or torchvision cannot be imported, or the Fashion-MNIST files are missing, unless
VITCC_REQUIRE_TORCHVISION=1, which makes that a failure.
"""
import math
import os
import subprocess
import sys
import time

REQUIRE = os.environ.get('VITCC_REQUIRE_TORCHVISION', '0') == '1'
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', '..', 'tools', 'export'))


def skip(msg):
    if REQUIRE:
        print(f'FAILED: {msg}; VITCC_REQUIRE_TORCHVISION=1 does not allow skipping it', file=sys.stderr)
        sys.exit(1)
    bar = '*' * 84
    print(f'{bar}\nSKIPPED: {msg}.\n{bar}', file=sys.stderr)
    sys.exit(77)


try:
    import numpy as np
    import torch
    from PIL import Image, JpegImagePlugin
    import torchvision
    from torchvision import transforms as T
    from torchvision.transforms import InterpolationMode
    import torchvision.transforms.functional as TF
except Exception as e:  # ImportError, or a broken install raising something else
    skip(f'preprocess_vs_torchvision needs numpy, PIL, torch and torchvision ({type(e).__name__}: {e}); '
         'bash tools/install-deps.sh installs python3-torchvision')

import fmnist_data  # noqa: E402  (tools/export; NumPy only)

MEAN = (0.485, 0.456, 0.406)  # timm IMAGENET_DEFAULT_MEAN, preprocess_dump's default
STD = (0.229, 0.224, 0.225)   # timm IMAGENET_DEFAULT_STD

# (input_h, input_w, interpolation, crop_pct). Square: torchvision Resize(shorter side); non-square
# (unequal scale sides): timm's ResizeKeepRatio, always bilinear.
SETTINGS = [
    (224, 224, 'bicubic', 0.875),
    (224, 224, 'bilinear', 0.875),
    (224, 224, 'nearest', 1.0),
    (224, 224, 'bicubic', 0.95),
    (192, 256, 'bicubic', 0.9),
    (256, 192, 'nearest', 0.875),
]

# Per file kind: (max abs difference, mean abs difference) in levels of the uint8 pixels before
# normalisation, and the largest normalised-tensor difference (None: not bounded separately).
# Lossless: measured 0 levels and a tensor difference of exactly 0 on every file and setting here.
# JPEG, measured worst over the settings here (stb_image 2.27 vs Pillow 9.4 on libjpeg-turbo 2.1.5):
#   4:2:0 q90: max 3 levels, mean 0.087;  4:2:2 q90: max 3, mean 0.154;  4:4:4 q95: max 2, mean 0.022.
# The decoded pixels themselves (no resize) differ by at most 3 levels for 4:2:0 and 4:4:4 over 36
# probe images (q75-100), mean 0.07-0.08 (4:2:0) and 0.014-0.020 (4:4:4); 4:2:2 decodes also differ by
# up to 59-101 levels at ~0.05% of pixels (isolated chroma, at columns 14 mod 16), which the
# downscales here average below 3 levels. Bounds: max 4 (one level over any measured decode
# difference); mean about twice the measured worst. The teeth checks show what they catch: a
# one-pixel crop shift (mean >= 4.5 levels) or a swapped interpolation (mean >= 0.6) fails them all.
BOUNDS = {
    'lossless': (0.01, 0.001, 1e-5),
    'jpeg420': (4.0, 0.15, None),
    'jpeg422': (4.0, 0.30, None),
    'jpeg444': (4.0, 0.05, None),
}


def mosaic(fm, h, w, rng, scale):
    """[h, w, 3] uint8: Fashion-MNIST items (each 28*scale pixels square, nearest-upscaled, so the edges
    stay hard) in per-tile tints over a smooth colour gradient, plus Gaussian noise."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    yy /= h
    xx /= w
    bg = np.empty((h, w, 3))
    for c in range(3):
        fx, fy, ph = rng.uniform(0.3, 1.5), rng.uniform(0.3, 1.5), rng.uniform(0, 2 * math.pi)
        bg[..., c] = 128 + 90 * np.sin(2 * math.pi * (fx * xx + fy * yy) + ph) * (0.6 + 0.4 * yy)
    tile = 28 * scale
    oy, ox = (int(v) for v in rng.integers(0, tile, 2))  # tiles not aligned with the image's edges
    rows, cols = -(-(h + oy) // tile), -(-(w + ox) // tile)
    items = fm[rng.integers(0, len(fm), rows * cols)].reshape(rows, cols, 28, 28)
    ink = items.transpose(0, 2, 1, 3).reshape(rows * 28, cols * 28)
    ink = np.repeat(np.repeat(ink, scale, 0), scale, 1)[oy:oy + h, ox:ox + w].astype(np.float64) / 255
    tints = rng.uniform(0, 255, (rows, cols, 3))
    tints = np.repeat(np.repeat(tints, tile, 0), tile, 1)[oy:oy + h, ox:ox + w]
    img = bg * (1 - ink[..., None]) + tints * ink[..., None] + rng.normal(0, 6, (h, w, 3))
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def write_images(out_dir, fm):
    """The test files: [(name, kind)], kind 'lossless', 'jpeg420' or 'jpeg444'."""
    rng = np.random.default_rng(20240611)
    files = []

    def save(name, img, kind, **kw):
        img.save(os.path.join(out_dir, name), **kw)
        files.append((name, kind))

    save('rgb_640x480.png', Image.fromarray(mosaic(fm, 480, 640, rng, 2), 'RGB'), 'lossless')
    rgb = mosaic(fm, 375, 500, rng, 2)
    alpha = mosaic(fm, 375, 500, rng, 3)[..., 1]  # varying alpha, with edges of its own
    save('rgba_500x375.png', Image.fromarray(np.dstack([rgb, alpha]), 'RGBA'), 'lossless')
    grey = Image.fromarray(mosaic(fm, 500, 333, rng, 2), 'RGB').convert('L')
    save('grey_333x500.png', grey, 'lossless')
    pal = Image.fromarray(mosaic(fm, 300, 400, rng, 1), 'RGB').quantize(colors=256)
    save('palette_400x300.png', pal, 'lossless')
    save('rgb_800x600.ppm', Image.fromarray(mosaic(fm, 600, 800, rng, 3), 'RGB'), 'lossless')
    save('grey_300x400.pgm', Image.fromarray(mosaic(fm, 400, 300, rng, 2), 'RGB').convert('L'), 'lossless')
    save('small_150x100.png', Image.fromarray(mosaic(fm, 100, 150, rng, 1), 'RGB'), 'lossless')
    save('rgb_1280x720_q90_420.jpg', Image.fromarray(mosaic(fm, 720, 1280, rng, 4), 'RGB'), 'jpeg420',
         quality=90, subsampling=2)
    save('rgb_600x800_q95_444.jpg', Image.fromarray(mosaic(fm, 800, 600, rng, 3), 'RGB'), 'jpeg444',
         quality=95, subsampling=0)
    save('rgb_1024x768_q90_422.jpg', Image.fromarray(mosaic(fm, 768, 1024, rng, 3), 'RGB'), 'jpeg422',
         quality=90, subsampling=1)

    # The files are what they claim to be.
    want = {'.png': 'PNG', '.ppm': 'PPM', '.pgm': 'PPM', '.jpg': 'JPEG'}
    for name, kind in files:
        with Image.open(os.path.join(out_dir, name)) as im:
            assert im.format == want[os.path.splitext(name)[1]], (name, im.format)
            if kind != 'lossless':
                sampling = JpegImagePlugin.get_sampling(im)
                assert sampling == {'jpeg420': 2, 'jpeg422': 1, 'jpeg444': 0}[kind], (name, sampling)
    return files


MODES = {'bicubic': InterpolationMode.BICUBIC, 'bilinear': InterpolationMode.BILINEAR,
         'nearest': InterpolationMode.NEAREST}


def reference_resized(path, h, w, interp, crop_pct, keep_ratio_interp='bilinear'):
    """The image after timm's resize step (PIL), before the centre crop."""
    with Image.open(path) as im:
        img = im.convert('RGB')
    scale_h, scale_w = math.floor(h / crop_pct), math.floor(w / crop_pct)
    if scale_h == scale_w:
        return T.Resize(scale_h, interpolation=MODES[interp])(img)
    ratio = min(img.height / scale_h, img.width / scale_w)  # ResizeKeepRatio, longest = 0
    size = [round(img.height / ratio), round(img.width / ratio)]
    return TF.resize(img, size, MODES[keep_ratio_interp])


def reference(path, h, w, interp, crop_pct, shift=0, keep_ratio_interp='bilinear'):
    """(uint8 pixels [h, w, 3], float32 tensor [3, h, w]); shift moves the crop (for the teeth check)."""
    img = reference_resized(path, h, w, interp, crop_pct, keep_ratio_interp)
    if shift == 0:
        img = T.CenterCrop((h, w))(img)
    else:
        top, left = int(round((img.height - h) / 2.0)) + shift, int(round((img.width - w) / 2.0)) + shift
        img = TF.crop(img, top, left, h, w)
    pixels = np.asarray(img, dtype=np.uint8).copy()
    tensor = T.Normalize(MEAN, STD)(T.ToTensor()(img))
    return pixels, tensor.numpy()


def vitcc(dump, path, npy, h, w, interp, crop_pct):
    r = subprocess.run([dump, path, npy, str(h), str(w), interp, repr(crop_pct)], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f'preprocess_dump failed ({r.returncode}) on {path}: {r.stderr.strip()}')
    t = np.load(npy)
    os.remove(npy)
    if t.shape != (1, 3, h, w) or t.dtype != np.float32:
        raise RuntimeError(f'{npy}: shape {t.shape} dtype {t.dtype}, expected (1, 3, {h}, {w}) float32')
    return t[0]


def levels(t):
    """Pre-normalisation pixels in levels [h, w, 3] from a normalised [3, h, w] tensor."""
    m = np.array(MEAN).reshape(3, 1, 1)
    s = np.array(STD).reshape(3, 1, 1)
    return ((t.astype(np.float64) * s + m) * 255.0).transpose(1, 2, 0)


def compare(lv, pixels):
    d = np.abs(lv - pixels.astype(np.float64))
    return float(d.max()), float(d.mean()), int(np.count_nonzero(np.rint(d) > 0))


def within(kind, mx, mean, tdiff):
    bmax, bmean, btensor = BOUNDS[kind]
    return mx <= bmax and mean <= bmean and (btensor is None or tdiff is None or tdiff <= btensor)


def main():
    if len(sys.argv) != 3:
        print(__doc__.split('\n\n')[1], file=sys.stderr)
        return 2
    dump, out_dir = sys.argv[1], sys.argv[2]
    t0 = time.time()
    try:
        fm, _ = fmnist_data.load('test')
    except FileNotFoundError as e:
        skip(f'preprocess_vs_torchvision needs the Fashion-MNIST test images ({e}); '
             'bash tools/install-deps.sh installs dataset-fashion-mnist')
    os.makedirs(out_dir, exist_ok=True)
    files = write_images(out_dir, fm)
    print(f'preprocess_vs_torchvision: torchvision {torchvision.__version__}, Pillow {Image.__version__}, '
          f'torch {torch.__version__}; {len(files)} files in {out_dir}')
    print('bounds (levels = uint8 pixels before normalisation; tensor = normalised float32):')
    for kind, (bmax, bmean, btensor) in BOUNDS.items():
        print(f'  {kind:8s}  max <= {bmax:g}, mean <= {bmean:g}' + (f', tensor <= {btensor:g}' if btensor else ''))
    print()
    head = (f'{"file":26s} {"setting":27s} {"max":>7s} {"mean":>8s} {"px!=":>6s} {"tensor":>9s} '
            f'{"bound":>12s} {"ok":3s} {"crop+1 max/mean":>16s} {"interp max/mean":>16s} teeth')
    print(head)
    print('-' * len(head))
    failures = 0
    worst = {}
    npy = os.path.join(out_dir, 'vitcc.npy')
    for name, kind in files:
        path = os.path.join(out_dir, name)
        for h, w, interp, crop_pct in SETTINGS:
            got = vitcc(dump, path, npy, h, w, interp, crop_pct)
            pixels, tensor = reference(path, h, w, interp, crop_pct)
            lv = levels(got)
            mx, mean, ndiff = compare(lv, pixels)
            tdiff = float(np.abs(got - tensor).max())
            ok = within(kind, mx, mean, tdiff)
            # Teeth: a one-pixel crop shift and another interpolation must each fail the bound.
            keep_ratio = math.floor(h / crop_pct) != math.floor(w / crop_pct)
            if keep_ratio:
                wrong = dict(keep_ratio_interp='bicubic')
            else:
                wrong = dict(interp={'bicubic': 'bilinear', 'bilinear': 'bicubic', 'nearest': 'bilinear'}[interp])
            args = dict(h=h, w=w, interp=interp, crop_pct=crop_pct)
            sh_max, sh_mean, _ = compare(lv, reference(path, **args, shift=1)[0])
            wi_max, wi_mean, _ = compare(lv, reference(path, **{**args, **wrong})[0])
            teeth = not within(kind, sh_max, sh_mean, None) and not within(kind, wi_max, wi_mean, None)
            failures += (not ok) + (not teeth)
            bmax, bmean, _ = BOUNDS[kind]
            setting = f'{h}x{w} {interp} {crop_pct:g}' + (' (KR)' if keep_ratio else '')
            print(f'{name:26s} {setting:27s} {mx:7.3f} {mean:8.4f} {ndiff:6d} {tdiff:9.2e} '
                  f'{f"{bmax:g}/{bmean:g}":>12s} {"ok" if ok else "FAIL":3s} '
                  f'{f"{sh_max:.0f}/{sh_mean:.2f}":>16s} {f"{wi_max:.0f}/{wi_mean:.2f}":>16s} '
                  f'{"ok" if teeth else "FAIL"}')
            wk = worst.setdefault(kind, [0.0, 0.0, 0.0])
            wk[0], wk[1], wk[2] = max(wk[0], mx), max(wk[1], mean), max(wk[2], tdiff)
    print()
    for kind, (mx, mean, tdiff) in worst.items():
        print(f'worst {kind:8s}: max {mx:.4f} levels, mean {mean:.4f} levels, tensor {tdiff:.2e}')
    print('(KR: timm ResizeKeepRatio path, bilinear whatever the setting; teeth: the reference with the crop '
          'shifted by one pixel, and with another interpolation, both fail the bound)')
    print(f'{time.time() - t0:.1f} s')
    if failures:
        print(f'FAILED: {failures} check(s) out of bounds', file=sys.stderr)
        return 1
    print('preprocess_vs_torchvision: all within bounds')
    return 0


if __name__ == '__main__':
    sys.exit(main())
