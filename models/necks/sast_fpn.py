"""SAST's neck after PaddleOCR's necks/sast_fpn.py: a bottom-up fusion of the three finest
maps (image, stride 2, stride 4 -> stride 4), a top-down fusion of the five stage outputs
(stride 64 -> stride 4) added to it, and optionally the cross-attention block (CAB) that
attends along each row and each column of the fused map."""

import torch
import torch.nn.functional as F
from torch import nn

from ..layers import ConvBNLayer, batch_norm, make_act
from ..registry import register


class DeConvBNLayer(nn.Module):
    """4x4 stride-2 transposed conv (no bias, padding 1: exactly x2) -> BN -> activation."""

    def __init__(self, in_channels, out_channels, kernel_size=4, stride=2, act=None):
        super().__init__()
        self.deconv = nn.ConvTranspose2d(in_channels, out_channels, kernel_size, stride,
                                         (kernel_size - 1) // 2, bias=False)
        self.bn = batch_norm(out_channels)
        self.act = make_act(act)

    def forward(self, x):
        return self.act(self.bn(self.deconv(x)))


def _add_relu(a, b):
    return (a + b).relu()


class FPN_Up_Fusion(nn.Module):
    """Stage outputs from stride 64 down to 4: 1x1 lateral convs, then x2 deconvs with
    add-relu and a 3x3 conv at each step; 128 channels at stride 4."""

    def __init__(self, in_channels):
        super().__init__()
        ins = in_channels[::-1]
        outs = [256, 256, 192, 192, 128]
        for i in range(5):
            setattr(self, f"h{i}_conv", ConvBNLayer(ins[i], outs[i], 1))
        self.g0_conv = DeConvBNLayer(outs[0], outs[1])
        for i in (1, 2, 3):
            setattr(self, f"g{i}_conv", nn.Sequential(
                ConvBNLayer(outs[i], outs[i], 3, act="relu"), DeConvBNLayer(outs[i], outs[i + 1])))
        self.g4_conv = nn.Sequential(ConvBNLayer(outs[4], outs[4], 3, act="relu"),
                                     ConvBNLayer(outs[4], outs[4], 1))

    def forward(self, x):
        f = x[2:][::-1]
        h = [getattr(self, f"h{i}_conv")(f[i]) for i in range(5)]
        g = self.g0_conv(h[0])
        for i in (1, 2, 3, 4):
            g = getattr(self, f"g{i}_conv")(_add_relu(g, h[i]))
        return g


class FPN_Down_Fusion(nn.Module):
    """Image, stride 2 and stride 4 maps fused bottom-up by strided 3x3 convs into 128
    channels at stride 4."""

    def __init__(self, in_channels):
        super().__init__()
        outs = [32, 64, 128]
        for i in range(3):
            setattr(self, f"h{i}_conv", ConvBNLayer(in_channels[i], outs[i], 3))
        self.g0_conv = ConvBNLayer(outs[0], outs[1], 3, stride=2)
        self.g1_conv = nn.Sequential(ConvBNLayer(outs[1], outs[1], 3, act="relu"),
                                     ConvBNLayer(outs[1], outs[2], 3, stride=2))
        self.g2_conv = nn.Sequential(ConvBNLayer(outs[2], outs[2], 3, act="relu"),
                                     ConvBNLayer(outs[2], outs[2], 1))

    def forward(self, x):
        h = [getattr(self, f"h{i}_conv")(x[i]) for i in range(3)]
        g = self.g1_conv(_add_relu(self.g0_conv(h[0]), h[1]))
        return self.g2_conv(_add_relu(g, h[2]))


class Cross_Attention(nn.Module):
    """CAB: scaled dot-product self-attention of the 128-channel features along each row
    (horizontal) and along each column (vertical), each with a 1x1-conv shortcut, merged by a
    1x1 conv."""

    def __init__(self, in_channels):
        super().__init__()
        c = in_channels
        self.theta_conv = ConvBNLayer(c, c, 1, act="relu")
        self.phi_conv = ConvBNLayer(c, c, 1, act="relu")
        self.g_conv = ConvBNLayer(c, c, 1, act="relu")
        self.fh_weight_conv = ConvBNLayer(c, c, 1)
        self.fh_sc_conv = ConvBNLayer(c, c, 1)
        self.fv_weight_conv = ConvBNLayer(c, c, 1)
        self.fv_sc_conv = ConvBNLayer(c, c, 1)
        self.f_attn_conv = ConvBNLayer(c * 2, c, 1, act="relu")

    @staticmethod
    def _attend(theta, phi, g):
        """(N, C, A, B) maps -> attention over B for every (n, a); result (N, C, A, B)."""
        n, c, a, b = theta.shape
        rows = lambda t: t.permute(0, 2, 3, 1).reshape(n * a, b, c)
        attn = torch.softmax(rows(theta) @ rows(phi).transpose(1, 2) / c ** 0.5, dim=-1)
        return (attn @ rows(g)).reshape(n, a, b, c).permute(0, 3, 1, 2)

    def forward(self, x):
        theta, phi, g = self.theta_conv(x), self.phi_conv(x), self.g_conv(x)
        f_h = (self.fh_weight_conv(self._attend(theta, phi, g)) + self.fh_sc_conv(x)).relu()
        t = lambda v: v.transpose(2, 3)
        fv = t(self._attend(t(theta), t(phi), t(g)))
        f_v = (self.fv_weight_conv(fv) + self.fv_sc_conv(x)).relu()
        return self.f_attn_conv(torch.cat([f_h, f_v], dim=1))


@register("Neck", "SASTFPN")
class SASTFPN(nn.Module):
    def __init__(self, in_channels, with_cab=False, **_):
        super().__init__()
        self.with_cab = with_cab
        self.FPN_Down_Fusion = FPN_Down_Fusion(in_channels)
        self.FPN_Up_Fusion = FPN_Up_Fusion(in_channels)
        self.out_channels = 128
        # PaddleOCR builds the CAB block (and so its checkpoints hold its weights) even when
        # with_cab is off; it then goes unused.
        self.cross_attention = Cross_Attention(self.out_channels)

    def forward(self, x):
        f = _add_relu(self.FPN_Down_Fusion(x), self.FPN_Up_Fusion(x))
        return self.cross_attention(f) if self.with_cab else f
