"""Layout model input (ppocr/data/imaug/operators.py Resize, as PaddleOCR's
ppstructure/layout/predict_layout.py runs it: the image stretched to a fixed size, no
aspect ratio kept)."""

import numpy as np

from ..registry import register


@register("PreProcess")
class Resize:
    """Stretch to ``size`` = (height, width) with cv2's default bilinear; data['shape'] =
    [h, w, ratio_h, ratio_w] of the source image (the layout decoder scales boxes back)."""

    def __init__(self, size=(640, 640), **_training_only):
        self.height, self.width = (int(v) for v in size)

    def __call__(self, data):
        import cv2

        img = data["image"]
        height, width = img.shape[:2]
        data["image"] = cv2.resize(img, (self.width, self.height))
        data["shape"] = np.array([height, width, self.height / height, self.width / width])
        return data
