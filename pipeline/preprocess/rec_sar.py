"""Recogniser inputs with a valid ratio, as PaddleOCR prepares them for SAR and RobustScanner
(tools/infer/predict_rec.py resize_norm_img_sar; ppocr/data/imaug/rec_img_aug.py
SARRecResizeImg, RobustScannerRecResizeImg): the crop keeps its aspect ratio at the fixed
height, its width rounded to a multiple of 1/width_downsample_ratio and clamped to
[imgW_min, imgW_max], on a canvas of imgW_max filled with -1; ``valid_ratio`` (resized width
/ imgW_max) is a model input beside the image, so the decoder can mask the padding."""

import math

import numpy as np

from ..registry import register


def resize_norm_img_sar(img, image_shape, width_downsample_ratio=0.25):
    """(C x H x imgW_max float32 canvas, valid_ratio) as PaddleOCR computes them."""
    import cv2

    if img is None or img.ndim < 2 or img.shape[0] < 1 or img.shape[1] < 1:
        raise ValueError("empty image")
    c, h_target, w_min, w_max = image_shape
    h, w = img.shape[:2]
    divisor = int(1 / width_downsample_ratio)
    resize_w = math.ceil(h_target * (w / float(h)))
    if resize_w % divisor != 0:
        resize_w = round(resize_w / divisor) * divisor
    valid_ratio = 1.0
    if w_min is not None:
        resize_w = max(w_min, resize_w)
    if w_max is not None:
        valid_ratio = min(1.0, 1.0 * resize_w / w_max)
        resize_w = min(w_max, resize_w)
    if resize_w < 1:
        raise ValueError(f"the crop ({w}x{h}) is too narrow for the recogniser's resize")
    resized = cv2.resize(img, (resize_w, h_target)).astype(np.float32)
    if c == 1:
        resized = resized[None] / 255 if resized.ndim == 2 else \
            cv2.cvtColor(resized, cv2.COLOR_BGR2GRAY)[None] / 255
    else:
        resized = resized.transpose(2, 0, 1) / 255
    resized = (resized - 0.5) / 0.5
    canvas = -1.0 * np.ones((c, h_target, w_max), dtype=np.float32)
    canvas[:, :, :resize_w] = resized
    return canvas, valid_ratio


@register("PreProcess")
class SARRecResizeImg:
    """image_shape = (C, H, imgW_min, imgW_max); sets data['valid_ratio'] and the program's
    inputs [image, valid_ratio]."""

    inputs = ("image", "valid_ratio")

    def __init__(self, image_shape=(3, 48, 48, 160), width_downsample_ratio=0.25,
                 **_training_only):
        if len(image_shape) != 4:
            raise ValueError(f"{type(self).__name__} image_shape is (C, H, imgW_min, "
                             f"imgW_max), not {list(image_shape)}")
        self.image_shape = tuple(int(v) for v in image_shape)
        self.width_downsample_ratio = float(width_downsample_ratio)

    def __call__(self, data):
        image, ratio = resize_norm_img_sar(data["image"], self.image_shape,
                                           self.width_downsample_ratio)
        data["image"] = image
        data["valid_ratio"] = np.float32(ratio)
        data["model_inputs"] = list(self.inputs)
        return data



@register("PreProcess")
class RobustScannerRecResizeImg(SARRecResizeImg):
    """SAR's resize, plus the word positions 0..max_text_length-1 (int64) the position
    decoder queries with; PaddleOCR names the key ``word_positons``. Program inputs:
    [image, valid_ratio, word_positons]."""

    inputs = ("image", "valid_ratio", "word_positons")

    def __init__(self, image_shape=(3, 48, 48, 160), max_text_length=40,
                 width_downsample_ratio=0.25, **_training_only):
        super().__init__(image_shape, width_downsample_ratio)
        self.max_text_length = int(max_text_length)

    def __call__(self, data):
        data = super().__call__(data)
        data["word_positons"] = np.arange(self.max_text_length, dtype=np.int64)
        return data
