"""export: compiled and exported forms of a checkpoint, verified and recorded beside it."""

import click

from .main import debug_option, main


@main.command("export")
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", required=True,
              type=click.Choice(["torchscript", "exported", "aoti", "onnx"]),
              help="torchscript (torch.jit.trace), exported (torch.export .pt2), aoti "
              "(AOTInductor package, .pt2), onnx (torch.onnx dynamo exporter).")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Artifact file; "
              "its parity and source go to FILE.ptocr.json beside it.")
@click.option("--dynamic", is_flag=True, help="Symbolic batch and sizes: det H/W (multiples "
              "of 32), rec/cls width. Default: fixed to --shape.")
@click.option("--shape", help="Fixed input shape N,C,H,W (default: the table's first).")
@click.option("--paddle-dir", type=click.Path(), help="The Paddle model the checkpoint came "
              "from: the artifact is also compared with Paddle's program.")
@click.option("--threads", type=int, help="torch CPU threads.")
@click.option("--overwrite", is_flag=True, help="Replace existing outputs.")
@debug_option
def export_command(checkpoint, fmt, out, dynamic, shape, paddle_dir, threads, overwrite):
    """Export CHECKPOINT (a ptocr .pth/.safetensors) as FORMAT, verified against it."""
    import torch

    from ..converter.export import export
    from ..errors import PtocrError

    if threads:
        torch.set_num_threads(threads)
    dims = None
    if shape:
        try:
            dims = [int(v) for v in shape.split(",")]
        except ValueError:
            raise PtocrError(f"--shape {shape!r}: expected integers like 1,3,640,640") from None
    record = export(checkpoint, fmt, out, dynamic=dynamic, shape=dims, paddle_dir=paddle_dir,
                    overwrite=overwrite)
    click.echo(f"wrote {out} ({fmt}{', dynamic' if dynamic else ''}, "
               f"{record['size_bytes'] / 1e6:.1f} MB, {record['export_seconds']:.1f}s); "
               f"parity PASSED on {record['parity']['inputs']} inputs: "
               f"{record['parity']['summary']}")
