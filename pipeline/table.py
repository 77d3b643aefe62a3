"""Table recognition on converted checkpoints, following PaddleOCR's
ppstructure/table/predict_table.py TableSystem: the table-structure model gives HTML
structure tokens and a box per cell; the OCR system's detector and recogniser read the text;
a matching rule (TableMatch; TableMasterMatcher for TableMaster, as the table's Match section
says) puts each text line into its cell; the result is HTML (and, with openpyxl, an .xlsx
sheet with the merged cells).
"""

import copy
from pathlib import Path

import numpy as np
import torch

from ..errors import PtocrError
from . import preprocess as pp
from .boxes import sorted_boxes
from .options import split_options
# the matching rules live in postprocess/table_match.py (importable from here as before)
from .postprocess.table_match import filter_above_table, match_cells, structure_to_html  # noqa: F401
from .registry import build_match
from .system import OCR, Stage, _model


class NoTableError(ValueError):
    """The structure model found no table cell in the image."""


def _expand(pix, box, shape):
    """The box grown by ``pix`` on every side, clipped to the image (predict_table.expand)."""
    x0, y0, x1, y1 = box
    h, w = shape[:2]
    return max(x0 - pix, 0), max(y0 - pix, 0), min(x1 + pix, w), min(y1 + pix, h)


class TableRecognizer:
    """``TableRecognizer(table=..., det=..., rec=..., **options)(image)`` -> {html, cell_bbox,
    structure, score, boxes, texts}.

    ``table`` is a converted table-structure checkpoint (SLANet_plus, SLANet, TableMaster); det/rec the OCR
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
        # the checkpoint's Match section names the rule; checkpoints without one get
        # predict_table.py's choice by algorithm (TableMasterMatcher for TableMaster)
        processing = (getattr(model, "ptocr_meta", {}) or {}).get("processing") or {}
        match = processing.get("Match") or (
            {"name": "TableMasterMatcher"}
            if type(self.table.post).__name__ == "TableMasterLabelDecode"
            else {"name": "TableMatch", "filter_ocr_result": True})
        try:
            self.match = build_match(match, overrides)
        except (KeyError, ValueError, TypeError) as exc:
            raise PtocrError(f"table matching: {exc}") from None

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
        try:
            # the boxes as one array, as TableSystem._ocr hands them to its matcher
            html = self.match(structure["structure"], structure["bboxes"], np.array(boxes),
                              texts)
        except ValueError as exc:  # e.g. TableMaster boxes all padding
            raise NoTableError(str(exc)) from None
        return {"html": html,
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
