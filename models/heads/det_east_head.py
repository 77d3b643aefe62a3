"""EASTHead after PaddleOCR's heads/det_east_head.py: score map and RBOX-style geometry."""

import torch
from torch import nn

from ..layers import ConvBNLayer
from ..registry import register


@register("Head")
class EASTHead(nn.Module):
    """Two 3x3 conv-BN-relu layers, then 1x1 conv-BN branches: ``f_score`` (sigmoid, 1
    channel) and ``f_geo`` (8 channels: the four corner offsets, (sigmoid - 0.5) * 1600 px).

    Returns ``{'f_geo', 'f_score'}`` in that order: Paddle's inference program returns a
    dict's values sorted by key, and predict_det.py reads outputs[0] as f_geo."""

    def __init__(self, in_channels, model_name="large", **_):
        super().__init__()
        hidden = [128, 64] if model_name == "large" else [64, 32]
        self.det_conv1 = ConvBNLayer(in_channels, hidden[0], 3, act="relu")
        self.det_conv2 = ConvBNLayer(hidden[0], hidden[1], 3, act="relu")
        self.score_conv = ConvBNLayer(hidden[1], 1, 1)
        self.geo_conv = ConvBNLayer(hidden[1], 8, 1)

    def forward(self, x):
        f_det = self.det_conv2(self.det_conv1(x))
        f_score = torch.sigmoid(self.score_conv(f_det))
        f_geo = (torch.sigmoid(self.geo_conv(f_det)) - 0.5) * 2 * 800
        return {"f_geo": f_geo, "f_score": f_score}
