"""SAST post-processing (ppocr/postprocess/sast_postprocess.py): every text-centre-line
(TCL) pixel votes a quad through its vertex offsets (TVO); the quads are merged by
locality-aware NMS; TCL pixels are assigned to the quad whose centre their centre offsets
(TCO) point nearest; each instance's centre line is sampled and its border offsets (TBO)
give point pairs above and below, which form the polygon."""

import numpy as np

from ..registry import register
from .nms import locality_aware_nms


def _signed_area(quad):
    """Shoelace area, positive for PaddleOCR's clockwise-in-image corner order."""
    x, y = quad[:, 0], quad[:, 1]
    return -float(np.sum((np.roll(x, -1) - x) * (np.roll(y, -1) + y))) / 2.0


def _shrink_quad_along_width(quad, begin, end):
    """The part of a quad between fractions ``begin`` and ``end`` of its width (may lie
    outside [0, 1], which extends it)."""
    ratio = np.array([[begin], [end]], dtype=np.float32)
    top = quad[0] + (quad[1] - quad[0]) * ratio
    bottom = quad[3] + (quad[2] - quad[3]) * ratio
    return np.array([top[0], top[1], bottom[1], bottom[0]])


def _expand_poly_along_width(poly, ratio):
    """Push the polygon's two ends outward by ``ratio`` times their height."""
    n = poly.shape[0]
    left = np.array([poly[0], poly[1], poly[-2], poly[-1]], dtype=np.float32)
    lr = -ratio * np.linalg.norm(left[0] - left[3]) / (np.linalg.norm(left[0] - left[1]) + 1e-6)
    left = _shrink_quad_along_width(left, lr, 1.0)
    right = np.array([poly[n // 2 - 2], poly[n // 2 - 1], poly[n // 2], poly[n // 2 + 1]],
                     dtype=np.float32)
    rr = 1.0 + ratio * np.linalg.norm(right[0] - right[3]) / (
        np.linalg.norm(right[0] - right[1]) + 1e-6)
    right = _shrink_quad_along_width(right, 0.0, rr)
    poly[0], poly[-1] = left[0], left[-1]
    poly[n // 2 - 1], poly[n // 2] = right[1], right[2]
    return poly


@register("PostProcess")
class SASTPostProcess:
    """(f_border, f_score, f_tco, f_tvo) maps -> polygons in source-image coordinates.

    ``sample_pts_num`` points are sampled along each centre line (2: quads; 0 estimates it
    from the text's aspect). ``box_type`` (PaddleOCR's det_box_type), when given, sets the
    three shape parameters as tools/infer/predict_det.py does: poly = 6 points, expand 1.2,
    end shrink 0.2; quad = 2 points, 1.0, 0.3. ``score_thresh`` is accepted as PaddleOCR
    accepts it but, as there, the TCL map is cut at ``tcl_map_thresh``.
    """

    BOX_TYPES = {"quad": (2, 1.0, 0.3), "poly": (6, 1.2, 0.2)}

    OUTPUTS = ("f_border", "f_score", "f_tco", "f_tvo")

    def __init__(self, score_thresh=0.5, nms_thresh=0.2, sample_pts_num=2,
                 shrink_ratio_of_width=0.3, expand_scale=1.0, tcl_map_thresh=0.5,
                 box_type=None, **_training_only):
        if box_type is not None:
            if box_type not in self.BOX_TYPES:
                raise ValueError(f"SAST box_type must be quad or poly, not {box_type!r}")
            sample_pts_num, expand_scale, shrink_ratio_of_width = self.BOX_TYPES[box_type]
        self.score_thresh, self.nms_thresh = score_thresh, nms_thresh
        self.sample_pts_num = sample_pts_num
        self.shrink_ratio_of_width = shrink_ratio_of_width
        self.expand_scale, self.tcl_map_thresh = expand_scale, tcl_map_thresh
        # polygons when more than two points are sampled per side
        self.box_type = box_type or ("quad" if sample_pts_num == 2 else "poly")

    def __call__(self, preds, shape_list):
        maps = dict(zip(self.OUTPUTS, preds)) if not isinstance(preds, dict) else preds
        results = []
        for i, shape in enumerate(shape_list):
            src_h, src_w, ratio_h, ratio_w = shape
            hwc = {k: np.asarray(maps[k][i]).transpose(1, 2, 0) for k in self.OUTPUTS}
            polys = self.detect(hwc["f_score"], hwc["f_tvo"], hwc["f_border"], hwc["f_tco"],
                                ratio_w, ratio_h, src_w, src_h)
            results.append({"points": polys, "scores": [1.0] * len(polys)})
        return results

    def restore_quads(self, tcl, tvo):
        """One quad per TCL pixel (row order): pixel position minus its 4 vertex offsets."""
        xy = np.argwhere(tcl[:, :, 0] > self.tcl_map_thresh)[:, ::-1]
        xy = xy[np.argsort(xy[:, 1])]
        scores = tcl[xy[:, 1], xy[:, 0], 0][:, None]
        quads = np.tile(xy, (1, 4)) - tvo[xy[:, 1], xy[:, 0], :]
        return scores, quads

    def cluster(self, tcl, quads, tco):
        """Label map: each TCL pixel gets 1 + the index of the quad whose centre is nearest
        to the text centre it points at."""
        labels = np.zeros(tcl.shape[:2], dtype=np.int32)
        if len(quads) == 0:
            return labels
        xy = np.argwhere(tcl[:, :, 0] > self.tcl_map_thresh)[:, ::-1]
        centres = xy - tco[xy[:, 1], xy[:, 0], :]
        dist = np.linalg.norm(centres[:, None, :] - quads.mean(axis=1)[None], axis=2)
        labels[xy[:, 1], xy[:, 0]] = np.argmin(dist, axis=1) + 1
        return labels

    def estimate_sample_pts_num(self, quad, xy):
        height = (np.linalg.norm(quad[0] - quad[3]) + np.linalg.norm(quad[1] - quad[2])) / 2.0
        width = (np.linalg.norm(quad[0] - quad[1]) + np.linalg.norm(quad[2] - quad[3])) / 2.0
        line = xy[np.linspace(0, xy.shape[0] - 1, max(2, int(width)), endpoint=True,
                              dtype=np.float32).astype(np.int32)]
        arc = np.sum(np.linalg.norm(line[1:] - line[:-1], axis=1))
        return max(2, int(arc / height))

    def detect(self, tcl, tvo, tbo, tco, ratio_w, ratio_h, src_w, src_h, stride=4.0):
        scores, quads = self.restore_quads(tcl, tvo)
        dets = locality_aware_nms(np.hstack((quads, scores)).astype(np.float32, copy=False),
                                  self.nms_thresh)
        if dets.shape[0] == 0:
            return []
        quads = dets[:, :-1].reshape(-1, 4, 2)
        labels = self.cluster(tcl, quads, tco)
        scale = stride / np.array([ratio_w, ratio_h]).reshape(-1, 2)
        polys = []
        for k, quad in enumerate(quads):
            xy = np.argwhere(labels == k + 1)[:, ::-1]
            area = _signed_area(quad)
            if area < 5 or min(np.linalg.norm(quad[0] - quad[1]),
                               np.linalg.norm(quad[1] - quad[2])) < 3 or xy.shape[0] == 0:
                continue
            if np.sum(tcl[xy[:, 1], xy[:, 0], 0]) / area < 0.1:  # low-confidence instance
                continue
            # order the instance's pixels along the quad's left-to-right axis
            left = (quad[0] + quad[3]) / 2.0
            right = (quad[1] + quad[2]) / 2.0
            axis = (right - left) / (np.linalg.norm(right - left) + 1e-6)
            xy = xy[np.argsort(np.sum(xy * axis[None], axis=1))]
            n = self.sample_pts_num or self.estimate_sample_pts_num(quad, xy)
            line = xy[np.linspace(0, xy.shape[0] - 1, n, endpoint=True,
                                  dtype=np.float32).astype(np.int32)]
            pairs = []
            for x, y in line:
                offset = tbo[y, x, :].reshape(2, 2)
                if self.expand_scale != 1.0:
                    length = np.linalg.norm(offset, axis=1, keepdims=True)
                    offset = offset + offset / length * np.clip(
                        length * (self.expand_scale - 1), 0.5, 3.0)
                pairs.append((np.array([y, x], dtype=np.float32) + offset)[:, ::-1] * scale)
            # upper points left to right, then lower points right to left: clockwise
            poly = np.array([p[0] for p in pairs] + [p[1] for p in pairs[::-1]]).reshape(-1, 2)
            poly = _expand_poly_along_width(poly, self.shrink_ratio_of_width)
            poly[:, 0] = np.clip(poly[:, 0], 0, src_w)
            poly[:, 1] = np.clip(poly[:, 1], 0, src_h)
            polys.append(poly)
        return polys
