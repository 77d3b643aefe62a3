"""ResNet_ASTER after PaddleOCR's backbones/rec_resnet_aster.py (SEED; ASTER's encoder).

A 3x3 conv stem (32 channels) and five stages of AsterBlocks (1x1 conv-BN-ReLU, 3x3 conv-BN,
plus the input or its 1x1 strided projection) with [3, 4, 6, 6, 3] blocks of 32..512
channels; the first block of each stage strides (2, 2), (2, 2), (2, 1), (2, 1), (2, 1), so the
STN's 32x100 output becomes a 1x25 map. With ``with_lstm`` a 2-layer BiLSTM (256) reads the
25 columns. Names are PaddleOCR's (layer0.0, layer3.2.conv1, rnn.weight_ih_l0, ...).
"""

from torch import nn

from ..registry import register


class AsterBlock(nn.Module):
    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, stride, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        residual = x if self.downsample is None else self.downsample(x)
        return self.relu(out + residual)


@register("Backbone")
class ResNet_ASTER(nn.Module):
    def __init__(self, with_lstm=True, n_group=1, in_channels=3, **_):
        super().__init__()
        self.with_lstm = with_lstm
        self.layer0 = nn.Sequential(nn.Conv2d(in_channels, 32, 3, 1, 1, bias=False),
                                    nn.BatchNorm2d(32), nn.ReLU())
        self.inplanes = 32
        self.layer1 = self._make_layer(32, 3, (2, 2))  # 16 x 50
        self.layer2 = self._make_layer(64, 4, (2, 2))  # 8 x 25
        self.layer3 = self._make_layer(128, 6, (2, 1))  # 4 x 25
        self.layer4 = self._make_layer(256, 6, (2, 1))  # 2 x 25
        self.layer5 = self._make_layer(512, 3, (2, 1))  # 1 x 25
        if with_lstm:
            self.rnn = nn.LSTM(512, 256, num_layers=2, bidirectional=True, batch_first=True)
            self.out_channels = 2 * 256
        else:
            self.out_channels = 512

    def paddle_unused(self):
        # paddle.nn.LSTM's per-cell aliases of its flat weights (see necks/rnn.py)
        if not self.with_lstm:
            return []
        return [f"rnn.{layer}.cell_{d}.{p}" for layer in range(2) for d in ("fw", "bw")
                for p in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]

    def _make_layer(self, planes, blocks, stride):
        downsample = None
        if tuple(stride) != (1, 1) or self.inplanes != planes:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes, 1, stride, bias=False),
                                       nn.BatchNorm2d(planes))
        layers = [AsterBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes
        layers += [AsterBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        for i in range(6):
            x = getattr(self, f"layer{i}")(x)
        feat = x.squeeze(2).transpose(1, 2)  # N x W x C
        return self.rnn(feat)[0] if self.with_lstm else feat
