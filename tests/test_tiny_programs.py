"""Small inference programs that paddle itself saves in the test, in both program formats
(2.x .pdmodel with .info, and 3.x PIR .json), for a tiny test architecture with Linear and
LayerNorm layers: conversion, parity, and localisation of a deliberately wrong mapping."""

import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

from ptocr.converter import formats, mapping
from ptocr.converter.convert import convert
from ptocr.converter.mapping import ArchSpec
from ptocr.converter.verify import verify
from ptocr.models.registry import REGISTRIES

EXPORT = textwrap.dedent('''
    import os, sys
    if sys.argv[2] == "pdmodel":
        os.environ["FLAGS_enable_pir_api"] = "0"
    import paddle
    from paddle import nn
    import paddle.nn.functional as F

    class TinyTestNet(nn.Layer):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2D(3, 8, 3, padding=1)
            self.bn = nn.BatchNorm2D(8)
            self.fc1 = nn.Linear(8, 8)
            self.norm = nn.LayerNorm(8, epsilon=1e-6)
            self.fc2 = nn.Linear(8, 4)

        def forward(self, x):
            x = F.relu(self.bn(self.conv(x)))
            x = paddle.flatten(F.adaptive_avg_pool2d(x, 1), 1)
            return F.softmax(self.fc2(self.norm(F.hardswish(self.fc1(x)))), axis=-1)

    class Model(nn.Layer):
        def __init__(self):
            super().__init__()
            self.backbone = TinyTestNet()

        def forward(self, x):
            return self.backbone(x)

    paddle.seed(7)
    model = Model()
    for name, p in model.named_parameters():
        p.set_value(paddle.uniform(p.shape, min=-1.0, max=1.0))
    model.backbone.bn._mean.set_value(paddle.uniform([8], min=-0.5, max=0.5))
    model.backbone.bn._variance.set_value(paddle.uniform([8], min=0.5, max=1.5))
    model.eval()
    spec = [paddle.static.InputSpec([None, 3, 16, 16], "float32", "x")]
    paddle.jit.save(model, sys.argv[1], input_spec=spec)
''')


class TinyTestNet(nn.Module):
    def __init__(self, **_):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.fc1 = nn.Linear(8, 8)
        self.norm = nn.LayerNorm(8, eps=1e-6)
        self.fc2 = nn.Linear(8, 4)

    def forward(self, x):
        x = torch.relu(self.bn(self.conv(x)))
        x = torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)
        x = nn.functional.hardswish(self.fc1(x))
        return torch.softmax(self.fc2(self.norm(x)), dim=-1)


@pytest.fixture(scope="module", autouse=True)
def registered():
    REGISTRIES["Backbone"]["TinyTestNet"] = TinyTestNet
    yield
    del REGISTRIES["Backbone"]["TinyTestNet"]


SPEC = ArchSpec(name="tiny-test", task="cls",
                architecture={"model_type": "cls", "Backbone": {"name": "TinyTestNet"}},
                inputs={"shapes": [[1, 3, 16, 16], [3, 3, 16, 16]]})


@pytest.fixture(scope="module", params=["pdmodel", "pir"])
def exported(request, tmp_path_factory):
    prefix = tmp_path_factory.mktemp(request.param) / "inference"
    script = prefix.parent / "export.py"
    script.write_text(EXPORT)
    res = subprocess.run([sys.executable, str(script), str(prefix), request.param],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    return request.param, prefix.parent


def test_paddle_saved_program_converts_and_verifies(exported):
    fmt, path = exported
    weights = formats.read(path)
    assert weights.format == fmt
    assert weights.structured == (fmt == "pdmodel")  # PIR carries no structured names
    conv = convert(None, weights=weights, spec=SPEC)
    assert conv.report.method == ("names" if fmt == "pdmodel" else "program order")
    report = verify(weights, conv.model, SPEC, images=False)
    assert report["passed"], report["results"]
    assert max(r["max_abs"] for r in report["results"]) < 1e-6


def test_untransposed_linear_is_caught_and_localised(exported, monkeypatch):
    fmt, path = exported
    real = mapping.to_torch_layout

    def forgets_fc1(array, owner, name):  # a mapping bug: one square Linear not transposed
        return array if name.endswith("fc1.weight") else real(array, owner, name)

    monkeypatch.setattr(mapping, "to_torch_layout", forgets_fc1)
    weights = formats.read(path)
    conv = convert(None, weights=weights, spec=SPEC)
    report = verify(weights, conv.model, SPEC, images=False)
    assert not report["passed"]
    # both forms name the module (PIR: intermediates fetched from its float64 rewrite)
    assert report["first_divergence"]["module"] == "backbone.fc1"
    assert report["first_divergence"]["type"] == "Linear"
