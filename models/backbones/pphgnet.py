"""PP-HGNet (PP-OCRv4 server det/rec) and PP-HGNetV2 (PP-OCRv5 server det/rec) backbones,
after PaddleOCR's backbones/rec_hgnet.py and backbones/rec_pphgnetv2.py.

Both stack HG blocks: a chain of convs whose outputs are all concatenated with the block
input and aggregated by 1x1 convs. V1 aggregates with one conv and an ESE attention; V2 with
a squeeze and an excitation conv, and has a richer stem (two branches, TF-style SAME padding).
"""

import math
from functools import partial

import torch
from torch import nn
import torch.nn.functional as F

from ..layers import batch_norm
from ..registry import register
from .pplcnetv3 import LearnableAffineBlock


def same_pad(x, kernel_size, stride=1, value=0.0):
    """Paddle's padding="SAME": output size ceil(in / stride), any odd pixel padded after."""
    pads = []
    for size in (x.shape[-1], x.shape[-2]):  # F.pad order: last dim first
        total = max((math.ceil(size / stride) - 1) * stride + kernel_size - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads, value=value)


class ConvBNAct(nn.Module):
    """conv (no bias) -> BN -> optional relu -> optional learnable affine (``lab``).

    ``padding="same"`` reproduces Paddle's SAME padding (asymmetric for even kernels)."""

    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, padding=None,
                 groups=1, use_act=True, use_lab=False):
        super().__init__()
        self.same = isinstance(padding, str)
        self.kernel_size, self.stride = kernel_size, stride
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride,
                              0 if self.same else (kernel_size - 1) // 2, groups=groups,
                              bias=False)
        self.bn = batch_norm(out_channels)
        self.act = nn.ReLU() if use_act else None
        self.lab = LearnableAffineBlock() if use_act and use_lab else None

    def forward(self, x):
        if self.same:
            x = same_pad(x, self.kernel_size, self.stride)
        x = self.bn(self.conv(x))
        if self.act is not None:
            x = self.act(x)
        if self.lab is not None:
            x = self.lab(x)
        return x


class LightConvBNAct(nn.Module):
    """1x1 conv-BN (no act) then depthwise kxk conv-BN-act."""

    def __init__(self, in_channels, out_channels, kernel_size, use_lab=False, **_):
        super().__init__()
        self.conv1 = ConvBNAct(in_channels, out_channels, 1, use_act=False, use_lab=use_lab)
        self.conv2 = ConvBNAct(out_channels, out_channels, kernel_size, groups=out_channels,
                               use_act=True, use_lab=use_lab)

    def forward(self, x):
        return self.conv2(self.conv1(x))


class ESEModule(nn.Module):
    """Effective squeeze-excitation: x * sigmoid(conv1x1(global average))."""

    def __init__(self, channels):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.conv = nn.Conv2d(channels, channels, 1)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x):
        return x * self.sigmoid(self.conv(self.avg_pool(x)))


def dense_concat(layers, x):
    """Run the layer chain; concatenate the input and every layer's output on channels."""
    outs = [x]
    for layer in layers:
        x = layer(x)
        outs.append(x)
    return torch.cat(outs, dim=1)


class HG_Block(nn.Module):
    """V1 block: 3x3 ConvBNAct chain, 1x1 aggregation, ESE; residual when ``identity``."""

    def __init__(self, in_channels, mid_channels, out_channels, layer_num, identity=False):
        super().__init__()
        self.identity = identity
        self.layers = nn.ModuleList(
            ConvBNAct(in_channels if i == 0 else mid_channels, mid_channels, 3)
            for i in range(layer_num))
        self.aggregation_conv = ConvBNAct(in_channels + layer_num * mid_channels,
                                          out_channels, 1)
        self.att = ESEModule(out_channels)

    def forward(self, x):
        out = self.att(self.aggregation_conv(dense_concat(self.layers, x)))
        return out + x if self.identity else out


