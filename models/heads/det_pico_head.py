"""PicoDet's heads as PaddleDetection writes them (ppdet/modeling/heads/pico_head.py PicoFeat,
PicoHead and PicoHeadV2): PicoHead is the head of PaddleOCR's PP-Structure layout models
(picodet_lcnet_x1_0_fgd_layout*), PicoHeadV2 (at the end of this file) that of PaddleX's
PP-DocLayout-S/M.

Per FPN level: a tower of depthwise 5x5 + pointwise 1x1 conv/BN/hardswish pairs (PicoFeat),
then one 1x1 conv giving class logits and the GFL box distribution (4 sides x (reg_max + 1)
bins) in one tensor when ``share_cls_reg``. The forward returns what the layout inference
exports return (exported with PaddleDetection's ``export.post_process: False``, the form
PaddleOCR's ppstructure/layout/predict_layout.py reads): per level the class scores after a
sigmoid, [N, h*w, num_classes], then per level the raw box distributions,
[N, h*w, 4 * (reg_max + 1)] — all scores first, then all distributions. Decoding (softmax over
bins, distances x stride from cell centres) and NMS are PicoDetPostProcess in
pipeline/postprocess/layout.py.

Names follow PaddleDetection: ``conv_feat.cls_conv_dw{level}.{i}`` and
``conv_feat.cls_conv_pw{level}.{i}`` (ConvNormLayer: ``conv``, ``norm``), ``head_cls{level}``.
Training checkpoints also hold GFLHead's unused ``p{k}_feat.scale_reg`` and the
``distribution_project.project`` buffer; the mapping table ignores them.
"""

import torch
from torch import nn
import torch.nn.functional as F

from ..layers import batch_norm, make_act
from ..multiclass_nms import multiclass_nms
from ..necks.csp_pan import DPModule
from ..registry import register


class ConvNormLayer(nn.Module):
    """PaddleDetection's ConvNormLayer with norm_type 'bn' and no conv bias: conv -> BN."""

    def __init__(self, ch_in, ch_out, filter_size, stride=1, groups=1):
        super().__init__()
        self.conv = nn.Conv2d(ch_in, ch_out, filter_size, stride, (filter_size - 1) // 2,
                              groups=groups, bias=False)
        self.norm = batch_norm(ch_out)

    def forward(self, x):
        return self.norm(self.conv(x))


class PicoFeat(nn.Module):
    """The per-level conv tower. Paddle registers its layers under dotted names
    (``cls_conv_dw0.0``); a ModuleList per level and kind gives the same names here."""

    def __init__(self, feat_in=256, feat_out=96, num_fpn_stride=3, num_convs=2, norm_type="bn",
                 share_cls_reg=False, act="hard_swish", use_se=False, **_):
        super().__init__()
        if norm_type not in ("bn", "sync_bn"):
            raise ValueError(f"PicoFeat norm_type {norm_type!r} is not supported (bn only)")
        if not share_cls_reg:
            # the layout models share one tower (PaddleDetection requires it with use_se)
            raise ValueError("PicoFeat: only share_cls_reg: true is supported")
        self.share_cls_reg = share_cls_reg
        self.use_se = use_se
        self.num_convs = num_convs
        self.act = make_act(act)
        for level in range(num_fpn_stride):
            ins = [feat_in if i == 0 else feat_out for i in range(num_convs)]
            # the depthwise conv has groups = feat_out (PaddleDetection's choice; feat_in ==
            # feat_out in every PicoDet config)
            setattr(self, f"cls_conv_dw{level}", nn.ModuleList(
                ConvNormLayer(c, feat_out, 5, groups=feat_out) for c in ins))
            setattr(self, f"cls_conv_pw{level}", nn.ModuleList(
                ConvNormLayer(c, feat_out, 1) for c in ins))
        # PicoHeadV2's towers end in an SE-like block per level: se.{level}.fc, se.{level}.conv
        self.se = nn.ModuleList(PicoSE(feat_out) for _ in range(num_fpn_stride)) if use_se \
            else None

    def forward(self, x, level):
        dw, pw = getattr(self, f"cls_conv_dw{level}"), getattr(self, f"cls_conv_pw{level}")
        for i in range(self.num_convs):
            # PaddleDetection appends dw then pw to one list and applies act after each
            x = self.act(dw[i](x))
            x = self.act(pw[i](x))
        return x

    def forward_se(self, x, level):
        """(tower output, its SE-weighted form after act): PicoFeat's (cls_feat, se_feat)."""
        x = self.forward(x, level)
        return x, self.act(self.se[level](x, F.adaptive_avg_pool2d(x, 1)))


