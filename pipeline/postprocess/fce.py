"""FCENet post-processing (ppocr/postprocess/fce_postprocess.py): per pyramid level, the
text score (region^alpha * centre^beta) is cut at ``score_thr`` and its holes filled; every
pixel of each connected text region predicts a contour as Fourier coefficients around itself,
turned into ``num_reconstr_points`` points by an inverse FFT; contours are merged by polygon
NMS within the region, the level, and across levels; quads are their minimum-area rectangles."""

import numpy as np

from ..registry import register
from .nms import polygon_nms


def fill_hole(mask):
    """The mask with every region enclosed by it filled (flood fill of the outside)."""
    import cv2

    h, w = mask.shape
    canvas = np.zeros((h + 2, w + 2), np.uint8)
    canvas[1:h + 1, 1:w + 1] = mask
    cv2.floodFill(canvas, np.zeros((h + 4, w + 4), np.uint8), (0, 0), 1)
    return ~canvas[1:h + 1, 1:w + 1].astype(bool) | mask


def fourier2poly(coeffs, num_points=50):
    """(n, 2k+1) complex coefficients c_{-k..k} -> (n, 2 * num_points) int32 flat polygons:
    point t = sum_j c_j exp(2 pi i j t / num_points)."""
    k = (coeffs.shape[1] - 1) // 2
    spectrum = np.zeros((len(coeffs), num_points), dtype=complex)
    spectrum[:, :k + 1] = coeffs[:, k:]
    spectrum[:, -k:] = coeffs[:, :k]
    points = np.fft.ifft(spectrum) * num_points
    return np.stack([points.real, points.imag], -1).astype(np.int32).reshape(len(coeffs), -1)


@register("PostProcess")
class FCEPostProcess:
    """Level maps (N×(4 + 2(2k+1))×H×W each: softmaxed region and centre logits, then the
    real and imaginary Fourier coefficients) -> polygons (or quads) of the first image in
    source coordinates, as PaddleOCR's decoder returns them."""

    def __init__(self, scales, fourier_degree=5, num_reconstr_points=50,
                 decoding_type="fcenet", score_thr=0.3, nms_thr=0.1, alpha=1.0, beta=1.0,
                 box_type="poly", **_training_only):
        if box_type not in ("poly", "quad"):
            raise ValueError(f"FCE box_type must be poly or quad, not {box_type!r}")
        if decoding_type != "fcenet":
            raise ValueError(f"FCE decoding_type {decoding_type!r} is not supported (fcenet)")
        self.scales, self.fourier_degree = list(scales), fourier_degree
        self.num_reconstr_points = num_reconstr_points
        self.score_thr, self.nms_thr = score_thr, nms_thr
        self.alpha, self.beta, self.box_type = alpha, beta, box_type

    def __call__(self, preds, shape_list):
        preds = list(preds.values()) if isinstance(preds, dict) else list(preds)
        if len(preds) != len(self.scales):
            raise ValueError(f"FCE: {len(preds)} output levels for scales {self.scales}")
        boundaries = []
        for level, scale in zip(preds, self.scales):
            level = np.asarray(level)
            boundaries += self.decode(level[0, :4], level[0, 4:], scale)
        boundaries = polygon_nms(boundaries, self.nms_thr)
        ratio_h, ratio_w = shape_list[0][2], shape_list[0][3]
        factor = np.array([1 / ratio_w, 1 / ratio_h])
        points = np.array([(np.array(b[:-1]).reshape(-1, 2) * factor) for b in boundaries],
                          dtype=np.float32)
        return [{"points": points, "scores": [b[-1] for b in boundaries]}]

    def decode(self, cls, reg, scale):
        """One level: [flat polygon + score] rows in this level's input coordinates."""
        import cv2

        k = self.fourier_degree
        if reg.shape[0] != 4 * k + 2:
            raise ValueError(f"FCE: {reg.shape[0]} regression channels for Fourier degree {k}")
        reg = reg.transpose(1, 2, 0)
        coeff_x, coeff_y = reg[:, :, :2 * k + 1], reg[:, :, 2 * k + 1:]
        score = (cls[1] ** self.alpha) * (cls[3] ** self.beta)
        region = fill_hole(score > self.score_thr)
        contours, _ = cv2.findContours(region.astype(np.uint8), cv2.RETR_TREE,
                                       cv2.CHAIN_APPROX_SIMPLE)
        boundaries = []
        for contour in contours:
            inside = np.zeros(region.shape, np.int8)
            cv2.drawContours(inside, [contour], -1, 1, -1)
            region_score = score * inside
            pixels = region_score > 0
            yx = np.argwhere(pixels)
            coeffs = coeff_x[pixels] + coeff_y[pixels] * 1j
            coeffs[:, k] += yx[:, 1] + yx[:, 0] * 1j  # the constant term: around the pixel
            polys = fourier2poly(coeffs * scale, self.num_reconstr_points)
            rows = np.hstack((polys, region_score[pixels].reshape(-1, 1))).tolist()
            boundaries += polygon_nms(rows, self.nms_thr)
        boundaries = polygon_nms(boundaries, self.nms_thr)
        if self.box_type == "quad":
            quads = []
            for b in boundaries:
                rect = cv2.boxPoints(cv2.minAreaRect(
                    np.array(b[:-1]).reshape(-1, 2).astype(np.float32)))
                quads.append(np.int64(rect).reshape(-1).tolist() + [b[-1]])
            boundaries = quads
        return boundaries
