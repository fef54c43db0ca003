#!/usr/bin/python3
"""Test-set accuracy of the bundled Fashion-MNIST models under vitcc, at each weight precision.

Usage: check_accuracy.py VITCC_PACK VITCC_RUN SOURCE_DIR OUT_DIR [--models a,b] [--precisions a,b]
                         [--report-only]

For each bundled model demo/NAME.onnx (fmnist_vit, fmnist_evit; trained by
tools/export/train_fashion_mnist.py, which also stored PyTorch's predicted class for every test image
in demo/NAME.top1.bin and its test top-1 in demo/NAME.meta.json):
  1. the 10,000 test images are preprocessed by the code the training script evaluated PyTorch on
     (tools/export/fmnist_data.py preprocess) and written once to OUT_DIR/data (raw float32 NCHW, in
     chunks; reused while the dataset, the preprocessing code and the model kind are unchanged);
  2. vitcc-pack packs the ONNX file at fp32, bf16 and int8 (self-check on);
  3. vitcc-run runs every test image; the predicted class is the argmax of its 10 logits;
  4. top-1 against the dataset's labels, and agreement with PyTorch's predictions.
Then it asserts the bounds of issue 11 (on all 10,000 images):
  fp32 predicts PyTorch's class on >= 99.9% of the images;
  bf16 top-1 within 0.2 points of fp32's; int8 top-1 within 0.5 points of fp32's.
--report-only prints the table without asserting (make demo).

PyTorch is the reference, not vitcc: its predictions were computed at training time by PyTorch on the
tensors this script rebuilds. The stored meta.json top-1 is checked against the stored predictions and
the labels read here, so a change in how labels or predictions are read is caught as a mismatch.
NumPy only.
"""
import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

CHUNK = 2000  # images per vitcc-run call (the 64x64x3 inputs are 49 MB per 1,000)

BOUNDS = {  # precision: (what is bounded, bound)
    'fp32': ('agreement with PyTorch', 0.999),
    'bf16': ('|top-1 - fp32 top-1|', 0.002),
    'int8': ('|top-1 - fp32 top-1|', 0.005),
}


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            h.update(block)
    return h.hexdigest()


def kind_of(name):
    kind = name.split('_', 1)[1] if name.startswith('fmnist_') else ''
    if kind not in ('vit', 'evit'):
        raise SystemExit(f'{name}: not a Fashion-MNIST model name (fmnist_vit or fmnist_evit)')
    return kind


def test_inputs(fmnist_data, kind, images, data_dir):
    """Paths of the preprocessed test set for kind, in chunks of CHUNK images, written once.
    The stamp names what the tensors depend on: the test images file, the preprocessing code, the kind."""
    src = os.path.join(fmnist_data.DATA_DIR, 't10k-images-idx3-ubyte.gz')
    stamp_text = json.dumps(dict(images=sha256_file(src), code=sha256_file(fmnist_data.__file__), kind=kind,
                                 chunk=CHUNK, n=int(images.shape[0])), sort_keys=True)
    folder = os.path.join(data_dir, kind)
    stamp = os.path.join(folder, 'stamp.json')
    n_chunks = (images.shape[0] + CHUNK - 1) // CHUNK
    paths = [os.path.join(folder, f'test_{i:02d}.bin') for i in range(n_chunks)]
    if os.path.isfile(stamp) and open(stamp).read() == stamp_text and all(os.path.isfile(p) for p in paths):
        return paths
    os.makedirs(folder, exist_ok=True)
    if os.path.exists(stamp):
        os.unlink(stamp)
    for i, p in enumerate(paths):
        x = fmnist_data.preprocess(kind, images[i * CHUNK:(i + 1) * CHUNK])
        fd, tmp = tempfile.mkstemp(dir=folder, suffix='.tmp')
        with os.fdopen(fd, 'wb') as f:
            f.write(x.tobytes())
        os.replace(tmp, p)
    with open(stamp + '.tmp', 'w') as f:
        f.write(stamp_text)
    os.replace(stamp + '.tmp', stamp)  # last: the chunks are complete
    return paths


