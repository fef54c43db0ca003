"""The Python binding (python/vitcc) against PyTorch, on the same weights and inputs.

    test_binding.py VITCC_PACK VITCC_RUN SOURCE_DIR WORK_DIR   (PYTHONPATH: the build's python/ folder)

For a timm-style ViT and an EfficientViT (the repository's mirrors of timm's modules, random
weights at realistic scales): export to ONNX, pack, vitcc.load(), and hold a batch's outputs to
the PyTorch module's with the project's parity bound (max abs error <= 1e-4 x max(1, max|ref|),
cosine >= 0.99999, per image). Also: the same bits at 1 and 2 threads, model.preprocess() against
torchvision's eval pipeline as timm composes it, and the errors a user meets (wrong shape or dtype,
missing files, a blob that is not the model's, a target that cannot be a shared library).
"""
import math
import os
import shutil
import stat
import subprocess
import sys
import threading
import warnings

import numpy as np
import torch

PACK, RUN, SOURCE, WORK = sys.argv[1:5]
sys.path.insert(0, os.path.join(SOURCE, 'tools', 'export'))
import timm_efficientvit  # noqa: E402  (the repository's mirrors of timm's modules)
import timm_vit  # noqa: E402

import vitcc  # noqa: E402

failures = []


def check(ok, what):
    print(('ok    ' if ok else 'FAIL  ') + what)
    if not ok:
        failures.append(what)


def parity(got, ref, what):
    got = np.asarray(got, dtype=np.float64).reshape(ref.shape[0], -1)
    ref = np.asarray(ref, dtype=np.float64).reshape(ref.shape[0], -1)
    for i in range(ref.shape[0]):
        err = np.abs(got[i] - ref[i]).max()
        bound = 1e-4 * max(1.0, np.abs(ref[i]).max())
        cos = float(got[i] @ ref[i] / (np.linalg.norm(got[i]) * np.linalg.norm(ref[i])))
        check(err <= bound and cos >= 0.99999,
              '%s image %d: max abs err %.3g (bound %.3g), cosine %.8f' % (what, i, err, bound, cos))


def expect_error(kind, needle, fn, what):
    try:
        fn()
    except kind as e:
        check(needle in str(e), '%s: %s("%s")' % (what, kind.__name__, str(e)[:160]))
        return
    except Exception as e:  # noqa: BLE001 - the wrong kind is the failure reported
        check(False, '%s: expected %s, got %s: %s' % (what, kind.__name__, type(e).__name__, e))
        return
    check(False, '%s: expected %s, nothing raised' % (what, kind.__name__))


