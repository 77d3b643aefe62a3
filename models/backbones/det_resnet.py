"""PaddleOCR's det ``ResNet`` (backbones/det_resnet.py, the DBNet++ backbone): the classic
ResNet — a 7x7 stride-2 stem, strided 1x1 projection shortcuts — built from det_resnet_vd.py's
ConvBNLayer, with deformable 3x3 convs in the bottleneck blocks of the stages ``dcn_stage``
marks. Blocks are named ``res{stage + 2}{a, b, ...}`` like Paddle's add_sublayer names."""

from torch import nn

from ..registry import register
from .resnet_vd import DEPTHS, NUM_FILTERS, ConvBNLayer


class BottleneckBlock(nn.Module):
    def __init__(self, in_channels, filters, stride, shortcut=True, is_dcn=False):
        super().__init__()
        self.conv0 = ConvBNLayer(in_channels, filters, 1, act="relu")
        self.conv1 = ConvBNLayer(filters, filters, 3, stride, act="relu", is_dcn=is_dcn,
                                 dcn_groups=1)
        self.conv2 = ConvBNLayer(filters, filters * 4, 1)
        self.short = None if shortcut else ConvBNLayer(in_channels, filters * 4, 1, stride)

    def forward(self, x):
        y = self.conv2(self.conv1(self.conv0(x)))
        return (y + (x if self.short is None else self.short(x))).relu()


class BasicBlock(nn.Module):
    def __init__(self, in_channels, filters, stride, shortcut=True, **_):
        super().__init__()
        self.conv0 = ConvBNLayer(in_channels, filters, 3, stride, act="relu")
        self.conv1 = ConvBNLayer(filters, filters, 3)
        self.short = None if shortcut else ConvBNLayer(in_channels, filters, 1, stride)

    def forward(self, x):
        y = self.conv1(self.conv0(x))
        return (y + (x if self.short is None else self.short(x))).relu()


@register("Backbone", "ResNet@det")
class DetResNet(nn.Module):
    """Returns the stage outputs in ``out_indices`` (strides 4, 8, 16, 32). As in Paddle,
    deformable convs exist only in bottleneck blocks (layers >= 50)."""

    def __init__(self, in_channels=3, layers=50, out_indices=None, dcn_stage=None, **_):
        super().__init__()
        if layers not in (18, 34, 50, 101, 152):
            raise ValueError(f"ResNet layers must be 18, 34, 50, 101 or 152, not {layers}")
        dcn_stage = list(dcn_stage) if dcn_stage is not None else [False] * 4
        self.out_indices = list(out_indices) if out_indices is not None else [0, 1, 2, 3]
        self.conv = ConvBNLayer(in_channels, 64, 7, 2, act="relu")
        self.pool2d_max = nn.MaxPool2d(3, 2, 1)
        bottleneck = layers >= 50
        channels, self.stages, self.out_channels = 64, [], []
        for s, depth in enumerate(DEPTHS[layers]):
            names = []
            for i in range(depth):
                if layers in (101, 152) and s == 2:
                    name = "res4a" if i == 0 else f"res4b{i}"
                else:
                    name = f"res{s + 2}{chr(97 + i)}"
                stride = 2 if i == 0 and s != 0 else 1
                if bottleneck:
                    block = BottleneckBlock(channels, NUM_FILTERS[s], stride, i != 0,
                                            bool(dcn_stage[s]))
                else:
                    block = BasicBlock(channels, NUM_FILTERS[s], stride, i != 0)
                self.add_module(name, block)
                channels = NUM_FILTERS[s] * (4 if bottleneck else 1)
                names.append(name)
            self.stages.append(names)
            if s in self.out_indices:
                self.out_channels.append(channels)

    def forward(self, x):
        x = self.pool2d_max(self.conv(x))
        outs = []
        for s, names in enumerate(self.stages):
            for name in names:
                x = getattr(self, name)(x)
            if s in self.out_indices:
                outs.append(x)
        return outs
