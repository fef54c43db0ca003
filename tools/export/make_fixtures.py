#!/usr/bin/python3
"""Generate ONNX ViT test fixtures for vitcc.

Usage:  /usr/bin/python3 tools/export/make_fixtures.py OUT_DIR [--set ci|full]
                                                      [--only NAME[,NAME..]] [--force] [--list]

Every fixture is a sub-folder of OUT_DIR holding
    model.onnx      exported with torch.onnx.export (input "input", output "output")
    input.bin       raw little-endian float32 NCHW, all images of the batch
    reference.bin   raw little-endian float32 PyTorch output for input.bin
    meta.json       {"name","family","opset","constant_folding","dynamic_batch","batch",
                     "input_shape","output_shape","description"}
OUT_DIR/manifest.json lists the fixtures (plus exported op-type statistics).

Caching: manifest.json carries a stamp = sha256(export scripts' source, --set,
torch version).  If it matches, the script exits immediately ("fixtures up to
date").  Individual fixtures also carry the stamp (.stamp file) so an
interrupted run only regenerates what is missing.  Each fixture is written to
a temporary directory and renamed into place.
"""
import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
import warnings
import zlib
from collections import Counter, OrderedDict

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import torch  # noqa: E402

import onnx_numpy_eval  # noqa: E402
import timm_efficientvit  # noqa: E402
import timm_vit  # noqa: E402

STAMP_SOURCES = ('timm_vit.py', 'timm_efficientvit.py', 'make_fixtures.py', 'onnx_numpy_eval.py')


# ---------------------------------------------------------------------------
# Fixture table
# ---------------------------------------------------------------------------
class Fixture:
    def __init__(self, name, family, model, opset, fold=True, dynamic=False, batch=1,
                 description='', sets=('ci', 'full'), **model_kwargs):
        self.name = name
        self.family = family            # 'timm' | 'torchvision' | 'efficientvit'
        self.model = model              # timm_vit config name or torchvision builder name
        self.opset = opset
        self.fold = fold
        self.dynamic = dynamic
        self.batch = batch
        self.description = description
        self.sets = sets
        self.model_kwargs = model_kwargs
        self.seed = zlib.crc32(name.encode()) & 0x7fffffff


def _t(name, model, opset, desc, sets=('ci', 'full'), **kw):
    return Fixture(name, 'timm', model, opset, description=desc, sets=sets, **kw)


def _tv(name, model, opset, desc, sets=('ci', 'full'), **kw):
    return Fixture(name, 'torchvision', model, opset, description=desc, sets=sets, **kw)


def _ev(name, model, opset, desc, sets=('ci', 'full'), keep_bn=False, **kw):
    # EfficientViT-M (timm efficientvit_msra). fuse=True: reparameterised before export (timm's
    # reparameterize_model, or the Cream form's); keep_bn: exported with training=PRESERVE so the
    # BatchNormalization nodes stay (an eval-mode export fuses them into the convs itself).
    fx = Fixture(name, 'efficientvit', model, opset, description=desc, sets=sets, **kw)
    fx.keep_bn = keep_bn
    return fx


FULL = ('full',)
SMALL = dict(depth=4)  # shallow variants keep files and run time small

