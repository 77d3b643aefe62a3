"""Layout model input (ppocr/data/imaug/operators.py Resize, as PaddleOCR's
ppstructure/layout/predict_layout.py runs it: the image stretched to a fixed size, no
aspect ratio kept), and the PaddleX/PaddleDetection form of the same resize for the
PP-DocLayout exports, whose programs also take the image's ``scale_factor``."""

import numpy as np

from ..registry import register


# PaddleDetection's / PaddleX's interp codes (cv2's constants)
INTERP = {0: "NEAREST", 1: "LINEAR", 2: "CUBIC", 3: "AREA", 4: "LANCZOS4"}


@register("PreProcess")
class Resize:
    """Stretch to ``size`` = (height, width) with cv2's default bilinear; data['shape'] =
    [h, w, ratio_h, ratio_w] of the source image (the layout decoder scales boxes back).

    PaddleX's form (its detection ``inference.yml``: ``target_size`` [h, w], ``keep_ratio``
    false, ``interp`` a cv2 code, 2 = bicubic) does the same stretch and also gives the
    program's second input, ``scale_factor`` = [ratio_h, ratio_w] (float32), as PaddleX's
    ToBatch orders it."""

    def __init__(self, size=None, target_size=None, keep_ratio=False, interp=None,
                 **_training_only):
        if keep_ratio:
            raise ValueError("Resize: keep_ratio true is not supported (layout exports "
                             "stretch to a fixed size)")
        self.scale_input = target_size is not None
        self.height, self.width = (int(v) for v in (target_size or size or (640, 640)))
        if isinstance(interp, str):
            interp = {v: k for k, v in INTERP.items()}[interp.upper()]
        self.interp = None if interp is None else int(interp)

    def __call__(self, data):
        import cv2

        img = data["image"]
        height, width = img.shape[:2]
        if self.interp is None:
            data["image"] = cv2.resize(img, (self.width, self.height))
        else:
            data["image"] = cv2.resize(img, (self.width, self.height),
                                       interpolation=getattr(cv2, "INTER_" + INTERP[self.interp]))
        data["shape"] = np.array([height, width, self.height / height, self.width / width])
        if self.scale_input:
            data["scale_factor"] = np.array([self.height / height, self.width / width],
                                            dtype=np.float32)
            data["model_inputs"] = ["image", "scale_factor"]
        return data


@register("PreProcess")
class ReadImage:
    """PaddleX's reader: ``format: RGB`` turns the pipeline's BGR array into RGB (PaddleX's
    detection models read RGB images)."""

    def __init__(self, format="BGR", **_training_only):  # noqa: A002 (PaddleX's name)
        if format not in ("BGR", "RGB"):
            raise ValueError(f"ReadImage format must be BGR or RGB, not {format!r}")
        self.rgb = format == "RGB"

    def __call__(self, data):
        if self.rgb:
            data["image"] = np.ascontiguousarray(data["image"][:, :, ::-1])
        return data
