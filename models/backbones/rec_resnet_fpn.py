"""ResNetFPN after PaddleOCR's backbones/rec_resnet_fpn.py (SRN).

A ResNet (BottleneckBlocks for 50+ layers, BasicBlocks below) whose last two stages keep the
resolution (stride 1; their first 3x3 conv then becomes a 2x2 conv with dilation 2, as
PaddleOCR's ConvBNLayer does for a (1, 1) stride), and a small top-down merge of the last
three stage outputs: concat with the next-shallower map, 1x1 conv, 3x3 conv, BN+ReLU, twice,
then a 1x1 conv to 512 channels. A 64x256 crop gives an 8x32 map.
"""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..registry import register


class ConvBNLayer(nn.Module):
    """conv (no bias) + BN with an optional fused ReLU; names conv, bn."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, groups=1, act=None):
        super().__init__()
        dilated = stride == (1, 1)  # PaddleOCR's rule: a (1, 1) tuple stride means dilated 2x2
        self.conv = nn.Conv2d(in_channels, out_channels, 2 if dilated else kernel_size,
                              stride=stride, padding=(kernel_size - 1) // 2,
                              dilation=2 if dilated else 1, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.act = act

    def forward(self, x):
        x = self.bn(self.conv(x))
        return F.relu(x) if self.act == "relu" else x


class ShortCut(nn.Module):
    def __init__(self, in_channels, out_channels, stride, is_first=False):
        super().__init__()
        self.use_conv = in_channels != out_channels or stride != 1 or is_first
        if self.use_conv:
            self.conv = ConvBNLayer(in_channels, out_channels, 1,
                                    1 if stride == (1, 1) else stride)

    def forward(self, x):
        return self.conv(x) if self.use_conv else x


class BottleneckBlock(nn.Module):
    def __init__(self, in_channels, out_channels, stride):
        super().__init__()
        self.conv0 = ConvBNLayer(in_channels, out_channels, 1, act="relu")
        self.conv1 = ConvBNLayer(out_channels, out_channels, 3, stride=stride, act="relu")
        self.conv2 = ConvBNLayer(out_channels, out_channels * 4, 1)
        self.short = ShortCut(in_channels, out_channels * 4, stride)
        self.out_channels = out_channels * 4

    def forward(self, x):
        return F.relu(self.conv2(self.conv1(self.conv0(x))) + self.short(x))


class BasicBlock(nn.Module):
    def __init__(self, in_channels, out_channels, stride, is_first):
        super().__init__()
        self.conv0 = ConvBNLayer(in_channels, out_channels, 3, stride=stride, act="relu")
        self.conv1 = ConvBNLayer(out_channels, out_channels, 3)
        self.short = ShortCut(in_channels, out_channels, stride, is_first)
        self.out_channels = out_channels

    def forward(self, x):
        return F.relu(self.conv1(self.conv0(x)) + self.short(x))


class BNReLU(nn.BatchNorm2d):
    """paddle.nn.BatchNorm(act='relu'): the BN with its activation fused."""

    def forward(self, x):
        return F.relu(super().forward(x))


DEPTHS = {18: [2, 2, 2, 2], 34: [3, 4, 6, 3], 50: [3, 4, 6, 3], 101: [3, 4, 23, 3],
          152: [3, 8, 36, 3]}


@register("Backbone")
class ResNetFPN(nn.Module):
    def __init__(self, in_channels=1, layers=50, **_):
        super().__init__()
        strides = [(2, 2), (2, 2), (1, 1), (1, 1)]
        filters = [64, 128, 256, 512]
        self.depth = DEPTHS[layers]
        self.conv = ConvBNLayer(in_channels, 64, 7, stride=2, act="relu")
        self.block_names = []
        in_ch = 64
        for block, depth in enumerate(self.depth):
            for i in range(depth):
                stride = strides[block] if i == 0 else 1
                if layers >= 50:
                    name = f"bottleneckBlock_{block}_{i}"
                    module = BottleneckBlock(in_ch, filters[block], stride)
                else:
                    # PaddleOCR's names: res2a, res2b, ... (res4b1.. only for 101/152)
                    name = f"res{block + 2}{chr(97 + i)}"
                    module = BasicBlock(in_ch, filters[block], stride, block == i == 0)
                self.add_module(name, module)
                self.block_names.append(name)
                in_ch = module.out_channels
        # fpn_list: the indices after which a stage ends
        self.stage_ends = [int(v) for v in np.cumsum(self.depth)]
        out_ch = [in_ch // 4, in_ch // 2, in_ch]
        self.base_names = []
        for i in (-2, -3):
            cin = out_ch[i + 1] + out_ch[i]
            for k, module in enumerate((nn.Conv2d(cin, out_ch[i], 1),
                                        nn.Conv2d(out_ch[i], out_ch[i], 3, padding=1),
                                        BNReLU(out_ch[i]))):
                self.add_module(f"F_{i}_base_block_{k}", module)
                self.base_names.append(f"F_{i}_base_block_{k}")
        self.add_module("F_-3_base_block_3", nn.Conv2d(out_ch[-3], 512, 1))
        self.base_names.append("F_-3_base_block_3")
        self.out_channels = 512

    def forward(self, x):
        x = self.conv(x)
        feats = []
        for i, name in enumerate(self.block_names):
            x = getattr(self, name)(x)
            if i + 1 in self.stage_ends:
                feats.append(x)
        base = feats[-1]
        j = 0
        for i, name in enumerate(self.base_names):
            if i % 3 == 0 and i < 6:
                j += 1
                other = feats[-j - 1]
                if other.shape[2:] != base.shape[2:]:
                    # PaddleOCR's conv_trans list is empty: such inputs fail there too
                    raise ValueError(f"ResNetFPN: stage maps {tuple(other.shape[2:])} and "
                                     f"{tuple(base.shape[2:])} differ")
                base = torch.cat([base, other], dim=1)
            base = getattr(self, name)(base)
        return base
