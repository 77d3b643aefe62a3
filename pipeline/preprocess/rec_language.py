"""Fixed-canvas resizing of the language-model recognisers, as PaddleOCR's inference tool
runs them (tools/infer/predict_rec.py resize_norm_img_abinet, resize_norm_img_vl), under the
class names of ppocr/data/imaug/rec_img_aug.py. Unlike CTC recognisers these stretch every
crop to the full canvas, so a batch's width ratio (data['max_wh_ratio']) does not apply."""

import numpy as np

from ..registry import register

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406])
IMAGENET_STD = np.array([0.229, 0.224, 0.225])


def _resize(img, image_shape):
    import cv2

    _, h, w = (int(v) for v in image_shape)
    if img.shape[0] < 1 or img.shape[1] < 1:
        raise ValueError(f"crop of {img.shape[1]}x{img.shape[0]} px cannot be resized")
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float32)


@register("PreProcess")
class ABINetRecResizeImg:
    """Stretch to ``image_shape`` (3, 32, 128), scale to [0, 1], ImageNet mean/std (in float64,
    as PaddleOCR computes it), CHW. The BGR crop is used as is, as predict_rec does."""

    def __init__(self, image_shape=(3, 32, 128), **_training_only):
        self.image_shape = tuple(int(v) for v in image_shape)

    def __call__(self, data):
        img = _resize(data["image"], self.image_shape) / 255.0
        img = (img - IMAGENET_MEAN[None, None]) / IMAGENET_STD[None, None]
        data["image"] = img.transpose(2, 0, 1).astype(np.float32)
        return data


@register("PreProcess")
class VLRecResizeImg:
    """Stretch to ``image_shape`` (3, 64, 256), RGB, scale to [0, 1], CHW (predict_rec's
    resize_norm_img_vl turns the BGR crop to RGB first)."""

    def __init__(self, image_shape=(3, 64, 256), **_training_only):
        self.image_shape = tuple(int(v) for v in image_shape)

    def __call__(self, data):
        img = _resize(np.ascontiguousarray(data["image"][:, :, ::-1]), self.image_shape)
        data["image"] = img.transpose(2, 0, 1) / 255
        return data
