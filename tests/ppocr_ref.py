"""PaddleOCR's own processing code as a test reference: the `paddleocr==2.10.0` wheel from
PyPI, installed with --no-deps by `make install` (test extra). Its ppocr/ and ppstructure/
live inside the `paddleocr` package; their package __init__ files import every operator (and
with them scikit-image, albumentations, ...), so single modules are loaded from their files,
with their parent packages stood in by empty namespaces. Code no one here wrote."""

import importlib.util
import sys
import types
from pathlib import Path

import pytest


def wheel_root():
    spec = importlib.util.find_spec("paddleocr")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("the paddleocr==2.10.0 wheel (test reference) is not installed; "
                    "run `make install`")
    return Path(list(spec.submodule_search_locations)[0])


def ppocr_module(dotted):
    """Import e.g. 'ppocr.postprocess.db_postprocess' from the wheel, skipping the package
    __init__ files (their imports pull in every operator's dependencies)."""
    if dotted in sys.modules:
        return sys.modules[dotted]
    root = wheel_root()
    parts = dotted.split(".")
    for i in range(1, len(parts)):
        pkg = ".".join(parts[:i])
        if pkg not in sys.modules:
            module = types.ModuleType(pkg)
            module.__path__ = [str(root.joinpath(*parts[:i]))]
            sys.modules[pkg] = module
    path = root.joinpath(*parts[:-1], parts[-1] + ".py")
    if not path.is_file():
        path = root.joinpath(*parts, "__init__.py")
    spec = importlib.util.spec_from_file_location(dotted, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[dotted] = module
    spec.loader.exec_module(module)
    return module
