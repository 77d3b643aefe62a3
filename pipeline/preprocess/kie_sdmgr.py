"""SDMGR pre-processing after PaddleOCR's ppocr/data/imaug/label_ops.py (KieLabelEncode) and
operators.py (KieResize), as tools/infer_kie.py runs its Eval pipeline: the text boxes come
with the image (PaddleOCR's KIE label format: a JSON list of {transcription, points}), not from
an OCR.

KieLabelEncode: each box's four points put in canonical order (clockwise by angle about the
centre, then rotated to start at the point nearest the top-left of the bounds); integer
points; the box is (x1, y1) of the first point and (x2, y2) of the third; the relation of box
j to box i is [(x_j - x_i) / norm, (y_j - y_i) / norm, w_i / h_i, h_j / h_i, w_j / h_i]
(w = x2 - x1 + 1, h = max(y2 - y1 + 1, 1)); texts become character indices of the dictionary
(1..n in file order, unknown characters dropped) padded with -1. Everything is padded to 300
boxes × 300 characters as PaddleOCR pads it; ``tag`` = [box count, longest text].
Training labels (``label``/``key_cls``, ``edge``) are encoded when every box has one;
PaddleOCR's encoder demands them even at inference, ours does not.

KieResize: resize so that the long side is at most 1024 and the short at most 512 (PaddleOCR
reads img_scale but resizes to these fixed sizes), round both up to multiples of 32, paste
on a 1024×1024 zero canvas; boxes scaled, then clipped to the ORIGINAL image's size as
PaddleOCR clips them.
"""

import json
import math

import numpy as np

from ..registry import register

MAX_BOXES = 300  # PaddleOCR's padding of boxes and of characters per text
MAX_CHARS = 300


def read_char_dict(character_dict_path):
    """PaddleOCR's KIE character dictionary: '' -> 0, the stripped lines -> 1, 2, ... (a
    repeated or blank line takes the later index, as in its dict)."""
    chars = {"": 0}
    with open(character_dict_path, encoding="utf-8") as fh:
        for idx, line in enumerate(fh, 1):
            chars[line.strip()] = idx
    return chars


def _canonical_order(xs, ys):
    """sort_vertex + convert_canonical: by angle about the centre, then starting at the point
    nearest (min x, min y)."""
    x, y = np.array(xs), np.array(ys)
    angle = np.arctan2(y - np.sum(y) * 0.25, x - np.sum(x) * 0.25) * 180.0 / np.pi
    order = np.argsort(angle)
    xs, ys = [xs[i] for i in order], [ys[i] for i in order]
    min_x, min_y = min(xs), min(ys)
    # shapely's LineString length, as PaddleOCR measures it: sqrt(dx² + dy²)
    dist = np.array([math.sqrt((px - min_x) ** 2 + (py - min_y) ** 2) for px, py in zip(xs, ys)])
    start = int(np.argsort(dist)[0])
    order = [(start + k) % 4 for k in range(4)]
    return [xs[i] for i in order], [ys[i] for i in order]


