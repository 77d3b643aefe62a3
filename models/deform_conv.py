"""Deformable convolution v2 (modulated), as Paddle's ``paddle.vision.ops.deform_conv2d``
computes it, in plain torch: every kernel tap samples the input bilinearly at its regular
position plus a learned offset, scaled by a learned mask, then the taps are contracted with
the weights as one matmul per group. ``torchvision.ops.deform_conv2d`` (same layout) is used
instead when torchvision imports here.

Layout (Paddle's, = torchvision's): ``offset`` is (N, 2 * dg * kh * kw, Ho, Wo) with, for
deformable group g and tap k (row-major over the kernel), channel 2 * (g * kh * kw + k) the
vertical and the next the horizontal offset; ``mask`` is (N, dg * kh * kw, Ho, Wo). A sample
outside the image reads zeros, one straddling the border mixes in zeros for the missing
neighbours (DCN's bilinear rule).
"""

import torch
from torch import nn


def _torchvision_deform_conv2d():
    try:
        from torchvision.ops import deform_conv2d
    except Exception:  # not installed, or a build that does not match this torch
        return None
    return deform_conv2d


_TV_DEFORM = _torchvision_deform_conv2d()


def _pair(v):
    return tuple(v) if isinstance(v, (list, tuple)) else (v, v)


def bilinear_taps(x, ys, xs):
    """x: (N, G, C, H, W); ys, xs: (N, G, P) sample positions in pixels -> (N, G, C, P),
    zeros outside the image."""
    n, g, c, h, w = x.shape
    flat = x.reshape(n, g, c, h * w)
    y0, x0 = ys.floor(), xs.floor()
    out = 0
    for dy in (0, 1):
        for dx in (0, 1):
            yc, xc = y0 + dy, x0 + dx
            weight = (1 - (ys - yc).abs()) * (1 - (xs - xc).abs())
            valid = (yc >= 0) & (yc <= h - 1) & (xc >= 0) & (xc <= w - 1)
            index = (yc.clamp(0, h - 1) * w + xc.clamp(0, w - 1)).long()
            taps = flat.gather(3, index.unsqueeze(2).expand(n, g, c, index.shape[-1]))
            out = out + taps * (weight * valid).unsqueeze(2)
    return out


def deform_conv2d(x, offset, weight, bias=None, stride=1, padding=0, dilation=1, mask=None,
                  groups=1):
    """Modulated deformable convolution (Paddle's deform_conv2d; mask None: DCN v1)."""
    if _TV_DEFORM is not None and groups == 1:
        return _TV_DEFORM(x, offset, weight, bias, _pair(stride), _pair(padding),
                          _pair(dilation), mask)
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride), _pair(padding), _pair(dilation)
    n, cin, h, w = x.shape
    cout, _, kh, kw = weight.shape
    k = kh * kw
    ho, wo = offset.shape[2:]
    dg = offset.shape[1] // (2 * k)
    # regular sampling grid of every tap at every output position
    base_y = (torch.arange(ho, dtype=x.dtype) * sh - ph)[None, :, None] + \
        (torch.arange(kh, dtype=x.dtype) * dh).repeat_interleave(kw)[:, None, None]
    base_x = (torch.arange(wo, dtype=x.dtype) * sw - pw)[None, None, :] + \
        (torch.arange(kw, dtype=x.dtype) * dw).repeat(kh)[:, None, None]
    off = offset.reshape(n, dg, k, 2, ho, wo)
    ys = (base_y + off[:, :, :, 0]).reshape(n, dg, k * ho * wo)
    xs = (base_x + off[:, :, :, 1]).reshape(n, dg, k * ho * wo)
    cols = bilinear_taps(x.reshape(n, dg, cin // dg, h, w), ys, xs)  # (N, dg, C/dg, K*L)
    cols = cols.reshape(n, dg, cin // dg, k, ho * wo)
    if mask is not None:
        cols = cols * mask.reshape(n, dg, 1, k, ho * wo)
    cols = cols.reshape(n, groups, cin // groups * k, ho * wo)  # im2col order (C, kh, kw)
    out = weight.reshape(groups, cout // groups, -1) @ cols  # (N, groups, Cout/g, L)
    out = out.reshape(n, cout, ho, wo)
    return out if bias is None else out + bias.view(1, -1, 1, 1)


class DeformConv2d(nn.Module):
    """Paddle's DeformConv2D layer: ``weight`` (and optional ``bias``), offsets and mask given
    to forward."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 dilation=1, groups=1, bias=False):
        super().__init__()
        kh, kw = _pair(kernel_size)
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups
        self.weight = nn.Parameter(torch.zeros(out_channels, in_channels // groups, kh, kw))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None

    def forward(self, x, offset, mask=None):
        return deform_conv2d(x, offset, self.weight, self.bias, self.stride, self.padding,
                             self.dilation, mask, self.groups)


class DeformableConvV2(nn.Module):
    """PaddleOCR's DeformableConvV2 (backbones/det_resnet_vd.py): a plain conv predicts the
    offsets and mask logits of every tap (``conv_offset``: 3 * groups * k * k channels,
    offsets first), the mask goes through a sigmoid, ``conv_dcn`` samples and convolves.
    ``groups`` here are deformable groups, as in PaddleOCR."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, groups=1,
                 dilation=1, bias=False):
        super().__init__()
        self.offset_channel = 2 * kernel_size ** 2 * groups
        self.conv_dcn = DeformConv2d(in_channels, out_channels, kernel_size, stride,
                                     (kernel_size - 1) // 2 * dilation, dilation, bias=bias)
        self.conv_offset = nn.Conv2d(in_channels, groups * 3 * kernel_size ** 2, kernel_size,
                                     stride, (kernel_size - 1) // 2)

    def forward(self, x):
        offset_mask = self.conv_offset(x)
        offset = offset_mask[:, :self.offset_channel]
        mask = offset_mask[:, self.offset_channel:].sigmoid()
        return self.conv_dcn(x, offset, mask)
