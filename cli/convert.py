"""convert, verify, inspect, archs: Paddle weights in, verified PyTorch checkpoints out."""

import sys
from pathlib import Path

import click

from ..errors import PtocrError
from .main import debug_option, main, refuse_existing, write_json


@main.command()
@click.option("--arch", required=True,
              help="Architecture name (see `ptocr archs`), or auto to detect it.")
@click.option("--paddle-dir", required=True, help="Directory or file prefix of Paddle weights.")
@click.option("--out", "out", required=True, type=click.Path(),
              help="Output checkpoint (.pth or .safetensors); with --to transformers, the "
              "output folder.")
@click.option("--to", "target", type=click.Choice(["ptocr", "transformers"]), default="ptocr",
              show_default=True, help="ptocr checkpoint, or a Hugging Face transformers folder "
              "(config.json, model.safetensors, preprocessor_config.json) for transformers' own "
              "class (needs ptocr[hf]).")
@click.option("--hf-config", type=click.Path(dir_okay=False), help="With --to transformers: "
              "a transformers config.json to use instead of the one written from the weights "
              "(refused when it does not fit them).")
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
@click.option("--full-head", is_flag=True, help="Keep the training-only NRTR (PP-OCRv4/v5) or "
              "SAR (PP-OCRv3) branch of MultiHead recognisers (training checkpoints), for "
              "fine-tuning; the SAR branch also reads (model.head.eval_branch = 'sar').")
@click.option("--use-space-char/--no-use-space-char", default=None,
              help="Whether the recogniser's classes end with a space (default: from the "
              "class count).")
@debug_option
def convert(arch, paddle_dir, out, target, hf_config, config_path, submodel, fmt, no_verify,
            require_verify, force, reference, report, overwrite, full_head, rec_dict,
            use_space_char):
    """Convert Paddle weights to a PyTorch checkpoint, verified against Paddle."""
    from .. import __version__
    from ..converter import checkpoint, dictionary
    from ..converter.convert import convert as run_convert

    out = Path(out)
    refuse_existing([out, report], overwrite)
    if target == "ptocr" and (out.is_dir() or hf_config):
        raise PtocrError(f"{out}: is a directory (a checkpoint file is expected)" if out.is_dir()
                         else "--hf-config applies to --to transformers")
    user_config = None
    if target == "transformers":
        from ..converter import hf

        hf._transformers()  # installed, and a class for this architecture? (before any work)
        if arch.lower() != "auto":
            from ..converter.mapping import find_arch

            hf.section(find_arch(arch))
        if hf_config:
            user_config = hf._read_json(hf_config)
    if require_verify and not no_verify:
        from ..converter.verify import paddle_unavailable_reason

        reason = paddle_unavailable_reason()
        if reason:  # fail before doing any work
            raise PtocrError(f"parity cannot be verified: {reason}")
    conv = run_convert(paddle_dir, arch, config_path, submodel, full_head=full_head)
    chars = dictionary.resolve(conv.spec, conv.weights, getattr(conv.model.head, "out_channels",
                                                                None), rec_dict, use_space_char)
    click.echo(f"converted {conv.spec.name} from {conv.weights.format} "
               f"({conv.report.mapped} tensors by {conv.report.method}"
               + (f", {len(conv.report.ignored)} training-only ignored" if conv.report.ignored
                  else "") + ")", err=True)
    if target == "transformers":
        return _to_transformers(conv, chars, user_config, out, no_verify, require_verify, force,
                                reference, submodel, report, overwrite)
    parity = _parity(conv, no_verify, require_verify, force, reference, submodel, report,
                     overwrite)
    meta = {
        "arch": conv.spec.name, "config": conv.config, "source": conv.weights.sources(),
        "ptocr_version": __version__, "parity": parity,
        "extra": {"task": conv.spec.task, "submodel": conv.weights.submodel, **(chars or {})},
        "processing": conv.processing,
    }
    checkpoint.save(out, conv.model.state_dict(), meta, fmt, overwrite)
    click.echo(f"wrote {out}")


