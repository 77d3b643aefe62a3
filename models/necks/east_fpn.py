"""EASTFPN after PaddleOCR's necks/east_fpn.py: a U-Net style top-down merge.

Starting from the deepest feature, each step upsamples x2 with a 4x4 stride-2 transposed conv
(+BN+relu), concatenates the next shallower feature and fuses with a 3x3 conv; the last fused
map gets one more 3x3 conv. Output at 1/4 resolution with 128 (large) or 64 (small) channels.
"""

import torch
from torch import nn

from ..layers import ConvBNLayer, batch_norm
from ..registry import register


class DeConvBNLayer(nn.Module):
    """4x4 stride-2 transposed conv (no bias) -> BN -> relu; names ``deconv`` and ``bn``."""

    def __init__(self, in_channels, out_channels, kernel_size=4, stride=2, padding=1):
        super().__init__()
        self.deconv = nn.ConvTranspose2d(in_channels, out_channels, kernel_size, stride,
                                         padding, bias=False)
        self.bn = batch_norm(out_channels)

    def forward(self, x):
        return torch.relu(self.bn(self.deconv(x)))


@register("Neck")
class EASTFPN(nn.Module):
    def __init__(self, in_channels, model_name="large", **_):
        super().__init__()
        c = 128 if model_name == "large" else 64
        self.out_channels = c
        deep_first = list(in_channels)[::-1]  # Paddle walks the levels from the deepest
        for i in (1, 2, 3):
            setattr(self, f"h{i}_conv", ConvBNLayer(c + deep_first[i], c, 3, act="relu"))
        self.g0_deconv = DeConvBNLayer(deep_first[0], c)
        self.g1_deconv = DeConvBNLayer(c, c)
        self.g2_deconv = DeConvBNLayer(c, c)
        self.g3_conv = ConvBNLayer(c, c, 3, act="relu")

    def forward(self, x):
        f = list(x)[::-1]
        g = self.g0_deconv(f[0])
        h = self.h1_conv(torch.cat([g, f[1]], dim=1))
        g = self.g1_deconv(h)
        h = self.h2_conv(torch.cat([g, f[2]], dim=1))
        g = self.g2_deconv(h)
        h = self.h3_conv(torch.cat([g, f[3]], dim=1))
        return self.g3_conv(h)
