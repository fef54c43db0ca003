#!/usr/bin/env python3
"""Writes ONNX files that vitcc-pack must refuse, and what its error must say about each.

Usage: make_bad_models.py OUT_DIR

Each case is either a valid export of something vitcc does not model (tanh GELU, q/k norm, an
extra op inside a block, a CNN; an EfficientViT with GELU, a gated mixer, shifted windows, more
heads or blocks than the library holds, ...) or a damaged file (unknown op, missing initializer, a
cycle, external data that is missing, short or outside the model's folder; an EfficientViT whose
bias index table points past its bias table; shape subgraphs that crashed the constant folder). OUT_DIR/cases.json lists
{file, expect: [substrings the one-line error must contain]}, and a few edge cases that must be
accepted instead: {file, accept: true}. Deterministic; cached by a stamp.
"""
import hashlib
import json
import os
import shutil
import sys

import numpy as np
import onnx
from onnx import numpy_helper
import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import timm_efficientvit  # noqa: E402
import timm_vit  # noqa: E402

DEMO = os.path.join(HERE, '..', '..', 'demo', 'demo.onnx')


def stamp():
    h = hashlib.sha256()
    for p in (__file__, os.path.join(HERE, 'timm_vit.py'), os.path.join(HERE, 'timm_efficientvit.py'), DEMO):
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


def node_in(path, op, scope):
    """Name of the first `op` node of the ONNX file whose name starts with `scope` (torch's module path)."""
    return next(n.name for n in onnx.load(path).graph.node if n.op_type == op and n.name.startswith(scope))


def tiny_evit(img_size=32, **kw):
    # EfficientViTMSRA itself rather than make_model(), which only builds the M0..M5 widths (megabytes
    # each): 8/16/24 channels, one block per stage and the smallest input make the file ~200 kB and
    # its export well under a second. Default init: these files are refused before any numbers matter.
    args = dict(img_size=img_size, num_classes=10, embed_dim=(8, 16, 24), key_dim=(8, 8, 8), depth=(1, 1, 1),
                num_heads=(2, 2, 2), window_size=(7, 7, 7), kernels=(3, 3, 3, 3))
    args.update(kw)
    torch.manual_seed(5)
    return timm_efficientvit.EfficientViTMSRA(**args)


@torch.no_grad()
def realistic(model):
    """Weights at the scales of a trained model (timm initialises the attention biases to zero and
    BatchNorm to the identity), for cases that must be refused on their numbers."""
    gen = torch.Generator().manual_seed(9)
    for name, p in model.named_parameters():
        if name.endswith('attention_biases'):
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
        elif name.endswith('bias'):
            p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
        elif '.bn.' in name:
            p.copy_(torch.randn(p.shape, generator=gen) * 0.1 + 0.5)
        else:
            p.copy_(torch.randn(p.shape, generator=gen) / float(p[0].numel()) ** 0.5)
    # BatchNorm statistics of the data, as training leaves them (the identity would let activations
    # shrink from layer to layer until the attention hardly matters).
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            m.reset_running_stats()
            m.momentum = None
    model.train()
    size = model.img_size
    for k in range(3):
        model(timm_vit.make_image(k, 4, size, size))
    return model.eval()


class RolledWindows(nn.Module):
    """Swin-style shifted windows (without Swin's mask): the map rolled by half a window around the
    windowed attention. Only Slice and Concat in the graph, so only the mixer's numeric check sees it."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.shift = inner.window_resolution // 2

    def forward(self, x):
        k = self.shift
        return torch.roll(self.inner(torch.roll(x, (-k, -k), (2, 3))), (k, k), (2, 3))


class SigmoidGate(nn.Module):
    """An extra op inside a block: the mixer's output gated by its own sigmoid."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        y = self.inner(x)
        return y * torch.sigmoid(y)


