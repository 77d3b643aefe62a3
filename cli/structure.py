"""structure: document images to layout regions, text, tables; JSON and Markdown."""

import json
import sys
from pathlib import Path

import click

from ..errors import PtocrError
from .main import ImageRun, debug_option, main, refuse_existing
from .ocr import IMAGE_SUFFIXES, _collect, _with_ocr_options


@main.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("--layout", "layout_path", required=True, type=click.Path(),
              help="Layout checkpoint (picodet_lcnet_x1_0_fgd_layout, CDLA, table).")
@click.option("--table", "table_path", type=click.Path(),
              help="Table-structure checkpoint (SLANet_plus, SLANet); without it table "
              "regions are listed but not read.")
@click.option("--det", required=True, type=click.Path(), help="Detection checkpoint.")
@click.option("--rec", required=True, type=click.Path(), help="Recognition checkpoint.")
@click.option("--cls", "cls_path", type=click.Path(), help="Direction classifier checkpoint.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Per image: IMAGE.json, IMAGE.md, IMAGE_layout.jpg and IMAGE/ (figure "
              "crops, table .xlsx).")
@click.option("--threads", type=int, help="torch CPU threads (default: torch's).")
@click.option("--overwrite", is_flag=True, help="Replace existing outputs.")
@_with_ocr_options
@debug_option
def structure(inputs, layout_path, table_path, det, rec, cls_path, out_dir, threads, overwrite,
              **options):
    """Layout analysis, OCR and tables in reading order, as PaddleOCR's StructureSystem.

    Exit 0 when every image was analysed, 1 when some could not be read or held no layout
    region (the others are still written), 2 when none was.
    """
    from tqdm import tqdm

    from ..converter.checkpoint import write_bytes_atomic
    from ..pipeline.structure import Structure, draw_regions, figure_name, to_markdown
    from ..pipeline.table import html_to_xlsx

    images = _collect(inputs, IMAGE_SUFFIXES)
    out = Path(out_dir)
    refuse_existing([out / f"{p.stem}{s}" for p in images
                     for s in (".json", ".md", "_layout.jpg")], overwrite)
    try:
        system = Structure(layout=layout_path, det=det, rec=rec, table=table_path,
                           cls=cls_path, threads=threads, **options)
    except ValueError as exc:
        raise PtocrError(str(exc)) from None
    out.mkdir(parents=True, exist_ok=True)
    done, run = 0, ImageRun(images, system, "structure", "no layout region found")
    for path, img, regions in run:
        import cv2

        crops = out / path.stem
        for region in regions:
            x0, y0, x1, y1 = region["bbox"]
            if region["type"] == "figure":
                crops.mkdir(exist_ok=True)
                ok, data = cv2.imencode(".jpg", img[y0:y1, x0:x1, :])
                if ok:
                    write_bytes_atomic(crops / figure_name(region), data.tobytes(),
                                       overwrite=True)
            elif region["type"] == "table" and region["res"] and _has_xlsx():
                crops.mkdir(exist_ok=True)
                write_bytes_atomic(crops / f"{region['bbox']}_0.xlsx",
                                   html_to_xlsx(region["res"]["html"]), overwrite=True)
        text = json.dumps(regions, ensure_ascii=False, indent=1)
        write_bytes_atomic(out / f"{path.stem}.json", (text + "\n").encode("utf-8"),
                           overwrite=overwrite)
        write_bytes_atomic(out / f"{path.stem}.md",
                           (to_markdown(regions, path.stem) + "\n").encode("utf-8"),
                           overwrite=overwrite)
        ok, data = cv2.imencode(".jpg", draw_regions(img, regions))
        write_bytes_atomic(out / f"{path.stem}_layout.jpg", data.tobytes(), overwrite=overwrite)
        done += 1
        kinds = ", ".join(f"{k} {sum(r['type'] == k for r in regions)}"
                          for k in dict.fromkeys(r["type"] for r in regions))
        tqdm.write(f"{path.name}: {len(regions)} regions ({kinds})", file=sys.stderr)
    if run.failed:
        raise PtocrError(f"{run.failed} of {len(images)} images gave no structure",
                         exit_code=2 if not done else 1)


def _has_xlsx():
    try:
        import openpyxl  # noqa: F401
    except ImportError:
        return False
    return True
