"""TPS spatial transformer after PaddleOCR's transforms/tps.py (STAR-Net, RARE).

A small CNN (``loc_net``) predicts F fiducial points on the input image; a thin-plate spline
through them maps every output pixel to a sampling position, and ``grid_sample`` reads the
rectified image there. The spline's fixed matrices (``inv_delta_C`` and ``P_hat``) depend only
on F and the image size: computed in float64 and rounded to float32 as PaddleOCR does with
numpy, cached per size, never part of the weights.
"""

import torch
import torch.nn.functional as F
from torch import nn

from ..layers import ConvBNLayer
from ..registry import register


class LocalizationNetwork(nn.Module):
    """Four conv-BN-relu blocks (``loc_conv0..3``; 2x2 max pools between, a global average
    pool after the last), fc1 + relu, fc2 -> F×2 points in [-1, 1]."""

    SIZES = {"large": ([64, 128, 256, 512], 256), "small": ([16, 32, 64, 128], 64)}

    def __init__(self, in_channels, num_fiducial, model_name="small"):
        super().__init__()
        if model_name not in self.SIZES:
            raise ValueError(f"TPS model_name must be large or small, not {model_name!r}")
        filters, fc_dim = self.SIZES[model_name]
        self.F = num_fiducial
        for i, c in enumerate(filters):
            self.add_module(f"loc_conv{i}", ConvBNLayer(in_channels, c, 3, act="relu"))
            in_channels = c
        self.n_convs = len(filters)
        self.pool = nn.MaxPool2d(2, 2)
        self.fc1 = nn.Linear(in_channels, fc_dim)
        self.fc2 = nn.Linear(fc_dim, num_fiducial * 2)
        self.out_channels = num_fiducial * 2

    def forward(self, x):
        for i in range(self.n_convs):
            x = getattr(self, f"loc_conv{i}")(x)
            x = self.pool(x) if i < self.n_convs - 1 else x.mean(dim=(2, 3))
        return self.fc2(torch.relu(self.fc1(x))).reshape(-1, self.F, 2)


def fiducials(F_):
    """C: F fiducial points of the rectified image, top edge then bottom edge (F×2)."""
    x = torch.linspace(-1.0, 1.0, F_ // 2, dtype=torch.float64)
    top = torch.stack([x, -torch.ones_like(x)], dim=1)
    bottom = torch.stack([x, torch.ones_like(x)], dim=1)
    return torch.cat([top, bottom])


def inv_delta_c(C):
    """Inverse of the (F+3)×(F+3) TPS system matrix through the points C."""
    F_ = C.shape[0]
    r = torch.cdist(C, C)
    r.fill_diagonal_(1.0)  # PaddleOCR sets the diagonal to 1 so r² log r is 0 there
    hat_C = r ** 2 * torch.log(r)
    delta = torch.cat([
        torch.cat([torch.ones(F_, 1, dtype=C.dtype), C, hat_C], dim=1),
        torch.cat([torch.zeros(2, 3, dtype=C.dtype), C.T], dim=1),
        torch.cat([torch.zeros(1, 3, dtype=C.dtype), torch.ones(1, F_, dtype=C.dtype)], dim=1),
    ])
    return torch.linalg.inv(delta)


def p_hat(C, width, height, eps=1e-6):
    """[1, x, y, r² log(r + eps) to each fiducial] for every output pixel centre, row-major
    ((H·W)×(F+3)); eps is PaddleOCR's, inside the log only."""
    gx = (torch.arange(-width, width, 2, dtype=torch.float64) + 1.0) / width
    gy = (torch.arange(-height, height, 2, dtype=torch.float64) + 1.0) / height
    yy, xx = torch.meshgrid(gy, gx, indexing="ij")
    P = torch.stack([xx, yy], dim=2).reshape(-1, 2)
    r = torch.linalg.norm(P[:, None, :] - C[None, :, :], dim=2)
    rbf = r ** 2 * torch.log(r + eps)
    return torch.cat([torch.ones(P.shape[0], 1, dtype=C.dtype), P, rbf], dim=1)


class GridGenerator(nn.Module):
    """Sampling grid from the predicted fiducials. ``fc`` (zero-initialised and frozen in
    PaddleOCR, but loaded like any weight) adds three affine rows to the F points."""

    def __init__(self, in_channels, num_fiducial):
        super().__init__()
        self.F = num_fiducial
        self.fc = nn.Linear(in_channels, 6)
        self._cache = {}

    def matrices(self, width, height, like):
        """(inv_delta_C, P_hat) in ``like``'s dtype, computed in float64 and rounded to
        float32 as PaddleOCR's ``astype('float32')`` does: the rounded values are constants of
        the exported program, so a float64 evaluation uses them too."""
        key = (width, height, like.dtype, like.device)
        if key not in self._cache:
            C = fiducials(self.F)
            self._cache[key] = (inv_delta_c(C).float().to(like),
                                p_hat(C, width, height).float().to(like))
        return self._cache[key]

    def forward(self, c_prime, width, height):
        inv_delta, P_hat = self.matrices(width, height, c_prime)
        n = c_prime.shape[0]
        extra = self.fc(c_prime.reshape(n, -1)).reshape(-1, 3, 2)
        T = torch.matmul(inv_delta, torch.cat([c_prime, extra], dim=1))
        return torch.matmul(P_hat, T)


@register("Transform")
class TPS(nn.Module):
    def __init__(self, in_channels, num_fiducial=20, loc_lr=None, model_name="small", **_):
        super().__init__()
        # loc_lr is a training learning-rate factor
        self.loc_net = LocalizationNetwork(in_channels, num_fiducial, model_name)
        self.grid_generator = GridGenerator(self.loc_net.out_channels, num_fiducial)
        self.out_channels = in_channels

    def forward(self, image):
        n, _, h, w = image.shape
        grid = self.grid_generator(self.loc_net(image), w, h).reshape(n, h, w, 2)
        # Paddle's grid_sample defaults: bilinear, zero padding, align_corners=True
        return F.grid_sample(image, grid, mode="bilinear", padding_mode="zeros",
                             align_corners=True)
