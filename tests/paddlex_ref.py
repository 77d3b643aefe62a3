"""PaddleX's own inference post-processing as a test reference: the `paddlex==3.7.2` wheel,
installed with --no-deps by `make install`. A processors module is loaded from its file alone;
the package modules it imports at the top (dependency checks, the benchmark decorator, the
common image readers and resizers the post-processing never calls) are stood in by
stubs, so only PaddleX's own post-processing code runs. Code no one here wrote."""

import importlib.util
import sys
import types
from pathlib import Path

import pytest


def _stub(name, **attrs):
    module = types.ModuleType(name)
    module.__path__ = []
    module.__dict__.update(attrs)
    sys.modules.setdefault(name, module)
    return sys.modules[name]


class _Benchmark:
    timeit = staticmethod(lambda obj: obj)
    timeit_with_options = staticmethod(lambda *a, **k: (lambda obj: obj))


def paddlex_processors(dotted="paddlex.inference.models.object_detection.processors"):
    """The processors module (e.g. object detection's, with DetPostProcess) of the wheel."""
    if dotted in sys.modules:
        return sys.modules[dotted]
    spec = importlib.util.find_spec("paddlex")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("the paddlex==3.7.2 wheel (test reference) is not installed; "
                    "run `make install`")
    root = Path(list(spec.submodule_search_locations)[0]).parent
    parts = dotted.split(".")
    for i in range(1, len(parts)):
        _stub(".".join(parts[:i]))
    _stub("paddlex.utils")
    _stub("paddlex.utils.deps", class_requires_deps=lambda *a: (lambda c: c),
          function_requires_deps=lambda *a: (lambda f: f), is_dep_available=lambda *a: True)
    _stub("paddlex.inference.common")
    _stub("paddlex.inference.common.reader", ReadImage=type("ReadImage", (), {}))
    _stub("paddlex.inference.utils")
    _stub("paddlex.inference.utils.benchmark", benchmark=_Benchmark)
    _stub("paddlex.inference.models.common", Normalize=type("Normalize", (), {}),
          Resize=type("Resize", (), {}))
    path = root.joinpath(*parts[:-1], parts[-1] + ".py")
    module_spec = importlib.util.spec_from_file_location(dotted, path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[dotted] = module
    module_spec.loader.exec_module(module)
    return module
