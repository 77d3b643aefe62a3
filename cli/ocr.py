"""ocr: the OCR system on images and directories."""

import json
import sys
from pathlib import Path

import click

from ..errors import PtocrError
from .main import debug_option, main, refuse_existing


IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


def _ocr_option_decorators():
    """One CLI option per OCR setting: operator settings default to the checkpoint's value
    (PaddleOCR's default in the help), the system's own to predict_system's defaults."""
    import dataclasses

    from ..pipeline.options import OPERATOR_OPTIONS, SystemOptions

    decorators, seen = [], set()
    for o in OPERATOR_OPTIONS:
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
        decorators.append(click.option("--" + f.name.replace("_", "-"), f.name,
                                       default=f.default, show_default=True,
                                       type=type(f.default)))
    return decorators


def _with_ocr_options(f):
    for deco in reversed(_ocr_option_decorators()):
        f = deco(f)
    return f


def _collect_images(inputs):
    images = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            images += sorted(q for q in p.iterdir() if q.suffix.lower() in IMAGE_SUFFIXES)
        else:
            images.append(p)
    return images


@main.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("--det", required=True, type=click.Path(), help="Detection checkpoint.")
@click.option("--rec", required=True, type=click.Path(), help="Recognition checkpoint.")
@click.option("--cls", "cls_path", type=click.Path(), help="Direction classifier checkpoint.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False),
              help="Write results here (default: print them).")
@click.option("--vis-dir", type=click.Path(file_okay=False), help="Write visualisations here.")
@click.option("--vis-font", type=click.Path(), help="Font for --vis-dir (must render CJK).")
@click.option("--threads", type=int, help="torch CPU threads (default: torch's).")
@click.option("--overwrite", is_flag=True, help="Replace existing outputs.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False),
              help="Corpus mode: write rows as shards in this directory (resumable); INPUTS "
              "are folders, globs, .txt lists or .parquet/.jsonl manifests.")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local",
              show_default=True, help="Corpus mode: in-process or Ray Data.")
@click.option("--format", "out_format", type=click.Choice(["parquet", "jsonl"]),
              default="parquet", show_default=True, help="Corpus mode: shard format.")
@click.option("--address", help="Ray cluster address (auto, ray://host:port); default: start "
              "a local Ray.")
@click.option("--num-workers", type=int, help="Ray workers (default: one per CPU).")
@click.option("--batch-size", type=int, default=8, show_default=True,
              help="Images per Ray batch.")
@click.option("--shard-size", type=int, default=1000, show_default=True,
              help="Rows per output shard.")
@click.option("--path-column", default="path", show_default=True,
              help="Path column of a .parquet/.jsonl manifest.")
@_with_ocr_options
@debug_option
def ocr(inputs, det, rec, cls_path, json_out, vis_dir, vis_font, threads, overwrite, out_dir,
        engine, out_format, address, num_workers, batch_size, shard_size, path_column,
        **options):
    """Run the OCR system (detect, classify, recognise) on images or directories.

    Exit 0 when every image was processed, 1 when some could not be read (the others are
    still in the output), 2 when none could.
    """
    from tqdm import tqdm

    from ..pipeline.preprocess import read_image
    from ..pipeline.system import OCR
    from ..converter.checkpoint import write_bytes_atomic

    if out_dir:
        return _corpus(inputs, det, rec, cls_path, json_out, vis_dir, threads, out_dir, engine,
                       out_format, address, num_workers, batch_size, shard_size, path_column,
                       options)
    images = _collect_images(inputs)
    if not images:
        raise PtocrError("no images found in the inputs")
    vis_paths = [Path(vis_dir) / (p.stem + "_ocr.jpg") for p in images] if vis_dir else []
    refuse_existing([json_out] + vis_paths, overwrite)
    try:
        system = OCR(det=det, rec=rec, cls=cls_path, threads=threads, **options)
    except ValueError as exc:  # a setting the operators refuse (e.g. a bad image shape)
        raise PtocrError(str(exc)) from None
    if vis_dir:
        from ..pipeline.visualize import draw, find_font

        find_font(vis_font)  # fail before the batch, not after it
        Path(vis_dir).mkdir(parents=True, exist_ok=True)
    results, failed = {}, 0
    for path in tqdm(images, desc="ocr", unit="img", disable=None):
        try:
            img = read_image(path)
        except (ValueError, OSError) as exc:
            failed += 1
            tqdm.write(f"warning: {exc}; skipped", file=sys.stderr)
            continue
        records = system(img)
        results[path.name] = records
        if vis_dir:
            import cv2

            ok, data = cv2.imencode(".jpg", draw(img, records, vis_font))
            write_bytes_atomic(Path(vis_dir) / (path.stem + "_ocr.jpg"), data.tobytes(),
                               overwrite=overwrite)
    text = json.dumps(results, ensure_ascii=False, indent=1)
    if json_out:
        write_bytes_atomic(json_out, (text + "\n").encode("utf-8"), overwrite=overwrite)
        click.echo(f"wrote {json_out} ({len(results)} images, "
                   f"{sum(len(r) for r in results.values())} lines)", err=True)
    else:
        click.echo(text)
    if failed:
        raise PtocrError(f"{failed} of {len(images)} images could not be read",
                         exit_code=2 if not results else 1)


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
