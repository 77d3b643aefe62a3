"""Whole-network Paddle references for SAST, FCENet and PGNet, written with paddle after
PaddleOCR's own modules (backbones/det_resnet_vd_sast.py, det_resnet_vd.py with
DeformableConvV2, e2e_resnet_vd_pg.py; necks/sast_fpn.py, fce_fpn.py, pg_fpn.py;
heads/det_sast_head.py, det_fce_head.py, e2e_pg_head.py): the same module tree, so
``state_dict()`` names equal PaddleOCR's. Run as a script it builds one of them, randomises
every parameter and BN statistic (seeded) and saves it:

    python paddle_det_twins.py ARCH PREFIX pdmodel|pir
    (pir also writes the training checkpoint PREFIX/../../train/best_accuracy.pdparams)

2.x programs need FLAGS_enable_pir_api=0 before paddle is imported, hence a process each."""

import os
import sys

if __name__ == "__main__" and sys.argv[3] == "pdmodel":
    os.environ["FLAGS_enable_pir_api"] = "0"

import numpy as np  # noqa: E402
import paddle  # noqa: E402
import paddle.nn as nn  # noqa: E402
import paddle.nn.functional as F  # noqa: E402


def _legacy_op(op_type, inputs, attrs, dtype):
    """Append one op to the legacy (2.x) program being traced. Paddle 3.3's generated
    functions (paddle.matmul, F.sigmoid, ...) call their PIR kernels on legacy Variables and
    fail in a 2.x export, so the twin appends the very op they stand for instead."""
    from paddle.base.layer_helper import LayerHelper

    helper = LayerHelper(op_type)
    out = helper.create_variable_for_type_inference(dtype=dtype)
    helper.append_op(type=op_type, inputs=inputs, outputs={"Out": out}, attrs=attrs)
    return out


def _legacy():
    return not (paddle.in_dynamic_mode() or paddle.framework.in_pir_mode())


def matmul(x, y):
    """paddle.matmul (op matmul_v2)."""
    if not _legacy():
        return paddle.matmul(x, y)
    return _legacy_op("matmul_v2", {"X": x, "Y": y}, {"trans_x": False, "trans_y": False},
                      x.dtype)


def sigmoid(x):
    """F.sigmoid (op sigmoid)."""
    return F.sigmoid(x) if not _legacy() else _legacy_op("sigmoid", {"X": x}, {}, x.dtype)


def randomize_scaled(layer, seed=0):
    """Every parameter and buffer random (BN statistics included), conv weights ~ 1/sqrt(fan-in)
    so a 50-layer network keeps unit-scale activations; eval mode."""
    rng = np.random.RandomState(seed)
    for name, tensor in layer.state_dict().items():
        shape = list(tensor.shape)
        if len(shape) >= 2:
            fan_in = int(np.prod(shape[1:])) if len(shape) == 4 else shape[0]
            value = rng.uniform(-1, 1, shape) * np.sqrt(3.0 / fan_in)
        elif name.endswith(("_variance", ".weight", ".scale")) and "offset" not in name:
            value = rng.uniform(0.5, 1.5, shape)
        else:
            value = rng.uniform(-0.2, 0.2, shape)
        tensor.set_value(value.astype(tensor.numpy().dtype))
    layer.eval()
    return layer


# ---- ResNet_vd family (det_resnet_vd.py / det_resnet_vd_sast.py: same ConvBNLayer)