class PicoSE(nn.Module):
    """feat * sigmoid(fc(mean of feat)), then a 1x1 conv + BN (``fc`` has a bias)."""

    def __init__(self, channels):
        super().__init__()
        self.fc = nn.Conv2d(channels, channels, 1)
        self.conv = ConvNormLayer(channels, channels, 1)

    def forward(self, feat, avg_feat):
        return self.conv(feat * torch.sigmoid(self.fc(avg_feat)))


@register("Head")
class PicoHead(nn.Module):
    """Returns [scores level 0..L-1] + [box distributions level 0..L-1], the export's outputs."""

    def __init__(self, in_channels=None, conv_feat=None, num_classes=80, fpn_stride=(8, 16, 32),
                 reg_max=16, feat_in_chan=96, use_sigmoid=True, **_training_only):
        super().__init__()
        cfg = dict(conv_feat or {})
        cfg.pop("name", None)
        self.conv_feat = PicoFeat(**cfg)
        self.num_classes = int(num_classes)
        self.cls_out_channels = self.num_classes if use_sigmoid else self.num_classes + 1
        self.fpn_stride = list(fpn_stride)
        self.reg_max = int(reg_max)
        self.out_channels = self.num_classes  # the label list's length (pipeline check)
        for level in range(len(self.fpn_stride)):
            setattr(self, f"head_cls{level}", nn.Conv2d(
                feat_in_chan, self.cls_out_channels + 4 * (self.reg_max + 1), 1))

    def forward(self, feats):
        if len(feats) != len(self.fpn_stride):
            raise ValueError(f"PicoHead expects {len(self.fpn_stride)} levels, got {len(feats)}")
        scores, boxes = [], []
        for level, feat in enumerate(feats):
            logits = getattr(self, f"head_cls{level}")(self.conv_feat(feat, level))
            cls, box = torch.split(logits, [self.cls_out_channels, 4 * (self.reg_max + 1)], 1)
            n = logits.shape[0]
            scores.append(torch.sigmoid(cls).reshape(n, self.cls_out_channels, -1)
                          .transpose(1, 2))
            boxes.append(box.reshape(n, 4 * (self.reg_max + 1), -1).transpose(1, 2))
        return scores + boxes


class Integral(nn.Module):
    """GFL's expectation over the box distribution: softmax over ``reg_max + 1`` bins, dot
    with ``project`` (a persistable buffer, 0..reg_max, in Paddle's programs and
    checkpoints)."""

    def __init__(self, reg_max=16):
        super().__init__()
        self.reg_max = reg_max
        self.register_buffer("project", torch.linspace(0, reg_max, reg_max + 1))

    def forward(self, x):
        return F.softmax(x.reshape(-1, self.reg_max + 1), dim=1) @ self.project