def _to_transformers(conv, chars, user_config, out, no_verify, require_verify, force,
                     reference, submodel, report, overwrite):
    """--to transformers: transformers' own class filled through the table's HF renames,
    verified against Paddle itself, written as a transformers folder."""
    from .. import __version__
    from ..converter import hf

    hf.section(conv.spec)  # a class for this architecture?
    hf_model, _cfg = hf.to_transformers(conv.model, conv.config, conv.spec, user_config)
    click.echo(f"filled {type(hf_model).__name__} (transformers) from {conv.spec.name}", err=True)
    parity = _parity(conv, no_verify, require_verify, force, reference, submodel, report,
                     overwrite, model=hf.HFOutputs(hf_model, hf.section(conv.spec).get("output"),
                                                   hf.section(conv.spec).get("inputs")),
                     spec=hf.verify_spec(conv.spec))
    meta = {"arch": conv.spec.name, "source": conv.weights.sources(), "ptocr_version": __version__,
            "parity": parity, "transformers_class": type(hf_model).__name__,
            "extra": {"task": conv.spec.task, "submodel": conv.weights.submodel, **(chars or {})},
            "processing": conv.processing}
    hf.write_folder(out, hf_model, conv.spec, meta, overwrite)
    click.echo(f"wrote {out}")


def _parity(conv, no_verify, require_verify, force, reference, submodel, report_path,
            overwrite, model=None, spec=None):
    """Run the verifier as convert's gate; returns the checkpoint's parity record (of
    ``model``, default the converted ptocr model)."""
    from ..converter import formats
    from ..converter.verify import format_table, paddle_unavailable_reason, summary, verify

    if no_verify:
        if require_verify:
            raise PtocrError("--no-verify and --require-verify contradict each other")
        return {"verified": False, "reason": "--no-verify"}
    reference_weights = conv.weights
    if reference:
        reference_weights = formats.read(reference)
    reason = None
    if reference_weights.program is None and (spec or conv.spec).no_program:
        reason = f"no Paddle program to compare with: {(spec or conv.spec).no_program}"
    elif reference_weights.program is None:
        reason = "training checkpoint without --reference inference export"
    else:
        reason = paddle_unavailable_reason()
    if reason:
        if require_verify:
            raise PtocrError(f"parity cannot be verified: {reason}")
        click.echo(f"warning: parity NOT verified ({reason})", err=True)
        return {"verified": False, "reason": reason}
    report = verify(reference_weights, model or conv.model, spec or conv.spec)
    click.echo(format_table(report))
    if report_path:
        write_json(report_path, report, overwrite)
    if not report["passed"] and not force:
        from ..errors import ParityError

        raise ParityError(f"parity failed, output not written: {summary(report)}")
    return {"verified": True, "passed": report["passed"], "summary": summary(report),
            "max_abs": max((r.get("max_abs", float("inf")) for r in report["results"]),
                           default=None), "versions": report["versions"]}


@main.command()
@click.option("--paddle-dir", required=True, help="Paddle inference model to check against.")
@click.option("--torch", "torch_path", required=True, type=click.Path(),
              help="ptocr checkpoint to check.")
@click.option("--report", type=click.Path(dir_okay=False), help="Write the report JSON.")
@click.option("--overwrite", is_flag=True, help="Replace an existing report.")
@debug_option
def verify(paddle_dir, torch_path, report, overwrite):
    """Check an existing checkpoint against the Paddle model (exit 0 pass, 1 fail)."""
    from ..converter import formats
    from ..converter.checkpoint import load_model
    from ..converter.mapping import find_arch
    from ..converter.verify import format_table, verify as run_verify

    refuse_existing([report], overwrite)
    model = load_model(torch_path, fuse=False)  # the checkpoint as stored; verify fuses too
    spec = find_arch(model.ptocr_meta["arch"])
    weights = formats.read(paddle_dir)
    result = run_verify(weights, model, spec)
    click.echo(format_table(result))
    if report:
        write_json(report, result, overwrite)
    sys.exit(0 if result["passed"] else 1)


@main.command()
@click.argument("path")
@click.option("--all", "show_all", is_flag=True, help="List every tensor.")
@click.option("-n", "limit", default=20, show_default=True, help="How many tensors to list.")
@click.option("--submodel", help="Sub-model of a distillation checkpoint.")
@debug_option
def inspect(path, show_all, limit, submodel):
    """Show the format, tensors and matching architecture of Paddle weights."""
    from ..converter import formats
    from ..converter.mapping import match_archs

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
    """List the known architectures and the proof each has; `hf` marks the ones that go
    `--to transformers` (transformers has a class for them)."""
    from ..converter.hf import has_transformers
    from ..converter.mapping import list_archs

    specs = list_archs()
    width = max([len("proof")] + [len(s.proof) for s in specs.values()])
    click.echo(f"{'architecture':32} {'task':6} {'proof':{width}} {'hf':3} description")
    for spec in specs.values():
        mark = "hf" if has_transformers(spec) else "-"
        click.echo(f"{spec.name:32} {spec.task:6} {spec.proof:{width}} {mark:3} "
                   f"{spec.description}")
