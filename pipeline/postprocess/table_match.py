"""Cell matching: putting the OCR lines of a table image into the cells the structure model
predicted, and writing the HTML. Two rules, under PaddleOCR's class names
(ppstructure/table/): ``TableMatch`` (matcher.py; SLANet, SLANet_plus) and
``TableMasterMatcher`` (table_master_match.py, after TableMASTER-mmocr's match.py; what
predict_table.py uses for TableMaster). A table names its rule in a ``Match`` section
(``Match: {name: TableMasterMatcher}``), next to its PreProcess/PostProcess.

Calling convention: ``match(tokens, cell_boxes, ocr_boxes, texts) -> html`` with ``tokens``
the structure tokens (without the html/body/table wrappers), ``cell_boxes`` the decoder's
boxes (N×4 corners, or N×8 quadrilaterals for TableMatch), ``ocr_boxes`` [x0, y0, x1, y1]
per text line and ``texts`` their strings.
"""

import html as html_lib
import math
import re

import numpy as np

from ..registry import register


# ---- TableMatch (matcher.py): every OCR box goes to the cell with the highest IoU, ties
# broken by the smallest corner distance.

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


WRAP = ("<html>", "<body>", "<table>"), ("</table>", "</body>", "</html>")


@register("Match")
class TableMatch:
    def __init__(self, filter_ocr_result=True):
        self.filter_ocr_result = filter_ocr_result

    def __call__(self, tokens, cell_boxes, ocr_boxes, texts):
        if self.filter_ocr_result:
            ocr_boxes, texts = filter_above_table(cell_boxes, ocr_boxes, texts)
        tokens = list(WRAP[0]) + list(tokens) + list(WRAP[1])
        return structure_to_html(tokens, match_cells(ocr_boxes, cell_boxes), texts)


# ---- TableMasterMatcher (table_master_match.py). Three rules, in order: an OCR line whose
# centre lies inside a cell belongs to it (to every such cell); a line still unmatched goes to
# the cell of highest IoU; a cell still empty takes the nearest unmatched line (by centre).
# Lines left over are grouped into rows and become virtual cells appended to the structure
# when the decoder was cut short (the structure does not end with </tbody>). Then the text is
# put into the merged span tokens, <eb*> placeholders become their empty-cell HTML and the
# header row is set in bold. The quirks of the original are kept on purpose: identical HTML
# is the point. Unlike TableMatch it does not escape the text.

def _xywh(boxes):
    """Corner boxes (a 1-D box or an N×4 array) as centre x, centre y, width, height."""
    out = np.empty_like(boxes)
    x0, y0, x1, y1 = (boxes[..., k] for k in range(4))
    out[..., 0] = x0 + (x1 - x0) / 2
    out[..., 1] = y0 + (y1 - y0) / 2
    out[..., 2] = x1 - x0
    out[..., 3] = y1 - y0
    return out


def _corners(xyxy):
    """The 4 corners (float32) of an axis-aligned box, clockwise from top-left."""
    x0, y0, x1, y1 = xyxy[:4]
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float32)


def _hull_iou(a, b):
    """Intersection area over the area of the convex hull of both boxes' corners (not the
    union: the original's definition), computed with shapely as the original does."""
    from shapely.geometry import MultiPoint, Polygon

    pa, pb = Polygon(a).convex_hull, Polygon(b).convex_hull
    if not pa.intersects(pb):
        return 0
    hull = MultiPoint(np.concatenate((a, b))).convex_hull.area
    return 0 if hull == 0 else float(pa.intersection(pb).area) / hull


def _unmatched(pairs, count, side):
    """Indices in range(count) that appear on ``side`` (0: OCR line, 1: cell) of no pair."""
    taken = {p[side] for p in pairs}
    return [n for n in range(count) if n not in taken]


def _center_pairs(ocr_xywh, cells_xyxy):
    return [[i, j] for i, (cx, cy) in enumerate(ocr_xywh[:, :2]) for j, c in enumerate(cells_xyxy)
            if c[0] <= cx <= c[2] and c[1] <= cy <= c[3]]


def _iou_pairs(ocr_xyxy, ocr_indices, cells_xyxy):
    pairs = []
    for index, box in zip(ocr_indices, ocr_xyxy):
        best, best_iou = None, 0
        for j, cell in enumerate(cells_xyxy):
            iou = _hull_iou(_corners(box), _corners(cell))
            if iou > best_iou:  # first of equal IoUs; IoU 0 matches nothing
                best, best_iou = j, iou
        if best is not None:
            pairs.append([index, best])
    return pairs


def _distance_pairs(ocr_indices, ocr_xywh, cell_indices, cells_xywh):
    pairs = []
    for j, cell in zip(cell_indices, cells_xywh):
        best, best_d = [0, 0], np.inf
        for i, box in zip(ocr_indices, ocr_xywh):
            d = math.sqrt((cell[0] - box[0]) ** 2 + (cell[1] - box[1]) ** 2)
            if d < best_d:
                best, best_d = [i, j], d
        pairs.append(best)
    return pairs


