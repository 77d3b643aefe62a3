"""CSP-PAN, the neck of SLANet (PaddleOCR's ppocr/modeling/necks/csp_pan.py, itself from
PaddleDetection): 1x1 convs bring every backbone stage to one width, then a top-down and a
bottom-up path of CSP layers with depthwise-separable convs.

Names follow PaddleOCR: ``conv_t.convs``, ``top_down_blocks``, ``downsamples``,
``bottom_up_blocks``; CSP layers hold ``main_conv``, ``short_conv``, ``final_conv``, ``blocks``;
depthwise-separable modules ``dwconv``/``bn1``/``pwconv``/``bn2``.
"""

import torch
from torch import nn
import torch.nn.functional as F

from ..backbones.pplcnet import DepthwiseSeparable
from ..layers import ConvBNLayer, batch_norm, make_act
from ..registry import register


class DPModule(nn.Module):
    """Depthwise conv (groups = channels) -> BN -> act -> 1x1 conv -> BN -> act (the last act
    only with ``use_act_in_out``, PaddleDetection's switch; PicoHeadV2's ``cls_align`` turns
    it off, and with ``out_channel`` 1 its "depthwise" conv is a full conv)."""

    def __init__(self, in_channel, out_channel, kernel_size=3, stride=1, act="leaky_relu",
                 use_act_in_out=True):
        super().__init__()
        self.use_act_in_out = use_act_in_out
        self.dwconv = nn.Conv2d(in_channel, out_channel, kernel_size, stride,
                                (kernel_size - 1) // 2, groups=out_channel, bias=False)
        self.bn1 = batch_norm(out_channel)
        self.pwconv = nn.Conv2d(out_channel, out_channel, 1, bias=False)
        self.bn2 = batch_norm(out_channel)
        self.act = make_act(act)

    def forward(self, x):
        x = self.act(self.bn1(self.dwconv(x)))
        x = self.bn2(self.pwconv(x))
        return self.act(x) if self.use_act_in_out else x


def _conv(use_depthwise, cin, cout, kernel_size, stride, act):
    if use_depthwise:
        return DPModule(cin, cout, kernel_size, stride, act)
    return ConvBNLayer(cin, cout, kernel_size, stride, act=act)


class DarknetBottleneck(nn.Module):
    """1x1 conv then a k×k conv (depthwise-separable when asked); identity added only when
    asked and the widths agree."""

    def __init__(self, in_channels, out_channels, kernel_size=3, expansion=0.5,
                 add_identity=True, use_depthwise=False, act="leaky_relu"):
        super().__init__()
        hidden = int(out_channels * expansion)
        self.conv1 = ConvBNLayer(in_channels, hidden, 1, act=act)
        self.conv2 = _conv(use_depthwise, hidden, out_channels, kernel_size, 1, act)
        self.add_identity = add_identity and in_channels == out_channels

    def forward(self, x):
        out = self.conv2(self.conv1(x))
        return out + x if self.add_identity else out


class CSPLayer(nn.Module):
    """Cross-stage partial layer: a main path through bottlenecks and a short path, joined
    (main first) by a 1x1 conv."""

    def __init__(self, in_channels, out_channels, kernel_size=3, expand_ratio=0.5,
                 num_blocks=1, add_identity=True, use_depthwise=False, act="leaky_relu"):
        super().__init__()
        mid = int(out_channels * expand_ratio)
        self.main_conv = ConvBNLayer(in_channels, mid, 1, act=act)
        self.short_conv = ConvBNLayer(in_channels, mid, 1, act=act)
        self.final_conv = ConvBNLayer(2 * mid, out_channels, 1, act=act)
        self.blocks = nn.Sequential(*[
            DarknetBottleneck(mid, mid, kernel_size, 1.0, add_identity, use_depthwise, act)
            for _ in range(num_blocks)])

    def forward(self, x):
        x_short = self.short_conv(x)
        x_main = self.blocks(self.main_conv(x))
        return self.final_conv(torch.cat([x_main, x_short], 1))


class ChannelT(nn.Module):
    """One 1x1 ConvBN per input stage, all to ``out_channels`` (PaddleOCR's Channel_T)."""

    def __init__(self, in_channels, out_channels=96, act="leaky_relu"):
        super().__init__()
        self.convs = nn.ModuleList(ConvBNLayer(c, out_channels, 1, act=act)
                                   for c in in_channels)

    def forward(self, xs):
        return [conv(x) for conv, x in zip(self.convs, xs)]


@register("Neck")
class CSPPAN(nn.Module):
    """Path aggregation over the backbone's stages; returns one map per stage, all
    ``out_channels`` wide, finest first."""

    def __init__(self, in_channels, out_channels, kernel_size=5, num_csp_blocks=1,
                 use_depthwise=True, act="hard_swish", **_):
        super().__init__()
        n = len(in_channels)
        self.in_channels = list(in_channels)
        self.out_channels = [out_channels] * n
        self.conv_t = ChannelT(in_channels, out_channels, act)

        def csp():
            return CSPLayer(out_channels * 2, out_channels, kernel_size, num_blocks=num_csp_blocks,
                            add_identity=False, use_depthwise=use_depthwise, act=act)

        self.top_down_blocks = nn.ModuleList(csp() for _ in range(n - 1))
        self.downsamples = nn.ModuleList(
            _conv(use_depthwise, out_channels, out_channels, kernel_size, 2, act)
            for _ in range(n - 1))
        self.bottom_up_blocks = nn.ModuleList(csp() for _ in range(n - 1))

    @staticmethod
    def _upsample(coarse, fine):
        return F.interpolate(coarse, size=fine.shape[2:4], mode="nearest")

    def forward(self, inputs):
        return self._aggregate(self.conv_t(inputs))

    def _aggregate(self, inputs):
        """Top-down then bottom-up over the lateral (``conv_t``) maps."""
        n = len(inputs)
        # top-down: upsample the coarser map to the finer one's size (nearest), fuse
        inner = [inputs[-1]]
        for idx in range(n - 1, 0, -1):
            low = inputs[idx - 1]
            up = self._upsample(inner[0], low)
            inner.insert(0, self.top_down_blocks[n - 1 - idx](torch.cat([up, low], 1)))
        # bottom-up: stride-2 conv of the finer output, fuse with the top-down map
        outs = [inner[0]]
        for idx in range(n - 1):
            down = self.downsamples[idx](outs[-1])
            outs.append(self.bottom_up_blocks[idx](torch.cat([down, inner[idx + 1]], 1)))
        return outs


@register("Neck", "CSPPAN@layout")
class DetCSPPAN(CSPPAN):
    """PaddleDetection's ppdet/modeling/necks/csp_pan.py CSPPAN (PicoDet): the same path
    aggregation, with the top-down path upsampling by a fixed factor 2 (nn.Upsample; PaddleOCR's
    copy interpolates to the finer map's size, the same whenever the input is a multiple of the
    coarsest stride) and, with ``num_features: 4``, one more level: ``first_top_conv`` of the
    coarsest input plus ``second_top_conv`` of the coarsest output, both stride 2."""

    def __init__(self, in_channels, out_channels, kernel_size=5, num_features=3,
                 num_csp_blocks=1, use_depthwise=True, act="hard_swish", **_):
        super().__init__(in_channels, out_channels, kernel_size, num_csp_blocks, use_depthwise,
                         act)
        if num_features not in (3, 4) or num_features < len(in_channels):
            raise ValueError(f"CSPPAN num_features must be 3 or 4, got {num_features}")
        self.num_features = num_features
        if num_features == 4:
            self.first_top_conv = _conv(use_depthwise, out_channels, out_channels, kernel_size,
                                        2, act)
            self.second_top_conv = _conv(use_depthwise, out_channels, out_channels, kernel_size,
                                         2, act)
            self.out_channels = self.out_channels + [out_channels]

    @staticmethod
    def _upsample(coarse, _fine):
        return F.interpolate(coarse, scale_factor=2.0, mode="nearest")

    def forward(self, inputs):
        lateral = self.conv_t(inputs)
        outs = self._aggregate(lateral)
        if self.num_features == 4:
            # the extra level reads the coarsest lateral map and the coarsest output
            outs.append(self.first_top_conv(lateral[-1]) + self.second_top_conv(outs[-1]))
        return outs


@register("Neck")
class LCPAN(DetCSPPAN):
    """PaddleDetection's ppdet/modeling/necks/lc_pan.py LCPAN (PP-DocLayout-S/M): CSPPAN's
    path aggregation (``conv_t``, x2 nearest upsampling, stride-2 ``downsamples`` and, with
    ``num_features: 4``, ``first_top_conv`` + ``second_top_conv``) with each fusing block a
    pair of LCNet depthwise-separable blocks (``top_down_blocks.{i}.{0,1}``,
    ``bottom_up_blocks.{i}.{0,1}``: 2C -> 2C -> C, kernel ``kernel_size``, no SE) in place
    of a CSP layer."""

    def __init__(self, in_channels, out_channels, kernel_size=5, num_features=3,
                 use_depthwise=True, act="hard_swish", **_):
        super().__init__(in_channels, out_channels, kernel_size, num_features, 1,
                         use_depthwise, act)
        n = len(in_channels)

        def block():
            c = out_channels
            return nn.Sequential(DepthwiseSeparable(2 * c, 2 * c, 1, kernel_size, False, act),
                                 DepthwiseSeparable(2 * c, c, 1, kernel_size, False, act))

        self.top_down_blocks = nn.ModuleList(block() for _ in range(n - 1))
        self.bottom_up_blocks = nn.ModuleList(block() for _ in range(n - 1))
