#!/usr/bin/python3
"""Train the two Fashion-MNIST models that the reduced-precision work is measured on.

Usage:  /usr/bin/python3 tools/export/train_fashion_mnist.py OUT_DIR        (normally: demo)
        [--models vit,evit] [--vit-epochs N] [--evit-epochs N] [--seed S]

Reads Debian's dataset-fashion-mnist (tools/install-deps.sh installs it; fmnist_data.py reads it)
and trains, one after the other, on 2 threads:

  fmnist_vit   the timm-layout ViT of timm_vit.py, config 'vit_fmnist': 28x28x1 input, patch 4
               (49 patches + class token), dim 64, depth 4, 4 heads, MLP ratio 2, LayerNorm, GELU,
               class-token pooling, 10 classes.
  fmnist_evit  the timm-form EfficientViT-M of timm_efficientvit.py with M0's structure (3 stages,
               depths 1/2/3, 4 heads, key dim 16, windows 7, q kernels 5) at 5/8 of its widths
               (40/80/120 instead of 64/128/192: M0 itself is 2.16 M parameters, 8.6 MB of fp32,
               over the 5 MB these files may take), 64x64x3 input, 10 classes.

and writes, for each NAME:
  NAME.onnx       torch.onnx.export, opset 17, static batch 1, input 'input', output 'output'
  NAME.top1.bin   PyTorch's predicted class for each of the 10,000 test images, uint8, file order
  NAME.meta.json  PyTorch's test top-1, the preprocessing (raw uint8 28x28 -> input tensor), the
                  architecture, the training settings, its wall and CPU time, the ONNX check

Recipe (both models): AdamW (betas 0.9/0.999; weight decay on weight matrices and conv kernels
only), cross-entropy, linear warm-up over the first 200 steps then cosine decay to zero, gradient
norm clipped at 1.0; every epoch a seeded permutation of the 60,000 training images; augmentation:
random horizontal flip and a random shift of up to 2 pixels (zero padded), applied to the raw
28x28 images before preprocessing. Initialisation as timm's: truncated normal (std 0.02) for the
ViT's Linear weights and position embedding, 1e-6 for its class token; for the EfficientViT,
PyTorch's defaults, except that every residual branch ends in a BatchNorm whose scale starts at 0
and the head's Linear is truncated normal (std 0.02).

Deterministic: fixed seeds, torch.use_deterministic_algorithms, a fixed thread count; the same
machine and library versions reproduce the same weights. Before writing anything the exported ONNX
is run by the project's NumPy interpreter (onnx_numpy_eval.py) on test images and must agree with
PyTorch.
"""
import argparse
import hashlib
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings

# libgomp's default wait policy spins idle threads for a while; on a machine shared with other jobs a
# spinning thread whose partner is descheduled makes 2-thread training ~8x slower than 1 thread
# (measured here). Must be set before torch loads libgomp.
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import fmnist_data  # noqa: E402
import onnx_numpy_eval  # noqa: E402
import timm_efficientvit  # noqa: E402
import timm_vit  # noqa: E402

THREADS = 2
OPSET = 17
MAX_ONNX_BYTES = 5 * 1000 * 1000
ONNX_CHECK_IMAGES = 100

EVIT_ARCH = dict(img_size=64, in_chans=3, num_classes=10, embed_dim=(40, 80, 120), key_dim=(16, 16, 16),
                 depth=(1, 2, 3), num_heads=(4, 4, 4), window_size=(7, 7, 7), kernels=(5, 5, 5, 5), form='timm')

# Per model: optimiser and schedule. Epoch counts keep both models within 15 minutes on 2 cores.
SETTINGS = {
    'vit': dict(epochs=10, batch=128, lr=2e-3, weight_decay=0.05, warmup_steps=200, grad_clip=1.0,
                shift=2, flip=True),
    'evit': dict(epochs=3, batch=256, lr=3e-3, weight_decay=0.025, warmup_steps=200, grad_clip=1.0,
                 shift=2, flip=True),
}


