#!/usr/bin/python3
"""Rewrites a float32 ONNX model into the dynamic-int8 form ONNX Runtime's `quantize_dynamic` produces, so
`make bench-compare` can time ONNX Runtime int8 next to vitcc int8 (onnxruntime's Python tools are not
installed here; this needs only the onnx package and numpy).

Every MatMul whose B is a float32 initializer, and every Gemm with a constant B (transA 0, alpha and
beta 1), becomes

    X -> DynamicQuantizeLinear -> (Xq uint8, x_scale, x_zero_point)      one per distinct activation
    MatMulInteger(Xq, Wq int8, x_zero_point, w_zero_point 0) -> int32
    Cast(float) -> Mul(x_scale * w_scale) [-> Add(C) for a Gemm's bias]

which is what quantize_dynamic writes with its defaults (QUInt8 activations with a zero point, QInt8
symmetric weights, per_channel False): w_scale = max|W| / 127, Wq = round_half_even(W / w_scale) in
[-127, 127]. --per-channel gives one scale per output column instead. ONNX Runtime's graph optimiser
fuses the chain into DynamicQuantizeMatMul / MatMulIntegerToFloat at run time. A MatMul's bias Add
stays where it is. Left float32, as this form has no integer op for them here: Conv (quantize_dynamic
would write ConvInteger), and MatMuls of two activations (attention's q k^T and p v).

    ort_quantize.py IN.onnx OUT.onnx [--per-channel]
    ort_quantize.py IN.onnx OUT.onnx --check FIXTURE_DIR --ort ORT_MODULE_DIR

--check runs both models in ONNX Runtime (tools/bench/ort_runner.js, the Node binding the comparison
uses) on FIXTURE_DIR/input.bin and prints the cosine of the int8 output to the float32 one and to
FIXTURE_DIR/reference.bin (PyTorch); it exits 1 when the cosine to float32 is below --min-cosine.
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))


def quantize_weight(w, per_channel):
    """w: [K, N] float32. Returns (int8 [K, N], scale scalar or [N] float32), symmetric, range [-127, 127]."""
    absmax = np.abs(w).max(axis=0) if per_channel else np.abs(w).max()
    scale = (np.asarray(absmax, dtype=np.float64) / 127.0).astype(np.float32)
    safe = np.where(scale > 0, scale, 1.0).astype(np.float32)
    q = np.clip(np.round(w / safe), -127, 127).astype(np.int8)
    return q, scale


def quantize_model(model, per_channel=False):
    """Rewrites model.graph in place; returns a dict of counts for the summary line."""
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    counts = {'MatMul': 0, 'MatMul_skipped': 0, 'Gemm': 0, 'Gemm_skipped': 0}
    uses = {}
    for n in g.node:
        for i in n.input:
            uses[i] = uses.get(i, 0) + 1
    dql = {}  # activation name -> (q, scale, zero point) outputs of its DynamicQuantizeLinear
    new_nodes = []
    new_inits = []
    dropped = set()

    def quantized_input(x):
        if x not in dql:
            base = x.replace('/', '_').strip('_') or 'x'
            outs = (base + '_quant', base + '_scale', base + '_zero_point')
            new_nodes.append(helper.make_node('DynamicQuantizeLinear', [x], list(outs), name=base + '_DynamicQuantizeLinear'))
            dql[x] = outs
        return dql[x]

    for n in g.node:
        w = None
        if n.op_type == 'MatMul' and n.input[1] in inits and inits[n.input[1]].data_type == TensorProto.FLOAT:
            w = numpy_helper.to_array(inits[n.input[1]])
            if w.ndim != 2:
                w = None
        elif n.op_type == 'Gemm' and n.input[1] in inits and inits[n.input[1]].data_type == TensorProto.FLOAT:
            a = {at.name: helper.get_attribute_value(at) for at in n.attribute}
            if a.get('transA', 0) == 0 and a.get('alpha', 1.0) == 1.0 and a.get('beta', 1.0) == 1.0:
                w = numpy_helper.to_array(inits[n.input[1]])
                if a.get('transB', 0):
                    w = w.T
        if w is None:
            if n.op_type in ('MatMul', 'Gemm'):
                counts[n.op_type + '_skipped'] += 1
            new_nodes.append(n)
            continue
        counts[n.op_type] += 1
        x, bname, y = n.input[0], n.input[1], n.output[0]
        uses[bname] -= 1
        if uses[bname] == 0:
            dropped.add(bname)
        xq, xs, xzp = quantized_input(x)
        q, scale = quantize_weight(np.ascontiguousarray(w, dtype=np.float32), per_channel)
        tag = (n.name or y).replace('/', '_').strip('_')
        wq_name, ws_name, wzp_name = tag + '_W_quantized', tag + '_W_scale', tag + '_W_zero_point'
        new_inits += [numpy_helper.from_array(q, wq_name), numpy_helper.from_array(scale, ws_name),
                      numpy_helper.from_array(np.zeros(scale.shape, dtype=np.int8), wzp_name)]
        has_bias = n.op_type == 'Gemm' and len(n.input) > 2 and n.input[2]
        prod = tag + '_output_scaled'
        new_nodes += [
            helper.make_node('MatMulInteger', [xq, wq_name, xzp, wzp_name], [tag + '_MatMulInteger'],
                             name=tag + '_MatMulInteger'),
            helper.make_node('Cast', [tag + '_MatMulInteger'], [tag + '_MatMulInteger_cast'], to=TensorProto.FLOAT,
                             name=tag + '_Cast'),
            helper.make_node('Mul', [xs, ws_name], [tag + '_scales_mul'], name=tag + '_scales_mul'),
            helper.make_node('Mul', [tag + '_MatMulInteger_cast', tag + '_scales_mul'],
                             [prod if has_bias else y], name=tag + '_output_scale_mul'),
        ]
        if has_bias:
            new_nodes.append(helper.make_node('Add', [prod, n.input[2]], [y], name=tag + '_bias_add'))

    keep = [t for t in g.initializer if t.name not in dropped]
    del g.initializer[:]
    g.initializer.extend(keep + new_inits)
    del g.node[:]
    g.node.extend(new_nodes)
    return counts


def default_opset(model):
    return next((op.version for op in model.opset_import if op.domain in ('', 'ai.onnx')), 0)


# Ops whose opset-11 form reads a model written for opset 10 differently, other than Pad (rewritten below).
# onnx.version_converter would do this, but onnx 1.12's fails on the EfficientViT exports (Constant nodes).
OPSET11_BREAKING = {'Clip', 'Resize', 'Upsample', 'TopK', 'Scatter', 'DepthToSpace', 'Round', 'Range', 'BitShift'}


def upgrade_to_opset11(model):
    """Opset 10 -> 11, which DynamicQuantizeLinear needs (quantize_dynamic upgrades old models too; EfficientViT's
    tutorial export is opset 10). Of what these exports use only Pad changed meaning: its pads and value move from
    attributes to inputs. Anything else that changed is refused rather than guessed."""
    g = model.graph
    bad = sorted({n.op_type for n in g.node if n.op_type in OPSET11_BREAKING})
    if bad:
        sys.exit('ort_quantize: cannot upgrade %s from opset %d to 11 by hand: %s changed meaning'
                 % (g.name, default_opset(model), ', '.join(bad)))
    for n in g.node:
        if n.op_type != 'Pad':
            continue
        a = {at.name: helper.get_attribute_value(at) for at in n.attribute}
        tag = (n.name or n.output[0]).replace('/', '_').strip('_')
        g.initializer.append(numpy_helper.from_array(np.array(a['pads'], dtype=np.int64), tag + '_pads'))
        g.initializer.append(numpy_helper.from_array(np.array(a.get('value', 0.0), dtype=np.float32), tag + '_value'))
        del n.input[1:]
        n.input.extend([tag + '_pads', tag + '_value'])
        mode = a.get('mode', b'constant')
        del n.attribute[:]
        n.attribute.append(helper.make_attribute('mode', mode.decode() if isinstance(mode, bytes) else mode))
    for op in model.opset_import:
        if op.domain in ('', 'ai.onnx'):
            op.version = 11


def run_ort(ort_dir, model, fixture, out_path):
    cmd = ['node', os.path.join(HERE, 'ort_runner.js'), ort_dir, model, os.path.join(fixture, 'input.bin'), '1', '0', '1',
           out_path]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return np.fromfile(out_path, dtype=np.float32).astype(np.float64)


def cosine(a, b):
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('input')
    ap.add_argument('output')
    ap.add_argument('--per-channel', action='store_true', help='one weight scale per output column')
    ap.add_argument('--check', metavar='FIXTURE_DIR', help='compare float32 and int8 outputs in ONNX Runtime')
    ap.add_argument('--ort', help='onnxruntime-node folder (for --check)')
    ap.add_argument('--min-cosine', type=float, default=0.99)
    args = ap.parse_args()

    model = onnx.load(args.input)
    if default_opset(model) < 11:
        upgrade_to_opset11(model)
    counts = quantize_model(model, args.per_channel)
    onnx.checker.check_model(model)
    tmp = args.output + '.tmp'
    onnx.save(model, tmp)
    os.replace(tmp, args.output)
    print('ort_quantize: %s -> %s: %d MatMul and %d Gemm to MatMulInteger (int8 weights, %s, symmetric; uint8 '
          'activations with zero point); left float32: %d MatMul, %d Gemm without constant weights'
          % (args.input, args.output, counts['MatMul'], counts['Gemm'], 'per channel' if args.per_channel else 'per tensor',
             counts['MatMul_skipped'], counts['Gemm_skipped']))
    if not args.check:
        return
    if not args.ort:
        sys.exit('ort_quantize: --check needs --ort ORT_MODULE_DIR')
    with tempfile.TemporaryDirectory() as td:
        f32 = run_ort(args.ort, args.input, args.check, os.path.join(td, 'fp32.bin'))
        i8 = run_ort(args.ort, args.output, args.check, os.path.join(td, 'int8.bin'))
    ref_path = os.path.join(args.check, 'reference.bin')
    c = cosine(i8, f32)
    line = 'ort_quantize: ONNX Runtime int8 vs float32: cosine %.6f, max abs error %.3g (max |fp32| %.3g)' % (
        c, np.abs(i8 - f32).max(), np.abs(f32).max())
    if os.path.exists(ref_path):
        ref = np.fromfile(ref_path, dtype=np.float32).astype(np.float64)
        if ref.size == i8.size:
            line += '; vs PyTorch reference: int8 %.6f, float32 %.9f' % (cosine(i8, ref), cosine(f32, ref))
    print(line)
    if c < args.min_cosine:
        sys.exit('ort_quantize: cosine %.6f below %.4f: the rewrite is wrong' % (c, args.min_cosine))


if __name__ == '__main__':
    main()
