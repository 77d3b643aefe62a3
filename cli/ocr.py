"""ocr, det, rec, cls: the OCR system, and each of its stages alone, on images, directories
and PDFs. Without model paths they take the default models of --ocr-version/--lang from the
model cache (fetched, converted and verified once; `ptocr models`)."""

import json
import math
from pathlib import Path

import click

from ..errors import PtocrError
from .main import debug_option, main, refuse_existing

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
INPUT_SUFFIXES = IMAGE_SUFFIXES | {".pdf"}


STAGE_SYSTEM_OPTIONS = {"det": (), "rec": ("rec_batch_num",),
                        "cls": ("cls_batch_num", "cls_thresh")}


def _ocr_option_decorators(stage=None):
    """One CLI option per OCR setting: operator settings default to the checkpoint's value
    (PaddleOCR's default in the help), the system's own to predict_system's defaults.
    ``stage``: only the settings of that stage (the det/rec/cls commands)."""
    import dataclasses

    from ..pipeline.options import OPERATOR_OPTIONS, SystemOptions

    decorators, seen = [], set()
    for o in OPERATOR_OPTIONS:
        if stage and o.stage != stage:
            continue
        if o.name in seen:  # one option for a setting several operators take
            continue
        seen.add(o.name)
        flag = "--" + o.name.replace("_", "-")
        if o.type is bool:
            decorators.append(click.option(f"{flag}/--no-{o.name.replace('_', '-')}", o.name,
                                           default=None, help=o.help))
        else:
            decorators.append(click.option(flag, o.name, default=None, help=o.help,
                                           type=o.type if o.type in (int, float, str) else str))
    for f in dataclasses.fields(SystemOptions):
        if stage and f.name not in STAGE_SYSTEM_OPTIONS[stage]:
            continue
        decorators.append(click.option("--" + f.name.replace("_", "-"), f.name,
                                       default=f.default, show_default=True,
                                       type=type(f.default)))
    return decorators


def _apply(f, decorators):
    for deco in reversed(decorators):
        f = deco(f)
    return f


def _with_ocr_options(f):
    return _apply(f, _ocr_option_decorators())


def _stage_options(stage):
    return lambda f: _apply(f, _ocr_option_decorators(stage))


def _with_model_choice(f):
    """--ocr-version / --lang: which default models (PaddleOCR's mapping)."""
    return _apply(f, [
        click.option("--ocr-version", help="PP-OCRv5 (default) | PP-OCRv6 | PP-OCRv4 | PP-OCRv3 | PP-OCRv2"
                     " | PP-OCR: which official models when no path is given."),
        click.option("--lang", help="PaddleOCR language code (ch, en, japan, korean, "
                     "chinese_cht, latin, arabic, cyrillic, devanagari, ta, te, ka, french, "
                     "german, ...; `ptocr models list --langs`). Default ch."),
    ])


def _with_outputs(f):
    return _apply(f, [
        click.option("--json", "json_out", type=click.Path(dir_okay=False),
                     help="Write results here (default: print them)."),
        click.option("--threads", type=int, help="torch CPU threads (default: torch's)."),
        click.option("--overwrite", is_flag=True, help="Replace existing outputs."),
    ])


def _collect(inputs, suffixes):
    paths = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            paths += sorted(q for q in p.iterdir() if q.suffix.lower() in suffixes)
        else:
            paths.append(p)
    if not paths:
        raise PtocrError("no images found in the inputs")
    return paths


def _documents(inputs, pages, json_out, overwrite):
    """(image/PDF paths, selected pages) of the inputs; the JSON output is checked first."""
    from ..pipeline.documents import parse_pages

    try:
        page_list = parse_pages(pages)
    except ValueError as exc:
        raise PtocrError(str(exc)) from None
    paths = _collect(inputs, INPUT_SUFFIXES)
    refuse_existing([json_out], overwrite)
    return paths, page_list


def _model(path, task, ocr_version, lang):
    from ..converter import models_cache

    return models_cache.resolve(path, task, ocr_version, lang)


def _system(det=None, rec=None, cls=None, threads=None, e2e=None, **options):
    from ..pipeline.system import OCR

    try:
        return OCR(det=det, rec=rec, cls=cls, threads=threads, e2e=e2e, **options)
    except ValueError as exc:  # a setting the operators refuse (e.g. a bad image shape)
        raise PtocrError(str(exc)) from None


