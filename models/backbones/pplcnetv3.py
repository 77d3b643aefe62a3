"""PPLCNetV3 (PP-OCRv3/v4/v5 mobile det and rec backbones), after PaddleOCR's rec_lcnetv3.py.

Rep layers come in two forms with the same outputs: the training form (BN branches, as in
PaddleOCR's training checkpoints) and the deploy form (one fused ``reparam_conv``, as in the
official inference exports). ``reparameterize()`` turns the first into the second.
"""

import torch
from torch import nn
import torch.nn.functional as F

from ..layers import ConvBNLayer, SEModule, batch_norm
from ..layers import make_divisible as _make_divisible
from ..registry import register

def make_divisible16(v):
    return _make_divisible(v, 16)  # PPLCNetV3 rounds channels to multiples of 16


# stage -> [kernel, in_c, out_c, stride, use_se]
NET_CONFIG_DET = {
    "blocks2": [[3, 16, 32, 1, False]],
    "blocks3": [[3, 32, 64, 2, False], [3, 64, 64, 1, False]],
    "blocks4": [[3, 64, 128, 2, False], [3, 128, 128, 1, False]],
    "blocks5": [[3, 128, 256, 2, False]] + [[5, 256, 256, 1, False]] * 4,
    "blocks6": [[5, 256, 512, 2, True], [5, 512, 512, 1, True],
                [5, 512, 512, 1, False], [5, 512, 512, 1, False]],
}
NET_CONFIG_REC = {
    "blocks2": [[3, 16, 32, 1, False]],
    "blocks3": [[3, 32, 64, 1, False], [3, 64, 64, 1, False]],
    "blocks4": [[3, 64, 128, (2, 1), False], [3, 128, 128, 1, False]],
    "blocks5": [[3, 128, 256, (1, 2), False]] + [[5, 256, 256, 1, False]] * 4,
    "blocks6": [[5, 256, 512, (2, 1), True], [5, 512, 512, 1, True],
                [5, 512, 512, (2, 1), False], [5, 512, 512, 1, False]],
}
DET_OUT_CHANNELS = [16, 24, 56, 480]


class LearnableAffineBlock(nn.Module):
    """y = scale * x + bias with two learnable scalars."""

    def __init__(self, scale_value=1.0, bias_value=0.0):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor([scale_value]))
        self.bias = nn.Parameter(torch.tensor([bias_value]))

    def forward(self, x):
        return self.scale * x + self.bias

    def conv_affine(self):
        """(scale, shift): where this block reads a conv's output alone (after each rep
        layer's conv), ptocr.load's fast form folds it into that conv (models/fuse.py)."""
        return self.scale, self.bias


class Act(nn.Module):
    def __init__(self, act="hswish"):
        super().__init__()
        self.act = nn.Hardswish() if act == "hswish" else nn.ReLU()
        self.lab = LearnableAffineBlock()

    def forward(self, x):
        return self.lab(self.act(x))


def _is_stride2(stride):
    return stride == 2 or stride == (2, 2) or stride == [2, 2]


class LearnableRepLayer(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, groups=1,
                 num_conv_branches=1, deploy=False):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.groups = kernel_size, stride, groups
        self.padding = (kernel_size - 1) // 2
        if deploy:
            self.reparam_conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride,
                                          self.padding, groups=groups)
        else:
            self.identity = (batch_norm(in_channels)
                             if out_channels == in_channels and stride == 1 else None)
            self.conv_kxk = nn.ModuleList(
                ConvBNLayer(in_channels, out_channels, kernel_size, stride, groups=groups)
                for _ in range(num_conv_branches))
            self.conv_1x1 = (ConvBNLayer(in_channels, out_channels, 1, stride, groups=groups)
                             if kernel_size > 1 else None)
        self.lab = LearnableAffineBlock()
        # Paddle skips the activation after stride-2 layers; its parameters exist there but
        # are never used, so we do not hold them (see paddle_unused).
        self.act = None if _is_stride2(stride) else Act()

    def paddle_unused(self):
        return ["act.lab.scale", "act.lab.bias"] if self.act is None else []

    def forward(self, x):
        if hasattr(self, "reparam_conv"):
            out = self.reparam_conv(x)
        else:
            out = sum(conv(x) for conv in self.conv_kxk)
            if self.conv_1x1 is not None:
                out = out + self.conv_1x1(x)
            if self.identity is not None:
                out = out + self.identity(x)
        out = self.lab(out)
        return self.act(out) if self.act is not None else out

    @torch.no_grad()
    def reparameterize(self):
        """Fuse the BN branches into one conv with bias (PaddleOCR's ``rep()``)."""
        if hasattr(self, "reparam_conv"):
            return
        kernel, bias = 0, 0
        for branch in self.conv_kxk:
            k, b = _fuse_conv_bn(branch.conv.weight, branch.bn)
            kernel, bias = kernel + k, bias + b
        if self.conv_1x1 is not None:
            k, b = _fuse_conv_bn(self.conv_1x1.conv.weight, self.conv_1x1.bn)
            pad = self.kernel_size // 2
            kernel, bias = kernel + F.pad(k, [pad, pad, pad, pad]), bias + b
        if self.identity is not None:
            k, b = _fuse_conv_bn(self._identity_kernel(), self.identity)
            kernel, bias = kernel + k, bias + b
        conv = nn.Conv2d(self.in_channels, self.out_channels, self.kernel_size, self.stride,
                         self.padding, groups=self.groups)
        conv.weight.copy_(kernel)
        conv.bias.copy_(bias)
        self.reparam_conv = conv.to(kernel.device)
        del self.conv_kxk, self.conv_1x1, self.identity

    def _identity_kernel(self):
        per_group = self.in_channels // self.groups
        ref = self.identity.weight
        kernel = torch.zeros(self.in_channels, per_group, self.kernel_size, self.kernel_size,
                             dtype=ref.dtype, device=ref.device)
        center = self.kernel_size // 2
        for i in range(self.in_channels):
            kernel[i, i % per_group, center, center] = 1
        return kernel


