"""Paddle twin of the PicoDet layout network, transcribed from PaddleDetection's own modules
(same module tree, same parameter names): ppdet/modeling/backbones/lcnet.py (LCNet: the
layers of PaddleOCR's det_pp_lcnet PPLCNet, imported from paddle_table_ref, returning the
stages in ``feature_maps``), ppdet/modeling/necks/csp_pan.py (CSPPAN with ``num_features``
4: ``first_top_conv`` / ``second_top_conv``, nn.Upsample x2; its CSP blocks are PaddleOCR's
copy, imported), ppdet/modeling/heads/pico_head.py (PicoFeat, PicoHead with the parameters
GFLHead's constructor leaves behind), exported as the layout models are
(``export.post_process: False``: per-level sigmoid scores, then per-level distributions).

Run as a script it builds the small twin of tests/test_layout.py, randomises every parameter
and BN statistic (seeded) and saves it:

    python paddle_layout_ref.py PREFIX pdmodel|pir
    (pir also writes the training checkpoint PREFIX/../../train/best_accuracy.pdparams)
"""

import math
import os
import sys

if __name__ == "__main__" and sys.argv[2] == "pdmodel":
    os.environ["FLAGS_enable_pir_api"] = "0"  # before paddle is imported

import numpy as np  # noqa: E402
import paddle  # noqa: E402
import paddle.nn as nn  # noqa: E402
import paddle.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from paddle_det_twins import sigmoid  # noqa: E402  (F.sigmoid, also in a 2.x export)
from paddle_table_ref import (NET_CONFIG, CSPLayer, Channel_T, ConvBNLayer,  # noqa: E402
                              DPModule, PPLCNet, make_divisible)


# ---- lcnet.py (the layers are det_pp_lcnet's; LCNet differs in its outputs only)

class LCNet(PPLCNet):
    def __init__(self, scale=1.0, feature_maps=(3, 4, 5)):
        super().__init__(scale=scale)
        self.feature_maps = list(feature_maps)
        out_channels = [make_divisible(NET_CONFIG[b][-1][2] * scale)
                        for b in ("blocks3", "blocks4", "blocks5", "blocks6")]
        self._out_channels = [ch for idx, ch in enumerate(out_channels)
                              if idx + 2 in feature_maps]

    def forward(self, x):
        outs = super().forward(x)
        return [o for i, o in enumerate(outs) if i + 2 in self.feature_maps]


# ---- csp_pan.py (PaddleDetection's CSPPAN)

class CSPPAN(nn.Layer):
    def __init__(self, in_channels, out_channels, kernel_size=5, num_features=3,
                 num_csp_blocks=1, use_depthwise=True, act="hard_swish",
                 spatial_scales=(0.125, 0.0625, 0.03125)):
        super().__init__()
        self.conv_t = Channel_T(in_channels, out_channels, act=act)
        in_channels = [out_channels] * len(spatial_scales)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.spatial_scales = list(spatial_scales)
        self.num_features = num_features
        conv_func = DPModule if use_depthwise else ConvBNLayer
        if self.num_features == 4:
            self.first_top_conv = conv_func(in_channels[0], in_channels[0], kernel_size,
                                            stride=2, act=act)
            self.second_top_conv = conv_func(in_channels[0], in_channels[0], kernel_size,
                                             stride=2, act=act)
            self.spatial_scales.append(self.spatial_scales[-1] / 2)
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        self.top_down_blocks = nn.LayerList()
        for idx in range(len(in_channels) - 1, 0, -1):
            self.top_down_blocks.append(CSPLayer(
                in_channels[idx - 1] * 2, in_channels[idx - 1], kernel_size=kernel_size,
                num_blocks=num_csp_blocks, add_identity=False, use_depthwise=use_depthwise,
                act=act))
        self.downsamples = nn.LayerList()
        self.bottom_up_blocks = nn.LayerList()
        for idx in range(len(in_channels) - 1):
            self.downsamples.append(conv_func(in_channels[idx], in_channels[idx],
                                              kernel_size=kernel_size, stride=2, act=act))
            self.bottom_up_blocks.append(CSPLayer(
                in_channels[idx] * 2, in_channels[idx + 1], kernel_size=kernel_size,
                num_blocks=num_csp_blocks, add_identity=False, use_depthwise=use_depthwise,
                act=act))

    def forward(self, inputs):
        assert len(inputs) == len(self.in_channels)
        inputs = self.conv_t(inputs)
        inner_outs = [inputs[-1]]
        for idx in range(len(self.in_channels) - 1, 0, -1):
            feat_heigh = inner_outs[0]
            feat_low = inputs[idx - 1]
            upsample_feat = self.upsample(feat_heigh)
            inner_out = self.top_down_blocks[len(self.in_channels) - 1 - idx](
                paddle.concat([upsample_feat, feat_low], 1))
            inner_outs.insert(0, inner_out)
        outs = [inner_outs[0]]
        for idx in range(len(self.in_channels) - 1):
            feat_low = outs[-1]
            feat_height = inner_outs[idx + 1]
            downsample_feat = self.downsamples[idx](feat_low)
            out = self.bottom_up_blocks[idx](paddle.concat([downsample_feat, feat_height], 1))
            outs.append(out)
        if self.num_features == 4:
            top_features = self.first_top_conv(inputs[-1])
            top_features = top_features + self.second_top_conv(outs[-1])
            outs.append(top_features)
        return tuple(outs)


