"""PGNet's backbone, PaddleOCR's e2e ``ResNet`` (backbones/e2e_resnet_vd_pg.py).

SAST's five-stage layout (for 50 layers a fifth bottleneck stage of width 512, stride 64;
outputs: the input image, the stem before its max pool, every stage), but despite the file
name a plain ResNet, not ResNet-D: one 7x7 stride-2 stem conv (``conv1_1``) and shortcuts
that project with a strided 1x1 conv (PaddleOCR builds the vd average pool but its forward
never runs it).
"""

from .resnet_vd import ConvBNLayer, ResNet_SAST
from ..registry import register


@register("Backbone", "ResNet@e2e")
class PGResNet(ResNet_SAST):
    def __init__(self, in_channels=3, layers=50, **_):
        if layers != 50:
            # PaddleOCR's other depths build four stages (or, for 18/34, index past their
            # channel list), while PGFPN unpacks seven feature maps: only 50 runs there.
            raise ValueError(f"PGNet's ResNet supports layers 50, not {layers}")
        super().__init__(in_channels, layers)

    def build_stem(self, in_channels, stride):
        self.conv1_1 = ConvBNLayer(in_channels, 64, 7, stride, act="relu")

    def stem_convs(self, x):
        return self.conv1_1(x)

    def make_block(self, block, cin, cout, stride, shortcut, if_first, stage):
        return block(cin, cout, stride, shortcut=shortcut, if_first=if_first, vd=False)
