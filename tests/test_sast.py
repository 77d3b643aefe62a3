"""SAST (det_r50_vd_sast_icdar15 / _totaltext): the whole network against a paddle twin
written after PaddleOCR's modules (tests/paddle_det_twins.py), exported by paddle as a 2.x
program and as PIR and saved as a training .pdparams, converted through the real tables and
verified; the recorded parameter names are the twin's; SASTPostProcess against PaddleOCR
2.10's own sast_postprocess.py on synthetic maps with known text and on the converted
network's maps of a real image; the system's polygon path."""

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
from ptocr.pipeline.registry import build_transforms, transform
from ptocr.pipeline.postprocess.sast import SASTPostProcess

ARCHS = ["det_r50_vd_sast_icdar15", "det_r50_vd_sast_totaltext"]


def small_spec(name):
    """The real table with verifier inputs small enough for the test budget: one random
    shape and one real image through the table's own pre-processing at resize_long 256."""
    spec = copy.deepcopy(find_arch(name))
    spec.inputs = {"shapes": [[1, 3, 64, 128]], "images": ["images/11.jpg"]}
    spec.processing["PreProcess"]["transform_ops"][0] = {"DetResizeForTest": {"resize_long": 128}}
    return spec


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    return export_twin("sast", tmp_path_factory.mktemp("sast"))


@pytest.fixture(scope="module")
def converted(exports):
    weights = formats.read(exports["pdmodel"])
    return weights, convert(None, weights=weights, spec=small_spec(ARCHS[0]))


@pytest.mark.parametrize("fmt", ["pdmodel", "pir"])
def test_paddle_export_converts_and_verifies(exports, converted, fmt, testdata):
    weights, conv = converted if fmt == "pdmodel" else (formats.read(exports[fmt]), None)
    assert weights.format == fmt
    spec = small_spec(ARCHS[0])
    conv = conv or convert(None, weights=weights, spec=spec)
    assert conv.report.method == ("names" if fmt == "pdmodel" else "program order")
    report = verify(weights, conv.model, spec)
    assert report["passed"], report["results"]
    assert [r["input"] for r in report["results"]].count("image images/11.jpg") == 4
    assert max(r["max_abs"] for r in report["results"]) < 1e-4


def test_training_checkpoint_converts_to_the_same_model(exports, converted):
    _, conv = converted
    weights = formats.read(exports["pdparams"])
    for arch in ARCHS:
        train = convert(None, weights=weights, spec=find_arch(arch))
        assert train.report.mapped + len(train.report.ignored) >= len(weights.tensors)
        ref, ours = conv.model.state_dict(), train.model.state_dict()
        assert ref.keys() == ours.keys()
        assert all(np.array_equal(ref[k].numpy(), ours[k].numpy()) for k in ref)


def test_recorded_names_are_the_twins(exports):
    """tests/paddle_names/det_r50_vd_sast_*.txt are exactly the twin's state_dict (so the
    test of those files proves the full-size tables consume PaddleOCR's names)."""
    lines = names_file_lines(formats.read(exports["pdparams"]))
    for arch in ARCHS:
        recorded = [l for l in (NAMES_DIR / f"{arch}.txt").read_text().splitlines()
                    if l and not l.startswith("#")]
        assert recorded == lines


# ---- post-processing against PaddleOCR's own code

def synthetic_maps(seed=0, h=64, w=96):
    """Maps (N=1, CHW, PaddleOCR's output order) for three text instances with exactly known
    geometry in map coordinates: a horizontal line, a slanted one, a short word; vertex and
    centre offsets with a little noise so NMS merges votes."""
    rng = np.random.RandomState(seed)
    score = np.zeros((1, h, w), np.float32)
    tvo = np.zeros((8, h, w), np.float32)
    tco = np.zeros((2, h, w), np.float32)
    tbo = np.zeros((4, h, w), np.float32)
    texts = [  # quad corners (x, y) clockwise from top-left
        np.array([[8, 6], [60, 6], [60, 16], [8, 16]], np.float32),
        np.array([[12, 30], [70, 22], [72, 34], [14, 42]], np.float32),
        np.array([[70, 48], [90, 48], [90, 58], [70, 58]], np.float32),
    ]
    for quad in texts:
        centre = quad.mean(0)
        ys, xs = np.mgrid[0:h, 0:w]
        top = (quad[0] + quad[1]) / 2
        bottom = (quad[3] + quad[2]) / 2
        for y, x in zip(ys.ravel(), xs.ravel()):
            # centre-line region: the middle third of the quad's height
            u = np.dot([x - quad[0][0], y - quad[0][1]], quad[1] - quad[0]) / \
                np.dot(quad[1] - quad[0], quad[1] - quad[0])
            left = quad[0] + u * (quad[1] - quad[0])
            right = quad[3] + u * (quad[2] - quad[3])
            v = np.dot([x - left[0], y - left[1]], right - left) / np.dot(right - left,
                                                                           right - left)
            if not (0.05 <= u <= 0.95 and 0.35 <= v <= 0.65):
                continue
            score[0, y, x] = 0.6 + 0.4 * rng.rand()
            tvo[:, y, x] = (np.tile([x, y], 4) - quad.ravel()) + rng.uniform(-0.3, 0.3, 8)
            tco[:, y, x] = np.array([x, y]) - centre + rng.uniform(-0.3, 0.3, 2)
            tbo[:, y, x] = [left[1] - y, left[0] - x, right[1] - y, right[0] - x]
    del top, bottom
    return [tbo[None], score[None], tco[None], tvo[None]]


