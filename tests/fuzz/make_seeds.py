#!/usr/bin/env python3
"""Builds the fuzz targets' seed corpora (tests/fuzz) into OUT: one folder per target.

  make_seeds.py OUT --source SRC --demo-model DEMO_MODEL_DIR [--bad-models BAD_MODELS_DIR]

onnx/    tiny timm-layout ViTs exported with torch.onnx (a few variants and opsets, a few KB each),
         plus the small refusal cases of make_bad_models.py when their folder exists
onnx_graph/  small hand-made graphs with shape subgraphs using every supported op
         (fuzz_onnx_graph, which also reads onnx/)
onnx_models/ the two bundled demo models, for long fuzz_onnx_graph runs (FUZZ_ONNX_MODELS=1)
blob/    the packed demo model's blob, and its first 64 / 4096 bytes
config/  the demo model's JSON config and a few edited copies
npy/     the demo input as .npy (format 1.0 and 2.0, float32 and float64) and as .bin
image/   the demo picture (PNG), a JPEG and binary PPM/PGM made from it

Seeds are rebuilt only when OUT/stamp is missing or from an older version of this script (STAMP).
Nothing here is committed to the repository.
"""
import argparse
import io
import json
import os
import shutil
import struct
import sys
import warnings

STAMP = b'5\n'  # bump when the seeds change, so that existing seed folders are rebuilt


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


