"""Table recognition on converted checkpoints, following PaddleOCR's
ppstructure/table/predict_table.py TableSystem: the table-structure model gives HTML
structure tokens and a box per cell; the OCR system's detector and recogniser read the text;
TableMatch's rule puts each text line into the cell it fits best; the result is HTML (and,
with openpyxl, an .xlsx sheet with the merged cells).
"""

import copy
import html as html_lib
from pathlib import Path

import numpy as np
import torch

from ..errors import PtocrError
from . import preprocess as pp
from .boxes import sorted_boxes
from .options import split_options
from .system import OCR, Stage, _model


class NoTableError(ValueError):
    """The structure model found no table cell in the image."""


def _expand(pix, box, shape):
    """The box grown by ``pix`` on every side, clipped to the image (predict_table.expand)."""
    x0, y0, x1, y1 = box
    h, w = shape[:2]
    return max(x0 - pix, 0), max(y0 - pix, 0), min(x1 + pix, w), min(y1 + pix, h)


# TableMatch (ppstructure/table/matcher.py): every OCR box goes to the cell with the highest
# IoU, ties broken by the smallest corner distance.

def _distance(a, b):
    x1, y1, x2, y2 = a
    x3, y3, x4, y4 = b
    corners = abs(x3 - x1) + abs(y3 - y1) + abs(x4 - x2) + abs(y4 - y2)
    return corners + min(abs(x3 - x1) + abs(y3 - y1), abs(x4 - x2) + abs(y4 - y2))


def _iou(a, b):
    """IoU of two (y0, x0, y1, x1)-ordered boxes, as matcher.compute_iou indexes them (it is
    given x-first boxes; the formula is symmetric in the axes, so the value is the same)."""
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])
    left, right = max(a[1], b[1]), min(a[3], b[3])
    top, bottom = max(a[0], b[0]), min(a[2], b[2])
    if left >= right or top >= bottom:
        return 0.0
    inter = (right - left) * (bottom - top)
    return inter / (area - inter) * 1.0


def match_cells(ocr_boxes, cell_boxes):
    """{cell index: [OCR box indices]} — each OCR box to its best cell."""
    cells = []
    for box in cell_boxes:
        if len(box) == 8:  # quadrilateral -> its bounding box
            box = [np.min(box[0::2]), np.min(box[1::2]), np.max(box[0::2]), np.max(box[1::2])]
        cells.append(box)
    matched = {}
    for i, box in enumerate(ocr_boxes):
        keys = [(1.0 - _iou(box, cell), _distance(box, cell)) for cell in cells]
        best = min(range(len(keys)), key=lambda j: keys[j])  # first of equal keys
        matched.setdefault(best, []).append(i)
    return matched


def _cell_text(indices, texts):
    """The text of one cell from its OCR lines: one line as it is; several joined by spaces,
    each stripped of a leading space and of <b> markers. TableMatch wraps them in <b> when
    "<b>" is *in the first line's (text, score) pair*, i.e. only when that text is exactly
    "<b>"; we keep that behaviour."""
    if len(indices) == 1:
        return html_lib.escape(texts[indices[0]])
    bold = texts[indices[0]] == "<b>"
    parts = []
    for k, i in enumerate(indices):
        content = texts[i]
        if not content:
            continue
        if content[0] == " ":
            content = content[1:]
        if "<b>" in content:
            content = content[3:]
        if "</b>" in content:
            content = content[:-4]
        if not content:
            continue
        if k != len(indices) - 1 and content[-1] != " ":
            content += " "
        parts.append(html_lib.escape(content))
    text = "".join(parts)
    return f"<b>{text}</b>" if bold else text


def structure_to_html(tokens, matched, texts):
    """Structure tokens with the matched OCR text placed in each cell."""
    out, cell = [], 0
    for tag in tokens:
        if "</td>" not in tag:
            out.append(tag)
            continue
        if tag == "<td></td>":
            out.append("<td>")
        if cell in matched:
            out.append(_cell_text(matched[cell], texts))
        out.append("</td>" if tag == "<td></td>" else tag)
        cell += 1
    return "".join(out)


def filter_above_table(cell_boxes, ocr_boxes, texts):
    """Drop OCR lines that end above the table's first cell (TableMatch filter_ocr_result)."""
    top = np.asarray(cell_boxes)[:, 1::2].min()
    keep = [i for i, box in enumerate(ocr_boxes) if np.max(box[1::2]) >= top]
    return [ocr_boxes[i] for i in keep], [texts[i] for i in keep]


