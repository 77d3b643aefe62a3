"""Negative controls: the float64 verifier refuses each kind of wrong mapping, applied to real
official models where the layer exists (ch_ppocr_mobile_v2.0_cls: BN, hardsigmoid SE, conv;
PP-OCRv4_mobile_rec: square Linear, LayerNorm), and to small paddle-saved programs for the two
layer no official model here has (a bilinear interpolation), while passing
the correct conversion on the same inputs. Every refusal names the first diverging module.
The programs are Paddle 2.x (the form whose intermediates the localiser fetches).

LSTM gate order: no official model in .cache has an LSTM and paddle 3.3 cannot save an LSTM
network as a 2.x program (jit.save: "Unknown place type"), so the control runs on the PIR
program paddle saves for PaddleOCR's CRNN (rec_crnn_mv3: rec MobileNetV3 large x0.5 + BiLSTM
96 + CTCHead, the twins of test_tps_attention / test_resnet_family); a PIR program's
intermediates are fetched from its float64 rewrite to name the diverging module."""

import subprocess
import sys
import textwrap
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ptocr.converter import formats
from ptocr.converter.convert import convert
from ptocr.converter.mapping import ArchSpec, find_arch
from ptocr.converter.verify import verify
from ptocr.models.layers import PaddleHardsigmoid
from ptocr.models.registry import REGISTRIES

FIGURES = {}  # control -> figure that caught it (printed for the README table)


def real(models, arch, shape):
    spec = replace(find_arch(arch), inputs={"shapes": [shape]})
    weights = formats.read(models(arch))
    return weights, spec


def check(name, weights, spec, model, expect_module=None):
    report = verify(weights, model, spec, images=False)
    row = report["results"][0]
    FIGURES[name] = (row["float64"]["max_abs"], row["max_abs"], report.get("first_divergence"))
    print(name, FIGURES[name])
    assert report["judged_in"] == "float64"
    assert not report["passed"], row
    assert row["float64"]["max_abs"] > report["tolerance"]["float64_max_abs"]
    div = report["first_divergence"]
    assert div is not None, "no first diverging module"
    if expect_module:
        assert div["module"].startswith(expect_module), div
    return report


@pytest.fixture(scope="module")
def cls(models):
    weights, spec = real(models, "ch_ppocr_mobile_v2.0_cls", [1, 3, 48, 192])
    conv = convert(None, weights=weights, spec=spec)
    report = verify(weights, conv.model, spec, images=False)
    assert report["passed"] and report["judged_in"] == "float64", report["results"]
    assert report["results"][0]["float64"]["max_abs"] < 1e-8
    return weights, spec, conv.model


@pytest.fixture(scope="module")
def rec(models):
    weights, spec = real(models, "PP-OCRv4_mobile_rec", [1, 3, 48, 80])
    conv = convert(None, weights=weights, spec=spec)
    report = verify(weights, conv.model, spec, images=False)
    assert report["passed"] and report["judged_in"] == "float64", report["results"]
    return weights, spec, conv.model


def mutated(model, fn):
    import copy

    model = copy.deepcopy(model)
    fn(model)
    return model


def test_batchnorm_statistics_swapped(cls):
    weights, spec, model = cls
    bns = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)]
    a, b = next((x, y) for i, x in enumerate(bns) for y in bns[i + 1:]
                if x[1].num_features == y[1].num_features)

    def swap(m):
        ma, mb = m.get_submodule(a[0]), m.get_submodule(b[0])
        for buf in ("running_mean", "running_var"):
            ta, tb = getattr(ma, buf).clone(), getattr(mb, buf).clone()
            getattr(ma, buf).copy_(tb)
            getattr(mb, buf).copy_(ta)

    check("BN running statistics swapped (cls)", weights, spec, mutated(model, swap), a[0])


