"""EAST post-processing (ppocr/postprocess/east_postprocess.py): score and geometry maps ->
quadrilaterals, merged by locality-aware NMS (ppocr/postprocess/locality_aware_nms.py)."""

import numpy as np

from ..registry import register
from .nms import locality_aware_nms


def sort_quad(p):
    """Start at the corner with the smallest x + y; go clockwise along the longer
    horizontal edge first."""
    first = int(np.argmin(p.sum(axis=1)))
    p = p[[first, (first + 1) % 4, (first + 2) % 4, (first + 3) % 4]]
    return p if abs(p[0, 0] - p[1, 0]) > abs(p[0, 1] - p[1, 1]) else p[[0, 3, 2, 1]]


@register("PostProcess")
class EASTPostProcess:
    """Pixels scoring above ``score_thresh`` each propose a quad (their 4x position minus
    the 8 geometry offsets); locality-aware NMS at ``nms_thresh`` merges them; a merged quad
    is kept when the mean score inside it exceeds ``cover_thresh``."""

    def __init__(self, score_thresh=0.8, cover_thresh=0.1, nms_thresh=0.2, **_training_only):
        self.score_thresh, self.cover_thresh = score_thresh, cover_thresh
        self.nms_thresh = nms_thresh

    def detect(self, score_map, geo_map):
        """score_map 1×H×W, geo_map 8×H×W -> N×9 quads (map-input pixels) with cover score."""
        import cv2

        score_map = score_map[0]
        ys_xs = np.argwhere(score_map > self.score_thresh)
        if len(ys_xs) == 0:
            return np.zeros((0, 9), np.float32)
        ys_xs = ys_xs[np.argsort(ys_xs[:, 0])]  # rows first: the locality NMS walks rows
        origin = np.tile(ys_xs[:, ::-1] * 4, 4)
        boxes = np.zeros((len(ys_xs), 9), np.float32)
        boxes[:, :8] = origin - geo_map[:, ys_xs[:, 0], ys_xs[:, 1]].T
        boxes[:, 8] = score_map[ys_xs[:, 0], ys_xs[:, 1]]
        boxes = locality_aware_nms(boxes, self.nms_thresh)
        for box in boxes:  # the mean score map inside the quad, at map resolution
            mask = np.zeros_like(score_map, dtype=np.uint8)
            cv2.fillPoly(mask, box[:8].reshape((-1, 4, 2)).astype(np.int32) // 4, 1)
            box[8] = cv2.mean(score_map, mask)[0]
        return boxes[boxes[:, 8] > self.cover_thresh]

    def __call__(self, preds, shape_list):
        """preds: [f_geo N×8×H×W, f_score N×1×H×W] (the program's order) -> per image
        {'points': M×4×2 int32 in source pixels, 'scores': cover scores}."""
        geo_list, score_list = (np.asarray(p) for p in preds[:2])
        results = []
        for score, geo, shape in zip(score_list, geo_list, shape_list):
            boxes = self.detect(score, geo)
            quads, scores = [], []
            ratio_h, ratio_w = float(shape[2]), float(shape[3])
            for box in boxes:
                quad = box[:8].reshape(4, 2).copy()
                quad[:, 0] /= ratio_w
                quad[:, 1] /= ratio_h
                quad = sort_quad(quad.astype(np.int32))
                if np.linalg.norm(quad[0] - quad[1]) < 5 or np.linalg.norm(quad[3] - quad[0]) < 5:
                    continue
                quads.append(quad)
                scores.append(float(box[8]))
            results.append({"points": np.array(quads, np.int32).reshape(-1, 4, 2),
                            "scores": scores})
        return results
