"""FCENet's head after PaddleOCR's heads/det_fce_head.py: per pyramid level a 3x3 conv for
the classification maps (text region, text centre region: 2 logits each) and one for the
Fourier coefficients ((2k + 1) real and imaginary parts)."""

import torch
from torch import nn

from ..registry import register


@register("Head", "FCEHead")
class FCEHead(nn.Module):
    """Inference output per level: [softmax(tr), softmax(tcl), reg] on channels, the levels
    in order (``level_0``, ``level_1``, ... of PaddleOCR's dict, as its program returns
    them)."""

    def __init__(self, in_channels, fourier_degree=5, **_):
        super().__init__()
        self.fourier_degree = fourier_degree
        self.out_conv_cls = nn.Conv2d(in_channels, 4, 3, 1, 1)
        self.out_conv_reg = nn.Conv2d(in_channels, (2 * fourier_degree + 1) * 2, 3, 1, 1)

    def forward(self, feats):
        outs = []
        for x in feats:
            cls, reg = self.out_conv_cls(x), self.out_conv_reg(x)
            outs.append(torch.cat([cls[:, :2].softmax(1), cls[:, 2:].softmax(1), reg], dim=1))
        return tuple(outs)
