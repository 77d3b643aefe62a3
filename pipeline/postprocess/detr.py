"""Detections of PaddleX's layout exports (PP-DocLayout-L: RT-DETR with PaddleDetection's
DETRPostProcess inside the program), after PaddleX 3.7's
paddlex/inference/models/object_detection/processors.py DetPostProcess.

The program already did the DETR decoding (top-k over queries x classes, boxes scaled back to
the original image); it returns ``bbox`` rows (class, score, x0, y0, x1, y1) and ``bbox_num``
(rows per image). Here, in PaddleX's order: rows with score above ``threshold`` (and class >
-1); optionally PaddleX's layout NMS (IoU 0.6 within a class, 0.98 across classes, +1-pixel
areas); of several boxes, 'image' boxes covering more than 82% of a landscape page (93%
otherwise) dropped; optionally the 'large'/'small' containment merge and the unclip ratio;
boxes clipped to the image, empty ones dropped.

Convention as the other layout decoders: ``op(preds, shape_list) -> [[{'bbox', 'label',
'score'}]]`` per image; ``shape_list`` rows [h, w, ratio_h, ratio_w] from Resize.
"""

import numpy as np

from ..registry import register


def _iou_plus_one(a, b):
    """PaddleX's iou(): inclusive pixel areas (+1)."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]) + 1)
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]) + 1)
    inter = iw * ih
    area_a = (a[2] - a[0] + 1) * (a[3] - a[1] + 1)
    area_b = (b[2] - b[0] + 1) * (b[3] - b[1] + 1)
    return inter / float(area_a + area_b - inter)


def layout_nms(rows, iou_same=0.6, iou_diff=0.98):
    """Indices kept: best score first; a later box goes when its IoU with a kept one reaches
    ``iou_same`` (same class) or ``iou_diff`` (another class)."""
    order = list(np.argsort(rows[:, 1])[::-1])
    keep = []
    while order:
        cur = order.pop(0)
        keep.append(cur)
        order = [i for i in order
                 if _iou_plus_one(rows[cur, 2:], rows[i, 2:])
                 < (iou_same if rows[cur, 0] == rows[i, 0] else iou_diff)]
    return keep


def _contained(a, b):
    """a lies in b for at least 90% of a's area."""
    area = (a[4] - a[2]) * (a[5] - a[3])
    inter = max(0, min(a[4], b[4]) - max(a[2], b[2])) * max(0, min(a[5], b[5]) - max(a[3], b[3]))
    return (inter / area if area > 0 else 0) >= 0.9


def containment(rows, formula_index=None):
    n = len(rows)
    contains, contained = np.zeros(n, dtype=int), np.zeros(n, dtype=int)
    for i in range(n):
        for j in range(n):
            if i == j:
                continue
            if formula_index is not None and rows[i][0] == formula_index and \
                    rows[j][0] != formula_index:
                continue
            if _contained(rows[i], rows[j]):
                contained[i] = 1
                contains[j] = 1
    return contains, contained


@register("PostProcess")
class DetPostProcess:
    def __init__(self, character_dict=None, labels=None, threshold=0.5, layout_nms=False,
                 layout_unclip_ratio=None, layout_merge_bboxes_mode=None, **_training_only):
        labels = labels or character_dict
        if not labels:
            raise ValueError("DetPostProcess needs the class labels (character_dict)")
        if layout_merge_bboxes_mode not in (None, "union", "large", "small"):
            raise ValueError("layout_merge_bboxes_mode must be union, large or small")
        self.labels = [str(c) for c in labels]
        self.threshold = float(threshold)
        self.layout_nms = bool(layout_nms)
        if isinstance(layout_unclip_ratio, (int, float)) and layout_unclip_ratio:
            layout_unclip_ratio = (float(layout_unclip_ratio),) * 2
        self.unclip = tuple(layout_unclip_ratio) if layout_unclip_ratio else None
        self.merge = layout_merge_bboxes_mode

    def __call__(self, preds, shape_list):
        if len(preds) != 2:
            raise ValueError(f"DetPostProcess: {len(preds)} model outputs (expected bbox "
                             "rows and their count per image)")
        rows, counts = np.asarray(preds[0], dtype=np.float32), np.asarray(preds[1])
        if rows.size == 0:  # an NMS program that kept nothing at all
            rows = rows.reshape(0, 6)
        if rows.ndim != 2 or rows.shape[1] != 6:
            raise ValueError(f"DetPostProcess: bbox rows of shape {list(rows.shape)}, "
                             "expected [N, 6]")
        out, start = [], 0
        for b, n in enumerate(counts.reshape(-1)):
            h, w = (float(v) for v in np.asarray(shape_list[b])[:2])
            out.append(self._one(rows[start:start + int(n)], w, h))
            start += int(n)
        return out

    def _one(self, rows, width, height):
        if len(rows) and rows[:, 0].max() >= len(self.labels):
            raise ValueError(f"the model predicts class {int(rows[:, 0].max())}, the label "
                             f"list has {len(self.labels)} entries")
        rows = rows[(rows[:, 1] > self.threshold) & (rows[:, 0] > -1)]
        if self.layout_nms and len(rows):
            rows = rows[layout_nms(rows)]
        if len(rows) > 1:
            rows = self._drop_page_sized_images(rows, width, height)
        if self.merge in ("large", "small") and len(rows):
            formula = self.labels.index("formula") if "formula" in self.labels else None
            contains, contained = containment(rows, formula)
            rows = rows[contained == 0] if self.merge == "large" else \
                rows[(contains == 0) | (contained == 1)]
        if self.unclip and len(rows):
            wh = rows[:, 4:6] - rows[:, 2:4]
            centre = rows[:, 2:4] + wh / 2
            half = wh * np.array(self.unclip, dtype=np.float32) / 2
            rows = np.concatenate([rows[:, :2], centre - half, centre + half], axis=1)
        out = []
        for r in rows:
            box = [max(0.0, float(r[2])), max(0.0, float(r[3])), min(width, float(r[4])),
                   min(height, float(r[5]))]
            if box[2] > box[0] and box[3] > box[1]:
                out.append({"bbox": box, "label": self.labels[int(r[0])], "score": float(r[1])})
        return out

    def _drop_page_sized_images(self, rows, width, height):
        """An 'image' region that is (nearly) the whole page is dropped unless nothing else
        is left."""
        if "image" not in self.labels:
            return rows
        image = self.labels.index("image")
        limit = (0.82 if width > height else 0.93) * width * height
        keep = []
        for r in rows:
            if int(r[0]) == image:
                w = min(width, r[4]) - max(0.0, r[2])
                h = min(height, r[5]) - max(0.0, r[3])
                if w * h > limit:
                    continue
            keep.append(r)
        return np.array(keep) if keep else rows