def graph_seeds(out, src):
    """Small hand-made graphs for fuzz_onnx_graph: shape subgraphs as exporters write them, using
    every op vitcc-pack supports, at opsets 10, 13, 17 and 18, with ordinary constants only (the
    mutator brings the edge values). The demo models go to onnx_models/, which tools/fuzz.sh reads
    only when asked: under ASan one execution of demo.onnx takes 1.5 s and of evit_demo.onnx 0.3 s,
    of a tiny ViT export (onnx/) 0.045 s, and their mutated copies crowd the corpus (a quarter of
    the entries after 10 minutes, most of the time spent), which starves the shape graphs."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    def i64(name, values, scalar=False):
        a = np.array(values, dtype=np.int64)
        return numpy_helper.from_array(a.reshape(()) if scalar else a, name)

    def f32(name, values, shape=None):
        a = np.array(values, dtype=np.float32)
        return numpy_helper.from_array(a.reshape(shape) if shape is not None else a, name)

    def const(name, tensor):
        return helper.make_node('Constant', [], [name], name=name, value=tensor)

    def model(name, nodes, inits, opset, rank, batch=1, out_name='y'):
        x = helper.make_tensor_value_info('x', TensorProto.FLOAT, [batch, 3, 8, 8])
        y = helper.make_tensor_value_info(out_name, TensorProto.FLOAT, [f'd{k}' for k in range(rank)])
        g = helper.make_graph(nodes, name, [x], [y], initializer=inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid('', opset)], producer_name='vitcc-seeds')
        m.ir_version = 8
        if opset <= 17:
            onnx.checker.check_model(m)
        write(os.path.join(out, 'onnx_graph', name + '.onnx'), m.SerializeToString())

    N = helper.make_node
    # Reshape to a target computed from Shape: Gather, Mul, Div, Add, Sub, Neg, Unsqueeze, Concat.
    for opset in (10, 13, 17):
        unsq = (lambda i, o: N('Unsqueeze', [i], [o], axes=[0])) if opset < 13 else \
               (lambda i, o: N('Unsqueeze', [i, 'ax0'], [o]))
        nodes = [
            N('Shape', ['x'], ['s']),
            N('Gather', ['s', 'k0'], ['n'], axis=0), N('Gather', ['s', 'k1'], ['c']),
            N('Gather', ['s', 'k2'], ['h']), N('Gather', ['s', 'k3'], ['w']),
            const('two', i64('two', 2, scalar=True)),
            N('Mul', ['h', 'w'], ['hw']), N('Div', ['hw', 'two'], ['half']),
            N('Add', ['c', 'one'], ['c1']), N('Sub', ['c1', 'one'], ['c2']),
            N('Neg', ['n'], ['nn1']), N('Neg', ['nn1'], ['nn']),
            unsq('nn', 'u0'), unsq('c2', 'u1'), unsq('half', 'u2'), unsq('two', 'u3'),
            N('Concat', ['u0', 'u1', 'u2', 'u3'], ['target'], axis=0),
            N('Reshape', ['x', 'target'], ['r']),
            N('Transpose', ['r'], ['t'], perm=[0, 2, 1, 3]),
            N('Relu', ['t'], ['y']),
        ]
        inits = [i64('k0', 0, True), i64('k1', 1, True), i64('k2', 2, True), i64('k3', 3, True),
                 i64('one', 1, True), i64('ax0', [0])]
        model(f'reshape_by_shape_op{opset}', nodes, inits, opset, 4, batch='N')

    # Range over a dimension, Cast, broadcast Add, Slice with steps, Gather of several indices.
    for opset in (11, 13, 17):
        nodes = [
            N('Shape', ['x'], ['s']), N('Gather', ['s', 'k3'], ['w']),
            N('Range', ['zero', 'w', 'one'], ['idx']),
            N('Cast', ['idx'], ['idxf'], to=TensorProto.FLOAT),
            N('Add', ['x', 'idxf'], ['pos']),
            N('Slice', ['pos', 'starts', 'ends', 'axes', 'steps'], ['sl']),
            N('Gather', ['sl', 'pick'], ['g'], axis=1),
            N('Mul', ['g', 'half'], ['y']),
        ]
        inits = [i64('k3', 3, True), i64('zero', 0, True), i64('one', 1, True), i64('starts', [1, 0]),
                 i64('ends', [-1, 3]), i64('axes', [3, 1]), i64('steps', [2, 1]), i64('pick', [0, 2]),
                 f32('half', 0.5)]
        model(f'range_slice_op{opset}', nodes, inits, opset, 4)

    # ConstantOfShape, Expand, Equal, Where, Pad (input form), Sqrt.
    for opset in (13, 17):
        nodes = [
            N('Shape', ['x'], ['s']),
            N('ConstantOfShape', ['s'], ['ones'], value=f32('v', [1.0])),
            N('Expand', ['mask', 's'], ['m']),
            N('Equal', ['m', 'ones'], ['eq']),
            N('Where', ['eq', 'x', 'ones'], ['wh']),
            N('Pad', ['wh', 'pads', 'padv'], ['p'], mode='constant'),
            N('Relu', ['p'], ['pr']), N('Sqrt', ['pr'], ['y']),
        ]
        inits = [f32('mask', [1, 0, 1, 0, 1, 0, 1, 0], [1, 1, 1, 8]), i64('pads', [0, 0, 1, 2, 0, 0, 2, 1]),
                 f32('padv', 0.25)]
        model(f'expand_where_pad_op{opset}', nodes, inits, opset, 4)

    # A small CNN head at opset 10 (attribute forms): Pad, Conv, BatchNormalization,
    # GlobalAveragePool, Flatten, Gemm, Softmax, Squeeze/Unsqueeze/Split with attributes.
    rng = np.random.default_rng(0)
    nodes = [
        N('Pad', ['x'], ['px'], pads=[0, 0, 1, 1, 0, 0, 1, 1], value=0.0),
        N('Conv', ['px', 'cw', 'cb'], ['cv'], strides=[2, 2], pads=[0, 0, 0, 0], dilations=[1, 1], group=1),
        N('BatchNormalization', ['cv', 'bs', 'bb', 'bm', 'bv'], ['bn'], epsilon=1e-5),
        N('Relu', ['bn'], ['r']),
        N('Split', ['r'], ['r1', 'r2'], axis=1, split=[2, 2]),
        N('Add', ['r1', 'r2'], ['r3']),
        N('GlobalAveragePool', ['r3'], ['gp']),
        N('Squeeze', ['gp'], ['sq'], axes=[3]),
        N('Unsqueeze', ['sq'], ['us'], axes=[3]),
        N('Flatten', ['us'], ['fl'], axis=1),
        N('Gemm', ['fl', 'gw', 'gb'], ['gm'], transB=1, alpha=1.0, beta=1.0),
        N('Softmax', ['gm'], ['y'], axis=1),
    ]
    inits = [f32('cw', rng.standard_normal(4 * 3 * 3 * 3) * 0.2, [4, 3, 3, 3]), f32('cb', [0.1, -0.1, 0.0, 0.2]),
             f32('bs', [1, 1.5, 0.5, 1]), f32('bb', [0, 0.1, 0, -0.1]), f32('bm', [0, 0.2, 0, 0.1]),
             f32('bv', [1, 2, 1, 0.5]), f32('gw', rng.standard_normal(5 * 2) * 0.3, [5, 2]), f32('gb', [0] * 5)]
    model('cnn_head_op10', nodes, inits, 10, 2)

    # Attention-like block at opsets 13, 17 and 18: LayerNormalization (17+; ReduceMean form before),
    # MatMul, Split, Softmax, ReduceMean, Erf/Tanh/Sigmoid/Exp/Reciprocal/Pow, Dropout, Identity,
    # Squeeze/Unsqueeze with axes inputs.
    for opset in (13, 17, 18):
        nodes = [
            N('Reshape', ['x', 'tshape'], ['t0']),
            N('Transpose', ['t0'], ['t'], perm=[0, 2, 1]),
        ]
        if opset >= 17:
            nodes.append(N('LayerNormalization', ['t', 'ln_w', 'ln_b'], ['ln'], axis=-1, epsilon=1e-5))
        else:
            red = dict(axes=[-1])
            nodes += [N('ReduceMean', ['t'], ['mu'], **red), N('Sub', ['t', 'mu'], ['xc']),
                      N('Pow', ['xc', 'two_f'], ['sq']), N('ReduceMean', ['sq'], ['var'], **red),
                      N('Add', ['var', 'eps'], ['ve']), N('Sqrt', ['ve'], ['sd']),
                      N('Div', ['xc', 'sd'], ['ln'])]
        split = N('Split', ['qk', 'split'], ['q', 'k']) if opset < 18 else N('Split', ['qk'], ['q', 'k'], axis=-1, num_outputs=2)
        if opset < 18:
            split.attribute.append(helper.make_attribute('axis', -1))
        nodes += [
            N('MatMul', ['ln', 'wqk'], ['qk']), split,
            N('Transpose', ['k'], ['kt'], perm=[0, 2, 1]),
            N('MatMul', ['q', 'kt'], ['att']),
            N('Softmax', ['att'], ['sm'], axis=-1),
            N('MatMul', ['sm', 'q'], ['o']),
            N('Erf', ['o'], ['e1']), N('Tanh', ['e1'], ['e2']), N('Sigmoid', ['e2'], ['e3']),
            N('Exp', ['e3'], ['e4']), N('Add', ['e4', 'two_f'], ['e5']), N('Reciprocal', ['e5'], ['e6']),
            N('Dropout', ['e6'], ['d']), N('Identity', ['d'], ['id']),
            N('Unsqueeze', ['id', 'ax0'], ['u']), N('Squeeze', ['u', 'ax0'], ['sq2']),
        ]
        if opset >= 18:
            nodes.append(N('ReduceMean', ['sq2', 'ax1'], ['y'], keepdims=1))
        else:
            nodes.append(N('ReduceMean', ['sq2'], ['y'], axes=[1], keepdims=1))
        inits = [i64('tshape', [1, 3, 64]), f32('ln_w', [1, 1, 1]), f32('ln_b', [0, 0, 0]),
                 f32('wqk', rng.standard_normal(3 * 4) * 0.5, [3, 4]), i64('split', [2, 2]),
                 f32('two_f', 2.0), f32('eps', 1e-5), i64('ax0', [0]), i64('ax1', [1])]
        model(f'attention_like_op{opset}', nodes, inits, opset, 3)

    # Integer arithmetic on shapes at opset 17: Shape with start, Cast int64 <-> int32, Equal and Where
    # on ints, Range to a computed limit, ConstantOfShape of int64, Expand to a computed shape.
    nodes = [
        N('Shape', ['x'], ['s'], start=2),
        N('ReduceMean', ['x'], ['xm'], axes=[2, 3], keepdims=1),
        N('Cast', ['s'], ['s32'], to=TensorProto.INT32), N('Cast', ['s32'], ['s64'], to=TensorProto.INT64),
        N('Mul', ['s64', 'three'], ['s3']), N('Sub', ['s3', 's64'], ['s2']), N('Div', ['s2', 'four'], ['sd']),
        N('Equal', ['sd', 'four'], ['iseq']), N('Where', ['iseq', 'sd', 's64'], ['lim']),
        N('ReduceMean', ['limf'], ['limm'], keepdims=0),
        N('Cast', ['lim'], ['limf'], to=TensorProto.FLOAT),
        N('Gather', ['lim', 'k0'], ['l0']),
        N('Range', ['zero', 'l0', 'one'], ['r']),
        N('Concat', ['one_v', 'r_len'], ['eshape'], axis=0),
        N('Shape', ['r'], ['r_len']),
        N('ConstantOfShape', ['eshape'], ['ci'], value=i64('cv', [7])),
        N('Cast', ['ci'], ['cf'], to=TensorProto.FLOAT),
        N('Expand', ['cf', 'xshape'], ['ex']),
        N('Mul', ['xm', 'ex'], ['y']),
    ]
    # topological order as an exporter writes it
    order = ['s', 'xm', 's32', 's64', 's3', 's2', 'sd', 'iseq', 'lim', 'limf', 'limm', 'l0', 'r', 'r_len', 'eshape',
             'ci', 'cf', 'ex', 'y']
    nodes.sort(key=lambda n: order.index(n.output[0]))
    inits = [i64('three', 3, True), i64('four', 4, True), i64('zero', 0, True), i64('one', 1, True),
             i64('k0', 0, True), i64('one_v', [1]), i64('xshape', [1, 3, 1, 4])]
    model('int_shape_arith_op17', nodes, inits, 17, 4)

    # What torch.onnx writes for `x.reshape(B, (H // p) * (W // p) + 1, -1)` and
    # `cls_token.expand(B, -1, -1)` without constant folding (opset 13): arithmetic on Constant nodes
    # next to the Shape subgraph, and the ConstantOfShape * -1 / Equal / Where pattern of Expand.
    nodes = [
        N('Shape', ['x'], ['s']), N('Gather', ['s', 'k0'], ['b']),
        const('c8', i64('c8', 8, scalar=True)), const('c4', i64('c4', 4, scalar=True)),
        const('c1', i64('c1', 1, scalar=True)), const('cm1', i64('cm1', [-1])),
        N('Div', ['c8', 'c4'], ['gh']), N('Div', ['c8', 'c4'], ['gw']), N('Mul', ['gh', 'gw'], ['g']),
        N('Add', ['g', 'c1'], ['t']),
        N('Unsqueeze', ['b', 'ax0'], ['bu']), N('Unsqueeze', ['t', 'ax0'], ['tu']),
        N('Concat', ['bu', 'tu', 'cm1'], ['target'], axis=0),
        N('ConstantOfShape', ['three_v'], ['ones'], value=i64('one1', [1])),
        N('Mul', ['ones', 'cm1'], ['neg']),
        N('Equal', ['target', 'neg'], ['is_neg']),
        N('Where', ['is_neg', 'ones', 'target'], ['eshape']),
        N('Expand', ['cls', 'eshape'], ['cls_b']),
        N('Pad', ['x', 'pads'], ['xp'], mode='constant'),
        N('Reshape', ['xp', 'target'], ['r']),
        N('Concat', ['cls_b', 'r'], ['y'], axis=1),
    ]
    inits = [i64('k0', 0, True), i64('ax0', [0]), i64('three_v', [3]), f32('cls', [0.5] * 54, [1, 1, 54]),
             i64('pads', [0, 0, 1, 0, 0, 0, 0, 2])]
    model('torch_unfolded_shape_op13', nodes, inits, 13, 3)

    for f in ('demo.onnx', 'evit_demo.onnx'):
        with open(os.path.join(src, 'demo', f), 'rb') as fh:
            write(os.path.join(out, 'onnx_models', f), fh.read())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('out')
    ap.add_argument('--source', required=True)
    ap.add_argument('--demo-model', required=True)
    ap.add_argument('--bad-models')
    a = ap.parse_args()
    stamp = os.path.join(a.out, 'stamp')
    if os.path.exists(stamp) and open(stamp, 'rb').read() == STAMP:
        return 0
    shutil.rmtree(a.out, ignore_errors=True)
    import numpy as np

    onnx_seeds(a.out, a.source)
    graph_seeds(a.out, a.source)
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
    write(stamp, STAMP)
    return 0


if __name__ == '__main__':
    sys.exit(main())
