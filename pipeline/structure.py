"""Document structure on converted checkpoints, following PaddleOCR 2.10's
ppstructure/predict_system.py StructureSystem (mode 'structure'): a layout model finds the
regions; the OCR system reads the whole page once and each non-table region takes the lines
that touch it; each table region goes through the table system on its crop; the regions are
put in reading order by ppstructure/recovery's sorted_layout_boxes rule, and written as JSON
and as Markdown by recovery_to_markdown's rules (tables as HTML inside).
"""

import copy
import re
from pathlib import Path

import numpy as np
import torch

from . import preprocess as pp
from .options import split_options
from .system import OCR, Stage, _model
from .table import NoTableError, TableRecognizer

# formatting tokens a table-trained recogniser emits; StructureSystem._predict_text drops them
STYLE_TOKENS = ("<strike>", "<sup>", "</sub>", "<b>", "</b>", "<sub>", "</sup>", "<overline>",
                "</overline>", "<underline>", "</underline>", "<i>", "</i>")


class Layout:
    """``Layout(layout_checkpoint, **options)(image)`` -> [{bbox, label, score}] in the
    decoder's order (PaddleOCR's LayoutPredictor)."""

    def __init__(self, layout, **options):
        _, overrides = split_options(options)
        model = _model(layout, "layout")
        extra = (getattr(model, "ptocr_meta", {}) or {}).get("extra") or {}
        self.labels = extra.get("character_dict")
        self.stage = Stage(model, "layout", overrides.get("layout"),
                           character_dict=self.labels)

    def __call__(self, img):
        with torch.inference_mode():
            data = self.stage.prepare(copy.deepcopy(img))
            return self.stage.post(self.stage.run([data]), np.array([data["shape"]]))[0]


def has_intersection(a, b):
    """Closed boxes [x0, y0, x1, y1] touch (StructureSystem._has_intersection)."""
    return not (a[0] > b[2] or a[2] < b[0] or a[1] > b[3] or a[3] < b[1])


def lines_in_region(lines, bbox):
    """The OCR lines whose box (first and third corner) touches the region."""
    out = []
    for line in lines:
        box = line["text_region"]
        if has_intersection(bbox, (box[0][0], box[0][1], box[2][0], box[2][1])):
            out.append(line)
    return out


def sorted_layout_boxes(regions, width):
    """Reading order (ppstructure/recovery sorted_layout_boxes): top to bottom, then, within a
    run of regions that sit in the left or right half of the page (two columns), all of the
    left column before the right one; a region spanning the middle closes the run. Each region
    gets ``layout``: single or double."""
    if len(regions) == 1:
        regions[0]["layout"] = "single"
        return regions
    boxes = sorted(regions, key=lambda r: (r["bbox"][1], r["bbox"][0]))
    out, left, right = [], [], []
    n, half = len(boxes), width / 2
    for i, region in enumerate(boxes):
        x0, y0, x1, _ = region["bbox"]
        if i == n - 1:
            if y0 > boxes[i - 1]["bbox"][3] and x0 < half < x1:
                out += left + right
                region["layout"] = "single"
                out.append(region)
            elif x1 > half:
                region["layout"] = "double"
                right.append(region)
                out += left + right
            elif x0 < half:
                region["layout"] = "double"
                left.append(region)
                out += left + right
            # (a last region meeting neither test is dropped, as PaddleOCR's rule does)
            return out
        if x0 < width / 4 and x1 < 3 * width / 4:
            region["layout"] = "double"
            left.append(region)
        elif x0 > width / 4 and x1 > half:
            region["layout"] = "double"
            right.append(region)
        else:
            out += left + right
            region["layout"] = "single"
            out.append(region)
            left, right = [], []
    return out + left + right


