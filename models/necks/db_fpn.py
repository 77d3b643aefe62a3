"""DB detection necks after PaddleOCR's db_fpn.py: DBFPN, RSEFPN, LKPAN (+ intracl.py).

All three share the top-down pathway: lateral 1x1 convs, nearest x2 upsampling and adds,
then per-level output convs upsampled to 1/4 resolution and concatenated (p5, p4, p3, p2).
"""

import torch
from torch import nn

from ..layers import SEModule, batch_norm, upsample_nearest
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

    def levels(self, x):
        """[c2, c3, c4, c5] -> the per-level outputs [p2, p3, p4, p5] before fusing."""
        lateral, output = self.convs()
        ins = [None] * 4
        for i in (3, 2, 1, 0):
            ins[i] = lateral[i](x[i])
        tops = top_down(ins)
        outs = [None] * 4
        for i in (3, 2, 1, 0):
            outs[i] = output[i](tops[i])
        return outs

    def forward(self, x):
        return fuse(self.levels(x))


class ASFBlock(nn.Module):
    """DBNet++'s adaptive scale fusion: a 3x3 conv of the fused map, a spatial attention (the
    channel mean through 3x3 conv, relu, 1x1 conv, sigmoid) added back, then per-level
    weights (1x1 conv, sigmoid) that scale each of the four upsampled levels."""

    def __init__(self, in_channels, inter_channels, out_features_num=4):
        super().__init__()
        self.out_features_num = out_features_num
        self.conv = nn.Conv2d(in_channels, inter_channels, 3, padding=1)
        self.spatial_scale = nn.Sequential(
            nn.Conv2d(1, 1, 3, padding=1, bias=False), nn.ReLU(),
            nn.Conv2d(1, 1, 1, bias=False), nn.Sigmoid())
        self.channel_scale = nn.Sequential(
            nn.Conv2d(inter_channels, out_features_num, 1, bias=False), nn.Sigmoid())

    def forward(self, fuse, features):
        fuse = self.conv(fuse)
        scores = self.spatial_scale(fuse.mean(dim=1, keepdim=True)) + fuse
        scores = self.channel_scale(scores)
        return torch.cat([scores[:, i:i + 1] * f for i, f in enumerate(features)], dim=1)


@register("Neck")
class DBFPN(_PyramidNeck):
    """With ``use_asf`` (DBNet++) the fused map is re-weighted per level by an ASFBlock."""

    def __init__(self, in_channels, out_channels, use_asf=False, **_):
        super().__init__()
        self.out_channels = out_channels
        for i, cin in zip((2, 3, 4, 5), in_channels):
            setattr(self, f"in{i}_conv", nn.Conv2d(cin, out_channels, 1, bias=False))
        for i in (5, 4, 3, 2):
            setattr(self, f"p{i}_conv",
                    nn.Conv2d(out_channels, out_channels // 4, 3, padding=1, bias=False))
        self.asf = ASFBlock(out_channels, out_channels // 4) if use_asf else None

    def convs(self):
        levels = (2, 3, 4, 5)
        return ([getattr(self, f"in{i}_conv") for i in levels],
                [getattr(self, f"p{i}_conv") for i in levels])

    def forward(self, x):
        if self.asf is None:
            return fuse(self.levels(x))
        p2, p3, p4, p5 = self.levels(x)
        ups = [upsample_nearest(p5, 8), upsample_nearest(p4, 4), upsample_nearest(p3, 2), p2]
        return self.asf(torch.cat(ups, dim=1), ups)


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


class IntraCLBlock(nn.Module):
    """PaddleOCR's necks/intracl.py: reduce channels, three rounds of summed square, vertical
    and horizontal convs (7, 5, 3), restore channels, BN-relu, residual."""

    def __init__(self, in_channels=96, reduce_factor=4):
        super().__init__()
        c = in_channels // reduce_factor
        self.conv1x1_reduce_channel = nn.Conv2d(in_channels, c, 1)
        self.conv1x1_return_channel = nn.Conv2d(c, in_channels, 1)
        for k in (7, 5, 3):
            setattr(self, f"v_layer_{k}x1", nn.Conv2d(c, c, (k, 1), padding=(k // 2, 0)))
        for k in (7, 5, 3):
            setattr(self, f"q_layer_1x{k}", nn.Conv2d(c, c, (1, k), padding=(0, k // 2)))
        for k in (7, 5, 3):
            setattr(self, f"c_layer_{k}x{k}", nn.Conv2d(c, c, k, padding=k // 2))
        self.bn = batch_norm(in_channels)
        self.relu = nn.ReLU()

    def forward(self, x):
        y = self.conv1x1_reduce_channel(x)
        for k in (7, 5, 3):  # Paddle's call order: square, vertical, horizontal
            y = (getattr(self, f"c_layer_{k}x{k}")(y) + getattr(self, f"v_layer_{k}x1")(y)
                 + getattr(self, f"q_layer_1x{k}")(y))
        return x + self.relu(self.bn(self.conv1x1_return_channel(y)))


@register("Neck")
class LKPAN(_PyramidNeck):
    """Large-kernel PAN (PP-OCRv4/v5 server det): the FPN top-down pass with 9x9 output convs,
    then a bottom-up pass (stride-2 3x3 convs added level by level) and 9x9 lateral convs;
    with ``intracl`` an IntraCLBlock refines each level before fusing."""

    def __init__(self, in_channels, out_channels, mode="large", intracl=False, **_):
        super().__init__()
        if mode.lower() != "large":
            raise NotImplementedError(f"LKPAN mode {mode!r} (DSConv layers) is not supported yet")
        self.out_channels = out_channels
        quarter = out_channels // 4
        self.ins_conv = nn.ModuleList(nn.Conv2d(c, out_channels, 1, bias=False)
                                      for c in in_channels)
        self.inp_conv = nn.ModuleList(nn.Conv2d(out_channels, quarter, 9, padding=4, bias=False)
                                      for _ in in_channels)
        self.pan_head_conv = nn.ModuleList(
            nn.Conv2d(quarter, quarter, 3, stride=2, padding=1, bias=False)
            for _ in in_channels[1:])
        self.pan_lat_conv = nn.ModuleList(nn.Conv2d(quarter, quarter, 9, padding=4, bias=False)
                                          for _ in in_channels)
        self.intracl = bool(intracl)
        if self.intracl:
            for i in (1, 2, 3, 4):
                setattr(self, f"incl{i}", IntraCLBlock(quarter, reduce_factor=2))

    def forward(self, x):
        f2, f3, f4, f5 = self.levels(x)
        pan3 = f3 + self.pan_head_conv[0](f2)
        pan4 = f4 + self.pan_head_conv[1](pan3)
        pan5 = f5 + self.pan_head_conv[2](pan4)
        p = [lat(f) for lat, f in zip(self.pan_lat_conv, (f2, pan3, pan4, pan5))]
        if self.intracl:
            for i in (3, 2, 1, 0):  # Paddle refines p5 first
                p[i] = getattr(self, f"incl{i + 1}")(p[i])
        return fuse(p)
