"""Compares the project's timm mirrors with a real timm checkout, so that a change in timm is found
here and not by a user.

    /usr/bin/python3 tools/export/check_timm_mirror.py TIMM_DIR [--models efficientvit_m0,...] [--size 224]

TIMM_DIR is a checkout of github.com/huggingface/pytorch-image-models (the search tool's fetch brings
one; `git --git-dir=... archive HEAD | tar -x -C TIMM_DIR`). timm is imported from there and is never
copied into the repository. For every model, at each size:

  1. state_dict: the mirror's keys, shapes and dtypes equal timm's (loaded with strict=True, both ways);
  2. forward: timm's model loaded with the mirror's seeded random weights gives the mirror's output
     (max abs difference <= 1e-5 x max(1, max|out|)), plain and reparameterised (timm's
     reparameterize_model against the mirror's fuse_);
  3. ONNX: both export at opset 17 (eval mode) to the same sequence of operator types, plain and
     reparameterised, so the packer sees the same graph shape from the mirror as from timm.

Exit status 0 when everything matches, 1 otherwise (each difference is printed).
"""
import argparse
import io
import os
import sys
import warnings

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import timm_efficientvit  # noqa: E402


def onnx_ops(model, x, opset):
    import onnx
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        torch.onnx.export(model, x, buf, opset_version=opset, do_constant_folding=True,
                          input_names=['input'], output_names=['output'])
    return [n.op_type for n in onnx.load_from_string(buf.getvalue()).graph.node]


def first_difference(a, b):
    for i, (p, q) in enumerate(zip(a, b)):
        if p != q:
            return f'node {i}: timm {p}, mirror {q} (context timm {a[max(0, i - 3):i + 3]}, mirror {b[max(0, i - 3):i + 3]})'
    return f'lengths differ: timm {len(a)} nodes, mirror {len(b)}'


def check_efficientvit(timm, name, size, problems):
    from timm.utils.model import reparameterize_model
    tag = f'{name} at {size}'
    mirror = timm_efficientvit.make_model(name, seed=7, img_size=size, form='timm', calib_batches=1).eval()
    real = timm.create_model(name, pretrained=False, img_size=size).eval()
    ms, rs = mirror.state_dict(), real.state_dict()
    missing = sorted(set(rs) - set(ms))
    extra = sorted(set(ms) - set(rs))
    if missing or extra:
        problems.append(f'{tag}: state_dict names differ: only in timm {missing[:8]}, only in the mirror {extra[:8]}')
        return
    for k in rs:
        if rs[k].shape != ms[k].shape or rs[k].dtype != ms[k].dtype:
            problems.append(f'{tag}: {k}: timm {tuple(rs[k].shape)} {rs[k].dtype}, mirror {tuple(ms[k].shape)} {ms[k].dtype}')
    real.load_state_dict(ms, strict=True)
    mirror.load_state_dict(real.state_dict(), strict=True)
    # Buffers timm does not save (the bias index table) must hold the same values too.
    for (k, a), (_, b) in zip(sorted(real.named_buffers()), sorted(mirror.named_buffers())):
        if a.shape != b.shape or not torch.equal(a, b):
            problems.append(f'{tag}: buffer {k} differs between timm and the mirror')
    x = timm_efficientvit._image_batch(11, 1, size)
    for label, r, m in (('plain', real, mirror),
                        ('reparam', reparameterize_model(real), timm_efficientvit.fuse_(
                            timm_efficientvit.make_model(name, seed=7, img_size=size, form='timm', calib_batches=1).eval()))):
        if label == 'reparam':
            r.eval()
        with torch.no_grad():
            yr, ym = r(x), m(x)
        err = (yr - ym).abs().max().item()
        bound = 1e-5 * max(1.0, yr.abs().max().item())
        if not err <= bound:
            problems.append(f'{tag} ({label}): outputs differ by {err:.3g} (bound {bound:.3g})')
        ops_r, ops_m = onnx_ops(r, x, 17), onnx_ops(m, x, 17)
        if ops_r != ops_m:
            problems.append(f'{tag} ({label}): the ONNX graphs differ: {first_difference(ops_r, ops_m)}')
        print(f'{tag:28s} {label:8s} state_dict {len(rs)} tensors equal, max |timm - mirror| {err:.2e}, '
              f'ONNX {len(ops_r)} nodes {"equal" if ops_r == ops_m else "DIFFERENT"}')


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('timm_dir')
    ap.add_argument('--models', default=','.join(timm_efficientvit.CONFIGS))
    ap.add_argument('--sizes', default='224,256')
    args = ap.parse_args(argv)
    sys.path.insert(0, os.path.abspath(args.timm_dir))
    import timm
    print(f'timm {timm.__version__} from {os.path.dirname(timm.__file__)}')
    torch.manual_seed(0)
    problems = []
    for name in args.models.split(','):
        for size in (int(s) for s in args.sizes.split(',')):
            check_efficientvit(timm, name, size, problems)
    if problems:
        print('\nthe mirror no longer follows timm:')
        for p in problems:
            print('  ' + p)
        return 1
    print('\nthe mirror follows timm')
    return 0


if __name__ == '__main__':
    sys.exit(main())
