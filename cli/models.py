"""models: the model cache behind the default models (list, fetch, path)."""

import click

from ..errors import PtocrError
from .main import debug_option, main


@main.group()
def models():
    """The cached official models ($PTOCR_HOME/models, default ~/.cache/ptocr)."""


def _wanted(names, ocr_version, lang, use_angle_cls):
    from ..converter import models_cache

    if names:
        return list(names)
    chosen = models_cache.default_models(ocr_version, lang)
    return [chosen["det"], chosen["rec"]] + ([chosen["cls"]] if use_angle_cls else [])


@models.command(name="list")
@click.option("--langs", is_flag=True, help="List the language codes and their models.")
@debug_option
def list_models(langs):
    """Cached models, and the defaults of each OCR version."""
    from ..converter import checkpoint, models_cache

    if langs:
        for code in models_cache.languages():
            row = []
            for version in models_cache.versions():
                try:
                    row.append(f"{version}: {models_cache.default_models(version, code)['rec']}")
                except PtocrError:
                    continue
            click.echo(f"{code:12} " + ", ".join(row))
        return
    click.echo(f"cache: {models_cache.home() / 'models'}")
    entries = models_cache.cached()
    for name, path in entries:
        try:
            _, meta = checkpoint.read(path)
            parity = meta.get("parity") or {}
            state = (f"verified, max abs {parity['max_abs']:.1e}" if parity.get("verified")
                     else f"unverified ({parity.get('reason', 'no check')})")
        except PtocrError as exc:
            state = f"unreadable ({exc})"
        click.echo(f"  {name:32} {state}")
    if not entries:
        click.echo("  (empty: the first `ptocr ocr` or `ptocr models fetch` fills it)")
    click.echo("defaults (--ocr-version, --lang ch):")
    cached = {name for name, _ in entries}
    for version in models_cache.versions():
        chosen = models_cache.default_models(version, "ch")
        click.echo(f"  {version:10} " + ", ".join(
            f"{task} {name}{'' if name in cached else ' (not cached)'}"
            for task, name in chosen.items()))


@models.command()
@click.argument("names", nargs=-1)
@click.option("--ocr-version", help="Fetch the defaults of this version (default PP-OCRv5).")
@click.option("--lang", help="... and of this language (default ch).")
@click.option("--use-angle-cls", is_flag=True, help="Also the direction classifier.")
@click.option("--no-verify", is_flag=True, help="Skip the parity check against Paddle.")
@debug_option
def fetch(names, ocr_version, lang, use_angle_cls, no_verify):
    """Fetch, convert, verify and cache models (zoo names, or the defaults)."""
    from ..converter import models_cache

    for name in _wanted(names, ocr_version, lang, use_angle_cls):
        path = models_cache.ensure(name, verify=not no_verify)
        click.echo(f"{name}: {path}")


@models.command()
@click.argument("names", nargs=-1)
@click.option("--ocr-version", help="Paths of this version's defaults.")
@click.option("--lang", help="... and of this language.")
@click.option("--use-angle-cls", is_flag=True, help="Also the direction classifier.")
@debug_option
def path(names, ocr_version, lang, use_angle_cls):
    """Where the cached checkpoints are (exit 1 if one is not cached yet)."""
    from ..converter import models_cache

    missing = 0
    for name in _wanted(names, ocr_version, lang, use_angle_cls):
        p = models_cache.checkpoint_path(name)
        click.echo(str(p) if p.is_file() else f"{name}: not cached (would be {p})")
        missing += not p.is_file()
    if missing:
        raise PtocrError(f"{missing} model(s) not cached; `ptocr models fetch` fetches them",
                         exit_code=1)
