"""``from ptocr import PaddleOCR``: PaddleOCR 2.x's class on ptocr's models, so code written
against PaddleOCR switches by changing one import.

The constructor takes PaddleOCR 2.x's arguments that choose models and settings (``lang``,
``ocr_version``, ``use_angle_cls``, ``det_model_dir``/``rec_model_dir``/``cls_model_dir`` as a
ptocr checkpoint or a Paddle model folder, ``rec_char_dict_path``, the det/rec/cls settings of
tools/infer/utility.py, ``page_num``), and ``.ocr(img, det, rec, cls, bin, inv, alpha_color)``
returns exactly PaddleOCR 2.x's nested result (paddleocr.py, release 2.10):

    det and rec        [[ [box, (text, score)], ... ] or None, ...]   one entry per image/page
    det only           [[ box, ... ] or None, ...]
    rec only           [[ (text, score), ... ], ...]                   (cls first when enabled)
    cls only           [[ [label, score], ... ], ...]                  (needs use_angle_cls)

with box = [[x, y]] * 4 as Python floats. Arguments it does not take are listed in
``UNSUPPORTED``; passing one with a value that changes results is a TypeError naming it.
"""

import warnings
from pathlib import Path

import numpy as np

from .errors import PtocrError

# settings passed on to the OCR system (pipeline/options.py names = PaddleOCR's)
_SETTINGS = ("det_limit_side_len", "det_limit_type", "det_db_thresh", "det_db_box_thresh",
             "det_db_unclip_ratio", "det_db_score_mode", "use_dilation", "max_candidates",
             "rec_image_shape", "cls_image_shape", "rec_batch_num", "cls_batch_num",
             "cls_thresh", "drop_score")
# PaddleOCR 2.x arguments that only tune Paddle's runtime or logging: accepted, no effect
IGNORED = {"show_log", "use_gpu", "gpu_id", "gpu_mem", "ir_optim", "use_tensorrt",
           "min_subgraph_size", "precision", "enable_mkldnn", "use_xpu", "use_npu", "use_mlu",
           "benchmark", "warmup", "save_log_path", "use_mp", "total_process_num",
           "process_id", "det", "rec", "type", "savefile", "image_dir", "output",
           "structure_version", "use_pdserving", "det_box_type"}
# PaddleOCR 2.x arguments ptocr does not take: value that would be needed -> TypeError
UNSUPPORTED = {
    "use_onnx": False, "det_algorithm": "DB", "rec_algorithm": ("SVTR_LCNet", "CRNN"),
    "return_word_box": False, "e2e_algorithm": None, "sr_model_dir": None,
    "save_crop_res": False,
}


def _decode(data):
    import cv2

    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)


def alpha_to_color(img, alpha_color=(255, 255, 255)):
    """A BGRA image over a plain background (alpha_color is RGB), as PaddleOCR does."""
    import cv2

    if img.ndim == 3 and img.shape[2] == 4:
        b, g, r, a = cv2.split(img)
        alpha = a / 255
        r = (alpha_color[0] * (1 - alpha) + r * alpha).astype(np.uint8)
        g = (alpha_color[1] * (1 - alpha) + g * alpha).astype(np.uint8)
        b = (alpha_color[2] * (1 - alpha) + b * alpha).astype(np.uint8)
        img = cv2.merge((b, g, r))
    return img


def binarize(img):
    """Otsu black and white, as PaddleOCR's ``bin=True``."""
    import cv2

    if img.ndim == 3 and img.shape[2] == 3:
        gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        _, gray = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        img = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    return img


def _three_channels(img, alpha_color):
    import cv2

    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if img.ndim == 3 and img.shape[2] == 4:
        img = alpha_to_color(img, alpha_color)
    return img