@register("PreProcess")
class KieLabelEncode:
    def __init__(self, character_dict_path=None, class_path=None, norm=10, directed=False,
                 **_training_only):
        self.character_dict_path = character_dict_path
        self.dict = read_char_dict(character_dict_path) if character_dict_path else None
        self.label2classid_map = {}
        if class_path:
            with open(class_path, encoding="utf-8") as fh:
                self.label2classid_map = {line.strip("\n"): i for i, line in enumerate(fh)}
        self.norm, self.directed = norm, directed

    def compute_relation(self, boxes):
        x1s, y1s = boxes[:, 0:1], boxes[:, 1:2]
        x2s, y2s = boxes[:, 4:5], boxes[:, 5:6]
        ws, hs = x2s - x1s + 1, np.maximum(y2s - y1s + 1, 1)
        dxs = (x1s[:, 0][None] - x1s) / self.norm
        dys = (y1s[:, 0][None] - y1s) / self.norm
        xhhs, xwhs = hs[:, 0][None] / hs, ws[:, 0][None] / hs
        whs = ws / hs + np.zeros_like(xhhs)
        relations = np.stack([dxs, dys, whs, xhhs, xwhs], -1)
        bboxes = np.concatenate([x1s, y1s, x2s, y2s], -1).astype(np.float32)
        return relations, bboxes

    def _labels(self, annotations):
        labels, edges = [], []
        for ann in annotations:
            if "label" in ann:
                labels.append(self.label2classid_map[ann["label"]])
            elif "key_cls" in ann:
                labels.append(ann["key_cls"])
            else:
                return None  # inference: no training labels
            edges.append(ann.get("edge", 0))
        labels = np.array(labels, np.int32)[:, None]
        edges = np.array(edges)
        edges = (edges[:, None] == edges[None, :]).astype(np.int32)
        if self.directed:
            edges = (edges & labels == 1).astype(np.int32)
        np.fill_diagonal(edges, -1)
        return np.concatenate([labels, edges], -1)

    def __call__(self, data):
        if self.dict is None:
            raise ValueError("KieLabelEncode needs the character dictionary "
                             "(character_dict_path)")
        label = data["label"]
        annotations = json.loads(label) if isinstance(label, str) else label
        if not annotations:
            return None  # no boxes: nothing to classify
        if len(annotations) > MAX_BOXES:
            raise ValueError(f"{len(annotations)} boxes; SDMGR's input holds at most {MAX_BOXES}")
        boxes, text_inds = [], []
        for ann in annotations:
            pts = ann["points"]
            xs, ys = _canonical_order([p[0] for p in pts[:4]], [p[1] for p in pts[:4]])
            boxes.append([v for xy in zip(xs, ys) for v in xy])
            inds = [self.dict[c] for c in ann["transcription"] if c in self.dict]
            if len(inds) > MAX_CHARS:
                raise ValueError(f"a text of {len(inds)} characters; SDMGR's input holds at "
                                 f"most {MAX_CHARS}")
            text_inds.append(inds)
        relations, bboxes = self.compute_relation(np.array(boxes, np.int32))
        n = len(boxes)
        points = np.zeros([MAX_BOXES, 4])
        points[:n] = bboxes
        rel = np.zeros([MAX_BOXES, MAX_BOXES, 5])
        rel[:n, :n] = relations
        texts = np.zeros([MAX_BOXES, MAX_CHARS])
        texts[:n] = -1
        for i, inds in enumerate(text_inds):
            texts[i, :len(inds)] = inds
        out = dict(image=data["image"], points=points, relations=rel, texts=texts,
                   tag=np.array([n, max(len(t) for t in text_inds)]))
        labels = self._labels(annotations)
        if labels is not None:
            out["labels"] = np.zeros([MAX_BOXES, MAX_BOXES])
            out["labels"][:n, :n + 1] = labels
        return out


@register("PreProcess")
class KieResize:
    def __init__(self, img_scale=(1024, 512), **_training_only):
        # read as PaddleOCR reads it, and like PaddleOCR not used by the resize below
        self.max_side, self.min_side = img_scale[0], img_scale[1]

    def __call__(self, data):
        img, points = data["image"], data["points"]
        resized, scale_factor, _ratio, (new_h, new_w) = self.resize_image(img)
        data["ori_image"], data["ori_boxes"] = img, points
        data["points"] = self.resize_boxes(img, points, scale_factor)
        data["image"] = resized
        data["shape"] = np.array([new_h, new_w])
        return data

    @staticmethod
    def resize_image(img):
        import cv2

        canvas = np.zeros([1024, 1024, 3], dtype="float32")
        h, w = img.shape[:2]
        scale = min(1024 / max(h, w), 512 / min(h, w))
        resize_w, resize_h = int(w * float(scale) + 0.5), int(h * float(scale) + 0.5)
        resize_h = (resize_h + 31) // 32 * 32
        resize_w = (resize_w + 31) // 32 * 32
        im = cv2.resize(img, (resize_w, resize_h))
        new_h, new_w = im.shape[:2]
        w_scale, h_scale = new_w / w, new_h / h
        factor = np.array([w_scale, h_scale, w_scale, h_scale], dtype=np.float32)
        canvas[:new_h, :new_w, :] = im
        return canvas, factor, [h_scale, w_scale], [new_h, new_w]

    @staticmethod
    def resize_boxes(img, points, scale_factor):
        points = points * scale_factor
        points[:, 0::2] = np.clip(points[:, 0::2], 0, img.shape[1])
        points[:, 1::2] = np.clip(points[:, 1::2], 0, img.shape[0])
        return points
