"""The ``ptocr`` command line: click commands only, one module per command group."""

from .main import main
from . import convert, export, kie, models, ocr, structure, table, zoo  # noqa: F401,E402  (each adds its commands to main)

__all__ = ["main"]