def _rows(ocr_xywh, indices, threshold=3):
    """Leftover lines grouped into rows (|Δ centre y| < 3 from a row's first line), each row
    sorted by centre x, rows by their first line's centre y. Lines of equal x (or rows of
    equal y) share one slot, as list.index does in the original; the later one wins it."""
    groups, boxes = [], []
    for index, box in zip(indices, ocr_xywh):
        for g, bg in zip(groups, boxes):
            if abs(box[1] - bg[0][1]) < threshold:
                g.append(index)
                bg.append(box)
                break
        else:
            groups.append([index])
            boxes.append([box])
    sorted_groups = []
    for g, bg in zip(groups, boxes):
        xs = sorted(b[0] for b in bg)
        slots = [None] * len(xs)
        for index, b in zip(g, bg):
            slots[xs.index(b[0])] = index
        sorted_groups.append(slots)
    ys = sorted(bg[0][1] for bg in boxes)
    rows = [None] * len(ys)
    for g, bg in zip(sorted_groups, boxes):
        rows[ys.index(bg[0][1])] = g
    return rows


def _merge_span_tokens(tokens):
    """'<td', ' colspan="2"', ['rowspan="3"',] '>', '</td>' -> one token; stops at the first
    </tbody> (appended when missing)."""
    if tokens[-1] != "</tbody>":
        tokens.append("</tbody>")
    out, p = [], 0
    while tokens[p] != "</tbody>":
        try:
            if tokens[p] == "<td" and tokens[p + 1].startswith((" colspan=", " rowspan=")):
                out.append("".join(tokens[p:p + 4]))
                p += 4
            elif tokens[p] == "<td" and tokens[p + 2].startswith((" colspan=", " rowspan=")):
                out.append("".join(tokens[p:p + 5]))
                p += 5
            else:
                out.append(tokens[p])
                p += 1
        except IndexError:  # a truncated span at the end ("Break in merge...")
            break
    out.append("</tbody>")
    return out


EMPTY_CELLS = (
    ("<eb></eb>", "<td></td>"), ("<eb1></eb1>", "<td> </td>"),
    ("<eb2></eb2>", "<td><b> </b></td>"), ("<eb3></eb3>", "<td>\u2028\u2028</td>"),
    ("<eb4></eb4>", "<td><sup> </sup></td>"), ("<eb5></eb5>", "<td><b></b></td>"),
    ("<eb6></eb6>", "<td><i> </i></td>"), ("<eb7></eb7>", "<td><b><i></i></b></td>"),
    ("<eb8></eb8>", "<td><b><i> </i></b></td>"), ("<eb9></eb9>", "<td><i></i></td>"),
    ("<eb10></eb10>", "<td><b> \u2028 \u2028 </b></td>"),
)


def _empty_cells(token):
    for placeholder, cell in EMPTY_CELLS:
        token = token.replace(placeholder, cell)
    return token


def _insert_text(tokens, cell_texts):
    out, cell = [], 0
    for token in _merge_span_tokens(tokens):
        if token.startswith("<td"):
            # the original skips every cell past len(cell_texts) - 1 (not past the last key)
            if cell > len(cell_texts) - 1 or cell not in cell_texts:
                cell += 1
                continue
            token = token.replace("><", f">{cell_texts[cell]}<")
            cell += 1
        out.append(_empty_cells(token))
    return "".join(out)


def _bold_join(texts, sep=" "):
    """Lines that all start with <b> become one bold text; otherwise joined as they are."""
    if all(t.startswith("<b>") for t in texts):
        texts = ["<b>" + sep.join(t.replace("<b>", "").replace("</b>", "") for t in texts)
                 + "</b>"]
    return sep.join(texts)


SPAN_TD = ('<td rowspan="(\\d)+" colspan="(\\d)+">|<td colspan="(\\d)+" rowspan="(\\d)+">|'
           '<td rowspan="(\\d)+">|<td colspan="(\\d)+">')
SPAN_CELL = ('<td rowspan="(\\d)+" colspan="(\\d)+">(.+?)</td>|'
             '<td colspan="(\\d)+" rowspan="(\\d)+">(.+?)</td>|'
             '<td rowspan="(\\d)+">(.+?)</td>|<td colspan="(\\d)+">(.+?)</td>|<td>(.*?)</td>')
ISOLATED_SPAN = ('<td></td> rowspan="(\\d)+" colspan="(\\d)+"></b></td>|'
                 '<td></td> colspan="(\\d)+" rowspan="(\\d)+"></b></td>|'
                 '<td></td> rowspan="(\\d)+"></b></td>|<td></td> colspan="(\\d)+"></b></td>')
SPAN_ATTRS = (' rowspan="(\\d)+" colspan="(\\d)+"| colspan="(\\d)+" rowspan="(\\d)+"|'
              ' rowspan="(\\d)+"| colspan="(\\d)+"')