FIXTURES = [
    # --- ViT-Ti/16 across opsets / folding / dynamic batch -----------------
    _t('vit_tiny_patch16_224_op10', 'vit_tiny_patch16_224', 10, 'ViT-Ti/16, opset 10, folded'),
    _t('vit_tiny_patch16_224_op13', 'vit_tiny_patch16_224', 13, 'ViT-Ti/16, opset 13, folded'),
    _t('vit_tiny_patch16_224_op17', 'vit_tiny_patch16_224', 17, 'ViT-Ti/16, opset 17, folded'),
    _t('vit_tiny_patch16_224_op17_nofold', 'vit_tiny_patch16_224', 17,
       'ViT-Ti/16, opset 17, constant folding off (Shape/Gather/Concat chains kept)', fold=False),
    _t('vit_tiny_patch16_224_op13_dynbatch', 'vit_tiny_patch16_224', 13,
       'ViT-Ti/16, opset 13, dynamic batch axis, batch-2 input', dynamic=True, batch=2),
    # --- other timm registrations -------------------------------------------
    _t('vit_small_patch16_224_op17', 'vit_small_patch16_224', 17, 'ViT-S/16, opset 17'),
    _t('deit_tiny_patch16_224_op13', 'deit_tiny_patch16_224', 13, 'DeiT-Ti/16, opset 13'),
    _t('dinov2_small_patch14_224_op17', 'vit_small_patch14_dinov2', 17,
       'DINOv2 ViT-S/14 at 224 (pos_embed built for 16x16 grid), LayerScale, pooled cls features',
       img_size=224),
    _t('dinov2_small_patch14_224_op13_nofold', 'vit_small_patch14_dinov2', 13,
       'DINOv2 ViT-S/14 at 224, opset 13, constant folding off', img_size=224, fold=False),
    _t('dinov2_small_patch14_reg4_224_op17', 'vit_small_patch14_reg4_dinov2', 17,
       'DINOv2 ViT-S/14 + 4 register tokens, no_embed_class, at 224', img_size=224),
    _t('dinov2_small_patch14_reg4_224_op10', 'vit_small_patch14_reg4_dinov2', 10,
       'DINOv2 ViT-S/14 + 4 registers at 224, opset 10', img_size=224),
    _t('dinov2_small_patch14_518_op17', 'vit_small_patch14_dinov2', 17,
       'DINOv2 ViT-S/14 at native 518 (37x37+1 = 1370 tokens)'),
    # --- structural variants on shallow ViT-Ti --------------------------------
    _t('variant_nocls_avgpool_fcnorm_op17', 'vit_tiny_patch16_224', 17,
       'ViT-Ti/16 depth 4, no class token, global_pool=avg, fc_norm (norm=Identity)',
       class_token=False, global_pool='avg', **SMALL),
    _t('variant_pooled_features_op13', 'vit_tiny_patch16_224', 13,
       'ViT-Ti/16 depth 4, num_classes=0 (pooled cls token after final norm)',
       num_classes=0, **SMALL),
    _t('variant_forward_features_op17', 'vit_tiny_patch16_224', 17,
       'ViT-Ti/16 depth 4, forward_features output (all tokens after final norm)',
       features_only=True, **SMALL),
    _t('variant_no_qkv_bias_op13', 'vit_tiny_patch16_224', 13,
       'ViT-Ti/16 depth 4, qkv_bias=False', qkv_bias=False, **SMALL),
    _t('variant_patch8_96_op17', 'vit_tiny_patch16_224', 17,
       'ViT-Ti depth 4, patch 8 at 96x96 (144 patches)', patch_size=8, img_size=96, **SMALL),
    _t('variant_patch32_224_op13', 'vit_tiny_patch16_224', 13,
       'ViT-Ti depth 4, patch 32 at 224 (49 patches)', patch_size=32, **SMALL),
    _t('variant_legacy_gather_split_op11', 'vit_tiny_patch16_224', 11,
       'ViT-Ti/16 depth 4, timm<0.9 attention: qkv[0], qkv[1], qkv[2] (Gather) and scale after q.k',
       legacy_split=True, **SMALL),
    _t('variant_nonsquare_160x224_op17', 'vit_tiny_patch16_224', 17,
       'ViT-Ti/16 depth 4, non-square 160x224 input (10x14 grid)', img_size=(160, 224), **SMALL),
    # --- torchvision ---------------------------------------------------------
    _tv('tv_vit_b_16_op13', 'vit_b_16', 13, 'torchvision vit_b_16 (nn.MultiheadAttention), opset 13'),
    _tv('tv_vit_b_16_op17', 'vit_b_16', 17, 'torchvision vit_b_16, opset 17'),
    _tv('tv_vit_b_32_op13', 'vit_b_32', 13, 'torchvision vit_b_32, opset 13'),

    _t('vit_base_patch16_224_op17', 'vit_base_patch16_224', 17, 'ViT-B/16, opset 17', sets=FULL),
    _t('vit_base_patch16_224_op13', 'vit_base_patch16_224', 13, 'ViT-B/16, opset 13', sets=FULL),
    _t('vit_tiny_patch16_224_op11', 'vit_tiny_patch16_224', 11, 'ViT-Ti/16, opset 11', sets=FULL),
    _t('vit_tiny_patch16_224_op12', 'vit_tiny_patch16_224', 12, 'ViT-Ti/16, opset 12', sets=FULL),
    _t('vit_tiny_patch16_224_op14', 'vit_tiny_patch16_224', 14, 'ViT-Ti/16, opset 14', sets=FULL),
    _t('vit_tiny_patch16_224_op15', 'vit_tiny_patch16_224', 15, 'ViT-Ti/16, opset 15', sets=FULL),
    _t('vit_tiny_patch16_224_op16', 'vit_tiny_patch16_224', 16, 'ViT-Ti/16, opset 16', sets=FULL),
    _t('vit_tiny_patch16_224_op10_nofold', 'vit_tiny_patch16_224', 10,
       'ViT-Ti/16, opset 10, folding off', fold=False, sets=FULL),
    _t('vit_tiny_patch16_224_op13_nofold', 'vit_tiny_patch16_224', 13,
       'ViT-Ti/16, opset 13, folding off', fold=False, sets=FULL),
    _t('vit_tiny_patch16_224_op17_dynbatch', 'vit_tiny_patch16_224', 17,
       'ViT-Ti/16, opset 17, dynamic batch, batch-2 input', dynamic=True, batch=2, sets=FULL),
    _t('vit_tiny_patch16_224_op10_dynbatch', 'vit_tiny_patch16_224', 10,
       'ViT-Ti/16, opset 10, dynamic batch, batch-2 input', dynamic=True, batch=2, sets=FULL),
    _t('vit_small_patch16_224_op13', 'vit_small_patch16_224', 13, 'ViT-S/16, opset 13', sets=FULL),
    _t('deit_tiny_patch16_224_op17', 'deit_tiny_patch16_224', 17, 'DeiT-Ti/16, opset 17', sets=FULL),
    _t('dinov2_small_patch14_518_op13', 'vit_small_patch14_dinov2', 13,
       'DINOv2 ViT-S/14 at 518, opset 13', sets=FULL),
    _t('dinov2_small_patch14_reg4_518_op17', 'vit_small_patch14_reg4_dinov2', 17,
       'DINOv2 ViT-S/14 + 4 registers at 518', sets=FULL),
    _t('dinov2_small_patch14_reg4_224_op17_dynbatch', 'vit_small_patch14_reg4_dinov2', 17,
       'DINOv2-reg4 ViT-S/14 at 224, dynamic batch, batch-2 input', img_size=224,
       dynamic=True, batch=2, sets=FULL),
    _t('variant_reg4_avgpool_op17', 'vit_tiny_patch16_224', 17,
       'ViT-Ti/16 depth 4, cls + 4 registers, no_embed_class, LayerScale, global_pool=avg',
       reg_tokens=4, no_embed_class=True, init_values=1e-5, global_pool='avg', sets=FULL, **SMALL),
    _t('variant_nocls_avgpool_fcnorm_op10', 'vit_tiny_patch16_224', 10,
       'ViT-Ti/16 depth 4, no class token, avg pool, fc_norm, opset 10',
       class_token=False, global_pool='avg', sets=FULL, **SMALL),
    _t('variant_forward_features_op10_nofold', 'vit_tiny_patch16_224', 10,
       'ViT-Ti/16 depth 4, forward_features, opset 10, folding off',
       features_only=True, fold=False, sets=FULL, **SMALL),
    _tv('tv_vit_b_16_op17_nofold', 'vit_b_16', 17, 'torchvision vit_b_16, opset 17, folding off',
        fold=False, sets=FULL),
    _tv('tv_vit_b_16_op13_dynbatch', 'vit_b_16', 13, 'torchvision vit_b_16, opset 13, dynamic batch',
        dynamic=True, batch=2, sets=FULL),
    _tv('tv_vit_b_32_op17', 'vit_b_32', 17, 'torchvision vit_b_32, opset 17', sets=FULL),
    _tv('tv_vit_l_16_op17', 'vit_l_16', 17, 'torchvision vit_l_16, opset 17', sets=FULL),
]


