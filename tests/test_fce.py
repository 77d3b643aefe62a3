"""FCENet (det_r50_vd_dcn_fce_ctw): the whole network, ResNet50_vd with deformable conv v2
in its later stages, against a paddle twin written after PaddleOCR's modules
(tests/paddle_det_twins.py; the FPN at 32 channels, a width the config leaves free), exported
by paddle as a 2.x program and as PIR and saved as a training .pdparams, converted and
verified; FCEPostProcess against PaddleOCR 2.10's own fce_postprocess.py (and its poly_nms)
on synthetic maps encoding known contours and on the converted network's maps of a real
image."""

import copy

import numpy as np
import pytest

from det_twin_exports import export_twin, names_file_lines
from ppocr_ref import ppocr_module
from test_paddle_names import NAMES_DIR
from ptocr.converter import formats
from ptocr.converter.convert import convert
from ptocr.converter.mapping import find_arch
from ptocr.converter.verify import torch_outputs, verify
from ptocr.pipeline import read_image
from ptocr.pipeline.postprocess.fce import FCEPostProcess
from ptocr.pipeline.registry import build_transforms, transform

ARCH = "det_r50_vd_dcn_fce_ctw"


def small_spec():
    """The real table at the twin's FPN width, with verifier inputs small enough for the test
    budget (one random shape, one real image resized to a 128 side)."""
    spec = copy.deepcopy(find_arch(ARCH))
    spec.architecture["Neck"]["out_channels"] = 32
    spec.inputs = {"shapes": [[1, 3, 64, 96]], "images": ["images/11.jpg"]}
    spec.processing["PreProcess"]["transform_ops"][0] = {
        "DetResizeForTest": {"limit_side_len": 128, "limit_type": "max"}}
    return spec


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    return export_twin("fce", tmp_path_factory.mktemp("fce"))


@pytest.fixture(scope="module")
def converted(exports):
    weights = formats.read(exports["pdmodel"])
    return weights, convert(None, weights=weights, spec=small_spec())


@pytest.mark.parametrize("fmt", ["pdmodel", "pir"])
def test_paddle_export_converts_and_verifies(exports, converted, fmt, testdata):
    weights, conv = converted if fmt == "pdmodel" else (formats.read(exports[fmt]), None)
    assert weights.format == fmt
    conv = conv or convert(None, weights=weights, spec=small_spec())
    assert conv.report.method == ("names" if fmt == "pdmodel" else "program order")
    report = verify(weights, conv.model, small_spec())
    assert report["passed"], report["results"]
    assert len(report["results"]) == 6  # 3 levels x (random, real image)
    assert max(r["max_abs"] for r in report["results"]) < 1e-4


def test_training_checkpoint_converts_to_the_same_model(exports, converted):
    _, conv = converted
    weights = formats.read(exports["pdparams"])
    train = convert(None, weights=weights, spec=small_spec())
    ref, ours = conv.model.state_dict(), train.model.state_dict()
    assert ref.keys() == ours.keys()
    assert all(np.array_equal(ref[k].numpy(), ours[k].numpy()) for k in ref)


def test_recorded_names_are_the_twins(exports):
    """tests/paddle_names/det_r50_vd_dcn_fce_ctw.txt (the config's width, consumed by the
    full-size table in test_paddle_names) has exactly the twin's names, dcn convs included."""
    twin = [l.split("\t")[0] for l in names_file_lines(formats.read(exports["pdparams"]))]
    recorded = [l.split("\t")[0] for l in (NAMES_DIR / f"{ARCH}.txt").read_text().splitlines()
                if l and not l.startswith("#")]
    assert recorded == twin
    assert any(n.endswith("_conv.conv_dcn.weight") for n in twin)


# ---- post-processing against PaddleOCR's own code

def contour_coeffs(points, k):
    """Fourier coefficients c_{-k..k} of a closed contour (complex points)."""
    spectrum = np.fft.fft(points) / len(points)
    return np.concatenate([spectrum[-k:], spectrum[:k + 1]])


