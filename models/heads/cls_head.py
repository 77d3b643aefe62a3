"""ClsHead (text direction classifier) after PaddleOCR's heads/cls_head.py."""

import torch
from torch import nn

from ..registry import register


@register("Head")
class ClsHead(nn.Module):
    def __init__(self, in_channels, class_dim, **_):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_channels, class_dim)
        self.out_channels = class_dim

    def forward(self, x):
        x = self.fc(torch.flatten(self.pool(x), 1))
        return x if self.training else torch.softmax(x, dim=1)
