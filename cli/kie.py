"""kie: key information extraction (SER labels per OCR line, RE question -> answer links)."""

import json
from pathlib import Path

import click

from ..errors import PtocrError
from .main import ImageRun, debug_option, main, refuse_existing
from .ocr import IMAGE_SUFFIXES, _collect, _with_ocr_options


@main.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("--det", required=True, type=click.Path(), help="Detection checkpoint.")
@click.option("--rec", required=True, type=click.Path(), help="Recognition checkpoint.")
@click.option("--ser", required=True, type=click.Path(),
              help="SER checkpoint (ser_vi_layoutxlm_xfund_zh, ...).")
@click.option("--re", "re_path", type=click.Path(),
              help="RE checkpoint (re_vi_layoutxlm_xfund_zh, ...): link questions to answers.")
@click.option("--tokenizer", required=True, type=click.Path(),
              help="Tokenizer folder (sentencepiece.bpe.model, tokenizer.json or vocab.txt).")
@click.option("--ser-dict-path", type=click.Path(dir_okay=False),
              help="The SER class list the model was trained with (default: XFUND's).")
@click.option("--json", "json_out", type=click.Path(dir_okay=False),
              help="Write results here (default: print them).")
@click.option("--vis-dir", type=click.Path(file_okay=False),
              help="Write IMAGE_kie.jpg per image here (lines coloured by label, links).")
@click.option("--vis-font", type=click.Path(dir_okay=False), help="Font for --vis-dir.")
@click.option("--threads", type=int, help="torch CPU threads (default: torch's).")
@click.option("--overwrite", is_flag=True, help="Replace existing outputs.")
@_with_ocr_options
@debug_option
def kie(inputs, det, rec, ser, re_path, tokenizer, ser_dict_path, json_out, vis_dir, vis_font,
        threads, overwrite, **options):
    """Label each OCR line (question, answer, header, other) and link questions to answers,
    as PaddleOCR's ppstructure/kie predictors.

    Exit 0 when every image was labelled, 1 when some could not be read or held no text (the
    others are still written), 2 when none was.
    """
    from ..converter.checkpoint import write_bytes_atomic
    from ..pipeline.kie import KIE, NoTextError, draw_kie

    images = _collect(inputs, IMAGE_SUFFIXES)
    planned = [json_out] + ([Path(vis_dir) / (p.stem + "_kie.jpg") for p in images]
                            if vis_dir else [])
    refuse_existing(planned, overwrite)
    if vis_dir:
        from ..pipeline.visualize import find_font

        find_font(vis_font)  # fail before the batch when no font is there
    try:
        system = KIE(det=det, rec=rec, ser=ser, re=re_path, tokenizer=tokenizer,
                     threads=threads, ser_dict_path=ser_dict_path, **options)
    except ValueError as exc:
        raise PtocrError(str(exc)) from None
    results, run = {}, ImageRun(images, system, "kie", empty_errors=(NoTextError,))
    for path, img, res in run:
        results[path.name] = res
        if vis_dir:
            import cv2

            Path(vis_dir).mkdir(parents=True, exist_ok=True)
            ok, data = cv2.imencode(".jpg", draw_kie(img, res, vis_font))
            write_bytes_atomic(Path(vis_dir) / (path.stem + "_kie.jpg"), data.tobytes(),
                               overwrite=overwrite)
    if not results:
        raise PtocrError(f"no image gave KIE results ({run.failed} of {len(images)} could not be "
                         "read or held no text)", exit_code=2)
    text = json.dumps(results, ensure_ascii=False, indent=1)
    if json_out:
        write_bytes_atomic(json_out, (text + "\n").encode("utf-8"), overwrite=overwrite)
        click.echo(f"wrote {json_out} ({len(results)} images)", err=True)
    else:
        click.echo(text)
    if run.failed:
        raise PtocrError(f"{run.failed} of {len(images)} images gave no KIE result", exit_code=1)