def efficientvit_cases(out):
    """EfficientViT-M cases: each names the node (or tensor) and says what was expected."""
    cases = []

    def case(name, model, expect_fn):
        path = os.path.join(out, name)
        export(model, path, size=model.img_size)
        cases.append({'file': name, 'expect': expect_fn(path)})

    # GELU instead of ReLU in every FFN: the pw1 conv's output is read by GELU's Div and Mul.
    model = tiny_evit()
    for m in model.modules():
        if isinstance(m, timm_efficientvit.FFN):
            m.act = nn.GELU()
    case('evit_gelu_ffn.onnx', model, lambda p: [node_in(p, 'Conv', '/stages/stages.0/blocks/blocks.0/ffn0/m/pw1/'),
                                                 'to feed a ReLU', 'Div, Mul'])

    model = tiny_evit()
    model.stages[0].blocks[0].mixer.m = SigmoidGate(model.stages[0].blocks[0].mixer.m)
    case('evit_gated_mixer.onnx', model, lambda p: [node_in(p, 'Sigmoid', '/stages/stages.0/blocks/blocks.0/mixer/'),
                                                    'unexpected op inside the attention branch'])

    # A 3x5 depthwise kernel on head 0's q: the library's q convs are k x k.
    model = tiny_evit()
    model.stages[0].blocks[0].mixer.m.attn.dws[0].conv = nn.Conv2d(8, 8, (3, 5), 1, (1, 2), groups=8, bias=False)
    case('evit_nonsquare_q_kernel.onnx', model,
         lambda p: [node_in(p, 'Conv', '/stages/stages.0/blocks/blocks.0/mixer/m/attn/dws.0/'),
                    'expected a square 2-D conv weight', '[8, 1, 3, 5]'])

    # 5x5 q kernels in stage 1 after 3x3 in stage 0: the config has one kernel per head for all stages.
    model = tiny_evit()
    attn = model.stages[1].blocks[0].mixer.m.attn
    for i in range(len(attn.dws)):
        attn.dws[i] = timm_efficientvit.ConvBN(8, 8, 5, 1, 2, groups=8)
    case('evit_q_kernel_per_stage.onnx', model,
         lambda p: [node_in(p, 'Conv', '/stages/stages.1/blocks/blocks.0/mixer/m/attn/dws.0/'),
                    "expected head 0's q conv", '(3x3), found 5x5'])

    # A valid timm-style model past the library's fixed head arrays (evit_max_heads = 4, timm's
    # kernels tuple has four entries).
    case('evit_five_heads.onnx', tiny_evit(embed_dim=(8, 20, 24), num_heads=(2, 5, 2), kernels=(3,) * 5),
         lambda p: [node_in(p, 'Conv', '/stages/stages.1/blocks/blocks.0/mixer/m/attn/qkvs.4/'),
                    'expected at most 4 attention heads', 'found 5'])
    # Nine blocks in a stage: the block arrays are sized from the config, so this one must pack (and
    # pass the packer's self-check). One head in stage 2: torch's export time grows faster than
    # linearly in nodes; this keeps it ~2 s.
    export(realistic(tiny_evit(depth=(1, 1, 9), num_heads=(2, 2, 1))), os.path.join(out, 'evit_nine_blocks.onnx'))
    cases.append({'file': 'evit_nine_blocks.onnx', 'accept': True})

    # 48 = 3 x 16 exports (timm's resolution img_size // 16 matches the convs) but is not a multiple of 32.
    case('evit_input_48.onnx', tiny_evit(img_size=48),
         lambda p: ["tensor 'input'", '48x48', 'expected a side that is a multiple of 32'])

    # 2x2 windows over stage 0's 4x4 map, shifted by one pixel.
    model = tiny_evit(img_size=64, window_size=(2, 2, 2))
    model.stages[0].blocks[0].mixer.m = RolledWindows(model.stages[0].blocks[0].mixer.m)
    case('evit_shifted_windows.onnx', model,
         lambda p: [node_in(p, 'Add', '/stages/stages.0/blocks/blocks.0/mixer/Add'),
                    'does not compute windowed cascaded group attention', '2x2 windows over a 4x4 map'])

    # A hidden layer in the head: BatchNorm1d, Linear, ReLU, Linear.
    model = tiny_evit()
    model.head = nn.Sequential(timm_efficientvit.NormLinear(24, 32), nn.ReLU(), nn.Linear(32, 10))
    case('evit_head_hidden_layer.onnx', model, lambda p: [node_in(p, 'Relu', '/head/'),
                                                          "expected the classifier to be the graph's output"])

    # A wrong attention branch in an otherwise valid file, for both forms of the attention: one
    # channel of head 1's qkv conv (stage 0, block 0) scaled by 3 through a Mul the recogniser does not
    # model -- the same as breaking that head's weights. Only the numeric check of the branch sees it.
    for form in ('timm', 'cream'):
        name = f'evit_broken_head_weight_{form}.onnx'
        path = os.path.join(out, name)
        export(realistic(tiny_evit(img_size=64, window_size=(2, 2, 2), form=form)), path, size=64)
        m = onnx.load(path)
        conv = next(n for n in m.graph.node
                    if n.op_type == 'Conv' and n.name.startswith('/stages/stages.0/blocks/blocks.0/mixer/m/attn/qkvs.1/'))
        cout = next(t for t in m.graph.initializer if t.name == conv.input[1]).dims[0]
        scale = numpy_helper.from_array(np.array([1.0] * 3 + [3.0] + [1.0] * (cout - 4), np.float32).reshape(1, cout, 1, 1),
                                        'broken_head1_channel')
        m.graph.initializer.append(scale)
        broken = conv.output[0] + '_broken'
        for n in m.graph.node:
            for i, v in enumerate(n.input):
                if v == conv.output[0]:
                    n.input[i] = broken
        at = list(m.graph.node).index(conv) + 1
        m.graph.node.insert(at, onnx.helper.make_node('Mul', [conv.output[0], scale.name], [broken],
                                                      name=conv.name + '_broken'))
        onnx.save(m, path)
        cases.append({'file': name, 'expect': ['/stages/stages.0/blocks/blocks.0/mixer/Add',
                                               'does not compute windowed cascaded group attention',
                                               '2x2 windows over a 4x4 map']})

    # Damaged: stage 0's bias index table points one past its 4-entry bias table, in both forms (timm's
    # index table is a non-persistent buffer, so the exporter names it itself). (Any table within range
    # is fine: the blob holds the gathered [heads, N, N] bias, whatever the indices.)
    for form in ('timm', 'cream'):
        name = f'evit_bias_index_out_of_range_{form}.onnx'
        path = os.path.join(out, name)
        export(tiny_evit(form=form), path)
        m = onnx.load(path)
        inits = {t.name: t for t in m.graph.initializer}
        gather = next(n for n in m.graph.node if n.op_type == 'Gather'
                      and n.input[0] == 'stages.0.blocks.0.mixer.m.attn.attention_biases')
        size = inits[gather.input[0]].dims[1]  # attention_biases [heads, offsets], gathered along axis 1
        if gather.input[1] in inits:  # an initializer (a persistent buffer)
            idx = inits[gather.input[1]]
        else:  # a Constant node
            const = next(n for n in m.graph.node if n.op_type == 'Constant' and n.output[0] == gather.input[1])
            idx = next(at for at in const.attribute if at.name == 'value').t
        a = numpy_helper.to_array(idx).copy()
        a.flat[5] = size
        idx.CopyFrom(numpy_helper.from_array(a, idx.name))
        onnx.save(m, path)
        cases.append({'file': name, 'expect': [gather.name, gather.input[1], 'out of range',
                                               f'expected values in [-{size}, {size - 1}]']})
    return cases