def test_batchnorm_epsilon_off_by_10x(cls):
    weights, spec, model = cls
    name = "backbone.blocks.5.expand_conv.bn"

    def eps(m):
        m.get_submodule(name).eps *= 10

    check("BN epsilon x10 (cls)", weights, spec, mutated(model, eps), name)


def test_torch_default_hardsigmoid(cls):
    weights, spec, model = cls

    def torch_default(m):
        for n, mod in list(m.named_modules()):
            if isinstance(mod, PaddleHardsigmoid):
                parent, attr = n.rsplit(".", 1)
                setattr(m.get_submodule(parent), attr, nn.Hardsigmoid())

    # the hardsigmoid has no parameters: the first module after the first SE diverges
    check("hardsigmoid with torch's constants (cls)", weights, spec,
          mutated(model, torch_default), "backbone.blocks.0.")


def test_conv_padding_off_by_one(cls):
    weights, spec, model = cls
    name = "backbone.blocks.2.bottleneck_conv.conv"

    def shift(m):  # pad 2 before, 0 after instead of 1 and 1: same output size
        conv = m.get_submodule(name)
        conv.padding = (0, 0)
        conv.register_forward_pre_hook(lambda _m, args: (F.pad(args[0], (2, 0, 2, 0)),))

    check("conv padding off by one, output size kept (cls)", weights, spec,
          mutated(model, shift), name)


def test_square_linear_not_transposed(rec):
    weights, spec, model = rec
    name = "head.ctc_encoder.encoder.svtr_block.0.mixer.proj"

    def transpose(m):
        w = m.get_submodule(name).weight
        w.data = w.data.t().contiguous()

    check("square Linear not transposed (v4 rec)", weights, spec, mutated(model, transpose), name)


def test_layernorm_epsilon_off_by_10x(rec):
    weights, spec, model = rec
    name = "head.ctc_encoder.encoder.svtr_block.1.norm2"

    def eps(m):
        m.get_submodule(name).eps *= 10

    check("LayerNorm epsilon x10 (v4 rec)", weights, spec, mutated(model, eps), name)


# ---- layers no official model here has: small programs paddle saves (2.x)

EXPORT = textwrap.dedent('''
    import os, sys
    os.environ["FLAGS_enable_pir_api"] = "0"
    import paddle
    from paddle import nn
    import paddle.nn.functional as F

    class Body(nn.Layer):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2D(3, 8, 3, padding=1)
            self.bn = nn.BatchNorm2D(8)
            self.conv2 = nn.Conv2D(8, 1, 3, padding=1)

        def forward(self, x):
            x = F.relu(self.bn(self.conv1(x)))
            # paddle's interpolate default, as PaddleOCR's necks call it: align_corners=False
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
            return self.conv2(x)

    class Model(nn.Layer):
        def __init__(self):
            super().__init__()
            self.backbone = Body()

        def forward(self, x):
            return self.backbone(x)

    paddle.seed(3)
    model = Model()
    for name, p in model.named_parameters():
        p.set_value(paddle.uniform(p.shape, min=-0.5, max=0.5))
    model.backbone.bn._mean.set_value(paddle.uniform([8], min=-0.5, max=0.5))
    model.backbone.bn._variance.set_value(paddle.uniform([8], min=0.5, max=1.5))
    model.eval()
    spec = [paddle.static.InputSpec([None, 3, 12, 12], "float32", "x")]
    paddle.jit.save(model, sys.argv[1], input_spec=spec)
''')


class TinyBody(nn.Module):
    def __init__(self, align_corners=False, **_):
        super().__init__()
        self.align_corners = align_corners
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 1, 3, padding=1)

    def forward(self, x):
        x = torch.relu(self.bn(self.conv1(x)))
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=self.align_corners)
        return self.conv2(x)