# ---- layers.py ConvNormLayer, gfl_head.py ScaleReg / Integral, pico_head.py

class ConvNormLayer(nn.Layer):
    def __init__(self, ch_in, ch_out, filter_size, stride, groups=1):
        super().__init__()
        self.conv = nn.Conv2D(ch_in, ch_out, filter_size, stride=stride,
                              padding=(filter_size - 1) // 2, groups=groups, bias_attr=False)
        self.norm = nn.BatchNorm2D(ch_out)

    def forward(self, inputs):
        return self.norm(self.conv(inputs))


class ScaleReg(nn.Layer):
    def __init__(self):
        super().__init__()
        self.scale_reg = self.create_parameter(
            shape=[1], attr=paddle.ParamAttr(initializer=nn.initializer.Constant(1.0)),
            dtype="float32")

    def forward(self, inputs):
        return inputs * self.scale_reg


class Integral(nn.Layer):
    def __init__(self, reg_max=16):
        super().__init__()
        self.reg_max = reg_max
        self.register_buffer("project", paddle.linspace(0, self.reg_max, self.reg_max + 1))


class PicoFeat(nn.Layer):
    def __init__(self, feat_in=256, feat_out=96, num_fpn_stride=3, num_convs=2,
                 share_cls_reg=False, act="hard_swish"):
        super().__init__()
        self.num_convs = num_convs
        self.share_cls_reg = share_cls_reg
        self.act = act
        self.cls_convs = []
        self.reg_convs = []
        for stage_idx in range(num_fpn_stride):
            cls_subnet_convs = []
            for i in range(self.num_convs):
                in_c = feat_in if i == 0 else feat_out
                cls_conv_dw = self.add_sublayer(
                    "cls_conv_dw{}.{}".format(stage_idx, i),
                    ConvNormLayer(in_c, feat_out, 5, 1, groups=feat_out))
                cls_subnet_convs.append(cls_conv_dw)
                cls_conv_pw = self.add_sublayer(
                    "cls_conv_pw{}.{}".format(stage_idx, i),
                    ConvNormLayer(in_c, feat_out, 1, 1))
                cls_subnet_convs.append(cls_conv_pw)
            self.cls_convs.append(cls_subnet_convs)
            self.reg_convs.append([])

    def act_func(self, x):
        if self.act == "leaky_relu":
            x = F.leaky_relu(x)
        elif self.act == "hard_swish":
            x = F.hardswish(x)
        return x

    def forward(self, fpn_feat, stage_idx):
        cls_feat = fpn_feat
        reg_feat = fpn_feat
        for i in range(len(self.cls_convs[stage_idx])):
            cls_feat = self.act_func(self.cls_convs[stage_idx][i](cls_feat))
            reg_feat = cls_feat
        return cls_feat, reg_feat


def gfl_head_init(head, conv_feat, num_classes, fpn_stride, reg_max, feat_in_chan,
                  integral=None):
    """PaddleDetection's GFLHead.__init__, which PicoHead and PicoHeadV2 run first (its
    sublayers are created, then partly dropped, in this order: it fixes the parameter names)."""
    head.conv_feat = conv_feat
    head.num_classes = num_classes
    head.fpn_stride = list(fpn_stride)
    head.reg_max = reg_max
    head.cls_out_channels = num_classes
    head.gfl_head_cls = head.add_sublayer(
        "gfl_head_cls", nn.Conv2D(feat_in_chan, head.cls_out_channels, 3, padding=1))
    head.gfl_head_reg = head.add_sublayer(
        "gfl_head_reg", nn.Conv2D(feat_in_chan, 4 * (reg_max + 1), 3, padding=1))
    head.scales_regs = []
    for i in range(len(head.fpn_stride)):
        lvl = int(math.log(int(head.fpn_stride[i]), 2))
        head.scales_regs.append(head.add_sublayer("p{}_feat".format(lvl), ScaleReg()))
    head.distribution_project = (integral or Integral)(head.reg_max)


class PicoHead(nn.Layer):
    """GFLHead.__init__ (the layers PicoHead clears or never uses) + PicoHead, forward_eval
    with export_post_process=False."""

    def __init__(self, conv_feat, num_classes=80, fpn_stride=(8, 16, 32), prior_prob=0.01,
                 reg_max=16, feat_in_chan=96):
        super().__init__()
        gfl_head_init(self, conv_feat, num_classes, fpn_stride, reg_max, feat_in_chan)
        # PicoHead.__init__
        self.gfl_head_cls = None
        self.gfl_head_reg = None
        self.scales_regs = None
        self.head_cls_list = []
        for i in range(len(fpn_stride)):
            head_cls = self.add_sublayer("head_cls" + str(i), nn.Conv2D(
                feat_in_chan, self.cls_out_channels + 4 * (self.reg_max + 1), 1, 1, 0))
            self.head_cls_list.append(head_cls)

    def forward(self, fpn_feats):
        cls_logits_list, bboxes_reg_list = [], []
        for i, fpn_feat in enumerate(fpn_feats):
            conv_cls_feat, conv_reg_feat = self.conv_feat(fpn_feat, i)
            cls_logits = self.head_cls_list[i](conv_cls_feat)
            cls_score, bbox_pred = paddle.split(
                cls_logits, [self.cls_out_channels, 4 * (self.reg_max + 1)], axis=1)
            cls_score_out = sigmoid(cls_score).reshape(
                [1, self.cls_out_channels, -1]).transpose([0, 2, 1])
            bbox_pred = bbox_pred.reshape([1, (self.reg_max + 1) * 4, -1]).transpose([0, 2, 1])
            cls_logits_list.append(cls_score_out)
            bboxes_reg_list.append(bbox_pred)
        return (cls_logits_list, bboxes_reg_list)


class PicoDet(nn.Layer):
    """ppdet/modeling/architectures/picodet.py: backbone, neck, head; the export's outputs
    are the head's two lists, flattened."""

    def __init__(self, scale=0.25, neck_channels=16, num_convs=2, num_classes=5, reg_max=7):
        super().__init__()
        self.backbone = LCNet(scale=scale, feature_maps=[3, 4, 5])
        self.neck = CSPPAN(self.backbone._out_channels, neck_channels, num_features=4)
        self.head = PicoHead(PicoFeat(neck_channels, neck_channels, 4, num_convs,
                                      share_cls_reg=True),
                             num_classes, [8, 16, 32, 64], 0.01, reg_max, neck_channels)

    def forward(self, x):
        scores, boxes = self.head(self.neck(self.backbone(x)))
        return list(scores) + list(boxes)


def randomize(layer, seed=0):
    """Every parameter and BN statistic random, scaled by fan-in so activations stay O(1)."""
    rng = np.random.RandomState(seed)
    for name, tensor in layer.state_dict().items():
        shape = list(tensor.shape)
        if name.endswith("_variance"):
            value = rng.uniform(0.5, 1.5, shape)
        elif len(shape) == 4:
            value = rng.uniform(-1, 1, shape) * np.sqrt(3.0 / int(np.prod(shape[1:])))
        else:
            value = rng.uniform(-0.5, 0.5, shape)
        tensor.set_value(value.astype(tensor.numpy().dtype))
    layer.eval()
    return layer


if __name__ == "__main__":
    prefix, fmt = sys.argv[1:3]
    paddle.seed(0)
    model = randomize(PicoDet())
    spec = [paddle.static.InputSpec([1, 3, None, None], "float32", "image")]
    paddle.jit.save(model, prefix, input_spec=spec)
    if fmt == "pir":
        train = os.path.join(os.path.dirname(os.path.dirname(prefix)), "train")
        os.makedirs(train, exist_ok=True)
        paddle.save(model.state_dict(), os.path.join(train, "best_accuracy.pdparams"))
