"""SDMGR key information extraction on given text boxes, as PaddleOCR's tools/infer_kie.py:
each line of a box file (PaddleOCR's KIE label format: ``image path<TAB>JSON list of
{"transcription": ..., "points": [[x, y] × 4]}``) gives an image and its boxes; the model
labels every box with a class and links box pairs."""

import json
from pathlib import Path

import numpy as np
import torch

from ..errors import PtocrError
from .registry import build_postprocess, build_transforms, transform
from .system import _model, outputs_as_arrays


class NoBoxesError(ValueError):
    """The image has no text boxes (nothing to classify)."""


def read_box_file(path, data_dir=None):
    """[(image path, annotations)] of a box file; image paths are relative to ``data_dir``
    (default: the box file's folder), as infer_kie joins them to the config's data_dir. A
    malformed line is a PtocrError naming it."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PtocrError(f"{path}: cannot read the box file ({getattr(exc, 'strerror', exc)})"
                         ) from None
    root = Path(data_dir) if data_dir is not None else path.parent
    entries = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        where = f"{path} line {n}"
        if len(parts) != 2:
            raise PtocrError(f"{where}: expected 'image path<TAB>JSON list of boxes'")
        try:
            anns = json.loads(parts[1])
        except json.JSONDecodeError as exc:
            raise PtocrError(f"{where}: the boxes are not valid JSON ({exc.msg})") from None
        if not isinstance(anns, list):
            raise PtocrError(f"{where}: the boxes must be a JSON list")
        for i, ann in enumerate(anns):
            if not (isinstance(ann, dict) and isinstance(ann.get("transcription"), str)
                    and _four_points(ann.get("points"))):
                raise PtocrError(f"{where}: box {i} needs a 'transcription' string and four "
                                 "[x, y] 'points'")
        entries.append((root / parts[0], anns))
    if not entries:
        raise PtocrError(f"{path}: no lines (expected 'image path<TAB>JSON list of boxes')")
    return entries


def _four_points(points):
    return (isinstance(points, list) and len(points) == 4
            and all(isinstance(p, list) and len(p) == 2
                    and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in p)
                    for p in points))


class SDMGR:
    """``SDMGR(model, dict_path, class_path=None)(image, boxes)`` -> ``{"boxes": [{
    transcription, points, class_id, label, score}], "edges": [[i, j, probability]]}``
    (image: BGR array; boxes: the annotations of one box-file line)."""

    def __init__(self, model, dict_path, class_path=None, threads=None, edge_thresh=None):
        if threads:
            torch.set_num_threads(int(threads))
        self.model = _model(model, "kie")
        backbone = type(getattr(self.model, "backbone", None)).__name__
        if backbone != "Kie_backbone":
            raise PtocrError(f"{model}: a {backbone} model was given where an SDMGR model "
                             "(kie_unet_sdmgr) is needed")
        meta = getattr(self.model, "ptocr_meta", {}) or {}
        processing = meta.get("processing") or {}
        post = dict(processing.get("PostProcess") or {})
        if class_path:
            post["class_path"] = class_path
        if edge_thresh is not None:
            post["edge_thresh"] = edge_thresh
        try:
            self.pre = build_transforms(processing["PreProcess"],
                                        {"KieLabelEncode": {"character_dict_path": dict_path}})
            self.post = build_postprocess(post)
        except (KeyError, ValueError, TypeError, OSError) as exc:
            raise PtocrError(f"SDMGR processing of {meta.get('arch', 'the checkpoint')}: "
                             f"{exc}") from None
        head = self.model.head
        rows = head.node_embed.num_embeddings
        chars = max(next(op for op in self.pre if type(op).__name__ == "KieLabelEncode")
                    .dict.values())
        if chars >= rows:
            raise PtocrError(f"{dict_path}: {chars} characters do not fit the model's "
                             f"{rows - 1} (character embeddings {rows} rows, 0 is padding)")

    def __call__(self, image, boxes):
        if image is None or getattr(image, "ndim", 0) != 3:
            raise ValueError("expected a BGR image (H×W×3 array)")
        data = transform(self.pre, {"image": image, "label": boxes}) if boxes else None
        if data is None:
            raise NoBoxesError("no text boxes")
        if data["tag"][1] == 0:  # PaddleOCR's head fails on an empty character sequence
            raise NoBoxesError("no box text has a character of the dictionary")
        inputs = [torch.from_numpy(np.asarray(data[k])[None]) for k in data["keep_keys"]]
        with torch.inference_mode():
            preds = outputs_as_arrays(self.model(*inputs))
        res = self.post(preds)
        for ann, box, bbox in zip(boxes, res["boxes"], data["ori_boxes"]):
            # bbox: the box KieLabelEncode made (x1, y1, x2, y2 in image pixels), as drawn
            box.update(transcription=ann["transcription"], points=ann["points"],
                       bbox=[float(v) for v in bbox])
        return res


def draw_sdmgr(image, result):
    """tools/infer_kie.py's draw_kie_result: the image with each box outlined, beside a white
    panel twice as wide with each box's ``label(score)`` at twice its x."""
    import cv2

    h, w = image.shape[:2]
    img = np.ascontiguousarray(image).copy()
    panel = np.full((h, w * 2, 3), 255, np.uint8)
    for box in result["boxes"]:
        x1, y1, x2, y2 = box["bbox"]
        pts = np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], np.int32)
        cv2.polylines(img, [pts.reshape((-1, 1, 2))], True, color=(255, 255, 0), thickness=1)
        text = f"{box['label']}({box['score']:.2f})"
        cv2.putText(panel, text, (int(min(x1, x2)) * 2, int(min(y1, y2))),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 0, 0), 1)
    out = np.full((h, w * 3, 3), 255, np.uint8)
    out[:, :w], out[:, w:] = img, panel
    return out
