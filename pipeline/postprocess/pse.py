"""PSENet post-processing (ppocr/postprocess/pse_postprocess/): kernel maps -> text regions
by progressive scale expansion, then boxes or polygons."""

import numpy as np

from ..registry import register

# neighbour order of PaddleOCR's pse.pyx: up, down, left, right (row, column offsets)
_STEPS = ((-1, 0), (1, 0), (0, -1), (0, 1))


def _expand(pred, kernel, queue):
    """One breadth-first expansion of the labels in ``pred`` into ``kernel`` from the pixels
    in ``queue`` (flat indices, FIFO order), as pse.pyx's queue does it: a pixel claims its
    unlabelled kernel neighbours in queue order (so the first claimant wins a contested
    pixel); pixels that claim nothing are returned, in order, to seed the next kernel.

    The FIFO runs layer by layer: every pixel of one distance is popped before any of the
    next, so each layer is done at once with numpy, ties going to the earliest claimant."""
    h, w = pred.shape
    flat_pred, flat_kernel = pred.reshape(-1), kernel.reshape(-1)
    edges = []
    while queue.size:
        rows, cols = np.divmod(queue, w)
        cand = np.full((queue.size, 4), -1, np.int64)
        for j, (dr, dc) in enumerate(_STEPS):
            r, c = rows + dr, cols + dc
            inside = (r >= 0) & (r < h) & (c >= 0) & (c < w)
            idx = np.where(inside, r * w + c, 0)
            free = inside & (flat_kernel[idx] != 0) & (flat_pred[idx] == 0)
            cand[:, j] = np.where(free, idx, -1)
        cand = cand.reshape(-1)  # claimant-major, then neighbour order: the FIFO's order
        valid = np.flatnonzero(cand >= 0)
        _, first = np.unique(cand[valid], return_index=True)
        won = valid[np.sort(first)]
        claimed, claimant = cand[won], won // 4
        flat_pred[claimed] = flat_pred[queue[claimant]]
        grew = np.zeros(queue.size, bool)
        grew[claimant] = True
        edges.append(queue[~grew])
        queue = claimed
    return np.concatenate(edges) if edges else queue


def pse(kernels, min_area):
    """kernels: K×H×W uint8, kernel 0 the text region, K-1 the smallest -> H×W int32 labels.

    The smallest kernel's 4-connected components (those smaller than ``min_area`` dropped)
    grow through ever larger kernels."""
    import cv2

    label_num, label = cv2.connectedComponents(kernels[-1], connectivity=4)
    sizes = np.bincount(label.reshape(-1), minlength=label_num)
    small = np.flatnonzero(sizes < min_area)
    label[np.isin(label, small[small > 0])] = 0
    pred = label.astype(np.int32)
    queue = np.flatnonzero(pred.reshape(-1) > 0)  # raster order, as np.where gives them
    for k in range(kernels.shape[0] - 2, -1, -1):
        queue = _expand(pred, kernels[k], queue)
    return pred


@register("PostProcess")
class PSEPostProcess:
    """Logit maps (N×K×H/4×W/4) -> regions: upsample by 4 / ``scale`` (bilinear), text score
    = sigmoid of map 0, kernels = maps above ``thresh`` inside the text map; expand; keep
    regions of at least ``min_area`` pixels with mean score >= ``box_thresh``; a minimum-area
    rectangle each (``box_type`` quad/box) or its outer contour (``poly``)."""

    def __init__(self, thresh=0.5, box_thresh=0.85, min_area=16, box_type="quad", scale=4,
                 **_training_only):
        if box_type not in ("quad", "box", "poly"):
            raise ValueError(f"PSEPostProcess box_type must be quad or poly, not {box_type!r}")
        self.thresh, self.box_thresh, self.min_area = thresh, box_thresh, min_area
        self.box_type = "poly" if box_type == "poly" else "quad"
        self.scale = scale

    def __call__(self, preds, shape_list):
        import torch
        import torch.nn.functional as F

        maps = torch.from_numpy(np.ascontiguousarray(preds[0], dtype=np.float32))
        # Paddle's F.interpolate(mode='bilinear') default: half-pixel, as torch's
        maps = F.interpolate(maps, scale_factor=4 // self.scale, mode="bilinear",
                             align_corners=False)
        score = torch.sigmoid(maps[:, 0]).numpy()
        kernels = (maps > self.thresh).numpy()
        kernels = (kernels & kernels[:, :1]).astype(np.uint8)  # kernels inside the text map
        results = []
        for s, k, shape in zip(score, kernels, shape_list):
            boxes, scores = self.generate_box(s, pse(k, self.min_area), shape)
            results.append({"points": boxes, "scores": scores})
        return results

    def generate_box(self, score, label, shape):
        import cv2

        src_h, src_w, ratio_h, ratio_w = shape
        boxes, scores = [], []
        for i in range(1, int(label.max()) + 1):
            ind = label == i
            points = np.argwhere(ind)[:, ::-1]  # x, y
            if len(points) < self.min_area:
                continue
            score_i = float(np.mean(score[ind]))
            if score_i < self.box_thresh:
                continue
            if self.box_type == "quad":
                box = cv2.boxPoints(cv2.minAreaRect(points))
            else:
                mask = np.zeros((points[:, 1].max() + 10, points[:, 0].max() + 10), np.uint8)
                mask[points[:, 1], points[:, 0]] = 255
                contours = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)[-2]
                box = np.squeeze(contours[0], 1)
            box[:, 0] = np.clip(np.round(box[:, 0] / ratio_w), 0, src_w)
            box[:, 1] = np.clip(np.round(box[:, 1] / ratio_h), 0, src_h)
            boxes.append(box)
            scores.append(score_i)
        return boxes, scores