class PaddleOCR:
    """PaddleOCR 2.x's ``PaddleOCR`` on ptocr checkpoints (see the module docstring).

    Models: ``det_model_dir``/``rec_model_dir``/``cls_model_dir`` when given (a ptocr
    checkpoint, or a Paddle inference/training folder converted on the fly), else the official
    models of ``ocr_version`` and ``lang`` (PaddleOCR's mapping; default PP-OCRv5, where
    PaddleOCR 2.x defaulted to PP-OCRv4: pass ocr_version="PP-OCRv4" for its models),
    fetched once into the model cache ($PTOCR_HOME).
    """

    def __init__(self, lang="ch", ocr_version=None, use_angle_cls=False, det_model_dir=None,
                 rec_model_dir=None, cls_model_dir=None, rec_char_dict_path=None,
                 use_space_char=None, page_num=0, cpu_threads=None, **kwargs):
        from .converter import models_cache
        from .pipeline.system import OCR

        settings = {k: kwargs.pop(k) for k in list(kwargs) if k in _SETTINGS}
        for name in list(kwargs):
            if name in IGNORED:
                kwargs.pop(name)
            elif name in UNSUPPORTED:
                value, ok = kwargs.pop(name), UNSUPPORTED[name]
                if value is not None and value != ok and not (
                        isinstance(ok, tuple) and value in ok):
                    raise TypeError(f"ptocr's PaddleOCR does not support {name}={value!r}")
        if kwargs:
            raise TypeError(f"PaddleOCR() got unexpected arguments: {', '.join(sorted(kwargs))}")
        if isinstance(settings.get("rec_image_shape"), str):
            settings["rec_image_shape"] = settings["rec_image_shape"].replace(" ", "")
        self.use_angle_cls, self.page_num = bool(use_angle_cls), int(page_num or 0)

        def model(spec, task):
            return models_cache.resolve(spec, task, ocr_version, lang,
                                        rec_dict=rec_char_dict_path if task == "rec" else None,
                                        use_space_char=use_space_char if task == "rec" else None)

        try:
            self.system = OCR(det=model(det_model_dir, "det"), rec=model(rec_model_dir, "rec"),
                              cls=model(cls_model_dir, "cls") if self.use_angle_cls else None,
                              threads=cpu_threads, **settings)
        except ValueError as exc:
            raise PtocrError(str(exc)) from None

    # ------------------------------------------------------------ inputs (check_img)

    def _images(self, img, alpha_color):
        """(list of BGR images or a list of crops, is_pdf) as PaddleOCR's check_img reads
        an ndarray, a path, bytes (an image or a PDF) or a PDF path."""
        from .pipeline.documents import is_pdf, render_pdf

        if isinstance(img, (bytes, bytearray)) or isinstance(img, (str, Path)):
            if is_pdf(img):
                pages = [p for _, p in render_pdf(
                    img, range(1, self.page_num + 1) if self.page_num else None)]
                return pages, True
            if isinstance(img, (bytes, bytearray)):
                decoded = _decode(bytes(img))
                if decoded is None:
                    raise ValueError("the bytes are not an image PaddleOCR can decode")
                img = decoded
            else:
                img = self._read_path(Path(img))
        if isinstance(img, np.ndarray):
            return [_three_channels(img, alpha_color)], False
        raise TypeError("img must be an ndarray, a path, bytes, or a list of ndarrays (with "
                        "det=False)")

    @staticmethod
    def _read_path(path):
        import cv2

        if not path.is_file():
            raise ValueError(f"{path}: no such file")
        if path.suffix.lower() == ".gif":  # first frame, channels as PaddleOCR hands them on
            ok, frame = cv2.VideoCapture(str(path)).read()
            if not ok:
                raise ValueError(f"{path}: not a readable GIF")
            if frame.ndim == 2 or frame.shape[-1] == 1:
                frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
            return frame[:, :, ::-1]
        img = _decode(path.read_bytes())
        if img is None:
            from PIL import Image

            try:
                img = np.array(Image.open(path).convert("RGB"))[:, :, ::-1].copy()
            except Exception:
                raise ValueError(f"{path}: not a readable image") from None
        return img

    # ------------------------------------------------------------ ocr()

    def ocr(self, img, det=True, rec=True, cls=True, bin=False, inv=False,
            alpha_color=(255, 255, 255), slice=None):
        """PaddleOCR 2.x's ``ocr()``: same arguments, same nested result."""
        import cv2

        if slice:
            raise TypeError("ptocr's PaddleOCR does not support slice (sliding-window "
                            "detection)")
        if isinstance(img, list):
            if det:
                raise ValueError("when the input is a list of images, det must be False")
            crops = [_three_channels(np.asarray(i), alpha_color) for i in img]
            imgs = None
        else:
            imgs, _ = self._images(img, alpha_color)
            crops = None
        if cls and not self.use_angle_cls:
            warnings.warn("Since the angle classifier is not initialized, it will not be used "
                          "during the forward process", stacklevel=2)

        def prepare(image):
            image = alpha_to_color(image, alpha_color)
            if inv:
                image = cv2.bitwise_not(image)
            if bin:
                image = binarize(image)
            return image

        system = self.system
        if det and rec:
            out = []
            for image in imgs:
                lines = system(prepare(image), cls=cls)
                out.append([[r["box"], (r["text"], r["score"])] for r in lines] or None)
            return out
        if det:
            out = []
            for image in imgs:
                boxes = system.detect(prepare(image))
                out.append([[[float(x), float(y)] for x, y in box] for box in boxes]
                           if len(boxes) else None)
            return out
        groups = [crops] if crops is not None else [[prepare(i)] for i in imgs]
        use_cls = self.use_angle_cls and cls
        if not rec and not use_cls:
            return []
        out = []
        for group in groups:
            if use_cls:
                group, labels = system.classify(group)
                if not rec:
                    out.append([[label, score] for label, score in labels])
                    continue
            out.append([(text, float(score)) for text, score in system.recognize(group)])
        return out
