"""Post-processing as PaddleOCR does it: DB boxes (ppocr/postprocess/db_postprocess.py),
box filtering, ordering and cropping (tools/infer/predict_det.py, predict_system.py,
utility.py), direction labels and CTC decoding (rec_postprocess.py, cls_postprocess.py)."""

import numpy as np


class DBPostProcess:
    """Probability map -> quadrilaterals in source-image coordinates."""

    def __init__(self, thresh=0.3, box_thresh=0.6, max_candidates=1000, unclip_ratio=1.5,
                 use_dilation=False, score_mode="fast", min_size=3):
        if score_mode not in ("fast", "slow"):
            raise ValueError(f"score_mode must be fast or slow, not {score_mode!r}")
        self.thresh, self.box_thresh = thresh, box_thresh
        self.max_candidates, self.unclip_ratio = max_candidates, unclip_ratio
        self.score_mode, self.min_size = score_mode, min_size
        self.dilation_kernel = np.array([[1, 1], [1, 1]]) if use_dilation else None

    def __call__(self, pred, src_h, src_w):
        """pred: H×W probability map of one image -> (boxes N×4×2 int32, scores)."""
        import cv2

        mask = pred > self.thresh
        if self.dilation_kernel is not None:
            mask = cv2.dilate(mask.astype(np.uint8), self.dilation_kernel)
        return self.boxes_from_bitmap(pred, mask, src_w, src_h)

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


def order_points_clockwise(pts):
    rect = np.zeros((4, 2), dtype="float32")
    s = pts.sum(axis=1)
    rect[0], rect[2] = pts[np.argmin(s)], pts[np.argmax(s)]
    rest = np.delete(pts, (np.argmin(s), np.argmax(s)), axis=0)
    diff = np.diff(np.array(rest), axis=1)
    rect[1], rect[3] = rest[np.argmin(diff)], rest[np.argmax(diff)]
    return rect


def filter_det_boxes(boxes, img_h, img_w):
    """Order corners, clip to the image, drop boxes 3 px or thinner (filter_tag_det_res)."""
    kept = []
    for box in boxes:
        box = order_points_clockwise(np.array(box))
        box[:, 0] = np.array([int(min(max(x, 0), img_w - 1)) for x in box[:, 0]])
        box[:, 1] = np.array([int(min(max(y, 0), img_h - 1)) for y in box[:, 1]])
        if int(np.linalg.norm(box[0] - box[1])) <= 3 or int(np.linalg.norm(box[0] - box[3])) <= 3:
            continue
        kept.append(box)
    return np.array(kept, dtype="float32").reshape(-1, 4, 2)


def sorted_boxes(boxes):
    """Top to bottom, then left to right within a 10-px line band, as predict_system does."""
    ordered = sorted(list(boxes), key=lambda b: (b[0][1], b[0][0]))
    for i in range(len(ordered) - 1):
        for j in range(i, -1, -1):
            if abs(ordered[j + 1][0][1] - ordered[j][0][1]) < 10 and \
                    ordered[j + 1][0][0] < ordered[j][0][0]:
                ordered[j], ordered[j + 1] = ordered[j + 1], ordered[j]
            else:
                break
    return ordered


def get_rotate_crop_image(img, points):
    """Perspective crop of a quadrilateral; crops at least 1.5 times taller than wide are
    turned 90 degrees so text runs horizontally."""
    import cv2

    points = np.asarray(points, dtype=np.float32)
    width = int(max(np.linalg.norm(points[0] - points[1]), np.linalg.norm(points[2] - points[3])))
    height = int(max(np.linalg.norm(points[0] - points[3]), np.linalg.norm(points[1] - points[2])))
    target = np.float32([[0, 0], [width, 0], [width, height], [0, height]])
    matrix = cv2.getPerspectiveTransform(points, target)
    crop = cv2.warpPerspective(img, matrix, (width, height), borderMode=cv2.BORDER_REPLICATE,
                               flags=cv2.INTER_CUBIC)
    if crop.shape[0] * 1.0 / crop.shape[1] >= 1.5:
        crop = np.rot90(crop)
    return crop


class CTCLabelDecode:
    """Per-step class probabilities -> (text, mean probability of the kept characters)."""

    def __init__(self, character_dict, use_space_char):
        self.character = ["blank"] + list(character_dict) + ([" "] if use_space_char else [])

    def __call__(self, probs):
        idx, prob = probs.argmax(axis=2), probs.max(axis=2)
        results = []
        for seq, conf in zip(idx, prob):
            keep = np.ones(len(seq), dtype=bool)
            keep[1:] = seq[1:] != seq[:-1]  # merge repeats
            keep &= seq != 0  # drop blanks
            text = "".join(self.character[i] for i in seq[keep])
            kept = conf[keep]
            results.append((text, float(np.mean(kept)) if len(kept) else 0.0))
        return results
