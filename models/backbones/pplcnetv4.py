"""PPLCNetV4 (PP-OCRv6 recognition backbone), after PaddleOCR's rec_lcnetv4.py.

MetaFormer-style blocks: a token mixer (depthwise conv, re-parameterizable when the block keeps
its shape; optional SE) and a channel mixer (1x1 expand -> GELU -> 1x1 compress, residual when
the block keeps its shape). Two forms with the same outputs, as PaddleOCR's ``rep()`` leaves
them: the training form (conv + BN pairs, RepDWConv's three branches) and the deploy form
(every conv + BN fused into one conv with bias, RepDWConv into ``reparam_conv``).
``reparameterize()`` turns the first into the second. The recognition form (det=False) pools
to one row; the detection form (det=True, PP-OCRv6 det with the RepLKFPN/RepLKPAN necks) has
the branch stem (``stem``) and four stride-2 stages, and returns their four outputs.
"""

import torch
from torch import nn
import torch.nn.functional as F

from ..layers import SEModule, batch_norm
from ..registry import register

# model_size -> stem (mid, out), stem type, stage -> [kernel, in_c, out_c, stride, use_se]
NET_CONFIG_REC = {
    "tiny": {"stem": (24, 48), "stem_type": "simple",
             "blocks2": [[3, 48, 48, 1, True]],
             "blocks3": [[3, 48, 48, 1, False]],
             "blocks4": [[3, 48, 96, (2, 1), False], [3, 96, 96, 1, True],
                         [3, 96, 96, 1, False]],
             "blocks5": [[3, 96, 160, (2, 1), False], [3, 160, 160, 1, True],
                         [3, 160, 160, 1, False], [3, 160, 160, 1, False]],
             "blocks6": []},
    "small": {"stem": (48, 96), "stem_type": "branch",
              "blocks2": [[3, 96, 96, 1, True]],
              "blocks3": [[3, 96, 96, 1, False], [3, 96, 96, 1, False]],
              "blocks4": [[3, 96, 192, (2, 1), False]] + [
                  [3, 192, 192, 1, se] for se in (True, False, True, False, True, False)],
              "blocks5": [[3, 192, 384, (2, 1), False], [3, 384, 384, 1, True],
                          [3, 384, 384, 1, False]],
              "blocks6": []},
    "medium": {"stem": (64, 128), "stem_type": "branch",
               "blocks2": [[3, 128, 128, 1, True]],
               "blocks3": [[3, 128, 256, 1, False], [3, 256, 256, 1, False],
                           [3, 256, 256, 1, True]],
               "blocks4": [[3, 256, 512, (2, 1), False]] + [
                   [3, 512, 512, 1, se] for se in (True, False, True, False, True, False)],
               "blocks5": [[3, 512, 768, (2, 1), False], [3, 768, 768, 1, True],
                           [3, 768, 768, 1, False]],
               "blocks6": []},
}
STAGES = ("blocks2", "blocks3", "blocks4", "blocks5", "blocks6")

# the detection form: stem (mid, out), then four stages at strides 4, 8, 16, 32
NET_CONFIG_DET = {
    "tiny": {"stem": (16, 32),
             "blocks_s1": [[3, 32, 32, 1, True], [3, 32, 32, 1, False]],
             "blocks_s2": [[3, 32, 48, 2, False], [3, 48, 48, 1, True], [3, 48, 48, 1, False]],
             "blocks_s3": [[3, 48, 64, 2, False]] + [
                 [3, 64, 64, 1, se] for se in (True, False, True, False)],
             "blocks_s4": [[3, 64, 160, 2, False], [3, 160, 160, 1, True],
                           [3, 160, 160, 1, False]]},
    "small": {"stem": (24, 48),
              "blocks_s1": [[3, 48, 48, 1, True], [3, 48, 48, 1, False]],
              "blocks_s2": [[3, 48, 96, 2, False], [3, 96, 96, 1, True], [3, 96, 96, 1, False]],
              "blocks_s3": [[3, 96, 192, 2, False]] + [
                  [3, 192, 192, 1, se] for se in (True, False, True, False)],
              "blocks_s4": [[3, 192, 384, 2, False], [3, 384, 384, 1, True],
                            [3, 384, 384, 1, False]]},
    "medium": {"stem": (64, 128),
               "blocks_s1": [[3, 128, 128, 1, True], [3, 128, 128, 1, False]],
               "blocks_s2": [[3, 128, 256, 2, False], [3, 256, 256, 1, True],
                             [3, 256, 256, 1, False]],
               "blocks_s3": [[3, 256, 512, 2, False]] + [
                   [3, 512, 512, 1, se] for se in (True, False, True, False)],
               "blocks_s4": [[3, 512, 896, 2, False], [3, 896, 896, 1, True],
                             [3, 896, 896, 1, False]]},
}
DET_STAGES = ("blocks_s1", "blocks_s2", "blocks_s3", "blocks_s4")


