#!/usr/bin/python3
"""Give a ViT ONNX file the LayerNorm outlier channels of large trained ViTs, float32 function unchanged.

Usage: inject_outliers.py IN.onnx OUT.onnx [--factor 30] [--channels 3] [--seed 0]

For every LayerNormalization node whose output feeds only MatMul nodes with a constant [K, N]
weight (a timm block's norm1 -> qkv and norm2 -> fc1), picks `channels` channels k at random and
multiplies gamma[k] and beta[k] by `factor` and row k of each such weight by 1 / factor: the exact
inverse of SmoothQuant's fold, so the model computes the same function (up to float32 rounding)
while its norm outputs get a few channels `factor` times larger than the rest, the pattern known
from trained ViTs (and LLMs) that per-token int8 scales cannot hold. vitcc-pack's smoothing
(docs/PRECISION.md) is measured on such a model against the original one.
"""
import argparse

import numpy as np
import onnx
from onnx import numpy_helper


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('src')
    ap.add_argument('dst')
    ap.add_argument('--factor', type=float, default=30.0)
    ap.add_argument('--channels', type=int, default=3)
    ap.add_argument('--seed', type=int, default=0)
    a = ap.parse_args()
    m = onnx.load(a.src)
    init = {t.name: t for t in m.graph.initializer}
    consumers = {}
    for n in m.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    rng = np.random.RandomState(a.seed)
    done = 0
    for n in m.graph.node:
        if n.op_type != 'LayerNormalization' or len(n.input) < 3:
            continue
        users = consumers.get(n.output[0], [])
        if not users or any(u.op_type != 'MatMul' or u.input[0] != n.output[0] or u.input[1] not in init for u in users):
            continue
        g = numpy_helper.to_array(init[n.input[1]]).copy()
        b = numpy_helper.to_array(init[n.input[2]]).copy()
        ks = rng.choice(g.size, a.channels, replace=False)
        g[ks] *= a.factor
        b[ks] *= a.factor
        init[n.input[1]].CopyFrom(numpy_helper.from_array(g, n.input[1]))
        init[n.input[2]].CopyFrom(numpy_helper.from_array(b, n.input[2]))
        for u in users:
            w = numpy_helper.to_array(init[u.input[1]]).copy()
            if w.ndim != 2 or w.shape[0] != g.size:
                raise SystemExit(f'{u.name}: weight {u.input[1]} is {w.shape}, expected [{g.size}, N]')
            w[ks, :] /= a.factor
            init[u.input[1]].CopyFrom(numpy_helper.from_array(w, u.input[1]))
        done += 1
    if done == 0:
        raise SystemExit(f'{a.src}: no LayerNormalization feeding constant-weight MatMuls (opset 17 export needed)')
    onnx.checker.check_model(m)
    onnx.save(m, a.dst)
    print(f'{a.dst}: {done} norms, {a.channels} channels each scaled by {a.factor:g}')


if __name__ == '__main__':
    main()
