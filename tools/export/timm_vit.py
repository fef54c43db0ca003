"""Stand-alone re-implementation of timm's VisionTransformer for fixture generation.

timm is not installable in the build environment, so this module rebuilds the
subset of ``timm.models.vision_transformer.VisionTransformer`` that vitcc has
to understand.  Module / parameter names are chosen so that ``state_dict()``
keys are identical to timm's, and the forward pass follows timm's order of
operations:

    patch_embed (Conv2d stride=patch, flatten, NCHW -> NLC)
    _pos_embed:
        no_embed_class=False: cat([cls, reg..., patches]) then + pos_embed
        no_embed_class=True:  patches + pos_embed, then cat([cls, reg..., x])
    norm_pre (Identity, pre_norm is not supported here)
    blocks: x = x + ls1(attn(norm1(x))); x = x + ls2(mlp(norm2(x)))
        attn (non-fused path): qkv -> reshape(B,N,3,H,D) -> permute(2,0,3,1,4)
            -> unbind; (q*scale) @ k^T -> softmax -> @ v -> transpose(1,2)
            -> reshape(B,N,C) -> proj
        mlp: fc1 -> GELU(erf) -> fc2
    norm (Identity when fc_norm is active)
    forward_head: pool ('token' -> x[:,0], 'avg' -> mean over non-prefix
        tokens, '' -> all tokens) -> fc_norm -> head (Identity if num_classes=0)

LayerNorm uses eps=1e-6 (timm.layers.LayerNorm default).  Dropouts, drop-path
and patch-dropout are omitted at inference and are parameter-free, so they are
not modelled (they would be nn.Identity / p=0 in timm's eval graph anyway).

``realistic_init_`` replaces timm's training init (tiny std, LayerScale 1e-5,
zero biases) by seeded weights of realistic magnitude so that attention maps
are peaked and numerical errors in an inference engine become visible.
"""
import math
from typing import Dict, Optional, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

LN_EPS = 1e-6
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _pair(v) -> Tuple[int, int]:
    if isinstance(v, (tuple, list)):
        assert len(v) == 2
        return int(v[0]), int(v[1])
    return int(v), int(v)


def layer_norm(dim: int) -> nn.LayerNorm:
    return nn.LayerNorm(dim, eps=LN_EPS)


class PatchEmbed(nn.Module):
    """Conv patchifier; keys: patch_embed.proj.{weight,bias}."""

    def __init__(self, img_size=224, patch_size=16, in_chans=3, embed_dim=768, bias=True):
        super().__init__()
        self.img_size = _pair(img_size)
        self.patch_size = _pair(patch_size)
        self.grid_size = (self.img_size[0] // self.patch_size[0], self.img_size[1] // self.patch_size[1])
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=self.patch_size,
                              stride=self.patch_size, bias=bias)
        self.norm = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x)                      # B, C, gh, gw
        x = x.flatten(2).transpose(1, 2)      # B, gh*gw, C
        return self.norm(x)


