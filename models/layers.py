"""Small blocks shared by several architecture families.

Names of submodules follow PaddleOCR's own layers so that Paddle's structured parameter names
map onto ours with few rules. Activations reproduce Paddle's definitions exactly where they
differ from torch's defaults (hardsigmoid's slope and offset).
"""

import torch
from torch import nn
import torch.nn.functional as F


class PaddleHardsigmoid(nn.Module):
    """Paddle's hardsigmoid: clip(slope * x + offset, 0, 1).

    Paddle's default slope is 1/6 (≈ torch's), but PaddleOCR often passes slope=0.2, which torch's
    ``nn.Hardsigmoid`` cannot express.
    """

    def __init__(self, slope=0.1666667, offset=0.5):
        super().__init__()
        self.slope = slope
        self.offset = offset

    def forward(self, x):
        return torch.clamp(x * self.slope + self.offset, 0.0, 1.0)

    def extra_repr(self):
        return f"slope={self.slope}, offset={self.offset}"


def make_divisible(v, divisor=8, min_value=None):
    """Round channels to a multiple of divisor, never below 90% of v (the MobileNet rule)."""
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def make_act(name):
    """An activation module by PaddleOCR's name for it (None or '' gives identity)."""
    if not name:
        return nn.Identity()
    name = name.lower()
    if name == "relu":
        return nn.ReLU()
    if name in ("hardswish", "hard_swish", "hswish"):
        return nn.Hardswish()
    if name in ("hardsigmoid", "hard_sigmoid"):
        return PaddleHardsigmoid()
    if name == "sigmoid":
        return nn.Sigmoid()
    if name == "gelu":
        return nn.GELU()
    if name == "swish" or name == "silu":
        return nn.SiLU()
    if name == "relu6":
        return nn.ReLU6()
    if name == "leaky_relu":  # paddle's default negative slope is torch's, 0.01
        return nn.LeakyReLU(0.01)
    raise ValueError(f"unknown activation {name!r}")


def batch_norm(channels, eps=1e-5):
    # Paddle's BatchNorm momentum 0.9 weighs the running value; torch's momentum weighs the new
    # batch, so the same training behaviour is torch momentum 0.1.
    return nn.BatchNorm2d(channels, eps=eps, momentum=0.1)


class ConvBNLayer(nn.Module):
    """conv (no bias) -> batch norm -> optional activation; names ``conv`` and ``bn``."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=None,
                 groups=1, act=None, dilation=1):
        super().__init__()
        if padding is None:
            padding = (kernel_size - 1) // 2 if isinstance(kernel_size, int) else [
                (k - 1) // 2 for k in kernel_size]
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding,
                              dilation=dilation, groups=groups, bias=False)
        self.bn = batch_norm(out_channels)
        self.act = make_act(act)

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class SEModule(nn.Module):
    """Squeeze-excitation as PaddleOCR's MobileNetV3 family writes it: pool, 1x1 conv, relu,
    1x1 conv, hardsigmoid (slope and offset vary by model), multiply."""

    def __init__(self, channels, reduction=4, slope=0.2, offset=0.5):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.conv1 = nn.Conv2d(channels, channels // reduction, 1)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(channels // reduction, channels, 1)
        self.hardsigmoid = PaddleHardsigmoid(slope, offset)

    def forward(self, x):
        return x * self.hardsigmoid(self.conv2(self.relu(self.conv1(self.avg_pool(x)))))


def upsample_nearest(x, scale):
    """Paddle's F.upsample(mode='nearest', scale_factor=s) for integer s: each pixel repeated."""
    return F.interpolate(x, scale_factor=scale, mode="nearest")


class DownscaleInInferDropout(nn.Module):
    """Paddle's Dropout(p, mode='downscale_in_infer'): identity while training (up to the
    random drop) and x * (1 - p) at inference, where torch's Dropout is the identity."""

    def __init__(self, p):
        super().__init__()
        self.p = float(p)

    def forward(self, x):
        if self.training:
            return nn.functional.dropout(x, self.p, True) * (1.0 - self.p)
        return x * (1.0 - self.p)

    def extra_repr(self):
        return f"p={self.p}"


class PaddleEmbedding(nn.Embedding):
    """paddle.nn.Embedding: a lookup of ``padding_idx`` gives zeros whatever the weight row
    holds (torch's padding_idx only keeps that row's gradient at zero, its forward reads the
    row). Same parameter name and layout as torch's (tests/test_framework_ops.py)."""

    def forward(self, ids):
        out = super().forward(ids)
        if self.padding_idx is None:
            return out
        return out.masked_fill((ids == self.padding_idx).unsqueeze(-1), 0.0)


class PaddleMultiHeadAttention(nn.Module):
    """paddle.nn.MultiHeadAttention (batch first): q/k/v/out projections, q scaled by
    head_dim**-0.5; a float mask is added, a bool mask (True = attend) becomes
    (mask - 1) * 1e9, as paddle's _convert_attention_mask does."""

    def __init__(self, embed_dim, num_heads):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, embed_dim // num_heads
        self.q_proj = nn.Linear(embed_dim, embed_dim)
        self.k_proj = nn.Linear(embed_dim, embed_dim)
        self.v_proj = nn.Linear(embed_dim, embed_dim)
        self.out_proj = nn.Linear(embed_dim, embed_dim)

    def _heads(self, x):
        n, t, _ = x.shape
        return x.reshape(n, t, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(self, query, key, value, attn_mask=None):
        q, k, v = self._heads(self.q_proj(query)), self._heads(self.k_proj(key)), \
            self._heads(self.v_proj(value))
        product = (q * self.head_dim ** -0.5) @ k.transpose(-2, -1)
        if attn_mask is not None:
            if attn_mask.dtype == torch.bool:
                attn_mask = (attn_mask.to(product.dtype) - 1.0) * 1e9
            product = product + attn_mask.to(product.dtype)
        out = torch.softmax(product, dim=-1) @ v
        n, _, t, _ = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(n, t, -1))