def run(cmd, what):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f'{what} failed (exit {p.returncode}): {" ".join(cmd)}\n{p.stdout}{p.stderr}')
    return p.stdout


def pack(vitcc_pack, onnx, out, name, precision, extra=()):
    log = run([vitcc_pack, onnx, '-o', out, '--name', name, '--precision', precision, '--summary'] + list(extra),
              f'vitcc-pack {name} at {precision}')
    cfg = json.load(open(os.path.join(out, name + '.json')))
    vs = cfg.get('self_check', {}).get('precision_vs_fp32', {})
    return log, vs.get('cosine')


def predict(vitcc_run, config, inputs, images_in, out_dir, threads):
    classes = []
    for i, x in enumerate(inputs):
        out = os.path.join(out_dir, f'logits_{i:02d}.bin')
        run([vitcc_run, config, '--input', x, '--output', out, '--threads', str(threads)],
            f'vitcc-run {config} on {x}')
        logits = np.fromfile(out, dtype=np.float32)
        if logits.size != 10 * images_in[i]:
            raise SystemExit(f'{out}: {logits.size} logits for {images_in[i]} images of 10 classes')
        logits = logits.reshape(-1, 10)
        classes.append(logits.argmax(1))
        os.unlink(out)
    return np.concatenate(classes)


