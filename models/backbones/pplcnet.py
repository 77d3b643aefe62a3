"""PP-LCNet (v1) after PaddleClas's ppcls/arch/backbone/legendary_models/pp_lcnet.py: the
backbone of PaddleX's PP-LCNet classifiers (text line and document orientation), and the same
network as PaddleOCR's ppocr/modeling/backbones/det_pp_lcnet.py returns it to table models
(SLANet): the outputs of blocks3 to blocks6 (``PPLCNet@table``).

Names follow PaddleClas (``conv1``, ``blocks2`` ... ``blocks6``, each block ``dw_conv``, ``se``,
``pw_conv``); the classifier part (``last_conv``, ``fc``) lives in heads/lcnet_cls_head.py.
Not to be confused with PPLCNetV3 (pplcnetv3.py), a different network.
"""

from torch import nn

from ..layers import ConvBNLayer, SEModule, make_divisible
from ..registry import register

# [kernel, in_channels, out_channels, stride, use_se] per depthwise block, before scaling.
# The stride of each stage's first block is overridden by ``stride_list``.
NET_CONFIG = {
    "blocks2": [[3, 16, 32, 1, False]],
    "blocks3": [[3, 32, 64, 2, False], [3, 64, 64, 1, False]],
    "blocks4": [[3, 64, 128, 2, False], [3, 128, 128, 1, False]],
    "blocks5": [[3, 128, 256, 2, False]] + [[5, 256, 256, 1, False]] * 5,
    "blocks6": [[5, 256, 512, 2, True], [5, 512, 512, 1, True]],
}
# nn.Hardsigmoid() in the SE blocks: paddle's default slope (1/6, rounded) and offset.
SE_SLOPE, SE_OFFSET = 0.1666667, 0.5


def _stride(s):
    return tuple(s) if isinstance(s, (list, tuple)) else s


class DepthwiseSeparable(nn.Module):
    def __init__(self, num_channels, num_filters, stride, dw_size=3, use_se=False,
                 act="hardswish"):
        super().__init__()
        self.dw_conv = ConvBNLayer(num_channels, num_channels, dw_size, _stride(stride),
                                   groups=num_channels, act=act)
        self.se = SEModule(num_channels, 4, SE_SLOPE, SE_OFFSET) if use_se else None
        self.pw_conv = ConvBNLayer(num_channels, num_filters, 1, 1, act=act)

    def forward(self, x):
        x = self.dw_conv(x)
        if self.se is not None:
            x = self.se(x)
        return self.pw_conv(x)


@register("Backbone")
class PPLCNet(nn.Module):
    """Feature extractor up to blocks6 (N×C×h×w, C = make_divisible(512 * scale))."""

    def __init__(self, in_channels=3, scale=1.0, stride_list=(2, 2, 2, 2, 2), act="hardswish",
                 **_):
        super().__init__()
        if len(stride_list) != 5:
            raise ValueError(f"stride_list needs 5 entries, got {stride_list!r}")
        self.scale = scale
        self.conv1 = ConvBNLayer(in_channels, make_divisible(16 * scale), 3,
                                 _stride(stride_list[0]), act=act)
        for i, stage in enumerate(NET_CONFIG):
            blocks = []
            for j, (k, cin, cout, s, se) in enumerate(NET_CONFIG[stage]):
                stride = stride_list[i] if j == 0 and i > 0 else s
                blocks.append(DepthwiseSeparable(make_divisible(cin * scale),
                                                 make_divisible(cout * scale), stride, k, se,
                                                 act))
            setattr(self, stage, nn.Sequential(*blocks))
        self.out_channels = make_divisible(NET_CONFIG["blocks6"][-1][2] * scale)

    def forward(self, x):
        x = self.conv1(x)
        for stage in NET_CONFIG:
            x = getattr(self, stage)(x)
        return x


@register("Backbone", "PPLCNet@table")
class PPLCNetStages(PPLCNet):
    """PaddleOCR's det_pp_lcnet.PPLCNet: the same layers, returning the features of blocks3,
    blocks4, blocks5 and blocks6 (strides 8 to 32) for a neck. Its ``out_channels`` are
    int(c * scale), not make_divisible (they agree for the scales PaddleOCR uses)."""

    STAGES = ("blocks3", "blocks4", "blocks5", "blocks6")

    def __init__(self, in_channels=3, scale=1.0, **_):
        super().__init__(in_channels, scale)
        self.out_channels = [int(NET_CONFIG[s][-1][2] * scale) for s in self.STAGES]

    def forward(self, x):
        x = self.blocks2(self.conv1(x))
        outs = []
        for stage in self.STAGES:
            x = getattr(self, stage)(x)
            outs.append(x)
        return outs


@register("Backbone")
class LCNet(PPLCNetStages):
    """PaddleDetection's ppdet/modeling/backbones/lcnet.py LCNet, the backbone of the PicoDet
    layout models: the same layers again, returning the stages whose index (blocks2 = 2 ...
    blocks6 = 6) is in ``feature_maps`` among blocks3..blocks6 (layout: [3, 4, 5] = blocks4,
    blocks5, blocks6, strides 8, 16, 32). Its ``out_channels`` are
    make_divisible(c * scale)."""

    def __init__(self, in_channels=3, scale=1.0, feature_maps=(3, 4, 5), act="hard_swish",
                 **_):
        if act not in ("hard_swish", "hardswish"):
            raise ValueError(f"LCNet act {act!r} is not supported (hard_swish only)")
        super().__init__(in_channels, scale)
        self.feature_maps = list(feature_maps)
        self.out_channels = [make_divisible(NET_CONFIG[s][-1][2] * scale)
                             for i, s in enumerate(self.STAGES) if i + 2 in self.feature_maps]

    def forward(self, x):
        return [o for i, o in enumerate(super().forward(x)) if i + 2 in self.feature_maps]
