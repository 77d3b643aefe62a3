"""PSEHead after PaddleOCR's heads/det_pse_head.py: the text and kernel maps (logits)."""

from torch import nn

from ..layers import batch_norm
from ..registry import register


@register("Head")
class PSEHead(nn.Module):
    """3x3 conv (with bias) -> BN -> relu -> 1x1 conv to ``out_channels`` maps at 1/4
    resolution: channel 0 the full text region, the rest ever smaller kernels. No sigmoid:
    PSEPostProcess upsamples and thresholds the logits itself."""

    def __init__(self, in_channels, hidden_dim=256, out_channels=7, **_):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, hidden_dim, 3, padding=1)
        self.bn1 = batch_norm(hidden_dim)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(hidden_dim, out_channels, 1)

    def forward(self, x):
        return {"maps": self.conv2(self.relu1(self.bn1(self.conv1(x))))}
