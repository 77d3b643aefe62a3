"""STN_ON rectification after PaddleOCR's transforms/stn.py and tps_spatial_transformer.py
(ASTER's: English SVTR, SEED).

A small CNN (``stn_head``) looks at a bilinear down-sized copy of the image and regresses
``num_control_points`` source points in [0, 1]²; a thin-plate spline through them maps every
pixel of the fixed ``tps_outputsize`` output to a source position, and ``grid_sample`` reads
the input image there (so the output size is fixed whatever the input size).

The spline's matrices (``inverse_kernel``, the inverse of the (N+3)×(N+3) TPS system, and
``target_coordinate_repr``, the output pixels' radial-basis rows) depend only on the
configuration. PaddleOCR computes them in float32 with paddle.inverse when the layer is built,
and an export stores those very values: the inverse of this ill-conditioned system moves by
~5e-4 between float32 implementations, so exact parity needs Paddle's own. They are
therefore persistent buffers: a conversion from an export takes them from the program
(``paddle_computed``), a training checkpoint (which does not hold them) keeps the values
computed here, in float64 and rounded to float32.
"""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..registry import register


def output_control_points(num_control_points, margins):
    """N target points: top edge then bottom edge, inset by the margins (float64)."""
    margin_x, margin_y = margins
    n = num_control_points // 2
    x = np.linspace(margin_x, 1.0 - margin_x, n)
    top = np.stack([x, np.full(n, margin_y)], axis=1)
    bottom = np.stack([x, np.full(n, 1.0 - margin_y)], axis=1)
    return np.concatenate([top, bottom])


def partial_repr(points, control):
    """U(r) = r² log r = ½ d log d with d = r² for every (point, control point) pair; 0 where
    the points coincide (PaddleOCR replaces the NaN of 0·log 0)."""
    d = ((points[:, None, :] - control[None, :, :]) ** 2).sum(axis=2)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = 0.5 * d * np.log(d)
    return np.nan_to_num(out, nan=0.0)


def tps_matrices(output_size, num_control_points, margins):
    """(inverse_kernel, target_coordinate_repr) in float64."""
    h, w = output_size
    C = output_control_points(num_control_points, margins)
    N = num_control_points
    kernel = np.zeros((N + 3, N + 3))
    kernel[:N, :N] = partial_repr(C, C)
    kernel[:N, -3] = 1
    kernel[-3, :N] = 1
    kernel[:N, -2:] = C
    kernel[-2:, :N] = C.T
    ys, xs = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    coords = np.stack([xs.ravel() / (w - 1), ys.ravel() / (h - 1)], axis=1)  # (x, y), row-major
    repr_ = np.concatenate([partial_repr(coords, C), np.ones((h * w, 1)), coords], axis=1)
    return np.linalg.inv(kernel), repr_


class TPSSpatialTransformer(nn.Module):
    """Source points (N×2 in [0, 1]) -> the input sampled on the output grid."""

    paddle_constants = ("padding_matrix",)
    paddle_computed = ("inverse_kernel", "target_coordinate_repr")

    def __init__(self, output_image_size, num_control_points, margins):
        super().__init__()
        self.target_height, self.target_width = output_image_size
        self.num_control_points = num_control_points
        inverse, repr_ = tps_matrices(output_image_size, num_control_points, margins)
        # registered in the order Paddle's forward first reads them (program-order alignment)
        self.register_buffer("padding_matrix", torch.zeros(3, 2), persistent=False)
        self.register_buffer("inverse_kernel", torch.from_numpy(inverse).float())
        self.register_buffer("target_coordinate_repr", torch.from_numpy(repr_).float())

    def forward(self, image, source_control_points):
        n = source_control_points.shape[0]
        Y = torch.cat([source_control_points,
                       self.padding_matrix.to(source_control_points).expand(n, 3, 2)], dim=1)
        mapping = torch.matmul(self.inverse_kernel, Y)
        source = torch.matmul(self.target_coordinate_repr, mapping)
        grid = source.reshape(-1, self.target_height, self.target_width, 2)
        # control points may leave [0, 1]; grid_sample wants [-1, 1]
        grid = 2.0 * grid.clamp(0, 1) - 1.0
        # Paddle's grid_sample defaults: bilinear, zero padding, align_corners=True
        out = F.grid_sample(image, grid, mode="bilinear", padding_mode="zeros",
                            align_corners=True)
        return out, source


def conv3x3_block(in_channels, out_channels):
    """conv 3x3 (with bias) -> BN -> ReLU, as nn.Sequential (names 0, 1, 2)."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, 1, 1), nn.BatchNorm2d(out_channels),
                         nn.ReLU())


class STN(nn.Module):
    """Control-point regressor: six conv blocks with 2x2 max pools between (a 32×64 input
    ends as 256×1×2), fc1 (512, BN, ReLU), fc2 on 0.1·features; optional sigmoid."""

    def __init__(self, in_channels, num_ctrlpoints, activation="none"):
        super().__init__()
        if activation not in ("none", "sigmoid"):
            raise ValueError(f"STN activation must be none or sigmoid, not {activation!r}")
        self.num_ctrlpoints = num_ctrlpoints
        self.activation = activation
        layers, cin = [], in_channels
        for i, c in enumerate([32, 64, 128, 256, 256, 256]):
            if i:
                layers.append(nn.MaxPool2d(2, 2))
            layers.append(conv3x3_block(cin, c))
            cin = c
        self.stn_convnet = nn.Sequential(*layers)
        self.stn_fc1 = nn.Sequential(nn.Linear(2 * 256, 512), nn.BatchNorm1d(512), nn.ReLU())
        self.stn_fc2 = nn.Linear(512, num_ctrlpoints * 2)

    def forward(self, x):
        x = self.stn_convnet(x).flatten(1)
        if x.shape[1] != 512:
            raise ValueError(f"STN needs a 32x64 input (tps_inputsize), got {x.shape[1]} "
                             "features instead of 512")
        img_feat = self.stn_fc1(x)
        x = self.stn_fc2(0.1 * img_feat)
        if self.activation == "sigmoid":
            x = torch.sigmoid(x)
        return img_feat, x.reshape(-1, self.num_ctrlpoints, 2)


@register("Transform")
class STN_ON(nn.Module):
    def __init__(self, in_channels, tps_inputsize=(32, 64), tps_outputsize=(32, 100),
                 num_control_points=20, tps_margins=(0.05, 0.05), stn_activation="none", **_):
        super().__init__()
        self.tps = TPSSpatialTransformer(tuple(tps_outputsize), num_control_points,
                                         tuple(tps_margins))
        self.stn_head = STN(in_channels, num_control_points, stn_activation)
        self.tps_inputsize = list(tps_inputsize)
        self.out_channels = in_channels

    def forward(self, image):
        if image.dim() == 5:  # PaddleOCR folds a leading group axis
            image = image.reshape(-1, *image.shape[-3:])
        stn_input = F.interpolate(image, size=self.tps_inputsize, mode="bilinear",
                                  align_corners=True)
        _, ctrl_points = self.stn_head(stn_input)
        x, _ = self.tps(image, ctrl_points)
        return x