def ppocr_sast(preds, shape, **params):
    """PaddleOCR's polygons for image 0. Its __call__ is bypassed only for the final
    np.array(poly_list), which numpy >= 1.24 refuses when sample_pts_num=0 gives polygons
    of different lengths; detect_sast gets exactly the arguments __call__ gives it."""
    ref = ppocr_module("ppocr.postprocess.sast_postprocess").SASTPostProcess(**params)
    tbo, score, tco, tvo = (p[0].transpose(1, 2, 0) for p in preds)
    src_h, src_w, ratio_h, ratio_w = shape[0]
    return ref.detect_sast(score, tvo, tbo, tco, ratio_w, ratio_h, src_w, src_h,
                           shrink_ratio_of_width=ref.shrink_ratio_of_width,
                           tcl_map_thresh=ref.tcl_map_thresh, offset_expand=ref.expand_scale)


def assert_same_polys(ours, ref):
    assert len(ours) == len(ref) > 0
    for a, b in zip(ours, ref):
        assert np.asarray(a).shape == np.asarray(b).shape
        assert np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).max() <= 1.0


@pytest.mark.parametrize("params", [
    {"box_type": "quad"}, {"box_type": "poly"},
    {"sample_pts_num": 0, "expand_scale": 1.2, "shrink_ratio_of_width": 0.2},
    {"sample_pts_num": 4, "nms_thresh": 0.5, "tcl_map_thresh": 0.7},
])
def test_sast_postprocess_matches_paddleocr_on_known_text(params):
    preds = synthetic_maps()
    shape = np.array([[250, 380, 256 / 250, 384 / 380]])
    ours = SASTPostProcess(**params)(preds, shape)[0]["points"]
    ref_params = dict(params)
    box_type = ref_params.pop("box_type", None)
    if box_type:  # PaddleOCR's predict_det turns det_box_type into these three
        n, e, s = SASTPostProcess.BOX_TYPES[box_type]
        ref_params.update(sample_pts_num=n, expand_scale=e, shrink_ratio_of_width=s)
    ref = ppocr_sast(preds, shape, **ref_params)
    assert len(ours) == 3
    assert_same_polys(ours, ref)
    # the quads found are where the text is: each polygon's centre near a text centre
    centres = sorted(tuple(np.round(np.mean(p, 0) / [380 / 384, 250 / 256] / 4)) for p in ours)
    assert centres[0][0] == pytest.approx(34, abs=3)


def test_sast_postprocess_matches_paddleocr_on_network_maps(converted, testdata):
    """The converted network's maps of a real image. Random weights mark no real text: the
    TCL cut is set at the score map's 90th percentile (a hundred pixels vote) and the
    geometry maps (offsets of about half a pixel) are scaled by 10 so the voted quads have
    text-like sizes instead of all falling under the 5-pixel area filter."""
    _, conv = converted
    pre = build_transforms(small_spec(ARCHS[0]).processing["PreProcess"])
    data = transform(pre, {"image": read_image(testdata / "images" / "11.jpg")})
    border, score, tco, tvo = torch_outputs(conv.model, data["image"][None])
    preds = [border * 10, score, tco * 10, tvo * 10]
    thresh = float(np.percentile(score, 90))
    shape = np.array([data["shape"]])
    for box_type in ("quad", "poly"):
        ours = SASTPostProcess(box_type=box_type, tcl_map_thresh=thresh)(preds, shape)
        n, e, s = SASTPostProcess.BOX_TYPES[box_type]
        ref = ppocr_sast(preds, shape, tcl_map_thresh=thresh, sample_pts_num=n,
                         expand_scale=e, shrink_ratio_of_width=s)
        assert_same_polys(ours[0]["points"], ref)
