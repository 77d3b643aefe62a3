"""PGNet's backbone, PaddleOCR's e2e ``ResNet`` (backbones/e2e_resnet_vd_pg.py).

Despite the file name it is a plain ResNet, not ResNet-D: one 7x7 stride-2 stem conv
(``conv1_1``) and shortcuts that project with a strided 1x1 conv (PaddleOCR builds the vd
average pool but its forward never runs it). For 50 layers it has SAST's fifth bottleneck
stage (3 blocks of width 512, stride 64) and returns what PGFPN fuses: the input image, the
stem before its max pool (stride 2) and every stage (strides 4 to 64).
"""

from .resnet_vd import ConvBNLayer, NUM_FILTERS, _ResNetVd
from ..registry import register


@register("Backbone", "ResNet@e2e")
class PGResNet(_ResNetVd):
    def __init__(self, in_channels=3, layers=50, **_):
        if layers != 50:
            # PaddleOCR's other depths build four stages (or, for 18/34, index past their
            # channel list), while PGFPN unpacks seven feature maps: only 50 runs there.
            raise ValueError(f"PGNet's ResNet supports layers 50, not {layers}")
        super().__init__(in_channels, layers, stem_stride=2, stage_stride=2,
                         depths=[3, 4, 6, 3, 3], filters=NUM_FILTERS + [512])
        self.out_channels = [in_channels, 64] + self.stage_channels

    def build_stem(self, in_channels, stride):
        self.conv1_1 = ConvBNLayer(in_channels, 64, 7, stride, act="relu")

    def make_block(self, block, cin, cout, stride, shortcut, if_first, stage):
        return block(cin, cout, stride, shortcut=shortcut, if_first=if_first, vd=False)

    def forward(self, x):
        outs = [x]
        x = self.conv1_1(x)
        outs.append(x)
        x = self.pool2d_max(x)
        for s in range(len(self.stages)):
            x = self.run_stage(s, x)
            outs.append(x)
        return outs
