"""Fake-quant simulation (PyTorch) of vitcc's int8 scheme, used to choose the precision of the
attention products (docs/PRECISION.md). Dev tool; not part of the tests.

  /usr/bin/python3 tools/export/quant_sim.py fmnist                  # the bundled trained ViT, 10,000 test images
  /usr/bin/python3 tools/export/quant_sim.py vit_small_patch16_224   # a seeded mirror model, 4 images

Linear layers: weights symmetric per output channel, activations per token (vitcc's int8 GEMM).
Attention: fp32, bf16 (operands rounded), int8 (q, k per token; P per row, v per channel), qk8
(only q.k^T in int8), pv8 (only P.v in int8). Prints each variant's cosine to the fp32 model.
"""
import os, sys, numpy as np, torch, onnx
from onnx import numpy_helper
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import timm_vit, fmnist_data
torch.set_num_threads(1)

def q_rows(x):  # symmetric int8 per last-dim row (per token), round half even
    s = x.abs().amax(-1, keepdim=True) / 127
    return torch.where(s > 0, torch.round(x / torch.where(s > 0, s, torch.ones_like(s))).clamp(-127, 127) * s, x * 0)

def q_cols(w):  # weight [out, in]: per output channel
    return q_rows(w)

MODE = {'lin': False, 'attn': 'fp32'}

class QLinear(torch.nn.Module):
    def __init__(s, lin): super().__init__(); s.lin = lin
    def forward(s, x):
        if not MODE['lin']: return s.lin(x)
        return torch.nn.functional.linear(q_rows(x), q_cols(s.lin.weight), s.lin.bias)

def attn_forward(self, x):
    B, N, C = x.shape
    qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)
    q = q * self.scale
    m = MODE['attn']
    if m in ('int8', 'qk8'):
        q, k = q_rows(q), q_rows(k)
    elif m == 'bf16':
        q, k = q.bfloat16().float(), k.bfloat16().float()
    a = (q @ k.transpose(-2, -1)).softmax(-1)
    if m in ('int8', 'pv8'):
        a = q_rows(a); v = q_rows(v.transpose(-2, -1)).transpose(-2, -1)  # P per row, v per channel
    elif m == 'bf16':
        a, v = a.bfloat16().float(), v.bfloat16().float()
    x = (a @ v).transpose(1, 2).reshape(B, N, C)
    return self.proj(x)

def wrap(model):
    for blk in model.blocks:
        blk.attn.forward = attn_forward.__get__(blk.attn)
        blk.attn.qkv = QLinear(blk.attn.qkv); blk.attn.proj = QLinear(blk.attn.proj)
        blk.mlp.fc1 = QLinear(blk.mlp.fc1); blk.mlp.fc2 = QLinear(blk.mlp.fc2)
    return model

def load_onnx_weights(model, path):
    g = onnx.load(path).graph
    init = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    prod = {o: n for n in g.node for o in n.output}
    sd = {k: torch.from_numpy(v.copy()) for k, v in init.items() if not k.startswith('onnx::')}
    for n in g.node:
        if n.op_type == 'Add':
            for a, b in (n.input, n.input[::-1]):
                if a.endswith('.bias') and a in init and b in prod and prod[b].op_type == 'MatMul':
                    w = prod[b].input[1]
                    sd[a[:-5] + '.weight'] = torch.from_numpy(init[w].T.copy())
    missing = model.load_state_dict(sd, strict=False)
    assert not missing.missing_keys, missing
    return model

def cos(a, b): return float((a * b).sum() / (a.norm() * b.norm()))

def run(model, x):
    with torch.no_grad(): return torch.cat([model(x[i:i + 500]) for i in range(0, len(x), 500)])

which = sys.argv[1]
if which == 'fmnist':
    model = wrap(load_onnx_weights(timm_vit.make_model('vit_fmnist', seed=None), os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'demo', 'fmnist_vit.onnx')))
    imgs, labels = fmnist_data.load('test')
    x = torch.from_numpy(fmnist_data.preprocess('vit', imgs)); labels = torch.from_numpy(labels.astype(np.int64))
else:
    model = wrap(timm_vit.make_model(which, seed=0)); x = timm_vit.make_image(0, 4, 224, 224); labels = None
res = {}
for lin, attn in [(False, 'fp32'), (True, 'fp32'), (True, 'bf16'), (True, 'int8'), (True, 'qk8'), (True, 'pv8'), (False, 'int8')]:
    MODE['lin'], MODE['attn'] = lin, attn
    y = run(model, x); res[(lin, attn)] = y
    ref = res[(False, 'fp32')]
    acc = '' if labels is None else 'top1 %.2f%%' % (100 * float((y.argmax(1) == labels).float().mean()))
    print('linear %-4s attention %-4s cos vs fp32 %.6f max err %.3g %s' % ('int8' if lin else 'fp32', attn, cos(y, ref), float((y - ref).abs().max()), acc), flush=True)