class DeformableConvV2(nn.Layer):
    """det_resnet_vd.py DeformableConvV2 (no dcn bias in the backbone)."""

    def __init__(self, cin, cout, k, stride=1, groups=1):
        super().__init__()
        self.offset_channel = 2 * k ** 2 * groups
        self.mask_channel = k ** 2 * groups
        self.conv_dcn = paddle.vision.ops.DeformConv2D(
            cin, cout, k, stride=stride, padding=(k - 1) // 2, dilation=1,
            deformable_groups=groups, bias_attr=False)
        self.conv_offset = nn.Conv2D(cin, groups * 3 * k ** 2, k, stride=stride,
                                     padding=(k - 1) // 2)

    def forward(self, x):
        offset_mask = self.conv_offset(x)
        offset, mask = paddle.split(offset_mask, [self.offset_channel, self.mask_channel],
                                    axis=1)
        return self.conv_dcn(x, offset, mask=sigmoid(mask))


class ConvBNLayer(nn.Layer):
    def __init__(self, cin, cout, k, stride=1, groups=1, is_vd_mode=False, act=None,
                 is_dcn=False, dcn_groups=1):
        super().__init__()
        self.is_vd_mode = is_vd_mode
        self._pool2d_avg = nn.AvgPool2D(kernel_size=2, stride=2, padding=0, ceil_mode=True)
        if is_dcn:
            self._conv = DeformableConvV2(cin, cout, k, stride, groups=dcn_groups)
        else:
            self._conv = nn.Conv2D(cin, cout, k, stride, (k - 1) // 2, groups=groups,
                                   bias_attr=False)
        self._batch_norm = nn.BatchNorm(cout, act=act)

    def forward(self, x):
        if self.is_vd_mode:
            x = self._pool2d_avg(x)
        return self._batch_norm(self._conv(x))


class BottleneckBlock(nn.Layer):
    def __init__(self, cin, cout, stride, shortcut=True, if_first=False, is_dcn=False):
        super().__init__()
        self.conv0 = ConvBNLayer(cin, cout, 1, act="relu")
        self.conv1 = ConvBNLayer(cout, cout, 3, stride, act="relu", is_dcn=is_dcn,
                                 dcn_groups=2)
        self.conv2 = ConvBNLayer(cout, cout * 4, 1)
        if not shortcut:
            self.short = ConvBNLayer(cin, cout * 4, 1, 1, is_vd_mode=not if_first)
        self.shortcut = shortcut

    def forward(self, x):
        y = self.conv2(self.conv1(self.conv0(x)))
        return F.relu(paddle.add(x if self.shortcut else self.short(x), y))


def _stem(layer, cin):
    layer.conv1_1 = ConvBNLayer(cin, 32, 3, 2, act="relu")
    layer.conv1_2 = ConvBNLayer(32, 32, 3, 1, act="relu")
    layer.conv1_3 = ConvBNLayer(32, 64, 3, 1, act="relu")
    layer.pool2d_max = nn.MaxPool2D(kernel_size=3, stride=2, padding=1)


def _bottleneck_stages(layer, depth, channels, filters, dcn_stage=None):
    layer.stages = []
    for block in range(len(depth)):
        blocks = []
        for i in range(depth[block]):
            blocks.append(layer.add_sublayer(f"bb_{block}_{i}", BottleneckBlock(
                channels[block] if i == 0 else filters[block] * 4, filters[block],
                2 if i == 0 and block != 0 else 1, shortcut=i != 0, if_first=block == i == 0,
                is_dcn=bool(dcn_stage and dcn_stage[block]))))
        layer.stages.append(nn.Sequential(*blocks))


class ResNet_SAST(nn.Layer):
    """50 layers: depth [3, 4, 6, 3, 3], widths [64, 128, 256, 512, 512]."""

    def __init__(self, in_channels=3):
        super().__init__()
        _stem(self, in_channels)
        _bottleneck_stages(self, [3, 4, 6, 3, 3], [64, 256, 512, 1024, 2048],
                           [64, 128, 256, 512, 512])
        self.out_channels = [3, 64, 256, 512, 1024, 2048, 2048]

    def forward(self, x):
        out = [x]
        y = self.conv1_3(self.conv1_2(self.conv1_1(x)))
        out.append(y)
        y = self.pool2d_max(y)
        for block in self.stages:
            y = block(y)
            out.append(y)
        return out


class ResNet_vd(nn.Layer):
    """det ResNet_vd, bottleneck depths, with dcn_stage and out_indices."""

    def __init__(self, depth=(3, 4, 6, 3), dcn_stage=None, out_indices=(0, 1, 2, 3)):
        super().__init__()
        _stem(self, 3)
        self.out_indices = list(out_indices)
        _bottleneck_stages(self, list(depth), [64, 256, 512, 1024], [64, 128, 256, 512],
                           dcn_stage)
        self.out_channels = [[256, 512, 1024, 2048][i] for i in self.out_indices]

    def forward(self, x):
        y = self.pool2d_max(self.conv1_3(self.conv1_2(self.conv1_1(x))))
        out = []
        for i, block in enumerate(self.stages):
            y = block(y)
            if i in self.out_indices:
                out.append(y)
        return out


# ---- SAST neck and head (necks/sast_fpn.py, heads/det_sast_head.py)

class SConvBNLayer(nn.Layer):
    def __init__(self, cin, cout, k, stride, act=None):
        super().__init__()
        self.conv = nn.Conv2D(cin, cout, k, stride, (k - 1) // 2, bias_attr=False)
        self.bn = nn.BatchNorm(num_channels=cout, act=act)

    def forward(self, x):
        return self.bn(self.conv(x))


class DeConvBNLayer(nn.Layer):
    def __init__(self, cin, cout, k, stride, act=None):
        super().__init__()
        self.deconv = nn.Conv2DTranspose(cin, cout, k, stride, (k - 1) // 2, bias_attr=False)
        self.bn = nn.BatchNorm(num_channels=cout, act=act)

    def forward(self, x):
        return self.bn(self.deconv(x))


class FPN_Up_Fusion(nn.Layer):
    def __init__(self, in_channels):
        super().__init__()
        ins = in_channels[::-1]
        o = [256, 256, 192, 192, 128]
        self.h0_conv = SConvBNLayer(ins[0], o[0], 1, 1)
        self.h1_conv = SConvBNLayer(ins[1], o[1], 1, 1)
        self.h2_conv = SConvBNLayer(ins[2], o[2], 1, 1)
        self.h3_conv = SConvBNLayer(ins[3], o[3], 1, 1)
        self.h4_conv = SConvBNLayer(ins[4], o[4], 1, 1)
        self.g0_conv = DeConvBNLayer(o[0], o[1], 4, 2)
        self.g1_conv = nn.Sequential(SConvBNLayer(o[1], o[1], 3, 1, act="relu"),
                                     DeConvBNLayer(o[1], o[2], 4, 2))
        self.g2_conv = nn.Sequential(SConvBNLayer(o[2], o[2], 3, 1, act="relu"),
                                     DeConvBNLayer(o[2], o[3], 4, 2))
        self.g3_conv = nn.Sequential(SConvBNLayer(o[3], o[3], 3, 1, act="relu"),
                                     DeConvBNLayer(o[3], o[4], 4, 2))
        self.g4_conv = nn.Sequential(SConvBNLayer(o[4], o[4], 3, 1, act="relu"),
                                     SConvBNLayer(o[4], o[4], 1, 1))

    def _add_relu(self, a, b):
        return F.relu(paddle.add(x=a, y=b))

    def forward(self, x):
        f = x[2:][::-1]
        h0, h1, h2 = self.h0_conv(f[0]), self.h1_conv(f[1]), self.h2_conv(f[2])
        h3, h4 = self.h3_conv(f[3]), self.h4_conv(f[4])
        g1 = self.g1_conv(self._add_relu(self.g0_conv(h0), h1))
        g2 = self.g2_conv(self._add_relu(g1, h2))
        g3 = self.g3_conv(self._add_relu(g2, h3))
        return self.g4_conv(self._add_relu(g3, h4))


class FPN_Down_Fusion(nn.Layer):
    def __init__(self, in_channels):
        super().__init__()
        o = [32, 64, 128]
        self.h0_conv = SConvBNLayer(in_channels[0], o[0], 3, 1)
        self.h1_conv = SConvBNLayer(in_channels[1], o[1], 3, 1)
        self.h2_conv = SConvBNLayer(in_channels[2], o[2], 3, 1)
        self.g0_conv = SConvBNLayer(o[0], o[1], 3, 2)
        self.g1_conv = nn.Sequential(SConvBNLayer(o[1], o[1], 3, 1, act="relu"),
                                     SConvBNLayer(o[1], o[2], 3, 2))
        self.g2_conv = nn.Sequential(SConvBNLayer(o[2], o[2], 3, 1, act="relu"),
                                     SConvBNLayer(o[2], o[2], 1, 1))

    def forward(self, x):
        h0, h1, h2 = self.h0_conv(x[0]), self.h1_conv(x[1]), self.h2_conv(x[2])
        g1 = self.g1_conv(F.relu(paddle.add(x=self.g0_conv(h0), y=h1)))
        return self.g2_conv(F.relu(paddle.add(x=g1, y=h2)))


class Cross_Attention(nn.Layer):
    def __init__(self, c):
        super().__init__()
        self.theta_conv = SConvBNLayer(c, c, 1, 1, act="relu")
        self.phi_conv = SConvBNLayer(c, c, 1, 1, act="relu")
        self.g_conv = SConvBNLayer(c, c, 1, 1, act="relu")
        self.fh_weight_conv = SConvBNLayer(c, c, 1, 1)
        self.fh_sc_conv = SConvBNLayer(c, c, 1, 1)
        self.fv_weight_conv = SConvBNLayer(c, c, 1, 1)
        self.fv_sc_conv = SConvBNLayer(c, c, 1, 1)
        self.f_attn_conv = SConvBNLayer(c * 2, c, 1, 1, act="relu")

    def _cal_fweight(self, f, shape):
        f_theta, f_phi, f_g = f
        f_theta = paddle.reshape(paddle.transpose(f_theta, [0, 2, 3, 1]),
                                 [shape[0] * shape[1], shape[2], 128])
        f_phi = paddle.reshape(paddle.transpose(f_phi, [0, 2, 3, 1]),
                               [shape[0] * shape[1], shape[2], 128])
        f_g = paddle.reshape(paddle.transpose(f_g, [0, 2, 3, 1]),
                             [shape[0] * shape[1], shape[2], 128])
        f_attn = matmul(f_theta, paddle.transpose(f_phi, [0, 2, 1]))
        f_attn = F.softmax(f_attn / (128 ** 0.5))
        f_weight = matmul(f_attn, f_g)
        return paddle.reshape(f_weight, [shape[0], shape[1], shape[2], 128])

    def forward(self, f_common):
        s = paddle.shape(f_common)
        f_theta, f_phi = self.theta_conv(f_common), self.phi_conv(f_common)
        f_g = self.g_conv(f_common)
        fh = self._cal_fweight([f_theta, f_phi, f_g], [s[0], s[2], s[3]])
        fh = self.fh_weight_conv(paddle.transpose(fh, [0, 3, 1, 2]))
        f_h = F.relu(fh + self.fh_sc_conv(f_common))
        fv = self._cal_fweight([paddle.transpose(f_theta, [0, 1, 3, 2]),
                                paddle.transpose(f_phi, [0, 1, 3, 2]),
                                paddle.transpose(f_g, [0, 1, 3, 2])], [s[0], s[3], s[2]])
        fv = self.fv_weight_conv(paddle.transpose(fv, [0, 3, 2, 1]))
        f_v = F.relu(fv + self.fv_sc_conv(f_common))
        return self.f_attn_conv(paddle.concat([f_h, f_v], axis=1))


class SASTFPN(nn.Layer):
    def __init__(self, in_channels, with_cab=False):
        super().__init__()
        self.with_cab = with_cab
        self.FPN_Down_Fusion = FPN_Down_Fusion(in_channels)
        self.FPN_Up_Fusion = FPN_Up_Fusion(in_channels)
        self.out_channels = 128
        self.cross_attention = Cross_Attention(128)

    def forward(self, x):
        f = F.relu(paddle.add(x=self.FPN_Down_Fusion(x), y=self.FPN_Up_Fusion(x)))
        return self.cross_attention(f) if self.with_cab else f


def _sast_branch(cin, cout):
    return nn.Sequential(SConvBNLayer(cin, 64, 1, 1, act="relu"),
                         SConvBNLayer(64, 64, 3, 1, act="relu"),
                         SConvBNLayer(64, 128, 1, 1, act="relu"),
                         SConvBNLayer(128, cout, 3, 1))


class SAST_Header1(nn.Layer):
    def __init__(self, cin):
        super().__init__()
        self.score_conv = _sast_branch(cin, 1)
        self.border_conv = _sast_branch(cin, 4)

    def forward(self, x):
        return sigmoid(self.score_conv(x)), self.border_conv(x)


class SAST_Header2(nn.Layer):
    def __init__(self, cin):
        super().__init__()
        self.tvo_conv = _sast_branch(cin, 8)
        self.tco_conv = _sast_branch(cin, 2)

    def forward(self, x):
        return self.tvo_conv(x), self.tco_conv(x)


class SASTHead(nn.Layer):
    def __init__(self, cin):
        super().__init__()
        self.head1 = SAST_Header1(cin)
        self.head2 = SAST_Header2(cin)

    def forward(self, x):
        f_score, f_border = self.head1(x)
        f_tvo, f_tco = self.head2(x)
        return {"f_score": f_score, "f_border": f_border, "f_tvo": f_tvo, "f_tco": f_tco}


# ---- FCENet neck and head (necks/fce_fpn.py without norm, heads/det_fce_head.py)

class FCEFPN(nn.Layer):
    def __init__(self, in_channels, out_channels, has_extra_convs=False, extra_stage=1):
        super().__init__()
        self.out_channels = out_channels
        self.has_extra_convs, self.extra_stage = has_extra_convs, extra_stage
        self.lateral_convs, self.fpn_convs = [], []
        st = 4 - len(in_channels)
        ed = st + len(in_channels) - 1
        for i in range(st, ed + 1):
            name = "fpn_inner_res5_sum" if i == 3 else "fpn_inner_res{}_sum_lateral".format(i + 2)
            self.lateral_convs.append(self.add_sublayer(
                name, nn.Conv2D(in_channels[i - st], out_channels, kernel_size=1)))
        for i in range(st, ed + 1):
            self.fpn_convs.append(self.add_sublayer(
                "fpn_res{}_sum".format(i + 2),
                nn.Conv2D(out_channels, out_channels, kernel_size=3, padding=1)))

    def forward(self, body_feats):
        laterals = [self.lateral_convs[i](body_feats[i]) for i in range(len(body_feats))]
        for i in range(1, len(body_feats)):
            lvl = len(body_feats) - i
            laterals[lvl - 1] += F.interpolate(laterals[lvl], scale_factor=2.0, mode="nearest")
        out = [self.fpn_convs[lvl](laterals[lvl]) for lvl in range(len(body_feats))]
        if self.extra_stage > 0:
            out.append(F.max_pool2d(out[-1], 1, stride=2))
        return out


class FCEHead(nn.Layer):
    def __init__(self, in_channels, fourier_degree=5):
        super().__init__()
        self.out_conv_cls = nn.Conv2D(in_channels, 4, 3, 1, 1)
        self.out_conv_reg = nn.Conv2D(in_channels, (2 * fourier_degree + 1) * 2, 3, 1, 1)

    def forward(self, feats):
        outs = {}
        for i, x in enumerate(feats):
            cls, reg = self.out_conv_cls(x), self.out_conv_reg(x)
            tr = F.softmax(cls[:, 0:2, :, :], axis=1)
            tcl = F.softmax(cls[:, 2:, :, :], axis=1)
            outs["level_{}".format(i)] = paddle.concat([tr, tcl, reg], axis=1)
        return outs


# ---- PGNet (backbones/e2e_resnet_vd_pg.py, necks/pg_fpn.py, heads/e2e_pg_head.py)

class PGConvBNLayer(nn.Layer):
    """e2e_resnet_vd_pg.py / pg_fpn.py ConvBNLayer: builds the vd pool, never runs it."""

    def __init__(self, cin, cout, k, stride=1, groups=1, is_vd_mode=False, act=None):
        super().__init__()
        self.is_vd_mode = is_vd_mode
        self._pool2d_avg = nn.AvgPool2D(kernel_size=2, stride=2, padding=0, ceil_mode=True)
        self._conv = nn.Conv2D(cin, cout, k, stride, (k - 1) // 2, groups=groups,
                               bias_attr=False)
        self._batch_norm = nn.BatchNorm(cout, act=act)

    def forward(self, x):
        return self._batch_norm(self._conv(x))


class PGBottleneckBlock(nn.Layer):
    def __init__(self, cin, cout, stride, shortcut=True, if_first=False):
        super().__init__()
        self.conv0 = PGConvBNLayer(cin, cout, 1, act="relu")
        self.conv1 = PGConvBNLayer(cout, cout, 3, stride=stride, act="relu")
        self.conv2 = PGConvBNLayer(cout, cout * 4, 1, act=None)
        if not shortcut:
            self.short = PGConvBNLayer(cin, cout * 4, 1, stride=stride,
                                       is_vd_mode=False if if_first else True)
        self.shortcut = shortcut

    def forward(self, x):
        y = self.conv0(x)
        conv1 = self.conv1(y)
        conv2 = self.conv2(conv1)
        short = x if self.shortcut else self.short(x)
        return F.relu(paddle.add(x=short, y=conv2))


class PGResNet(nn.Layer):
    """e2e ResNet, layers 50: depth [3, 4, 6, 3, 3]."""

    def __init__(self, in_channels=3):
        super().__init__()
        depth = [3, 4, 6, 3, 3]
        num_channels = [64, 256, 512, 1024, 2048]
        num_filters = [64, 128, 256, 512, 512]
        self.conv1_1 = PGConvBNLayer(in_channels, 64, 7, stride=2, act="relu")
        self.pool2d_max = nn.MaxPool2D(kernel_size=3, stride=2, padding=1)
        self.stages = []
        self.out_channels = [3, 64]
        for block in range(len(depth)):
            block_list = []
            shortcut = False
            for i in range(depth[block]):
                block_list.append(self.add_sublayer("bb_%d_%d" % (block, i), PGBottleneckBlock(
                    num_channels[block] if i == 0 else num_filters[block] * 4,
                    num_filters[block], 2 if i == 0 and block != 0 else 1, shortcut=shortcut,
                    if_first=block == i == 0)))
                shortcut = True
            self.out_channels.append(num_filters[block] * 4)
            self.stages.append(nn.Sequential(*block_list))

    def forward(self, inputs):
        out = [inputs]
        y = self.conv1_1(inputs)
        out.append(y)
        y = self.pool2d_max(y)
        for block in self.stages:
            y = block(y)
            out.append(y)
        return out


class PGDeConvBNLayer(nn.Layer):
    def __init__(self, cin, cout, kernel_size=4, stride=2, padding=1, groups=1, if_act=True,
                 act=None):
        super().__init__()
        self.deconv = nn.Conv2DTranspose(cin, cout, kernel_size, stride=stride,
                                         padding=padding, groups=groups, bias_attr=False)
        self.bn = nn.BatchNorm(num_channels=cout, act=act)

    def forward(self, x):
        return self.bn(self.deconv(x))


class PGFPN(nn.Layer):
    def __init__(self, in_channels):
        super().__init__()
        num_inputs = [2048, 2048, 1024, 512, 256]
        num_outputs = [256, 256, 192, 192, 128]
        self.out_channels = 128
        self.conv_bn_layer_1 = PGConvBNLayer(3, 32, 3, 1, act=None)
        self.conv_bn_layer_2 = PGConvBNLayer(64, 64, 3, 1, act=None)
        self.conv_bn_layer_3 = PGConvBNLayer(256, 128, 3, 1, act=None)
        self.conv_bn_layer_4 = PGConvBNLayer(32, 64, 3, 2, act=None)
        self.conv_bn_layer_5 = PGConvBNLayer(64, 64, 3, 1, act="relu")
        self.conv_bn_layer_6 = PGConvBNLayer(64, 128, 3, 2, act=None)
        self.conv_bn_layer_7 = PGConvBNLayer(128, 128, 3, 1, act="relu")
        self.conv_bn_layer_8 = PGConvBNLayer(128, 128, 1, 1, act=None)
        for i in range(5):
            setattr(self, f"conv_h{i}", PGConvBNLayer(num_inputs[i], num_outputs[i], 1, 1))
        self.dconv0 = PGDeConvBNLayer(num_outputs[0], num_outputs[1])
        for i in (1, 2, 3):
            setattr(self, f"dconv{i}", PGDeConvBNLayer(num_outputs[i], num_outputs[i + 1],
                                                       act=None))
        for i in (1, 2, 3, 4):
            setattr(self, f"conv_g{i}", PGConvBNLayer(num_outputs[i], num_outputs[i], 3, 1,
                                                      act="relu"))
        self.convf = PGConvBNLayer(num_outputs[4], num_outputs[4], 1, 1, act=None)

    def forward(self, x):
        c0, c1, c2, c3, c4, c5, c6 = x
        h = [self.conv_bn_layer_1(c0), self.conv_bn_layer_2(c1), self.conv_bn_layer_3(c2)]
        g0 = self.conv_bn_layer_4(h[0])
        g1 = F.relu(paddle.add(g0, h[1]))
        g1 = self.conv_bn_layer_6(self.conv_bn_layer_5(g1))
        g2 = F.relu(paddle.add(g1, h[2]))
        f_down = self.conv_bn_layer_8(self.conv_bn_layer_7(g2))

        f1 = [c6, c5, c4, c3, c2]
        h = [getattr(self, f"conv_h{i}")(f1[i]) for i in range(5)]
        g = self.dconv0(h[0])
        for i in (1, 2, 3):
            g = F.relu(paddle.add(g, h[i]))
            g = getattr(self, f"dconv{i}")(getattr(self, f"conv_g{i}")(g))
        g = F.relu(paddle.add(x=g, y=h[4]))
        f_up = self.convf(self.conv_g4(g))
        return F.relu(paddle.add(f_down, f_up))


class PGHeadConvBNLayer(nn.Layer):
    def __init__(self, cin, cout, k, stride, padding, act=None):
        super().__init__()
        self.conv = nn.Conv2D(cin, cout, k, stride, padding, bias_attr=False)
        self.bn = nn.BatchNorm(num_channels=cout, act=act)

    def forward(self, x):
        return self.bn(self.conv(x))


class PGHead(nn.Layer):
    """character_length = dictionary lines + 1 (ic15: 37)."""

    def __init__(self, in_channels, character_length=37):
        super().__init__()
        for name, widths in (("score", (64, 64, 128)), ("boder", (64, 64, 128)),
                             ("char", (128, 128, 256, 256, 256)),
                             ("direc", (64, 64, 128))):
            cin = in_channels
            for i, w in enumerate(widths, 1):
                k = 3 if i % 2 == 0 else 1
                setattr(self, f"conv_f_{name}{i}",
                        PGHeadConvBNLayer(cin, w, k, 1, k // 2, act="relu"))
                cin = w
        self.conv1 = nn.Conv2D(128, 1, 3, 1, 1, bias_attr=False)
        self.conv2 = nn.Conv2D(128, 4, 3, 1, 1, bias_attr=False)
        self.conv3 = nn.Conv2D(256, character_length, 3, 1, 1, bias_attr=False)
        self.conv4 = nn.Conv2D(128, 2, 3, 1, 1, bias_attr=False)

    def forward(self, x):
        f_score = self.conv_f_score3(self.conv_f_score2(self.conv_f_score1(x)))
        f_score = sigmoid(self.conv1(f_score))
        f_border = self.conv_f_boder3(self.conv_f_boder2(self.conv_f_boder1(x)))
        f_border = self.conv2(f_border)
        f_char = x
        for i in range(1, 6):
            f_char = getattr(self, f"conv_f_char{i}")(f_char)
        f_char = self.conv3(f_char)
        f_direction = self.conv_f_direc3(self.conv_f_direc2(self.conv_f_direc1(x)))
        f_direction = self.conv4(f_direction)
        return {"f_score": f_score, "f_border": f_border, "f_char": f_char,
                "f_direction": f_direction}


class BaseModel(nn.Layer):
    def __init__(self, backbone, neck, head):
        super().__init__()
        self.backbone, self.neck, self.head = backbone, neck, head

    def forward(self, x):
        return self.head(self.neck(self.backbone(x)))


def sast():
    backbone = ResNet_SAST()
    neck = SASTFPN(backbone.out_channels, with_cab=True)
    return BaseModel(backbone, neck, SASTHead(neck.out_channels))


def fce():
    """det_r50_vd_dcn_fce_ctw with a 32-channel FPN (the config's 256 is a free width)."""
    backbone = ResNet_vd(dcn_stage=[False, True, True, True], out_indices=[1, 2, 3])
    neck = FCEFPN(backbone.out_channels, 32, has_extra_convs=False, extra_stage=0)
    return BaseModel(backbone, neck, FCEHead(32, fourier_degree=5))


def pgnet():
    backbone = PGResNet()
    neck = PGFPN(backbone.out_channels)
    return BaseModel(backbone, neck, PGHead(neck.out_channels))


BUILDERS = {"sast": sast, "fce": fce, "pgnet": pgnet}


def build(arch, seed=0):
    paddle.seed(seed)
    return randomize_scaled(BUILDERS[arch](), seed)


if __name__ == "__main__":
    arch, prefix, fmt = sys.argv[1:4]
    model = build(arch)
    spec = [paddle.static.InputSpec([None, 3, None, None], "float32", "x")]
    paddle.jit.save(model, prefix, input_spec=spec)
    if fmt == "pir":
        train = os.path.join(os.path.dirname(os.path.dirname(prefix)), "train")
        os.makedirs(train, exist_ok=True)
        paddle.save(model.state_dict(), os.path.join(train, "best_accuracy.pdparams"))
