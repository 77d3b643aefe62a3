"""The OCR system on converted checkpoints: detect -> crop -> (classify) -> recognise,
following PaddleOCR's tools/infer/predict_system.py. Each model's pre- and post-processing
are built from its checkpoint (PaddleOCR's PreProcess/PostProcess schema, see registry.py),
with the user's settings overriding (options.py)."""

from pathlib import Path

import numpy as np
import torch

from ..errors import PtocrError
from . import preprocess as pp
from .boxes import (clip_det_polys, filter_det_boxes, get_minarea_rect_crop,
                    get_rotate_crop_image, sorted_boxes)
from .options import split_options
from .registry import build_postprocess, build_transforms, transform


ENGINES = ("eager", "compiled", "aoti")


def _model(spec, task, engine=None):
    if engine not in (None, "eager") and engine not in ENGINES:
        raise PtocrError(f"unknown engine {engine!r} ({', '.join(ENGINES)})")
    if spec is None or isinstance(spec, torch.nn.Module):
        model = spec
        if engine not in (None, "eager") and model is not None and \
                not hasattr(model, "ptocr_artifact") and not hasattr(model, "_orig_mod"):
            raise PtocrError(f"engine {engine} needs the {task} model as a checkpoint path "
                             "(or an exported artifact), not a loaded module")
    else:
        from .. import load

        model = load(spec, engine=engine or "eager")
    if model is None:
        return None
    meta = getattr(model, "ptocr_meta", {}) or {}
    kind = (meta.get("extra") or {}).get("task")
    if kind and kind != task:
        name = spec if not isinstance(spec, torch.nn.Module) else meta.get("arch", "the model")
        raise PtocrError(f"{name}: a {kind} model was given where a {task} model is needed")
    return model.eval()


def outputs_as_arrays(out):
    """A model's output (tensor, tuple/list or dict of tensors) as a list of numpy arrays,
    in the order the Paddle inference program returns them."""
    if isinstance(out, dict):
        out = list(out.values())
    if not isinstance(out, (list, tuple)):
        out = [out]
    return [o.detach().cpu().numpy() for o in out]


class Stage:
    """One model with the processing its checkpoint carries."""

    def __init__(self, model, task, overrides=None, **context):
        self.model, self.task = _model(model, task), task
        meta = getattr(self.model, "ptocr_meta", {}) or {}
        processing = meta.get("processing") or {}
        if not processing.get("PreProcess") or not processing.get("PostProcess"):
            raise PtocrError(f"the {task} checkpoint ({meta.get('arch', 'unknown')}) carries no "
                             "pre/post-processing; convert it again with this ptocr")
        try:
            self.pre = build_transforms(processing["PreProcess"], overrides)
            self.post = build_postprocess(processing["PostProcess"], overrides, **context)
        except (KeyError, ValueError, TypeError) as exc:
            raise PtocrError(f"{task} processing of {meta.get('arch', 'the checkpoint')}: "
                             f"{exc}") from None

    def prepare(self, image, **extra):
        data = transform(self.pre, {"image": image, **extra})
        if data is None:
            raise ValueError(f"{self.task} pre-processing rejected the image")
        return data

    def run(self, batch):
        """Model outputs for prepared data dicts; a preprocessor that produces more model
        inputs than the image lists them in data['model_inputs'] (PaddleOCR's order)."""
        keys = batch[0].get("model_inputs") or ["image"]
        inputs = [torch.from_numpy(np.stack([d[k] for d in batch])) for k in keys]
        return outputs_as_arrays(self.model(*inputs))