def _fuse(conv, bn):
    """(weight, bias) of conv followed by eval-mode BN."""
    scale = bn.weight / (bn.running_var + bn.eps).sqrt()
    bias = conv.bias if conv.bias is not None else 0
    return conv.weight * scale.reshape(-1, 1, 1, 1), bn.bias + (bias - bn.running_mean) * scale


def _conv_like(conv, weight, bias):
    out = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                    conv.padding, conv.dilation, conv.groups, bias=True,
                    device=weight.device, dtype=weight.dtype)
    out.weight.data.copy_(weight)
    out.bias.data.copy_(bias)
    return out


class ConvBN(nn.Module):
    """PaddleOCR's Conv2D_BN (conv without bias, BN: names ``conv``, ``bn``). PaddleOCR's
    ``fuse()`` replaces the whole layer by one conv with bias, so the deploy form of a
    ConvBN is a plain ``nn.Conv2d`` in its parent (see ``fused``)."""

    def __init__(self, in_channels, out_channels, kernel_size=1, stride=1, padding=0,
                 groups=1):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding,
                              groups=groups, bias=False)
        self.bn = batch_norm(out_channels)

    def forward(self, x):
        return self.bn(self.conv(x))

    @torch.no_grad()
    def fused(self):
        return _conv_like(self.conv, *_fuse(self.conv, self.bn))


def conv_bn(in_channels, out_channels, kernel_size=1, stride=1, padding=0, groups=1,
            deploy=False):
    if deploy:
        return nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, groups=groups)
    return ConvBN(in_channels, out_channels, kernel_size, stride, padding, groups)


