"""The OCR system with a detector whose post-processor gives polygons (box_type poly): the
polygons are only clipped (predict_det's filter_tag_det_res_only_clip), cropped by their
minimum-area rectangle (PaddleOCR's get_minarea_rect_crop, compared with the wheel's own),
recognised, and the JSON gives the polygon points. The detector is SAST's table processing
on a stand-in network whose maps mark a word drawn on a canvas; the recogniser is the real
PP-OCRv4 model."""

import copy

import numpy as np
import pytest
import torch

import ptocr
from ppocr_ref import ppocr_module
from ptocr.converter.mapping import find_arch
from ptocr.pipeline.boxes import clip_det_polys, get_minarea_rect_crop


def canvas():
    import cv2

    img = np.full((200, 400, 3), 255, np.uint8)
    cv2.putText(img, "HELLO", (60, 120), cv2.FONT_HERSHEY_SIMPLEX, 2.0, (0, 0, 0), 5)
    return img  # the word spans about x 60..290, y 75..122


class WordMaps(torch.nn.Module):
    """Stands in for a SAST network: maps (f_border, f_score, f_tco, f_tvo) at 1/4 of the
    input marking one text instance, the box (x0, y0, x1, y1) in pixels of the 400x200
    canvas (the input is the canvas resized)."""

    def __init__(self, box):
        super().__init__()
        self.box = box
        meta_spec = copy.deepcopy(find_arch("det_r50_vd_sast_totaltext"))
        self.ptocr_meta = {"processing": meta_spec.processing, "arch": meta_spec.name,
                           "extra": {"task": "det"}}

    def forward(self, x):
        n, _, h, w = x.shape
        sx, sy = w / 400.0 / 4, h / 200.0 / 4
        h, w = h // 4, w // 4
        x0, y0, x1, y1 = self.box[0] * sx, self.box[1] * sy, self.box[2] * sx, self.box[3] * sy
        border, score = torch.zeros(n, 4, h, w), torch.zeros(n, 1, h, w)
        tco, tvo = torch.zeros(n, 2, h, w), torch.zeros(n, 8, h, w)
        quad = torch.tensor([x0, y0, x1, y0, x1, y1, x0, y1])
        cy = (y0 + y1) / 2
        for y in range(int(cy - (y1 - y0) / 6), int(cy + (y1 - y0) / 6) + 1):
            for xx in range(int(x0) + 1, int(x1)):
                score[:, 0, y, xx] = 0.9
                tvo[:, :, y, xx] = torch.tensor([xx, y] * 4) - quad
                tco[:, :, y, xx] = torch.tensor([xx - (x0 + x1) / 2, y - cy])
                border[:, :, y, xx] = torch.tensor([y0 - y, 0.0, y1 - y, 0.0])
        return border, score, tco, tvo


@pytest.fixture(scope="module")
def rec(tmp_path_factory, models):
    from conftest import run_cli

    out = tmp_path_factory.mktemp("rec") / "rec.pth"
    res = run_cli("convert", "--arch", "PP-OCRv4_mobile_rec", "--paddle-dir",
                  models("PP-OCRv4_mobile_rec"), "--out", out, "--no-verify")
    assert res.returncode == 0, res.stderr
    return out


def test_polygon_detector_in_the_ocr_system(rec):
    ocr = ptocr.OCR(det=WordMaps((60, 75, 290, 122)), rec=rec)
    assert ocr.polygons  # the totaltext table's SAST decoder gives polygons
    lines = ocr(canvas())
    assert [l["text"].strip() for l in lines] == ["HELLO"]
    poly = np.array(lines[0]["box"])
    assert poly.shape == (12, 2)  # 6 points along each side
    assert poly[:, 0].min() <= 62 and poly[:, 0].max() >= 285
    assert 60 <= poly[:, 1].min() <= 80 and 118 <= poly[:, 1].max() <= 140
    # the same detector as quads (det_box_type quad): 4 corners, same word
    quad = ptocr.OCR(det=WordMaps((60, 75, 290, 122)), rec=rec, det_box_type="quad")
    assert not quad.polygons
    lines = quad(canvas())
    assert [l["text"].strip() for l in lines] == ["HELLO"] and np.array(lines[0]["box"]).shape == (4, 2)


def test_polygons_are_only_clipped():
    polys = [np.array([[-5, 3.7], [50.9, -2], [120, 40], [60, 90.2], [-1, 60]], np.float32)]
    (got,) = clip_det_polys(polys, 80, 100)
    assert got.tolist() == [[0, 3], [50, 0], [99, 40], [60, 79], [0, 60]]
    tiny = [np.array([[1, 1], [2, 1], [2, 2], [1, 2]], np.float32)]
    assert len(clip_det_polys(tiny, 80, 100)) == 1  # nothing is dropped for polygons


@pytest.mark.parametrize("seed", range(4))
def test_minarea_rect_crop_matches_paddleocr(seed, testdata):
    ppocr_module("ppocr.utils.logging")
    ref = ppocr_module("tools.infer.utility").get_minarea_rect_crop
    from ptocr.pipeline import read_image

    img = read_image(testdata / "images" / "11.jpg")
    rng = np.random.RandomState(seed)
    centre = rng.uniform(100, 300, 2)
    angle = rng.uniform(-0.6, 0.6)
    t = np.linspace(0, 1, 6)
    along = np.stack([t * 160 - 80, 10 * np.sin(3 * t)], 1)
    top, bottom = along + [0, -15], (along + [0, 15])[::-1]
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    poly = (np.concatenate([top, bottom]) @ rot.T + centre).astype(np.float32)
    ours, theirs = get_minarea_rect_crop(img, poly), ref(img, poly)
    assert ours.shape == theirs.shape and np.array_equal(ours, theirs)


def test_settings_reach_every_operator_that_takes_them():
    """det_box_type (one CLI option) sets SAST's and FCE's decoders; scales parse as ints."""
    from ptocr.pipeline.options import split_options

    _, overrides = split_options({"det_box_type": "poly", "scales": "8,16", "alpha": "1.5",
                                  "det_sast_nms_thresh": 0.3})
    det = overrides["det"]
    assert det["SASTPostProcess"] == {"box_type": "poly", "nms_thresh": 0.3}
    assert det["FCEPostProcess"] == {"box_type": "poly", "scales": [8, 16], "alpha": 1.5}
    with pytest.raises(ValueError, match="integers"):
        split_options({"scales": "8,x"})


def test_cli_lists_the_new_tables_with_their_proof(cli):
    res = cli("archs")
    assert res.returncode == 0, res.stderr
    rows = {line.split()[0]: line for line in res.stdout.splitlines() if line.strip()}
    for arch in ("det_r50_vd_sast_icdar15", "det_r50_vd_sast_totaltext",
                 "det_r50_vd_dcn_fce_ctw"):
        assert "paddle twin" in rows[arch]
    res = cli("ocr", "--help")
    assert res.stdout.count("--det-box-type") == 1 and "--fourier-degree" in res.stdout
