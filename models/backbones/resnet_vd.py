"""ResNet_vd as PaddleOCR uses it: the det variant (backbones/det_resnet_vd.py, ``ResNet_vd``:
stride-2 stem, the four stage outputs for DB necks) and the rec variant
(backbones/rec_resnet_vd.py, ``ResNet`` for model_type rec: stride-1 stem, height-only (2, 1)
stage strides, a final 2x2 max pool). Both share ConvBNLayer, BasicBlock and BottleneckBlock.

"vd" (ResNet-D): a downsampling shortcut averages 2x2 (rec: 2x1) windows and then applies a
stride-1 1x1 conv, instead of a strided 1x1 conv that would drop 3/4 of the pixels.

Blocks are registered as ``bb_{stage}_{index}`` like Paddle's ``add_sublayer`` names, and the
conv/BN layers keep Paddle's ``_conv`` / ``_batch_norm`` names, so structured names map one to one.
"""

from torch import nn

from ..deform_conv import DeformableConvV2
from ..layers import batch_norm, make_act
from ..registry import register

DEPTHS = {18: [2, 2, 2, 2], 34: [3, 4, 6, 3], 50: [3, 4, 6, 3], 101: [3, 4, 23, 3],
          152: [3, 8, 36, 3], 200: [3, 12, 48, 3]}
NUM_FILTERS = [64, 128, 256, 512]


def _pair(v):
    return tuple(v) if isinstance(v, (list, tuple)) else (v, v)


class ConvBNLayer(nn.Module):
    """[vd: average pool over stride-sized windows] -> conv (no bias) -> BN -> activation.

    In vd mode the conv runs at stride 1 and the pool does the downsampling. Paddle's
    AvgPool2D(ceil_mode=True) is exclusive: a window hanging over the bottom/right edge of an
    odd-sized map averages only the pixels it covers; ``count_include_pad=False`` says so in torch.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, groups=1,
                 is_vd_mode=False, act=None, is_dcn=False, dcn_groups=1):
        super().__init__()
        stride = _pair(stride)
        self.is_vd_mode = is_vd_mode
        self._pool2d_avg = (nn.AvgPool2d(stride, stride, 0, ceil_mode=True,
                                         count_include_pad=False) if is_vd_mode else None)
        if is_dcn:  # deformable conv v2 (FCENet, DB++ later stages; dcn_groups deformable groups)
            self._conv = DeformableConvV2(in_channels, out_channels, kernel_size, stride[0],
                                          groups=dcn_groups)
        else:
            self._conv = nn.Conv2d(in_channels, out_channels, kernel_size,
                                   (1, 1) if is_vd_mode else stride, (kernel_size - 1) // 2,
                                   groups=groups, bias=False)
        self._batch_norm = batch_norm(out_channels)  # Paddle fuses the activation into BN
        self.act = make_act(act)

    def forward(self, x):
        if self._pool2d_avg is not None:
            x = self._pool2d_avg(x)
        return self.act(self._batch_norm(self._conv(x)))


def _shortcut(in_channels, out_channels, stride, shortcut, if_first, vd=True):
    """The projection of a stage's first block (None: identity). The network's very first block
    projects without pooling; later ones downsample vd-style (``vd=False``: a strided 1x1 conv,
    as PGNet's backbone does)."""
    if shortcut:
        return None
    vd = vd and not if_first and _pair(stride)[0] != 1
    return ConvBNLayer(in_channels, out_channels, 1, stride, is_vd_mode=vd)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_channels, out_channels, stride, shortcut=True, if_first=False, vd=True):
        super().__init__()
        self.conv0 = ConvBNLayer(in_channels, out_channels, 3, stride, act="relu")
        self.conv1 = ConvBNLayer(out_channels, out_channels, 3)
        self.short = _shortcut(in_channels, out_channels, stride, shortcut, if_first, vd)

    def forward(self, x):
        y = self.conv1(self.conv0(x))
        return (y + (x if self.short is None else self.short(x))).relu()


class BottleneckBlock(nn.Module):
    expansion = 4

    def __init__(self, in_channels, out_channels, stride, shortcut=True, if_first=False,
                 is_dcn=False, vd=True):
        super().__init__()
        self.conv0 = ConvBNLayer(in_channels, out_channels, 1, act="relu")
        self.conv1 = ConvBNLayer(out_channels, out_channels, 3, stride, act="relu",
                                 is_dcn=is_dcn, dcn_groups=2)
        self.conv2 = ConvBNLayer(out_channels, out_channels * 4, 1)
        self.short = _shortcut(in_channels, out_channels * 4, stride, shortcut, if_first, vd)

    def forward(self, x):
        y = self.conv2(self.conv1(self.conv0(x)))
        return (y + (x if self.short is None else self.short(x))).relu()


