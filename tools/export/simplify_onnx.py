"""Rewrites an exported ONNX file the way a simplifier does, with the onnx package alone (issue 17).

onnxsim and onnxoptimizer are not reachable here (PyPI), so this builds the spellings they produce:
  * constants folded: every node whose inputs are all constant (Constant nodes, initializers, and Shape
    of a value whose shape is static) becomes an initializer (onnx_numpy_eval.py computes it);
  * MatMul + Add on 2-D values, with a constant weight and a constant bias vector, become one Gemm
    (onnxoptimizer's fuse_matmul_add_bias_into_gemm);
  * Identity nodes are removed, and initializers no node reads.
With --gemm-variants every Gemm with a constant weight and bias is then spelled the other way round:
transB flipped (the weight stored transposed and doubled), alpha halved and beta quartered (the bias
times 4). Powers of two keep the values, and the tests cover transB 0 and 1 and alpha and beta.

Not covered (what vitcc-pack meets from the real tools and this does not make): onnxoptimizer's
fuse_bn_into_conv, fuse_add_bias_into_conv, fuse_pad_into_conv and fuse_consecutive_* passes, and
onnxsim's rewrites of dynamic-shape subgraphs beyond folding.

Usage: /usr/bin/python3 tools/export/simplify_onnx.py IN.onnx OUT.onnx [--gemm-variants]
"""
import argparse
import os
import sys

import numpy as np
import onnx
from onnx import helper, numpy_helper, shape_inference

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from onnx_numpy_eval import eval_node  # noqa: E402


def static_shapes(model):
    shapes = {}
    inferred = shape_inference.infer_shapes(model)
    g = inferred.graph
    for vi in list(g.value_info) + list(g.input) + list(g.output):
        t = vi.type.tensor_type
        if not t.HasField('shape'):
            continue
        dims = [d.dim_value if d.HasField('dim_value') else 0 for d in t.shape.dim]
        if all(d > 0 for d in dims):
            shapes[vi.name] = dims
    return shapes


def simplify(model, gemm_variants=False):
    g = model.graph
    opset = max(o.version for o in model.opset_import if o.domain in ('', 'ai.onnx'))
    outputs = {o.name for o in g.output}
    consts = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    shapes = static_shapes(model)

    alias, kept = {}, []
    for n in g.node:
        ins = [alias.get(i, i) for i in n.input]
        del n.input[:]
        n.input.extend(ins)
        if n.op_type == 'Identity' and n.output[0] not in outputs:
            alias[n.output[0]] = n.input[0]
            continue
        if n.op_type == 'Shape' and n.input[0] in shapes and not n.attribute:
            consts[n.output[0]] = np.array(shapes[n.input[0]], dtype=np.int64)
            continue
        if not any(o in outputs for o in n.output) and all(i == '' or i in consts for i in n.input):
            try:
                vals = eval_node(n, [consts[i] if i else None for i in n.input], opset)
            except NotImplementedError:
                kept.append(n)
                continue
            for name, v in zip(n.output, vals):
                if name:
                    consts[name] = np.asarray(v)
            continue
        kept.append(n)

    # MatMul + Add on 2-D values -> Gemm
    users = {}
    for n in kept:
        for i in n.input:
            users.setdefault(i, []).append(n)
    removed, gemms = set(), 0
    for n in kept:
        if n.op_type != 'MatMul' or id(n) in removed:
            continue
        a, w = n.input
        if w not in consts or consts[w].ndim != 2 or len(shapes.get(a, [])) != 2:
            continue
        u = users.get(n.output[0], [])
        if len(u) != 1 or u[0].op_type != 'Add' or n.output[0] in outputs:
            continue
        add = u[0]
        bias = add.input[1] if add.input[0] == n.output[0] else add.input[0]
        if bias not in consts or consts[bias].reshape(-1).shape[0] != consts[w].shape[1]:
            continue
        wname, bname = f'{w}_gemm{gemms}', f'{bias}_gemm{gemms}'
        consts[wname], consts[bname] = consts[w].astype(np.float32), consts[bias].reshape(-1).astype(np.float32)
        n.CopyFrom(helper.make_node('Gemm', [a, wname, bname], [add.output[0]], name=(n.name or n.output[0]) + '_gemm'))
        removed.add(id(add))
        gemms += 1
    kept = [n for n in kept if id(n) not in removed]

    respelled = 0
    for k, n in enumerate(kept):
        if not gemm_variants or n.op_type != 'Gemm' or len(n.input) < 3 or n.input[1] not in consts or n.input[2] not in consts:
            continue
        at = {x.name: helper.get_attribute_value(x) for x in n.attribute}
        if at.get('transA', 0):
            continue
        tb, alpha, beta = at.get('transB', 0), at.get('alpha', 1.0), at.get('beta', 1.0)
        wname, bname = f'{n.input[1]}_respelled{k}', f'{n.input[2]}_respelled{k}'
        consts[wname] = np.ascontiguousarray(consts[n.input[1]].T * 2).astype(np.float32)
        consts[bname] = (consts[n.input[2]] * 4).astype(np.float32)
        n.CopyFrom(helper.make_node('Gemm', [n.input[0], wname, bname], list(n.output), name=n.name,
                                    transA=0, transB=1 - tb, alpha=alpha * 0.5, beta=beta * 0.25))
        respelled += 1

    used = {i for n in kept for i in n.input} | outputs
    inits = [numpy_helper.from_array(consts[k], k) for k in consts if k in used]
    graph = helper.make_graph(kept, g.name, list(g.input)[:0] + [i for i in g.input if i.name not in consts],
                              list(g.output), inits)
    out = helper.make_model(graph, opset_imports=list(model.opset_import), producer_name='vitcc simplify_onnx.py')
    out.ir_version = model.ir_version
    onnx.checker.check_model(out)
    return out, gemms, respelled


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('input')
    ap.add_argument('output')
    ap.add_argument('--gemm-variants', action='store_true')
    a = ap.parse_args()
    model, gemms, respelled = simplify(onnx.load(a.input), a.gemm_variants)
    tmp = a.output + '.tmp'
    onnx.save(model, tmp)
    os.replace(tmp, a.output)
    print(f'simplify_onnx: {a.input} -> {a.output}: {len(model.graph.node)} nodes, {gemms} MatMul + Add made Gemm, {respelled} Gemm respelled')


if __name__ == '__main__':
    main()
