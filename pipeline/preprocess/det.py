"""Detection resizing (ppocr/data/imaug/operators.py DetResizeForTest)."""

import math

import numpy as np

from ..registry import register


@register("PreProcess")
class DetResizeForTest:
    """Resize for a detector: by a side limit to multiples of 32 (type 0), to a fixed shape
    (type 1, ``image_shape``), or the long side to ``resize_long`` in multiples of 128
    (type 2). Sets data['shape'] = [src_h, src_w, ratio_h, ratio_w]."""

    def __init__(self, limit_side_len=None, limit_type=None, image_shape=None, keep_ratio=False,
                 resize_long=None, **_training_only):
        self.resize_type, self.keep_ratio = 0, keep_ratio
        if image_shape is not None:
            self.resize_type, self.image_shape = 1, image_shape
        elif limit_side_len is not None:
            self.limit_side_len, self.limit_type = limit_side_len, limit_type or "min"
        elif resize_long is not None:
            self.resize_type, self.resize_long = 2, resize_long
        else:
            self.limit_side_len, self.limit_type = 736, "min"
        if self.resize_type == 0 and self.limit_type not in ("max", "min", "resize_long"):
            raise ValueError(f"DetResizeForTest limit_type must be max, min or resize_long, "
                             f"not {self.limit_type!r}")

    def __call__(self, data):
        import cv2

        img = data["image"]
        src_h, src_w = img.shape[:2]
        if src_h + src_w < 64:  # tiny images are padded to 32 px first
            padded = np.zeros((max(32, src_h), max(32, src_w), img.shape[2]), np.uint8)
            padded[:src_h, :src_w] = img
            img = padded
        h, w = img.shape[:2]
        if self.resize_type == 0:
            resize_h, resize_w = self._limit_side(h, w)
        elif self.resize_type == 1:
            resize_h, resize_w = self.image_shape
            if self.keep_ratio:
                resize_w = math.ceil(w * resize_h / h / 32) * 32
        else:
            ratio = float(self.resize_long) / max(h, w)
            resize_h = (int(h * ratio) + 127) // 128 * 128
            resize_w = (int(w * ratio) + 127) // 128 * 128
        data["image"] = cv2.resize(img, (int(resize_w), int(resize_h)))
        data["shape"] = np.array([src_h, src_w, resize_h / float(h), resize_w / float(w)])
        return data

    def _limit_side(self, h, w):
        side = self.limit_side_len
        if self.limit_type == "max":
            ratio = float(side) / max(h, w) if max(h, w) > side else 1.0
        elif self.limit_type == "min":
            ratio = float(side) / min(h, w) if min(h, w) < side else 1.0
        else:
            ratio = float(side) / max(h, w)
        resize_h = max(int(round(int(h * ratio) / 32) * 32), 32)
        resize_w = max(int(round(int(w * ratio) / 32) * 32), 32)
        return resize_h, resize_w
