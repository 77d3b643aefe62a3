"""The visual backbone of LayoutXLM / LayoutLMv2, after PaddleNLP's
transformers/layoutxlm/visual_backbone.py (a port of detectron2's ResNet + FPN) and its
``VisualBackbone`` in layoutxlm/modeling.py. Module tree and parameter names are PaddleNLP's:
``visual.backbone.bottom_up.res4.22.conv2.norm._mean``, ``visual.backbone.fpn_lateral2.weight``,
``visual.pixel_mean``.

PaddleNLP reads the network's size from visual_backbone.yaml (MODEL.RESNETS / MODEL.FPN /
PIXEL_MEAN / PIXEL_STD: a ResNeXt-101 32x8d FPN with 256 channels, frozen batch norm); here
the same keys, lower-cased, are constructor arguments with those defaults (``fpn_out_channels``
is FPN.OUT_CHANNELS), so a checkpoint's sizes can be read back from its weights.

Only the finest FPN level (p2) feeds the model: the FPN's other output convolutions and the
max-pooled p6 are computed by PaddleNLP and thrown away, and inference exports drop them, so
they are not held here (``paddle_unused``)."""

import torch
import torch.nn.functional as F
from torch import nn

from ..layers import batch_norm
from ..registry import register

# ResNet blocks per stage (res2..res5) by depth, as PaddleNLP's build_resnet_backbone
STAGE_BLOCKS = {50: [3, 4, 6, 3], 101: [3, 4, 23, 3], 152: [3, 8, 36, 3]}


