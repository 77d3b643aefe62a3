"""DB post-processing (ppocr/postprocess/db_postprocess.py): probability map -> boxes."""

import numpy as np

from ..registry import register


@register("PostProcess")
class DBPostProcess:
    """Probability map -> quadrilaterals in source-image coordinates."""

    def __init__(self, thresh=0.3, box_thresh=0.7, max_candidates=1000, unclip_ratio=2.0,
                 use_dilation=False, score_mode="fast", box_type="quad", min_size=3,
                 **_training_only):
        if box_type != "quad":
            raise ValueError(f"DBPostProcess box_type {box_type!r} is not supported (quad)")
        if score_mode not in ("fast", "slow"):
            raise ValueError(f"score_mode must be fast or slow, not {score_mode!r}")
        self.thresh, self.box_thresh = thresh, box_thresh
        self.max_candidates, self.unclip_ratio = max_candidates, unclip_ratio
        self.score_mode, self.min_size = score_mode, min_size
        self.dilation_kernel = np.array([[1, 1], [1, 1]]) if use_dilation else None

    def __call__(self, preds, shape_list):
        """preds[0]: N×1×H×W probability maps; shape_list: N×[src_h, src_w, ratio_h,
        ratio_w] -> [{'points': boxes M×4×2 int32, 'scores': [...]}] per image."""
        import cv2

        results = []
        for pred, shape in zip(np.asarray(preds[0])[:, 0], shape_list):
            src_h, src_w = int(shape[0]), int(shape[1])
            mask = pred > self.thresh
            if self.dilation_kernel is not None:
                mask = cv2.dilate(mask.astype(np.uint8), self.dilation_kernel)
            boxes, scores = self.boxes_from_bitmap(pred, mask, src_w, src_h)
            results.append({"points": boxes, "scores": scores})
        return results

    def boxes_from_bitmap(self, pred, bitmap, dest_width, dest_height):
        import cv2

        height, width = bitmap.shape
        found = cv2.findContours((bitmap * 255).astype(np.uint8), cv2.RETR_LIST,
                                 cv2.CHAIN_APPROX_SIMPLE)
        contours = found[-2]  # opencv 3 returns (image, contours, hierarchy)
        boxes, scores = [], []
        for contour in contours[: self.max_candidates]:
            points, sside = get_mini_boxes(contour)
            if sside < self.min_size:
                continue
            points = np.array(points)
            score = (box_score_fast(pred, points.reshape(-1, 2)) if self.score_mode == "fast"
                     else box_score_slow(pred, contour))
            if self.box_thresh > score:
                continue
            expanded = unclip(points, self.unclip_ratio)
            if len(expanded) != 1:  # unclipping split or lost the polygon
                continue
            box, sside = get_mini_boxes(expanded.reshape(-1, 1, 2))
            if sside < self.min_size + 2:
                continue
            box = np.array(box)
            box[:, 0] = np.clip(np.round(box[:, 0] / width * dest_width), 0, dest_width)
            box[:, 1] = np.clip(np.round(box[:, 1] / height * dest_height), 0, dest_height)
            boxes.append(box.astype("int32"))
            scores.append(score)
        return np.array(boxes, dtype="int32").reshape(-1, 4, 2), scores


def unclip(box, unclip_ratio):
    """Expand a polygon by area * ratio / perimeter (Vatti clipping, round joins)."""
    import pyclipper
    from shapely.geometry import Polygon

    poly = Polygon(box)
    distance = poly.area * unclip_ratio / poly.length
    offset = pyclipper.PyclipperOffset()
    offset.AddPath(box, pyclipper.JT_ROUND, pyclipper.ET_CLOSEDPOLYGON)
    return np.array(offset.Execute(distance))


def get_mini_boxes(contour):
    """Minimum-area rectangle, corners ordered top-left, top-right, bottom-right, bottom-left."""
    import cv2

    rect = cv2.minAreaRect(contour)
    points = sorted(list(cv2.boxPoints(rect)), key=lambda p: p[0])
    i1, i4 = (0, 1) if points[1][1] > points[0][1] else (1, 0)
    i2, i3 = (2, 3) if points[3][1] > points[2][1] else (3, 2)
    return [points[i1], points[i2], points[i3], points[i4]], min(rect[1])


def _window(pred, xs, ys):
    h, w = pred.shape[:2]
    xmin = int(np.clip(np.floor(xs.min()), 0, w - 1))
    xmax = int(np.clip(np.ceil(xs.max()), 0, w - 1))
    ymin = int(np.clip(np.floor(ys.min()), 0, h - 1))
    ymax = int(np.clip(np.ceil(ys.max()), 0, h - 1))
    return xmin, xmax, ymin, ymax


def _mean_inside(pred, poly, xmin, xmax, ymin, ymax):
    import cv2

    mask = np.zeros((ymax - ymin + 1, xmax - xmin + 1), dtype=np.uint8)
    poly = poly.copy()
    poly[:, 0] -= xmin
    poly[:, 1] -= ymin
    cv2.fillPoly(mask, poly.reshape(1, -1, 2).astype("int32"), 1)
    return cv2.mean(pred[ymin: ymax + 1, xmin: xmax + 1], mask)[0]


def box_score_fast(pred, box):
    """Mean probability inside the box ('fast' score mode)."""
    return _mean_inside(pred, box, *_window(pred, box[:, 0], box[:, 1]))


def box_score_slow(pred, contour):
    """Mean probability inside the contour itself ('slow' score mode)."""
    contour = np.reshape(contour, (-1, 2))
    return _mean_inside(pred, contour, *_window(pred, contour[:, 0], contour[:, 1]))
