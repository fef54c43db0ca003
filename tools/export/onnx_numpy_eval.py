"""Minimal NumPy interpreter for the ONNX op subset that ViT exports use.

onnxruntime (and onnx.reference, onnx>=1.13) are unavailable here, so this
small evaluator is used to confirm that each exported model.onnx really
reproduces reference.bin, i.e. that the fixture is self-consistent.  It is a
straightforward per-node interpreter following the ONNX operator
specifications for opsets 10-17; it is not meant to be fast or complete.

Usage: /usr/bin/python3 tools/export/onnx_numpy_eval.py FIXTURE_DIR [FIXTURE_DIR...]
"""
import json
import os
import sys

import numpy as np
import onnx
from onnx import numpy_helper


def _erf(x):
    import torch
    return torch.erf(torch.from_numpy(np.ascontiguousarray(x))).numpy()


def _attrs(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _axes_from(node, inputs, attrs, idx):
    if 'axes' in attrs:
        return list(attrs['axes'])
    if len(inputs) > idx and inputs[idx] is not None:
        return [int(v) for v in inputs[idx].reshape(-1)]
    return None


def _conv(x, w, b, attrs):
    strides = attrs.get('strides', [1, 1])
    pads = attrs.get('pads', [0, 0, 0, 0])
    dil = attrs.get('dilations', [1, 1])
    group = attrs.get('group', 1)
    assert list(dil) == [1, 1], 'only undilated conv supported'
    if group > 1:
        cg, og = x.shape[1] // group, w.shape[0] // group
        return np.concatenate([_conv(x[:, g * cg:(g + 1) * cg], w[g * og:(g + 1) * og],
                                     None if b is None else b[g * og:(g + 1) * og], dict(attrs, group=1))
                               for g in range(group)], axis=1)
    if any(pads):
        x = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    sh, sw = strides
    oh = (h - kh) // sh + 1
    ow = (wd - kw) // sw + 1
    cols = np.empty((n, oh, ow, c, kh, kw), dtype=np.float32)
    for i in range(kh):
        for j in range(kw):
            cols[:, :, :, :, i, j] = x[:, :, i:i + sh * oh:sh, j:j + sw * ow:sw].transpose(0, 2, 3, 1)
    y = cols.reshape(n * oh * ow, c * kh * kw) @ w.reshape(o, -1).T
    if b is not None:
        y = y + b
    return y.reshape(n, oh, ow, o).transpose(0, 3, 1, 2).astype(np.float32)


def _softmax(x, axis, opset):
    if opset < 13:
        # Legacy semantics: coerce to 2D at `axis`, softmax over the flattened tail.
        ax = axis if axis >= 0 else axis + x.ndim
        shp = x.shape
        x2 = x.reshape(int(np.prod(shp[:ax], dtype=np.int64)), -1)
        m = x2.max(axis=1, keepdims=True)
        e = np.exp(x2 - m)
        return (e / e.sum(axis=1, keepdims=True)).reshape(shp)
    m = x.max(axis=axis, keepdims=True)
    e = np.exp(x - m)
    return e / e.sum(axis=axis, keepdims=True)


def _slice(x, starts, ends, axes, steps):
    if axes is None:
        axes = list(range(len(starts)))
    if steps is None:
        steps = [1] * len(starts)
    sl = [slice(None)] * x.ndim
    for s, e, a, st in zip(starts, ends, axes, steps):
        a = a + x.ndim if a < 0 else a
        dim = x.shape[a]
        s = int(max(min(s, 2**62), -2**62))
        e = int(max(min(e, 2**62), -2**62))
        # clamp following the ONNX spec
        s = s + dim if s < 0 else s
        e = e + dim if e < 0 else e
        if st > 0:
            s = min(max(s, 0), dim)
            e = min(max(e, 0), dim)
        else:
            s = min(max(s, 0), dim - 1)
            e = min(max(e, -1), dim - 1)
            if e == -1:
                e = None
        sl[a] = slice(s, e, int(st))
    return x[tuple(sl)]


def eval_node(node, ins, opset):
    """Outputs (a list of arrays) of one node on its inputs (None for an omitted optional one)."""
    a = _attrs(node)
    op = node.op_type
    x = ins[0] if ins else None
    if op == 'Constant':
        out = [numpy_helper.to_array(a['value'])]
    elif op == 'Identity':
        out = [x]
    elif op == 'Conv':
        out = [_conv(x, ins[1], ins[2] if len(ins) > 2 else None, a)]
    elif op == 'Shape':
        out = [np.array(x.shape, dtype=np.int64)]
    elif op in ('Add', 'Sub', 'Mul', 'Div', 'Pow', 'Equal'):
        y = ins[1]
        if op == 'Add':
            r = x + y
        elif op == 'Sub':
            r = x - y
        elif op == 'Mul':
            r = x * y
        elif op == 'Div':
            r = (x // y) if np.issubdtype(x.dtype, np.integer) else x / y
        elif op == 'Pow':
            r = np.power(x, y).astype(x.dtype)
        else:
            r = np.equal(x, y)
        out = [np.asarray(r).astype(x.dtype) if op != 'Equal' else np.asarray(r)]
    elif op == 'Relu':
        out = [np.maximum(x, 0).astype(x.dtype)]
    elif op == 'Sigmoid':
        out = [(1.0 / (1.0 + np.exp(-x))).astype(np.float32)]
    elif op == 'GlobalAveragePool':
        out = [x.mean(axis=tuple(range(2, x.ndim)), keepdims=True).astype(np.float32)]
    elif op == 'BatchNormalization':
        shp = (1, -1) + (1,) * (x.ndim - 2)
        s_ = ins[1] / np.sqrt(ins[4] + a.get('epsilon', 1e-5))
        out = [(x * s_.reshape(shp) + (ins[2] - ins[3] * s_).reshape(shp)).astype(np.float32)]
    elif op == 'Pad':
        pads = list(a['pads']) if 'pads' in a else [int(v) for v in ins[1]]
        val = a.get('value', 0.0) if opset < 11 else (float(ins[2].reshape(-1)[0]) if len(ins) > 2 and ins[2] is not None else 0.0)
        r = len(pads) // 2
        out = [np.pad(x, [(pads[i], pads[i + r]) for i in range(r)], constant_values=val)]
    elif op == 'Mod':
        out = [np.fmod(x, ins[1]) if a.get('fmod', 0) else np.mod(x, ins[1])]
    elif op == 'Sqrt':
        out = [np.sqrt(x)]
    elif op == 'Erf':
        out = [_erf(x)]
    elif op == 'Tanh':
        out = [np.tanh(x)]
    elif op == 'MatMul':
        out = [np.matmul(x, ins[1])]
    elif op == 'Gemm':
        A = x.T if a.get('transA', 0) else x
        B = ins[1].T if a.get('transB', 0) else ins[1]
        r = a.get('alpha', 1.0) * (A @ B)
        if len(ins) > 2 and ins[2] is not None:
            r = r + a.get('beta', 1.0) * ins[2]
        out = [r.astype(np.float32)]
    elif op == 'Reshape':
        shape = [int(v) for v in ins[1]]
        shape = [x.shape[i] if v == 0 else v for i, v in enumerate(shape)]
        out = [x.reshape(shape)]
    elif op == 'Flatten':
        ax = a.get('axis', 1)
        out = [x.reshape(int(np.prod(x.shape[:ax], dtype=np.int64)), -1)]
    elif op == 'Transpose':
        out = [np.transpose(x, a.get('perm'))]
    elif op == 'Concat':
        out = [np.concatenate(ins, axis=a['axis'])]
    elif op == 'Unsqueeze':
        axes = _axes_from(node, ins, a, 1)
        r = x
        for ax in sorted(ax_ + r.ndim + len(axes) if ax_ < 0 else ax_ for ax_ in axes):
            r = np.expand_dims(r, ax)
        out = [r]
    elif op == 'Squeeze':
        axes = _axes_from(node, ins, a, 1)
        out = [np.squeeze(x, axis=tuple(axes)) if axes is not None else np.squeeze(x)]
    elif op == 'Gather':
        out = [np.take(x, ins[1], axis=a.get('axis', 0))]
    elif op == 'Slice':
        if opset < 10:
            raise NotImplementedError('Slice-1')
        out = [_slice(x, ins[1], ins[2], ins[3] if len(ins) > 3 else None,
                      ins[4] if len(ins) > 4 else None)]
    elif op == 'Split':
        axis = a.get('axis', 0)
        split = a.get('split')
        if split is None and len(ins) > 1 and ins[1] is not None:
            split = [int(v) for v in ins[1]]
        if split is None:
            split = [x.shape[axis] // len(node.output)] * len(node.output)
        idx = np.cumsum(split)[:-1]
        out = list(np.split(x, idx, axis=axis))
    elif op == 'ReduceMean':
        axes = _axes_from(node, ins, a, 1)
        out = [x.mean(axis=tuple(axes) if axes is not None else None,
                      keepdims=bool(a.get('keepdims', 1))).astype(x.dtype)]
    elif op == 'Softmax':
        out = [_softmax(x, a.get('axis', -1 if opset >= 13 else 1), opset)]
    elif op == 'LayerNormalization':
        axis = a.get('axis', -1)
        eps = a.get('epsilon', 1e-5)
        ax = axis + x.ndim if axis < 0 else axis
        red = tuple(range(ax, x.ndim))
        mu = x.mean(axis=red, keepdims=True)
        var = ((x - mu) ** 2).mean(axis=red, keepdims=True)
        r = (x - mu) / np.sqrt(var + eps) * ins[1]
        if len(ins) > 2 and ins[2] is not None:
            r = r + ins[2]
        out = [r.astype(np.float32)]
    elif op == 'ConstantOfShape':
        v = numpy_helper.to_array(a['value']) if 'value' in a else np.zeros(1, np.float32)
        out = [np.full([int(s) for s in x], v.reshape(-1)[0], dtype=v.dtype)]
    elif op == 'Where':
        out = [np.where(x, ins[1], ins[2])]
    elif op == 'Expand':
        shape = [int(s) for s in ins[1]]
        out = [x * np.ones(shape, dtype=x.dtype)]
    elif op == 'Cast':
        to = onnx.mapping.TENSOR_TYPE_TO_NP_TYPE[a['to']]
        out = [x.astype(to)]
    elif op == 'Range':
        out = [np.arange(ins[0], ins[1], ins[2]).astype(ins[0].dtype)]
    else:
        raise NotImplementedError(f'op {op} ({node.name})')
    return out


def run_model(model_path, feeds):
    m = onnx.load(model_path)
    opset = max(o.version for o in m.opset_import if o.domain in ('', 'ai.onnx'))
    env = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    env.update(feeds)
    for node in m.graph.node:
        ins = [env[i] if i else None for i in node.input]
        out = eval_node(node, ins, opset)
        for name, val in zip(node.output, out):
            if name:
                env[name] = np.asarray(val)
    return [env[o.name] for o in m.graph.output]


def check_fixture(d, verbose=True):
    with open(os.path.join(d, 'meta.json')) as f:
        meta = json.load(f)
    x = np.fromfile(os.path.join(d, 'input.bin'), dtype='<f4').reshape(meta['input_shape'])
    ref = np.fromfile(os.path.join(d, 'reference.bin'), dtype='<f4').reshape(meta['output_shape'])
    (y,) = run_model(os.path.join(d, 'model.onnx'), {'input': x})
    if tuple(y.shape) != tuple(ref.shape):
        raise AssertionError(f"{meta['name']}: shape {y.shape} != reference {ref.shape}")
    err = float(np.abs(y.astype(np.float64) - ref).max())
    scale = float(np.abs(ref).max())
    if verbose:
        print(f"[onnx-eval] {meta['name']}: max|onnx-ref| = {err:.3g} (ref |max| {scale:.3g})")
    return err, scale


if __name__ == '__main__':
    bad = 0
    for d in sys.argv[1:]:
        err, scale = check_fixture(d)
        if not err <= 1e-3 * max(1.0, scale):
            bad += 1
    sys.exit(1 if bad else 0)
