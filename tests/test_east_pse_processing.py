"""EAST and PSE post-processing against PaddleOCR 2.10's own code (the paddleocr wheel's
ppocr/postprocess/east_postprocess.py with its pure-python locality_aware_nms.py, and
pse_postprocess/ with its cython pse.pyx built here with Cython), on synthetic maps with
known text regions. The maps of the converted networks on real images are compared in
test_east_pse_dbpp_networks.py."""

import importlib.util
import shutil
import subprocess
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import pytest

from ppocr_ref import ppocr_module, wheel_root
from ptocr.pipeline.postprocess.east import EASTPostProcess, locality_aware_nms
from ptocr.pipeline.postprocess.pse import PSEPostProcess, pse


# ---- references

def paddleocr_east():
    """PaddleOCR's east_postprocess module with lanms declared absent: its check_install
    would pip install lanms-nova; without lanms it runs the pure-python nms_locality, the
    reference. The stand-in utility module is only seen while the module loads."""
    name = "ppocr.postprocess.east_postprocess"
    if name in sys.modules:
        return sys.modules[name]
    for pkg in ("ppocr", "ppocr.utils"):
        if pkg not in sys.modules:
            module = types.ModuleType(pkg)
            module.__path__ = [str(wheel_root().joinpath(*pkg.split(".")))]
            sys.modules[pkg] = module
    utility = types.ModuleType("ppocr.utils.utility")

    def check_install(module, package):
        raise ImportError(f"{module} is not installed here")

    utility.check_install = check_install
    saved = sys.modules.get("ppocr.utils.utility")
    sys.modules["ppocr.utils.utility"] = utility
    try:
        return ppocr_module(name)
    finally:
        if saved is not None:
            sys.modules["ppocr.utils.utility"] = saved
        else:
            del sys.modules["ppocr.utils.utility"]


_PSE = {}


def paddleocr_pse():
    """(PaddleOCR's pse_postprocess module, its cython pse function): pse.pyx from the wheel
    compiled once per session in a temp folder (its package __init__ would compile in the
    wheel's own folder with setup.py build_ext)."""
    if _PSE:
        return _PSE["module"], _PSE["pse"]
    build = Path(tempfile.mkdtemp(prefix="ptocr-pse-build-"))
    src = wheel_root() / "ppocr" / "postprocess" / "pse_postprocess" / "pse"
    for name in ("pse.pyx", "setup.py"):
        shutil.copy(src / name, build / name)
    res = subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace"], cwd=build,
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    spec = importlib.util.spec_from_file_location("pse", next(build.glob("pse*.so")))
    ext = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ext)
    pkg = types.ModuleType("ppocr.postprocess.pse_postprocess.pse")
    pkg.pse = ext.pse
    sys.modules["ppocr.postprocess.pse_postprocess.pse"] = pkg
    _PSE.update(module=ppocr_module("ppocr.postprocess.pse_postprocess.pse_postprocess"),
                pse=ext.pse)
    shutil.rmtree(build, ignore_errors=True)
    return _PSE["module"], _PSE["pse"]


@pytest.fixture(scope="module")
def ref_east():
    return paddleocr_east()


@pytest.fixture(scope="module")
def ref_pse():
    return paddleocr_pse()


# ---- EAST

def east_maps(quads, h=64, w=96, seed=0, noise=2.0):
    """Score and geometry maps (1/4 resolution) for quads in input pixels: each pixel inside
    a quad scores high and points at its corners (origin - corner), with noise."""
    import cv2

    rng = np.random.RandomState(seed)
    score = rng.uniform(0, 0.5, (1, h, w)).astype(np.float32)
    geo = rng.uniform(-50, 50, (8, h, w)).astype(np.float32)
    for quad in quads:
        quad = np.asarray(quad, np.float32)
        mask = np.zeros((h, w), np.uint8)
        cv2.fillPoly(mask, [np.round(quad / 4).astype(np.int32)], 1)
        ys, xs = np.nonzero(mask)
        score[0, ys, xs] = rng.uniform(0.82, 1.0, len(ys))
        origin = np.stack([xs * 4, ys * 4], 1).astype(np.float32)
        for k in range(4):
            geo[2 * k: 2 * k + 2, ys, xs] = (origin - quad[k]).T + rng.normal(0, noise, (2, len(ys)))
    return score, geo


EAST_CASES = {
    "two lines": [[[20, 20], [180, 24], [178, 60], [18, 56]],
                  [[30, 120], [300, 120], [300, 170], [30, 170]]],
    "rotated and touching": [[[60, 40], [200, 90], [185, 130], [45, 80]],
                             [[200, 140], [360, 140], [360, 180], [200, 180]],
                             [[205, 185], [360, 185], [360, 230], [205, 230]]],
    "none above threshold": [],
}


