"""PicoDet's head as PaddleDetection writes it (ppdet/modeling/heads/pico_head.py PicoFeat and
PicoHead), the head of PaddleOCR's PP-Structure layout models (picodet_lcnet_x1_0_fgd_layout*).

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

from ..layers import batch_norm, make_act
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
        if not share_cls_reg or use_se:
            # the layout models share one tower; the separate-tower and SE variants changed
            # meaning across PaddleDetection versions and no layout model uses them
            raise ValueError("PicoFeat: only share_cls_reg: true without use_se is supported")
        self.share_cls_reg = share_cls_reg
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

    def forward(self, x, level):
        dw, pw = getattr(self, f"cls_conv_dw{level}"), getattr(self, f"cls_conv_pw{level}")
        for i in range(self.num_convs):
            # PaddleDetection appends dw then pw to one list and applies act after each
            x = self.act(dw[i](x))
            x = self.act(pw[i](x))
        return x


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
