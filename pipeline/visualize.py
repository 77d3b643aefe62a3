"""Draw OCR results: boxes over the image on the left, the recognised text in place on the
right (as PaddleOCR's draw_ocr_box_txt lays it out), in a font that renders CJK."""

from pathlib import Path

import numpy as np

# Debian's fonts-wqy-microhei (installed by `make install`), then other common CJK fonts.
FONT_CANDIDATES = [
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/arphic/uming.ttc",
]


def find_font(path=None):
    for candidate in [path] if path else FONT_CANDIDATES:
        if candidate and Path(candidate).is_file():
            return str(candidate)
    from ..errors import PtocrError

    raise PtocrError("no CJK font found for --vis-dir (install Debian's fonts-wqy-microhei, "
                     "as `make install` does, or pass --vis-font FILE)")


def draw(image, records, font_path=None):
    """BGR image + OCR records -> BGR visualisation (image | text panel)."""
    from PIL import Image, ImageDraw, ImageFont

    font_file = find_font(font_path)
    h, w = image.shape[:2]
    left = Image.fromarray(np.ascontiguousarray(image[:, :, ::-1]))
    right = Image.new("RGB", (w, h), (255, 255, 255))
    draw_left, draw_right = ImageDraw.Draw(left), ImageDraw.Draw(right)
    rng = np.random.RandomState(0)
    for rec in records:
        color = tuple(int(c) for c in rng.randint(0, 255, 3))
        box = [tuple(p) for p in rec["box"]]
        draw_left.polygon(box, outline=color, width=2)
        draw_right.polygon(box, outline=color, width=1)
        box_h = max(1.0, float(np.linalg.norm(np.subtract(box[0], box[3]))))
        box_w = max(1.0, float(np.linalg.norm(np.subtract(box[0], box[1]))))
        size = max(8, int(min(box_h * 0.8, box_w / max(1, len(rec["text"])) * 1.2)))
        font = ImageFont.truetype(font_file, size, encoding="utf-8")
        draw_right.text((box[0][0] + 3, box[0][1]), rec["text"], fill=(0, 0, 0), font=font)
    canvas = Image.new("RGB", (w * 2, h), (255, 255, 255))
    canvas.paste(left, (0, 0))
    canvas.paste(right, (w, 0))
    return np.asarray(canvas)[:, :, ::-1].copy()