class Structure:
    """``Structure(layout=..., det=..., rec=..., table=None, **options)(image)`` -> regions in
    reading order: [{type, bbox, score, res, layout}], ``res`` the OCR lines ({text,
    confidence, text_region}) of a text-like region, the table result ({html, cell_bbox, ...})
    of a table region, or [] for a figure (or a table when no table model is given).

    Same conventions as ``ptocr.OCR``: checkpoints are paths or loaded models, ``options``
    are PaddleOCR's argument names (layout_score_threshold, layout_nms_threshold, the OCR
    system's)."""

    def __init__(self, layout, det, rec, table=None, cls=None, threads=None, **options):
        self.layout = Layout(layout, **{k: v for k, v in options.items()
                                        if k.startswith("layout_")})
        options = {k: v for k, v in options.items() if not k.startswith("layout_")}
        self.ocr = OCR(det=det, rec=rec, cls=cls, threads=threads, **options)
        self.table = (TableRecognizer(table=table, det=None, rec=None, ocr=self.ocr,
                                      **options) if table is not None else None)

    def read_lines(self, img):
        """The page's OCR lines as StructureSystem keeps them (style tokens removed)."""
        lines = []
        for line in self.ocr(img):
            text = line["text"]
            for token in STYLE_TOKENS:
                text = text.replace(token, "")
            lines.append({"text": text, "confidence": float(line["score"]),
                          "text_region": line["box"]})
        return lines

    def __call__(self, image):
        img = pp.read_image(image) if isinstance(image, (str, Path)) else image
        if img is None or getattr(img, "ndim", 0) != 3:
            raise ValueError("expected a BGR image (H×W×3 array) or an image path")
        regions = self.layout(img)
        lines = self.read_lines(img)
        out = []
        for region in regions:
            x0, y0, x1, y1 = (int(v) for v in region["bbox"])
            bbox = [x0, y0, x1, y1]
            label = region["label"].lower()
            res = []
            if label == "table":
                if self.table is not None:
                    try:
                        res = self.table(img[y0:y1, x0:x1, :])
                    except NoTableError:
                        res = []
            else:  # text-like regions and figures alike take the lines touching them
                res = lines_in_region(lines, bbox)
            out.append({"type": label, "bbox": bbox, "score": float(region["score"]),
                        "res": res})
        return sorted_layout_boxes(out, img.shape[1])


# ---- Markdown (ppstructure/recovery/recovery_to_markdown.py convert_info_markdown's rules)

def _paragraphs_by_indent(region):
    """Lines joined; a new paragraph where a line starts level with the block's previous line
    after an indented first line (text_space_head: paragraphs open with an indent)."""
    text, pre_x, first = "", None, True
    for i, line in enumerate(region["res"]):
        (x, y0), (_, y1) = line["text_region"][0], line["text_region"][2][:2]
        height = y1 - y0
        if i == 0:
            text, pre_x = line["text"], x
            continue
        same = abs(pre_x - x) < height
        if first:
            text += ("\n\n" if same else "") + line["text"]
            first = same
        else:
            text += ("" if same else "\n\n") + line["text"]
            first = not same
        pre_x = x
    return text


def _paragraphs_by_short_lines(region):
    """Lines joined; a line that does not fill the region's width ends its paragraph
    (text_space_tail)."""
    text, first = "", True
    width = region["bbox"][2] - region["bbox"][0]
    for line in region["res"]:
        p0, p2 = line["text_region"][0], line["text_region"][2]
        full = (p2[0] - p0[0]) >= width - (p2[1] - p0[1])
        text += ("\n\n" if first else "") + line["text"]
        first = not full
    return text


def _text_markdown(region):
    first = region["res"][0]["text_region"]
    indent = first[0][0] - region["bbox"][0]
    height = abs(first[2][1] - first[0][1])
    merged = (_paragraphs_by_indent if indent > height else _paragraphs_by_short_lines)(region)
    for char in ("*", "`", "~", "$"):
        merged = merged.replace(char, "\\" + char)
    return merged


def figure_name(region, img_idx=0):
    """A figure crop's file name as PaddleOCR saves it: '[x0, y0, x1, y1]_0.jpg'."""
    return f"{region['bbox']}_{img_idx}.jpg"


def to_markdown(regions, img_name, img_idx=0):
    """Markdown of regions in reading order: titles as '#', tables as their HTML, text blocks
    as paragraphs, figures as an <img> of the crop saved under IMG_NAME/, headers and footers
    left out."""
    parts = []
    for region in regions:
        kind = region["type"].lower()
        if not region["res"] and kind != "figure":
            continue
        if kind == "figure":
            parts.append(f'<div align="center">\n\t<img src="{img_name}/'
                         f'{figure_name(region, img_idx)}">\n</div>')
        elif kind == "title":
            parts.append("# " + region["res"][0]["text"]
                         + "".join(" " + line["text"] for line in region["res"][1:]))
        elif kind == "table":
            parts.append(region["res"]["html"])
        elif kind in ("header", "footer"):
            continue
        elif kind == "text":
            parts.append(_text_markdown(region))
        else:
            parts.append("".join(line["text"] + " " for line in region["res"]))
    return re.sub(r"\n{3,}", "\n\n", "\n\n".join(parts))


def draw_regions(image, regions):
    """The image with each region outlined and labelled with its type and reading rank."""
    import cv2

    out = image.copy()
    colours = {"text": (0, 160, 0), "title": (200, 0, 0), "list": (160, 120, 0),
               "table": (0, 0, 220), "figure": (160, 0, 160)}
    for rank, region in enumerate(regions, 1):
        x0, y0, x1, y1 = region["bbox"]
        colour = colours.get(region["type"], (0, 140, 200))
        cv2.rectangle(out, (x0, y0), (x1, y1), colour, 2)
        cv2.putText(out, f"{rank} {region['type']} {region['score']:.2f}", (x0 + 2, y0 + 14),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1, cv2.LINE_AA)
    return out
