"""End-to-end (PGNet) resizing (ppocr/data/imaug/operators.py E2EResizeForTest)."""

import numpy as np

from ..registry import register


@register("PreProcess")
class E2EResizeForTest:
    """Resize to multiples of 128 (PGNet's stride 64 map, doubled back by its FPN).

    ``valid_set: totaltext`` (what predict_e2e always uses): the image is enlarged by 1.25
    unless that makes its *height* exceed ``max_side_len``, in which case the height is set to
    ``max_side_len`` (the width follows, unlimited); any other valid_set scales the longer
    side to ``max_side_len``. Sets data['shape'] = [src_h, src_w, ratio_h, ratio_w].
    ``limit_type``: PaddleOCR's e2e_limit_type, which its predict_e2e reads but never passes
    on; its resizing is the one above, which only 'max' describes."""

    def __init__(self, max_side_len=768, valid_set="totaltext", limit_type="max",
                 **_training_only):
        if limit_type != "max":
            raise ValueError(f"E2EResizeForTest limits the side as PaddleOCR's predict_e2e "
                             f"does (e2e_limit_type max), not {limit_type!r}")
        self.max_side_len, self.valid_set = max_side_len, valid_set

    def __call__(self, data):
        import cv2

        img = data["image"]
        h, w = img.shape[:2]
        if self.valid_set == "totaltext":
            ratio = 1.25
            if h * ratio > self.max_side_len:
                ratio = float(self.max_side_len) / h
        else:
            ratio = float(self.max_side_len) / (h if h > w else w)
        resize_h = (int(h * ratio) + 127) // 128 * 128
        resize_w = (int(w * ratio) + 127) // 128 * 128
        data["image"] = cv2.resize(img, (int(resize_w), int(resize_h)))
        data["shape"] = np.array([h, w, resize_h / float(h), resize_w / float(w)])
        return data
