"""CTCHead after PaddleOCR's heads/rec_ctc_head.py; eval output is the per-step softmax."""

import torch
from torch import nn

from ..registry import register


@register("Head")
class CTCHead(nn.Module):
    def __init__(self, in_channels, out_channels, mid_channels=None, **_):
        super().__init__()
        if mid_channels is None:
            self.fc = nn.Linear(in_channels, out_channels)
        else:
            self.fc1 = nn.Linear(in_channels, mid_channels)
            self.fc2 = nn.Linear(mid_channels, out_channels)
        self.mid_channels = mid_channels
        self.out_channels = out_channels

    def forward(self, x):
        x = self.fc(x) if self.mid_channels is None else self.fc2(self.fc1(x))
        return x if self.training else torch.softmax(x, dim=2)
