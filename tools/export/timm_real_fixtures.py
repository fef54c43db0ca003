"""Fixtures exported from real timm (a checkout, not the project's mirrors), in the layout
make_fixtures.py writes, so the end-to-end test runs them unchanged:

    /usr/bin/python3 tools/export/timm_real_fixtures.py TIMM_DIR OUT_DIR [--set matrix|tutorial|all]
    VITCC_FIXTURES=OUT_DIR VITCC_PACK=build/bin/vitcc-pack VITCC_RUN=build/bin/vitcc-run \\
        VITCC_E2E_OUT=/tmp/e2e-timm VITCC_CACHE_DIR=build/runner-cache build/bin/test_e2e

A developer's check (CI has no timm): it shows that what the mirrors stand for in CI is what timm
exports today. Weights: the mirror's seeded, realistic random weights (make_model) loaded into timm's
model with strict=True (timm's own init has zero attention biases and identity BatchNorm, which hide
those parts); the reference output is timm's.

  matrix    efficientvit_m0..m5 at 224 and at a second size, opsets 10/13/17, plain and
            reparameterised (timm's reparameterize_model), plus a dynamic batch and constant folding
            off at 224, each through torch.onnx.export of timm's module.
  vit       timm's vit_small_patch16_224 (opset 17), vit_tiny_patch16_224 (10), deit_tiny_patch16_224
            (13) and vit_small_patch14_reg4_dinov2 (17, at 224), the mirror's weights loaded
            strictly; with --ort ONNX_RUNTIME_NODE_DIR each also as ONNX Runtime's 'basic' level
            saves it (issue 17).
  tutorial  timm's own onnx_export.py, as the timm-to-edge tutorials run it, with --checkpoint to the
            seeded random checkpoint (no pretrained weights are reachable): efficientvit_m5
            --opset 10 --reparam, and efficientvit_m0 --opset 17. Where torch's exporter itself
            fails (x.chunk on onnx_export.py's dynamic batch needs opset 11), the case is reported,
            and the lowest opset that exports is used instead.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import warnings
import zlib
from collections import OrderedDict

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import timm_efficientvit  # noqa: E402
import timm_vit  # noqa: E402

from make_fixtures import EVIT_SECOND_SIZE as SECOND  # noqa: E402  the same second sizes as the mirror's matrix


def write_raw(path, t):
    t.detach().cpu().contiguous().numpy().astype('<f4').tofile(path)


def seeded_state(model_name, size, seed):
    return timm_efficientvit.make_model(model_name, seed=seed, img_size=size, form='timm').state_dict()


def timm_model(timm, model_name, size, seed, reparam):
    from timm.utils.model import reparameterize_model
    m = timm.create_model(model_name, pretrained=False, img_size=size)
    m.load_state_dict(seeded_state(model_name, size, seed), strict=True)
    m.eval()
    return reparameterize_model(m).eval() if reparam else m


def finish(out_dir, name, model, x, onnx_path, opset, fold, dynamic, desc, entries, family='efficientvit'):
    d = os.path.join(out_dir, name)
    os.makedirs(d, exist_ok=True)
    with torch.no_grad():
        y = model(x)
    os.replace(onnx_path, os.path.join(d, 'model.onnx'))
    write_raw(os.path.join(d, 'input.bin'), x)
    write_raw(os.path.join(d, 'reference.bin'), y)
    meta = OrderedDict([('name', name), ('family', family), ('opset', opset), ('constant_folding', fold),
                        ('dynamic_batch', dynamic), ('batch', int(x.shape[0])), ('input_shape', list(x.shape)),
                        ('output_shape', list(y.shape)), ('description', desc)])
    with open(os.path.join(d, 'meta.json'), 'w') as f:
        json.dump(meta, f, indent=2)
    meta['dir'] = name
    entries.append(meta)
    print(f'{name}: exported ({os.path.getsize(os.path.join(d, "model.onnx")) / 1e6:.1f} MB)', flush=True)


def matrix(timm, out_dir, entries, failures):
    for model_name, second in SECOND.items():
        for size in (224, second):
            cases = [(op, rp, False, True) for op in (10, 13, 17) for rp in (False, True)]
            if size == 224:
                cases += [(17, False, True, True), (13, False, False, False)]
            for opset, reparam, dynamic, fold in cases:
                name = (f"timm_{model_name}_{size}_op{opset}" + ('_reparam' if reparam else '') +
                        ('_dynbatch' if dynamic else '') + ('' if fold else '_nofold'))
                seed = zlib.crc32(name.encode()) % 100000
                model = timm_model(timm, model_name, size, seed, reparam)
                x = timm_vit.make_image(seed, 2 if dynamic else 1, size, size)
                fd, path = tempfile.mkstemp(suffix='.onnx', dir=out_dir)
                os.close(fd)
                kw = dict(opset_version=opset, do_constant_folding=fold, input_names=['input'], output_names=['output'])
                if dynamic:
                    kw['dynamic_axes'] = {'input': {0: 'batch'}, 'output': {0: 'batch'}}
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter('ignore')
                        torch.onnx.export(model, x, path, **kw)
                except Exception as e:  # the exporter's own failure, not vitcc's
                    failures.append(f'{name}: torch.onnx.export failed: {str(e).splitlines()[0][:200]}')
                    os.remove(path)
                    continue
                finish(out_dir, name, model, x, path, opset, fold, dynamic,
                       f'real timm {model_name} at {size}, opset {opset}' + (', reparameterised' if reparam else ''),
                       entries)


def tutorial(timm_dir, timm, out_dir, entries, failures):
    for model_name, opsets, reparam in (('efficientvit_m5', (10, 11, 12, 13), True), ('efficientvit_m0', (17,), False)):
        seed = 4242
        ckpt = os.path.join(out_dir, f'{model_name}_seeded.pth')
        torch.save(seeded_state(model_name, 224, seed), ckpt)
        for opset in opsets:
            name = f'timm_onnx_export_{model_name}_op{opset}' + ('_reparam' if reparam else '')
            fd, path = tempfile.mkstemp(suffix='.onnx', dir=out_dir)
            os.close(fd)
            cmd = [sys.executable, os.path.join(timm_dir, 'onnx_export.py'), path, '--model', model_name,
                   '--opset', str(opset), '--checkpoint', ckpt] + (['--reparam'] if reparam else [])
            print('$ ' + ' '.join(cmd), flush=True)
            r = subprocess.run(cmd, cwd=timm_dir, env=dict(os.environ, PYTHONPATH=timm_dir),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            if r.returncode != 0:
                last = [l for l in r.stdout.splitlines() if l.strip()][-1:]
                failures.append(f'{name}: timm onnx_export.py failed (exit {r.returncode}): {last[0][:200] if last else ""}')
                os.remove(path)
                continue
            # onnx_export.py names its tensors input0/output0 and exports a dynamic batch; the reference is
            # timm's model built as onnx_export.py builds it (create_model + checkpoint, reparameterised).
            model = timm.create_model(model_name, pretrained=False, checkpoint_path=ckpt, exportable=True).eval()
            if reparam:
                from timm.utils.model import reparameterize_model
                model = reparameterize_model(model).eval()
            x = timm_vit.make_image(seed, 1, 224, 224)
            finish(out_dir, name, model, x, path, opset, True, True,
                   f'timm onnx_export.py --model {model_name} --opset {opset}' + (' --reparam' if reparam else ''),
                   entries)
            break  # the lowest opset that exports


# The ViTs issue 17 was filed with: each exported from timm at its opset, and also as ONNX Runtime saves
# it at its 'basic' optimisation level (tools/export/ort_optimize.js, given --ort), which is what a user
# who ships an ORT-optimised file hands to vitcc-pack.
VIT_CASES = (('vit_small_patch16_224', 17, {}), ('vit_tiny_patch16_224', 10, {}), ('deit_tiny_patch16_224', 13, {}),
             ('vit_small_patch14_reg4_dinov2', 17, dict(img_size=224)))


def vits(timm, out_dir, entries, failures, ort_module):
    for model_name, opset, kw in VIT_CASES:
        name = f'timm_{model_name}_op{opset}'
        seed = zlib.crc32(name.encode()) % 100000
        m = timm.create_model(model_name, pretrained=False, **kw)
        m.load_state_dict(timm_vit.make_model(model_name, seed=seed, **kw).state_dict(), strict=True)
        m.eval()
        size = kw.get('img_size', 224)
        x = timm_vit.make_image(seed, 1, size, size)
        fd, path = tempfile.mkstemp(suffix='.onnx', dir=out_dir)
        os.close(fd)
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            torch.onnx.export(m, x, path, opset_version=opset, input_names=['input'], output_names=['output'])
        if ort_module:
            opt = path + '.ort-basic.onnx'
            r = subprocess.run(['node', os.path.join(HERE, 'ort_optimize.js'), ort_module, 'basic', path, opt],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            if r.returncode != 0:
                failures.append(f'{name}_ortbasic: ort_optimize.js failed: {r.stdout.strip()[:200]}')
            else:
                finish(out_dir, name + '_ortbasic', m, x, opt, opset, True, False,
                       f'real timm {model_name}, opset {opset}, saved by ONNX Runtime at the basic level', entries, 'vit')
        finish(out_dir, name, m, x, path, opset, True, False, f'real timm {model_name}, opset {opset}', entries, 'vit')


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('timm_dir')
    ap.add_argument('out_dir')
    ap.add_argument('--set', default='all', choices=('matrix', 'tutorial', 'vit', 'all'))
    ap.add_argument('--ort', default='', help='onnxruntime-node folder: the vit set also saves each export as '
                    "ONNX Runtime's 'basic' level does")
    args = ap.parse_args(argv)
    timm_dir = os.path.abspath(args.timm_dir)
    sys.path.insert(0, timm_dir)
    import timm
    out_dir = os.path.abspath(args.out_dir)
    os.makedirs(out_dir, exist_ok=True)
    entries, failures = [], []
    if args.set in ('tutorial', 'all'):
        tutorial(timm_dir, timm, out_dir, entries, failures)
    if args.set in ('matrix', 'all'):
        matrix(timm, out_dir, entries, failures)
    if args.set in ('vit', 'all'):
        vits(timm, out_dir, entries, failures, args.ort)
    with open(os.path.join(out_dir, 'manifest.json'), 'w') as f:
        json.dump({'generator': 'tools/export/timm_real_fixtures.py', 'timm': timm.__version__,
                   'fixtures': entries, 'export_failures': failures}, f, indent=1)
    print(f'\n{len(entries)} fixtures from timm {timm.__version__}; the exporter failed on {len(failures)}:')
    for f in failures:
        print('  ' + f)
    return 0


if __name__ == '__main__':
    sys.exit(main())
