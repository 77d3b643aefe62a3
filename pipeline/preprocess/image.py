"""Reading images and the operators every family shares (ppocr/data/imaug/operators.py).

Images are BGR uint8 arrays as cv2 reads them; PaddleOCR normalises them in that channel
order with ImageNet statistics listed in RGB order, and so do we, to give the same tensors.
"""

import numpy as np

from ..registry import register


def read_image(path):
    """BGR uint8 image, or ValueError naming the file when it cannot be decoded."""
    import cv2

    data = np.fromfile(str(path), dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if img is None:
        raise ValueError(f"{path}: not a readable image")
    return img


@register("PreProcess")
class DecodeImage:
    """Bytes -> image. The pipeline hands operators decoded BGR arrays already, so an export's
    DecodeImage (img_mode BGR, HWC) passes arrays through and decodes only bytes; with
    img_mode RGB an array is flipped to RGB, the image PaddleOCR's op would have made (its KIE
    models take the page in RGB: LayoutXLM/LayoutLMv2's image branch, SDMGR)."""

    def __init__(self, img_mode="BGR", channel_first=False, **_training_only):
        if img_mode not in ("BGR", "RGB", "GRAY"):
            raise ValueError(f"DecodeImage img_mode must be BGR, RGB or GRAY, not {img_mode!r}")
        self.img_mode, self.channel_first = img_mode, channel_first

    def __call__(self, data):
        import cv2

        img = data["image"]
        if isinstance(img, (bytes, bytearray)):
            img = cv2.imdecode(np.frombuffer(img, np.uint8), cv2.IMREAD_COLOR)
            if img is None:
                return None
            if self.img_mode == "GRAY":
                img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
            elif self.img_mode == "RGB":
                img = img[:, :, ::-1]
            if self.channel_first:
                img = img.transpose((2, 0, 1))
        elif self.img_mode == "RGB" and getattr(img, "ndim", 0) == 3:
            img = np.ascontiguousarray(img[:, :, ::-1])
            if self.channel_first:
                img = img.transpose((2, 0, 1))
        data["image"] = img
        return data


@register("PreProcess")
class NormalizeImage:
    """(image * scale - mean) / std in float32; ``scale`` may be the string '1./255.'."""

    def __init__(self, scale=None, mean=None, std=None, order="chw", **_training_only):
        if isinstance(scale, str):
            num, _, den = scale.partition("/")
            scale = float(num) / float(den) if den else float(num)
        self.scale = np.float32(scale if scale is not None else 1.0 / 255.0)
        shape = (3, 1, 1) if order == "chw" else (1, 1, 3)
        self.mean = np.array(mean if mean is not None else [0.485, 0.456, 0.406]
                             ).reshape(shape).astype("float32")
        self.std = np.array(std if std is not None else [0.229, 0.224, 0.225]
                            ).reshape(shape).astype("float32")

    def __call__(self, data):
        data["image"] = (data["image"].astype("float32") * self.scale - self.mean) / self.std
        return data


@register("PreProcess")
class ToCHWImage:
    def __init__(self, **_training_only):
        pass

    def __call__(self, data):
        data["image"] = data["image"].transpose((2, 0, 1))
        return data


@register("PreProcess")
class KeepKeys:
    """Which entries become the model's inputs, in order (PaddleOCR lists label keys for
    training too; the pipeline keeps the ones it has)."""

    def __init__(self, keep_keys=("image",), **_training_only):
        self.keep_keys = list(keep_keys)

    def __call__(self, data):
        data["keep_keys"] = [k for k in self.keep_keys if k in data]
        return data


def _training_label_op(name):
    """Label encoders of a training config's eval pipeline: the labels are absent at
    inference, so they pass the data through."""

    class LabelEncode:
        def __init__(self, **_training_only):
            pass

        def __call__(self, data):
            return data

    LabelEncode.__name__ = LabelEncode.__qualname__ = name
    return register("PreProcess", name)(LabelEncode)


for _name in ("DetLabelEncode", "CTCLabelEncode", "MultiLabelEncode", "NRTRLabelEncode",
              "AttnLabelEncode", "SARLabelEncode", "ClsLabelEncode"):
    _training_label_op(_name)
