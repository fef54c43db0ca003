"""A project-owned PyTorch mirror of timm's EfficientViT-M (Microsoft EfficientViT, CVPR 2023;
timm/models/efficientvit_msra.py), for test fixtures.

Same module tree, state_dict names and forward as timm's EfficientVitMsra, written from the
architecture description (no timm import, no timm code). It follows timm as of commit aa4b5850
(timm 1.0.29.dev0); tools/export/check_timm_mirror.py compares it with a timm checkout (state_dict
names and shapes, outputs, and the ONNX graph each exports), so that a change in timm is caught by
that check, not by a user:

  patch_embed.conv{1..4}            ConvNorm 3x3 stride 2, ReLU between them (img/16)
  stages.{s}.downsample             (s > 0) res1 (dw 3x3 + ConvMlp, residual), patchmerge
                                    (1x1, ReLU, dw 3x3 s2, ReLU, SE, 1x1), res2 (dw + ConvMlp)
  stages.{s}.blocks.{b}             dw0, ffn0, mixer (windowed cascaded group attention), dw1, ffn1,
                                    each residual (`.m` inside ResidualDrop)
  head                              NormLinear (bn: BatchNorm1d, drop, linear) or Identity (num_classes=0)

Two forms of the cascaded group attention, both exported by people today (form=...):
  'timm'   timm's: the bias table gathered once for all heads before the head loop
           (attention_biases[:, attention_bias_idxs], [heads, N, N]), q scaled before the product
           (q = q * scale; q^T k), the index table a non-persistent buffer; the window reshapes take
           B and C from x.shape; reparameterisation fuses the head's BatchNorm1d into its Linear
           (NormLinear.fuse).
  'cream'  Microsoft's original implementation (github.com/microsoft/Cream, EfficientViT), which this
           mirror followed before: the table gathered inside the head loop, the product scaled
           ((q^T k) * scale), the index table persistent, static window reshapes, and a
           reparameterisation that leaves the head's BatchNorm1d (BN_Linear) in the graph.

make_model() gives seeded random weights with *calibrated* BatchNorm statistics (running mean and
variance accumulated over a few random batches in training mode), so folding BN is exercised with
non-trivial statistics, and attention biases at a realistic scale (timm initialises them to zero).
fuse_() is the reparameterisation of the chosen form.
"""
import itertools
import math
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

# name: (embed_dim, depth, num_heads, kernels) -- key_dim 16 and window 7 for every stage
CONFIGS = {
    'efficientvit_m0': ((64, 128, 192), (1, 2, 3), (4, 4, 4), (5, 5, 5, 5)),
    'efficientvit_m1': ((128, 144, 192), (1, 2, 3), (2, 3, 3), (7, 5, 3, 3)),
    'efficientvit_m2': ((128, 192, 224), (1, 2, 3), (4, 3, 2), (7, 5, 3, 3)),
    'efficientvit_m3': ((128, 240, 320), (1, 2, 3), (4, 3, 4), (5, 5, 5, 5)),
    'efficientvit_m4': ((128, 256, 384), (1, 2, 3), (4, 4, 4), (7, 5, 3, 3)),
    'efficientvit_m5': ((192, 288, 384), (1, 3, 4), (3, 3, 4), (7, 5, 3, 3)),
}


def _divisible8(v: float) -> int:
    # timm's make_divisible(v, 8, round_limit=0): nearest multiple of 8, at least 8
    return max(8, int(v + 4) // 8 * 8)


class ConvBN(nn.Sequential):
    def __init__(self, cin, cout, ks=1, stride=1, pad=0, groups=1):
        super().__init__()
        self.add_module('conv', nn.Conv2d(cin, cout, ks, stride, pad, groups=groups, bias=False))
        self.add_module('bn', nn.BatchNorm2d(cout))

    @torch.no_grad()
    def fused(self) -> nn.Conv2d:
        c, bn = self.conv, self.bn
        s = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        m = nn.Conv2d(c.in_channels, c.out_channels, c.kernel_size, c.stride, c.padding, groups=c.groups, bias=True)
        m.weight.copy_(c.weight * s[:, None, None, None])
        m.bias.copy_(bn.bias - bn.running_mean * s)
        return m


class NormLinear(nn.Sequential):
    """timm's NormLinear (Cream's BN_Linear): BatchNorm1d, Dropout, Linear."""

    def __init__(self, cin, cout):
        super().__init__()
        self.add_module('bn', nn.BatchNorm1d(cin))
        self.add_module('drop', nn.Dropout(0.0))
        self.add_module('linear', nn.Linear(cin, cout))

    @torch.no_grad()
    def fused(self) -> nn.Linear:
        bn, lin = self.bn, self.linear
        s = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        t = bn.bias - bn.running_mean * s
        m = nn.Linear(lin.in_features, lin.out_features)
        m.weight.copy_(lin.weight * s[None, :])
        m.bias.copy_(lin.weight @ t + lin.bias)
        return m


class Residual(nn.Module):  # timm's ResidualDrop at inference
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, x):
        return x + self.m(x)