def synthetic_levels(k=5, seed=0):
    """Three levels (strides 8, 16, 32 of a 256x384 input): an elongated curved text in the
    first, a round one in the second, nothing in the third; each region pixel predicts the
    known contour (plus a little noise) relative to itself."""
    rng = np.random.RandomState(seed)
    t = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    texts = {0: (150 + 110 * np.cos(t)) + 1j * (70 + 25 * np.sin(t) + 10 * np.sin(2 * t)),
             1: (280 + 50 * np.cos(t)) + 1j * (180 + 45 * np.sin(t))}
    levels = []
    for i, stride in enumerate((8, 16, 32)):
        h, w = 256 // stride, 384 // stride
        tr = np.full((h, w), 0.05, np.float32)
        tcl = np.full((h, w), 0.05, np.float32)
        reg = np.zeros((2 * (2 * k + 1), h, w), np.float32)
        if i in texts:
            c = contour_coeffs(texts[i], k) / stride
            cx, cy = texts[i].real.mean() / stride, texts[i].imag.mean() / stride
            for y in range(h):
                for x in range(w):
                    if abs(x - cx) < 0.3 * (np.ptp(texts[i].real) / stride) and \
                            abs(y - cy) < 0.25 * (np.ptp(texts[i].imag) / stride):
                        tr[y, x], tcl[y, x] = 0.7 + 0.3 * rng.rand(), 0.6 + 0.4 * rng.rand()
                        own = c.copy()
                        own[k] -= x + 1j * y
                        own += (rng.randn(2 * k + 1) + 1j * rng.randn(2 * k + 1)) * 0.02
                        reg[:2 * k + 1, y, x], reg[2 * k + 1:, y, x] = own.real, own.imag
        levels.append(np.concatenate([np.stack([1 - tr, tr, 1 - tcl, tcl]), reg])[None])
    return levels


def ppocr_fce(levels, shape, **params):
    ppocr_module("ppocr.utils.poly_nms")
    ref = ppocr_module("ppocr.postprocess.fce_postprocess").FCEPostProcess(**params)
    return ref({f"level_{i}": v for i, v in enumerate(levels)}, shape)[0]


def assert_same(ours, ref):
    assert len(ours["points"]) == len(ref["points"]) > 0
    np.testing.assert_allclose(ours["points"], ref["points"], atol=1.0, rtol=0)
    np.testing.assert_allclose(ours["scores"], ref["scores"], atol=1e-6)


@pytest.mark.parametrize("params", [
    {"box_type": "poly"}, {"box_type": "quad"},
    {"box_type": "poly", "alpha": 1.2, "beta": 0.8, "num_reconstr_points": 20},
])
def test_fce_postprocess_matches_paddleocr_on_known_contours(params):
    levels = synthetic_levels()
    shape = np.array([[250, 380, 256 / 250, 384 / 380]])
    params = {"scales": [8, 16, 32], "fourier_degree": 5, **params}
    ours = FCEPostProcess(**params)(levels, shape)[0]
    ref = ppocr_fce(levels, shape, **params)
    assert len(ours["points"]) == 2
    assert_same(ours, ref)
    # the decoded contours are where the texts are (source coordinates)
    centres = sorted(np.mean(p, 0).round().tolist() for p in ours["points"])
    assert abs(centres[0][0] - 150 * 380 / 384) < 6 and abs(centres[1][0] - 280 * 380 / 384) < 6


def test_fce_postprocess_matches_paddleocr_on_network_maps(converted, testdata):
    """The converted network's maps of a real image; score_thr is set so that a few dozen
    pixels take part (random weights mark no real text)."""
    _, conv = converted
    pre = build_transforms(small_spec().processing["PreProcess"])
    data = transform(pre, {"image": read_image(testdata / "images" / "11.jpg")})
    levels = torch_outputs(conv.model, data["image"][None])
    scores = np.concatenate([(l[0, 1] * l[0, 3]).ravel() for l in levels])
    thr = float(np.sort(scores)[-40])
    shape = np.array([data["shape"]])
    for box_type in ("poly", "quad"):
        params = dict(scales=[8, 16, 32], fourier_degree=5, box_type=box_type, score_thr=thr)
        assert_same(FCEPostProcess(**params)(levels, shape)[0], ppocr_fce(levels, shape, **params))
