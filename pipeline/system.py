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
    # contiguous: a channels_last model's maps would reach cv2 as strided arrays
    return [o.detach().cpu().contiguous().numpy() for o in out]


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
        return self.many([image], cls=cls)[0]

    def many(self, images, cls=True, errors="raise"):
        """Lines of several images, each as ``self(image)`` gives them, with the crops of all
        of them classified and recognised in shared batches (throughput for folders).

        The batches are those of the images one by one, pooled: each crop is prepared on the
        canvas its own image's batch gives it (predict_rec's max_wh_ratio), and crops of
        equal canvas join across images. A crop that was alone in its batch stays alone:
        torch's kernels for a batch of one differ from those for more (last-bit differences
        in scores), while the outputs of a crop in batches of two or more are the same bits
        (tests/test_speed_batching.py checks the results are equal, bitwise, to per image).
        ``errors="return"``: an image that cannot be read or processed gets its error
        (ValueError, OSError) in its place instead of raising."""
        results = [None] * len(images)
        jobs = []  # (index of the image, its boxes, their crops)
        with torch.inference_mode():
            for n, image in enumerate(images):
                try:
                    img = pp.read_image(image) if isinstance(image, (str, Path)) else image
                    if img is None or getattr(img, "ndim", 0) != 3:
                        raise ValueError("expected a BGR image (H×W×3 array) or an image path")
                    if self.e2e is not None:
                        results[n] = self.spot(img)
                        continue
                    boxes = self.detect(img)
                except (ValueError, OSError) as exc:
                    if errors != "return":
                        raise
                    results[n] = exc
                    continue
                if len(boxes) == 0:
                    results[n] = []
                    continue
                boxes = sorted_boxes(boxes)
                crop = get_minarea_rect_crop if self.polygons else get_rotate_crop_image
                jobs.append((n, boxes, [crop(img, b.copy()) for b in boxes]))
            if not jobs:
                return results
            try:
                crop_lists = [crops for _, _, crops in jobs]
                if self.cls is not None and cls:
                    crop_lists = self._classify_many(crop_lists)
                texts = self._recognize_many(crop_lists)
            except ValueError as exc:
                if errors != "return":
                    raise
                if len(jobs) == 1:
                    results[jobs[0][0]] = exc
                    return results
                # one image's crops the processing rejects: find it, one image at a time
                for n, _, _ in jobs:
                    results[n] = self.many([images[n]], cls=cls, errors=errors)[0]
                return results
        for (n, boxes, _), lines in zip(jobs, texts):
            results[n] = [{"box": [[float(x), float(y)] for x, y in box], "text": text,
                           "score": float(score)}
                          for box, (text, score) in zip(boxes, lines)
                          if score >= self.opt.drop_score]
        return results

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

    def _pooled(self, stage, crop_lists, size, ratio=False):
        """Run ``stage`` on the crops of several images: each image's crops prepared in its
        own batches (with the batch's max_wh_ratio when ``ratio``), then batches of equal
        input shapes pooled across images; singletons stay alone (see ``many``).
        Returns [[post-processed result per crop] per image]."""
        results = [[None] * len(crops) for crops in crop_lists]
        pools, alone = {}, []
        for k, crops in enumerate(crop_lists):
            for idx in self._batches(crops, size):
                extra = {}
                if ratio:
                    extra["max_wh_ratio"] = max(crops[i].shape[1] / float(crops[i].shape[0])
                                                for i in idx)
                items = [(k, i, stage.prepare(crops[i], **extra)) for i in idx]
                if len(items) == 1:
                    alone.append(items)
                    continue
                keys = items[0][2].get("model_inputs") or ["image"]
                shape = tuple((key, np.shape(items[0][2][key])) for key in keys)
                pools.setdefault(shape, []).extend(items)
        batches = list(alone)
        for items in pools.values():
            chunks = [items[s: s + size] for s in range(0, len(items), size)]
            if len(chunks) > 1 and len(chunks[-1]) == 1:  # never leave one crop alone
                chunks[-2:] = [chunks[-2] + chunks[-1]]
            batches.extend(chunks)
        for items in batches:
            for (k, i, _), res in zip(items, stage.post(stage.run([d for _, _, d in items]))):
                results[k][i] = res
        return results

    def classify(self, crops):
        """(crops with those classified as 180° above cls_thresh turned upright,
        [(label, score)] per crop), as predict_cls returns them."""
        crops, labels = self._classify_many([list(crops)], with_labels=True)
        return crops[0], labels[0]

    def _classify_many(self, crop_lists, with_labels=False):
        import cv2

        cls = self._need(self.cls, "cls")
        crop_lists = [list(crops) for crops in crop_lists]
        with torch.inference_mode():
            found = self._pooled(cls, crop_lists, self.opt.cls_batch_num)
        labels = []
        for crops, results in zip(crop_lists, found):
            labels.append([(label, float(score)) for label, score in results])
            for i, (label, score) in enumerate(results):
                if "180" in label and score > self.opt.cls_thresh:
                    crops[i] = cv2.rotate(crops[i], cv2.ROTATE_180)
        return (crop_lists, labels) if with_labels else crop_lists

    def recognize(self, crops):
        """Recognition in batches of similar width ratio, each batch on a canvas as wide as
        its widest crop (data['max_wh_ratio'])."""
        return self._recognize_many([list(crops)])[0]

    def _recognize_many(self, crop_lists):
        rec = self._need(self.rec, "rec")
        with torch.inference_mode():
            return self._pooled(rec, crop_lists, self.opt.rec_batch_num, ratio=True)