@pytest.mark.parametrize("case", list(EAST_CASES))
@pytest.mark.parametrize("ratio", [(1.0, 1.0), (0.5, 0.8)])
def test_east_equals_paddleocr(ref_east, case, ratio):
    score, geo = east_maps(EAST_CASES[case], seed=len(case))
    shape = np.array([[int(256 / ratio[0]), int(384 / ratio[1]), ratio[0], ratio[1]]])
    params = dict(score_thresh=0.8, cover_thresh=0.1, nms_thresh=0.2)
    ref = ref_east.EASTPostProcess(**params)({"f_score": score[None], "f_geo": geo[None]}, shape)
    ours = EASTPostProcess(**params)([geo[None], score[None]], shape)
    ref_pts = np.array(ref[0]["points"]).reshape(-1, 4, 2)
    assert len(ref_pts) == len(EAST_CASES[case])  # the synthetic texts are found
    assert ours[0]["points"].shape == ref_pts.shape
    assert np.abs(ours[0]["points"] - ref_pts).max(initial=0) <= 1
    assert len(ours[0]["scores"]) == len(ref_pts)


def test_locality_aware_nms_equals_paddleocr(ref_east):
    """Random overlapping quads in row order: same merges, same survivors."""
    nms_ref = ppocr_module("ppocr.postprocess.locality_aware_nms").nms_locality
    rng = np.random.RandomState(3)
    base = np.array([[0, 0], [40, 0], [40, 12], [0, 12]], np.float64)
    boxes = []
    for i in range(60):
        quad = base + rng.uniform(0, 60, (1, 2)) + rng.normal(0, 3, (4, 2))
        boxes.append(np.append(quad.reshape(-1), rng.uniform(0.5, 1)))
    boxes = np.array(boxes)
    boxes = boxes[np.argsort(boxes[:, 1])]
    for thresh in (0.2, 0.5):
        ref = nms_ref(boxes.copy(), thresh)
        ours = locality_aware_nms(boxes.copy(), thresh)
        assert ours.shape == ref.shape and len(ref) > 1
        np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=1e-9)


# ---- PSE

def pse_maps(regions, k=7, h=40, w=60, seed=0):
    """Logit maps at 1/4 resolution: each region (x0, y0, x1, y1) has nested kernels shrinking
    by one pixel per side and kernel; noise elsewhere."""
    rng = np.random.RandomState(seed)
    maps = rng.uniform(-4, -0.5, (k, h, w)).astype(np.float32)
    for x0, y0, x1, y1 in regions:
        for i in range(k):
            s = i
            if x0 + s < x1 - s and y0 + s // 2 < y1 - s // 2:
                maps[i, y0 + s // 2: y1 - s // 2, x0 + s: x1 - s] = rng.uniform(1.5, 5)
    return maps


PSE_CASES = {
    "separate": [(4, 4, 30, 14), (8, 22, 50, 34)],
    "touching": [(4, 4, 30, 16), (30, 4, 56, 16), (4, 16, 56, 28)],  # contested pixels
    "tiny": [(2, 2, 5, 4)],  # below min_area after upsampling? kept or dropped alike
}


@pytest.mark.parametrize("case", list(PSE_CASES))
@pytest.mark.parametrize("box_type", ["quad", "poly"])
def test_pse_equals_paddleocr(ref_pse, case, box_type):
    ref_mod, _ = ref_pse
    maps = pse_maps(PSE_CASES[case], seed=len(case))[None]
    shape = np.array([[200, 300, 160 / 200, 240 / 300]])
    params = dict(thresh=0, box_thresh=0.85, min_area=16, box_type=box_type, scale=1)
    ref = ref_mod.PSEPostProcess(**params)({"maps": maps}, shape)[0]
    ours = PSEPostProcess(**params)([maps], shape)[0]
    assert len(ours["points"]) == len(ref["points"])
    if case != "tiny":
        assert len(ref["points"]) == len(PSE_CASES[case])
    for a, b in zip(ours["points"], ref["points"]):
        assert a.shape == b.shape and np.abs(np.asarray(a) - np.asarray(b)).max() <= 1
    np.testing.assert_allclose(ours["scores"], ref["scores"], rtol=1e-5)


def test_pse_expansion_equals_the_cython_kernel(ref_pse):
    """Label maps of progressive scale expansion equal pse.pyx's pixel for pixel, on random
    blobby kernels where many pixels are contested."""
    import cv2

    _, ref_fn = ref_pse
    rng = np.random.RandomState(5)
    for trial in range(4):
        base = cv2.GaussianBlur(rng.uniform(0, 1, (90, 120)).astype(np.float32), (0, 0), 4)
        levels = np.quantile(base, np.linspace(0.45, 0.9, 6))
        kernels = np.stack([(base > t) for t in levels]).astype(np.uint8)
        for min_area in (0, 10):
            ref = ref_fn(kernels.copy(), min_area)
            ours = pse(kernels.copy(), min_area)
            assert ref.max() > 1
            np.testing.assert_array_equal(ours, ref)
