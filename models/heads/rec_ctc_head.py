"""CTCHead after PaddleOCR's heads/rec_ctc_head.py; eval output is the per-step softmax."""

import torch
from torch import nn

from ..registry import register


@register("Head")
class CTCHead(nn.Module):
    """``use_guide`` (PaddleOCR 3.7, PP-OCRv6 tiny: the flag in the CTC *head* section): a
    depthwise k5 + pointwise Conv1d block, each with BN and hardswish, over the sequence
    before the classifier (``guide_layer``)."""

    def __init__(self, in_channels, out_channels, mid_channels=None, use_guide=False, **_):
        super().__init__()
        self.use_guide = bool(use_guide)
        if self.use_guide:
            self.guide_layer = nn.Sequential(
                nn.Conv1d(in_channels, in_channels, 5, padding=2, groups=in_channels,
                          bias=False),
                nn.BatchNorm1d(in_channels), nn.Hardswish(),
                nn.Conv1d(in_channels, in_channels, 1, bias=False),
                nn.BatchNorm1d(in_channels), nn.Hardswish())
        if mid_channels is None:
            self.fc = nn.Linear(in_channels, out_channels)
        else:
            self.fc1 = nn.Linear(in_channels, mid_channels)
            self.fc2 = nn.Linear(mid_channels, out_channels)
        self.mid_channels = mid_channels
        self.out_channels = out_channels

    def forward(self, x):
        if self.use_guide:  # [N, T, C] -> convolve along T
            x = self.guide_layer(x.transpose(1, 2)).transpose(1, 2)
        x = self.fc(x) if self.mid_channels is None else self.fc2(self.fc1(x))
        return x if self.training else torch.softmax(x, dim=2)