# EfficientViT-M: the matrix of issue 10, for both forms of the attention (timm's, and Microsoft's
# original Cream code, see timm_efficientvit.py). Every model at 224 and at a second size whose stage
# maps need window padding, at opsets 10, 13 and 17, plain (eval export) and reparameterised; at 224
# also with BatchNormalization kept, a dynamic batch (opset 17: x.chunk on a dynamic batch needs
# opset 11) and constant folding off. The full set holds all of them; CI a subset that still takes
# every path of both forms (names in EVIT_CI).
EVIT_SECOND_SIZE = {'efficientvit_m0': 256, 'efficientvit_m1': 288, 'efficientvit_m2': 320,
                    'efficientvit_m3': 192, 'efficientvit_m4': 384, 'efficientvit_m5': 192}
EVIT_CI = {
    # timm form
    'efficientvit_m0_224_op10', 'efficientvit_m0_224_op10_reparam', 'efficientvit_m0_224_op13',
    'efficientvit_m0_224_op13_reparam', 'efficientvit_m0_224_op17', 'efficientvit_m0_224_op17_reparam',
    'efficientvit_m0_224_op13_bn', 'efficientvit_m0_224_op17_dynbatch', 'efficientvit_m0_224_op13_nofold',
    'efficientvit_m0_256_op10_reparam', 'efficientvit_m0_256_op17', 'efficientvit_m5_224_op10_reparam',
    'efficientvit_m5_224_op17', 'efficientvit_m5_224_op13_bn',
    # Cream form
    'efficientvit_cream_m0_224_op10', 'efficientvit_cream_m0_224_op10_reparam', 'efficientvit_cream_m0_224_op13',
    'efficientvit_cream_m0_224_op13_reparam', 'efficientvit_cream_m0_224_op17',
    'efficientvit_cream_m0_224_op17_reparam', 'efficientvit_cream_m0_256_op17_reparam',
    'efficientvit_cream_m5_224_op17', 'efficientvit_cream_m5_224_op13_bn',
}