# ---------------------------------------------------------------------------
# Models and their initialisation
# ---------------------------------------------------------------------------
@torch.no_grad()
def build_vit():
    m = timm_vit.make_model('vit_fmnist', seed=None)
    for name, mod in m.named_modules():
        if isinstance(mod, nn.Linear):
            nn.init.trunc_normal_(mod.weight, std=0.02)
            nn.init.zeros_(mod.bias)
    nn.init.trunc_normal_(m.pos_embed, std=0.02)
    nn.init.normal_(m.cls_token, std=1e-6)
    return m


@torch.no_grad()
def build_evit():
    m = timm_efficientvit.EfficientViTMSRA(**EVIT_ARCH)
    # Each residual branch starts as zero: its last BatchNorm's scale is 0.
    for mod in m.modules():
        if isinstance(mod, timm_efficientvit.Residual):
            bns = [b for b in mod.m.modules() if isinstance(b, nn.BatchNorm2d)]
            nn.init.zeros_(bns[-1].weight)
    nn.init.trunc_normal_(m.head.linear.weight, std=0.02)
    nn.init.zeros_(m.head.linear.bias)
    return m


def describe(kind, model):
    if kind == 'vit':
        cfg = dict(timm_vit.MODEL_CONFIGS['vit_fmnist'])
        return dict(module='tools/export/timm_vit.py VisionTransformer', config='vit_fmnist', args=cfg,
                    parts='class token, LayerNorm eps 1e-6, exact-erf GELU, no LayerScale, token pooling, '
                          'final LayerNorm, Linear head')
    return dict(module="tools/export/timm_efficientvit.py EfficientViTMSRA (form='timm')",
                args={k: list(v) if isinstance(v, tuple) else v for k, v in EVIT_ARCH.items()},
                note="EfficientViT-M0's structure (depths 1/2/3, 4 heads, key dim 16, windows 7, kernels 5) "
                     "at widths 40/80/120 instead of M0's 64/128/192, so that the fp32 ONNX stays under 5 MB "
                     "(M0 with 10 classes: 2,157,694 parameters, ~8.6 MB)")


# ---------------------------------------------------------------------------
# Data: augmentation on raw uint8 images, then the model's preprocessing (as fmnist_data, in torch)
# ---------------------------------------------------------------------------
class Preprocess:
    """fmnist_data.preprocess in torch for training batches (the test set goes through the NumPy
    original, so PyTorch's stored top-1 is for the very tensors the harness gives vitcc)."""

    def __init__(self, kind):
        self.p = fmnist_data.PREPROCESS[kind]
        size = self.p['resize']
        self.r = torch.from_numpy(fmnist_data.bilinear_matrix(size[0], 28)) if size else None

    def __call__(self, u8):
        x = u8.to(torch.float32) / 255.0
        if self.r is not None:
            x = self.r @ x @ self.r.T
        x = (x - self.p['mean']) / self.p['std']
        return x.unsqueeze(1).repeat(1, self.p['channels'], 1, 1)


def augment(u8, gen, shift, flip):
    n = u8.shape[0]
    if flip:
        mask = torch.rand(n, generator=gen) < 0.5
        u8 = torch.where(mask[:, None, None], u8.flip(2), u8)
    if shift:
        padded = F.pad(u8, (shift, shift, shift, shift))
        oy = torch.randint(0, 2 * shift + 1, (n,), generator=gen)
        ox = torch.randint(0, 2 * shift + 1, (n,), generator=gen)
        ar = torch.arange(28)
        rows = (oy[:, None] + ar)[:, :, None]
        cols = (ox[:, None] + ar)[:, None, :]
        u8 = padded[torch.arange(n)[:, None, None], rows, cols]
    return u8


# ---------------------------------------------------------------------------
# Training and evaluation
# ---------------------------------------------------------------------------
def param_groups(model, weight_decay):
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (decay if p.dim() >= 2 and 'pos_embed' not in name and 'token' not in name else no_decay).append(p)
    return [dict(params=decay, weight_decay=weight_decay), dict(params=no_decay, weight_decay=0.0)]


