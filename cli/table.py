"""table: table images to HTML and Excel (structure model + OCR + cell matching)."""

import json
from pathlib import Path

import click

from ..errors import PtocrError
from .main import ImageRun, debug_option, main, refuse_existing
from .ocr import IMAGE_SUFFIXES, _collect, _with_ocr_options


@main.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("--table", "table_path", required=True, type=click.Path(),
              help="Table-structure checkpoint (SLANet_plus, SLANet).")
@click.option("--det", required=True, type=click.Path(), help="Detection checkpoint.")
@click.option("--rec", required=True, type=click.Path(), help="Recognition checkpoint.")
@click.option("--html", "html_dir", type=click.Path(file_okay=False),
              help="Write IMAGE.html per image here.")
@click.option("--xlsx", "xlsx_dir", type=click.Path(file_okay=False),
              help="Write IMAGE.xlsx per image here (merged cells kept).")
@click.option("--json", "json_out", type=click.Path(dir_okay=False),
              help="Write results here (default: print them when no other output is asked).")
@click.option("--vis-dir", type=click.Path(file_okay=False),
              help="Write the image with the predicted cells outlined here.")
@click.option("--threads", type=int, help="torch CPU threads (default: torch's).")
@click.option("--overwrite", is_flag=True, help="Replace existing outputs.")
@_with_ocr_options
@debug_option
def table(inputs, table_path, det, rec, html_dir, xlsx_dir, json_out, vis_dir, threads,
          overwrite, **options):
    """Recognise tables: HTML (and .xlsx) per image, as PaddleOCR's TableSystem.

    Exit 0 when every image gave a table, 1 when some could not be read or held no table
    (the others are still written), 2 when none gave one.
    """
    from ..converter.checkpoint import write_bytes_atomic
    from ..pipeline.table import NoTableError, TableRecognizer, draw_cells, html_to_xlsx

    images = _collect(inputs, IMAGE_SUFFIXES)
    planned = [json_out]
    for folder, suffix in ((html_dir, ".html"), (xlsx_dir, ".xlsx"), (vis_dir, "_table.jpg")):
        if folder:
            planned += [Path(folder) / (p.stem + suffix) for p in images]
    refuse_existing(planned, overwrite)
    if xlsx_dir:
        html_to_xlsx("<table></table>")  # fail before the batch when openpyxl is missing
    try:
        system = TableRecognizer(table=table_path, det=det, rec=rec, threads=threads,
                                 **options)
    except ValueError as exc:
        raise PtocrError(str(exc)) from None
    for folder in (html_dir, xlsx_dir, vis_dir):
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
    results, run = {}, ImageRun(images, system, "table", empty_errors=(NoTableError,))
    for path, img, res in run:
        results[path.name] = res
        if html_dir:
            write_bytes_atomic(Path(html_dir) / (path.stem + ".html"),
                               (res["html"] + "\n").encode("utf-8"), overwrite=overwrite)
        if xlsx_dir:
            write_bytes_atomic(Path(xlsx_dir) / (path.stem + ".xlsx"), html_to_xlsx(res["html"]),
                               overwrite=overwrite)
        if vis_dir:
            import cv2

            ok, data = cv2.imencode(".jpg", draw_cells(img, res["cell_bbox"]))
            write_bytes_atomic(Path(vis_dir) / (path.stem + "_table.jpg"), data.tobytes(),
                               overwrite=overwrite)
    text = json.dumps(results, ensure_ascii=False, indent=1)
    if json_out:
        write_bytes_atomic(json_out, (text + "\n").encode("utf-8"), overwrite=overwrite)
        click.echo(f"wrote {json_out} ({len(results)} tables)", err=True)
    elif not (html_dir or xlsx_dir or vis_dir):
        click.echo(text)
    if run.failed:
        raise PtocrError(f"{run.failed} of {len(images)} images gave no table",
                         exit_code=2 if not results else 1)
