"""Classifier of PaddleClas's PP-LCNet (the part of pp_lcnet.py after blocks6): global average
pool, optional 1x1 ``last_conv`` to ``class_expand`` channels with activation and dropout,
flatten, ``fc``. In eval it returns softmax probabilities, as PaddleClas's exported program
does (ExportModel appends Softmax(axis=-1))."""

import torch
from torch import nn
import torch.nn.functional as F

from ..layers import make_act
from ..registry import register


class DropoutDownscaleInInfer(nn.Module):
    """Paddle's ``Dropout(mode="downscale_in_infer")``: training drops without rescaling,
    inference multiplies by (1 - p). torch's dropout rescales in training and is the identity
    in eval, so the two disagree by exactly (1 - p) at inference."""

    def __init__(self, p):
        super().__init__()
        self.p = p

    def forward(self, x):
        if self.training:
            return F.dropout(x, self.p, True) * (1.0 - self.p)
        return x * (1.0 - self.p)

    def extra_repr(self):
        return f"p={self.p}"


@register("Head")
class PPLCNetClsHead(nn.Module):
    def __init__(self, in_channels, class_num=1000, class_expand=1280, use_last_conv=True,
                 dropout_prob=0.2, act="hardswish", **_):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.use_last_conv = use_last_conv
        if use_last_conv:
            self.last_conv = nn.Conv2d(in_channels, class_expand, 1, bias=False)
            self.act = make_act(act)
            self.dropout = DropoutDownscaleInInfer(dropout_prob)
        self.flatten = nn.Flatten(1)
        self.fc = nn.Linear(class_expand if use_last_conv else in_channels, class_num)
        self.out_channels = class_num

    def forward(self, x):
        x = self.avg_pool(x)
        if self.use_last_conv:
            x = self.dropout(self.act(self.last_conv(x)))
        x = self.fc(self.flatten(x))
        return x if self.training else torch.softmax(x, dim=-1)