@register("Head")
class PicoHeadV2(nn.Module):
    """PaddleDetection's PicoHeadV2 (ppdet/modeling/heads/pico_head.py) as PP-DocLayout-S/M
    export it (``export: {post_process: true, nms: true}``): per level the tower
    (PicoFeat with SE), class logits (``head_cls{i}``) and box distributions
    (``head_reg{i}``) from the SE features, the class score aligned by ``cls_align.{i}`` (a
    DPModule to one channel): sqrt(sigmoid(logit) * sigmoid(align) + 1e-9); distributions
    to distances by ``distribution_project``, boxes = (cell centre -/+ distance) x stride,
    divided by the image's ``scale_factor`` [h, w], then Paddle's multiclass_nms3 with the
    ``nms`` settings. Returns what the program returns: rows [label, score, x0, y0, x1, y1]
    of all images, and the row count per image (int32).

    Names follow PaddleDetection; training checkpoints also hold the ``head_cls_list.{i}`` /
    ``head_reg_list.{i}`` aliases of the same layers and GFLHead's unused
    ``p{k}_feat.scale_reg`` (the mapping table ignores them)."""

    def __init__(self, in_channels=None, conv_feat=None, num_classes=80, fpn_stride=(8, 16, 32),
                 reg_max=16, feat_in_chan=96, cell_offset=0.0, act="hard_swish",
                 use_align_head=True, nms=None, **_training_only):
        super().__init__()
        cfg = dict(conv_feat or {})
        cfg.pop("name", None)
        if not cfg.get("use_se"):
            raise ValueError("PicoHeadV2 needs conv_feat.use_se: true (its heads read the SE "
                             "features)")
        if not use_align_head:
            raise ValueError("PicoHeadV2: only use_align_head: true is supported")
        self.conv_feat = PicoFeat(**cfg)
        self.num_classes = self.out_channels = int(num_classes)
        self.fpn_stride = [int(s) for s in fpn_stride]
        self.reg_max = int(reg_max)
        self.cell_offset = float(cell_offset)
        nms = dict(nms or {})
        nms.pop("name", None)
        self.nms = {"score_threshold": float(nms.get("score_threshold", 0.05)),
                    "nms_top_k": int(nms.get("nms_top_k", -1)),
                    "keep_top_k": int(nms.get("keep_top_k", 100)),
                    "nms_threshold": float(nms.get("nms_threshold", 0.5)),
                    "normalized": bool(nms.get("normalized", True)),
                    "nms_eta": float(nms.get("nms_eta", 1.0)),
                    "background_label": int(nms.get("background_label", -1))}
        for level in range(len(self.fpn_stride)):
            setattr(self, f"head_cls{level}", nn.Conv2d(feat_in_chan, self.num_classes, 1))
            setattr(self, f"head_reg{level}", nn.Conv2d(feat_in_chan, 4 * (self.reg_max + 1), 1))
        self.cls_align = nn.ModuleList(DPModule(feat_in_chan, 1, 5, act=act, use_act_in_out=False)
                                       for _ in self.fpn_stride)
        self.distribution_project = Integral(self.reg_max)

    def _anchors(self, feats):
        points, strides = [], []
        for feat, stride in zip(feats, self.fpn_stride):
            h, w = feat.shape[2:]
            ys, xs = torch.meshgrid(torch.arange(h) + self.cell_offset,
                                    torch.arange(w) + self.cell_offset, indexing="ij")
            points.append(torch.stack([xs, ys], -1).to(feat.dtype).reshape(-1, 2))
            strides.append(torch.full((h * w, 1), float(stride), dtype=feat.dtype))
        return torch.cat(points), torch.cat(strides)

    def forward(self, feats, targets=None):
        if len(feats) != len(self.fpn_stride):
            raise ValueError(f"PicoHeadV2 expects {len(self.fpn_stride)} levels, got {len(feats)}")
        if not targets:
            raise ValueError("PicoHeadV2 needs the image's scale_factor as a second input")
        scale_factor = targets[0]
        scores, dists = [], []
        for level, feat in enumerate(feats):
            n, _, h, w = feat.shape
            cls_feat, se_feat = self.conv_feat.forward_se(feat, level)
            logit = getattr(self, f"head_cls{level}")(se_feat)
            reg = getattr(self, f"head_reg{level}")(se_feat)
            align = torch.sigmoid(self.cls_align[level](cls_feat))
            score = torch.sqrt(torch.sigmoid(logit) * align + 1e-9)
            scores.append(score.reshape(n, self.num_classes, h * w))
            dists.append(self.distribution_project(reg.permute(0, 2, 3, 1)).reshape(n, h * w, 4))
        scores, dists = torch.cat(scores, -1), torch.cat(dists, 1)
        points, strides = self._anchors(feats)
        lt, rb = dists.split(2, -1)
        boxes = torch.cat([-lt + points, rb + points], -1) * strides
        scale_y, scale_x = scale_factor.to(boxes.dtype).split(1, -1)
        boxes = boxes / torch.cat([scale_x, scale_y, scale_x, scale_y], -1).reshape(-1, 1, 4)
        return multiclass_nms(boxes, scores, **self.nms)
