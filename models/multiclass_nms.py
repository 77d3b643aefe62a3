"""Paddle's ``multiclass_nms3`` operator in plain torch (torchvision does not import beside
the pinned torch here, and its nms differs anyway). PaddleDetection's detection exports with
``export.nms: true`` (PP-DocLayout's PicoDet) end in this operator, so a converted model
returns the same [K, 6] rows and per-image counts as the program.

Semantics of Paddle's CPU kernel (phi multiclass_nms3), kept exactly:
- per image, per class ``c != background_label``: candidates with score ``> score_threshold``,
  stably sorted by score (descending), the first ``nms_top_k`` (all when -1); greedy NMS in
  that order: a candidate is kept when its overlap with every kept box is ``<=`` the
  threshold (which shrinks by ``nms_eta`` after each kept box while above 0.5);
- overlap: IoU of [x0, y0, x1, y1] boxes, each area ``w * h`` (``(w + 1) * (h + 1)`` when not
  ``normalized``; 0 for an inverted box), intersection sides ``+ 1`` when not normalized,
  0 when the boxes do not touch; all in the boxes' dtype;
- more than ``keep_top_k`` kept boxes in an image: the kept (label, index) pairs of all classes,
  stably sorted by score, are cut to ``keep_top_k``;
- output rows ``[label, score, x0, y0, x1, y1]``, by class (ascending), within a class in
  NMS order; ``rois_num`` the rows per image (int32); no row at all: a [0, 6] output (the
  program's form, which has the index output).
"""

import torch


def _overlaps(boxes, normalized):
    """[K, K] overlap of box i (the candidate) with box j (a kept one), as JaccardOverlap."""
    norm = 0.0 if normalized else 1.0
    x0, y0, x1, y1 = boxes.unbind(-1)
    w, h = x1 - x0, y1 - y0
    area = torch.where((x1 < x0) | (y1 < y0), torch.zeros_like(w),
                       w * h if normalized else (w + 1) * (h + 1))
    iw = (torch.minimum(x1[:, None], x1[None]) - torch.maximum(x0[:, None], x0[None])) + norm
    ih = (torch.minimum(y1[:, None], y1[None]) - torch.maximum(y0[:, None], y0[None])) + norm
    inter = iw * ih
    iou = inter / ((area[:, None] + area[None]) - inter)
    apart = ((x0[None] > x1[:, None]) | (x1[None] < x0[:, None]) | (y0[None] > y1[:, None])
             | (y1[None] < y0[:, None]))
    return torch.where(apart, torch.zeros_like(iou), iou)


def _nms_one_class(boxes, scores, score_threshold, nms_threshold, eta, top_k, normalized):
    idx = torch.nonzero(scores > score_threshold).flatten()
    order = torch.sort(scores[idx], descending=True, stable=True).indices
    idx = idx[order]
    if top_k > -1:
        idx = idx[:top_k]
    if len(idx) == 0:
        return []
    iou = _overlaps(boxes[idx], normalized).tolist()
    threshold = float(torch.tensor(nms_threshold, dtype=boxes.dtype))
    kept = []
    for i in range(len(idx)):
        row = iou[i]
        if all(row[j] <= threshold for j in kept):
            kept.append(i)
            if eta < 1 and threshold > 0.5:
                threshold = float(torch.tensor(threshold * eta, dtype=boxes.dtype))
    return idx[kept].tolist()


def multiclass_nms(bboxes, scores, score_threshold, nms_top_k, keep_top_k, nms_threshold=0.3,
                   normalized=True, nms_eta=1.0, background_label=-1):
    """``bboxes`` [N, M, 4], ``scores`` [N, C, M] -> (out [K, 6], rois_num [N] int32)."""
    rows, counts = [], []
    thresh = float(torch.tensor(score_threshold, dtype=scores.dtype))
    for b in range(bboxes.shape[0]):
        boxes, score = bboxes[b], scores[b]
        selected = {}  # label -> kept indices, NMS order
        for c in range(score.shape[0]):
            if c == background_label:
                continue
            kept = _nms_one_class(boxes, score[c], thresh, nms_threshold, nms_eta, nms_top_k,
                                  normalized)
            if kept:
                selected[c] = kept
        total = sum(len(v) for v in selected.values())
        if -1 < keep_top_k < total:
            pairs = [(c, i) for c in sorted(selected) for i in selected[c]]
            values = torch.stack([score[c, i] for c, i in pairs]).float()
            order = torch.sort(values, descending=True, stable=True).indices[:keep_top_k]
            selected = {}
            for k in order.tolist():
                c, i = pairs[k]
                selected.setdefault(c, []).append(i)
        n = 0
        for c in sorted(selected):
            index = torch.tensor(selected[c], dtype=torch.long)
            label = torch.full((len(index), 1), float(c), dtype=boxes.dtype)
            rows.append(torch.cat([label, score[c, index][:, None], boxes[index]], 1))
            n += len(index)
        counts.append(n)
    out = torch.cat(rows) if rows else bboxes.new_zeros((0, 6))
    return out, torch.tensor(counts, dtype=torch.int32)
