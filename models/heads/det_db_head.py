"""DBHead (differentiable binarization) after PaddleOCR's det_db_head.py."""

import torch
from torch import nn

from ..layers import batch_norm
from ..registry import register


class Head(nn.Module):
    """3x3 conv-BN-relu, two stride-2 transposed convs (x4 upsampling), sigmoid."""

    def __init__(self, in_channels, kernel_list=(3, 2, 2)):
        super().__init__()
        mid = in_channels // 4
        self.conv1 = nn.Conv2d(in_channels, mid, kernel_list[0],
                               padding=kernel_list[0] // 2, bias=False)
        self.conv_bn1 = batch_norm(mid)
        self.conv2 = nn.ConvTranspose2d(mid, mid, kernel_list[1], stride=2)
        self.conv_bn2 = batch_norm(mid)
        self.conv3 = nn.ConvTranspose2d(mid, 1, kernel_list[2], stride=2)

    def forward(self, x):
        x = torch.relu(self.conv_bn1(self.conv1(x)))
        x = torch.relu(self.conv_bn2(self.conv2(x)))
        return torch.sigmoid(self.conv3(x))


@register("Head")
class DBHead(nn.Module):
    """In eval mode returns the shrink (probability) map, as Paddle's inference program does.

    ``with_thresh`` adds the threshold branch that training checkpoints carry; in training mode
    the head then returns Paddle's concatenation (shrink, threshold, binary) maps.
    """

    def __init__(self, in_channels, k=50, with_thresh=False, **_):
        super().__init__()
        self.k = k
        self.binarize = Head(in_channels)
        self.thresh = Head(in_channels) if with_thresh else None

    def forward(self, x):
        shrink = self.binarize(x)
        if not self.training or self.thresh is None:
            return shrink
        threshold = self.thresh(x)
        binary = torch.reciprocal(1 + torch.exp(-self.k * (shrink - threshold)))
        return torch.cat([shrink, threshold, binary], dim=1)