def _pages(inputs, pages, failures):
    """Yield (path, page number or None, BGR image); unreadable inputs are counted in
    ``failures`` with a warning and skipped (a PDF: all its pages)."""
    from ..pipeline.documents import is_pdf, render_pdf
    from ..pipeline.preprocess import read_image

    for path in inputs:
        try:
            if is_pdf(path):
                for number, img in render_pdf(path, pages):
                    yield path, number, img
            else:
                yield path, None, read_image(path)
        except (ValueError, OSError) as exc:
            failures.append(str(path))
            click.echo(f"warning: {exc}; skipped", err=True)


def _finish(results, json_out, overwrite, failures, total, what="lines"):
    from ..converter.checkpoint import write_bytes_atomic

    text = _dumps(results)
    if json_out:
        write_bytes_atomic(json_out, (text + "\n").encode("utf-8"), overwrite=overwrite)
        count = sum(len(r) if isinstance(r, list) else 1 for r in results.values())
        click.echo(f"wrote {json_out} ({len(results)} inputs, {count} {what})", err=True)
    else:
        click.echo(text)
    if failures:
        raise PtocrError(f"{len(failures)} of {total} inputs could not be read",
                         exit_code=2 if not results else 1)


def _json_safe(value):
    """NaN/inf scores (the mean confidence of an empty read) as null: JSON has no NaN."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _dumps(results):
    """JSON with one record (line, box, text) per text line, readable on a terminal."""
    results = _json_safe(results)
    parts = []
    for name, value in results.items():
        if isinstance(value, list):
            body = ",\n".join("  " + json.dumps(r, ensure_ascii=False) for r in value)
            body = f"[\n{body}\n ]" if value else "[]"
        else:
            body = json.dumps(value, ensure_ascii=False)
        parts.append(f" {json.dumps(name, ensure_ascii=False)}: {body}")
    return "{\n" + ",\n".join(parts) + "\n}" if parts else "{}"


def _vis_name(path, page, tag):
    return f"{path.stem}{f'_p{page}' if page else ''}_{tag}.jpg"


@main.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("--det", type=click.Path(), help="Detection model: ptocr checkpoint or Paddle "
              "model folder (default: the official one of --ocr-version/--lang).")
@click.option("--rec", type=click.Path(), help="Recognition model (same forms as --det).")
@click.option("--cls", "cls_path", type=click.Path(), help="Direction classifier (implies "
              "--use-angle-cls).")
@click.option("--use-angle-cls", is_flag=True, help="Turn lines classified as upside down "
              "(PaddleOCR's default: off).")
@click.option("--e2e", "e2e_path", type=click.Path(), help="End-to-end model (PGNet) instead "
              "of --det/--rec/--cls: its polygons and texts ({box, text}; --e2e-* settings).")
@_with_model_choice
@click.option("--pages", help="PDF pages to read, e.g. 1-3,5 (default: all).")
@click.option("--vis-dir", type=click.Path(file_okay=False), help="Write visualisations here.")
@click.option("--vis-font", type=click.Path(), help="Font for --vis-dir (must render CJK).")
@_with_outputs
@click.option("--out", "out_dir", type=click.Path(file_okay=False),
              help="Corpus mode: write rows as shards in this directory (resumable); INPUTS "
              "are folders, globs, .txt lists or .parquet/.jsonl manifests.")
@click.option("--engine", type=click.Choice(["local", "eager", "compiled", "aoti", "ray"]),
              default="local", show_default=True, help="How the models run: eager modules "
              "(local = eager), compiled (torch.compile, checked against eager), aoti "
              "(AOTInductor packages, exported, verified and cached once); corpus mode also "
              "ray (Ray Data workers, eager).")
@click.option("--format", "out_format", type=click.Choice(["parquet", "jsonl"]),
              default="parquet", show_default=True, help="Corpus mode: shard format.")
@click.option("--address", help="Ray cluster address (auto, ray://host:port); default: start "
              "a local Ray.")
@click.option("--num-workers", type=int, help="Ray workers (default: one per CPU).")
@click.option("--batch-size", type=int, default=8, show_default=True,
              help="Images whose text crops share classifier and recogniser batches (the "
              "same results as one image at a time); Ray: images per Ray batch.")
@click.option("--shard-size", type=int, default=1000, show_default=True,
              help="Rows per output shard.")
@click.option("--path-column", default="path", show_default=True,
              help="Path column of a .parquet/.jsonl manifest.")
@_with_ocr_options
@debug_option
def ocr(inputs, det, rec, cls_path, use_angle_cls, e2e_path, ocr_version, lang, pages, vis_dir,
        vis_font, json_out, threads, overwrite, out_dir, engine, out_format, address,
        num_workers, batch_size, shard_size, path_column, **options):
    """Run the OCR system (detect, classify, recognise) on images, PDFs or directories.

    With no --det/--rec, PaddleOCR's default models for --ocr-version/--lang are fetched once,
    converted, verified and cached ($PTOCR_HOME, default ~/.cache/ptocr). Results map each
    input to its lines ({box, text, score}; lines of a PDF carry their page number).
    Exit 0 when every input was processed, 1 when some could not be read (the others are
    still in the output), 2 when none could.
    """
    from tqdm import tqdm

    model_engine = engine if engine in ("compiled", "aoti") else "eager"
    if e2e_path and (det or rec or cls_path or use_angle_cls):
        raise PtocrError("--e2e reads the text itself: give it without --det/--rec/--cls")
    if e2e_path and out_dir:
        raise PtocrError("corpus mode (--out) runs det/rec models, not --e2e")
    if out_dir:
        if use_angle_cls and not cls_path:
            cls_path = _cached(None, "cls", ocr_version, lang)
        if model_engine != "eager":
            options["model_engine"] = model_engine
        return _corpus(inputs, _cached(det, "det", ocr_version, lang),
                       _cached(rec, "rec", ocr_version, lang), cls_path, json_out, vis_dir,
                       threads, out_dir, "ray" if engine == "ray" else "local", out_format,
                       address, num_workers, batch_size, shard_size, path_column, options)
    paths, page_list = _documents(inputs, pages, json_out, overwrite)
    if vis_dir:
        refuse_existing([Path(vis_dir) / _vis_name(p, None, "ocr") for p in paths
                         if p.suffix.lower() != ".pdf"], overwrite)
    use_cls = use_angle_cls or cls_path is not None
    # compiled and aoti forms are made from checkpoint paths (aoti: cached by checksum)
    get = _model if model_engine == "eager" else _cached
    if model_engine != "eager":
        options["engine"] = model_engine
    if e2e_path:
        system = _system(e2e=get(e2e_path, "e2e", ocr_version, lang), threads=threads,
                         **options)
    else:
        system = _system(det=get(det, "det", ocr_version, lang),
                         rec=get(rec, "rec", ocr_version, lang),
                         cls=get(cls_path, "cls", ocr_version, lang) if use_cls else None,
                         threads=threads, **options)
    if vis_dir:
        from ..pipeline.visualize import draw, find_font

        find_font(vis_font)  # fail before the batch, not after it
        Path(vis_dir).mkdir(parents=True, exist_ok=True)
    results, failures = {}, []
    bar = tqdm(desc="ocr", unit="img", disable=None, dynamic_ncols=True)  # images/s
    for chunk in _chunks(_pages(paths, page_list, failures), batch_size):
        for (path, page, img), records in zip(chunk, system.many([c[2] for c in chunk])):
            _record(results, path, page, img, records, vis_dir, vis_font, overwrite)
        bar.update(len(chunk))
    bar.close()
    _finish(results, json_out, overwrite, failures, len(paths))


def _chunks(items, size):
    """Lists of up to ``size`` consecutive items: the images that share classifier and
    recogniser batches (OCR.many, bitwise the results of one image at a time)."""
    chunk = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= max(1, size):
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _record(results, path, page, img, records, vis_dir, vis_font, overwrite):
    from ..converter.checkpoint import write_bytes_atomic

    if page is None:
        results[path.name] = records
    else:
        results.setdefault(path.name, []).extend({"page": page, **r} for r in records)
    if vis_dir:
        import cv2

        from ..pipeline.visualize import draw

        ok, data = cv2.imencode(".jpg", draw(img, records, vis_font))
        write_bytes_atomic(Path(vis_dir) / _vis_name(path, page, "ocr"), data.tobytes(),
                           overwrite=overwrite)


def _cached(path, task, ocr_version, lang):
    """Corpus mode records model checksums, so it takes checkpoint paths: the given one, or
    the cached default."""
    from ..converter import models_cache

    if path:
        return path
    return models_cache.ensure(models_cache.default_models(ocr_version, lang)[task])


def _corpus(inputs, det, rec, cls_path, json_out, vis_dir, threads, out_dir, engine, out_format,
            address, num_workers, batch_size, shard_size, path_column, options):
    """ptocr ocr SOURCE... --out DIR: rows as shards, skipping what DIR already holds."""
    from ..engines.corpus import run_corpus

    if json_out or vis_dir:
        raise PtocrError("--out writes rows as shards; --json and --vis-dir are for images")
    if min(batch_size, shard_size) < 1 or (num_workers is not None and num_workers < 1):
        raise PtocrError("--batch-size, --shard-size and --num-workers must be at least 1")
    summary = run_corpus(list(inputs), out_dir, det, rec, cls_path, engine=engine,
                         fmt=out_format, path_column=path_column, shard_size=shard_size,
                         address=address, num_workers=num_workers, batch_size=batch_size,
                         threads=threads, **options)
    click.echo(f"ocr: {summary['done']} images done ({summary['errors']} unreadable, kept as "
               f"error rows), {summary['skipped']} already in {out_dir}; {summary['shards']} "
               f"shards written in {summary['seconds']:.1f}s", err=True)


@main.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("--model", type=click.Path(), help="Detection model: ptocr checkpoint or Paddle "
              "model folder (default: the official one of --ocr-version/--lang).")
@_with_model_choice
@click.option("--pages", help="PDF pages to read, e.g. 1-3,5 (default: all).")
@click.option("--vis-dir", type=click.Path(file_okay=False), help="Draw the boxes here.")
@_with_outputs
@_stage_options("det")
@debug_option
def det(inputs, model, ocr_version, lang, pages, vis_dir, json_out, threads, overwrite,
        **options):
    """Text detection alone (PaddleOCR's predict_det): boxes and scores per image."""
    from ..converter.checkpoint import write_bytes_atomic

    paths, page_list = _documents(inputs, pages, json_out, overwrite)
    system = _system(det=_model(model, "det", ocr_version, lang), threads=threads,
                     **options)
    if vis_dir:
        Path(vis_dir).mkdir(parents=True, exist_ok=True)
    results, failures = {}, []
    for path, page, img in _pages(paths, page_list, failures):
        boxes, scores = system.detect(img, scores=True)
        records = [{"box": box.tolist(), "score": score} for box, score in zip(boxes, scores)]
        if page is None:
            results[path.name] = records
        else:
            results.setdefault(path.name, []).extend({"page": page, **r} for r in records)
        if vis_dir:
            import cv2

            canvas = img.copy()
            for box in boxes:
                cv2.polylines(canvas, [box.astype("int32").reshape(-1, 1, 2)], True,
                              color=(255, 255, 0), thickness=2)  # as predict_det draws them
            ok, data = cv2.imencode(".jpg", canvas)
            write_bytes_atomic(Path(vis_dir) / _vis_name(path, page, "det"), data.tobytes(),
                               overwrite=overwrite)
    _finish(results, json_out, overwrite, failures, len(paths), "boxes")


def _line_images(inputs):
    from ..pipeline.preprocess import read_image

    paths = _collect(inputs, IMAGE_SUFFIXES)
    images, failures = {}, []
    for path in paths:
        try:
            images[path] = read_image(path)
        except (ValueError, OSError) as exc:
            failures.append(str(path))
            click.echo(f"warning: {exc}; skipped", err=True)
    return paths, images, failures


@main.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("--model", type=click.Path(), help="Recognition model: ptocr checkpoint or Paddle "
              "model folder (default: the official one of --ocr-version/--lang).")
@_with_model_choice
@_with_outputs
@_stage_options("rec")
@debug_option
def rec(inputs, model, ocr_version, lang, json_out, threads, overwrite, **options):
    """Text recognition alone (PaddleOCR's predict_rec) on cropped line images: text and
    score per image, batched by width ratio."""
    paths, images, failures = _line_images(inputs)
    refuse_existing([json_out], overwrite)
    system = _system(rec=_model(model, "rec", ocr_version, lang), threads=threads,
                     **options)
    texts = system.recognize(list(images.values())) if images else []
    results = {p.name: {"text": t, "score": float(s)} for p, (t, s) in zip(images, texts)}
    _finish(results, json_out, overwrite, failures, len(paths), "texts")


@main.command(name="cls")
@click.argument("inputs", nargs=-1, required=True)
@click.option("--model", type=click.Path(), help="Direction classifier: ptocr checkpoint or "
              "Paddle model folder (default: the official one).")
@_with_model_choice
@_with_outputs
@_stage_options("cls")
@debug_option
def cls_command(inputs, model, ocr_version, lang, json_out, threads, overwrite, **options):
    """Text-line orientation alone (PaddleOCR's predict_cls): label and score per image."""
    paths, images, failures = _line_images(inputs)
    refuse_existing([json_out], overwrite)
    system = _system(cls=_model(model, "cls", ocr_version, lang), threads=threads,
                     **options)
    labels = system.classify(list(images.values()))[1] if images else []
    results = {p.name: {"label": lab, "score": float(s)} for p, (lab, s) in zip(images, labels)}
    _finish(results, json_out, overwrite, failures, len(paths), "labels")