def _evit_matrix():
    out = []

    def add(form, model, size, opset, variant=''):
        short = model.replace('efficientvit_', '')
        prefix = 'efficientvit_' if form == 'timm' else 'efficientvit_cream_'
        name = f"{prefix}{short}_{size}_op{opset}" + (f"_{variant}" if variant else '')
        what = {'': 'plain eval export', 'reparam': 'reparameterised', 'bn': 'BatchNormalization kept',
                'dynbatch': 'dynamic batch, batch-2 input', 'nofold': 'constant folding off',
                'pooled': 'num_classes=0 (pooled features)'}[variant]
        desc = f"EfficientViT-{short.upper()} at {size}, opset {opset}, {what}, {form} form"
        kw = dict(img_size=size, form=form, fuse=variant == 'reparam')
        if variant == 'bn':
            kw['keep_bn'] = True
        if variant == 'dynbatch':
            kw.update(dynamic=True, batch=2)
        if variant == 'nofold':
            kw['fold'] = False
        if variant == 'pooled':
            kw['num_classes'] = 0
        out.append(_ev(name, model, opset, desc, sets=('ci', 'full') if name in EVIT_CI else FULL, **kw))

    for model, second in EVIT_SECOND_SIZE.items():
        for size in (224, second):
            for opset in (10, 13, 17):
                for variant in ('', 'reparam'):
                    add('timm', model, size, opset, variant)
        add('timm', model, 224, 13, 'bn')
        add('timm', model, 224, 17, 'dynbatch')
        add('timm', model, 224, 13, 'nofold')
    add('timm', 'efficientvit_m0', 224, 17, 'pooled')
    for model, second in EVIT_SECOND_SIZE.items():
        for opset in (10, 13, 17):
            for variant in ('', 'reparam'):
                add('cream', model, 224, opset, variant)
        for variant in ('', 'reparam'):
            add('cream', model, second, 17, variant)
        add('cream', model, 224, 13, 'bn')
    return out