def _fuse_conv_bn(kernel, bn):
    std = (bn.running_var + bn.eps).sqrt()
    scale = bn.weight / std
    return kernel * scale.reshape(-1, 1, 1, 1), bn.bias - bn.running_mean * scale




class LCNetV3Block(nn.Module):
    def __init__(self, in_channels, out_channels, stride, dw_size, use_se=False,
                 conv_kxk_num=4, deploy=False):
        super().__init__()
        self.dw_conv = LearnableRepLayer(in_channels, in_channels, dw_size, stride,
                                         groups=in_channels, num_conv_branches=conv_kxk_num,
                                         deploy=deploy)
        self.se = SEModule(in_channels, slope=0.1666667) if use_se else None  # paddle's default
        self.pw_conv = LearnableRepLayer(in_channels, out_channels, 1, 1,
                                         num_conv_branches=conv_kxk_num, deploy=deploy)

    def forward(self, x):
        x = self.dw_conv(x)
        if self.se is not None:
            x = self.se(x)
        return self.pw_conv(x)


@register("Backbone")
class PPLCNetV3(nn.Module):
    # ptocr.load's fast form: channels_last (oneDNN's depthwise and 1x1 convs run NHWC
    # without reorders); faster in eager on a quiet 2-core machine (README Benchmarks)
    prefers_channels_last = True

    def __init__(self, in_channels=3, scale=1.0, conv_kxk_num=4, det=False, deploy=False,
                 **_):
        super().__init__()
        self.det = det
        config = NET_CONFIG_DET if det else NET_CONFIG_REC
        self.conv1 = ConvBNLayer(in_channels, make_divisible16(16 * scale), 3, 2)
        for stage in ("blocks2", "blocks3", "blocks4", "blocks5", "blocks6"):
            setattr(self, stage, nn.Sequential(*[
                LCNetV3Block(make_divisible16(cin * scale), make_divisible16(cout * scale), s, k,
                             se, conv_kxk_num, deploy)
                for k, cin, cout, s, se in config[stage]]))
        if det:
            stage_channels = [make_divisible16(config[s][-1][2] * scale)
                              for s in ("blocks3", "blocks4", "blocks5", "blocks6")]
            self.out_channels = [int(c * scale) for c in DET_OUT_CHANNELS]
            self.layer_list = nn.ModuleList(
                nn.Conv2d(cin, cout, 1) for cin, cout in zip(stage_channels, self.out_channels))
        else:
            self.out_channels = make_divisible16(512 * scale)

    def paddle_unused(self):
        # Old PaddleOCR versions gave conv1 an activation whose parameters exports list but
        # the network never applied.
        return ["conv1.hardswish.scale", "conv1.hardswish.bias"]

    def forward(self, x):
        x = self.blocks2(self.conv1(x))
        outs = []
        for stage in (self.blocks3, self.blocks4, self.blocks5, self.blocks6):
            x = stage(x)
            outs.append(x)
        if self.det:
            return [conv(o) for conv, o in zip(self.layer_list, outs)]
        if self.training:
            return F.adaptive_avg_pool2d(x, [1, 40])
        return F.avg_pool2d(x, [3, 2])
