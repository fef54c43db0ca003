#!/usr/bin/python3
"""One PyTorch eager process of the comparison: builds the fixture's module with the very weights its
ONNX file was exported from (tools/export/make_fixtures.py build_model, seeded by the fixture name),
runs WARMUP + RUNS forward passes on input.bin under inference_mode with THREADS intra-op threads and
prints one JSON line: {"runtime", "version", "threads", "times_ms": [...]}.

    /usr/bin/python3 torch_runner.py FIXTURE_NAME FIXTURE_DIR THREADS WARMUP RUNS
"""
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'export'))


def main():
    name, fdir, threads, warmup, runs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    import numpy as np
    import torch
    torch.set_num_threads(threads)
    import make_fixtures as mf
    fx = next((f for f in mf.FIXTURES if f.name == name), None)
    if fx is None:
        sys.exit('torch_runner: no fixture named %s in make_fixtures.py' % name)
    model, _ = mf.build_model(fx)
    with open(os.path.join(fdir, 'meta.json')) as f:
        meta = json.load(f)
    shape = list(meta['input_shape'])
    shape[0] = 1
    per = int(np.prod(shape))
    x = torch.from_numpy(np.fromfile(os.path.join(fdir, 'input.bin'), dtype=np.float32)[:per].reshape(shape).copy())
    times = []
    with torch.inference_mode():
        for _ in range(warmup):
            model(x)
        for _ in range(runs):
            t0 = time.perf_counter()
            model(x)
            times.append((time.perf_counter() - t0) * 1e3)
    print(json.dumps({'runtime': 'pytorch', 'version': torch.__version__, 'threads': threads, 'times_ms': times}))


if __name__ == '__main__':
    main()
