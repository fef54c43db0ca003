#!/usr/bin/env python3
"""Builds the fuzz targets' seed corpora (tests/fuzz) into OUT: one folder per target.

  make_seeds.py OUT --source SRC --demo-model DEMO_MODEL_DIR [--bad-models BAD_MODELS_DIR]

onnx/    tiny timm-layout ViTs exported with torch.onnx (a few variants and opsets, a few KB each),
         plus the small refusal cases of make_bad_models.py when their folder exists
blob/    the packed demo model's blob, and its first 64 / 4096 bytes
config/  the demo model's JSON config and a few edited copies
npy/     the demo input as .npy (format 1.0 and 2.0, float32 and float64) and as .bin
image/   the demo picture (PNG), a JPEG and binary PPM/PGM made from it

Seeds are rebuilt only when OUT/stamp is missing. Nothing here is committed to the repository.
"""
import argparse
import io
import json
import os
import shutil
import struct
import sys
import warnings


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb') as f:
        f.write(data)


def npy_bytes(arr, version):
    import numpy as np
    header = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (arr.dtype.str, repr(tuple(arr.shape)))
    prefix = 10 if version == 1 else 12
    pad = (64 - (prefix + len(header) + 1) % 64) % 64
    header = header + ' ' * pad + '\n'
    if version == 1:
        head = b'\x93NUMPY\x01\x00' + struct.pack('<H', len(header))
    else:
        head = b'\x93NUMPY\x02\x00' + struct.pack('<I', len(header))
    return head + header.encode('latin1') + np.ascontiguousarray(arr).tobytes()


def onnx_seeds(out, src):
    sys.path.insert(0, os.path.join(src, 'tools', 'export'))
    import torch
    from timm_vit import VisionTransformer
    variants = {
        'tiny_token_op17': (dict(), 17),
        'tiny_token_op13': (dict(), 13),
        'tiny_legacy_op11': (dict(legacy_split=True), 11),
        'tiny_avg_reg_op17': (dict(global_pool='avg', class_token=False, fc_norm=True), 17),
        'tiny_reg_layerscale_op13': (dict(reg_tokens=2, init_values=0.1), 13),
        'tiny_features_op17': (dict(features_only=True), 17),
    }
    torch.manual_seed(0)
    for name, (kw, opset) in variants.items():
        model = VisionTransformer(img_size=16, patch_size=8, embed_dim=16, depth=1, num_heads=2,
                                  mlp_ratio=2.0, num_classes=4, **kw).eval()
        buf = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            torch.onnx.export(model, torch.zeros(1, 3, 16, 16), buf, opset_version=opset,
                              do_constant_folding=(opset != 13), input_names=['input'], output_names=['output'])
        write(os.path.join(out, 'onnx', name + '.onnx'), buf.getvalue())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('out')
    ap.add_argument('--source', required=True)
    ap.add_argument('--demo-model', required=True)
    ap.add_argument('--bad-models')
    a = ap.parse_args()
    stamp = os.path.join(a.out, 'stamp')
    if os.path.exists(stamp):
        return 0
    shutil.rmtree(a.out, ignore_errors=True)
    import numpy as np

    onnx_seeds(a.out, a.source)
    if a.bad_models and os.path.isdir(a.bad_models):
        for f in sorted(os.listdir(a.bad_models)):
            p = os.path.join(a.bad_models, f)
            if f.endswith('.onnx') and os.path.getsize(p) < 600000:
                shutil.copy(p, os.path.join(a.out, 'onnx', 'bad_' + f))

    with open(os.path.join(a.demo_model, 'demo.json')) as f:
        cfg = json.load(f)
    # The blob the config names (demo.<checksum>.vitcc); our own freshly packed output.
    with open(os.path.join(a.demo_model, os.path.basename(cfg['blob']['file'])), 'rb') as f:
        blob = f.read()
    write(os.path.join(a.out, 'blob', 'demo.vitcc'), blob)
    write(os.path.join(a.out, 'blob', 'header_only'), blob[:64])
    write(os.path.join(a.out, 'blob', 'table_only'), blob[:4096])

    write(os.path.join(a.out, 'config', 'demo.json'), json.dumps(cfg, indent=2).encode())
    edits = {
        'no_self_check': lambda c: c.pop('self_check'),
        'tokens': lambda c: c['output'].update(shape=[1, 145, 96], kind='tokens'),
        'other_files': lambda c: (c['blob'].update(file='x.vitcc'), c.update(header='x.hpp')),
    }
    for name, edit in edits.items():
        c = json.loads(json.dumps(cfg))
        edit(c)
        write(os.path.join(a.out, 'config', name + '.json'), json.dumps(c).encode())

    x = np.fromfile(os.path.join(a.source, 'demo', 'input.bin'), dtype='<f4').reshape(1, 3, 96, 96)
    write(os.path.join(a.out, 'npy', 'v1_f4.npy'), npy_bytes(x, 1))
    write(os.path.join(a.out, 'npy', 'v2_f4_chw.npy'), npy_bytes(x[0], 2))
    write(os.path.join(a.out, 'npy', 'v1_f8.npy'), npy_bytes(x.astype('<f8'), 1))
    write(os.path.join(a.out, 'npy', 'raw.bin'), b'\x01' + x.tobytes()[1:])  # odd first byte: the .bin reader

    from PIL import Image
    png = os.path.join(a.source, 'demo', 'input.png')
    with open(png, 'rb') as f:
        write(os.path.join(a.out, 'image', 'demo.png'), f.read())
    im = Image.open(png).convert('RGB').resize((40, 30))
    for name, kw in {'small.jpg': dict(format='JPEG', quality=80), 'small.png': dict(format='PNG'),
                     'small.ppm': dict(format='PPM')}.items():
        buf = io.BytesIO()
        im.save(buf, **kw)
        write(os.path.join(a.out, 'image', name), buf.getvalue())
    buf = io.BytesIO()
    im.convert('L').save(buf, format='PPM')
    write(os.path.join(a.out, 'image', 'grey.pgm'), buf.getvalue())
    buf = io.BytesIO()
    im.save(buf, format='JPEG', progressive=True)
    write(os.path.join(a.out, 'image', 'progressive.jpg'), buf.getvalue())
    write(stamp, b'1\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
