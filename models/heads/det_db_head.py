"""DBHead (differentiable binarization) after PaddleOCR's det_db_head.py."""

import copy

import torch
from torch import nn

from ..layers import batch_norm
from ..registry import register


class Head(nn.Module):
    """3x3 conv-BN-relu, two stride-2 transposed convs (x4 upsampling), sigmoid.

    ``deploy``: the form PaddleOCR's ``Head.rep()`` leaves (PP-OCRv6 exports): each BN folded
    into the conv before it (conv1 and conv2 gain a bias, conv_bn1/conv_bn2 hold nothing)."""

    def __init__(self, in_channels, kernel_list=(3, 2, 2), deploy=False):
        super().__init__()
        mid = in_channels // 4
        self.conv1 = nn.Conv2d(in_channels, mid, kernel_list[0],
                               padding=kernel_list[0] // 2, bias=deploy)
        self.conv_bn1 = None if deploy else batch_norm(mid)
        self.conv2 = nn.ConvTranspose2d(mid, mid, kernel_list[1], stride=2)
        self.conv_bn2 = None if deploy else batch_norm(mid)
        self.conv3 = nn.ConvTranspose2d(mid, 1, kernel_list[2], stride=2)

    def forward(self, x):
        x = self.conv1(x)
        x = torch.relu(x if self.conv_bn1 is None else self.conv_bn1(x))
        x = self.conv2(x)
        x = torch.relu(x if self.conv_bn2 is None else self.conv_bn2(x))
        return torch.sigmoid(self.conv3(x))

    @torch.no_grad()
    def fold_bn(self):
        """PaddleOCR 3.7's ``Head.rep()``: each BN folded into the conv before it."""
        if self.conv_bn1 is None:
            return
        for conv_name, bn_name, axis in (("conv1", "conv_bn1", 0), ("conv2", "conv_bn2", 1)):
            conv, bn = getattr(self, conv_name), getattr(self, bn_name)
            scale = bn.weight / (bn.running_var + bn.eps).sqrt()
            shape = [1, 1, 1, 1]
            shape[axis] = -1  # a transposed conv's output channels are its weight's dim 1
            bias = bn.bias - bn.running_mean * scale
            if conv.bias is not None:
                bias = bias + conv.bias * scale
            fused = copy.deepcopy(conv)
            if fused.bias is None:
                fused.bias = nn.Parameter(bias.clone())
            fused.weight.copy_(conv.weight * scale.reshape(shape))
            fused.bias.copy_(bias)
            setattr(self, conv_name, fused)
            setattr(self, bn_name, None)


@register("Head")
class DBHead(nn.Module):
    """In eval mode returns the shrink (probability) map, as Paddle's inference program does.

    ``deploy`` (PP-OCRv6 tables only): True for the fused heads of an export after PaddleOCR's
    ``rep()``, False for the training form that ``reparameterize()`` fuses. PP-OCRv6
    training checkpoints also hold per-level auxiliary heads (``aux_in_channels``), used only
    to train: the tables ignore them.

    ``with_thresh`` adds the threshold branch that training checkpoints carry; in training mode
    the head then returns Paddle's concatenation (shrink, threshold, binary) maps.
    """

    def __init__(self, in_channels, k=50, with_thresh=False, deploy=None, **_):
        super().__init__()
        self.k = k
        # deploy None: a head PaddleOCR's export leaves unfused (before PP-OCRv6), which
        # reparameterize() leaves alone; False/True: PP-OCRv6's training / fused form
        self.foldable = deploy is not None
        self.binarize = Head(in_channels, deploy=bool(deploy))
        self.thresh = Head(in_channels, deploy=bool(deploy)) if with_thresh else None

    def reparameterize(self):
        if self.foldable:
            for head in (self.binarize, self.thresh):
                if head is not None:
                    head.fold_bn()

    def forward(self, x):
        shrink = self.binarize(x)
        if not self.training or self.thresh is None:
            return shrink
        threshold = self.thresh(x)
        binary = torch.reciprocal(1 + torch.exp(-self.k * (shrink - threshold)))
        return torch.cat([shrink, threshold, binary], dim=1)