class Attention(nn.Module):
    """Multi-head self attention, explicit (non-SDPA) formulation."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True, proj_bias: bool = True,
                 legacy_split: bool = False):
        super().__init__()
        assert dim % num_heads == 0, "dim must be divisible by num_heads"
        # timm before 0.9 indexed qkv[0], qkv[1], qkv[2] (exported as Gather) and scaled after q @ k^T.
        self.legacy_split = legacy_split
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.q_norm = nn.Identity()
        self.k_norm = nn.Identity()
        self.norm = nn.Identity()
        self.proj = nn.Linear(dim, dim, bias=proj_bias)
        # Debug hook for the degeneracy check; never set during export.
        self.capture_attn = False
        self.last_attn: Optional[torch.Tensor] = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        if self.legacy_split:
            q, k, v = qkv[0], qkv[1], qkv[2]
            attn = (q @ k.transpose(-2, -1)) * self.scale
        else:
            q, k, v = qkv.unbind(0)
            q, k = self.q_norm(q), self.k_norm(k)
            q = q * self.scale
            attn = q @ k.transpose(-2, -1)
        attn = attn.softmax(dim=-1)
        if self.capture_attn:
            self.last_attn = attn.detach()
        x = attn @ v
        x = x.transpose(1, 2).reshape(B, N, C)
        x = self.norm(x)
        return self.proj(x)


class LayerScale(nn.Module):
    """Per-channel residual-branch scale; key: ``gamma``."""

    def __init__(self, dim: int, init_values: float = 1e-5):
        super().__init__()
        self.gamma = nn.Parameter(init_values * torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Mlp(nn.Module):
    def __init__(self, in_features: int, hidden_features: int, bias: bool = True):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features, bias=bias)
        self.act = nn.GELU()  # exact erf form, as timm's default act_layer
        self.norm = nn.Identity()
        self.fc2 = nn.Linear(hidden_features, in_features, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.norm(self.act(self.fc1(x))))


class Block(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 init_values: Optional[float] = None, legacy_split: bool = False):
        super().__init__()
        self.norm1 = layer_norm(dim)
        self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias, legacy_split=legacy_split)
        self.ls1 = LayerScale(dim, init_values) if init_values else nn.Identity()
        self.norm2 = layer_norm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.ls2 = LayerScale(dim, init_values) if init_values else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        x = x + self.ls2(self.mlp(self.norm2(x)))
        return x


class VisionTransformer(nn.Module):
    """timm-compatible ViT (state_dict keys and forward semantics).

    ``features_only=True`` makes ``forward`` return ``forward_features`` output
    (all tokens after the final norm, [B, prefix + patches, embed_dim]).
    """

    def __init__(
            self,
            img_size: Union[int, Tuple[int, int]] = 224,
            patch_size: Union[int, Tuple[int, int]] = 16,
            in_chans: int = 3,
            num_classes: int = 1000,
            global_pool: str = 'token',
            embed_dim: int = 768,
            depth: int = 12,
            num_heads: int = 12,
            mlp_ratio: float = 4.0,
            qkv_bias: bool = True,
            init_values: Optional[float] = None,
            class_token: bool = True,
            no_embed_class: bool = False,
            reg_tokens: int = 0,
            fc_norm: Optional[bool] = None,
            final_norm: bool = True,
            features_only: bool = False,
            legacy_split: bool = False,
    ):
        super().__init__()
        assert global_pool in ('', 'avg', 'token'), global_pool
        assert class_token or global_pool != 'token', "global_pool='token' needs a class token"
        use_fc_norm = (global_pool == 'avg') if fc_norm is None else fc_norm

        self.num_classes = num_classes
        self.global_pool = global_pool
        self.num_features = self.embed_dim = embed_dim
        self.num_prefix_tokens = (1 if class_token else 0) + reg_tokens
        self.num_reg_tokens = reg_tokens
        self.has_class_token = class_token
        self.no_embed_class = no_embed_class
        self.features_only = features_only

        # Construction order mirrors timm (affects nothing but readability:
        # directly-owned Parameters always precede submodules in state_dict).
        self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, embed_dim)
        num_patches = self.patch_embed.num_patches
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim)) if class_token else None
        self.reg_token = nn.Parameter(torch.zeros(1, reg_tokens, embed_dim)) if reg_tokens else None
        embed_len = num_patches if no_embed_class else num_patches + self.num_prefix_tokens
        self.pos_embed = nn.Parameter(torch.zeros(1, embed_len, embed_dim))
        self.norm_pre = nn.Identity()
        self.blocks = nn.Sequential(*[
            Block(embed_dim, num_heads, mlp_ratio, qkv_bias=qkv_bias, init_values=init_values,
                  legacy_split=legacy_split)
            for _ in range(depth)])
        self.norm = layer_norm(embed_dim) if final_norm and not use_fc_norm else nn.Identity()
        self.fc_norm = layer_norm(embed_dim) if final_norm and use_fc_norm else nn.Identity()
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()

    # -- timm forward pieces -------------------------------------------------
    def _pos_embed(self, x: torch.Tensor) -> torch.Tensor:
        to_cat = []
        if self.cls_token is not None:
            to_cat.append(self.cls_token.expand(x.shape[0], -1, -1))
        if self.reg_token is not None:
            to_cat.append(self.reg_token.expand(x.shape[0], -1, -1))
        if self.no_embed_class:
            x = x + self.pos_embed
            if to_cat:
                x = torch.cat(to_cat + [x], dim=1)
        else:
            if to_cat:
                x = torch.cat(to_cat + [x], dim=1)
            x = x + self.pos_embed
        return x

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        x = self._pos_embed(x)
        x = self.norm_pre(x)
        x = self.blocks(x)
        return self.norm(x)

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        if self.global_pool == 'token':
            return x[:, 0]
        if self.global_pool == 'avg':
            return x[:, self.num_prefix_tokens:].mean(dim=1)
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.pool(x)
        x = self.fc_norm(x)
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.forward_features(x)
        if self.features_only:
            return x
        return self.forward_head(x)

    def set_capture_attn(self, on: bool) -> None:
        for m in self.modules():
            if isinstance(m, Attention):
                m.capture_attn = on
                m.last_attn = None


# ---------------------------------------------------------------------------
# Model zoo (architecture args as registered in timm)
# ---------------------------------------------------------------------------
MODEL_CONFIGS: Dict[str, dict] = {
    'vit_tiny_patch16_224': dict(patch_size=16, embed_dim=192, depth=12, num_heads=3),
    'vit_small_patch16_224': dict(patch_size=16, embed_dim=384, depth=12, num_heads=6),
    'vit_base_patch16_224': dict(patch_size=16, embed_dim=768, depth=12, num_heads=12),
    'deit_tiny_patch16_224': dict(patch_size=16, embed_dim=192, depth=12, num_heads=3),
    # DINOv2: timm registers img_size=518 (reg4: via pretrained cfg input_size
    # 518) and the lvd142m pretrained cfg sets num_classes=0 (pooled features).
    'vit_small_patch14_dinov2': dict(patch_size=14, embed_dim=384, depth=12, num_heads=6,
                                     init_values=1e-5, img_size=518, num_classes=0),
    'vit_small_patch14_reg4_dinov2': dict(patch_size=14, embed_dim=384, depth=12, num_heads=6,
                                          init_values=1e-5, reg_tokens=4, no_embed_class=True,
                                          img_size=518, num_classes=0),
    # Small bundled demo model (not a timm registration).
    'vit_demo': dict(img_size=96, patch_size=8, embed_dim=96, depth=5, num_heads=3,
                     init_values=0.1, num_classes=10),
    # Trained on Fashion-MNIST by train_fashion_mnist.py (not a timm registration): 28x28 grayscale,
    # 7x7 patches of 4x4 + class token, timm's default parts (LayerNorm, GELU, token pooling).
    'vit_fmnist': dict(img_size=28, patch_size=4, in_chans=1, embed_dim=64, depth=4, num_heads=4,
                       mlp_ratio=2.0, num_classes=10),
}


def make_model(name: str, seed: Optional[int] = 0, **overrides) -> VisionTransformer:
    """Build a named config; ``overrides`` replace constructor args.

    If ``seed`` is not None the weights are re-initialised with
    ``realistic_init_`` (deterministic for a given seed and config).
    """
    if name not in MODEL_CONFIGS:
        raise KeyError(f"unknown model {name!r}; known: {sorted(MODEL_CONFIGS)}")
    args = dict(MODEL_CONFIGS[name])
    args.update(overrides)
    model = VisionTransformer(**args)
    if seed is not None:
        realistic_init_(model, seed)
    return model.eval()


# ---------------------------------------------------------------------------
# Realistic random weights
# ---------------------------------------------------------------------------
def _normal(gen: torch.Generator, shape, std: float, mean: float = 0.0) -> torch.Tensor:
    return torch.randn(shape, generator=gen, dtype=torch.float32) * std + mean


def _uniform(gen: torch.Generator, lo: float, hi: float, shape=()) -> torch.Tensor:
    return torch.rand(shape, generator=gen, dtype=torch.float32) * (hi - lo) + lo


@torch.no_grad()
def realistic_init_(model: nn.Module, seed: int) -> nn.Module:
    """Overwrite every parameter with seeded values of realistic magnitude.

    Works for this module and for torchvision's VisionTransformer:
      * Linear / Conv weights: N(0, s/sqrt(fan_in)), s~U(1.0,1.5) per tensor;
        fused qkv / MHA in_proj use s~U(1.4,1.9) so q.k logits have std ~2-3
        and attention rows are clearly non-uniform
      * biases: N(0, b), b~U(0.02, 0.1) per tensor
      * LayerNorm: weight 1 + N(0, 0.1), bias N(0, 0.05)
      * LayerScale gamma: U(0.05, 0.5) per channel
      * class / register tokens: N(0, 0.5); position embeddings: N(0, 0.2)
    Parameters are visited in state_dict order with one generator, so the
    result depends only on (seed, architecture).
    """
    gen = torch.Generator().manual_seed(int(seed))
    owners = {}
    for mname, mod in model.named_modules():
        for pname, _ in mod.named_parameters(recurse=False):
            owners[f"{mname}.{pname}" if mname else pname] = (mod, pname)
    for full, p in model.named_parameters():
        mod, pname = owners[full]
        shape = p.shape
        if isinstance(mod, nn.LayerNorm):
            val = _normal(gen, shape, 0.1, 1.0) if pname == 'weight' else _normal(gen, shape, 0.05)
        elif isinstance(mod, LayerScale) or pname == 'gamma':
            val = _uniform(gen, 0.05, 0.5, shape)
        elif pname.endswith('bias'):
            val = _normal(gen, shape, float(_uniform(gen, 0.02, 0.1)))
        elif p.dim() >= 2 and (isinstance(mod, (nn.Linear, nn.Conv2d, nn.MultiheadAttention))):
            fan_in = int(torch.tensor(shape[1:]).prod())
            # q/k projections get a slightly larger gain so softmax rows are
            # clearly peaked (mean max-prob ~20-40x uniform at 197 tokens).
            qk = 'qkv' in full or 'in_proj' in pname
            s = float(_uniform(gen, 1.4, 1.9) if qk else _uniform(gen, 1.0, 1.5))
            val = _normal(gen, shape, s / math.sqrt(fan_in))
        elif 'pos' in pname:
            val = _normal(gen, shape, 0.2)
        elif 'token' in pname:
            val = _normal(gen, shape, 0.5)
        else:
            raise RuntimeError(f"realistic_init_: no rule for parameter {full} {tuple(shape)}")
        p.copy_(val)
    return model


# ---------------------------------------------------------------------------
# Inputs and sanity checks
# ---------------------------------------------------------------------------
def make_image(seed: int, batch: int = 1, height: int = 224, width: int = 224,
               normalize: bool = True) -> torch.Tensor:
    """Smooth, image-like, seeded NCHW float32 batch.

    Values in [0,1] are built from a bilinearly upsampled low-res colour noise
    field plus gradients and a few sinusoids; then ImageNet mean/std
    normalisation gives values roughly in [-2.1, 2.6].
    """
    gen = torch.Generator().manual_seed(int(seed))
    imgs = []
    yy = torch.linspace(0, 1, height).view(height, 1).expand(height, width)
    xx = torch.linspace(0, 1, width).view(1, width).expand(height, width)
    for _ in range(batch):
        low = torch.rand((1, 3, 6, 6), generator=gen)
        mid = torch.rand((1, 3, 24, 24), generator=gen)
        img = 0.6 * F.interpolate(low, size=(height, width), mode='bilinear', align_corners=False)[0]
        img = img + 0.25 * F.interpolate(mid, size=(height, width), mode='bilinear', align_corners=False)[0]
        for c in range(3):
            fx, fy, ph = (torch.rand(3, generator=gen) * torch.tensor([8.0, 8.0, 6.28])).tolist()
            img[c] += 0.15 * torch.sin(2 * math.pi * (fx * xx + fy * yy) + ph)
            img[c] += 0.2 * (xx if c % 2 == 0 else yy) - 0.1
        img = img + 0.02 * torch.randn((3, height, width), generator=gen)  # sensor noise
        imgs.append(img.clamp(0.0, 1.0))
    x = torch.stack(imgs).contiguous()
    if normalize:
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        x = (x - mean) / std
    return x.float().contiguous()


@torch.no_grad()
def sanity_check(model: nn.Module, x: torch.Tensor, name: str = '', verbose: bool = True) -> dict:
    """Run the model, return/print statistics that reveal degenerate weights."""
    has_capture = any(isinstance(m, Attention) for m in model.modules())
    if has_capture:
        model.set_capture_attn(True)
    y = model(x)
    stats = {
        'finite': bool(torch.isfinite(y).all()),
        'out_mean': float(y.mean()), 'out_std': float(y.std()),
        'out_absmax': float(y.abs().max()),
    }
    if y.dim() == 2 and y.shape[1] > 1:
        stats['row_range_min'] = float((y.max(1).values - y.min(1).values).min())
    if has_capture:
        maxp, ent_ratio = [], []
        for m in model.modules():
            if isinstance(m, Attention) and m.last_attn is not None:
                a = m.last_attn
                n = a.shape[-1]
                maxp.append(float(a.max(-1).values.mean()))
                ent = -(a.clamp_min(1e-30) * a.clamp_min(1e-30).log()).sum(-1).mean()
                ent_ratio.append(float(ent / math.log(n)))
        model.set_capture_attn(False)
        stats['attn_maxprob_mean'] = sum(maxp) / len(maxp)
        stats['attn_entropy_ratio'] = sum(ent_ratio) / len(ent_ratio)  # 1.0 == uniform
        stats['uniform_prob'] = 1.0 / n
    ok = stats['finite'] and stats['out_std'] > 1e-3
    if has_capture:
        ok = ok and stats['attn_entropy_ratio'] < 0.97 and stats['attn_maxprob_mean'] > 3 * stats['uniform_prob']
    stats['ok'] = ok
    if verbose:
        msg = (f"[check] {name}: out{tuple(y.shape)} finite={stats['finite']} "
               f"std={stats['out_std']:.3f} |max|={stats['out_absmax']:.3f}")
        if 'row_range_min' in stats:
            msg += f" spread={stats['row_range_min']:.2f}"
        if has_capture:
            msg += (f" attn_maxp={stats['attn_maxprob_mean']:.3f} (uniform {stats['uniform_prob']:.4f})"
                    f" entropy/uniform={stats['attn_entropy_ratio']:.3f}")
        msg += " OK" if ok else " DEGENERATE"
        print(msg)
    return stats


if __name__ == '__main__':
    # Quick self-test: build every config at a small resolution and check it.
    torch.set_num_threads(max(1, torch.get_num_threads()))
    for nm in MODEL_CONFIGS:
        kw = {}
        if 'dinov2' in nm:
            kw['img_size'] = 224
        m = make_model(nm, seed=0, **kw)
        h, w = m.patch_embed.img_size
        sanity_check(m, make_image(1, 1, h, w)[:, :m.patch_embed.proj.in_channels], nm)
    m = make_model('vit_small_patch14_reg4_dinov2', seed=0, img_size=224)
    print('state_dict keys (vit_small_patch14_reg4_dinov2):')
    for k, v in m.state_dict().items():
        print(f"  {k} {tuple(v.shape)}")
