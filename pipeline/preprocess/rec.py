"""Text-line resizing for recognisers and direction classifiers, as PaddleOCR's inference
tools do it (tools/infer/predict_rec.py, predict_cls.py resize_norm_img)."""

import math

import numpy as np

from ..registry import register


def resize_norm_img(img, image_shape, max_wh_ratio=None):
    """Keep the aspect ratio, scale to [-1, 1], pad the right with zeros. ``max_wh_ratio``
    widens the canvas to the widest crop of a batch, as predict_rec does."""
    import cv2

    c, h_target, w_target = image_shape
    if max_wh_ratio is not None:
        w_target = int(h_target * max_wh_ratio)
    h, w = img.shape[:2]
    ratio = w / float(h)
    resized_w = w_target if math.ceil(h_target * ratio) > w_target else \
        int(math.ceil(h_target * ratio))
    resized = cv2.resize(img, (resized_w, h_target)).astype(np.float32)
    resized = resized.transpose(2, 0, 1) / 255.0
    resized = (resized - 0.5) / 0.5
    out = np.zeros((c, h_target, w_target), dtype=np.float32)
    out[:, :, :resized_w] = resized
    return out


@register("PreProcess")
class RecResizeImg:
    """CTC-style recogniser input: height fixed, canvas at least ``image_shape`` wide and
    widened to the batch's widest crop (data['max_wh_ratio'], set by the pipeline).

    ``infer_mode: false`` keeps the canvas at ``image_shape``'s width (PaddleOCR's
    resize_norm_img with padding; what predict_rec does for RARE, and what programs exported
    at a fixed width, such as those with a TPS transform, need)."""

    def __init__(self, image_shape=(3, 48, 320), infer_mode=True, **_training_only):
        self.image_shape = tuple(int(v) for v in image_shape)
        self.infer_mode = bool(infer_mode)

    def __call__(self, data):
        img = data["image"]
        if not self.infer_mode:
            data["image"] = resize_norm_img(img, self.image_shape)
            return data
        _, h, w = self.image_shape
        ratio = max(w / float(h), data.get("max_wh_ratio") or 0.0,
                    img.shape[1] / float(img.shape[0]))
        data["image"] = resize_norm_img(img, self.image_shape, ratio)
        return data


@register("PreProcess")
class ClsResizeImg:
    """Direction-classifier input: fixed canvas of ``image_shape``."""

    def __init__(self, image_shape=(3, 48, 192), **_training_only):
        self.image_shape = tuple(int(v) for v in image_shape)

    def __call__(self, data):
        data["image"] = resize_norm_img(data["image"], self.image_shape)
        return data