FIXTURES += _evit_matrix()
assert EVIT_CI <= {fx.name for fx in FIXTURES}, sorted(EVIT_CI - {fx.name for fx in FIXTURES})
assert len({fx.name for fx in FIXTURES}) == len(FIXTURES), 'duplicate fixture names'


# ---------------------------------------------------------------------------
# Model construction
# ---------------------------------------------------------------------------
def build_model(fx: Fixture):
    """Return (model, (H, W)) for a fixture, weights seeded from the name."""
    if fx.family == 'timm':
        model = timm_vit.make_model(fx.model, seed=fx.seed, **fx.model_kwargs)
        return model.eval(), model.patch_embed.img_size
    if fx.family == 'efficientvit':
        model = timm_efficientvit.make_model(fx.model, seed=fx.seed, **fx.model_kwargs)
        return model.eval(), (model.img_size, model.img_size)
    import torchvision
    torch.manual_seed(fx.seed)  # torchvision's own init (overwritten below)
    builder = getattr(torchvision.models, fx.model)
    model = builder(weights=None, **fx.model_kwargs)
    # torchvision zero-initialises the head and class token and leaves tiny
    # biases; replace everything by realistic values.
    timm_vit.realistic_init_(model, fx.seed)
    return model.eval(), (model.image_size, model.image_size)


def run_reference(model, x, family):
    if family == 'torchvision':
        # nn.MultiheadAttention takes the fused native fast path under no_grad
        # in eval mode.  The traced ONNX graph uses the decomposed path
        # (parameters require grad while exporting), so run that path too.
        with torch.enable_grad():
            return model(x).detach()
    with torch.no_grad():
        return model(x)


def export(model, x, path, fx: Fixture):
    kwargs = dict(opset_version=fx.opset, do_constant_folding=fx.fold,
                  input_names=['input'], output_names=['output'])
    if fx.family == 'efficientvit' and getattr(fx, 'keep_bn', False):
        # Eval-mode export fuses Conv+BatchNormalization itself; PRESERVE keeps the BN nodes (inference form).
        kwargs['training'] = torch.onnx.TrainingMode.PRESERVE
    if fx.dynamic:
        kwargs['dynamic_axes'] = {'input': {0: 'batch'}, 'output': {0: 'batch'}}
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        torch.onnx.export(model, x, path, **kwargs)


