"""ResNet45, the backbone of ABINet and VisionLAN (PaddleOCR's backbones/rec_resnet_45.py).

Five stages of basic blocks whose first conv is 1x1 and second 3x3 (carrying the stride), on a
32-channel 3x3 stem; channels 32, 64, 128, 256, 512. ABINet keeps PaddleOCR's default strides
(2, 1, 2, 1, 1: a 1/4 feature map), VisionLAN's config passes (2, 2, 2, 1, 1).
"""

from torch import nn

from ..registry import register


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_channels, channels, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(channels, channels, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.downsample = downsample

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        residual = x if self.downsample is None else self.downsample(x)
        return self.relu(out + residual)


@register("Backbone")
class ResNet45(nn.Module):
    def __init__(self, in_channels=3, layers=(3, 4, 6, 6, 3), strides=(2, 1, 2, 1, 1), **_):
        super().__init__()
        self.inplanes = 32
        self.conv1 = nn.Conv2d(in_channels, 32, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(32)
        self.relu = nn.ReLU()
        for i, (planes, blocks, stride) in enumerate(zip((32, 64, 128, 256, 512), layers,
                                                         strides)):
            setattr(self, f"layer{i + 1}", self._make_layer(planes, blocks, stride))
        self.out_channels = 512

    def _make_layer(self, planes, blocks, stride):
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))
        layers = [BasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes
        layers += [BasicBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        for i in range(1, 6):
            x = getattr(self, f"layer{i}")(x)
        return x