class OCR:
    """``OCR(det=..., rec=..., cls=None, **options)(image)`` -> [{box, text, score}, ...].

    ``image`` is a BGR ndarray (as cv2 reads it) or a path. det/rec/cls are ptocr checkpoints
    (paths) or loaded models; processing and the recogniser's dictionary come from their
    checkpoints, and ``options`` (PaddleOCR's argument names, options.py) override them.
    A stage may be None when only the others are used (``detect``, ``recognize``,
    ``classify``: PaddleOCR's predict_det / predict_rec / predict_cls alone).
    ``e2e``: an end-to-end model (PGNet) in place of det/rec/cls: lines are then its
    polygons and texts, as PaddleOCR's predict_e2e gives them ({box, text}, no score).
    """

    def __init__(self, det=None, rec=None, cls=None, threads=None, engine="eager", e2e=None,
                 **options):
        self.opt, overrides = split_options(options)
        if threads:
            torch.set_num_threads(threads)
        self.e2e = None
        if e2e is not None:
            if any(m is not None for m in (det, rec, cls)):
                raise PtocrError("an end-to-end model reads the text itself: give it without "
                                 "det/rec/cls models")
            e2e_model = _model(e2e, "e2e", engine)
            extra = (getattr(e2e_model, "ptocr_meta", {}) or {}).get("extra") or {}
            self.e2e = Stage(e2e_model, "e2e", overrides.get("e2e"),
                             character_dict=extra.get("character_dict"))
        # engine: eager modules, torch.compile (checked against eager), or AOTInductor
        # packages (ptocr export, made once and cached); see ptocr.load
        det, cls = (_model(m, t, engine) if m is not None else None
                    for m, t in ((det, "det"), (cls, "cls")))
        self.det = Stage(det, "det", overrides.get("det")) if det is not None else None
        self.rec = None
        if rec is not None:
            rec_model = _model(rec, "rec", engine)
            extra = (getattr(rec_model, "ptocr_meta", {}) or {}).get("extra") or {}
            self.rec = Stage(rec_model, "rec", overrides.get("rec"),
                             character_dict=extra.get("character_dict"),
                             use_space_char=extra.get("use_space_char", False))
        self.cls = Stage(cls, "cls", overrides.get("cls")) if cls is not None else None

    def __call__(self, image, cls=True):
        """Lines of one image; ``cls=False`` skips the direction classifier for this call."""
        img = pp.read_image(image) if isinstance(image, (str, Path)) else image
        if img is None or getattr(img, "ndim", 0) != 3:
            raise ValueError("expected a BGR image (H×W×3 array) or an image path")
        if self.e2e is not None:
            return self.spot(img)
        with torch.inference_mode():
            boxes = self.detect(img)
            if len(boxes) == 0:
                return []
            boxes = sorted_boxes(boxes)
            crop = get_minarea_rect_crop if self.polygons else get_rotate_crop_image
            crops = [crop(img, b.copy()) for b in boxes]
            if self.cls is not None and cls:
                crops, _ = self.classify(crops)
            texts = self.recognize(crops)
        return [{"box": [[float(x), float(y)] for x, y in box], "text": text,
                 "score": float(score)}
                for box, (text, score) in zip(boxes, texts) if score >= self.opt.drop_score]

    @property
    def polygons(self):
        """The detector's post-processor gives polygons (``box_type == "poly"``): they are
        only clipped, and cropped by their minimum-area rectangle, as predict_system does."""
        return self.det is not None and getattr(self.det.post, "box_type", "quad") == "poly"

    def _need(self, stage, task):
        if stage is None:
            raise PtocrError(f"this OCR system has no {task} model")
        return stage

    def detect(self, img, scores=False):
        """Boxes of one BGR image as predict_det returns them (quads: N×4×2 float32, corners
        ordered and clipped, thin ones dropped; polygons: only clipped); with ``scores``,
        (boxes, box scores)."""
        det = self._need(self.det, "det")
        with torch.inference_mode():
            data = det.prepare(img)
            result = det.post(det.run([data]), np.array([data["shape"]]))[0]
        h, w = img.shape[:2]
        if self.polygons:
            polys = clip_det_polys(result["points"], h, w)
            return (polys, [float(s) for s in result.get("scores", [])]) if scores else polys
        return filter_det_boxes(result["points"], h, w,
                                result.get("scores") if scores else None)

    def spot(self, img):
        """End-to-end lines of one BGR image, as predict_e2e returns them: the model's
        polygons with each point clipped into the image (whole pixels), and their texts."""
        e2e = self._need(self.e2e, "e2e")
        with torch.inference_mode():
            data = e2e.prepare(img)
            result = e2e.post(e2e.run([data]), np.array([data["shape"]]))[0]
        h, w = img.shape[:2]
        lines = []
        for poly, text in zip(result["points"], result["texts"]):
            box = [[float(int(min(max(x, 0), w - 1))), float(int(min(max(y, 0), h - 1)))]
                   for x, y in np.asarray(poly)]
            lines.append({"box": box, "text": text})
        return lines

    def _batches(self, crops, size):
        """Indices of crops in batches of similar width ratio, as predict_rec/cls batch."""
        order = np.argsort([c.shape[1] / float(c.shape[0]) for c in crops])
        for start in range(0, len(crops), size):
            yield order[start: start + size]

    def classify(self, crops):
        """(crops with those classified as 180° above cls_thresh turned upright,
        [(label, score)] per crop), as predict_cls returns them."""
        import cv2

        cls = self._need(self.cls, "cls")
        crops, labels = list(crops), [("", 0.0)] * len(crops)
        with torch.inference_mode():
            for idx in self._batches(crops, self.opt.cls_batch_num):
                batch = [cls.prepare(crops[i]) for i in idx]
                for i, (label, score) in zip(idx, cls.post(cls.run(batch))):
                    labels[i] = (label, float(score))
                    if "180" in label and score > self.opt.cls_thresh:
                        crops[i] = cv2.rotate(crops[i], cv2.ROTATE_180)
        return crops, labels

    def recognize(self, crops):
        """Recognition in batches of similar width ratio, each batch on a canvas as wide as
        its widest crop (data['max_wh_ratio'])."""
        rec = self._need(self.rec, "rec")
        results = [("", 0.0)] * len(crops)
        with torch.inference_mode():
            for idx in self._batches(crops, self.opt.rec_batch_num):
                ratio = max(crops[i].shape[1] / float(crops[i].shape[0]) for i in idx)
                batch = [rec.prepare(crops[i], max_wh_ratio=ratio) for i in idx]
                for i, res in zip(idx, rec.post(rec.run(batch))):
                    results[i] = res
        return results
