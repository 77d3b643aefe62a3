"""The OCR system on converted checkpoints against PaddleOCR on the same models and images.

PP-OCRv4 reference (tests/reference/ppocrv4_paddleocr.json): made by PaddleOCR's own pipeline,
the official `paddleocr` 2.10.0 package from PyPI (PaddleOCR class = predict_system's
TextSystem) with paddlepaddle 3.3.1, running the official PP-OCRv4 mobile det/rec and v2.0 cls
inference models on ../shared/testdata/images; regenerate with scripts/make_ocr_reference.py.

PP-OCRv5: paddleocr 2.10 cannot load PIR (inference.json) models — it looks for
inference.pdmodel and tries to download — so the v5 reference is Paddle Inference running the
official det and rec programs inside our pipeline, computed in the test.
"""

import json

import numpy as np
import pytest
import torch

import ptocr
from ptocr.converter.verify import PaddleModule
from ptocr.pipeline import read_image

REFERENCE = __import__("pathlib").Path(__file__).parent / "reference" / "ppocrv4_paddleocr.json"


def same_lines(got, ref, name):
    assert [r["text"] for r in got] == [r["text"] for r in ref], name
    for a, b in zip(got, ref):
        assert np.abs(np.array(a["box"]) - np.array(b["box"])).max() <= 1, (name, a, b)
        assert abs(a["score"] - b["score"]) <= 1e-3, (name, a, b)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, models):
    from conftest import run_cli

    out = tmp_path_factory.mktemp("ocr")
    paths = {}
    for arch in ("PP-OCRv4_mobile_det", "PP-OCRv4_mobile_rec", "ch_ppocr_mobile_v2.0_cls",
                 "PP-OCRv5_mobile_det", "PP-OCRv5_mobile_rec"):
        paths[arch] = out / f"{arch}.pth"
        res = run_cli("convert", "--arch", arch, "--paddle-dir", models(arch), "--out",
                      paths[arch], "--no-verify")
        assert res.returncode == 0, res.stderr
    return paths


def test_cli_matches_paddleocr_on_all_images(checkpoints, testdata, tmp_path, cli):
    out = tmp_path / "ocr.json"
    res = cli("ocr", testdata / "images", "--det", checkpoints["PP-OCRv4_mobile_det"],
              "--rec", checkpoints["PP-OCRv4_mobile_rec"], "--cls",
              checkpoints["ch_ppocr_mobile_v2.0_cls"], "--json", out, "--vis-dir",
              tmp_path / "vis")
    assert res.returncode == 0, res.stderr
    got = json.loads(out.read_text(encoding="utf-8"))
    ref = json.loads(REFERENCE.read_text(encoding="utf-8"))
    assert set(got) == set(ref) and len(ref) == 9
    for name in ref:
        same_lines(got[name], ref[name], name)
    assert sum(len(v) for v in ref.values()) > 100
    assert len(list((tmp_path / "vis").glob("*_ocr.jpg"))) == 9


def test_python_api_accepts_paths_and_arrays(checkpoints, testdata):
    ocr = ptocr.OCR(det=checkpoints["PP-OCRv4_mobile_det"],
                    rec=checkpoints["PP-OCRv4_mobile_rec"],
                    cls=checkpoints["ch_ppocr_mobile_v2.0_cls"])
    path = testdata / "images" / "img_12.jpg"
    by_path, by_array = ocr(path), ocr(read_image(path))
    assert by_path == by_array and by_path
    ref = json.loads(REFERENCE.read_text(encoding="utf-8"))["img_12.jpg"]
    same_lines(by_path, ref, "img_12.jpg")
    with pytest.raises(TypeError):
        ptocr.OCR(det=checkpoints["PP-OCRv4_mobile_det"],
                  rec=checkpoints["PP-OCRv4_mobile_rec"], det_db_thres=0.2)


def test_unreadable_images_are_skipped_not_fatal(checkpoints, testdata, tmp_path, cli):
    (tmp_path / "broken.png").write_bytes(b"\x89PNG nonsense")
    out = tmp_path / "o.json"
    res = cli("ocr", tmp_path / "broken.png", testdata / "images" / "1.jpg", "--det",
              checkpoints["PP-OCRv4_mobile_det"], "--rec", checkpoints["PP-OCRv4_mobile_rec"],
              "--json", out)
    assert res.returncode == 1
    assert "broken.png" in res.stderr and "skipped" in res.stderr
    assert list(json.loads(out.read_text(encoding="utf-8"))) == ["1.jpg"]


def test_ppocrv5_matches_paddle_inference_in_the_same_pipeline(checkpoints, models, testdata):
    rec = ptocr.load(checkpoints["PP-OCRv5_mobile_rec"])
    ours = ptocr.OCR(det=checkpoints["PP-OCRv5_mobile_det"], rec=rec)
    # same dictionary (from the model's inference.yml) for both sides
    paddle_rec = PaddleModule(models("PP-OCRv5_mobile_rec"), "rec", rec.ptocr_meta)
    det_meta = ptocr.load(checkpoints["PP-OCRv5_mobile_det"]).ptocr_meta  # same processing
    reference = ptocr.OCR(det=PaddleModule(models("PP-OCRv5_mobile_det"), "det", det_meta),
                          rec=paddle_rec)
    total = 0
    for name in ("11.jpg", "img_12.jpg", "japan_2.jpg", "french_0.jpg"):
        path = testdata / "images" / name
        got, ref = ours(path), reference(path)
        same_lines(got, ref, name)
        total += len(ref)
    assert total > 30
