"""Layout decoding (ppocr/postprocess/picodet_postprocess.py PicoDetPostProcess, PaddleOCR's
post-processing of the PicoDet layout exports, which stop at the raw head outputs).

Convention: ``op(preds, shape_list) -> [[{'bbox': [x0, y0, x1, y1], 'label': str,
'score': float}, ...]]`` per image; ``preds`` = the program's outputs, per-level class scores
(after sigmoid, [N, h*w, C]) then per-level box distributions ([N, h*w, 4 * (reg_max + 1)]);
``shape_list`` rows [h, w, ratio_h, ratio_w] from Resize.

Steps, as PaddleOCR takes them: per level, cell centres ((i + 0.5) * stride), the box
distribution's expectation over its bins times the stride as distances left/top/right/bottom,
the ``nms_top_k`` cells with the highest class score; per class over all levels, scores above
``score_threshold`` through greedy NMS (``nms_threshold``, 200 candidates, ``keep_top_k``);
boxes clipped to the network input and scaled back to the image; finally, of boxes that
contain one another by more than half of the smaller one's area, only one is kept: a table if
there is one, else the highest score.
"""

import numpy as np

from ..registry import register


def _softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _area(x0y0, x1y1):
    wh = np.clip(x1y1 - x0y0, 0.0, None)
    return wh[..., 0] * wh[..., 1]


def _overlap(boxes, box):
    return _area(np.maximum(boxes[..., :2], box[..., :2]),
                 np.minimum(boxes[..., 2:], box[..., 2:]))


def greedy_nms(box_scores, iou_threshold, top_k=-1, candidate_size=200):
    """Rows [x0, y0, x1, y1, score] kept by greedy NMS over the ``candidate_size`` best."""
    boxes, order = box_scores[:, :4], np.argsort(box_scores[:, 4])[-candidate_size:]
    keep = []
    while len(order):
        best = order[-1]
        keep.append(best)
        if 0 < top_k == len(keep) or len(order) == 1:
            break
        order = order[:-1]
        rest, cur = boxes[order], boxes[best][None]
        inter = _overlap(rest, cur)
        iou = inter / (_area(rest[:, :2], rest[:, 2:]) + _area(cur[:, :2], cur[:, 2:])
                       - inter + 1e-5)
        order = order[iou <= iou_threshold]
    return box_scores[keep]


def drop_contained_duplicates(results):
    """Among boxes covering > 50% of each other's smaller area keep one: the best-scoring
    table if any is a table, else the best score (PaddleOCR's label-conflict rule)."""
    if not results:
        return results
    boxes = np.array([r["bbox"] for r in results])
    dropped = set()
    for i in range(len(results)):
        if i in dropped:
            continue
        inter = _overlap(boxes, boxes[i])
        smaller = np.minimum(_area(boxes[:, :2], boxes[:, 2:]),
                             _area(boxes[i:i + 1, :2], boxes[i:i + 1, 2:]))
        group = np.where(inter / smaller > 0.5)[0]
        if len(group) > 1:
            tables = [j for j in group if results[j]["label"] == "table"]
            pool = tables or list(group)
            keep = sorted(pool, key=lambda j: results[j]["score"], reverse=True)[0]
            dropped.update(int(j) for j in group if j != keep)
    return [r for i, r in enumerate(results) if i not in dropped]


@register("PostProcess")
class PicoDetPostProcess:
    def __init__(self, character_dict=None, strides=(8, 16, 32, 64), score_threshold=0.4,
                 nms_threshold=0.5, nms_top_k=1000, keep_top_k=100, layout_dict_path=None,
                 **_training_only):
        if layout_dict_path and not character_dict:
            from pathlib import Path

            character_dict = Path(layout_dict_path).read_text(encoding="utf-8").splitlines()
        if not character_dict:
            raise ValueError("PicoDetPostProcess needs the layout labels (character_dict)")
        self.labels = [str(c) for c in character_dict]
        self.strides = [int(s) for s in strides]
        self.score_threshold = float(score_threshold)
        self.nms_threshold = float(nms_threshold)
        self.nms_top_k = int(nms_top_k)
        self.keep_top_k = int(keep_top_k)

    def __call__(self, preds, shape_list):
        n = len(preds) // 2
        if len(preds) != 2 * n or n != len(self.strides):
            raise ValueError(f"PicoDetPostProcess: {len(preds)} model outputs for "
                             f"{len(self.strides)} strides (expected scores and boxes per level)")
        scores, dists = [np.asarray(p) for p in preds[:n]], [np.asarray(p) for p in preds[n:]]
        if scores[0].shape[-1] != len(self.labels):
            raise ValueError(f"the model predicts {scores[0].shape[-1]} layout classes, the "
                             f"label list has {len(self.labels)}")
        return [self._one(scores, dists, b, np.asarray(shape_list[b], dtype=np.float64))
                for b in range(len(scores[0]))]

    def _one(self, scores, dists, b, shape):
        src_h, src_w, ratio_h, ratio_w = shape[:4]
        # the network input's size, as the Resize op produced it
        in_h, in_w = float(round(src_h * ratio_h)), float(round(src_w * ratio_w))
        bins = dists[0].shape[-1] // 4
        all_boxes, all_scores = [], []
        for stride, dist, score in zip(self.strides, dists, scores):
            dist, score = dist[b], score[b]
            xs, ys = np.meshgrid(np.arange(in_w / stride), np.arange(in_h / stride))
            cx, cy = (xs.flatten() + 0.5) * stride, (ys.flatten() + 0.5) * stride
            centres = np.stack((cx, cy, cx, cy), axis=1)
            prob = _softmax(dist.reshape(-1, bins), axis=1)
            dist = (prob * np.arange(bins)[None]).sum(axis=1).reshape(-1, 4) * stride
            top = np.argsort(score.max(axis=1))[::-1][:self.nms_top_k]
            all_boxes.append(centres[top] + np.array([-1, -1, 1, 1]) * dist[top])
            all_scores.append(score[top])
        boxes, conf = np.concatenate(all_boxes), np.concatenate(all_scores)
        picked, labels = [], []
        for cls in range(conf.shape[1]):
            prob = conf[:, cls]
            mask = prob > self.score_threshold
            if not mask.any():
                continue
            rows = greedy_nms(np.concatenate([boxes[mask], prob[mask].reshape(-1, 1)], axis=1),
                              self.nms_threshold, self.keep_top_k)
            picked.append(rows)
            labels += [cls] * len(rows)
        if not picked:
            return []
        picked = np.concatenate(picked)
        # clip to the network input (PaddleOCR keeps the clipped boxes in float32), then scale
        xy = picked[:, :4].copy()
        xy[:, [0, 2]] = xy[:, [0, 2]].clip(0, in_w)
        xy[:, [1, 3]] = xy[:, [1, 3]].clip(0, in_h)
        scale = np.array([in_w / src_w, in_h / src_h], dtype=np.float32)
        picked[:, :4] = xy.astype(np.float32)
        picked[:, :4] /= np.concatenate([scale, scale])
        results = [{"bbox": row[:4], "label": self.labels[c], "score": row[4]}
                   for c, row in zip(labels, picked)]
        results = drop_contained_duplicates(results)
        return [{"bbox": [float(v) for v in r["bbox"]], "label": r["label"],
                 "score": float(r["score"])} for r in results]