def same_bits_across_threads(vitcc_run, config, x, per_image_bytes, out_dir, images=200):
    """The first `images` images with one and with three intra-op threads: the same bits (every
    precision's kernels split their work by the shapes alone; at int8 the workers also share the
    quantised-activation scratch)."""
    head = os.path.join(out_dir, 'threads_in.bin')
    with open(x, 'rb') as f, open(head, 'wb') as g:
        g.write(f.read(images * per_image_bytes))
    outs = []
    for t in (1, 3):
        o = os.path.join(out_dir, f'threads_{t}.bin')
        run([vitcc_run, config, '--input', head, '--output', o, '--threads', str(t)], f'vitcc-run {config} --threads {t}')
        outs.append(open(o, 'rb').read())
        os.unlink(o)
    os.unlink(head)
    return outs[0] == outs[1] and len(outs[0]) == images * 10 * 4


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('vitcc_pack')
    ap.add_argument('vitcc_run')
    ap.add_argument('source_dir')
    ap.add_argument('out_dir')
    ap.add_argument('--models', default='fmnist_vit,fmnist_evit')
    ap.add_argument('--precisions', default='fp32,bf16,int8')
    ap.add_argument('--threads', type=int, default=1,
                    help='intra-op threads per image (1: the images are small, a second thread mostly waits)')
    ap.add_argument('--data-dir', help='where the preprocessed test set is cached (default OUT_DIR/data)')
    ap.add_argument('--report-only', action='store_true', help='print the table, assert nothing')
    ap.add_argument('--int8-pack-arg', action='append', default=[], metavar='MODEL=ARG',
                    help='one more vitcc-pack argument for MODEL at int8 (repeatable, in order), e.g. '
                         '--int8-pack-arg=fmnist_vit=--calibration --int8-pack-arg=fmnist_vit=train.npy')
    a = ap.parse_args(argv)

    sys.path.insert(0, os.path.join(a.source_dir, 'tools', 'export'))
    import fmnist_data  # noqa: E402  (the training script's own data reader and preprocessing)

    precisions = a.precisions.split(',')
    if not a.report_only and precisions[0] != 'fp32':
        raise SystemExit('--precisions: the bounds are relative to fp32, which must come first')
    t0 = time.perf_counter()
    images, labels = fmnist_data.load('test')
    labels = labels.astype(np.int64)
    rows, failures = [], []
    for name in a.models.split(','):
        kind = kind_of(name)
        demo = os.path.join(a.source_dir, 'demo')
        meta = json.load(open(os.path.join(demo, name + '.meta.json')))
        torch_pred = np.fromfile(os.path.join(demo, name + '.top1.bin'), dtype=np.uint8).astype(np.int64)
        if torch_pred.shape != labels.shape:
            raise SystemExit(f'{name}.top1.bin: {torch_pred.size} predictions for {labels.size} test images')
        torch_top1 = float((torch_pred == labels).mean())
        if abs(torch_top1 - meta['pytorch_test_top1']) > 0.5 / labels.size:
            failures.append(f'{name}: PyTorch top-1 from {name}.top1.bin and the labels is {torch_top1:.4f}, '
                            f'{name}.meta.json says {meta["pytorch_test_top1"]:.4f} (labels or predictions misread)')
        inputs = test_inputs(fmnist_data, kind, images, a.data_dir or os.path.join(a.out_dir, 'data'))
        top1_fp32 = None
        for precision in precisions:
            out = os.path.join(a.out_dir, name, precision)
            extra = [v.split('=', 1)[1] for v in a.int8_pack_arg if v.split('=', 1)[0] == name] if precision == 'int8' else []
            _, cosine = pack(a.vitcc_pack, os.path.join(demo, name + '.onnx'), out, name, precision, extra)
            counts = [min(CHUNK, labels.size - i * CHUNK) for i in range(len(inputs))]
            pred = predict(a.vitcc_run, os.path.join(out, name + '.json'), inputs, counts, out, a.threads)
            if pred.shape != labels.shape:
                raise SystemExit(f'{name} at {precision}: {pred.size} outputs for {labels.size} images')
            per_image = os.path.getsize(inputs[0]) // counts[0]
            if not same_bits_across_threads(a.vitcc_run, os.path.join(out, name + '.json'), inputs[0], per_image, out):
                failures.append(f'{name} at {precision}: --threads 3 gives other logits than one thread')
            top1 = float((pred == labels).mean())
            agree = float((pred == torch_pred).mean())
            rows.append((name, precision, meta['pytorch_test_top1'], top1, agree, cosine,
                         None if top1_fp32 is None or precision == 'fp32' else top1 - top1_fp32))
            if precision == 'fp32':
                top1_fp32 = top1
                if agree < BOUNDS['fp32'][1]:
                    failures.append(f'{name} fp32: agrees with PyTorch on {agree:.2%} of the images, '
                                    f'at least {BOUNDS["fp32"][1]:.1%} expected')
            elif top1_fp32 is not None and abs(top1 - top1_fp32) > BOUNDS[precision][1] + 1e-12:
                failures.append(f'{name} {precision}: top-1 {top1:.4f} is {100 * (top1 - top1_fp32):+.2f} points '
                                f'from fp32\'s {top1_fp32:.4f}, at most {100 * BOUNDS[precision][1]:.1f} allowed')

    print(f'Fashion-MNIST test set, {labels.size} images: top-1 of PyTorch (training script) and of vitcc, '
          f'vitcc\'s agreement with PyTorch\'s predicted class, and the pack self-check\'s cosine against fp32')
    print(f'{"model":<12} {"precision":<9} {"PyTorch":>8} {"vitcc":>8} {"vs fp32":>8} {"agree":>8}  {"cosine":<8}')
    for name, precision, torch_top1, top1, agree, cosine, delta in rows:
        d = f'{100 * delta:+.2f}' if delta is not None else ''
        c = f'{cosine:.8f}' if cosine is not None else ''
        print(f'{name:<12} {precision:<9} {100 * torch_top1:7.2f}% {100 * top1:7.2f}% {d:>8} {100 * agree:7.2f}%  {c}')
    print(f'({time.perf_counter() - t0:.0f} s)')
    for f in failures:
        print(('note: ' if a.report_only else 'FAIL: ') + f, file=sys.stdout if a.report_only else sys.stderr)
    if failures and not a.report_only:
        return 1
    if not a.report_only:
        print('bounds: fp32 agrees with PyTorch >= 99.9%; bf16 within 0.2 and int8 within 0.5 points of fp32: ok')
    return 0


if __name__ == '__main__':
    sys.exit(main())