class FFN(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.pw1 = ConvBN(dim, hidden)
        self.act = nn.ReLU()
        self.pw2 = ConvBN(hidden, dim)

    def forward(self, x):
        return self.pw2(self.act(self.pw1(x)))


class SqueezeExcite(nn.Module):
    def __init__(self, ch, ratio=0.25):
        super().__init__()
        rd = _divisible8(ch * ratio)
        self.fc1 = nn.Conv2d(ch, rd, 1)
        self.bn = nn.Identity()
        self.act = nn.ReLU()
        self.fc2 = nn.Conv2d(rd, ch, 1)
        self.gate = nn.Sigmoid()

    def forward(self, x):
        s = x.mean((2, 3), keepdim=True)
        return x * self.gate(self.fc2(self.act(self.bn(self.fc1(s)))))


class PatchMerging(nn.Module):
    def __init__(self, dim, out_dim):
        super().__init__()
        hid = dim * 4
        self.conv1 = ConvBN(dim, hid)
        self.act = nn.ReLU()
        self.conv2 = ConvBN(hid, hid, 3, 2, 1, groups=hid)
        self.se = SqueezeExcite(hid)
        self.conv3 = ConvBN(hid, out_dim)

    def forward(self, x):
        return self.conv3(self.se(self.act(self.conv2(self.act(self.conv1(x))))))


class CascadedGroupAttention(nn.Module):
    def __init__(self, dim, key_dim, heads, attn_ratio, resolution, kernels, form='timm'):
        super().__init__()
        self.form = form
        self.heads = heads
        self.key_dim = key_dim
        self.scale = key_dim ** -0.5
        self.d = int(attn_ratio * key_dim)
        self.qkvs = nn.ModuleList([ConvBN(dim // heads, 2 * key_dim + self.d) for _ in range(heads)])
        self.dws = nn.ModuleList([ConvBN(key_dim, key_dim, kernels[i], 1, kernels[i] // 2, groups=key_dim)
                                  for i in range(heads)])
        self.proj = nn.Sequential(nn.ReLU(), ConvBN(self.d * heads, dim))
        # Relative-position bias: one entry per |dy|, |dx| offset, in first-seen order (resolution^2
        # offsets in all).
        pts = list(itertools.product(range(resolution), range(resolution)))
        offsets, idxs = {}, []
        for p in pts:
            for q in pts:
                off = (abs(p[0] - q[0]), abs(p[1] - q[1]))
                idxs.append(offsets.setdefault(off, len(offsets)))
        self.attention_biases = nn.Parameter(torch.zeros(heads, len(offsets)))
        self.register_buffer('attention_bias_idxs', torch.LongTensor(idxs).view(len(pts), len(pts)),
                             persistent=form != 'timm')

    def forward(self, x):
        B, C, H, W = x.shape
        chunks = x.chunk(self.heads, dim=1)
        outs = []
        feat = chunks[0]
        bias = self.attention_biases[:, self.attention_bias_idxs] if self.form == 'timm' else None
        for i in range(self.heads):
            if i > 0:
                feat = feat + chunks[i]
            feat = self.qkvs[i](feat)
            q, k, v = feat.view(B, -1, H, W).split([self.key_dim, self.key_dim, self.d], dim=1)
            q = self.dws[i](q)
            q, k, v = q.flatten(2), k.flatten(2), v.flatten(2)
            if self.form == 'timm':
                q = q * self.scale
                attn = q.transpose(-2, -1) @ k
                attn = attn + bias[i]
            else:
                attn = (q.transpose(-2, -1) @ k) * self.scale + self.attention_biases[:, self.attention_bias_idxs][i]
            attn = attn.softmax(dim=-1)
            feat = (v @ attn.transpose(-2, -1)).view(B, self.d, H, W)
            outs.append(feat)
        return self.proj(torch.cat(outs, 1))


class LocalWindowAttention(nn.Module):
    def __init__(self, dim, key_dim, heads, attn_ratio, resolution, window, kernels, form='timm'):
        super().__init__()
        self.form = form
        self.dim = dim
        self.resolution = resolution
        self.window_resolution = window
        self.attn = CascadedGroupAttention(dim, key_dim, heads, attn_ratio, min(window, resolution), kernels, form)

    def forward(self, x):
        H = W = self.resolution
        if self.form == 'timm':
            # timm: B and C from the input's shape (Shape ops in the graph unless folded)
            B, C = x.shape[0], x.shape[1]
        else:
            # Cream form: the module's own python ints, so the window reshapes are static
            B, C = x.shape[0], self.dim
        w = self.window_resolution
        if H <= w and W <= w:
            return self.attn(x)
        x = x.permute(0, 2, 3, 1)
        pb, pr = (w - H % w) % w, (w - W % w) % w
        crop = self.form == 'timm' or pb > 0 or pr > 0  # timm pads and crops even by nothing
        if crop:
            x = F.pad(x, (0, 0, 0, pr, 0, pb))
        pH, pW = H + pb, W + pr
        nH, nW = pH // w, pW // w
        x = x.view(B, nH, w, nW, w, C).transpose(2, 3).reshape(B * nH * nW, w, w, C).permute(0, 3, 1, 2)
        x = self.attn(x)
        x = x.permute(0, 2, 3, 1).view(B, nH, nW, w, w, C).transpose(2, 3).reshape(B, pH, pW, C)
        if crop:
            x = x[:, :H, :W].contiguous()
        return x.permute(0, 3, 1, 2)


class EfficientViTBlock(nn.Module):
    def __init__(self, ed, kd, nh, ar, resolution, window, kernels, form='timm'):
        super().__init__()
        self.dw0 = Residual(ConvBN(ed, ed, 3, 1, 1, groups=ed))
        self.ffn0 = Residual(FFN(ed, ed * 2))
        self.mixer = Residual(LocalWindowAttention(ed, kd, nh, ar, resolution, window, kernels, form))
        self.dw1 = Residual(ConvBN(ed, ed, 3, 1, 1, groups=ed))
        self.ffn1 = Residual(FFN(ed, ed * 2))

    def forward(self, x):
        return self.ffn1(self.dw1(self.mixer(self.ffn0(self.dw0(x)))))


class EfficientViTStage(nn.Module):
    def __init__(self, subsample, pre_ed, ed, kd, nh, ar, resolution, window, kernels, depth, form='timm'):
        super().__init__()
        if subsample:
            self.resolution = (resolution - 1) // 2 + 1
            self.downsample = nn.Sequential()
            self.downsample.add_module('res1', nn.Sequential(Residual(ConvBN(pre_ed, pre_ed, 3, 1, 1, groups=pre_ed)),
                                                             Residual(FFN(pre_ed, pre_ed * 2))))
            self.downsample.add_module('patchmerge', PatchMerging(pre_ed, ed))
            self.downsample.add_module('res2', nn.Sequential(Residual(ConvBN(ed, ed, 3, 1, 1, groups=ed)),
                                                             Residual(FFN(ed, ed * 2))))
        else:
            self.resolution = resolution
            self.downsample = nn.Identity()
        self.blocks = nn.Sequential(*[EfficientViTBlock(ed, kd, nh, ar, self.resolution, window, kernels, form)
                                      for _ in range(depth)])

    def forward(self, x):
        return self.blocks(self.downsample(x))


class PatchEmbedding(nn.Sequential):
    def __init__(self, in_chans, dim):
        super().__init__()
        self.add_module('conv1', ConvBN(in_chans, dim // 8, 3, 2, 1))
        self.add_module('relu1', nn.ReLU())
        self.add_module('conv2', ConvBN(dim // 8, dim // 4, 3, 2, 1))
        self.add_module('relu2', nn.ReLU())
        self.add_module('conv3', ConvBN(dim // 4, dim // 2, 3, 2, 1))
        self.add_module('relu3', nn.ReLU())
        self.add_module('conv4', ConvBN(dim // 2, dim, 3, 2, 1))


class EfficientViTMSRA(nn.Module):
    def __init__(self, img_size=224, in_chans=3, num_classes=1000, embed_dim=(64, 128, 192), key_dim=(16, 16, 16),
                 depth=(1, 2, 3), num_heads=(4, 4, 4), window_size=(7, 7, 7), kernels=(5, 5, 5, 5), form='timm'):
        super().__init__()
        assert form in ('timm', 'cream'), form
        self.form = form
        self.img_size = img_size
        self.patch_embed = PatchEmbedding(in_chans, embed_dim[0])
        res = img_size // 16
        stages = []
        for i in range(len(embed_dim)):
            ar = embed_dim[i] / (key_dim[i] * num_heads[i])
            st = EfficientViTStage(i > 0, embed_dim[i - 1], embed_dim[i], key_dim[i], num_heads[i], ar, res,
                                   window_size[i], kernels, depth[i], form)
            res = st.resolution
            stages.append(st)
        self.stages = nn.Sequential(*stages)
        self.num_features = embed_dim[-1]
        self.head = NormLinear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    def forward(self, x):
        x = self.stages(self.patch_embed(x))
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.head(x)


def fuse_(model: nn.Module, fuse_head: Optional[bool] = None) -> nn.Module:
    """Reparameterisation: every ConvNorm becomes one Conv2d with bias. timm's (reparameterize_model:
    every module with fuse()) also turns the NormLinear head into one Linear; the Cream form's keeps
    the head's BatchNorm1d."""
    if fuse_head is None:
        fuse_head = getattr(model, 'form', 'timm') == 'timm'
    for name, child in list(model.named_children()):
        if isinstance(child, ConvBN):
            setattr(model, name, child.fused())
        elif isinstance(child, NormLinear) and fuse_head:
            setattr(model, name, child.fused())
        else:
            fuse_(child, fuse_head)
    return model


def _normal(gen, shape, std, mean=0.0):
    return torch.randn(shape, generator=gen) * std + mean


def _image_batch(seed: int, batch: int, size: int) -> torch.Tensor:
    # Image-like, ImageNet-normalised inputs (the fixtures' input distribution) for BN calibration.
    import timm_vit
    return timm_vit.make_image(seed, batch, size, size)


@torch.no_grad()
def calibrate_batchnorm_(model: nn.Module, batches) -> nn.Module:
    """BatchNorm running statistics as the cumulative mean and variance over `batches` (forward
    passes in training mode), then eval mode. Momentum stays None (cumulative): exported, it is the
    BatchNormalization node's momentum attribute, which inference ignores."""
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            m.reset_running_stats()
            m.momentum = None
    model.train()
    for x in batches:
        model(x)
    model.eval()
    return model


@torch.no_grad()
def make_model(name: str, seed: int = 0, img_size: int = 224, num_classes: int = 1000, fuse: bool = False,
               calib_batches: int = 3, form: str = 'timm') -> EfficientViTMSRA:
    ed, depth, heads, kernels = CONFIGS[name]
    model = EfficientViTMSRA(img_size=img_size, num_classes=num_classes, embed_dim=ed, depth=depth,
                             num_heads=heads, kernels=kernels, form=form)
    gen = torch.Generator().manual_seed(int(seed))
    for pname, p in model.named_parameters():
        if pname.endswith('attention_biases'):
            p.copy_(_normal(gen, p.shape, 0.5))
        elif '.bn.' in pname or pname.startswith('head.bn'):
            # gamma ~ 0.5: residual branches add less than the stream, so the random network stays
            # well conditioned (float32 and float64 forwards agree to ~1e-6 relative)
            p.copy_(_normal(gen, p.shape, 0.1, 0.5) if pname.endswith('weight') else _normal(gen, p.shape, 0.1))
        elif pname.endswith('bias'):
            p.copy_(_normal(gen, p.shape, 0.05))
        else:
            fan_in = p[0].numel()
            p.copy_(_normal(gen, p.shape, 1.0 / math.sqrt(fan_in)))
    # Half image-like batches (the fixtures' inputs), half uniform noise in [-2, 2) (vitcc-pack's
    # self-check input), so the network is well conditioned on both.
    def batches():
        for k in range(calib_batches):
            yield _image_batch(int(seed) * 7 + k, 4, img_size)
            yield torch.rand((4, 3, img_size, img_size), generator=gen) * 4.0 - 2.0
    calibrate_batchnorm_(model, batches())
    for m in model.modules():  # PyTorch's default again, as the fixtures were always exported
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            m.momentum = 0.1
    if fuse:
        fuse_(model)
    return model