class Conv2d(nn.Conv2d):
    """detectron2's Conv2d: a convolution with its norm held as ``.norm`` (FrozenBatchNorm:
    paddle's BatchNorm with use_global_stats, epsilon 1e-5; eval-mode BatchNorm2d is the
    same affine map)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, groups=1,
                 dilation=1, bias=False, norm=True):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                         groups=groups, dilation=dilation, bias=bias)
        self.norm = batch_norm(out_channels) if norm else None

    def forward(self, x):
        x = super().forward(x)
        return self.norm(x) if self.norm is not None else x


class BottleneckBlock(nn.Module):
    """1x1 -> grouped 3x3 (the stride, stride_in_1x1 False) -> 1x1, projection shortcut when
    the channels change. PaddleNLP runs the shortcut after the three convolutions."""

    def __init__(self, in_channels, out_channels, bottleneck_channels, stride=1, num_groups=1,
                 stride_in_1x1=False, dilation=1):
        super().__init__()
        self.shortcut = (Conv2d(in_channels, out_channels, 1, stride=stride)
                         if in_channels != out_channels else None)
        stride_1x1, stride_3x3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = Conv2d(in_channels, bottleneck_channels, 1, stride=stride_1x1)
        self.conv2 = Conv2d(bottleneck_channels, bottleneck_channels, 3, stride=stride_3x3,
                            padding=dilation, groups=num_groups, dilation=dilation)
        self.conv3 = Conv2d(bottleneck_channels, out_channels, 1)

    def forward(self, x):
        out = F.relu(self.conv2(F.relu(self.conv1(x))))
        out = self.conv3(out)
        shortcut = self.shortcut(x) if self.shortcut is not None else x
        return F.relu(out + shortcut)


class BasicStem(nn.Module):
    """7x7/2 conv + norm, relu, 3x3/2 max pool."""

    def __init__(self, in_channels=3, out_channels=64):
        super().__init__()
        self.conv1 = Conv2d(in_channels, out_channels, 7, stride=2, padding=3)

    def forward(self, x):
        return F.max_pool2d(F.relu(self.conv1(x)), kernel_size=3, stride=2, padding=1)


class ResNet(nn.Module):
    """Stem then stages res2..res5 (nn.Sequential, PaddleNLP's names); returns every stage's
    output."""

    def __init__(self, stage_blocks, stem_out_channels, res2_out_channels, bottleneck_channels,
                 num_groups, stride_in_1x1, res5_dilation):
        super().__init__()
        self.stem = BasicStem(3, stem_out_channels)
        in_ch, out_ch, mid = stem_out_channels, res2_out_channels, bottleneck_channels
        self.stage_names = []
        for i, n in enumerate(stage_blocks):
            name = f"res{i + 2}"
            dilation = res5_dilation if name == "res5" else 1
            first_stride = 1 if i == 0 or dilation == 2 else 2
            blocks = []
            for j in range(n):
                blocks.append(BottleneckBlock(in_ch, out_ch, mid, first_stride if j == 0 else 1,
                                              num_groups, stride_in_1x1, dilation))
                in_ch = out_ch
            self.add_module(name, nn.Sequential(*blocks))
            self.stage_names.append(name)
            out_ch, mid = out_ch * 2, mid * 2
        self.out_channels = [res2_out_channels * 2 ** i for i in range(len(stage_blocks))]

    def forward(self, x):
        x = self.stem(x)
        outs = []
        for name in self.stage_names:
            x = getattr(self, name)(x)
            outs.append(x)
        return outs


class FPN(nn.Module):
    """Top-down feature pyramid over res2..res5 (lateral 1x1 convs with bias, nearest 2x
    upsampling, sum), returning p2 only (see the module docstring)."""

    def __init__(self, bottom_up, out_channels, fuse_type="sum"):
        super().__init__()
        if fuse_type not in ("sum", "avg"):
            raise ValueError(f"FPN fuse_type must be sum or avg, not {fuse_type!r}")
        self.bottom_up = bottom_up
        self.fuse_type = fuse_type
        self.levels = list(range(2, 2 + len(bottom_up.out_channels)))
        for level, ch in zip(self.levels, bottom_up.out_channels):
            self.add_module(f"fpn_lateral{level}", Conv2d(ch, out_channels, 1, bias=True,
                                                          norm=False))
        self.add_module("fpn_output2", Conv2d(out_channels, out_channels, 3, padding=1,
                                              bias=True, norm=False))

    def paddle_unused(self):
        return [f"fpn_output{level}.{p}" for level in self.levels[1:] for p in ("weight", "bias")]

    def forward(self, x):
        features = self.bottom_up(x)
        prev = None
        for level, feat in zip(reversed(self.levels), reversed(features)):
            lateral = getattr(self, f"fpn_lateral{level}")(feat)
            if prev is None:
                prev = lateral
            else:
                prev = lateral + F.interpolate(prev, scale_factor=2.0, mode="nearest")
                if self.fuse_type == "avg":
                    prev = prev / 2
        return self.fpn_output2(prev)


@register("Backbone")
class VisualBackbone(nn.Module):
    """Image [B, 3, H, W] (PaddleOCR feeds its KIE image: RGB, resized to 224x224, already
    normalised once by NormalizeImage) -> (x - pixel_mean) / pixel_std -> ResNeXt-FPN p2 ->
    adaptive average pool to ``pool_shape`` -> [B, pool_h * pool_w, fpn_out_channels]."""

    def __init__(self, pool_shape=(7, 7), depth=101, num_groups=32, width_per_group=8,
                 stem_out_channels=64, res2_out_channels=256, stride_in_1x1=False,
                 res5_dilation=1, fpn_out_channels=256, fpn_fuse_type="sum",
                 pixel_mean=(103.53, 116.28, 123.675), pixel_std=(57.375, 57.12, 58.395),
                 blocks=None, res2_bottleneck_channels=None):
        super().__init__()
        if depth not in STAGE_BLOCKS:
            raise ValueError(f"visual backbone depth {depth}: PaddleNLP builds "
                             f"{', '.join(map(str, STAGE_BLOCKS))} (bottleneck blocks)")
        stage_blocks = list(STAGE_BLOCKS[depth])
        for i, key in enumerate(("res2", "res3", "res4", "res5")):  # read back from weights
            if blocks and blocks.get(key):
                stage_blocks[i] = int(blocks[key])
        if res2_bottleneck_channels:  # num_groups * width_per_group, as the weights show it
            num_groups = int(res2_bottleneck_channels) // int(width_per_group)
        self.backbone = FPN(ResNet(stage_blocks, stem_out_channels, res2_out_channels,
                                   num_groups * width_per_group, num_groups, stride_in_1x1,
                                   res5_dilation), fpn_out_channels, fpn_fuse_type)
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean, dtype=torch.float32)
                             .reshape(-1, 1, 1))
        self.register_buffer("pixel_std", torch.tensor(pixel_std, dtype=torch.float32)
                             .reshape(-1, 1, 1))
        self.pool_shape = tuple(int(v) for v in pool_shape[:2])
        self.out_channels = fpn_out_channels

    def forward(self, images):
        x = (images.to(self.pixel_mean.dtype) - self.pixel_mean) / self.pixel_std
        x = F.adaptive_avg_pool2d(self.backbone(x), self.pool_shape)
        return x.flatten(2).transpose(1, 2)