def _one_bold_per_cell(thead):
    """A header cell holding several <b>…</b> gets one around all its text."""
    cells = [m.group() for m in re.finditer(SPAN_CELL, thead)]
    for cell in cells:
        if cell.count("<b>") > 1 or cell.count("</b>") > 1:
            new = cell.replace("<b>", "").replace("</b>", "")
            new = new.replace("<td>", "<td><b>").replace("</td>", "</b></td>")
            thead = thead.replace(cell, new)
    return thead


def _isolated_spans(thead):
    """'<td></td> rowspan="2"></b></td>' (a mispredicted span) -> '<td rowspan="2"></td>'."""
    for item in [m.group() for m in re.finditer(ISOLATED_SPAN, thead)]:
        thead = thead.replace(item, "<td{}></td>".format(re.search(SPAN_ATTRS, item).group()))
    return thead


def _bold_header(html):
    """Bold text in the cells of the (first) <thead>…</thead> (deal_bb)."""
    found = re.search("<thead>(.*?)</thead>", html)
    if found is None:
        return html
    original = thead = found.group()
    spans = [m.group() for m in re.finditer(SPAN_TD, thead)]
    if not spans:
        thead = (thead.replace("<td>", "<td><b>").replace("</td>", "</b></td>")
                 .replace("<b><b>", "<b>").replace("</b></b>", "</b>"))
    else:
        for sp in spans:
            thead = thead.replace(sp, sp.replace(">", "><b>"))
        thead = thead.replace("</td>", "</b></td>")
        thead = re.sub("(<b>)+", "<b>", thead)
        thead = re.sub("(</b>)+", "</b>", thead)
        thead = thead.replace("<td>", "<td><b>").replace("<b><b>", "<b>")
    thead = thead.replace("<td><b></b></td>", "<td></td>")  # empty cells stay plain
    thead = _isolated_spans(_one_bold_per_cell(thead))
    return html.replace(original, thead)


@register("Match")
class TableMasterMatcher:
    """ppstructure/table/table_master_match.py's TableMasterMatcher: HTML of a TableMaster
    structure and the OCR lines of the same image."""

    def __call__(self, tokens, cell_boxes, ocr_boxes, texts):
        try:
            return self._match(tokens, cell_boxes, ocr_boxes, texts)
        except (IndexError, TypeError) as exc:
            # where the original fails too: a structure cut inside a span at its end, two
            # leftover lines of one row at the same x
            raise ValueError(f"TableMasterMatcher cannot match this structure ({exc}; "
                             "PaddleOCR's fails on it as well)") from None

    def _match(self, tokens, cell_boxes, ocr_boxes, texts):
        ocr_xyxy = np.array([np.array(b) for b in ocr_boxes])
        ocr_xywh = np.array([_xywh(np.array(b)) for b in ocr_boxes])
        # decoder boxes of all zeros are padding (remove_empty_bboxes)
        cells_xyxy = np.array([b for b in cell_boxes if sum(b) != 0.0])
        if len(cells_xyxy) == 0:
            raise ValueError("the structure model gave no cell box")
        cells_xywh = _xywh(cells_xyxy)
        n_ocr, n_cells = len(ocr_xywh), len(cells_xywh)

        pairs = _center_pairs(ocr_xywh, cells_xyxy) if n_ocr else []
        left = _unmatched(pairs, n_ocr, 0)
        if left:
            pairs += _iou_pairs(ocr_xyxy[left], left, cells_xyxy)
        left, empty = _unmatched(pairs, n_ocr, 0), _unmatched(pairs, n_cells, 1)
        if left and empty:
            pairs += _distance_pairs(left, ocr_xywh[left], empty, cells_xywh[empty])
        left = _unmatched(pairs, n_ocr, 0)
        rows = _rows(ocr_xywh[left], left) if left else []
        # leftover lines, row by row, become virtual cells n_cells, n_cells + 1, ...
        pairs += [[i, n_cells + k] for k, i in enumerate(i for row in rows for i in row)]

        structure = ",".join(tokens).split(",")
        virtual = []
        for row in rows:
            virtual += ["<tr>"] + ["<td></td>"] * len(row) + ["</tr>"]
        # a complete structure (ending with </tbody>) gets no virtual cells (the original's
        # "fake extend"); a cut one is closed after them
        if structure[-1] == "<td></td>":
            structure += ["</tr>"] + virtual + ["</tbody>"]
        elif structure[-1] != "</tbody>":
            structure += virtual + ["</tbody>"]

        by_cell = {}
        for i, j in pairs:
            by_cell.setdefault(j, []).append(i)
        cell_texts = {j: _bold_join([texts[i] for i in lines]) for j, lines in by_cell.items()}
        body = _bold_header(_insert_text(structure, cell_texts))
        return "".join(WRAP[0]) + body + "".join(WRAP[1])
