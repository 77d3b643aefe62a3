"""Paddle twins of PaddleOCR's STN_ON rectification (transforms/stn.py,
transforms/tps_spatial_transformer.py) and of the recognisers that use it: the English SVTR
(rec_svtrnet: STN_ON + SVTRNet + CTC, SVTRNet and CTC from tests/paddle_transformer_ref.py).
Same module tree as PaddleOCR, so the same state_dict() names. Used in-process by op tests
and as a script by the export tests:
``python paddle_twins_stn.py ARCH pdmodel|pir OUT CONFIG_JSON``."""

import itertools
import json
import math
import os
import sys

if __name__ == "__main__" and sys.argv[2] == "pdmodel":
    os.environ["FLAGS_enable_pir_api"] = "0"  # before paddle is imported

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import paddle_transformer_ref as T  # noqa: E402


# ---- transforms/tps_spatial_transformer.py

def compute_partial_repr(input_points, control_points):
    N = input_points.shape[0]
    M = control_points.shape[0]
    pairwise_diff = paddle.reshape(input_points, shape=[N, 1, 2]) - paddle.reshape(
        control_points, shape=[1, M, 2])
    pairwise_diff_square = pairwise_diff * pairwise_diff
    pairwise_dist = pairwise_diff_square[:, :, 0] + pairwise_diff_square[:, :, 1]
    repr_matrix = 0.5 * pairwise_dist * paddle.log(pairwise_dist)
    mask = np.array(repr_matrix != repr_matrix)
    repr_matrix[mask] = 0
    return repr_matrix


def build_output_control_points(num_control_points, margins):
    margin_x, margin_y = margins
    n = num_control_points // 2
    ctrl_pts_x = np.linspace(margin_x, 1.0 - margin_x, n)
    top = np.stack([ctrl_pts_x, np.ones(n) * margin_y], axis=1)
    bottom = np.stack([ctrl_pts_x, np.ones(n) * (1.0 - margin_y)], axis=1)
    return paddle.to_tensor(np.concatenate([top, bottom], axis=0))


class TPSSpatialTransformer(nn.Layer):
    def __init__(self, output_image_size=None, num_control_points=None, margins=None):
        super().__init__()
        self.output_image_size = output_image_size
        self.num_control_points = num_control_points
        self.target_height, self.target_width = output_image_size
        target_control_points = build_output_control_points(num_control_points, margins)
        N = num_control_points
        forward_kernel = paddle.zeros(shape=[N + 3, N + 3])
        target_control_partial_repr = paddle.cast(
            compute_partial_repr(target_control_points, target_control_points),
            forward_kernel.dtype)
        forward_kernel[:N, :N] = target_control_partial_repr
        forward_kernel[:N, -3] = 1
        forward_kernel[-3, :N] = 1
        target_control_points = paddle.cast(target_control_points, forward_kernel.dtype)
        forward_kernel[:N, -2:] = target_control_points
        forward_kernel[-2:, :N] = paddle.transpose(target_control_points, perm=[1, 0])
        inverse_kernel = paddle.inverse(forward_kernel)
        HW = self.target_height * self.target_width
        target_coordinate = list(itertools.product(range(self.target_height),
                                                   range(self.target_width)))
        target_coordinate = paddle.to_tensor(target_coordinate)
        Y, X = paddle.split(target_coordinate, target_coordinate.shape[1], axis=1)
        Y = Y / (self.target_height - 1)
        X = X / (self.target_width - 1)
        target_coordinate = paddle.concat([X, Y], axis=1)
        target_coordinate_partial_repr = compute_partial_repr(target_coordinate,
                                                              target_control_points)
        target_coordinate_repr = paddle.concat(
            [target_coordinate_partial_repr, paddle.ones(shape=[HW, 1]), target_coordinate],
            axis=1)
        self.inverse_kernel = inverse_kernel
        self.padding_matrix = paddle.zeros(shape=[3, 2])
        self.target_coordinate_repr = target_coordinate_repr
        self.target_control_points = target_control_points

    def forward(self, input, source_control_points):
        batch_size = paddle.shape(source_control_points)[0]
        padding_matrix = paddle.expand(self.padding_matrix, shape=[batch_size, 3, 2])
        Y = paddle.concat([source_control_points, padding_matrix], 1)
        mapping_matrix = paddle.matmul(self.inverse_kernel, Y)
        source_coordinate = paddle.matmul(self.target_coordinate_repr, mapping_matrix)
        grid = paddle.reshape(source_coordinate,
                              shape=[-1, self.target_height, self.target_width, 2])
        grid = paddle.clip(grid, 0, 1)
        grid = 2.0 * grid - 1.0
        return F.grid_sample(input, grid), source_coordinate


# ---- transforms/stn.py

def conv3x3_block(in_channels, out_channels, stride=1):
    conv_layer = nn.Conv2D(in_channels, out_channels, kernel_size=3, stride=stride, padding=1)
    return nn.Sequential(conv_layer, nn.BatchNorm2D(out_channels), nn.ReLU())