# ---------------------------------------------------------------------------
# ONNX inspection
# ---------------------------------------------------------------------------
def analyze_onnx(path):
    import onnx
    m = onnx.load(path)
    nodes = list(m.graph.node)
    ops = Counter(n.op_type for n in nodes)
    has = lambda *o: all(ops.get(k, 0) for k in o)  # noqa: E731
    if ops.get('LayerNormalization'):
        ln = 'fused LayerNormalization'
    elif has('ReduceMean', 'Sqrt', 'Div'):
        ln = 'decomposed (ReduceMean/Sub/Pow/ReduceMean/Add/Sqrt/Div/Mul/Add)'
    else:
        ln = 'none?'
    if ops.get('Gelu'):
        gelu = 'Gelu op'
    elif ops.get('Erf'):
        gelu = 'erf decomposition (Div,Erf,Add,Mul,Mul)'
    elif ops.get('Tanh'):
        gelu = 'tanh approximation'
    else:
        gelu = 'none?'
    # qkv split: data-path slicing ops inside attention scopes (ops whose
    # data input comes from Shape are shape arithmetic, not the split).
    producer = {o: n.op_type for n in nodes for o in n.output}
    attn_ops = Counter()
    for n in nodes:
        nm = n.name
        if ('/attn/' in nm or 'self_attention' in nm) and n.op_type in (
                'Split', 'Gather', 'Slice', 'SplitToSequence', 'Squeeze', 'Chunk'):
            if n.input and producer.get(n.input[0]) not in ('Shape', 'Constant', None):
                attn_ops[n.op_type] += 1
    split_kind = [k for k in ('Split', 'SplitToSequence', 'Slice', 'Gather', 'Squeeze') if attn_ops.get(k)]
    out = m.graph.output[0].type.tensor_type.shape
    out_dims = [d.dim_param if d.dim_param else (d.dim_value if d.HasField('dim_value') else '?')
                for d in out.dim]
    inp = m.graph.input[0].type.tensor_type.shape
    in_dims = [d.dim_param if d.dim_param else (d.dim_value if d.HasField('dim_value') else '?')
               for d in inp.dim]
    return {
        'num_nodes': len(nodes),
        'num_initializers': len(m.graph.initializer),
        'op_types': dict(sorted(ops.items())),
        'layernorm': ln,
        'gelu': gelu,
        'qkv_split_ops': split_kind,
        'attn_split_op_counts': dict(sorted(attn_ops.items())),
        'onnx_input_dims': in_dims,
        'onnx_output_dims': out_dims,
        'ir_version': m.ir_version,
        'opset_import': {o.domain or 'ai.onnx': o.version for o in m.opset_import},
    }


# ---------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------
def source_hash():
    h = hashlib.sha256()
    for fn in STAMP_SOURCES:
        with open(os.path.join(HERE, fn), 'rb') as f:
            h.update(fn.encode() + b'\0' + f.read() + b'\0')
    h.update(f"torch={torch.__version__}".encode())
    return h.hexdigest()


def compute_stamp(set_name):
    """Manifest stamp: export scripts' source + torch version + --set."""
    return hashlib.sha256(f"{source_hash()}:set={set_name}".encode()).hexdigest()[:32]


def fixture_stamp(fx):
    """Per-fixture stamp (independent of --set, so switching sets reuses fixtures)."""
    return hashlib.sha256(f"{source_hash()}:{fx.name}".encode()).hexdigest()[:32]


def write_raw(path, t):
    t.detach().cpu().contiguous().numpy().astype('<f4').tofile(path)


