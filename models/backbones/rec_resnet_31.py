"""ResNet31 after PaddleOCR's backbones/rec_resnet_31.py (SAR, RobustScanner).

Two plain conv stem layers, then four stages of (max-pool, residual BasicBlocks, 3x3 conv,
BN, ReLU). The pools halve height and width in stages 2-3 and only the height in stage 4
(stage 5's pool only with ``last_stage_pool``), all with ``ceil_mode``; a 48x160 crop gives
a 6x40 map. Module names are PaddleOCR's (conv1_1, bn1_1, block2.0.conv1, ...).
"""

from torch import nn

from ..registry import register


def conv3x3(cin, cout, stride=1):
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers plus the input (a 1x1 conv-BN projection when the channel
    count changes: PaddleOCR then builds ``downsample`` as Sequential(conv, BN), else an
    empty Sequential, which its forward skips)."""

    expansion = 1

    def __init__(self, in_channels, channels, stride=1, downsample=False):
        super().__init__()
        self.conv1 = conv3x3(in_channels, channels, stride)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU()
        self.conv2 = conv3x3(channels, channels)
        self.bn2 = nn.BatchNorm2d(channels)
        self.downsample = nn.Sequential(
            nn.Conv2d(in_channels, channels * self.expansion, 1, stride, bias=False),
            nn.BatchNorm2d(channels * self.expansion)) if downsample else nn.Sequential()

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        residual = self.downsample(x) if len(self.downsample) else x
        return self.relu(out + residual)


@register("Backbone")
class ResNet31(nn.Module):
    def __init__(self, in_channels=3, layers=(1, 2, 5, 3),
                 channels=(64, 128, 256, 256, 512, 512, 512), out_indices=None,
                 last_stage_pool=False):
        super().__init__()
        self.out_indices = out_indices
        self.conv1_1 = nn.Conv2d(in_channels, channels[0], 3, padding=1)
        self.bn1_1 = nn.BatchNorm2d(channels[0])
        self.relu1_1 = nn.ReLU()
        self.conv1_2 = nn.Conv2d(channels[0], channels[1], 3, padding=1)
        self.bn1_2 = nn.BatchNorm2d(channels[1])
        self.relu1_2 = nn.ReLU()
        pools = {2: (2, 2), 3: (2, 2), 4: (2, 1), 5: (2, 2) if last_stage_pool else None}
        for stage, (cin, cout, blocks) in zip(range(2, 6), zip(channels[1:5], channels[2:6],
                                                                layers)):
            kernel = pools[stage]
            setattr(self, f"pool{stage}", None if kernel is None else
                    nn.MaxPool2d(kernel, stride=kernel, ceil_mode=True))
            setattr(self, f"block{stage}", nn.Sequential(*[
                BasicBlock(cin if i == 0 else cout, cout, downsample=(i == 0 and cin != cout))
                for i in range(blocks)]))
            setattr(self, f"conv{stage}", nn.Conv2d(cout, cout, 3, padding=1))
            setattr(self, f"bn{stage}", nn.BatchNorm2d(cout))
            setattr(self, f"relu{stage}", nn.ReLU())
        self.out_channels = channels[-1]

    def forward(self, x):
        x = self.relu1_1(self.bn1_1(self.conv1_1(x)))
        x = self.relu1_2(self.bn1_2(self.conv1_2(x)))
        outs = []
        for stage in range(2, 6):
            pool = getattr(self, f"pool{stage}")
            if pool is not None:
                x = pool(x)
            x = getattr(self, f"block{stage}")(x)
            x = getattr(self, f"conv{stage}")(x)
            x = getattr(self, f"relu{stage}")(getattr(self, f"bn{stage}")(x))
            outs.append(x)
        if self.out_indices is not None:
            return tuple(outs[i] for i in self.out_indices)
        return x