class TableRecognizer:
    """``TableRecognizer(table=..., det=..., rec=..., **options)(image)`` -> {html, cell_bbox,
    structure, score, boxes, texts}.

    ``table`` is a converted table-structure checkpoint (SLANet_plus, SLANet); det/rec the OCR
    models, as for ``ptocr.OCR`` (whose options apply to them). Text lines are read as
    PaddleOCR's TableSystem reads them: detected, sorted, cropped axis-aligned with 2 px of
    margin, recognised without a score filter.
    """

    def __init__(self, table, det, rec, threads=None, ocr=None, **options):
        _, overrides = split_options(options)
        # ``ocr``: an OCR system to share (ptocr.Structure reads pages and tables with one)
        self.ocr = ocr or OCR(det=det, rec=rec, threads=threads, **options)
        model = _model(table, "table")
        extra = (getattr(model, "ptocr_meta", {}) or {}).get("extra") or {}
        self.table = Stage(model, "table", overrides.get("table"),
                           character_dict=extra.get("character_dict"))
        if type(self.table.post).__name__ == "TableMasterLabelDecode":
            # PaddleOCR's TableSystem matches TableMaster's cells with its own
            # TableMasterMatcher (ppstructure/table/table_master_match.py), not TableMatch;
            # HTML from the wrong matcher would silently differ from PaddleOCR's
            raise PtocrError("TableMaster checkpoints are not supported by the table system "
                             "yet (PaddleOCR's TableMasterMatcher is not ported); use "
                             "SLANet or SLANet_plus")

    def __call__(self, image):
        img = pp.read_image(image) if isinstance(image, (str, Path)) else image
        if img is None or getattr(img, "ndim", 0) != 3:
            raise ValueError("expected a BGR image (H×W×3 array) or an image path")
        with torch.inference_mode():
            # OCR first: the structure model predicts cells even on a blank page, so an
            # image without text is reported as holding no table (and costs no decoding)
            boxes, texts, scores = self.read_text(img)
            if not boxes:
                raise NoTableError("no text found, so no table")
            structure = self.structure(img)
            if len(structure["bboxes"]) == 0:
                raise NoTableError("no table cell found")
        kept_boxes, kept_texts = filter_above_table(structure["bboxes"], boxes, texts)
        matched = match_cells(kept_boxes, structure["bboxes"])
        tokens = ["<html>", "<body>", "<table>"] + structure["structure"] + [
            "</table>", "</body>", "</html>"]
        return {"html": structure_to_html(tokens, matched, kept_texts),
                "cell_bbox": structure["bboxes"].tolist(), "structure": structure["structure"],
                "score": structure["score"],
                "boxes": [list(map(float, b)) for b in boxes], "texts": texts,
                "scores": scores}

    def structure(self, img):
        data = self.table.prepare(copy.deepcopy(img))
        return self.table.post(self.table.run([data]), np.array([data["shape"]]))[0]

    def read_text(self, img):
        """Axis-aligned OCR as TableSystem._ocr: boxes [x0, y0, x1, y1] (1 px margin),
        crops with 2 px more, every recognised line kept."""
        h, w = img.shape[:2]
        boxes = []
        for box in sorted_boxes(self.ocr.detect(img)):
            boxes.append([max(0, box[:, 0].min() - 1), max(0, box[:, 1].min() - 1),
                          min(w, box[:, 0].max() + 1), min(h, box[:, 1].max() + 1)])
        crops = []
        for box in boxes:
            x0, y0, x1, y1 = _expand(2, box, img.shape)
            crops.append(img[int(y0):int(y1), int(x0):int(x1), :])
        results = self.ocr.recognize(crops) if crops else []
        return boxes, [t for t, _ in results], [float(s) for _, s in results]


def html_to_xlsx(html):
    """An .xlsx workbook (bytes) of the first table in ``html``: one sheet, each cell's text
    in place, rowspan/colspan kept as merged ranges. Written with openpyxl."""
    from html.parser import HTMLParser
    from io import BytesIO

    try:
        from openpyxl import Workbook
    except ImportError:
        raise PtocrError("--xlsx needs openpyxl (pip install 'ptocr[table]')") from None

    class Cells(HTMLParser):
        def __init__(self):
            super().__init__()
            self.rows, self.cell = [], None

        def handle_starttag(self, tag, attrs):
            if tag == "tr":
                self.rows.append([])
            elif tag in ("td", "th") and self.rows:
                attrs = dict(attrs)
                self.cell = {"text": "", "rowspan": int(attrs.get("rowspan") or 1),
                             "colspan": int(attrs.get("colspan") or 1)}

        def handle_endtag(self, tag):
            if tag in ("td", "th") and self.cell is not None:
                self.rows[-1].append(self.cell)
                self.cell = None

        def handle_data(self, data):
            if self.cell is not None:
                self.cell["text"] += data

    parser = Cells()
    parser.feed(html)
    wb = Workbook()
    ws = wb.active
    ws.title = "table"
    taken = set()  # (row, col) covered by an earlier cell's span
    for r, row in enumerate(parser.rows, start=1):
        c = 1
        for cell in row:
            while (r, c) in taken:
                c += 1
            if cell["text"]:
                ws.cell(row=r, column=c, value=cell["text"])
            rs, cs = max(1, cell["rowspan"]), max(1, cell["colspan"])
            if rs > 1 or cs > 1:
                ws.merge_cells(start_row=r, start_column=c, end_row=r + rs - 1,
                               end_column=c + cs - 1)
            taken.update((r + i, c + j) for i in range(rs) for j in range(cs))
            c += cs
    buf = BytesIO()
    wb.save(buf)
    return buf.getvalue()


def draw_cells(image, cell_boxes):
    """The image with each predicted cell outlined (4 or 8 coordinates per cell)."""
    import cv2

    out = image.copy()
    for box in cell_boxes:
        box = np.asarray(box, dtype=np.float64)
        if len(box) == 4:
            cv2.rectangle(out, (int(box[0]), int(box[1])), (int(box[2]), int(box[3])),
                          (0, 255, 0), 2)
        else:
            cv2.polylines(out, [box.reshape(-1, 2).astype(np.int32)], True, (0, 255, 0), 2)
    return out
