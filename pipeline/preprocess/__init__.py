"""Pre-processing operators, registered under PaddleOCR's class names (ppocr/data/imaug/).
Every module in this package registers its operators on import; one module per family."""

import importlib
import pkgutil

from .image import read_image  # noqa: F401

for _info in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_info.name}")