@pytest.fixture(scope="module")
def interp(tmp_path_factory):
    REGISTRIES["Backbone"]["NegativeControlBody"] = TinyBody
    prefix = tmp_path_factory.mktemp("interp") / "inference"
    script = prefix.parent / "export.py"
    script.write_text(EXPORT)
    res = subprocess.run([sys.executable, str(script), str(prefix)], capture_output=True,
                         text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    yield formats.read(prefix.parent)
    del REGISTRIES["Backbone"]["NegativeControlBody"]


INTERP_SPEC = ArchSpec(name="negative-control-interp", task="det", architecture={
    "model_type": "det", "Backbone": {"name": "NegativeControlBody"}},
    inputs={"shapes": [[2, 3, 12, 12]]})


def test_interpolation_align_corners_flipped(interp):
    weights = interp
    conv = convert(None, weights=weights, spec=INTERP_SPEC)
    assert verify(weights, conv.model, INTERP_SPEC, images=False)["passed"]

    def flip(m):
        m.backbone.align_corners = True

    # the interpolation has no parameters: the conv after it is the first to diverge
    check("bilinear interpolation align_corners flipped", weights, INTERP_SPEC,
          mutated(conv.model, flip), "backbone.conv2")


def test_without_float64_the_report_says_so_and_fp32_decides(interp, monkeypatch):
    from ptocr.converter import float64
    from ptocr.converter.verify import format_table

    def no_kernel(weights, inputs):
        raise float64.Float64Unavailable("kernel not found: conv2d float64")

    monkeypatch.setattr(float64, "paddle_float64", no_kernel)
    conv = convert(None, weights=interp, spec=INTERP_SPEC)
    report = verify(interp, conv.model, INTERP_SPEC, images=False)
    assert report["passed"] and report["judged_in"] == "float32"
    assert "float64" not in report["results"][0]
    assert "float64 evaluation unavailable (kernel not found" in format_table(report)


# ---- LSTM gate order: PaddleOCR's CRNN as a PIR program paddle saves

@pytest.fixture(scope="module")
def crnn(tmp_path_factory):
    import paddle

    from paddle_ref import PaddleModel
    from test_resnet_family import PCTCHead, PSequenceEncoder, randomize_unit
    from test_tps_attention import PRecMobileNetV3

    paddle.seed(4)
    model = randomize_unit(PaddleModel(PRecMobileNetV3(), PSequenceEncoder(480, "rnn", 96),
                                       PCTCHead(192, 37)), seed=4)
    model.eval()
    prefix = tmp_path_factory.mktemp("crnn") / "inference"
    spec_in = [paddle.static.InputSpec([None, 3, 32, None], "float32", "x")]
    paddle.jit.save(model, str(prefix), input_spec=spec_in)
    weights = formats.read(prefix.parent)
    assert weights.format == "pir" and any(op.type == "rnn" for op in weights.program.ops)
    spec = replace(find_arch("rec_crnn_mv3"), inputs={"shapes": [[2, 3, 32, 100]]})
    conv = convert(None, weights=weights, spec=spec)
    report = verify(weights, conv.model, spec, images=False)
    assert report["passed"] and report["judged_in"] == "float64", report["results"]
    FIGURES["LSTM correct (crnn)"] = report["results"][0]["float64"]["max_abs"]
    assert report["results"][0]["float64"]["max_abs"] < 1e-8
    return weights, spec


def test_lstm_gate_order_permuted_in_the_mapping(crnn, monkeypatch):
    from ptocr.converter import mapping

    weights, spec = crnn
    layout = mapping.to_torch_layout

    def forget_and_cell_swapped(array, owner, name):  # gates i, f, g, o -> i, g, f, o
        array = layout(array, owner, name)
        if owner is not nn.LSTM:
            return array
        i, f, g, o = np.split(array, 4, axis=0)
        return np.concatenate([i, g, f, o], axis=0)

    monkeypatch.setattr(mapping, "to_torch_layout", forget_and_cell_swapped)
    conv = convert(None, weights=weights, spec=spec)
    check("LSTM gate order permuted (crnn)", weights, spec, conv.model, "neck.encoder.lstm")