class STN(nn.Layer):
    def __init__(self, in_channels, num_ctrlpoints, activation="none"):
        super().__init__()
        self.num_ctrlpoints = num_ctrlpoints
        self.activation = activation
        self.stn_convnet = nn.Sequential(
            conv3x3_block(in_channels, 32), nn.MaxPool2D(kernel_size=2, stride=2),
            conv3x3_block(32, 64), nn.MaxPool2D(kernel_size=2, stride=2),
            conv3x3_block(64, 128), nn.MaxPool2D(kernel_size=2, stride=2),
            conv3x3_block(128, 256), nn.MaxPool2D(kernel_size=2, stride=2),
            conv3x3_block(256, 256), nn.MaxPool2D(kernel_size=2, stride=2),
            conv3x3_block(256, 256))
        self.stn_fc1 = nn.Sequential(nn.Linear(2 * 256, 512), nn.BatchNorm1D(512), nn.ReLU())
        self.stn_fc2 = nn.Linear(512, num_ctrlpoints * 2)

    def forward(self, x):
        x = self.stn_convnet(x)
        batch_size, _, h, w = x.shape
        x = paddle.reshape(x, shape=(batch_size, -1))
        img_feat = self.stn_fc1(x)
        x = self.stn_fc2(0.1 * img_feat)
        if self.activation == "sigmoid":
            x = F.sigmoid(x)
        x = paddle.reshape(x, shape=[-1, self.num_ctrlpoints, 2])
        return img_feat, x


class STN_ON(nn.Layer):
    def __init__(self, in_channels, tps_inputsize, tps_outputsize, num_control_points,
                 tps_margins, stn_activation):
        super().__init__()
        self.tps = TPSSpatialTransformer(output_image_size=tuple(tps_outputsize),
                                         num_control_points=num_control_points,
                                         margins=tuple(tps_margins))
        self.stn_head = STN(in_channels=in_channels, num_ctrlpoints=num_control_points,
                            activation=stn_activation)
        self.tps_inputsize = tps_inputsize
        self.out_channels = in_channels

    def forward(self, image):
        stn_input = F.interpolate(image, self.tps_inputsize, mode="bilinear",
                                  align_corners=True)
        stn_img_feat, ctrl_points = self.stn_head(stn_input)
        x, _ = self.tps(image, ctrl_points)
        return x


# ---- BaseModel with a transform

class Model(nn.Layer):
    def __init__(self, transform, backbone, neck, head):
        super().__init__()
        self.transform = transform
        self.backbone = backbone
        self.use_neck = neck is not None
        if neck is not None:
            self.neck = neck
        self.head = head

    def forward(self, x):
        x = self.backbone(self.transform(x))
        if self.use_neck:
            x = self.neck(x)
        return self.head(x)


STN_DEFAULT = dict(tps_inputsize=[32, 64], tps_outputsize=[32, 100], num_control_points=20,
                   tps_margins=[0.05, 0.05], stn_activation="none")


def build(arch, cfg):
    stn = STN_ON(3, **{**STN_DEFAULT, **cfg.get("stn", {})})
    if arch == "svtr_en":
        bb = T.SVTRNet(**cfg["backbone"])
        return Model(stn, bb, T.SequenceEncoder(), T.CTCHead(bb.out_channels, cfg["classes"]))
    raise KeyError(arch)


def randomize(model, seed):
    """Every parameter and BN statistic random (fan-in scaled weights, then the transformer
    twins' SHARPEN factors); the STN's control-point regressor keeps PaddleOCR's
    initial bias (control points on the margins) plus a random bend, so that the
    rectification is a real, non-trivial warp that stays mostly inside the image."""
    T.randomize(model, seed)
    rng = np.random.RandomState(seed + 1)
    sd = model.state_dict()
    for name, t in sd.items():
        if name.endswith("stn_fc2.weight"):
            t.set_value((rng.uniform(-1, 1, t.shape) * 0.05).astype("float32"))
        elif name.endswith("stn_fc2.bias"):
            n = t.shape[0] // 4
            mx, my = 0.05, 0.05
            xs = np.linspace(mx, 1 - mx, n)
            pts = np.concatenate([np.stack([xs, np.full(n, my)], 1),
                                  np.stack([xs, np.full(n, 1 - my)], 1)])
            pts = pts + rng.uniform(-0.04, 0.04, pts.shape)
            t.set_value(pts.reshape(-1).astype("float32"))
    model.eval()
    return model


def export(arch, fmt, out, cfg):
    paddle.seed(0)
    model = randomize(build(arch, cfg), cfg.get("seed", 0))
    spec = [paddle.static.InputSpec([None] + list(cfg["input"]), "float32", "x")]
    paddle.jit.save(model, os.path.join(out, "inference"), input_spec=spec)
    if fmt == "pir":
        paddle.save(model.state_dict(), out.rstrip("/") + "_train.pdparams")


if __name__ == "__main__":
    export(sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4]))
