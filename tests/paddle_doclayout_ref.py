"""Paddle twin of PaddleX's PP-DocLayout-S/M (PicoDet: LCNet -> LCPAN -> PicoHeadV2, exported
with ``export: {post_process: true, nms: true}``), transcribed from PaddleDetection's own
modules (same module tree, same parameter names): ppdet/modeling/necks/lc_pan.py (LCPAN:
CSPPAN's layers and forward, lcnet.py's DepthwiseSeparable blocks), heads/pico_head.py
(PicoSE, PicoFeat with ``use_se``, PicoHeadV2 with what GFLHead's constructor leaves behind),
heads/gfl_head.py (Integral), ops.py multiclass_nms (the ``multiclass_nms3`` operator, PIR
and old-IR forms) and architectures/picodet.py (inputs image + scale_factor; outputs the NMS
rows and the per-image count). LCNet, Channel_T, ConvNormLayer, ScaleReg and the
depthwise-separable block are imported from the twins that already transcribe them.

Run as a script it builds the small twin of tests/test_doclayout.py, randomises every
parameter, BN statistic and the Integral's ``project`` buffer (seeded) and saves it:

    python paddle_doclayout_ref.py PREFIX pdmodel|pir [TRAIN.pdparams]
"""

import os
import sys

if __name__ == "__main__" and sys.argv[2] == "pdmodel":
    os.environ["FLAGS_enable_pir_api"] = "0"  # before paddle is imported

import numpy as np  # noqa: E402
import paddle  # noqa: E402
import paddle.nn as nn  # noqa: E402
import paddle.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from paddle_det_twins import _legacy, _legacy_op, sigmoid  # noqa: E402  (also in 2.x)
from paddle_layout_ref import (CSPPAN, LCNet, ConvNormLayer,  # noqa: E402
                               gfl_head_init, randomize)
from paddle_table_ref import DepthwiseSeparable  # noqa: E402


def sqrt(x):
    """Tensor.sqrt (op sqrt); paddle 3.3's old IR needs the op appended by hand."""
    return x.sqrt() if not _legacy() else _legacy_op("sqrt", {"X": x}, {}, x.dtype)


# ---- csp_pan.py DPModule (the version with use_act_in_out)

