#!/usr/bin/env python3
"""Writes ONNX files that vitcc-pack must refuse, and what its error must say about each.

Usage: make_bad_models.py OUT_DIR

Each case is either a valid export of something vitcc does not model (tanh GELU, q/k norm, an
extra op inside a block, a CNN) or a damaged file (unknown op, missing initializer, a cycle,
external data that is missing, short or outside the model's folder). OUT_DIR/cases.json lists
{file, expect: [substrings the one-line error must contain]}. Deterministic; cached by a stamp.
"""
import hashlib
import json
import os
import shutil
import sys

import onnx
import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import timm_vit  # noqa: E402

DEMO = os.path.join(HERE, '..', '..', 'demo', 'demo.onnx')


def stamp():
    h = hashlib.sha256()
    for p in (__file__, os.path.join(HERE, 'timm_vit.py'), DEMO):
        with open(p, 'rb') as f:
            h.update(f.read())
    return h.hexdigest()[:32]


def tiny(**kw):
    args = dict(img_size=32, patch_size=8, embed_dim=64, depth=2, num_heads=2, num_classes=10)
    args.update(kw)
    return timm_vit.make_model('vit_tiny_patch16_224', seed=3, **args)


def export(model, path, size=32, opset=17):
    x = torch.randn(1, 3, size, size)
    torch.onnx.export(model.eval(), x, path, opset_version=opset, input_names=['input'],
                      output_names=['output'])


def first(nodes, op):
    return next(n for n in nodes if n.op_type == op)


def main(out):
    os.makedirs(out, exist_ok=True)
    cases_path = os.path.join(out, 'cases.json')
    s = stamp()
    if os.path.exists(cases_path):
        with open(cases_path) as f:
            if json.load(f).get('stamp') == s:
                print('bad models up to date')
                return
    cases = []
    demo = onnx.load(DEMO)

    m = onnx.ModelProto(); m.CopyFrom(demo)
    node = first(m.graph.node, 'Erf')
    node.op_type = 'FooBarOp'
    onnx.save(m, os.path.join(out, 'unsupported_op.onnx'))
    cases.append({'file': 'unsupported_op.onnx', 'expect': ['FooBarOp', node.name or node.output[0]]})

    m = onnx.ModelProto(); m.CopyFrom(demo)
    mm = first(m.graph.node, 'MatMul')
    weight = next(i for i in mm.input if any(t.name == i for t in m.graph.initializer))
    keep = [t for t in m.graph.initializer if t.name != weight]
    del m.graph.initializer[:]
    m.graph.initializer.extend(keep)
    onnx.save(m, os.path.join(out, 'missing_initializer.onnx'))
    cases.append({'file': 'missing_initializer.onnx', 'expect': [weight]})

    m = onnx.ModelProto(); m.CopyFrom(demo)
    add = [n for n in m.graph.node if n.op_type == 'Add']
    a, b = add[2], add[5]
    a.input[0] = b.output[0]  # a now depends on b, which depends on a
    onnx.save(m, os.path.join(out, 'cyclic.onnx'))
    cases.append({'file': 'cyclic.onnx', 'expect': ['cycl']})

    model = tiny()
    for blk in model.blocks:
        blk.mlp.act = nn.GELU(approximate='tanh')
    export(model, os.path.join(out, 'tanh_gelu.onnx'))
    cases.append({'file': 'tanh_gelu.onnx', 'expect': ['Tanh']})

    model = tiny()
    for blk in model.blocks:
        blk.attn.q_norm = nn.LayerNorm(32, eps=1e-6)
        blk.attn.k_norm = nn.LayerNorm(32, eps=1e-6)
    export(model, os.path.join(out, 'qk_norm.onnx'))
    cases.append({'file': 'qk_norm.onnx', 'expect': ['node']})

    model = tiny()
    inner = model.blocks[1].mlp.act
    model.blocks[1].mlp.act = nn.Sequential(inner, nn.Hardtanh())
    export(model, os.path.join(out, 'extra_op_in_block.onnx'))
    cases.append({'file': 'extra_op_in_block.onnx', 'expect': ['node']})

    # timm global_pool='' with a head: per-token logits, which vitcc does not model.
    export(tiny(global_pool='', num_classes=10), os.path.join(out, 'head_on_every_token.onnx'))
    cases.append({'file': 'head_on_every_token.onnx', 'expect': ['every token', '/head/MatMul']})

    import torchvision
    torch.manual_seed(0)
    export(torchvision.models.resnet18(weights=None), os.path.join(out, 'resnet18.onnx'), size=64, opset=13)
    cases.append({'file': 'resnet18.onnx', 'expect': ['node']})

    # External data: the demo's weights moved out of the .onnx file, then damaged.
    for case, expect in (('external_escape', ['escapes the model', 'folder']), ('external_missing', ['is missing']),
                         ('external_short', ['too short'])):
        d = os.path.join(out, case)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        m = onnx.ModelProto(); m.CopyFrom(demo)
        onnx.save_model(m, os.path.join(d, 'model.onnx'), save_as_external_data=True,
                        all_tensors_to_one_file=True, location='weights.bin', size_threshold=0)
        if case == 'external_escape':
            m = onnx.load(os.path.join(d, 'model.onnx'), load_external_data=False)
            for t in m.graph.initializer:
                for e in t.external_data:
                    if e.key == 'location':
                        e.value = '../escaped_weights.bin'
            onnx.save(m, os.path.join(d, 'model.onnx'))
            # The file it points to exists, so only the location check can refuse it.
            shutil.move(os.path.join(d, 'weights.bin'), os.path.join(out, 'escaped_weights.bin'))
        elif case == 'external_missing':
            os.remove(os.path.join(d, 'weights.bin'))
        else:
            p = os.path.join(d, 'weights.bin')
            size = os.path.getsize(p)
            with open(p, 'r+b') as f:
                f.truncate(size // 2)
        cases.append({'file': case + '/model.onnx', 'expect': expect})

    with open(cases_path + '.tmp', 'w') as f:
        json.dump({'stamp': s, 'cases': cases}, f, indent=1)
    os.replace(cases_path + '.tmp', cases_path)
    print(f'wrote {len(cases)} refusal cases to {out}')


if __name__ == '__main__':
    main(sys.argv[1])
