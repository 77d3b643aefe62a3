"""SAST's head after PaddleOCR's heads/det_sast_head.py: four 4-conv branches on the fused
map: text-centre-line score (sigmoid), border offsets (4), text-vertex offsets (8) and
text-centre offsets (2)."""

from torch import nn

from ..layers import ConvBNLayer
from ..registry import register


def _branch(in_channels, out_channels):
    return nn.Sequential(ConvBNLayer(in_channels, 64, 1, act="relu"),
                         ConvBNLayer(64, 64, 3, act="relu"),
                         ConvBNLayer(64, 128, 1, act="relu"),
                         ConvBNLayer(128, out_channels, 3))


class SAST_Header1(nn.Module):
    def __init__(self, in_channels):
        super().__init__()
        self.score_conv = _branch(in_channels, 1)
        self.border_conv = _branch(in_channels, 4)

    def forward(self, x):
        return self.score_conv(x).sigmoid(), self.border_conv(x)


class SAST_Header2(nn.Module):
    def __init__(self, in_channels):
        super().__init__()
        self.tvo_conv = _branch(in_channels, 8)
        self.tco_conv = _branch(in_channels, 2)

    def forward(self, x):
        return self.tvo_conv(x), self.tco_conv(x)


@register("Head", "SASTHead")
class SASTHead(nn.Module):
    """Returns (f_border, f_score, f_tco, f_tvo): PaddleOCR's dict output as its inference
    program returns it (keys in sorted order, tools/infer/predict_det.py reads them so)."""

    OUTPUTS = ("f_border", "f_score", "f_tco", "f_tvo")

    def __init__(self, in_channels, **_):
        super().__init__()
        self.head1 = SAST_Header1(in_channels)
        self.head2 = SAST_Header2(in_channels)

    def forward(self, x):
        f_score, f_border = self.head1(x)
        f_tvo, f_tco = self.head2(x)
        return f_border, f_score, f_tco, f_tvo
