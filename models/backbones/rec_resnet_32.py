"""ResNet32 after PaddleOCR's backbones/rec_resnet_32.py (SPIN; FAN's feature extractor).

Stem of two 3x3 conv-BN-ReLU layers (out/16, out/8 channels), then four stages of residual
BasicBlocks ([1, 2, 5, 3] blocks of out/4, out/2, out, out channels), each stage followed by
a 3x3 conv-BN-ReLU; 2x2 max pools before stages 1-2, a (2, 1)-strided pool padded in width
before stage 3, and two 2x2 convs that close the height: a 32x100 crop gives a 1x26 map.
Names are PaddleOCR's (``ConvNet.conv0_1``, ``ConvNet.layer3.4.bn2``, ...).
"""

from torch import nn

from ..registry import register
from .rec_resnet_31 import BasicBlock


def _conv(cin, cout, k=3, stride=1, padding=1):
    return nn.Conv2d(cin, cout, k, stride, padding, bias=False)


class ResNet(nn.Module):
    def __init__(self, input_channel, output_channel, layers=(1, 2, 5, 3)):
        super().__init__()
        blocks = [output_channel // 4, output_channel // 2, output_channel, output_channel]
        self.inplanes = output_channel // 8
        self.conv0_1 = _conv(input_channel, output_channel // 16)
        self.bn0_1 = nn.BatchNorm2d(output_channel // 16)
        self.conv0_2 = _conv(output_channel // 16, self.inplanes)
        self.bn0_2 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU()
        self.maxpool1 = nn.MaxPool2d(2, 2)
        self.layer1 = self._make_layer(blocks[0], layers[0])
        self.conv1, self.bn1 = _conv(blocks[0], blocks[0]), nn.BatchNorm2d(blocks[0])
        self.maxpool2 = nn.MaxPool2d(2, 2)
        self.layer2 = self._make_layer(blocks[1], layers[1])
        self.conv2, self.bn2 = _conv(blocks[1], blocks[1]), nn.BatchNorm2d(blocks[1])
        self.maxpool3 = nn.MaxPool2d(2, (2, 1), (0, 1))
        self.layer3 = self._make_layer(blocks[2], layers[2])
        self.conv3, self.bn3 = _conv(blocks[2], blocks[2]), nn.BatchNorm2d(blocks[2])
        self.layer4 = self._make_layer(blocks[3], layers[3])
        self.conv4_1 = _conv(blocks[3], blocks[3], 2, (2, 1), (0, 1))
        self.bn4_1 = nn.BatchNorm2d(blocks[3])
        self.conv4_2 = _conv(blocks[3], blocks[3], 2, 1, 0)
        self.bn4_2 = nn.BatchNorm2d(blocks[3])

    def _make_layer(self, planes, n):
        # stride is always 1 here: a projection only where the channel count changes
        layers = [BasicBlock(self.inplanes, planes, 1, downsample=self.inplanes != planes)]
        self.inplanes = planes
        layers += [BasicBlock(planes, planes) for _ in range(1, n)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.relu(self.bn0_1(self.conv0_1(x)))
        x = self.relu(self.bn0_2(self.conv0_2(x)))
        x = self.relu(self.bn1(self.conv1(self.layer1(self.maxpool1(x)))))
        x = self.relu(self.bn2(self.conv2(self.layer2(self.maxpool2(x)))))
        x = self.relu(self.bn3(self.conv3(self.layer3(self.maxpool3(x)))))
        x = self.relu(self.bn4_1(self.conv4_1(self.layer4(x))))
        return self.relu(self.bn4_2(self.conv4_2(x)))


@register("Backbone")
class ResNet32(nn.Module):
    def __init__(self, in_channels, out_channels=512, **_):
        super().__init__()
        self.out_channels = out_channels
        self.ConvNet = ResNet(in_channels, out_channels)

    def forward(self, x):
        return self.ConvNet(x)
