"""MobileNetV1Enhance after PaddleOCR's backbones/rec_mv1_enhance.py: the PP-OCRv2 and PP-OCRv3
recognition backbone (depthwise-separable blocks, hardswish, SE in the last two blocks).

Submodule names keep PaddleOCR's leading underscores (``_conv``, ``_batch_norm``,
``_depthwise_conv``, ``_se``, ``_pointwise_conv``) so structured names map one to one.
"""

from torch import nn

from ..layers import SEModule, batch_norm, make_act
from ..registry import register

# The SE blocks call paddle's hardsigmoid with its defaults (slope 1/6 as paddle rounds it).
SE_SLOPE, SE_OFFSET = 0.1666667, 0.5


def _pair(v):
    return tuple(v) if isinstance(v, (list, tuple)) else (v, v)


class ConvBNLayer(nn.Module):
    """conv (no bias) -> BatchNorm with fused activation (paddle's ``BatchNorm(act=...)``)."""

    def __init__(self, num_channels, filter_size, num_filters, stride, padding, num_groups=1,
                 act="hard_swish"):
        super().__init__()
        self._conv = nn.Conv2d(num_channels, num_filters, filter_size, _pair(stride), padding,
                               groups=num_groups, bias=False)
        self._batch_norm = batch_norm(num_filters)
        self.act = make_act(act)

    def forward(self, x):
        return self.act(self._batch_norm(self._conv(x)))


class DepthwiseSeparable(nn.Module):
    def __init__(self, num_channels, num_filters1, num_filters2, num_groups, stride, scale,
                 dw_size=3, padding=1, use_se=False):
        super().__init__()
        mid = int(num_filters1 * scale)
        self._depthwise_conv = ConvBNLayer(num_channels, dw_size, mid, stride, padding,
                                           num_groups=int(num_groups * scale))
        self._se = SEModule(mid, 4, SE_SLOPE, SE_OFFSET) if use_se else None
        self._pointwise_conv = ConvBNLayer(mid, 1, int(num_filters2 * scale), 1, 0)

    def forward(self, x):
        x = self._depthwise_conv(x)
        if self._se is not None:
            x = self._se(x)
        return self._pointwise_conv(x)


# (num_filters1, num_filters2, stride, dw_size, use_se) of block_list; groups = num_filters1
# and the input width is the previous block's output. The last block's stride is configurable.
BLOCKS = [
    (32, 64, 1, 3, False),
    (64, 128, 1, 3, False),
    (128, 128, 1, 3, False),
    (128, 256, (2, 1), 3, False),
    (256, 256, 1, 3, False),
    (256, 512, (2, 1), 3, False),
] + [(512, 512, 1, 5, False)] * 5 + [
    (512, 1024, (2, 1), 5, True),
    (1024, 1024, None, 5, True),
]


@register("Backbone")
class MobileNetV1Enhance(nn.Module):
    def __init__(self, in_channels=3, scale=0.5, last_conv_stride=1, last_pool_type="max",
                 last_pool_kernel_size=(3, 2), **_):
        super().__init__()
        self.scale = scale
        self.conv1 = ConvBNLayer(in_channels, 3, int(32 * scale), 2, 1)
        blocks, channels = [], int(32 * scale)
        for f1, f2, stride, k, use_se in BLOCKS:
            blocks.append(DepthwiseSeparable(
                channels, f1, f2, f1, last_conv_stride if stride is None else stride, scale,
                dw_size=k, padding=k // 2, use_se=use_se))
            channels = int(f2 * scale)
        self.block_list = nn.Sequential(*blocks)
        if last_pool_type == "avg":
            k = _pair(last_pool_kernel_size)
            self.pool = nn.AvgPool2d(k, k, 0)  # no padding: paddle's `exclusive` is moot
        else:
            self.pool = nn.MaxPool2d(2, 2, 0)
        self.out_channels = int(1024 * scale)

    def forward(self, x):
        return self.pool(self.block_list(self.conv1(x)))
