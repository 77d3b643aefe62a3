"""The PP-OCR system on converted checkpoints: detect -> crop -> (classify) -> recognise,
following PaddleOCR's tools/infer/predict_system.py and its defaults."""

from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch

from . import preprocess as pp
from .postprocess import (CTCLabelDecode, DBPostProcess, filter_det_boxes,
                          get_rotate_crop_image, sorted_boxes)


@dataclass
class OCROptions:
    """PaddleOCR's predict_system defaults (tools/infer/utility.py)."""

    det_limit_side_len: int = 960
    det_limit_type: str = "max"
    det_db_thresh: float = 0.3
    det_db_box_thresh: float = 0.6
    det_db_unclip_ratio: float = 1.5
    det_db_score_mode: str = "fast"
    use_dilation: bool = False
    max_candidates: int = 1000
    rec_image_shape: tuple = (3, 48, 320)
    rec_batch_num: int = 6
    cls_image_shape: tuple = (3, 48, 192)
    cls_batch_num: int = 6
    cls_thresh: float = 0.9
    drop_score: float = 0.5


def _model(spec, task):
    if spec is None or isinstance(spec, torch.nn.Module):
        model = spec
    else:
        from .. import load

        model = load(spec)
    if model is None:
        return None
    meta = getattr(model, "ptocr_meta", {}) or {}
    kind = (meta.get("extra") or {}).get("task")
    if kind and kind != task:
        from ..converter.errors import PtocrError

        raise PtocrError(f"{spec}: a {kind} model was given where a {task} model is needed")
    return model.eval()


class OCR:
    """``OCR(det=..., rec=..., cls=None, **options)(image)`` -> [{box, text, score}, ...].

    ``image`` is a BGR ndarray (as cv2 reads it) or a path. det/rec/cls are ptocr checkpoints
    (paths) or loaded models; the recogniser's dictionary comes from its checkpoint.
    """

    def __init__(self, det, rec, cls=None, threads=None, **options):
        unknown = set(options) - {f.name for f in fields(OCROptions)}
        if unknown:
            raise TypeError(f"unknown OCR options: {', '.join(sorted(unknown))}")
        self.opt = OCROptions(**options)
        if threads:
            torch.set_num_threads(threads)
        self.det, self.rec, self.cls = _model(det, "det"), _model(rec, "rec"), _model(cls, "cls")
        extra = (getattr(self.rec, "ptocr_meta", {}) or {}).get("extra") or {}
        if "character_dict" not in extra:
            from ..converter.errors import PtocrError

            raise PtocrError("the recogniser checkpoint carries no dictionary; convert it "
                             "again with --rec-dict")
        self.decode = CTCLabelDecode(extra["character_dict"], extra.get("use_space_char", False))
        o = self.opt
        self.db = DBPostProcess(o.det_db_thresh, o.det_db_box_thresh, o.max_candidates,
                                o.det_db_unclip_ratio, o.use_dilation, o.det_db_score_mode)

    def __call__(self, image):
        img = pp.read_image(image) if isinstance(image, (str, Path)) else image
        if img is None or getattr(img, "ndim", 0) != 3:
            raise ValueError("expected a BGR image (H×W×3 array) or an image path")
        with torch.inference_mode():
            boxes = self.detect(img)
            if len(boxes) == 0:
                return []
            boxes = sorted_boxes(boxes)
            crops = [get_rotate_crop_image(img, b.copy()) for b in boxes]
            if self.cls is not None:
                crops = self.classify(crops)
            texts = self.recognize(crops)
        return [{"box": [[float(x), float(y)] for x, y in box], "text": text,
                 "score": float(score)}
                for box, (text, score) in zip(boxes, texts) if score >= self.opt.drop_score]

    def detect(self, img):
        x, (h, w, _, _) = pp.det_preprocess(img, self.opt.det_limit_side_len,
                                            self.opt.det_limit_type)
        pred = self.det(torch.from_numpy(x)).numpy()[0, 0]
        boxes, _ = self.db(pred, h, w)
        return filter_det_boxes(boxes, h, w)

    def classify(self, crops):
        """Turn crops classified as 180° (above cls_thresh) upright, in batches by width."""
        import cv2

        crops = list(crops)
        order = np.argsort([c.shape[1] / float(c.shape[0]) for c in crops])
        n = self.opt.cls_batch_num
        for start in range(0, len(crops), n):
            idx = order[start: start + n]
            batch = np.stack([pp.rec_resize_norm(crops[i], self.opt.cls_image_shape)
                              for i in idx])
            probs = self.cls(torch.from_numpy(batch)).numpy()
            for i, p in zip(idx, probs):
                if p.argmax() == 1 and p[1] > self.opt.cls_thresh:  # labels ['0', '180']
                    crops[i] = cv2.rotate(crops[i], cv2.ROTATE_180)
        return crops

    def recognize(self, crops):
        """CTC recognition in batches of similar width ratio, as predict_rec batches."""
        results = [("", 0.0)] * len(crops)
        order = np.argsort([c.shape[1] / float(c.shape[0]) for c in crops])
        _, h, w = self.opt.rec_image_shape
        n = self.opt.rec_batch_num
        for start in range(0, len(crops), n):
            idx = order[start: start + n]
            ratio = max([w / h] + [crops[i].shape[1] / float(crops[i].shape[0]) for i in idx])
            batch = np.stack([pp.rec_resize_norm(crops[i], self.opt.rec_image_shape, ratio)
                              for i in idx])
            probs = self.rec(torch.from_numpy(batch)).numpy()
            for i, res in zip(idx, self.decode(probs)):
                results[i] = res
        return results
