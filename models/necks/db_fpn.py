"""DB detection necks after PaddleOCR's db_fpn.py: DBFPN, RSEFPN, LKPAN.

All three share the top-down pathway: lateral 1x1 convs, nearest x2 upsampling and adds,
then per-level output convs upsampled to 1/4 resolution and concatenated (p5, p4, p3, p2).
"""

import torch
from torch import nn

from ..layers import SEModule, upsample_nearest
from ..registry import register


def top_down(ins):
    """[in2, in3, in4, in5] -> [out2, out3, out4, in5] by nearest x2 upsample-and-add."""
    in2, in3, in4, in5 = ins
    out4 = in4 + upsample_nearest(in5, 2)
    out3 = in3 + upsample_nearest(out4, 2)
    out2 = in2 + upsample_nearest(out3, 2)
    return [out2, out3, out4, in5]


def fuse(levels):
    """[p2, p3, p4, p5] -> concat(p5 x8, p4 x4, p3 x2, p2) on channels."""
    p2, p3, p4, p5 = levels
    return torch.cat([upsample_nearest(p5, 8), upsample_nearest(p4, 4),
                      upsample_nearest(p3, 2), p2], dim=1)


class _PyramidNeck(nn.Module):
    """A lateral and an output conv per level, called in Paddle's order (level 5 first)."""

    def convs(self):
        """(lateral convs, output convs), each for levels 2..5."""
        return self.ins_conv, self.inp_conv

    def forward(self, x):
        lateral, output = self.convs()
        ins = [None] * 4
        for i in (3, 2, 1, 0):
            ins[i] = lateral[i](x[i])
        tops = top_down(ins)
        outs = [None] * 4
        for i in (3, 2, 1, 0):
            outs[i] = output[i](tops[i])
        return fuse(outs)


@register("Neck")
class DBFPN(_PyramidNeck):
    def __init__(self, in_channels, out_channels, use_asf=False, **_):
        super().__init__()
        if use_asf:
            raise NotImplementedError("DBFPN with use_asf (DBNet++) is not supported yet")
        self.out_channels = out_channels
        for i, cin in zip((2, 3, 4, 5), in_channels):
            setattr(self, f"in{i}_conv", nn.Conv2d(cin, out_channels, 1, bias=False))
        for i in (5, 4, 3, 2):
            setattr(self, f"p{i}_conv",
                    nn.Conv2d(out_channels, out_channels // 4, 3, padding=1, bias=False))

    def convs(self):
        levels = (2, 3, 4, 5)
        return ([getattr(self, f"in{i}_conv") for i in levels],
                [getattr(self, f"p{i}_conv") for i in levels])


class RSELayer(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, shortcut=True):
        super().__init__()
        self.in_conv = nn.Conv2d(in_channels, out_channels, kernel_size,
                                 padding=kernel_size // 2, bias=False)
        self.se_block = SEModule(out_channels)
        self.shortcut = shortcut

    def forward(self, x):
        x = self.in_conv(x)
        return x + self.se_block(x) if self.shortcut else self.se_block(x)


@register("Neck")
class RSEFPN(_PyramidNeck):
    def __init__(self, in_channels, out_channels, shortcut=True, **_):
        super().__init__()
        self.out_channels = out_channels
        self.ins_conv = nn.ModuleList(
            RSELayer(c, out_channels, 1, shortcut) for c in in_channels)
        self.inp_conv = nn.ModuleList(
            RSELayer(out_channels, out_channels // 4, 3, shortcut) for _ in in_channels)