@register("PostProcess")
class DetPostProcess:
    """PaddleX's DetPostProcess (paddlex/inference/models/object_detection/processors.py) for
    exports that end in NMS (PP-DocLayout): ``preds`` = [rows [label, score, x0, y0, x1,
    y1] of all images, rows per image]; rows with score > ``threshold`` (and a label > -1)
    kept, optionally PaddleX's ``layout_nms`` (same class IoU >= 0.6 or other class >= 0.98
    suppressed, best score first), coordinates clipped to the source image."""

    def __init__(self, character_dict=None, threshold=0.5, layout_nms=False,
                 layout_dict_path=None, **_training_only):
        if layout_dict_path and not character_dict:
            from pathlib import Path

            character_dict = Path(layout_dict_path).read_text(encoding="utf-8").splitlines()
        if not character_dict:
            raise ValueError("DetPostProcess needs the layout labels (character_dict)")
        self.labels = [str(c) for c in character_dict]
        self.threshold = float(threshold)
        self.layout_nms = bool(layout_nms)

    def __call__(self, preds, shape_list):
        if len(preds) != 2:
            raise ValueError(f"DetPostProcess: expected NMS rows and counts, got {len(preds)} "
                             "model outputs")
        rows, counts = np.asarray(preds[0]), np.asarray(preds[1]).astype(int)
        if rows.ndim != 2 or rows.shape[1] != 6:
            rows = rows.reshape(0, 6)  # no detection at all
        out, start = [], 0
        for b, n in enumerate(counts):
            boxes = rows[start:start + n]
            start += n
            out.append(self._one(boxes, shape_list[b]))
        return out

    def _one(self, boxes, shape):
        height, width = float(shape[0]), float(shape[1])
        boxes = boxes[(boxes[:, 1] > self.threshold) & (boxes[:, 0] > -1)]
        if self.layout_nms and len(boxes):
            boxes = boxes[_layout_nms(boxes)]
        results = []
        for box in boxes:
            label = int(box[0])
            if label >= len(self.labels):
                raise ValueError(f"the model predicts class {label}, the label list has "
                                 f"{len(self.labels)}")
            x0, y0, x1, y1 = (float(v) for v in box[2:])
            results.append({"bbox": [max(0.0, x0), max(0.0, y0), min(width, x1),
                                     min(height, y1)],
                            "label": self.labels[label], "score": float(box[1])})
        return results


def _layout_nms(boxes, iou_same=0.6, iou_diff=0.98):
    """PaddleX's layout nms: indices kept, best score first; a box is dropped when its IoU
    with a kept one reaches 0.6 (same class) or 0.98 (another class)."""
    def iou(a, b):
        x0, y0, x1, y1 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
        inter = max(0, x1 - x0 + 1) * max(0, y1 - y0 + 1)
        area_a = (a[2] - a[0] + 1) * (a[3] - a[1] + 1)
        area_b = (b[2] - b[0] + 1) * (b[3] - b[1] + 1)
        return inter / float(area_a + area_b - inter)

    indices = list(np.argsort(boxes[:, 1])[::-1])
    selected = []
    while indices:
        current = indices.pop(0)
        selected.append(current)
        indices = [i for i in indices if iou(boxes[current][2:], boxes[i][2:]) <
                   (iou_same if boxes[current][0] == boxes[i][0] else iou_diff)]
    return selected
