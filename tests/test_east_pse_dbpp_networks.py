"""EAST, PSENet and DB++ whole networks: Paddle twins (tests/paddle_twins_east_pse_dbpp.py,
written after PaddleOCR's modules, every parameter and BN statistic random) exported by
paddle itself as a 2.x program and as PIR and saved as a training .pdparams; `ptocr convert`
on each passes the verifier at 1e-4 (2.x: through the CLI, real images included); the
post-processing of our maps equals PaddleOCR 2.10's own code on Paddle's maps of real
images; the converted detectors run in `ptocr ocr`; bad input is one line."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import ptocr
from conftest import run_cli
from paddle_twins_east_pse_dbpp import SMALL
from ppocr_ref import ppocr_module
from test_east_pse_processing import paddleocr_east, paddleocr_pse
from ptocr.converter import formats
from ptocr.converter.convert import convert
from ptocr.converter.mapping import ArchSpec, find_arch
from ptocr.converter.verify import PaddleProgram, verify
from ptocr.pipeline import read_image

TWINS = Path(__file__).with_name("paddle_twins_east_pse_dbpp.py")
ARCHS = list(SMALL)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """{format: {arch: dir}}: one paddle process per program format (2.x needs its flag set
    before paddle is imported); the PIR process also writes the training .pdparams."""
    root = tmp_path_factory.mktemp("twins")
    procs = [subprocess.Popen([sys.executable, str(TWINS), str(root), fmt],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for fmt in ("pdmodel", "pir")]
    for proc in procs:
        _, err = proc.communicate()
        assert proc.returncode == 0, err[-3000:]
    return {fmt: {a: root / fmt / a for a in ARCHS} for fmt in ("pdmodel", "pir", "pdparams")}


def small_table(arch):
    """The real table with the small test Architecture, one random shape and one real image
    resized to a 320-px side (the table's processing otherwise) to keep the test quick."""
    table, architecture = SMALL[arch]
    data = yaml.safe_load((Path(ptocr.__file__).parent / "mappings" / f"{table}.yaml")
                          .read_text())
    data.update(name=f"{table}-test", aliases=[], Architecture=architecture,
                processing={"use": data["processing"]["use"],
                            "params": {"DetResizeForTest": {"limit_side_len": 320}}},
                inputs={"shapes": [[1, 3, 96, 128]], "images": ["images/11.jpg"]})
    return data


def small_spec(arch):
    return ArchSpec(**{**find_arch(SMALL[arch][0]).__dict__,
                       "architecture": SMALL[arch][1],
                       "inputs": {"shapes": [[1, 3, 96, 128]]}})


@pytest.fixture(scope="module")
def converted(exported, tmp_path_factory):
    """2.x programs through the real CLI (`--arch TABLE.yaml`, the real table with the
    test Architecture): {arch: pth}."""
    out = tmp_path_factory.mktemp("converted")
    result = {}
    for arch in ARCHS:
        table = out / f"{arch}.yaml"
        table.write_text(yaml.safe_dump(small_table(arch)))
        pth = out / f"{arch}.pth"
        res = run_cli("convert", "--arch", table, "--paddle-dir", exported["pdmodel"][arch],
                      "--out", pth, "--report", out / f"{arch}.json")
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
        result[arch] = pth
    return result


@pytest.mark.parametrize("arch", ARCHS)
def test_2x_program_converts_and_verifies_on_real_images(converted, arch):
    report = json.loads(converted[arch].with_suffix(".json").read_text())
    assert report["passed"] and report["program_format"] == "pdmodel"
    rows = report["results"]
    assert any(r["input"].startswith("image") for r in rows)
    n_out = 2 if arch == "east" else 1
    assert {r["output"] for r in rows} == set(range(n_out))
    for r in rows:  # every output within 1e-4 (EAST's geometry: / its 1600 scale)
        assert r["max_abs"] <= 1e-4 * r.get("scale", 1.0), r
    payload = torch.load(converted[arch], weights_only=True)
    assert payload["arch"] == SMALL[arch][0] + "-test"
    assert payload["processing"]["PostProcess"]["name"] == {
        "east": "EASTPostProcess", "pse": "PSEPostProcess", "dbpp": "DBPostProcess"}[arch]


@pytest.mark.parametrize("arch", ARCHS)
def test_pir_program_converts_and_verifies(exported, arch):
    weights = formats.read(exported["pir"][arch])
    assert weights.format == "pir" and not weights.structured
    spec = small_spec(arch)
    conv = convert(None, weights=weights, spec=spec)
    assert conv.report.method == "program order"
    report = verify(weights, conv.model, spec, images=False)
    assert report["passed"], report["results"]
    for r in report["results"]:
        assert r["max_abs"] <= 1e-4 * r.get("scale", 1.0)


@pytest.mark.parametrize("arch", ARCHS)
def test_training_pdparams_convert_to_the_same_model(exported, converted, arch):
    weights = formats.read(exported["pdparams"][arch] / "best_accuracy.pdparams")
    conv = convert(None, weights=weights, spec=small_spec(arch))
    ours = conv.model.state_dict()
    ref = ptocr.load(converted[arch]).state_dict()
    assert all(torch.equal(ours[k], ref[k]) for k in ref)
    extra = set(ours) - set(ref)  # DB's threshold branch: training checkpoints only
    assert all(k.startswith("head.thresh.") for k in extra) and bool(extra) == (arch == "dbpp")


# ---- post-processing of the converted networks' maps on real images

def _maps(converted, exported, arch, image):
    model = ptocr.load(converted[arch])
    processing = model.ptocr_meta["processing"]
    from ptocr.pipeline.registry import build_transforms, transform

    data = transform(build_transforms(processing["PreProcess"]), {"image": read_image(image)})
    x = data["image"][None]
    with torch.inference_mode():
        out = model(torch.from_numpy(x))
    ours = [o.numpy() for o in (out.values() if isinstance(out, dict) else [out])]
    ref = PaddleProgram(formats.read(exported["pdmodel"][arch]))(x)
    return ours, ref, np.array([data["shape"]]), processing


def test_east_boxes_on_real_image_maps_equal_paddleocr(converted, exported, testdata):
    ours, ref, shape, processing = _maps(converted, exported, "east", testdata / "images/11.jpg")
    # random weights: a threshold that keeps the top few hundred pixels of the score map
    thresh = float(np.quantile(ref[1], 0.997))
    params = dict(score_thresh=thresh, cover_thresh=0.1, nms_thresh=0.2)
    east_mod = paddleocr_east()
    expected = east_mod.EASTPostProcess(**params)({"f_geo": ref[0], "f_score": ref[1]}, shape)
    from ptocr.pipeline.postprocess.east import EASTPostProcess

    got = EASTPostProcess(**params)(ours, shape)
    exp_pts = np.array(expected[0]["points"]).reshape(-1, 4, 2)
    assert len(exp_pts) > 0
    assert got[0]["points"].shape == exp_pts.shape
    assert np.abs(got[0]["points"] - exp_pts).max() <= 1


def test_dbpp_boxes_on_real_image_maps_equal_paddleocr(converted, exported, testdata):
    ours, ref, shape, processing = _maps(converted, exported, "dbpp", testdata / "images/11.jpg")
    params = {k: v for k, v in processing["PostProcess"].items() if k != "name"}
    # random weights: stride-2 deconvs leave a checkerboard, so the threshold is lowered
    # from the top 20 % of the map until PaddleOCR's code finds regions; every one is kept
    ref_db = ppocr_module("ppocr.postprocess.db_postprocess").DBPostProcess
    for q in (0.8, 0.5, 0.3, 0.1):
        params.update(thresh=float(np.quantile(ref[0], q)), box_thresh=0.0)
        expected = ref_db(**params)({"maps": ref[0]}, shape)
        if len(expected[0]["points"]):
            break
    from ptocr.pipeline.postprocess.db import DBPostProcess

    got = DBPostProcess(**params)(ours, shape)
    exp_pts = np.array(expected[0]["points"]).reshape(-1, 4, 2)
    assert len(exp_pts) > 0 and got[0]["points"].shape == exp_pts.shape
    assert np.abs(got[0]["points"] - exp_pts).max() <= 1


def test_pse_regions_on_real_image_maps_equal_paddleocr(converted, exported, testdata):
    ours, ref, shape, processing = _maps(converted, exported, "pse", testdata / "images/11.jpg")
    params = {k: v for k, v in processing["PostProcess"].items() if k != "name"}
    # random weights: kernels from the map's own quantiles, regions scored loosely
    params.update(thresh=float(np.quantile(ref[0][:, -1], 0.5)), box_thresh=0.0)
    pse_mod = paddleocr_pse()[0]
    expected = pse_mod.PSEPostProcess(**params)({"maps": ref[0]}, shape)[0]
    from ptocr.pipeline.postprocess.pse import PSEPostProcess

    got = PSEPostProcess(**params)(ours, shape)[0]
    assert len(expected["points"]) > 0 and len(got["points"]) == len(expected["points"])
    for a, b in zip(got["points"], expected["points"]):
        assert np.abs(np.asarray(a) - np.asarray(b)).max() <= 1


# ---- the OCR system and bad input

def test_ocr_runs_with_each_detector(converted, models, testdata, tmp_path):
    rec = tmp_path / "rec.pth"
    res = run_cli("convert", "--arch", "PP-OCRv4_mobile_rec", "--paddle-dir",
                  models("PP-OCRv4_mobile_rec"), "--out", rec, "--no-verify")
    assert res.returncode == 0, res.stderr
    image = testdata / "images" / "11.jpg"
    for arch, extra in (("east", ["--det-east-score-thresh", "0.99"]),
                        ("pse", ["--det-pse-box-thresh", "0.5"]), ("dbpp", [])):
        out = tmp_path / f"{arch}.json"
        res = run_cli("ocr", image, "--det", converted[arch], "--rec", rec, "--json", out,
                      *extra)
        assert res.returncode == 0, res.stderr
        result = json.loads(out.read_text())
        assert isinstance(result, (list, dict))


def test_pse_polygons_through_the_cli_equal_paddleocr(converted, exported, models, testdata,
                                                     tmp_path):
    """`ptocr ocr IMG --det pse.pth --det-box-type poly`: the whole CLI with the converted
    PSE checkpoint gives PaddleOCR's PSEPostProcess poly outlines (its compiled pse.pyx) of
    Paddle's own maps of the image, clipped as predict_det clips polygons; every detected
    polygon is a line (drop score 0), in reading order."""
    image = testdata / "images" / "11.jpg"
    _, ref, shape, processing = _maps(converted, exported, "pse", image)
    params = {k: v for k, v in processing["PostProcess"].items() if k != "name"}
    # random weights: the kernel threshold is the first quantile of the smallest kernel at
    # which PaddleOCR finds several regions, some of them more than quads
    for q in (0.9, 0.95, 0.8, 0.97, 0.7, 0.99, 0.5):
        thresh = float(np.quantile(ref[0][:, -1], q))
        params.update(thresh=thresh, box_thresh=0.0, box_type="poly")
        expected = paddleocr_pse()[0].PSEPostProcess(**params)({"maps": ref[0]}, shape)[0]
        if len(expected["points"]) > 1 and any(len(p) > 4 for p in expected["points"]):
            break
    h, w = read_image(image).shape[:2]
    expected = [np.array([[int(min(max(x, 0), w - 1)), int(min(max(y, 0), h - 1))]
                          for x, y in np.asarray(p).reshape(-1, 2)]) for p in expected["points"]]
    rec = tmp_path / "rec.pth"
    res = run_cli("convert", "--arch", "PP-OCRv4_mobile_rec", "--paddle-dir",
                  models("PP-OCRv4_mobile_rec"), "--out", rec, "--no-verify")
    assert res.returncode == 0, res.stderr
    out = tmp_path / "pse.json"
    res = run_cli("ocr", image, "--det", converted["pse"], "--rec", rec, "--det-box-type",
                  "poly", "--det-pse-thresh", repr(thresh), "--det-pse-box-thresh", "0",
                  "--drop-score", "0", "--json", out)
    assert res.returncode == 0, res.stderr[-2000:]
    boxes = [np.array(line["box"]) for line in json.loads(out.read_text())["11.jpg"]]
    assert len(boxes) == len(expected) > 0
    assert any(len(b) > 4 for b in boxes)  # outlines, not quads
    unmatched = list(expected)
    for box in boxes:
        match = [i for i, e in enumerate(unmatched)
                 if e.shape == box.shape and np.abs(e - box).max() <= 1]
        assert match, f"polygon {box.tolist()} is not PaddleOCR's"
        unmatched.pop(match[0])


def test_bad_input_is_one_line_and_writes_nothing(converted, exported, testdata, tmp_path):
    out = tmp_path / "x.pth"
    dict_file = tmp_path / "dict.txt"
    dict_file.write_text("a\nb\n")
    res = run_cli("convert", "--arch", converted["east"].with_suffix(".yaml"), "--paddle-dir",
                  exported["pdmodel"]["east"], "--out", out, "--rec-dict", dict_file,
                  "--no-verify")
    assert res.returncode != 0 and not out.exists()
    assert res.stderr.strip().count("\n") == 0 and res.stderr.startswith("error:")
    assert "rec-dict" in res.stderr
    res = run_cli("ocr", testdata / "images" / "11.jpg", "--det", converted["east"], "--rec",
                  converted["pse"], "--json", tmp_path / "o.json")
    assert res.returncode != 0 and not (tmp_path / "o.json").exists()
    assert res.stderr.strip().count("\n") == 0 and res.stderr.startswith("error:")