def generate_one(fx: Fixture, out_dir: str, fstamp: str, verify: bool = True):
    t0 = time.perf_counter()
    model, (h, w) = build_model(fx)
    x = timm_vit.make_image(fx.seed, fx.batch, h, w)
    t1 = time.perf_counter()
    y = run_reference(model, x, fx.family)
    if not torch.isfinite(y).all():
        raise RuntimeError(f"{fx.name}: non-finite reference output")
    t2 = time.perf_counter()

    final = os.path.join(out_dir, fx.name)
    tmp = tempfile.mkdtemp(prefix=f'.{fx.name}.', dir=out_dir)
    try:
        onnx_path = os.path.join(tmp, 'model.onnx')
        export(model, x, onnx_path, fx)
        t3 = time.perf_counter()
        import onnx
        onnx.checker.check_model(onnx_path)
        info = analyze_onnx(onnx_path)
        write_raw(os.path.join(tmp, 'input.bin'), x)
        write_raw(os.path.join(tmp, 'reference.bin'), y)
        meta = OrderedDict([
            ('name', fx.name), ('family', fx.family), ('opset', fx.opset),
            ('constant_folding', fx.fold), ('dynamic_batch', fx.dynamic), ('batch', fx.batch),
            ('input_shape', list(x.shape)), ('output_shape', list(y.shape)),
            ('description', fx.description),
        ])
        with open(os.path.join(tmp, 'meta.json'), 'w') as f:
            json.dump(meta, f, indent=2)
            f.write('\n')
        if verify:
            # Independent check: evaluate the ONNX graph with the NumPy
            # interpreter and compare with the PyTorch reference.
            err, scale = onnx_numpy_eval.check_fixture(tmp, verbose=False)
            info['onnx_eval_max_abs_err'] = err
            if not err <= 1e-3 * max(1.0, scale):
                raise RuntimeError(f"{fx.name}: ONNX graph disagrees with PyTorch (max abs err {err:.3g})")
        with open(os.path.join(tmp, '.stamp'), 'w') as f:
            f.write(fstamp + '\n')
        os.chmod(tmp, 0o755)
        if os.path.exists(final):
            shutil.rmtree(final)
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    t4 = time.perf_counter()
    size = sum(os.path.getsize(os.path.join(final, f)) for f in os.listdir(final))
    timing = {'build_s': round(t1 - t0, 2), 'reference_s': round(t2 - t1, 2),
              'export_s': round(t3 - t2, 2), 'verify_write_s': round(t4 - t3, 2),
              'total_s': round(t4 - t0, 2)}
    return meta, info, size, timing


def load_existing(fx, out_dir, fstamp):
    d = os.path.join(out_dir, fx.name)
    try:
        with open(os.path.join(d, '.stamp')) as f:
            if f.read().strip() != fstamp:
                return None
        with open(os.path.join(d, 'meta.json')) as f:
            meta = json.load(f)
        for fn in ('model.onnx', 'input.bin', 'reference.bin'):
            if not os.path.isfile(os.path.join(d, fn)):
                return None
    except OSError:
        return None
    return meta


