"""GA-SPIN rectification after PaddleOCR's transforms/gaspin_transformer.py (SPIN).

One small CNN looks at the (grayscale, [-1, 1]) image and predicts, in a single linear layer
(``stucture_fc2``, PaddleOCR's spelling):
  * 2K+1 weights of the structure-preserving colour transform (SPN): the image, moved to
    [0, 1], is raised to 2K+1 fixed exponents (``sp_net.power_list``), the powers are
    mixed by the predicted weights, instance-normalised, squashed to [-1, 1];
  * with ``offsets`` (AIN), a gate alpha: before the powers, the image is blended with a 2×6
    offset map from a second small conv branch (sigmoid, bilinearly upsampled to the image);
  * with ``stn``, 20 TPS fiducials, used exactly like RARE's TPS (``tps.GridGenerator``) to
    resample the transformed image with border padding.

PaddleOCR hands ``I_r_size`` = (32, 100) to GridGenerator, which reads it as
(width, height): the spline is evaluated on a 32-wide, 100-tall grid of sampling points that
is then reshaped to 32×100. Trained models learned with that grid, so it is kept as is.
"""

import functools
import math

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import register
from .tps import GridGenerator


def spin_exponents(k):
    """SPN's 2K+1 exponents beta: for i = 1..K a pair (lower, 1/lower), then 1 (cal_K;
    each rounded to two decimals as PaddleOCR does)."""
    out = []
    for i in range(1, k + 1):
        lower = round(math.log(1 - (0.5 / (k + 1)) * i) / math.log((0.5 / (k + 1)) * i), 2)
        out += [lower, round(1 / lower, 2)]
    return out + [1.00]


class SP_TransformerNetwork(nn.Module):
    """Structure-preserving transform: sum_j w_j · x^beta_j, instance norm, sigmoid, 2·s − 1."""

    def __init__(self, nc=1, default_type=5):
        super().__init__()
        self.power_list = spin_exponents(default_type)
        self.bn = nn.InstanceNorm2d(nc, affine=True)  # Paddle's InstanceNorm2D: eps 1e-5

    def forward(self, batch_I, weights, offsets=None, lambda_color=None):
        batch_I = (batch_I + 1) * 0.5
        if offsets is not None:
            batch_I = batch_I * (1 - lambda_color) + offsets * lambda_color
        w = weights[..., None, None]  # N × (2K+1) × 1 × 1 × 1
        powers = torch.stack([batch_I.pow(p) for p in self.power_list], dim=1)
        mixed = self.bn((powers * w).sum(dim=1))
        return torch.sigmoid(mixed) * 2 - 1


def _conv_bn_relu(cin, cout, norm):
    return [nn.Conv2d(cin, cout, 3, 1, 1, bias=False), norm(cout), nn.ReLU()]


@register("Transform")
class GA_SPIN(nn.Module):
    """PaddleOCR's GA_SPIN_Transformer (registered under its config name GA_SPIN)."""

    def __init__(self, in_channels=1, I_r_size=(32, 100), offsets=False, norm_type="BN",
                 default_type=6, loc_lr=1, stn=True, **_):
        super().__init__()
        # loc_lr is a training learning-rate factor
        if norm_type == "BN":
            norm = nn.BatchNorm2d
        elif norm_type == "IN":  # PaddleOCR: InstanceNorm2D without a scale (weight_attr=False)
            raise ValueError("GA_SPIN norm_type IN is not supported (PaddleOCR's configs use BN)")
        else:
            raise ValueError(f"GA_SPIN norm_type must be BN, not {norm_type!r}")
        self.nc, self.offsets, self.stn = in_channels, bool(offsets), bool(stn)
        self.I_r_size = tuple(I_r_size)
        self.out_channels = in_channels
        self.sp_net = SP_TransformerNetwork(in_channels, default_type)
        pool = functools.partial(nn.MaxPool2d, kernel_size=2, stride=2)
        self.spt_convnet = nn.Sequential(  # 32×100 -> 4×12
            *_conv_bn_relu(in_channels, 32, norm), pool(),
            *_conv_bn_relu(32, 64, norm), pool(),
            *_conv_bn_relu(64, 128, norm), pool())
        self.stucture_fc1 = nn.Sequential(
            *_conv_bn_relu(128, 256, norm), pool(),
            *_conv_bn_relu(256, 256, norm), pool(),
            *_conv_bn_relu(256, 512, norm),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(1, -1),
            nn.Linear(512, 256), nn.BatchNorm1d(256), nn.ReLU())
        self.spt_length = 2 * default_type + 1
        self.out_weight = self.spt_length + int(self.offsets)
        if self.stn:
            self.F = 20
            self.out_weight += self.F * 2
            self.GridGenerator = GridGenerator(self.F * 2, self.F)
        self.stucture_fc2 = nn.Linear(256, self.out_weight)
        if self.offsets:
            self.offset_fc1 = nn.Sequential(*_conv_bn_relu(128, 16, norm))
            self.offset_fc2 = nn.Conv2d(16, in_channels, 3, 1, 1)
            self.pool = nn.MaxPool2d(2, 2)

    def forward(self, x):
        n, _, h, w = x.shape
        feat = self.spt_convnet(x)
        fusion = self.stucture_fc2(self.stucture_fc1(feat)).reshape(n, self.out_weight, 1)
        sp_weight = fusion[:, :self.spt_length, :]
        lambda_color = offsets = None
        first_fiducial = self.spt_length
        if self.offsets:  # SPIN with AIN
            lambda_color = torch.sigmoid(fusion[:, self.spt_length, 0])[:, None, None, None]
            offsets = torch.sigmoid(self.pool(self.offset_fc2(self.offset_fc1(feat))))
            if offsets.shape[2:] != (2, 6):  # PaddleOCR asserts this: a 32×100 input
                raise ValueError(f"GA_SPIN needs a 32x100 input, got {h}x{w}")
            # paddle's upsample default: bilinear, align_corners False, align_mode 0
            offsets = F.interpolate(offsets, size=(h, w), mode="bilinear", align_corners=False)
            first_fiducial += 1
        if self.stn:  # the grid before the colour transform, in Paddle's order of use
            fiducials = fusion[:, first_fiducial:, :].reshape(n, self.F, 2)
            # (width, height) = I_r_size as PaddleOCR passes it, see the module docstring
            grid = self.GridGenerator(fiducials, self.I_r_size[0], self.I_r_size[1])
            grid = grid.reshape(n, self.I_r_size[0], self.I_r_size[1], 2)
        x = self.sp_net(x, sp_weight, offsets, lambda_color)
        if self.stn:
            # Paddle's grid_sample: bilinear, align_corners=True; border padding here
            x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border",
                              align_corners=True)
        return x