class _ResNetVd(nn.Module):
    """Deep stem (three 3x3 ConvBNLayers, 3x3/2 max pool) and four stages of blocks.

    ``self.stages`` lists the block names of each stage; ``self.stage_channels`` their widths.
    """

    def __init__(self, in_channels, layers, stem_stride, stage_stride, depths=None,
                 filters=NUM_FILTERS):
        super().__init__()
        if layers not in DEPTHS:
            raise ValueError(f"ResNet layers must be one of {sorted(DEPTHS)}, not {layers}")
        self.layers = layers
        depths = depths or DEPTHS[layers]
        self.build_stem(in_channels, stem_stride)
        self.pool2d_max = nn.MaxPool2d(3, 2, 1)
        block = BottleneckBlock if layers >= 50 else BasicBlock
        channels = 64
        self.stages, self.stage_channels = [], []
        for s, depth in enumerate(depths):
            names = []
            for i in range(depth):
                name = f"bb_{s}_{i}"
                stride = stage_stride if i == 0 and s != 0 else 1
                self.add_module(name, self.make_block(block, channels, filters[s], stride,
                                                      shortcut=i != 0, if_first=s == i == 0,
                                                      stage=s))
                channels = filters[s] * block.expansion
                names.append(name)
            self.stages.append(names)
            self.stage_channels.append(channels)

    def build_stem(self, in_channels, stride):
        """The deep stem: three 3x3 convs (64 channels out)."""
        self.conv1_1 = ConvBNLayer(in_channels, 32, 3, stride, act="relu")
        self.conv1_2 = ConvBNLayer(32, 32, 3, act="relu")
        self.conv1_3 = ConvBNLayer(32, 64, 3, act="relu")

    def make_block(self, block, cin, cout, stride, shortcut, if_first, stage):
        return block(cin, cout, stride, shortcut=shortcut, if_first=if_first)

    def stem_convs(self, x):
        return self.conv1_3(self.conv1_2(self.conv1_1(x)))

    def stem(self, x):
        return self.pool2d_max(self.stem_convs(x))

    def run_stage(self, s, x):
        for name in self.stages[s]:
            x = getattr(self, name)(x)
        return x


@register("Backbone", "ResNet_vd")
class ResNet_vd(_ResNetVd):
    """Detection ResNet_vd: returns the stage outputs listed in ``out_indices`` (strides 4, 8,
    16, 32)."""

    def __init__(self, in_channels=3, layers=50, dcn_stage=None, out_indices=None, **_):
        # Paddle only builds deformable convs into bottleneck blocks (layers >= 50); for 18/34
        # it ignores dcn_stage, and so do we.
        self.dcn_stage = list(dcn_stage) if dcn_stage else [False] * 4
        super().__init__(in_channels, layers, stem_stride=2, stage_stride=2)
        self.out_indices = list(out_indices) if out_indices is not None else [0, 1, 2, 3]
        self.out_channels = [c for i, c in enumerate(self.stage_channels) if i in self.out_indices]

    def make_block(self, block, cin, cout, stride, shortcut, if_first, stage):
        if block is BottleneckBlock and self.dcn_stage[stage]:
            return block(cin, cout, stride, shortcut=shortcut, if_first=if_first, is_dcn=True)
        return block(cin, cout, stride, shortcut=shortcut, if_first=if_first)

    def forward(self, x):
        x = self.stem(x)
        outs = []
        for s in range(len(self.stages)):
            x = self.run_stage(s, x)
            if s in self.out_indices:
                outs.append(x)
        return outs


@register("Backbone", "ResNet@rec")
@register("Backbone", "ResNet@cls")
class RecResNet_vd(_ResNetVd):
    """Recognition ResNet_vd (PaddleOCR's rec ``ResNet``): keeps the width resolution (stage
    strides (2, 1)) and ends with a 2x2 max pool: a 32-pixel-high line becomes height 1."""

    def __init__(self, in_channels=3, layers=50, **_):
        super().__init__(in_channels, layers, stem_stride=1, stage_stride=(2, 1))
        self.out_pool = nn.MaxPool2d(2, 2, 0)
        # PaddleOCR reports num_filters[-1] (512) even for bottleneck depths, whose real width is
        # 2048; the real width is what a following neck needs.
        self.out_channels = self.stage_channels[-1]

    def forward(self, x):
        x = self.stem(x)
        for s in range(len(self.stages)):
            x = self.run_stage(s, x)
        return self.out_pool(x)


@register("Backbone", "ResNet_SAST")
class ResNet_SAST(_ResNetVd):
    """SAST's ResNet_vd (backbones/det_resnet_vd_sast.py): for 50 layers a fifth bottleneck
    stage (3 blocks of width 512, stride 64), and the outputs SASTFPN fuses: the input image,
    the stem before its max pool (stride 2) and every stage (strides 4 to 64)."""

    def __init__(self, in_channels=3, layers=50, **_):
        if layers not in (50, 152, 200, 101):
            # PaddleOCR's ResNet_SAST only builds a working network for bottleneck depths
            # (its 34-layer branch indexes past its channel list); SASTFPN needs 7 outputs.
            raise ValueError(f"ResNet_SAST supports layers 50, 101, 152, 200, not {layers}")
        depths = [3, 4, 6, 3, 3] if layers == 50 else DEPTHS[layers]
        super().__init__(in_channels, layers, stem_stride=2, stage_stride=2, depths=depths,
                         filters=NUM_FILTERS + [512])
        self.out_channels = [in_channels, 64] + self.stage_channels

    def forward(self, x):
        outs = [x]
        x = self.stem_convs(x)
        outs.append(x)
        x = self.pool2d_max(x)
        for s in range(len(self.stages)):
            x = self.run_stage(s, x)
            outs.append(x)
        return outs
