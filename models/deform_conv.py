"""Modulated deformable convolution (DCNv2) in plain torch, as Paddle's
``paddle.vision.ops.DeformConv2D`` computes it, and PaddleOCR's ``DeformableConvV2`` wrapper
(backbones/det_resnet_vd.py) that predicts the offsets and masks with a plain conv.

torchvision's deform_conv2d would do this, but torchvision does not import beside the pinned
CPU torch here (DESIGN.md); bilinear sampling is torch's grid_sample instead.
"""

import torch
from torch import nn
import torch.nn.functional as F


def deform_conv2d(x, offset, mask, weight, bias=None, stride=1, padding=0, dilation=1,
                  deformable_groups=1):
    """out[n, o, y, x] = sum over input channel c and kernel tap k of
    weight[o, c, k] * mask[n, g(c), k, y, x] * bilinear(x[n, c], p(y, x) + p_k + offset).

    ``offset`` holds (dy, dx) pairs per deformable group and tap (taps row-major), ``mask``
    one modulation per group and tap; samples outside the image read zero, each bilinear
    corner on its own (Paddle's and torchvision's rule)."""
    n, c, h, w = x.shape
    c_out, _, kh, kw = weight.shape
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    dh, dw = (dilation, dilation) if isinstance(dilation, int) else dilation
    g, taps = deformable_groups, kh * kw
    h_out, w_out = offset.shape[-2:]
    # regular grid positions of every tap, then the learned offsets
    ys = (torch.arange(h_out, dtype=x.dtype) * sh - ph)[:, None] \
        + (torch.arange(kh, dtype=x.dtype) * dh).repeat_interleave(kw)[:, None, None]
    xs = (torch.arange(w_out, dtype=x.dtype) * sw - pw)[None, :] \
        + (torch.arange(kw, dtype=x.dtype) * dw).repeat(kh)[:, None, None]
    offset = offset.reshape(n, g, taps, 2, h_out, w_out)
    py = ys + offset[:, :, :, 0]  # n, g, taps, h_out, w_out
    px = xs + offset[:, :, :, 1]
    # grid_sample's align_corners=False pixel centres: index i sits at (2i + 1) / size - 1
    grid = torch.stack([(2 * px + 1) / w - 1, (2 * py + 1) / h - 1], dim=-1)
    grid = grid.reshape(n * g, taps * h_out, w_out, 2)
    cols = F.grid_sample(x.reshape(n * g, c // g, h, w), grid, mode="bilinear",
                         padding_mode="zeros", align_corners=False)
    cols = cols.reshape(n, g, c // g, taps, h_out, w_out)
    cols = cols * mask.reshape(n, g, 1, taps, h_out, w_out)
    cols = cols.reshape(n, c, taps, h_out, w_out)
    out = torch.einsum("nckhw,ock->nohw", cols, weight.reshape(c_out, c, taps))
    return out if bias is None else out + bias[None, :, None, None]


class DeformConv2D(nn.Module):
    """The weights of Paddle's DeformConv2D (``weight``, optional ``bias``); groups=1."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 dilation=1, deformable_groups=1, bias=False):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size,
                                               kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.stride, self.padding, self.dilation = stride, padding, dilation
        self.deformable_groups = deformable_groups

    def forward(self, x, offset, mask):
        return deform_conv2d(x, offset, mask, self.weight, self.bias, self.stride,
                             self.padding, self.dilation, self.deformable_groups)


class DeformableConvV2(nn.Module):
    """PaddleOCR's wrapper: ``conv_offset`` (a plain conv with bias) predicts 2·k² offsets
    and k² masks per group (masks through a sigmoid) for ``conv_dcn`` (no bias in backbones)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, groups=1,
                 dilation=1):
        super().__init__()
        k2 = kernel_size * kernel_size
        self.offset_channel, self.mask_channel = 2 * k2 * groups, k2 * groups
        pad = (kernel_size - 1) // 2
        self.conv_dcn = DeformConv2D(in_channels, out_channels, kernel_size, stride,
                                     pad * dilation, dilation, groups)
        self.conv_offset = nn.Conv2d(in_channels, 3 * k2 * groups, kernel_size, stride, pad)

    def forward(self, x):
        offset, mask = torch.split(self.conv_offset(x),
                                   [self.offset_channel, self.mask_channel], dim=1)
        return self.conv_dcn(x, offset, torch.sigmoid(mask))
