"""FPN after PaddleOCR's necks/fpn.py (PSENet's neck): conv-BN-relu laterals, bilinear x2
upsample-and-add with a 3x3 smoothing conv per level, then every level bilinearly upsampled
to 1/4 resolution and concatenated (p2, p3, p4, p5)."""

import torch
from torch import nn
import torch.nn.functional as F

from ..layers import ConvBNLayer
from ..registry import register


def upsample_bilinear(x, scale):
    # Paddle's F.upsample(mode='bilinear') defaults: align_corners=False, align_mode=0, the
    # half-pixel rule torch uses with align_corners=False
    return F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)


@register("Neck")
class FPN(nn.Module):
    def __init__(self, in_channels, out_channels, **_):
        super().__init__()
        c = out_channels
        self.toplayer_ = ConvBNLayer(in_channels[3], c, 1, act="relu")
        self.latlayer1_ = ConvBNLayer(in_channels[2], c, 1, act="relu")
        self.latlayer2_ = ConvBNLayer(in_channels[1], c, 1, act="relu")
        self.latlayer3_ = ConvBNLayer(in_channels[0], c, 1, act="relu")
        self.smooth1_ = ConvBNLayer(c, c, 3, act="relu")
        self.smooth2_ = ConvBNLayer(c, c, 3, act="relu")
        self.smooth3_ = ConvBNLayer(c, c, 3, act="relu")
        self.out_channels = c * 4

    def forward(self, x):
        f2, f3, f4, f5 = x
        p5 = self.toplayer_(f5)
        p4 = self.smooth1_(upsample_bilinear(p5, 2) + self.latlayer1_(f4))
        p3 = self.smooth2_(upsample_bilinear(p4, 2) + self.latlayer2_(f3))
        p2 = self.smooth3_(upsample_bilinear(p3, 2) + self.latlayer3_(f2))
        return torch.cat([p2, upsample_bilinear(p3, 2), upsample_bilinear(p4, 4),
                          upsample_bilinear(p5, 8)], dim=1)
