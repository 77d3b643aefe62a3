"""Layout model input (ppocr/data/imaug/operators.py Resize, as PaddleOCR's
ppstructure/layout/predict_layout.py runs it: the image stretched to a fixed size, no
aspect ratio kept). PaddleX's layout exports (PP-DocLayout) take PaddleDetection's
``Resize`` parameters (``target_size``, ``keep_ratio: false``, ``interp``) and two more
program inputs, ``im_shape`` and ``scale_factor`` (DetInputs)."""

import numpy as np

from ..registry import register


@register("PreProcess")
class Resize:
    """Stretch to ``size`` = (height, width) (PaddleDetection: ``target_size``) with cv2's
    interpolation ``interp`` (default bilinear); data['shape'] = [h, w, ratio_h, ratio_w] of
    the source image (the layout decoder scales boxes back), and as PaddleX's detection
    predictor batches them, data['im_shape'] = the network input [h, w] and
    data['scale_factor'] = [ratio_h, ratio_w] (float32)."""

    def __init__(self, size=(640, 640), target_size=None, keep_ratio=False, interp=1,
                 **_training_only):
        if keep_ratio:
            raise ValueError("Resize: keep_ratio true is not supported (layout models stretch)")
        if target_size is not None:
            size = [target_size, target_size] if isinstance(target_size, int) else target_size
        self.height, self.width = (int(v) for v in size)
        self.interp = int(interp)

    def __call__(self, data):
        import cv2

        img = data["image"]
        height, width = img.shape[:2]
        data["image"] = cv2.resize(img, (self.width, self.height), interpolation=self.interp)
        data["shape"] = np.array([height, width, self.height / height, self.width / width])
        data["im_shape"] = np.array([self.height, self.width], dtype=np.float32)
        data["scale_factor"] = np.array([self.height / height, self.width / width],
                                        dtype=np.float32)
        return data


@register("PreProcess")
class DetInputs:
    """The program's inputs in its order (PaddleDetection exports feed a dict, which the
    program orders by name: im_shape, image, scale_factor)."""

    def __init__(self, keys=("im_shape", "image", "scale_factor"), **_training_only):
        self.keys = list(keys)

    def __call__(self, data):
        data["model_inputs"] = list(self.keys)
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
