"""kie: key information extraction (SER labels per OCR line, RE question -> answer links)."""

import json
from pathlib import Path

import click

from ..errors import PtocrError
from .main import ImageRun, debug_option, main, refuse_existing
from .ocr import IMAGE_SUFFIXES, _collect, _with_ocr_options


@main.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("--det", required=False, type=click.Path(), help="Detection checkpoint.")
@click.option("--rec", required=False, type=click.Path(), help="Recognition checkpoint.")
@click.option("--ser", required=False, type=click.Path(),
              help="SER checkpoint (ser_vi_layoutxlm_xfund_zh, ...).")
@click.option("--re", "re_path", type=click.Path(),
              help="RE checkpoint (re_vi_layoutxlm_xfund_zh, ...): link questions to answers.")
@click.option("--tokenizer", required=False, type=click.Path(),
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
@click.option("--sdmgr", type=click.Path(), help="SDMGR checkpoint (kie_unet_sdmgr): the "
              "INPUTS are box files (image path<TAB>JSON boxes, PaddleOCR's KIE format) and "
              "each box is classified; no OCR.")
@click.option("--dict-path", type=click.Path(dir_okay=False),
              help="With --sdmgr: the character dictionary the model was trained with.")
@click.option("--class-path", type=click.Path(dir_okay=False),
              help="With --sdmgr: the class list (class i on line i).")
@click.option("--data-dir", type=click.Path(file_okay=False),
              help="With --sdmgr: folder the image paths are relative to (default: the box "
              "file's).")
@click.option("--edge-thresh", type=float, help="With --sdmgr: report box pairs linked "
              "with at least this probability (default 0.5).")
@_with_ocr_options
@debug_option
def kie(inputs, det, rec, ser, re_path, tokenizer, ser_dict_path, json_out, vis_dir, vis_font,
        threads, overwrite, sdmgr, dict_path, class_path, data_dir, edge_thresh, **options):
    """Label each OCR line (question, answer, header, other) and link questions to answers,
    as PaddleOCR's ppstructure/kie predictors. With --sdmgr: classify the given boxes of box
    files (INPUTS) and link box pairs, as PaddleOCR's tools/infer_kie.py.

    Exit 0 when every image was labelled, 1 when some could not be read or held no text (the
    others are still written), 2 when none was.
    """
    if sdmgr:
        return _kie_sdmgr(inputs, sdmgr, dict_path, class_path, data_dir, edge_thresh,
                          json_out, vis_dir, threads, overwrite,
                          others=[det, rec, ser, re_path, tokenizer, ser_dict_path])
    missing = [o for o, v in (("--det", det), ("--rec", rec), ("--ser", ser),
                              ("--tokenizer", tokenizer)) if not v]
    if missing:
        raise PtocrError(f"missing {', '.join(missing)} (or --sdmgr for SDMGR on box files)")
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
    _write_results(results, run.failed, len(images), "held no text", json_out, overwrite)


def _write_results(results, failed, total, empty, json_out, overwrite):
    """The JSON (file or stdout) and the exit code: 2 when no image gave a result, 1 when
    some did not."""
    from ..converter.checkpoint import write_bytes_atomic

    if not results:
        raise PtocrError(f"no image gave KIE results ({failed} of {total} could not be read or "
                         f"{empty})", exit_code=2)
    text = json.dumps(results, ensure_ascii=False, indent=1)
    if json_out:
        write_bytes_atomic(json_out, (text + "\n").encode("utf-8"), overwrite=overwrite)
        click.echo(f"wrote {json_out} ({len(results)} images)", err=True)
    else:
        click.echo(text)
    if failed:
        raise PtocrError(f"{failed} of {total} images gave no KIE result", exit_code=1)


def _kie_sdmgr(box_files, model, dict_path, class_path, data_dir, edge_thresh, json_out,
               vis_dir, threads, overwrite, others):
    """ptocr kie --sdmgr: classify the given boxes of each box-file line (tools/infer_kie.py).
    Exit 0 when every image was done, 1 when some could not be read or had no boxes (the
    others are still written), 2 when none was."""
    import sys

    from tqdm import tqdm

    from ..converter.checkpoint import write_bytes_atomic
    from ..pipeline.kie_sdmgr import SDMGR, draw_sdmgr, read_box_file
    from ..pipeline.preprocess import read_image

    if any(others):
        raise PtocrError("--sdmgr runs on box files alone; --det, --rec, --ser, --re, "
                         "--tokenizer and --ser-dict-path do not apply")
    if not dict_path:
        raise PtocrError("--sdmgr needs --dict-path (the character dictionary of the model)")
    entries = [e for f in box_files for e in read_box_file(f, data_dir)]
    vis_names = {}
    for i, (img_path, _) in enumerate(entries):
        name = f"{img_path.stem}_sdmgr.jpg"
        vis_names[i] = name if name not in vis_names.values() else f"{img_path.stem}_{i}_sdmgr.jpg"
    planned = [json_out] + ([Path(vis_dir) / n for n in vis_names.values()] if vis_dir else [])
    refuse_existing(planned, overwrite)
    system = SDMGR(model, dict_path, class_path, threads=threads, edge_thresh=edge_thresh)
    results, failed = [], 0
    for i, (img_path, boxes) in enumerate(tqdm(entries, desc="kie", unit="img", disable=None)):
        try:
            img = read_image(img_path)  # its errors name the file
            try:
                res = system(img, boxes)
            except ValueError as exc:  # NoBoxesError among them
                raise ValueError(f"{img_path}: {exc}") from None
        except (ValueError, OSError) as exc:
            failed += 1
            tqdm.write(f"warning: {exc}; skipped", file=sys.stderr)
            continue
        results.append({"image": str(img_path), **res})
        if vis_dir:
            import cv2

            Path(vis_dir).mkdir(parents=True, exist_ok=True)
            ok, data = cv2.imencode(".jpg", draw_sdmgr(img, res))
            write_bytes_atomic(Path(vis_dir) / vis_names[i], data.tobytes(), overwrite=overwrite)
    _write_results(results, failed, len(entries), "had no boxes", json_out, overwrite)