def train(kind, model, images, labels, s, seed):
    gen = torch.Generator().manual_seed(seed)
    prep = Preprocess(kind)
    images = torch.from_numpy(images.copy())
    labels = torch.from_numpy(labels.astype(np.int64))
    steps_per_epoch = images.shape[0] // s['batch']
    total = steps_per_epoch * s['epochs']
    opt = torch.optim.AdamW(param_groups(model, s['weight_decay']), lr=s['lr'], betas=(0.9, 0.999))

    def lr_at(step):  # factor of the base rate: linear warm-up, then cosine to zero
        if step < s['warmup_steps']:
            return (step + 1) / s['warmup_steps']
        t = (step - s['warmup_steps']) / max(1, total - s['warmup_steps'])
        return 0.5 * (1.0 + math.cos(math.pi * t))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    model.train()
    log = []
    step = 0
    for epoch in range(s['epochs']):
        t0 = time.perf_counter()
        perm = torch.randperm(images.shape[0], generator=gen)
        loss_sum, correct, seen = 0.0, 0, 0
        for i in range(steps_per_epoch):
            idx = perm[i * s['batch']:(i + 1) * s['batch']]
            x = prep(augment(images[idx], gen, s['shift'], s['flip']))
            y = labels[idx]
            out = model(x)
            loss = F.cross_entropy(out, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), s['grad_clip'])
            opt.step()
            sched.step()
            step += 1
            loss_sum += float(loss) * y.shape[0]
            correct += int((out.argmax(1) == y).sum())
            seen += y.shape[0]
        rec = dict(epoch=epoch + 1, train_loss=round(loss_sum / seen, 4), train_top1=round(correct / seen, 4),
                   wall_s=round(time.perf_counter() - t0, 1))
        log.append(rec)
        print(f'[{kind}] epoch {rec["epoch"]}/{s["epochs"]}: loss {rec["train_loss"]:.4f} '
              f'train top-1 {rec["train_top1"]:.4f} ({rec["wall_s"]:.0f} s)', flush=True)
    model.eval()
    return log


@torch.no_grad()
def predict(model, x, batch=500):
    model.eval()
    return torch.cat([model(torch.from_numpy(x[i:i + batch])) for i in range(0, x.shape[0], batch)]).numpy()


# ---------------------------------------------------------------------------
# Export and its check
# ---------------------------------------------------------------------------
def export_onnx(model, shape, path):
    fd, tmp = tempfile.mkstemp(suffix='.onnx', dir=os.path.dirname(path))
    os.close(fd)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            torch.onnx.export(model, torch.zeros((1,) + tuple(shape)), tmp, opset_version=OPSET,
                              do_constant_folding=True, input_names=['input'], output_names=['output'])
        size = os.path.getsize(tmp)
        if size > MAX_ONNX_BYTES:
            raise SystemExit(f'{path}: the export is {size} bytes, over the {MAX_ONNX_BYTES} allowed')
        return tmp
    except BaseException:
        os.unlink(tmp)
        raise


def check_onnx(onnx_path, x, logits):
    """The exported graph, run by the NumPy interpreter image by image, against PyTorch's logits."""
    err, agree = 0.0, 0
    for i in range(x.shape[0]):
        (y,) = onnx_numpy_eval.run_model(onnx_path, {'input': x[i:i + 1]})
        err = max(err, float(np.abs(y[0].astype(np.float64) - logits[i]).max()))
        agree += int(np.argmax(y[0]) == np.argmax(logits[i]))
    scale = float(np.abs(logits[:x.shape[0]]).max())
    ok = agree == x.shape[0] and err <= 1e-4 * max(1.0, scale)
    return dict(images=int(x.shape[0]), max_abs_err=err, logits_absmax=scale, top1_agree=agree, ok=ok)


