"""PGNet's neck after PaddleOCR's necks/pg_fpn.py (``PGFPN``): SAST's two fusions written
flat. Bottom-up, the image, stride-2 and stride-4 maps go through strided 3x3 convs to 128
channels at stride 4 (``conv_bn_layer_1..8``); top-down, the five stage outputs from stride
64 are merged by x2 deconvs with add-relu and a 3x3 conv at each step (``conv_h*``,
``dconv*``, ``conv_g*``, ``convf``); the sum of both, relu'd, is the 128-channel output.
The layers keep PaddleOCR's names and run in its order (program-order alignment needs it)."""

from torch import nn

from ..backbones.resnet_vd import ConvBNLayer
from ..registry import register
from .sast_fpn import DeConvBNLayer, _add_relu


@register("Neck", "PGFPN")
class PGFPN(nn.Module):
    def __init__(self, in_channels, **_):
        super().__init__()
        # PaddleOCR writes the widths out for its only working backbone (ResNet 50:
        # image 3, stem 64, stages 256..2048); they are read from in_channels here
        c = list(in_channels)
        down = [32, 64, 128]
        self.conv_bn_layer_1 = ConvBNLayer(c[0], down[0], 3)
        self.conv_bn_layer_2 = ConvBNLayer(c[1], down[1], 3)
        self.conv_bn_layer_3 = ConvBNLayer(c[2], down[2], 3)
        self.conv_bn_layer_4 = ConvBNLayer(down[0], down[1], 3, stride=2)
        self.conv_bn_layer_5 = ConvBNLayer(down[1], down[1], 3, act="relu")
        self.conv_bn_layer_6 = ConvBNLayer(down[1], down[2], 3, stride=2)
        self.conv_bn_layer_7 = ConvBNLayer(down[2], down[2], 3, act="relu")
        self.conv_bn_layer_8 = ConvBNLayer(down[2], down[2], 1)
        ins = c[2:][::-1]  # stride 64, 32, 16, 8, 4
        up = [256, 256, 192, 192, 128]
        for i in range(5):
            setattr(self, f"conv_h{i}", ConvBNLayer(ins[i], up[i], 1))
        for i in (0, 1, 2, 3):  # no activation in any (PaddleOCR gives dconv0 none either)
            setattr(self, f"dconv{i}", DeConvBNLayer(up[i], up[i + 1]))
        for i in (1, 2, 3, 4):
            setattr(self, f"conv_g{i}", ConvBNLayer(up[i], up[i], 3, act="relu"))
        self.convf = ConvBNLayer(up[4], up[4], 1)
        self.out_channels = up[4]

    def forward(self, x):
        c0, c1, c2, c3, c4, c5, c6 = x
        h0, h1, h2 = self.conv_bn_layer_1(c0), self.conv_bn_layer_2(c1), self.conv_bn_layer_3(c2)
        g = self.conv_bn_layer_4(h0)
        g = self.conv_bn_layer_6(self.conv_bn_layer_5(_add_relu(g, h1)))
        f_down = self.conv_bn_layer_8(self.conv_bn_layer_7(_add_relu(g, h2)))

        h = [getattr(self, f"conv_h{i}")(f) for i, f in enumerate((c6, c5, c4, c3, c2))]
        g = self.dconv0(h[0])
        for i in (1, 2, 3):
            g = getattr(self, f"dconv{i}")(getattr(self, f"conv_g{i}")(_add_relu(g, h[i])))
        f_up = self.convf(self.conv_g4(_add_relu(g, h[4])))
        return _add_relu(f_down, f_up)
