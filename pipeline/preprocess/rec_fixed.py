"""Fixed-shape recogniser inputs of the transformer recognisers, as PaddleOCR's inference tool
prepares them (tools/infer/predict_rec.py; the same operators as ppocr/data/imaug/
rec_img_aug.py): SVTR and ParseQ stretch the crop to the network's fixed size (they have
position embeddings of one grid); NRTR and ViTSTR read a grayscale image resized by PIL."""

import numpy as np

from ..registry import register
from .image import _training_label_op


def _check(img, who):
    if img is None or img.ndim < 2 or img.shape[0] < 1 or img.shape[1] < 1:
        raise ValueError(f"{who}: empty image")


@register("PreProcess")
class SVTRRecResizeImg:
    """Resize to image_shape (C, H, W) with bilinear cv2.resize, scale to [-1, 1]; with
    ``padding`` keep the aspect ratio and pad the right with zeros instead."""

    def __init__(self, image_shape=(3, 64, 256), padding=True, **_training_only):
        self.image_shape = tuple(int(v) for v in image_shape)
        self.padding = bool(padding)

    def __call__(self, data):
        import math

        import cv2

        img = data["image"]
        _check(img, "SVTRRecResizeImg")
        c, h_target, w_target = self.image_shape
        if self.padding:
            ratio = img.shape[1] / float(img.shape[0])
            w = min(w_target, int(math.ceil(h_target * ratio)))
            resized = cv2.resize(img, (w, h_target))
        else:
            w = w_target
            resized = cv2.resize(img, (w_target, h_target), interpolation=cv2.INTER_LINEAR)
        resized = resized.astype(np.float32)
        resized = resized[None] / 255 if c == 1 else resized.transpose(2, 0, 1) / 255
        out = np.zeros((c, h_target, w_target), dtype=np.float32)
        out[:, :, :w] = (resized - 0.5) / 0.5
        data["image"] = out
        data["valid_ratio"] = min(1.0, w / float(w_target))
        return data


# PaddleOCR names PIL filters in its configs as strings it evaluates
PIL_FILTERS = {"ANTIALIAS": "LANCZOS", "LANCZOS": "LANCZOS", "BICUBIC": "BICUBIC",
               "BILINEAR": "BILINEAR", "NEAREST": "NEAREST", "BOX": "BOX", "HAMMING": "HAMMING"}


def pil_filter(name):
    from PIL import Image

    key = str(name).split(".")[-1].upper()
    if key not in PIL_FILTERS:
        raise ValueError(f"unknown PIL filter {name!r} (known: {', '.join(PIL_FILTERS)})")
    return getattr(Image.Resampling, PIL_FILTERS[key])


@register("PreProcess")
class GrayRecResizeImg:
    """Grayscale, resized to image_shape = (W, H) by PIL (resize_type PIL, filter inter_type)
    or cv2 (OpenCV); ``scale``: x / 128 - 1 (NRTR), else x / 255 (ViTSTR). ``padding`` keeps
    the aspect ratio on a (C, H, W) canvas instead."""

    def __init__(self, image_shape=(100, 32), resize_type="PIL",
                 inter_type="Image.Resampling.LANCZOS", scale=True, padding=False,
                 **_training_only):
        if resize_type not in ("PIL", "OpenCV"):
            raise ValueError(f"GrayRecResizeImg resize_type must be PIL or OpenCV, "
                             f"not {resize_type!r}")
        self.image_shape = tuple(int(v) for v in image_shape)
        self.resize_type, self.scale, self.padding = resize_type, bool(scale), bool(padding)
        self.inter_type = pil_filter(inter_type)

    def __call__(self, data):
        import math

        import cv2
        from PIL import Image

        img = data["image"]
        _check(img, "GrayRecResizeImg")
        img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        if self.padding:
            c, h_target, w_target = self.image_shape
            ratio = img.shape[1] / float(img.shape[0])
            w = min(w_target, int(math.ceil(h_target * ratio)))
            out = np.zeros((c, h_target, w_target), dtype=np.float32)
            out[:, :, :w] = cv2.resize(img, (w, h_target))[None].astype(np.float32) / 128.0 - 1.0
            data["image"] = out
            return data
        if self.resize_type == "PIL":
            img = np.array(Image.fromarray(np.uint8(img)).resize(self.image_shape,
                                                                 self.inter_type))
        else:
            img = cv2.resize(img, self.image_shape)
        img = img[None].astype(np.float32)
        data["image"] = img / 128.0 - 1.0 if self.scale else img / 255.0
        return data


@register("PreProcess")
class SPINRecResizeImg:
    """SPIN: grayscale, resized to image_shape = (W, H), (x − mean) · (1 / std), 1×H×W.

    PaddleOCR (predict_rec.py's resize_norm_img_spin and rec_img_aug's SPINRecResizeImg)
    calls ``cv2.resize(img, size, interpolation)`` with the flag in the third positional
    slot, which is ``dst``: the flag is ignored and cv2's default, bilinear, resizes. So the
    ``interpolation`` parameter (2, cubic, in the configs) changes nothing, here as there.
    The normalisation is predict_rec's, in float32."""

    def __init__(self, image_shape=(100, 32), interpolation=2, mean=(127.5,), std=(127.5,),
                 **_training_only):
        self.image_shape = tuple(int(v) for v in image_shape)
        self.interpolation = interpolation  # kept for the record: PaddleOCR never applies it
        self.mean = np.float32(np.array(mean, dtype=np.float32).reshape(1, -1))
        self.stdinv = 1 / np.float32(np.array(std, dtype=np.float32).reshape(1, -1))

    def __call__(self, data):
        import cv2

        img = data["image"]
        _check(img, "SPINRecResizeImg")
        img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        img = cv2.resize(img, self.image_shape).astype(np.float32)[None]  # bilinear
        img -= self.mean
        img *= self.stdinv
        data["image"] = img
        return data


for _name in ("ViTSTRLabelEncode", "ParseQLabelEncode", "SPINAttnLabelEncode"):
    _training_label_op(_name)