def sha256(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def environment():
    try:
        pkg = subprocess.run(['dpkg-query', '-W', '-f=${Version}', 'dataset-fashion-mnist'],
                             capture_output=True, text=True).stdout.strip()
    except OSError:
        pkg = ''
    return dict(python=platform.python_version(), torch=torch.__version__, numpy=np.__version__,
                dataset_package=f'dataset-fashion-mnist {pkg}'.strip(), threads=THREADS,
                omp_wait_policy=os.environ.get('OMP_WAIT_POLICY'), machine=platform.machine(),
                cpus=os.cpu_count(), load_average_at_start=[round(v, 2) for v in os.getloadavg()])


def run_one(kind, out_dir, train_set, test_set, seed, epochs):
    s = dict(SETTINGS[kind])
    if epochs:
        s['epochs'] = epochs
    name = f'fmnist_{kind}'
    torch.manual_seed(seed)
    model = build_vit() if kind == 'vit' else build_evit()
    n_params = sum(p.numel() for p in model.parameters())
    print(f'[{kind}] {n_params} parameters; {s}', flush=True)

    w0, c0 = time.perf_counter(), time.process_time()
    log = train(kind, model, *train_set, s, seed)
    train_wall, train_cpu = time.perf_counter() - w0, time.process_time() - c0

    w1, c1 = time.perf_counter(), time.process_time()
    x_test = fmnist_data.preprocess(kind, test_set[0])
    logits = predict(model, x_test)
    top1 = logits.argmax(1).astype(np.uint8)
    acc = float((top1 == test_set[1]).mean())
    eval_wall, eval_cpu = time.perf_counter() - w1, time.process_time() - c1
    print(f'[{kind}] PyTorch test top-1 {acc:.4f} (train {train_wall:.0f} s wall, {train_cpu:.0f} s CPU)', flush=True)

    tmp = export_onnx(model, fmnist_data.PREPROCESS[kind]['shape'], os.path.join(out_dir, name + '.onnx'))
    try:
        check = check_onnx(tmp, x_test[:ONNX_CHECK_IMAGES], logits)
        print(f'[{kind}] ONNX (NumPy interpreter) vs PyTorch on {check["images"]} test images: '
              f'max |diff| {check["max_abs_err"]:.3g}, top-1 agrees on {check["top1_agree"]}', flush=True)
        if not check['ok']:
            raise SystemExit(f'{name}.onnx does not reproduce PyTorch: {check}')
        os.chmod(tmp, 0o644)
        os.replace(tmp, os.path.join(out_dir, name + '.onnx'))
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    top1.tofile(os.path.join(out_dir, name + '.top1.bin'))
    p = fmnist_data.PREPROCESS[kind]
    meta = dict(
        name=name,
        onnx=dict(file=name + '.onnx', bytes=os.path.getsize(os.path.join(out_dir, name + '.onnx')),
                  sha256=sha256(os.path.join(out_dir, name + '.onnx')), opset=OPSET, batch=1,
                  input='input', output='output', input_shape=[1] + p['shape'], output_shape=[1, 10],
                  do_constant_folding=True),
        architecture=describe(kind, model), parameters=n_params,
        pytorch_test_top1=acc,
        top1_file=dict(file=name + '.top1.bin', dtype='uint8', count=int(top1.size),
                       order='the test images in the order of t10k-images-idx3-ubyte'),
        dataset=dict(dir=fmnist_data.DATA_DIR, train_images=int(train_set[0].shape[0]),
                     test_images=int(test_set[0].shape[0]), classes=list(fmnist_data.CLASSES),
                     test_images_sha256=sha256(os.path.join(fmnist_data.DATA_DIR, 't10k-images-idx3-ubyte.gz')),
                     test_labels_sha256=sha256(os.path.join(fmnist_data.DATA_DIR, 't10k-labels-idx1-ubyte.gz'))),
        preprocessing=dict(input='raw test image, uint8 [28, 28], 0 = background', steps=p['steps'],
                           mean=p['mean'], std=p['std'], resize=p['resize'],
                           interpolation='bilinear, align_corners=False, no antialias' if p['resize'] else None,
                           channels=p['channels'], layout='NCHW float32',
                           code='tools/export/fmnist_data.py preprocess(' + repr(kind) + ', images)'),
        training=dict(seed=seed, optimizer='AdamW', betas=[0.9, 0.999], lr=s['lr'],
                      weight_decay=s['weight_decay'], weight_decay_on='weight matrices and conv kernels',
                      batch=s['batch'], epochs=s['epochs'], steps=len(log) * (train_set[0].shape[0] // s['batch']),
                      schedule=f'linear warm-up over {s["warmup_steps"]} steps, then cosine to 0, per step',
                      grad_clip_norm=s['grad_clip'], loss='cross-entropy',
                      augmentation=f'random horizontal flip (p=0.5), random shift of up to {s["shift"]} px '
                                   f'(zero padding), on the raw 28x28 images',
                      epochs_log=log, wall_s=round(train_wall, 1), cpu_s=round(train_cpu, 1),
                      eval_wall_s=round(eval_wall, 1), eval_cpu_s=round(eval_cpu, 1)),
        onnx_check=check,
        environment=environment(),
        script='tools/export/train_fashion_mnist.py',
    )
    return meta


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('out_dir')
    ap.add_argument('--models', default='vit,evit')
    ap.add_argument('--seed', type=int, default=20250611)
    ap.add_argument('--vit-epochs', type=int, default=0, help='override the recipe (for trials)')
    ap.add_argument('--evit-epochs', type=int, default=0, help='override the recipe (for trials)')
    ap.add_argument('--train-images', type=int, default=0, help='train on the first N images only (for trials)')
    a = ap.parse_args(argv)
    torch.set_num_threads(THREADS)
    torch.use_deterministic_algorithms(True)
    os.makedirs(a.out_dir, exist_ok=True)
    if not os.path.isfile(os.path.join(fmnist_data.DATA_DIR, 'train-images-idx3-ubyte.gz')):
        raise SystemExit(f'{fmnist_data.DATA_DIR}: no Fashion-MNIST here; install Debian\'s dataset-fashion-mnist '
                         '(bash tools/install-deps.sh)')
    w0, c0 = time.perf_counter(), time.process_time()
    train_set, test_set = fmnist_data.load('train'), fmnist_data.load('test')
    f = train_set[0].astype(np.float64) / 255.0
    if abs(f.mean() - fmnist_data.MEAN) > 5e-4 or abs(f.std() - fmnist_data.STD) > 5e-4:
        raise SystemExit(f'training pixels have mean {f.mean():.5f} std {f.std():.5f}, not fmnist_data\'s')
    del f
    if a.train_images:
        train_set = (train_set[0][:a.train_images], train_set[1][:a.train_images])
    metas = []
    for kind in a.models.split(','):
        metas.append(run_one(kind, a.out_dir, train_set, test_set, a.seed,
                             a.vit_epochs if kind == 'vit' else a.evit_epochs))
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    for m in metas:
        m['whole_run'] = dict(models=[x['name'] for x in metas], wall_s=round(wall, 1), cpu_s=round(cpu, 1),
                              load_average_at_end=[round(v, 2) for v in os.getloadavg()],
                              note=f'this process: data loading, then for {" and ".join(x["name"] for x in metas)} '
                                   f'training, evaluation, export and ONNX check; {THREADS} threads')
        with open(os.path.join(a.out_dir, m['name'] + '.meta.json'), 'w') as f:
            json.dump(m, f, indent=2)
            f.write('\n')
    tops = ', '.join(f"{m['name']} top-1 {m['pytorch_test_top1']:.4f}" for m in metas)
    print(f'done: {tops}; '
          f'whole run {wall:.0f} s wall, {cpu:.0f} s CPU (load average now {os.getloadavg()[0]:.1f})')


if __name__ == '__main__':
    main()