def pack(model, x, name, extra=()):
    onnx_path = os.path.join(WORK, name + '.onnx')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        torch.onnx.export(model, x[:1], onnx_path, opset_version=17, input_names=['input'],
                          output_names=['output'])
    out = os.path.join(WORK, name)
    r = subprocess.run([PACK, onnx_path, '-o', out] + list(extra), capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit('vitcc-pack %s failed: %s' % (name, r.stderr))
    return os.path.join(out, name + '.json')


def torchvision_eval(frame, pp):
    """timm's eval transform for a square input: Resize(floor(size / crop_pct)) on the shorter side,
    CenterCrop(size), ToTensor, Normalize; PIL resampling."""
    from PIL import Image
    from torchvision import transforms
    modes = {'bicubic': transforms.InterpolationMode.BICUBIC, 'bilinear': transforms.InterpolationMode.BILINEAR,
             'nearest': transforms.InterpolationMode.NEAREST}
    size = pp['input_size'][1]
    assert pp['input_size'][1] == pp['input_size'][2]
    t = transforms.Compose([
        transforms.Resize(math.floor(size / pp['crop_pct']), interpolation=modes[pp['interpolation']]),
        transforms.CenterCrop(size), transforms.ToTensor(),
        transforms.Normalize(pp['mean'], pp['std'])])
    return t(Image.fromarray(frame[:, :, :3])).numpy()


def main():
    if os.path.isdir(WORK):
        shutil.rmtree(WORK)
    os.makedirs(WORK)
    os.environ['VITCC_CACHE_DIR'] = os.path.join(WORK, 'cache')
    torch.manual_seed(0)

    # -- a timm ViT: class token, 2 blocks, 64x64 input, 11 classes
    vit = timm_vit.VisionTransformer(img_size=64, patch_size=16, embed_dim=96, depth=2, num_heads=3,
                                     num_classes=11)
    timm_vit.realistic_init_(vit, 7)
    vit.eval()
    x = timm_vit.make_image(11, batch=3, height=64, width=64)
    with torch.no_grad():
        ref = vit(x).numpy()
    cfg = pack(vit, x, 'vit_small_test')
    m2 = vitcc.load(cfg, threads=2)
    print(m2)
    check(m2.input_shape == (3, 64, 64) and m2.output_shape == (11,) and m2.threads == 2, 'shapes and threads')
    y2 = m2(x.numpy())
    check(y2.shape == (3, 11) and y2.dtype == np.float32, 'output (3, 11) float32')
    parity(y2, ref, 'ViT vs PyTorch')
    m1 = vitcc.load(cfg, threads=1)
    check(np.array_equal(m1(x.numpy()), y2), 'the same bits at 1 and 2 threads')
    check(np.array_equal(m1(x.numpy()[1:2]), y2[1:2]), 'one image alone: the same bits as in the batch')
    check(np.array_equal(m1(x.numpy().astype(np.float64)), y2), 'float64 input is converted to float32')
    xt = np.asfortranarray(x.numpy())
    check(np.array_equal(m1(xt), y2), 'a non-contiguous array is copied, not misread')
    check(m1(np.zeros((0, 3, 64, 64), np.float32)).shape == (0, 11), 'an empty batch gives (0, 11)')
    # Two Python threads on one model (the GIL is released during forward; the model serialises them).
    results = [None] * 4
    def worker(i):
        results[i] = [m2(x.numpy()) for _ in range(3)]
    ts = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    check(all(all(np.array_equal(r, y2) for r in rs) for rs in results),
          'four Python threads calling one model at once: every result the same bits')

    # preprocess: the library's resize-crop-normalise against torchvision's, then the whole path
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:150, 0:200]
    frame = np.stack([(xx * 255 // 199), (yy * 255 // 149), ((xx + yy) * 3) % 256], -1).astype(np.float64)
    frame = np.clip(frame + rng.normal(0, 12, frame.shape), 0, 255).astype(np.uint8)
    pp = m1.preprocessing
    want = torchvision_eval(frame, pp)
    got = m1.preprocess(frame)
    check(got.shape == (3, 64, 64) and np.abs(got - want).max() <= 1e-5,
          'preprocess (%s, crop_pct %s) vs torchvision: max abs diff %.3g (bound 1e-5)'
          % (pp['interpolation'], pp['crop_pct'], np.abs(got - want).max()))
    rgba = np.concatenate([frame, rng.integers(0, 256, frame.shape[:2] + (1,), dtype=np.uint8)], -1)
    check(np.array_equal(m1.preprocess(rgba), got), 'RGBA frame: alpha ignored')
    with torch.no_grad():
        ref_pp = vit(torch.from_numpy(want)[None]).numpy()
    parity(m1(got[None]), ref_pp, 'frame -> preprocess -> ViT vs torchvision -> PyTorch')

    # -- an EfficientViT (timm's EfficientVitMsra form), 96x96, BatchNorm statistics calibrated
    evit = timm_efficientvit.EfficientViTMSRA(
        img_size=96, num_classes=5, embed_dim=(16, 32, 48), key_dim=(8, 8, 8), depth=(1, 1, 1),
        num_heads=(2, 2, 3), window_size=(4, 4, 4), kernels=(5, 3, 3, 3), form='timm')
    timm_efficientvit.calibrate_batchnorm_(evit, (timm_vit.make_image(20 + k, 4, 96, 96) for k in range(3)))
    with torch.no_grad():
        xe = timm_vit.make_image(31, batch=2, height=96, width=96)
        ref_e = evit(xe).numpy()
    e = vitcc.load(pack(evit, xe, 'evit_test'))
    print(e)
    parity(e(xe.numpy()), ref_e, 'EfficientViT vs PyTorch')

    # -- what a user gets wrong
    expect_error(ValueError, '(N, 3, 64, 64)', lambda: m1(x.numpy()[0]), 'one CHW image, no batch axis')
    expect_error(ValueError, '(N, 3, 64, 64)', lambda: m1(np.zeros((1, 3, 32, 32), np.float32)), 'wrong size')
    expect_error(TypeError, 'model.preprocess', lambda: m1(np.zeros((1, 3, 64, 64), np.uint8)), 'uint8 batch')
    expect_error(ValueError, 'greyscale', lambda: m1.preprocess(frame[:, :, 0]), 'greyscale frame')
    expect_error(TypeError, 'uint8', lambda: m1.preprocess(frame.astype(np.float32)), 'float frame')
    expect_error(FileNotFoundError, 'nope.json', lambda: vitcc.load(os.path.join(WORK, 'nope.json')), 'no config')
    expect_error(ValueError, 'vit_small_test.onnx', lambda: vitcc.load(os.path.join(WORK, 'vit_small_test.onnx')),
                 'an ONNX file for a config')
    # The same config with another model's weights under its blob's name: refused at bind, by checksum.
    bad = os.path.join(WORK, 'bad')
    shutil.copytree(os.path.dirname(cfg), bad)
    blob = [f for f in os.listdir(bad) if f.endswith('.vitcc')][0]
    with open(os.path.join(bad, blob), 'r+b') as f:
        f.seek(-1, os.SEEK_END)
        last = f.read(1)
        f.seek(-1, os.SEEK_END)
        f.write(bytes([last[0] ^ 1]))
    expect_error(vitcc.VitccError, 'checksum', lambda: vitcc.load(os.path.join(bad, 'vit_small_test.json')),
                 'a changed blob')
    os.remove(os.path.join(bad, blob))
    expect_error(ValueError, blob, lambda: vitcc.load(os.path.join(bad, 'vit_small_test.json')), 'a missing blob')
    expect_error(vitcc.VitccError, 'position-independent', lambda: vitcc.load(cfg, target='cortex-m7'),
                 'a bare-metal target')
    expect_error(ValueError, 'threads', lambda: vitcc.load(cfg, threads=0), 'threads=0')
    expect_error(ValueError, 'threads must be 1 to', lambda: vitcc.load(cfg, threads=10 ** 6), 'threads=10**6')
    cached = [f for f in os.listdir(os.environ['VITCC_CACHE_DIR']) if f.startswith('pylib-')]
    check(len(cached) == 2 and all(f.endswith('.so') for f in cached),
          'the cache holds one library per configuration (%s)' % ', '.join(sorted(cached)))
    # Another vitcc-compile (its bytes differ; the code it generates could) is another cache entry.
    tool = os.path.join(WORK, 'vitcc-compile-copy')
    shutil.copy(vitcc._compile_command(None), tool)
    with open(tool, 'ab') as f:
        f.write(b'\0')
    os.chmod(tool, os.stat(tool).st_mode | stat.S_IXUSR)
    check(np.array_equal(vitcc.load(cfg, threads=1, compile_command=tool)(x.numpy()), y2), 'another vitcc-compile: same bits')
    cached = [f for f in os.listdir(os.environ['VITCC_CACHE_DIR']) if f.startswith('pylib-')]
    check(len(cached) == 3, 'another vitcc-compile is another cache entry (%d libraries)' % len(cached))
    # A library whose header names another config than the one its key was made from is refused.
    fake = os.path.join(WORK, 'fake.h')
    with open(fake, 'w') as f:
        f.write('/* Generated by vitcc-compile from x.json (vit, config 0x0123456789abcdef). */\n'
                '#define X_BLOB_CHECKSUM %sull\n' % m1.config['blob']['checksum'])
    checked = vitcc._vitcc.read_config(cfg)
    expect_error(vitcc.VitccError, 'changed while it was compiled', lambda: vitcc._check_library_header(fake, checked),
                 'a library compiled from a config packed again meanwhile')
    info = subprocess.run([RUN, '--cache-info'], capture_output=True, text=True).stdout
    check('runners 3 (' in info, 'vitcc-run --cache-info counts them: %s' % info.strip().replace('\n', '; '))
    os.mkdir(os.path.join(os.environ['VITCC_CACHE_DIR'], '.pylib-build-killed'))  # a killed load's work folder
    subprocess.run([RUN, '--clear-cache'], check=True, capture_output=True)
    check(not [f for f in os.listdir(os.environ['VITCC_CACHE_DIR']) if f.startswith(('pylib-', '.pylib-build-'))],
          'vitcc-run --clear-cache removes them and a killed load\'s work folder')
    # Loaded again in a fresh process (this one would reuse the already-loaded library by its path).
    np.save(os.path.join(WORK, 'x.npy'), x.numpy())
    code = ('import sys, numpy as np, vitcc; m = vitcc.load(sys.argv[1], threads=1); '
            'np.save(sys.argv[3], m(np.load(sys.argv[2])))')
    subprocess.run([sys.executable, '-c', code, cfg, os.path.join(WORK, 'x.npy'), os.path.join(WORK, 'y.npy')],
                   check=True)
    again = [f for f in os.listdir(os.environ['VITCC_CACHE_DIR']) if f.startswith('pylib-')]
    check(len(again) == 1 and np.array_equal(np.load(os.path.join(WORK, 'y.npy')), y2),
          'compiled again after --clear-cache, in a fresh process: same bits')

    # The README's Python snippet, run as written from the source folder (its build/ is this build).
    with open(os.path.join(SOURCE, 'README.md')) as f:
        readme = f.read()
    start = readme.index('```python\n') + len('```python\n')
    snippet = readme[start:readme.index('```', start)]
    build = os.path.dirname(os.path.abspath(WORK))
    r = subprocess.run([sys.executable, '-c', snippet.replace('"build/', '"%s/' % build)], cwd=SOURCE,
                       capture_output=True, text=True)
    check(r.returncode == 0 and '<vitcc.Model demo' in r.stdout,
          "README's Python snippet runs: %s" % (r.stdout.strip() or r.stderr.strip()[-300:]))

    if failures:
        print('%d check(s) failed' % len(failures))
        sys.exit(1)
    print('all checks passed')


main()
