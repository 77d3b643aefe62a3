"""Inputs that hold several images: PDF pages, rendered with pypdfium2 (the `pdf` extra).

Pages are rendered as PaddleOCR 2.x renders them for ``ocr()`` (ppocr/utils/utility.py
check_and_read): at 2x (144 dpi), or at 1x when the 2x page would be wider or taller than
2000 px; BGR uint8 like every image of the pipeline.
"""

from pathlib import Path

import numpy as np

PDF_MAGIC = b"%PDF"


def is_pdf(source):
    """A path ending in .pdf, or bytes starting with %PDF."""
    if isinstance(source, (bytes, bytearray)):
        return bytes(source[:1024]).lstrip().startswith(PDF_MAGIC)
    return Path(source).suffix.lower() == ".pdf"


def parse_pages(spec):
    """'1-3,5' -> [1, 2, 3, 5] (1-based page numbers); None or '' -> None (all pages)."""
    if not spec:
        return None
    pages = []
    for part in str(spec).split(","):
        first, sep, last = part.strip().partition("-")
        try:
            a = int(first)
            b = int(last) if sep else a
        except ValueError:
            raise ValueError(f"pages must look like 1-3,5, not {spec!r}") from None
        if a < 1 or b < a:
            raise ValueError(f"pages must look like 1-3,5 (from 1, ascending), not {spec!r}")
        pages += range(a, b + 1)
    return sorted(set(pages))


def page_count(source):
    return len(_open(source))


def render_pdf(source, pages=None):
    """Yield (page number from 1, BGR image) of a PDF path or bytes. ``pages``: page numbers
    to render (None: all; numbers past the end are ignored). An encrypted, broken or empty
    PDF raises ValueError naming it."""
    doc = _open(source)
    name = _name(source)
    try:
        wanted = range(1, len(doc) + 1) if pages is None else [p for p in pages if p <= len(doc)]
        for number in wanted:
            try:
                page = doc[number - 1]
                scale = 2.0
                w, h = page.get_size()
                if w * 2 > 2000 or h * 2 > 2000:
                    scale = 1.0
                rgb = page.render(scale=scale).to_numpy()
            except Exception as exc:  # pdfium's errors for a page it cannot draw
                raise ValueError(f"{name}: page {number} cannot be rendered ({exc})") from None
            yield number, _to_bgr(rgb)
    finally:
        doc.close()


def _to_bgr(arr):
    arr = np.asarray(arr)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    # pypdfium2 renders BGR(A) by default (pdfium's native order); drop alpha
    return np.ascontiguousarray(arr[:, :, :3])


def _name(source):
    return "PDF bytes" if isinstance(source, (bytes, bytearray)) else str(source)


def _open(source):
    try:
        import pypdfium2 as pdfium
    except ImportError:
        raise ValueError("reading PDFs needs pypdfium2: pip install 'ptocr[pdf]'") from None
    name = _name(source)
    try:
        doc = pdfium.PdfDocument(bytes(source) if isinstance(source, bytearray) else
                                 source if isinstance(source, bytes) else str(source))
    except pdfium.PdfiumError as exc:
        detail = str(exc)
        if "password" in detail.lower():
            raise ValueError(f"{name}: encrypted PDF (a password is needed)") from None
        raise ValueError(f"{name}: not a readable PDF ({detail})") from None
    except (OSError, TypeError) as exc:
        raise ValueError(f"{name}: not a readable PDF ({exc})") from None
    if len(doc) == 0:
        doc.close()
        raise ValueError(f"{name}: PDF has no pages")
    return doc
