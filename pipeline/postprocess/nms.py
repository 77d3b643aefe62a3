"""Quadrilateral NMS shared by the detectors that vote one quad per pixel (SAST, EAST), after
ppocr/postprocess/locality_aware_nms.py: row-ordered neighbours are merged first (score-
weighted average of their corners, scores summed), then standard NMS. Polygon areas and
intersections come from shapely."""

import numpy as np


def quad_iou(a, b):
    """IoU of two quads given as rows [x0, y0, ..., x3, y3, (score)]; an invalid polygon
    (self-intersecting even after buffer(0)) counts as no overlap."""
    from shapely.geometry import Polygon

    pa = Polygon(np.asarray(a[:8]).reshape(4, 2)).buffer(0)
    pb = Polygon(np.asarray(b[:8]).reshape(4, 2)).buffer(0)
    if not pa.is_valid or not pb.is_valid:
        return 0
    inter = pa.intersection(pb).area
    union = pa.area + pb.area - inter
    return inter / union if union else 0


def standard_nms(dets, thresh):
    """Keep the highest-scoring quad, drop those overlapping it by more than ``thresh``,
    repeat. dets: N×9 (8 coordinates + score)."""
    order = np.argsort(dets[:, 8])[::-1]
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        ious = np.array([quad_iou(dets[i], dets[t]) for t in order[1:]])
        order = order[np.where(ious <= thresh)[0] + 1]
    return dets[keep]


def locality_aware_nms(dets, thresh=0.3):
    """EAST's locality-aware NMS on N×9 rows in pixel order; returns the kept rows."""
    merged, current = [], None
    for row in np.array(dets, dtype=dets.dtype if len(dets) else np.float32):
        if current is not None and quad_iou(row, current) > thresh:
            weight = row[8] + current[8]
            row[:8] = (row[8] * row[:8] + current[8] * current[:8]) / weight
            row[8] = weight
            current = row
        else:
            if current is not None:
                merged.append(current)
            current = row
    if current is not None:
        merged.append(current)
    if not merged:
        return np.zeros((0, 9), np.float32)
    return standard_nms(np.array(merged), thresh)


def polygon_iou(a, b, buffer=1e-4):
    """IoU of two polygons given as flat [x0, y0, x1, y1, ...]: the intersection of the two
    slightly buffered polygons (robust to self-touching Fourier contours) over the union of
    the plain areas (ppocr/utils/poly_nms.py's rule)."""
    from shapely.geometry import Polygon

    pa = Polygon(np.asarray(a, dtype=np.float64).reshape(-1, 2))
    pb = Polygon(np.asarray(b, dtype=np.float64).reshape(-1, 2))
    inter = (pa.buffer(buffer) & pb.buffer(buffer)).area
    union = pa.area + pb.area - inter
    return inter / union if union else 0.0


def polygon_nms(polygons, thresh):
    """Rows [x0, y0, ..., score] (lists), highest score first kept, rows overlapping a kept
    one by IoU > ``thresh`` dropped; ties keep the later row first (a stable ascending sort
    read from the end)."""
    rows = np.array(sorted(polygons, key=lambda r: r[-1]))
    keep, order = [], list(range(len(rows)))
    while order:
        best = order.pop()
        keep.append(rows[best].tolist())
        order = [i for i in order if polygon_iou(rows[best][:-1], rows[i][:-1]) <= thresh]
    return keep