class DPModule(nn.Layer):
    def __init__(self, in_channel=96, out_channel=96, kernel_size=3, stride=1,
                 act="leaky_relu", use_act_in_out=True):
        super().__init__()
        self.use_act_in_out = use_act_in_out
        self.dwconv = nn.Conv2D(in_channel, out_channel, kernel_size, groups=out_channel,
                                padding=(kernel_size - 1) // 2, stride=stride, bias_attr=False)
        self.bn1 = nn.BatchNorm2D(out_channel)
        self.pwconv = nn.Conv2D(out_channel, out_channel, 1, groups=1, padding=0,
                                bias_attr=False)
        self.bn2 = nn.BatchNorm2D(out_channel)
        if act == "hard_swish":
            act = "hardswish"
        self.act = act

    def forward(self, x):
        x = self.bn1(self.dwconv(x))
        if self.act:
            x = getattr(F, self.act)(x)
        x = self.bn2(self.pwconv(x))
        if self.use_act_in_out and self.act:
            x = getattr(F, self.act)(x)
        return x


# ---- lc_pan.py

class LCPAN(CSPPAN):
    """lc_pan.py LCPAN: CSPPAN's constructor and forward (lc_pan.py repeats them verbatim,
    the twin inherits them) with each fusing CSP layer replaced by two depthwise-separable
    blocks (NET_CONFIG block1/block2: 2C -> 2C -> C)."""

    def __init__(self, in_channels, out_channels, kernel_size=5, num_features=3,
                 use_depthwise=True, act="hard_swish",
                 spatial_scales=(0.125, 0.0625, 0.03125)):
        super().__init__(in_channels, out_channels, kernel_size, num_features, 1,
                         use_depthwise, act, spatial_scales)
        NET_CONFIG = {
            "block1": [[kernel_size, out_channels * 2, out_channels * 2, 1, False],
                       [kernel_size, out_channels * 2, out_channels, 1, False]],
            "block2": [[kernel_size, out_channels * 2, out_channels * 2, 1, False],
                       [kernel_size, out_channels * 2, out_channels, 1, False]],
        }

        def blocks(config):
            return nn.Sequential(*[
                DepthwiseSeparable(num_channels=in_c, num_filters=out_c, dw_size=k, stride=s,
                                   use_se=se)
                for i, (k, in_c, out_c, s, se) in enumerate(NET_CONFIG[config])])

        n = len(self.in_channels)
        self.top_down_blocks = nn.LayerList([blocks("block1") for _ in range(n - 1)])
        self.bottom_up_blocks = nn.LayerList([blocks("block2") for _ in range(n - 1)])


# ---- gfl_head.py Integral (eval form), pico_head.py PicoSE / PicoFeat / PicoHeadV2

class Integral(nn.Layer):
    def __init__(self, reg_max=16):
        super().__init__()
        self.reg_max = reg_max
        self.register_buffer("project", paddle.linspace(0, self.reg_max, self.reg_max + 1))

    def forward(self, x):
        x = F.softmax(x.reshape([-1, self.reg_max + 1]), axis=1)
        x = F.linear(x, self.project)
        return x


class PicoSE(nn.Layer):
    def __init__(self, feat_channels):
        super().__init__()
        self.fc = nn.Conv2D(feat_channels, feat_channels, 1)
        self.conv = ConvNormLayer(feat_channels, feat_channels, 1, 1)

    def forward(self, feat, avg_feat):
        weight = sigmoid(self.fc(avg_feat))
        return self.conv(feat * weight)


class PicoFeat(nn.Layer):
    def __init__(self, feat_in=256, feat_out=96, num_fpn_stride=3, num_convs=2,
                 norm_type="bn", share_cls_reg=False, act="hard_swish", use_se=False):
        super().__init__()
        self.num_convs = num_convs
        self.norm_type = norm_type
        self.share_cls_reg = share_cls_reg
        self.act = act
        self.use_se = use_se
        self.cls_convs = []
        self.reg_convs = []
        if use_se:
            assert share_cls_reg is True
            self.se = nn.LayerList()
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
            if use_se:
                self.se.append(PicoSE(feat_out))

    def act_func(self, x):
        if self.act == "leaky_relu":
            x = F.leaky_relu(x)
        elif self.act == "hard_swish":
            x = F.hardswish(x)
        elif self.act == "relu6":
            x = F.relu6(x)
        return x

    def forward(self, fpn_feat, stage_idx):
        cls_feat = fpn_feat
        reg_feat = fpn_feat
        for i in range(len(self.cls_convs[stage_idx])):
            cls_feat = self.act_func(self.cls_convs[stage_idx][i](cls_feat))
            reg_feat = cls_feat
        if self.use_se:
            avg_feat = F.adaptive_avg_pool2d(cls_feat, (1, 1))
            se_feat = self.act_func(self.se[stage_idx](cls_feat, avg_feat))
            return cls_feat, se_feat
        return cls_feat, reg_feat


def multiclass_nms(bboxes, scores, score_threshold, nms_top_k, keep_top_k, nms_threshold=0.3,
                   normalized=True, nms_eta=1., background_label=-1, return_index=False,
                   return_rois_num=True, rois_num=None):
    """ppdet/modeling/ops.py multiclass_nms: PIR programs get _C_ops.multiclass_nms3, old-IR
    programs the multiclass_nms3 op appended by its LayerHelper."""
    if paddle.framework.in_pir_mode() or paddle.in_dynamic_mode():
        attrs = (score_threshold, nms_top_k, keep_top_k, nms_threshold, normalized, nms_eta,
                 background_label)
        output, index, nms_rois_num = paddle._C_ops.multiclass_nms3(bboxes, scores, rois_num,
                                                                    *attrs)
        return output, nms_rois_num, index if return_index else None
    from paddle.base.layer_helper import LayerHelper

    helper = LayerHelper("multiclass_nms3", **locals())
    output = helper.create_variable_for_type_inference(dtype=bboxes.dtype)
    index = helper.create_variable_for_type_inference(dtype="int32")
    inputs = {"BBoxes": bboxes, "Scores": scores}
    outputs = {"Out": output, "Index": index}
    nms_rois_num = None
    if return_rois_num:
        nms_rois_num = helper.create_variable_for_type_inference(dtype="int32")
        outputs["NmsRoisNum"] = nms_rois_num
    helper.append_op(type="multiclass_nms3", inputs=inputs, outputs=outputs, attrs={
        "background_label": background_label, "score_threshold": score_threshold,
        "nms_top_k": nms_top_k, "nms_threshold": nms_threshold, "keep_top_k": keep_top_k,
        "nms_eta": nms_eta, "normalized": normalized})
    output.stop_gradient = True
    index.stop_gradient = True
    return output, nms_rois_num, index if return_index else None


class MultiClassNMS:
    """ppdet/modeling/layers.py MultiClassNMS (defaults as there; background_label -1)."""

    def __init__(self, score_threshold=.05, nms_top_k=-1, keep_top_k=100, nms_threshold=.5,
                 normalized=True, nms_eta=1.0):
        self.kwargs = dict(score_threshold=score_threshold, nms_top_k=nms_top_k,
                           keep_top_k=keep_top_k, nms_threshold=nms_threshold,
                           normalized=normalized, nms_eta=nms_eta)

    def __call__(self, bboxes, score, background_label=-1):
        return multiclass_nms(bboxes, score, background_label=background_label, **self.kwargs)


class PicoHeadV2(nn.Layer):
    """GFLHead.__init__ (layers PicoHeadV2 clears or never uses) + PicoHeadV2; forward_eval
    with export_post_process=True, then post_process with export_nms=True."""

    def __init__(self, conv_feat, num_classes=80, fpn_stride=(8, 16, 32), prior_prob=0.01,
                 use_align_head=True, reg_max=16, feat_in_chan=96, nms=None, cell_offset=0,
                 act="hard_swish"):
        super().__init__()
        gfl_head_init(self, conv_feat, num_classes, fpn_stride, reg_max, feat_in_chan,
                      integral=Integral)  # this module's eval-form Integral
        # PicoHeadV2.__init__
        self.nms = nms
        self.cell_offset = cell_offset
        self.act = act
        self.use_align_head = use_align_head
        self.gfl_head_cls = None
        self.gfl_head_reg = None
        self.scales_regs = None
        self.head_cls_list = nn.LayerList()
        self.head_reg_list = nn.LayerList()
        self.cls_align = nn.LayerList()
        for i in range(len(fpn_stride)):
            head_cls = self.add_sublayer("head_cls" + str(i), nn.Conv2D(
                feat_in_chan, self.cls_out_channels, 1, 1, 0))
            self.head_cls_list.append(head_cls)
            head_reg = self.add_sublayer("head_reg" + str(i), nn.Conv2D(
                feat_in_chan, 4 * (self.reg_max + 1), 1, 1, 0))
            self.head_reg_list.append(head_reg)
            if self.use_align_head:
                self.cls_align.append(DPModule(feat_in_chan, 1, 5, act=self.act,
                                               use_act_in_out=False))

    def forward(self, fpn_feats):
        anchor_points, stride_tensor = self._generate_anchors(fpn_feats)
        cls_score_list, box_list = [], []
        for i, (fpn_feat, stride) in enumerate(zip(fpn_feats, self.fpn_stride)):
            _, _, h, w = fpn_feat.shape
            conv_cls_feat, se_feat = self.conv_feat(fpn_feat, i)
            cls_logit = self.head_cls_list[i](se_feat)
            reg_pred = self.head_reg_list[i](se_feat)
            if self.use_align_head:
                cls_prob = sigmoid(self.cls_align[i](conv_cls_feat))
                cls_score = sqrt(sigmoid(cls_logit) * cls_prob + 1e-9)
            else:
                cls_score = sigmoid(cls_logit)
            l = h * w  # noqa: E741
            cls_score_out = cls_score.reshape([-1, self.cls_out_channels, l])
            bbox_pred = reg_pred.transpose([0, 2, 3, 1])
            bbox_pred = self.distribution_project(bbox_pred)
            bbox_pred = bbox_pred.reshape([-1, l, 4])
            cls_score_list.append(cls_score_out)
            box_list.append(bbox_pred)
        cls_score_list = paddle.concat(cls_score_list, axis=-1)
        box_list = paddle.concat(box_list, axis=1)
        # bbox_utils.batch_distance2bbox
        lt, rb = paddle.split(box_list, 2, -1)
        box_list = paddle.concat([-lt + anchor_points, rb + anchor_points], -1)
        box_list *= stride_tensor
        return cls_score_list, box_list

    def _generate_anchors(self, feats):
        anchor_points = []
        stride_tensor = []
        for i, stride in enumerate(self.fpn_stride):
            _, _, h, w = feats[i].shape
            shift_x = paddle.arange(end=w) + self.cell_offset
            shift_y = paddle.arange(end=h) + self.cell_offset
            shift_y, shift_x = paddle.meshgrid(shift_y, shift_x)
            anchor_point = paddle.cast(paddle.stack([shift_x, shift_y], axis=-1),
                                       dtype="float32")
            anchor_points.append(anchor_point.reshape([-1, 2]))
            stride_tensor.append(paddle.full([h * w, 1], stride, dtype="float32"))
        return paddle.concat(anchor_points), paddle.concat(stride_tensor)

    def post_process(self, head_outs, scale_factor):
        pred_scores, pred_bboxes = head_outs
        scale_y, scale_x = paddle.split(scale_factor, 2, axis=-1)
        scale_factor = paddle.concat([scale_x, scale_y, scale_x, scale_y],
                                     axis=-1).reshape([-1, 1, 4])
        pred_bboxes /= scale_factor
        bbox_pred, bbox_num, _ = self.nms(pred_bboxes, pred_scores)
        return bbox_pred, bbox_num


class PicoDet(nn.Layer):
    """architectures/picodet.py with export_post_process and export_nms: the program takes
    image and scale_factor and returns the NMS rows and the per-image count."""

    def __init__(self, scale=0.25, neck_channels=16, num_convs=2, num_classes=6, reg_max=7,
                 nms=None):
        super().__init__()
        self.backbone = LCNet(scale=scale, feature_maps=[3, 4, 5])
        self.neck = LCPAN(self.backbone._out_channels, neck_channels, num_features=4)
        self.head = PicoHeadV2(
            PicoFeat(neck_channels, neck_channels, 4, num_convs, "bn", share_cls_reg=True,
                     use_se=True),
            num_classes, [8, 16, 32, 64], 0.01, True, reg_max, neck_channels,
            nms or MultiClassNMS(), cell_offset=0.5)

    def forward(self, image, scale_factor):
        head_outs = self.head(self.neck(self.backbone(image)))
        return self.head.post_process(head_outs, scale_factor)


# the NMS of the twin: PaddleX's PP-DocLayout IoU threshold, every candidate kept otherwise, so
# that the verifier sees every score and box of every level (a random network's scores are
# flat: a threshold would hide whole levels)
TWIN_NMS = dict(score_threshold=0.0, nms_top_k=1000, keep_top_k=5000, nms_threshold=0.6)


if __name__ == "__main__":
    prefix, fmt = sys.argv[1:3]
    paddle.seed(0)
    model = randomize(PicoDet(nms=MultiClassNMS(**TWIN_NMS)))
    spec = [paddle.static.InputSpec([None, 3, None, None], "float32", "image"),
            paddle.static.InputSpec([None, 2], "float32", "scale_factor")]
    paddle.jit.save(model, prefix, input_spec=spec)
    if len(sys.argv) > 3:
        os.makedirs(os.path.dirname(sys.argv[3]), exist_ok=True)
        paddle.save(model.state_dict(), sys.argv[3])
