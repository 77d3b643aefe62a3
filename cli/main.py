"""The ``ptocr`` command group: one-line errors, exit codes, --debug, shared helpers.

Command modules (convert, ocr, zoo, ...) add their commands to ``main``; they hold only click
code and call into converter/, pipeline/ and the zoo.
"""

import json
import traceback
from pathlib import Path

import click

from ..errors import PtocrError


class _Group(click.Group):
    """Turns ptocr's own errors into one line and an exit code; tracebacks only with --debug."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except PtocrError as exc:
            _fail(ctx, str(exc), exc.exit_code)
        except KeyboardInterrupt:
            _fail(ctx, "interrupted", 130)
        except BrokenPipeError:  # `ptocr archs | head`: the reader left; nothing to report
            import os
            import sys

            # stdout's pending bytes would raise again at exit: point it at /dev/null
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            ctx.exit(141)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as exc:  # a bug of ours: still one line unless --debug
            _fail(ctx, f"internal error: {type(exc).__name__}: {exc}", 1)


def _fail(ctx, message, code):
    if ctx.obj and ctx.obj.get("debug"):
        traceback.print_exc()
    click.echo(f"error: {message}", err=True)
    ctx.exit(code)


def debug_option(f):
    def callback(ctx, _param, value):
        if value:
            ctx.ensure_object(dict)["debug"] = True
        return value

    return click.option("--debug", is_flag=True, expose_value=False, callback=callback,
                        is_eager=True, help="Show tracebacks.")(f)


@click.group(cls=_Group)
@click.version_option(package_name="ptocr")
@debug_option
@click.pass_context
def main(ctx):
    """ptocr: PaddleOCR models in PyTorch, proven equal to Paddle."""
    ctx.ensure_object(dict)




def write_json(path, data, overwrite):
    from ..converter.checkpoint import write_bytes_atomic

    write_bytes_atomic(path, json.dumps(data, indent=2, ensure_ascii=False).encode("utf-8"),
                       overwrite=overwrite)


def refuse_existing(paths, overwrite):
    """Check outputs before any work: existing files are kept unless --overwrite."""
    for path in paths:
        if path and Path(path).exists() and not overwrite:
            raise PtocrError(f"{path}: already exists (pass --overwrite to replace it)")


class ImageRun:
    """Iterate ``(path, image, result)`` over images for a batch command: an image that cannot
    be read, that the system rejects (ValueError) or whose result is empty is reported on one
    ``warning:`` line and counted in ``failed``; the others go on."""

    def __init__(self, images, system, desc, empty_message=None, empty_errors=()):
        self.images, self.system, self.desc = images, system, desc
        self.empty_message, self.empty_errors = empty_message, tuple(empty_errors)
        self.failed = 0

    def _skip(self, message):
        import sys

        from tqdm import tqdm

        self.failed += 1
        tqdm.write(f"warning: {message}; skipped", file=sys.stderr)

    def __iter__(self):
        from tqdm import tqdm

        from ..pipeline.preprocess import read_image

        for path in tqdm(self.images, desc=self.desc, unit="img", disable=None):
            try:
                img = read_image(path)
                res = self.system(img)
            except self.empty_errors as exc:
                self._skip(f"{path}: {exc}")
                continue
            except (ValueError, OSError) as exc:
                self._skip(str(exc))
                continue
            if self.empty_message and not res:
                self._skip(f"{path}: {self.empty_message}")
                continue
            yield path, img, res