def folder_crash_cases(out):
    """Files that crashed vitcc-pack's constant folder (SIGFPE, exit 136) before its integer arithmetic
    was checked: the folder evaluates every constant subgraph, dead or not, before dead nodes go."""
    from onnx import TensorProto, helper
    cases = []

    def const(name, value):
        return helper.make_node('Constant', [], [name], name=name,
                                value=numpy_helper.from_array(np.array([value], dtype=np.int64), name))

    def save(name, nodes, opset, output='q'):
        g = helper.make_graph(nodes, name, [helper.make_tensor_value_info('x', TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info(output, TensorProto.INT64, [1])])
        m = helper.make_model(g, opset_imports=[helper.make_opsetid('', opset)], producer_name='vitcc-bad-models')
        m.ir_version = 8
        onnx.save(m, os.path.join(out, name + '.onnx'))

    # The security review's 3-node file: INT64_MIN / -1 in a shape subgraph.
    save('int64_min_div', [const('a', np.iinfo(np.int64).min), const('b', -1),
                           helper.make_node('Div', ['a', 'b'], ['q'], name='div')], 13)
    cases.append({'file': 'int64_min_div.onnx', 'expect': ["node 'div' (Div)", '-9223372036854775808 / -1 overflows int64']})
    # A Split without outputs divides by its output count (opset 18: the ONNX checker does not run).
    save('split_no_outputs', [const('a', 4), helper.make_node('Split', ['a'], [], name='split')], 18, output='a')
    cases.append({'file': 'split_no_outputs.onnx', 'expect': ["node 'split' (Split)", 'Split without outputs']})
    return cases


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

    cases += efficientvit_cases(out)
    cases += folder_crash_cases(out)

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
