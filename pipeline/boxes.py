"""Box filtering, ordering and cropping between detection and recognition, as PaddleOCR's
tools/infer/predict_det.py, predict_system.py and utility.py do it."""

import numpy as np


def order_points_clockwise(pts):
    rect = np.zeros((4, 2), dtype="float32")
    s = pts.sum(axis=1)
    rect[0], rect[2] = pts[np.argmin(s)], pts[np.argmax(s)]
    rest = np.delete(pts, (np.argmin(s), np.argmax(s)), axis=0)
    diff = np.diff(np.array(rest), axis=1)
    rect[1], rect[3] = rest[np.argmin(diff)], rest[np.argmax(diff)]
    return rect


def filter_det_boxes(boxes, img_h, img_w, scores=None):
    """Order corners, clip to the image, drop boxes 3 px or thinner (filter_tag_det_res).
    With ``scores`` (one per box), returns (boxes, the kept boxes' scores)."""
    kept, kept_scores = [], []
    for i, box in enumerate(boxes):
        box = order_points_clockwise(np.array(box))
        box[:, 0] = np.array([int(min(max(x, 0), img_w - 1)) for x in box[:, 0]])
        box[:, 1] = np.array([int(min(max(y, 0), img_h - 1)) for y in box[:, 1]])
        if int(np.linalg.norm(box[0] - box[1])) <= 3 or int(np.linalg.norm(box[0] - box[3])) <= 3:
            continue
        kept.append(box)
        if scores is not None:
            kept_scores.append(float(scores[i]))
    kept = np.array(kept, dtype="float32").reshape(-1, 4, 2)
    return kept if scores is None else (kept, kept_scores)


def clip_det_polys(polys, img_h, img_w):
    """Polygons only clipped to the image, corners truncated to integers, nothing dropped
    (predict_det's filter_tag_det_res_only_clip, used when det_box_type is poly)."""
    kept = []
    for poly in polys:
        poly = np.array(poly, dtype=np.float32).reshape(-1, 2)
        poly[:, 0] = [int(min(max(x, 0), img_w - 1)) for x in poly[:, 0]]
        poly[:, 1] = [int(min(max(y, 0), img_h - 1)) for y in poly[:, 1]]
        kept.append(poly)
    return kept


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


def get_minarea_rect_crop(img, points):
    """Crop of a polygon's minimum-area rectangle, corners ordered top-left, top-right,
    bottom-right, bottom-left (predict_system's crop when det_box_type is poly)."""
    import cv2

    rect = sorted(list(cv2.boxPoints(cv2.minAreaRect(np.array(points).astype(np.int32)))),
                  key=lambda p: p[0])
    # of the two leftmost corners the upper is top-left; of the two rightmost, top-right
    a, d = (0, 1) if rect[1][1] > rect[0][1] else (1, 0)
    b, c = (2, 3) if rect[3][1] > rect[2][1] else (3, 2)
    return get_rotate_crop_image(img, np.array([rect[a], rect[b], rect[c], rect[d]]))
