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


# ---- PP-OCRv6: large-kernel re-parameterizable necks (PaddleOCR's db_fpn.py RepLKFPN,
# RepLKPAN, after UniRepLKNet's dilated re-parameterization)

# kernel -> the dilated branches [(kernel, dilation)] beside the large kernel (PaddleOCR's table)
DILATED_BRANCHES = {5: ((3, 1), (3, 2)), 7: ((5, 1), (3, 2), (3, 3)),
                    9: ((5, 1), (5, 2), (3, 3), (3, 4)),
                    11: ((5, 1), (5, 2), (3, 3), (3, 4), (3, 5)),
                    13: ((5, 1), (7, 2), (3, 3), (3, 4), (3, 5))}


def _fuse_bn(weight, bn):
    scale = bn.weight / (bn.running_var + bn.eps).sqrt()
    return weight * scale.reshape(-1, 1, 1, 1), bn.bias - bn.running_mean * scale


def _undilate(kernel, r):
    """A dilated kernel as the equivalent dense one (zeros between the taps)."""
    if r == 1:
        return kernel
    c, g, k, _ = kernel.shape
    out = kernel.new_zeros(c, g, r * (k - 1) + 1, r * (k - 1) + 1)
    out[:, :, ::r, ::r] = kernel
    return out


class DilatedReparamBlock(nn.Module):
    """Depthwise large-kernel conv + BN beside dilated depthwise conv + BN branches, summed;
    deploy form: one depthwise large-kernel conv with bias (``lk_origin``)."""

    def __init__(self, channels, kernel_size=9, deploy=False):
        super().__init__()
        if kernel_size not in DILATED_BRANCHES:
            raise ValueError(f"DilatedReparamBlock kernel_size must be one of "
                             f"{sorted(DILATED_BRANCHES)}, not {kernel_size}")
        self.kernel_size, self.deploy = kernel_size, deploy
        self.branches = DILATED_BRANCHES[kernel_size]
        self.lk_origin = nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2,
                                   groups=channels, bias=deploy)
        if not deploy:
            self.origin_bn = batch_norm(channels)
            for k, r in self.branches:
                setattr(self, f"dil_conv_k{k}_{r}", nn.Conv2d(
                    channels, channels, k, padding=r * (k - 1) // 2, dilation=r,
                    groups=channels, bias=False))
                setattr(self, f"dil_bn_k{k}_{r}", batch_norm(channels))

    def forward(self, x):
        if self.deploy:
            return self.lk_origin(x)
        out = self.origin_bn(self.lk_origin(x))
        for k, r in self.branches:
            out = out + getattr(self, f"dil_bn_k{k}_{r}")(getattr(self, f"dil_conv_k{k}_{r}")(x))
        return out

    @torch.no_grad()
    def reparameterize(self):
        if self.deploy:
            return
        weight, bias = _fuse_bn(self.lk_origin.weight, self.origin_bn)
        for k, r in self.branches:
            w, b = _fuse_bn(getattr(self, f"dil_conv_k{k}_{r}").weight,
                            getattr(self, f"dil_bn_k{k}_{r}"))
            w = _undilate(w, r)
            pad = (self.kernel_size - w.shape[-1]) // 2
            weight, bias = weight + nn.functional.pad(w, [pad] * 4), bias + b
            delattr(self, f"dil_conv_k{k}_{r}")
            delattr(self, f"dil_bn_k{k}_{r}")
        conv = self.lk_origin
        self.lk_origin = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size,
                                   padding=conv.padding, groups=conv.groups, bias=True,
                                   device=weight.device, dtype=weight.dtype)
        self.lk_origin.weight.copy_(weight)
        self.lk_origin.bias.copy_(bias)
        del self.origin_bn
        self.deploy = True


class DilatedReparamConv(nn.Module):
    """DilatedReparamBlock (depthwise) -> 1x1 conv -> BN: a large standard conv's stand-in;
    deploy form: the fused depthwise conv, then the 1x1 conv with BN folded in (bias)."""

    def __init__(self, in_channels, out_channels, kernel_size=9, deploy=False):
        super().__init__()
        self.deploy = deploy
        self.dw = DilatedReparamBlock(in_channels, kernel_size, deploy)
        self.pw = nn.Conv2d(in_channels, out_channels, 1, bias=deploy)
        self.bn = None if deploy else batch_norm(out_channels)

    def forward(self, x):
        x = self.pw(self.dw(x))
        return x if self.bn is None else self.bn(x)

    @torch.no_grad()
    def reparameterize(self):
        self.dw.reparameterize()
        if self.bn is None:
            return
        weight, bias = _fuse_bn(self.pw.weight, self.bn)
        self.pw = nn.Conv2d(self.pw.in_channels, self.pw.out_channels, 1, bias=True,
                            device=weight.device, dtype=weight.dtype)
        self.pw.weight.copy_(weight)
        self.pw.bias.copy_(bias)
        self.bn = None
        self.deploy = True


@register("Neck")
class RepLKFPN(_PyramidNeck):
    """RSEFPN with each 3x3 output conv replaced by a dilated re-parameterizable depthwise
    conv, a 1x1 conv and SE (PP-OCRv6 small/tiny det). PaddleOCR's configs name it
    UniRepLKFPN (registered below under that name too)."""

    def __init__(self, in_channels, out_channels, shortcut=True, dilated_kernel_size=7,
                 intracl=False, deploy=False, **_):
        super().__init__()
        self.out_channels, self.shortcut = out_channels, shortcut
        quarter = out_channels // 4
        self.ins_conv = nn.ModuleList(RSELayer(c, out_channels, 1, shortcut) for c in in_channels)
        self.inp_conv_dw = nn.ModuleList(
            DilatedReparamBlock(out_channels, dilated_kernel_size, deploy) for _ in in_channels)
        self.inp_conv_pw = nn.ModuleList(nn.Conv2d(out_channels, quarter, 1, bias=False)
                                         for _ in in_channels)
        self.inp_conv_se = nn.ModuleList(SEModule(quarter) for _ in in_channels)
        self.intracl = bool(intracl)
        if self.intracl:
            for i in (1, 2, 3, 4):
                setattr(self, f"incl{i}", IntraCLBlock(quarter, reduce_factor=2))

    def _inp(self, i, x):
        x = self.inp_conv_pw[i](self.inp_conv_dw[i](x))
        return x + self.inp_conv_se[i](x) if self.shortcut else self.inp_conv_se[i](x)

    def convs(self):
        return self.ins_conv, [lambda x, i=i: self._inp(i, x) for i in range(4)]

    def forward(self, x):
        p = self.levels(x)
        if self.intracl:
            for i in (3, 2, 1, 0):
                p[i] = getattr(self, f"incl{i + 1}")(p[i])
        return fuse(p)


@register("Neck")
class RepLKPAN(LKPAN):
    """LKPAN with its 9x9 output and lateral convs replaced by DilatedReparamConv (PP-OCRv6
    medium det; PaddleOCR's configs name it UniRepLKPAN)."""

    def __init__(self, in_channels, out_channels, mode="large", intracl=False, deploy=False,
                 **_):
        super().__init__(in_channels, out_channels, mode, intracl)
        quarter = out_channels // 4
        self.inp_conv = nn.ModuleList(DilatedReparamConv(out_channels, quarter, 9, deploy)
                                      for _ in in_channels)
        self.pan_lat_conv = nn.ModuleList(DilatedReparamConv(quarter, quarter, 9, deploy)
                                          for _ in in_channels)


register("Neck", "UniRepLKFPN")(RepLKFPN)
register("Neck", "UniRepLKPAN")(RepLKPAN)