class ConvBNAct(nn.Module):
    """conv -> BN -> ReLU of the branch stem; its ``rep()`` keeps the name ``conv`` (now with
    a bias) and drops ``bn``. ``same`` is Paddle's padding="SAME" for stride 1: the
    k - 1 padding rows/columns all go after the input (Paddle puts pad_total // 2 before)."""

    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, same=False,
                 deploy=False):
        super().__init__()
        self.same = same
        self.pad = kernel_size - 1 if same else 0
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride,
                              0 if same else (kernel_size - 1) // 2, bias=deploy)
        self.bn = None if deploy else batch_norm(out_channels)
        self.act = nn.ReLU()

    def forward(self, x):
        if self.pad:
            x = F.pad(x, [self.pad // 2, self.pad - self.pad // 2] * 2)
        x = self.conv(x)
        return self.act(x if self.bn is None else self.bn(x))

    @torch.no_grad()
    def reparameterize(self):
        if self.bn is not None:
            self.conv = _conv_like(self.conv, *_fuse(self.conv, self.bn))
            self.bn = None


class StemBlock(nn.Module):
    """Two-branch stem, total stride 4: stem1 (stride 2), then [max-pool | stem2a -> stem2b]
    concatenated, stem3 (stride 2), stem4 (1x1)."""

    def __init__(self, in_channels, mid_channels, out_channels, deploy=False):
        super().__init__()
        self.stem1 = ConvBNAct(in_channels, mid_channels, 3, 2, deploy=deploy)
        self.stem2a = ConvBNAct(mid_channels, mid_channels // 2, 2, 1, same=True, deploy=deploy)
        self.stem2b = ConvBNAct(mid_channels // 2, mid_channels, 2, 1, same=True, deploy=deploy)
        self.stem3 = ConvBNAct(mid_channels * 2, mid_channels, 3, 2, deploy=deploy)
        self.stem4 = ConvBNAct(mid_channels, out_channels, 1, 1, deploy=deploy)

    def forward(self, x):
        x = self.stem1(x)
        # Paddle's MaxPool2D(2, 1, padding="SAME"): one padding row/column after, never chosen
        pooled = F.max_pool2d(F.pad(x, [0, 1, 0, 1], value=float("-inf")), 2, 1)
        x = torch.cat([pooled, self.stem2b(self.stem2a(x))], dim=1)
        return self.stem4(self.stem3(x))


class RepDWConv(nn.Module):
    """bn(dw_kxk_bn(x) + dw_1x1(x) + x) in training; one depthwise ``reparam_conv`` fused."""

    def __init__(self, channels, kernel_size=3, deploy=False):
        super().__init__()
        self.channels, self.kernel_size = channels, kernel_size
        padding = (kernel_size - 1) // 2
        if deploy:
            self.reparam_conv = nn.Conv2d(channels, channels, kernel_size, 1, padding,
                                          groups=channels)
        else:
            self.conv = ConvBN(channels, channels, kernel_size, 1, padding, groups=channels)
            self.conv1 = nn.Conv2d(channels, channels, 1, groups=channels, bias=False)
            self.bn = batch_norm(channels)

    def forward(self, x):
        if hasattr(self, "reparam_conv"):
            return self.reparam_conv(x)
        return self.bn(self.conv(x) + self.conv1(x) + x)

    @torch.no_grad()
    def reparameterize(self):
        if hasattr(self, "reparam_conv"):
            return
        weight, bias = _fuse(self.conv.conv, self.conv.bn)
        p = self.kernel_size // 2
        identity = torch.ones_like(self.conv1.weight)
        weight = weight + F.pad(self.conv1.weight + identity, [p, p, p, p])
        scale = self.bn.weight / (self.bn.running_var + self.bn.eps).sqrt()
        self.reparam_conv = _conv_like(self.conv.conv, weight * scale.reshape(-1, 1, 1, 1),
                                       self.bn.bias + (bias - self.bn.running_mean) * scale)
        del self.conv, self.conv1, self.bn


class LCNetV4Block(nn.Module):
    def __init__(self, in_channels, out_channels, stride, dw_size, use_se=False,
                 expand_ratio=2, deploy=False):
        super().__init__()
        self.has_residual = in_channels == out_channels and stride == 1
        self.token_mixer = nn.Sequential()
        if self.has_residual:  # PaddleOCR's use_rep_dw is the same condition
            self.token_mixer.add_module("rep_dw", RepDWConv(in_channels, dw_size, deploy))
        else:
            self.token_mixer.add_module("dw_conv", conv_bn(
                in_channels, in_channels, dw_size, stride, (dw_size - 1) // 2, in_channels,
                deploy))
        if use_se:  # Paddle's Hardsigmoid default (slope 1/6 as float32)
            self.token_mixer.add_module("se", SEModule(in_channels, slope=0.1666667))
        hidden = int(in_channels * expand_ratio)
        self.channel_mixer = nn.Sequential()
        self.channel_mixer.add_module("expand", conv_bn(in_channels, hidden, deploy=deploy))
        self.channel_mixer.add_module("act", nn.GELU())
        self.channel_mixer.add_module("compress", conv_bn(hidden, out_channels, deploy=deploy))

    def forward(self, x):
        x = self.token_mixer(x)
        return x + self.channel_mixer(x) if self.has_residual else self.channel_mixer(x)

    @torch.no_grad()
    def reparameterize(self):
        for seq in (self.token_mixer, self.channel_mixer):
            for name, child in list(seq.named_children()):
                if isinstance(child, ConvBN):
                    setattr(seq, name, child.fused())
                elif isinstance(child, RepDWConv):
                    child.reparameterize()


@register("Backbone")
class PPLCNetV4(nn.Module):
    def __init__(self, in_channels=3, model_size="small", det=False, deploy=False, **_):
        super().__init__()
        self.det = bool(det)
        table = NET_CONFIG_DET if self.det else NET_CONFIG_REC
        if model_size not in table:
            raise ValueError(f"PPLCNetV4 ({'det' if self.det else 'rec'}) model_size must be "
                             f"one of {list(table)}, not {model_size!r}")
        cfg = table[model_size]
        mid, out = cfg["stem"]
        if self.det:
            self.stem = StemBlock(in_channels, mid, out, deploy)
            self.stages = DET_STAGES
        elif cfg["stem_type"] == "branch":
            self.conv1 = StemBlock(in_channels, mid, out, deploy)
        else:  # PaddleOCR's simple stem is a Sequential with no rep(): it stays conv + BN
            self.conv1 = nn.Sequential(ConvBN(in_channels, mid, 3, 2, 1), nn.GELU(),
                                       ConvBN(mid, out, 3, 2, 1))
        if not self.det:
            self.stages = STAGES
        for stage in self.stages:
            setattr(self, stage, nn.Sequential(*[
                LCNetV4Block(cin, cout, s, k, se, deploy=deploy)
                for k, cin, cout, s, se in cfg[stage]]))
        ends = [cfg[s][-1][2] for s in self.stages if cfg[s]]
        self.out_channels = ends if self.det else ends[-1]

    def forward(self, x):
        if self.det:
            outs = []
            x = self.stem(x)
            for stage in self.stages:
                x = getattr(self, stage)(x)
                outs.append(x)
            return outs
        x = self.conv1(x)
        for stage in self.stages:
            x = getattr(self, stage)(x)
        if self.training:
            return F.adaptive_avg_pool2d(x, [1, 40])
        return F.avg_pool2d(x, [3, 2])

    @torch.no_grad()
    def reparameterize(self):
        """PaddleOCR's ``rep()``: the deploy form, same outputs."""
        stem = self.stem if self.det else self.conv1
        if isinstance(stem, StemBlock):
            for layer in (stem.stem1, stem.stem2a, stem.stem2b, stem.stem3, stem.stem4):
                layer.reparameterize()
        for stage in self.stages:
            for block in getattr(self, stage):
                block.reparameterize()
