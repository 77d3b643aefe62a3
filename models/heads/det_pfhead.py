"""PFHeadLocal (PP-OCRv4/v5 server det) after PaddleOCR's heads/det_db_head.py: a DBHead whose
shrink branch also feeds a local refinement module; inference averages both maps."""

import torch
from torch import nn

from ..layers import ConvBNLayer, upsample_nearest
from ..registry import register
from .det_db_head import DBHead


class LocalModule(nn.Module):
    """3x3 conv-BN-relu and 1x1 conv over concat(initial map, features): refinement logits."""

    def __init__(self, in_c, mid_c, **_):
        super().__init__()
        self.last_3 = ConvBNLayer(in_c + 1, mid_c, 3, 1, 1, act="relu")
        self.last_1 = nn.Conv2d(mid_c, 1, 1)

    def forward(self, x, init_map):
        return self.last_1(self.last_3(torch.cat([init_map, x], dim=1)))


@register("Head")
class PFHeadLocal(DBHead):
    """In eval mode returns 0.5 * (shrink map + refined map), what current PaddleOCR returns
    as ``maps`` and exports as the program's only output. Training mode with the threshold
    branch returns Paddle's ``maps``: concat(refined, threshold, binary)."""

    def __init__(self, in_channels, k=50, mode="small", with_thresh=False, **_):
        super().__init__(in_channels, k, with_thresh)
        self.mode = mode
        mid = in_channels // 4 if mode == "large" else in_channels // 8
        self.cbn_layer = LocalModule(in_channels // 4, mid)

    def shrink_and_features(self, x):
        """The binarize head's probability map and its features before the last transposed
        conv (x2 of the input resolution), as Paddle's ``Head.forward(x, return_f=True)``."""
        b = self.binarize
        f = torch.relu(b.conv_bn1(b.conv1(x)))
        f = torch.relu(b.conv_bn2(b.conv2(f)))
        return torch.sigmoid(b.conv3(f)), f

    def forward(self, x):
        shrink, f = self.shrink_and_features(x)
        # Paddle's nn.Upsample(scale_factor=2, mode="nearest"): pixel repetition
        cbn = torch.sigmoid(self.cbn_layer(upsample_nearest(f, 2), shrink))
        if not self.training or self.thresh is None:
            return 0.5 * (shrink + cbn)
        threshold = self.thresh(x)
        binary = torch.reciprocal(1 + torch.exp(-self.k * (shrink - threshold)))
        return torch.cat([cbn, threshold, binary], dim=1)
