"""The ``ptocr`` command line: convert, verify, inspect, archs (and ocr, zoo)."""

import json
import sys
import traceback
from pathlib import Path

import click

from .errors import PtocrError


class _Group(click.Group):
    """Turns ptocr's own errors into one line and an exit code; tracebacks only with --debug."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except PtocrError as exc:
            _fail(ctx, str(exc), exc.exit_code)
        except KeyboardInterrupt:
            _fail(ctx, "interrupted", 130)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as exc:  # a bug of ours: still one line unless --debug
            _fail(ctx, f"internal error: {type(exc).__name__}: {exc}", 1)


def _fail(ctx, message, code):
    if ctx.obj and ctx.obj.get("debug"):
        traceback.print_exc()
    click.echo(f"error: {message}", err=True)
    ctx.exit(code)


def _debug_option(f):
    def callback(ctx, _param, value):
        if value:
            ctx.ensure_object(dict)["debug"] = True
        return value

    return click.option("--debug", is_flag=True, expose_value=False, callback=callback,
                        is_eager=True, help="Show tracebacks.")(f)


@click.group(cls=_Group)
@click.version_option(package_name="ptocr")
@_debug_option
@click.pass_context
def main(ctx):
    """ptocr: PaddleOCR models in PyTorch, proven equal to Paddle."""
    ctx.ensure_object(dict)


@main.command()
@click.option("--arch", required=True,
              help="Architecture name (see `ptocr archs`), or auto to detect it.")
@click.option("--paddle-dir", required=True, help="Directory or file prefix of Paddle weights.")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False),
              help="Output checkpoint (.pth or .safetensors).")
@click.option("--config", "config_path", type=click.Path(), help="PaddleOCR training yml "
              "whose Architecture replaces the table's.")
@click.option("--submodel", help="Sub-model of a distillation checkpoint (default Student).")
@click.option("--format", "fmt", type=click.Choice(["pth", "safetensors"]),
              help="Output format (default: from the --out suffix, else pth).")
@click.option("--no-verify", is_flag=True, help="Skip the parity check against Paddle.")
@click.option("--require-verify", is_flag=True, help="Fail when parity cannot be checked.")
@click.option("--force", is_flag=True, help="Write the output even when parity fails.")
@click.option("--reference", type=click.Path(), help="Inference export of the same weights to "
              "verify a training checkpoint against.")
@click.option("--report", type=click.Path(dir_okay=False), help="Write the parity report JSON.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output file.")
@click.option("--rec-dict", type=click.Path(), help="Character dictionary of a recogniser "
              "(default: the export's inference.yml, else the table's standard one).")
@click.option("--full-head", is_flag=True, help="Keep the training-only NRTR branch of MultiHead "
              "recognisers (training checkpoints), for fine-tuning.")
@click.option("--use-space-char/--no-use-space-char", default=None,
              help="Whether the recogniser's classes end with a space (default: from the "
              "class count).")
@_debug_option
def convert(arch, paddle_dir, out, config_path, submodel, fmt, no_verify, require_verify,
            force, reference, report, overwrite, full_head, rec_dict, use_space_char):
    """Convert Paddle weights to a PyTorch checkpoint, verified against Paddle."""
    from .. import __version__
    from . import checkpoint
    from . import dictionary
    from .convert import convert as run_convert

    out = Path(out)
    _refuse_existing([out, report], overwrite)
    if require_verify and not no_verify:
        from .verify import paddle_available

        if not paddle_available():  # fail before doing any work
            raise PtocrError("parity cannot be verified: paddle is not installed")
    conv = run_convert(paddle_dir, arch, config_path, submodel, full_head=full_head)
    chars = dictionary.resolve(conv.spec, conv.weights, getattr(conv.model.head, "out_channels",
                                                                None), rec_dict, use_space_char)
    click.echo(f"converted {conv.spec.name} from {conv.weights.format} "
               f"({conv.report.mapped} tensors by {conv.report.method}"
               + (f", {len(conv.report.ignored)} training-only ignored" if conv.report.ignored
                  else "") + ")", err=True)
    parity = _parity(conv, no_verify, require_verify, force, reference, submodel, report,
                     overwrite)
    meta = {
        "arch": conv.spec.name, "config": conv.config, "source": conv.weights.sources(),
        "ptocr_version": __version__, "parity": parity,
        "extra": {"task": conv.spec.task, "submodel": conv.weights.submodel, **(chars or {})},
    }
    checkpoint.save(out, conv.model.state_dict(), meta, fmt, overwrite)
    click.echo(f"wrote {out}")


def _parity(conv, no_verify, require_verify, force, reference, submodel, report_path,
            overwrite):
    """Run the verifier as convert's gate; returns the checkpoint's parity record."""
    from . import formats
    from .verify import format_table, paddle_available, summary, verify

    if no_verify:
        if require_verify:
            raise PtocrError("--no-verify and --require-verify contradict each other")
        return {"verified": False, "reason": "--no-verify"}
    reference_weights = conv.weights
    if reference:
        reference_weights = formats.read(reference)
    reason = None
    if reference_weights.program is None:
        reason = "training checkpoint without --reference inference export"
    elif not paddle_available():
        reason = "paddle is not installed"
    if reason:
        if require_verify:
            raise PtocrError(f"parity cannot be verified: {reason}")
        click.echo(f"warning: parity NOT verified ({reason})", err=True)
        return {"verified": False, "reason": reason}
    report = verify(reference_weights, conv.model, conv.spec)
    click.echo(format_table(report))
    if report_path:
        _write_json(report_path, report, overwrite)
    if not report["passed"] and not force:
        from .errors import ParityError

        raise ParityError(f"parity failed, output not written: {summary(report)}")
    return {"verified": True, "passed": report["passed"], "summary": summary(report),
            "max_abs": max((r.get("max_abs", float("inf")) for r in report["results"]),
                           default=None), "versions": report["versions"]}


def _write_json(path, data, overwrite):
    from .checkpoint import write_bytes_atomic

    write_bytes_atomic(path, json.dumps(data, indent=2, ensure_ascii=False).encode("utf-8"),
                       overwrite=overwrite)


def _refuse_existing(paths, overwrite):
    """Check outputs before any work: existing files are kept unless --overwrite."""
    for path in paths:
        if path and Path(path).exists() and not overwrite:
            raise PtocrError(f"{path}: already exists (pass --overwrite to replace it)")


@main.command()
@click.option("--paddle-dir", required=True, help="Paddle inference model to check against.")
@click.option("--torch", "torch_path", required=True, type=click.Path(),
              help="ptocr checkpoint to check.")
@click.option("--report", type=click.Path(dir_okay=False), help="Write the report JSON.")
@click.option("--overwrite", is_flag=True, help="Replace an existing report.")
@_debug_option
def verify(paddle_dir, torch_path, report, overwrite):
    """Check an existing checkpoint against the Paddle model (exit 0 pass, 1 fail)."""
    from . import formats
    from .checkpoint import load_model
    from .mapping import find_arch
    from .verify import format_table, verify as run_verify

    _refuse_existing([report], overwrite)
    model = load_model(torch_path)
    spec = find_arch(model.ptocr_meta["arch"])
    weights = formats.read(paddle_dir)
    result = run_verify(weights, model, spec)
    click.echo(format_table(result))
    if report:
        _write_json(report, result, overwrite)
    sys.exit(0 if result["passed"] else 1)


@main.command()
@click.argument("path")
@click.option("--all", "show_all", is_flag=True, help="List every tensor.")
@click.option("-n", "limit", default=20, show_default=True, help="How many tensors to list.")
@click.option("--submodel", help="Sub-model of a distillation checkpoint.")
@_debug_option
def inspect(path, show_all, limit, submodel):
    """Show the format, tensors and matching architecture of Paddle weights."""
    from . import formats
    from .mapping import match_archs

    w = formats.read(path, submodel=submodel)
    click.echo(f"format: {w.format}" + (f" (sub-model {w.submodel})" if w.submodel else ""))
    click.echo(f"files: {', '.join(str(f) for f in w.files)}")
    click.echo(f"tensors: {len(w.tensors)}, {w.total_bytes() / 1e6:.2f} MB, names "
               + ("structured" if w.structured else "program variables"))
    items = list(w.tensors.items())
    for name, arr in items if show_all else items[:limit]:
        click.echo(f"  {name:60} {str(list(arr.shape)):20} {arr.dtype}")
    if not show_all and len(items) > limit:
        click.echo(f"  ... {len(items) - limit} more (--all lists every one)")
    matches = list(match_archs(w))
    click.echo("architecture: " + (", ".join(matches) if matches else "no known match"))


@main.command()
def archs():
    """List the known architectures and the proof each has."""
    from .mapping import list_archs

    specs = list_archs()
    click.echo(f"{'architecture':32} {'task':5} {'proof':18} description")
    for spec in specs.values():
        click.echo(f"{spec.name:32} {spec.task:5} {spec.proof:18} {spec.description}")


IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


def _ocr_option_decorators():
    """One CLI option per OCR setting, defaults as PaddleOCR's predict_system."""
    from ..pipeline.system import OCROptions
    import dataclasses

    decorators = []
    for f in dataclasses.fields(OCROptions):
        flag = "--" + f.name.replace("_", "-")
        if isinstance(f.default, bool):
            decorators.append(click.option(flag + "/--no-" + f.name.replace("_", "-"),
                                           f.name, default=f.default, show_default=True))
        elif isinstance(f.default, tuple):
            decorators.append(click.option(flag, f.name, default=",".join(map(str, f.default)),
                                           show_default=True, help="C,H,W"))
        else:
            decorators.append(click.option(flag, f.name, default=f.default, show_default=True,
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
@_with_ocr_options
@_debug_option
def ocr(inputs, det, rec, cls_path, json_out, vis_dir, vis_font, threads, overwrite, **options):
    """Run the OCR system (detect, classify, recognise) on images or directories.

    Exit 0 when every image was processed, 1 when some could not be read (the others are
    still in the output), 2 when none could.
    """
    from tqdm import tqdm

    from ..pipeline.preprocess import read_image
    from ..pipeline.system import OCR
    from .checkpoint import write_bytes_atomic

    for key in ("rec_image_shape", "cls_image_shape"):
        try:
            options[key] = tuple(int(v) for v in str(options[key]).split(","))
            assert len(options[key]) == 3
        except (ValueError, AssertionError):
            raise PtocrError(f"--{key.replace('_', '-')} must be C,H,W, not {options[key]!r}")
    images = _collect_images(inputs)
    if not images:
        raise PtocrError("no images found in the inputs")
    vis_paths = [Path(vis_dir) / (p.stem + "_ocr.jpg") for p in images] if vis_dir else []
    _refuse_existing([json_out] + vis_paths, overwrite)
    system = OCR(det=det, rec=rec, cls=cls_path, threads=threads, **options)
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


@main.command()
@click.option("--select", help="Comma-separated model name patterns (fnmatch), default all.")
@click.option("--jobs", default=1, show_default=True, help="Parallel conversion processes.")
@click.option("--cache", default=".cache", show_default=True, type=click.Path(file_okay=False),
              help="Downloads, wheels and unpacked models.")
@click.option("--out", "out_dir", default="build/zoo", show_default=True,
              type=click.Path(file_okay=False), help="Checkpoints and report.json/report.md.")
@click.option("--manifest", type=click.Path(dir_okay=False), help="Manifest (default: ptocr's).")
@click.option("--no-verify", is_flag=True, help="Convert without the parity check.")
@click.option("--timeout", default=10.0, show_default=True, help="Network timeout, seconds.")
@_debug_option
def zoo(select, jobs, cache, out_dir, manifest, no_verify, timeout):
    """Fetch, convert and verify the official models; exit 1 if a fetched model failed."""
    from . import zoo as zoo_mod

    rows = zoo_mod.run(select, max(1, jobs), cache, out_dir, manifest, not no_verify, timeout)
    for r in rows:
        diff = f"{r['max_abs_diff']:.1e}" if r.get("max_abs_diff") is not None else "-"
        note = r.get("error") or r.get("reason") or r.get("skipped") or ""
        click.echo(f"{r['model']:32} {r['status']:11} {diff:>8}  {note[:100]}")
    counts = {s: sum(r["status"] == s for r in rows) for s in ("ok", "failed", "unavailable")}
    click.echo(f"zoo: {counts['ok']} ok, {counts['failed']} failed, {counts['unavailable']} "
               f"unavailable; report in {Path(out_dir) / 'report.md'}")
    if counts["failed"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
