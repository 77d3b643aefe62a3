"""The DETR architecture as PaddleDetection assembles it (ppdet/modeling/architectures/
detr.py) for RT-DETR and PP-DocLayout-L: ``backbone`` -> ``neck`` (HybridEncoder) ->
``transformer`` (RTDETRTransformer) -> DINOHead's inference pick (the ``eval_idx`` layer,
which the decoder already returns) -> ``post_process`` (DETRPostProcess, part of the exported
program when PaddleDetection's ``export.post_process`` is on, as in PaddleX's exports).

The program's inputs are ``im_shape`` (network input [h, w]), ``image`` and ``scale_factor``
([h, w] network / original), in that order; its outputs ``bbox`` [N * top_k, 6] rows of
(class, score, x0, y0, x1, y1) in original-image pixels, and ``bbox_num`` [N] (int32).
"""

import copy

import torch
from torch import nn

from .registry import lookup


class DETRPostProcess(nn.Module):
    """ppdet/modeling/post_process.py DETRPostProcess (box decoding 'origin', no masks):
    cx cy w h -> corners scaled by the original size round(im_shape / scale_factor); with
    ``use_focal_loss`` the ``num_top_queries`` best (query, class) sigmoid scores over all
    queries and classes, else the softmax's best non-background class per query."""

    def __init__(self, num_classes=80, num_top_queries=100, use_focal_loss=False,
                 **_training_only):
        super().__init__()
        self.num_classes, self.num_top_queries = num_classes, num_top_queries
        self.use_focal_loss = use_focal_loss

    def forward(self, bboxes, logits, im_shape, scale_factor):
        cxcy, wh = bboxes[..., :2], bboxes[..., 2:]
        bbox_pred = torch.cat([cxcy - 0.5 * wh, cxcy + 0.5 * wh], dim=-1)
        origin = torch.floor(im_shape / scale_factor + 0.5)  # [bs, 2] = h, w
        bbox_pred = bbox_pred * origin.flip(1).repeat(1, 2).unsqueeze(1)
        bs = logits.shape[0]
        if self.use_focal_loss:
            scores, index = torch.topk(torch.sigmoid(logits).flatten(1), self.num_top_queries,
                                       dim=-1)
            labels = index % self.num_classes
            index = index // self.num_classes
            bbox_pred = torch.gather(bbox_pred, 1, index[..., None].expand(-1, -1, 4))
        else:
            probs = torch.softmax(logits, -1)[:, :, :-1]
            scores, labels = probs.max(-1)
            if scores.shape[1] > self.num_top_queries:
                scores, index = torch.topk(scores, self.num_top_queries, dim=-1)
                labels = torch.gather(labels, 1, index)
                bbox_pred = torch.gather(bbox_pred, 1, index[..., None].expand(-1, -1, 4))
        out = torch.cat([labels[..., None].to(scores.dtype), scores[..., None], bbox_pred], -1)
        bbox_num = torch.full((bs,), out.shape[1], dtype=torch.int32)
        return out.reshape(-1, 6), bbox_num


class DETR(nn.Module):
    """Built from an ``Architecture`` dict: Backbone, Neck, Transformer (the
    RTDETRTransformer config) and PostProcess (DETRPostProcess's parameters)."""

    def __init__(self, arch):
        super().__init__()
        arch = copy.deepcopy(arch)
        self.model_type = arch.get("model_type")
        parts = {}
        for kind in ("Backbone", "Neck", "Transformer"):
            cfg = dict(arch[kind])
            registry_kind = "Head" if kind == "Transformer" else kind
            parts[kind] = (lookup(registry_kind, cfg.pop("name"), self.model_type), cfg)
        cls, cfg = parts["Backbone"]
        self.backbone = cls(**cfg)
        cls, cfg = parts["Neck"]
        self.neck = cls(in_channels=self.backbone.out_channels, **cfg)
        cls, cfg = parts["Transformer"]
        self.transformer = cls(in_channels=self.neck.out_channels, **cfg)
        post = dict(arch.get("PostProcess") or {})
        post.pop("name", None)
        post.setdefault("num_classes", self.transformer.num_classes)
        self.post_process = DETRPostProcess(**post)

    @property
    def head(self):
        """The part that predicts the classes (``out_channels``: the class count the label
        list must match); DINOHead itself holds no parameters, the decoder stops at
        eval_idx."""
        return self.transformer

    def forward(self, im_shape, image, scale_factor):
        bboxes, logits = self.transformer(self.neck(self.backbone(image)))
        return self.post_process(bboxes, logits, im_shape.to(bboxes.dtype),
                                 scale_factor.to(bboxes.dtype))