class HGV2_Block(nn.Module):
    """V2 block: (light) conv chain, 1x1 squeeze to out/2 and excitation back to out."""

    def __init__(self, in_channels, mid_channels, out_channels, layer_num, identity=False,
                 kernel_size=3, light_block=True, use_lab=False):
        super().__init__()
        self.identity = identity
        layer = LightConvBNAct if light_block else ConvBNAct
        self.layers = nn.ModuleList(
            layer(in_channels if i == 0 else mid_channels, mid_channels,
                  kernel_size=kernel_size, use_lab=use_lab)
            for i in range(layer_num))
        total = in_channels + layer_num * mid_channels
        self.aggregation_squeeze_conv = ConvBNAct(total, out_channels // 2, 1, use_lab=use_lab)
        self.aggregation_excitation_conv = ConvBNAct(out_channels // 2, out_channels, 1,
                                                     use_lab=use_lab)

    def forward(self, x):
        out = self.aggregation_squeeze_conv(dense_concat(self.layers, x))
        out = self.aggregation_excitation_conv(out)
        return out + x if self.identity else out


class HG_Stage(nn.Module):
    """Optional depthwise stride conv (``downsample``), then HG blocks (the first one changes
    channels, the rest are residual). Same layout in V1 (HG_Stage) and V2 (HGV2_Stage)."""

    def __init__(self, in_channels, mid_channels, out_channels, block_num, layer_num,
                 downsample=True, stride=2, block=HG_Block, use_lab=False):
        super().__init__()
        self.downsample = (ConvBNAct(in_channels, in_channels, 3, stride, groups=in_channels,
                                     use_act=False, use_lab=use_lab)
                           if downsample else None)
        self.blocks = nn.Sequential(*[
            block(in_channels if i == 0 else out_channels, mid_channels, out_channels,
                  layer_num, identity=i > 0)
            for i in range(block_num)])

    def forward(self, x):
        if self.downsample is not None:
            x = self.downsample(x)
        return self.blocks(x)


def _rec_pool(x, training):
    # PaddleOCR's recognition backbones end in a fixed [3, 2] average pool at inference
    # (48-pixel lines reach it 3 rows high); training pools adaptively to 1x40.
    return F.adaptive_avg_pool2d(x, [1, 40]) if training else F.avg_pool2d(x, [3, 2])


class PPHGNet(nn.Module):
    """stage_config: {stageN: [in, mid, out, blocks, downsample, stride]}."""

    def __init__(self, stem_channels, stage_config, layer_num, in_channels=3, det=False,
                 out_indices=None, **_):
        super().__init__()
        self.det = det
        self.out_indices = list(out_indices) if out_indices is not None else [0, 1, 2, 3]
        chans = [in_channels] + list(stem_channels)
        self.stem = nn.Sequential(*[
            ConvBNAct(chans[i], chans[i + 1], 3, stride=2 if i == 0 else 1)
            for i in range(len(chans) - 1)])
        self.pool = nn.MaxPool2d(3, 2, 1) if det else None
        self.stages = nn.ModuleList()
        self.out_channels = []
        for i, (cin, mid, cout, blocks, down, stride) in enumerate(stage_config.values()):
            self.stages.append(HG_Stage(cin, mid, cout, blocks, layer_num, down, stride))
            if i in self.out_indices:
                self.out_channels.append(cout)
        if not det:
            self.out_channels = list(stage_config.values())[-1][2]

    def forward(self, x):
        x = self.stem(x)
        if self.pool is not None:
            x = self.pool(x)
        outs = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in self.out_indices:
                outs.append(x)
        return outs if self.det else _rec_pool(x, self.training)


class StemBlock(nn.Module):
    """stem1 (stride 2), then a max-pool branch and a 2x2-conv branch concatenated, stem3
    (stride 2, or 1 for text recognition) and stem4."""

    def __init__(self, in_channels, mid_channels, out_channels, use_lab=False, text_rec=False):
        super().__init__()
        self.stem1 = ConvBNAct(in_channels, mid_channels, 3, 2, use_lab=use_lab)
        self.stem2a = ConvBNAct(mid_channels, mid_channels // 2, 2, 1, "same", use_lab=use_lab)
        self.stem2b = ConvBNAct(mid_channels // 2, mid_channels, 2, 1, "same", use_lab=use_lab)
        self.stem3 = ConvBNAct(mid_channels * 2, mid_channels, 3, 1 if text_rec else 2,
                               use_lab=use_lab)
        self.stem4 = ConvBNAct(mid_channels, out_channels, 1, use_lab=use_lab)

    def forward(self, x):
        x = self.stem1(x)
        x2 = self.stem2b(self.stem2a(x))
        # Paddle's MaxPool2D(2, stride 1, padding="SAME"): the pad never wins the max
        x1 = F.max_pool2d(same_pad(x, 2, value=float("-inf")), 2, 1)
        return self.stem4(self.stem3(torch.cat([x1, x2], dim=1)))


class PPHGNetV2(nn.Module):
    """stage_config: {stageN: [in, mid, out, blocks, downsample, light_block, kernel,
    layer_num, stride]}."""

    def __init__(self, stage_config, stem_channels=(3, 32, 64), use_lab=False, det=False,
                 text_rec=False, out_indices=None, **_):
        super().__init__()
        self.det, self.text_rec, self.use_lab = det, text_rec, use_lab
        self.out_indices = list(out_indices) if out_indices is not None else [0, 1, 2, 3]
        self.stem = StemBlock(stem_channels[0], stem_channels[1], stem_channels[2], use_lab, text_rec)
        self.stages = nn.ModuleList()
        self.out_channels = []
        for i, cfg in enumerate(stage_config.values()):
            cin, mid, cout, blocks, down, light, kernel, layers, stride = cfg
            block = partial(HGV2_Block, kernel_size=kernel, light_block=light, use_lab=use_lab)
            self.stages.append(HG_Stage(cin, mid, cout, blocks, layers, down, stride, block,
                                        use_lab))
            if i in self.out_indices:
                self.out_channels.append(cout)
        if not det:
            self.out_channels = list(stage_config.values())[-1][2]

    def paddle_unused(self):
        # PaddleOCR builds PaddleClas's classifier tail (last_conv, and fc unless det) even
        # for OCR, where forward never reaches it; training checkpoints carry it.
        names = ["last_conv.weight", "fc.weight", "fc.bias"]
        return names + (["lab.scale", "lab.bias"] if self.use_lab else [])

    def forward(self, x):
        x = self.stem(x)
        outs = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in self.out_indices:
                outs.append(x)
        if self.det:
            return outs
        return _rec_pool(x, self.training) if self.text_rec else x


@register("Backbone")
def PPHGNet_small(in_channels=3, det=False, **kwargs):
    # stage: [in, mid, out, blocks, downsample, stride]
    if det:
        stages = {"stage1": [128, 128, 256, 1, False, 2], "stage2": [256, 160, 512, 1, True, 2],
                  "stage3": [512, 192, 768, 2, True, 2], "stage4": [768, 224, 1024, 1, True, 2]}
    else:
        stages = {"stage1": [128, 128, 256, 1, True, [2, 1]],
                  "stage2": [256, 160, 512, 1, True, [1, 2]],
                  "stage3": [512, 192, 768, 2, True, [2, 1]],
                  "stage4": [768, 224, 1024, 1, True, [2, 1]]}
    return PPHGNet([64, 64, 128], stages, layer_num=6, in_channels=in_channels, det=det,
                   **kwargs)


@register("Backbone")
def PPHGNetV2_B4(in_channels=3, det=False, text_rec=False, stage_num_blocks=None, **kwargs):
    """``stage_num_blocks`` is ptocr's, not PaddleOCR's: other HG block counts per stage (B4
    has 1, 1, 3, 1), as transformers' HGNetV2 config names them, for depth-shortened networks
    (a transformers folder of one reads back; the tests' small twins)."""
    # stage: [in, mid, out, blocks, downsample, light_block, kernel, layer_num, stride]
    if det:
        stages = {"stage1": [48, 48, 128, 1, False, False, 3, 6, 2],
                  "stage2": [128, 96, 512, 1, True, False, 3, 6, 2],
                  "stage3": [512, 192, 1024, 3, True, True, 5, 6, 2],
                  "stage4": [1024, 384, 2048, 1, True, True, 5, 6, 2]}
    else:
        stages = {"stage1": [48, 48, 128, 1, True, False, 3, 6, [2, 1]],
                  "stage2": [128, 96, 512, 1, True, False, 3, 6, [1, 2]],
                  "stage3": [512, 192, 1024, 3, True, True, 5, 6, [2, 1]],
                  "stage4": [1024, 384, 2048, 1, True, True, 5, 6, [2, 1]]}
    for stage, n in zip(stages.values(), stage_num_blocks or ()):
        stage[3] = int(n)
    return PPHGNetV2(stages, stem_channels=[in_channels, 32, 48], use_lab=False, det=det,
                     text_rec=text_rec, **kwargs)


# PaddleDetection's ppdet/modeling/backbones/hgnet_v2.py (the RT-DETR and PP-DocLayout-L
# backbone) is the same network with the same parameter names: its HG_Block is the V2 block
# above, every stage downsamples by 2, and it builds no classifier tail. Its ``arch`` table:
# stage: [in, mid, out, blocks, downsample, light_block, kernel, layer_num]
PPDET_HGNETV2_ARCHS = {
    "S": ([3, 24, 32], [[32, 32, 64, 1, False, False, 3, 3], [64, 48, 256, 1, True, False, 3, 3],
                        [256, 96, 512, 2, True, True, 5, 3],
                        [512, 192, 1024, 1, True, True, 5, 3]]),
    "M": ([3, 24, 32], [[32, 32, 96, 1, False, False, 3, 4], [96, 64, 384, 1, True, False, 3, 4],
                        [384, 128, 768, 3, True, True, 5, 4],
                        [768, 256, 1536, 1, True, True, 5, 4]]),
    "L": ([3, 32, 48], [[48, 48, 128, 1, False, False, 3, 6],
                        [128, 96, 512, 1, True, False, 3, 6],
                        [512, 192, 1024, 3, True, True, 5, 6],
                        [1024, 384, 2048, 1, True, True, 5, 6]]),
    "X": ([3, 32, 64], [[64, 64, 128, 1, False, False, 3, 6],
                        [128, 128, 512, 2, True, False, 3, 6],
                        [512, 256, 1024, 5, True, True, 5, 6],
                        [1024, 512, 2048, 2, True, True, 5, 6]]),
    "H": ([3, 48, 96], [[96, 96, 192, 2, False, False, 3, 6],
                        [192, 192, 512, 3, True, False, 3, 6],
                        [512, 384, 1024, 6, True, True, 5, 6],
                        [1024, 768, 2048, 3, True, True, 5, 6]]),
}


class PPDetHGNetV2(PPHGNetV2):
    """PaddleDetection's PPHGNetV2: returns the stages in ``return_idx``; no classifier tail."""

    def paddle_unused(self):
        return []


@register("Backbone", "PPHGNetV2")
def PPHGNetV2_ppdet(arch="L", use_lab=False, return_idx=(1, 2, 3), stem_channels=None,
                    stage_config=None, **_training_only):
    """``arch`` names a row of PaddleDetection's table; ``stem_channels`` / ``stage_config``
    (8 values a stage, the table's layout) override it for configurations outside the table."""
    stem, stages = PPDET_HGNETV2_ARCHS[arch] if arch in PPDET_HGNETV2_ARCHS else (None, None)
    stem, stages = stem_channels or stem, stage_config or stages
    if stem is None or stages is None:
        raise ValueError(f"PPHGNetV2: unknown arch {arch!r} and no stage_config given")
    if isinstance(stages, dict):
        stages = list(stages.values())
    config = {f"stage{i + 1}": list(s) + [2] for i, s in enumerate(stages)}
    return PPDetHGNetV2(config, stem_channels=list(stem), use_lab=use_lab, det=True,
                        out_indices=list(return_idx))
