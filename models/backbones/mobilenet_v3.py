"""MobileNetV3 as PaddleOCR uses it: the det variant (det_mobilenet_v3.py: stages returned for
the FPN) and the rec/cls variant (rec_mobilenet_v3.py: height-only strides, final max pool).
Both share ConvBNLayer / ResidualUnit / SEModule; SE uses hardsigmoid slope 0.2 as the
official weights were trained with."""

from torch import nn

from ..layers import ConvBNLayer, SEModule, make_divisible
from ..registry import register

# k, expansion, out channels, use SE, activation, stride
LARGE = [
    [3, 16, 16, False, "relu", 1], [3, 64, 24, False, "relu", 2],
    [3, 72, 24, False, "relu", 1], [5, 72, 40, True, "relu", 2],
    [5, 120, 40, True, "relu", 1], [5, 120, 40, True, "relu", 1],
    [3, 240, 80, False, "hardswish", 2], [3, 200, 80, False, "hardswish", 1],
    [3, 184, 80, False, "hardswish", 1], [3, 184, 80, False, "hardswish", 1],
    [3, 480, 112, True, "hardswish", 1], [3, 672, 112, True, "hardswish", 1],
    [5, 672, 160, True, "hardswish", 2], [5, 960, 160, True, "hardswish", 1],
    [5, 960, 160, True, "hardswish", 1],
]
SMALL = [
    [3, 16, 16, True, "relu", 2], [3, 72, 24, False, "relu", 2],
    [3, 88, 24, False, "relu", 1], [5, 96, 40, True, "hardswish", 2],
    [5, 240, 40, True, "hardswish", 1], [5, 240, 40, True, "hardswish", 1],
    [5, 120, 48, True, "hardswish", 1], [5, 144, 48, True, "hardswish", 1],
    [5, 288, 96, True, "hardswish", 2], [5, 576, 96, True, "hardswish", 1],
    [5, 576, 96, True, "hardswish", 1],
]
CONFIGS = {"large": (LARGE, 960), "small": (SMALL, 576)}
SCALES = (0.35, 0.5, 0.75, 1.0, 1.25)
REC_STRIDE_ROWS = {"large": (0, 1, 3, 12), "small": (0, 1, 3, 8)}


class ResidualUnit(nn.Module):
    def __init__(self, in_channels, mid_channels, out_channels, kernel_size, stride, use_se,
                 act, se_slope=0.2):
        super().__init__()
        self.if_shortcut = stride == 1 and in_channels == out_channels
        self.expand_conv = ConvBNLayer(in_channels, mid_channels, 1, act=act)
        self.bottleneck_conv = ConvBNLayer(mid_channels, mid_channels, kernel_size, stride,
                                           groups=mid_channels, act=act)
        self.mid_se = SEModule(mid_channels, slope=se_slope) if use_se else None
        self.linear_conv = ConvBNLayer(mid_channels, out_channels, 1)

    def forward(self, x):
        y = self.bottleneck_conv(self.expand_conv(x))
        if self.mid_se is not None:
            y = self.mid_se(y)
        y = self.linear_conv(y)
        return x + y if self.if_shortcut else y


def _check(model_name, scale):
    if model_name not in CONFIGS:
        raise ValueError(f"MobileNetV3 model_name must be large or small, not {model_name!r}")
    if scale not in SCALES:
        raise ValueError(f"MobileNetV3 scale must be one of {SCALES}, not {scale}")
    return CONFIGS[model_name]


@register("Backbone", "MobileNetV3")
class DetMobileNetV3(nn.Module):
    """Returns the four stage outputs (strides 4, 8, 16, 32) for DB necks."""
    # ptocr.load's fast form: channels_last (oneDNN's depthwise and 1x1 convs run NHWC
    # without reorders); faster in eager on a quiet 2-core machine (README Benchmarks)
    prefers_channels_last = True

    def __init__(self, in_channels=3, model_name="large", scale=0.5, disable_se=False, **_):
        super().__init__()
        cfg, squeeze = _check(model_name, scale)
        inplanes = make_divisible(16 * scale)
        self.conv = ConvBNLayer(in_channels, inplanes, 3, 2, act="hardswish")
        self.out_channels, stages, blocks = [], [], []
        start = 2 if model_name == "large" else 0
        for i, (k, exp, c, se, act, s) in enumerate(cfg):
            if s == 2 and i > start:  # a new stage starts at each later downsampling
                self.out_channels.append(inplanes)
                stages.append(nn.Sequential(*blocks))
                blocks = []
            blocks.append(ResidualUnit(inplanes, make_divisible(scale * exp),
                                       make_divisible(scale * c), k, s, se and not disable_se,
                                       act))
            inplanes = make_divisible(scale * c)
        blocks.append(ConvBNLayer(inplanes, make_divisible(scale * squeeze), 1,
                                  act="hardswish"))
        stages.append(nn.Sequential(*blocks))
        self.out_channels.append(make_divisible(scale * squeeze))
        for i, stage in enumerate(stages):
            self.add_module(f"stage{i}", stage)
        self.num_stages = len(stages)

    def forward(self, x):
        x = self.conv(x)
        outs = []
        for i in range(self.num_stages):
            x = getattr(self, f"stage{i}")(x)
            outs.append(x)
        return outs


@register("Backbone", "MobileNetV3@rec")
@register("Backbone", "MobileNetV3@cls")
class RecMobileNetV3(nn.Module):
    """Text-line variant: strides halve the height only after the stem; ends in a 2x2 max pool."""
    # ptocr.load's fast form: channels_last (oneDNN's depthwise and 1x1 convs run NHWC
    # without reorders); faster in eager on a quiet 2-core machine (README Benchmarks)
    prefers_channels_last = True

    def __init__(self, in_channels=3, model_name="small", scale=0.5, large_stride=None,
                 small_stride=None, disable_se=False, **_):
        super().__init__()
        cfg, squeeze = _check(model_name, scale)
        strides = (large_stride or [1, 2, 2, 2]) if model_name == "large" else (
            small_stride or [2, 2, 2, 2])
        # rows that take the configured strides (height only, except large's first row)
        rows = dict(zip(REC_STRIDE_ROWS[model_name], strides))
        inplanes = make_divisible(16 * scale)
        self.conv1 = ConvBNLayer(in_channels, inplanes, 3, 2, act="hardswish")
        blocks = []
        for i, (k, exp, c, se, act, _) in enumerate(cfg):
            s = rows.get(i, 1)
            if i in rows and not (model_name == "large" and i == 0):
                s = (s, 1)
            blocks.append(ResidualUnit(inplanes, make_divisible(scale * exp),
                                       make_divisible(scale * c), k, s, se and not disable_se,
                                       act))
            inplanes = make_divisible(scale * c)
        self.blocks = nn.Sequential(*blocks)
        self.conv2 = ConvBNLayer(inplanes, make_divisible(scale * squeeze), 1, act="hardswish")
        self.pool = nn.MaxPool2d(2, 2)
        self.out_channels = make_divisible(scale * squeeze)

    def forward(self, x):
        return self.pool(self.conv2(self.blocks(self.conv1(x))))