def print_table(entries):
    print()
    print(f"{'fixture':44s} {'fam':5s} {'op':>3s} {'fold':4s} {'dyn':3s} {'MB':>7s} {'sec':>6s}  "
          f"{'LayerNorm':10s} {'GELU':9s} {'qkv split':18s} out dims")
    for e in entries:
        i = e['onnx']
        ln = 'fused' if i['layernorm'].startswith('fused') else 'decomp'
        ge = 'Erf' if i['gelu'].startswith('erf') else i['gelu']
        sp = '+'.join(i['qkv_split_ops']) or '-'
        print(f"{e['name']:44s} {e['family'][:5]:5s} {e['opset']:3d} {str(e['constant_folding'])[0]:4s} "
              f"{str(e['dynamic_batch'])[0]:3s} {e['bytes'] / 1e6:7.1f} {e['timing'].get('total_s', 0):6.1f}  "
              f"{ln:10s} {ge:9s} {sp:18s} {i['onnx_output_dims']}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('out_dir')
    ap.add_argument('--set', dest='set_name', choices=('ci', 'full'), default='ci')
    ap.add_argument('--only', default='', help='comma-separated fixture names (no manifest stamp)')
    ap.add_argument('--force', action='store_true', help='regenerate even if up to date')
    ap.add_argument('--list', action='store_true', help='list the fixtures of the set and exit')
    ap.add_argument('--no-verify', action='store_true',
                    help='skip the NumPy ONNX-interpreter cross-check of every fixture')
    ap.add_argument('--threads', type=int, default=0, help='torch intra-op threads (default: all cores)')
    args = ap.parse_args(argv)

    selected = [fx for fx in FIXTURES if args.set_name in fx.sets]
    if args.only:
        want = set(args.only.split(','))
        unknown = want - {fx.name for fx in FIXTURES}
        if unknown:
            ap.error(f"unknown fixture(s): {sorted(unknown)}")
        selected = [fx for fx in FIXTURES if fx.name in want]
    if args.list:
        for fx in selected:
            print(f"{fx.name:44s} {fx.family:11s} opset {fx.opset:2d} fold={fx.fold!s:5s} "
                  f"dyn={fx.dynamic!s:5s} batch={fx.batch}  {fx.description}")
        return 0

    out_dir = os.path.abspath(args.out_dir)
    os.makedirs(out_dir, exist_ok=True)
    stamp = compute_stamp(args.set_name)
    manifest_path = os.path.join(out_dir, 'manifest.json')
    if not args.only and not args.force and os.path.isfile(manifest_path):
        try:
            with open(manifest_path) as f:
                old = json.load(f)
            if old.get('stamp') == stamp and all(
                    os.path.isfile(os.path.join(out_dir, e['name'], 'model.onnx')) for e in old['fixtures']):
                print(f"fixtures up to date ({len(old['fixtures'])} in {out_dir}, set={args.set_name})")
                return 0
        except (OSError, ValueError, KeyError):
            pass

    if args.threads:
        torch.set_num_threads(args.threads)
    old_entries = {}
    if os.path.isfile(manifest_path):
        try:
            with open(manifest_path) as f:
                old_entries = {e['name']: e for e in json.load(f).get('fixtures', [])}
        except (OSError, ValueError):
            pass

    print(f"generating {len(selected)} fixtures into {out_dir} (set={args.set_name}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads)")
    t_all = time.perf_counter()
    entries = []
    for k, fx in enumerate(selected, 1):
        fstamp = fixture_stamp(fx)
        meta = None if args.force else load_existing(fx, out_dir, fstamp)
        if meta is not None and fx.name in old_entries and 'onnx' in old_entries[fx.name]:
            e = old_entries[fx.name]
            print(f"[{k:2d}/{len(selected)}] {fx.name}: up to date")
            entries.append(e)
            continue
        if meta is not None:
            info = analyze_onnx(os.path.join(out_dir, fx.name, 'model.onnx'))
            size = sum(os.path.getsize(os.path.join(out_dir, fx.name, f))
                       for f in os.listdir(os.path.join(out_dir, fx.name)))
            timing = {}
            print(f"[{k:2d}/{len(selected)}] {fx.name}: up to date")
        else:
            meta, info, size, timing = generate_one(fx, out_dir, fstamp, verify=not args.no_verify)
            print(f"[{k:2d}/{len(selected)}] {fx.name}: {size / 1e6:.1f} MB, "
                  f"build {timing['build_s']}s ref {timing['reference_s']}s export {timing['export_s']}s "
                  f"verify+write {timing['verify_write_s']}s total {timing['total_s']}s"
                  + (f" (onnx-eval err {info['onnx_eval_max_abs_err']:.2g})" if 'onnx_eval_max_abs_err' in info else ''),
                  flush=True)
        e = OrderedDict(meta)
        e['dir'] = fx.name
        e['bytes'] = size
        e['timing'] = timing
        e['onnx'] = info
        entries.append(e)

    elapsed = time.perf_counter() - t_all
    print_table(entries)
    total_bytes = sum(e['bytes'] for e in entries)
    print(f"\n{len(entries)} fixtures, {total_bytes / 1e6:.0f} MB, {elapsed:.1f} s")

    if not args.only:
        manifest = OrderedDict([
            ('stamp', stamp), ('set', args.set_name), ('generator', 'tools/export/make_fixtures.py'),
            ('torch', torch.__version__), ('input_normalization',
                                           {'mean': timm_vit.IMAGENET_MEAN, 'std': timm_vit.IMAGENET_STD}),
            ('fixtures', entries),
        ])
        fd, tmp = tempfile.mkstemp(prefix='.manifest.', dir=out_dir)
        with os.fdopen(fd, 'w') as f:
            json.dump(manifest, f, indent=1)
            f.write('\n')
        os.chmod(tmp, 0o644)
        os.replace(tmp, manifest_path)
    return 0


if __name__ == '__main__':
    sys.exit(main())
