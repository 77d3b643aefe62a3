"""Table-structure model input (ppocr/data/imaug/table_ops.py ResizeTableImage,
PaddingTableImage), in the order PaddleOCR's table predictor runs them: resize the long side
to ``max_len``, normalise, pad to ``size`` at the bottom/right with zeros."""

import numpy as np

from ..registry import register


@register("PreProcess")
class ResizeTableImage:
    """Long side to ``max_len`` (both sides int(side * ratio)); data['shape'] =
    [h, w, ratio, ratio] of the source image."""

    def __init__(self, max_len, resize_bboxes=False, infer_mode=False, **_training_only):
        self.max_len = int(max_len)

    def __call__(self, data):
        import cv2

        img = data["image"]
        height, width = img.shape[:2]
        ratio = self.max_len / (max(height, width) * 1.0)
        data["image"] = cv2.resize(img, (int(width * ratio), int(height * ratio)))
        data["shape"] = np.array([height, width, ratio, ratio])
        return data


@register("PreProcess")
class PaddingTableImage:
    """Zero canvas of ``size`` (h, w) with the image at the top left; appends the padded
    size to data['shape'] (the box decoder scales by it)."""

    def __init__(self, size, **_training_only):
        self.pad_h, self.pad_w = (int(v) for v in size)

    def __call__(self, data):
        img = data["image"]
        canvas = np.zeros((self.pad_h, self.pad_w, 3), dtype=np.float32)
        h, w = img.shape[:2]
        canvas[:h, :w, :] = img
        data["image"] = canvas
        data["shape"] = np.array(data["shape"].tolist() + [self.pad_h, self.pad_w])
        return data
