"""zoo: fetch, convert and verify the official models of the manifest."""

import sys
from pathlib import Path

import click

from .main import debug_option, main


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
@debug_option
def zoo(select, jobs, cache, out_dir, manifest, no_verify, timeout):
    """Fetch, convert and verify the official models; exit 1 if a fetched model failed."""
    from ..converter import zoo as zoo_mod

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
