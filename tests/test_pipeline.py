"""Unit tests of the OCR pre/post-processing operators on small constructed inputs, and
against PaddleOCR's own operators (the paddleocr 2.10.0 wheel) on real images and maps."""

import numpy as np
import pytest

from ppocr_ref import ppocr_module
from ptocr.pipeline import read_image
from ptocr.pipeline.boxes import (filter_det_boxes, get_rotate_crop_image,
                                  order_points_clockwise, sorted_boxes)
from ptocr.pipeline.postprocess.db import DBPostProcess
from ptocr.pipeline.postprocess.rec import CTCLabelDecode
from ptocr.pipeline.preprocess.det import DetResizeForTest
from ptocr.pipeline.preprocess.rec import RecResizeImg, resize_norm_img


def db(pred, src_h, src_w, **kw):
    """DBPostProcess on one map: (boxes, scores)."""
    out = DBPostProcess(**kw)([pred[None, None]], np.array([[src_h, src_w, 1.0, 1.0]]))[0]
    return out["points"], out["scores"]


def test_ctc_decode_merges_repeats_drops_blanks_and_averages_kept():
    dec = CTCLabelDecode(["a", "b"], use_space_char=True)  # classes: blank a b ' '
    steps = [1, 1, 0, 1, 2, 3, 3, 0]
    probs = np.full((1, len(steps), 4), 0.01, dtype=np.float32)
    for t, c in enumerate(steps):
        probs[0, t, c] = 0.5 + 0.05 * t
    text, score = dec(probs)[0]
    assert text == "aab "
    kept = [0, 3, 4, 5]  # first of each run, blanks removed
    assert score == pytest.approx(np.mean([0.5 + 0.05 * t for t in kept]))
    assert dec(np.eye(4, dtype=np.float32)[[0, 0]][None])[0] == ("", 0.0)


def test_det_resize_rounds_to_multiples_of_32_under_the_limit():
    img = np.zeros((700, 1500, 3), np.uint8)
    data = DetResizeForTest(limit_side_len=960, limit_type="max")({"image": img})
    h, w, rh, rw = data["shape"]
    assert data["image"].shape == (448, 960, 3) and (h, w) == (700, 1500)
    assert rh == pytest.approx(448 / 700) and rw == pytest.approx(960 / 1500)
    small = DetResizeForTest(limit_side_len=960, limit_type="max")(
        {"image": np.zeros((20, 40, 3), np.uint8)})
    assert small["image"].shape == (32, 32, 3)


def test_rec_resize_keeps_aspect_and_pads_right():
    img = np.full((24, 48, 3), 255, np.uint8)
    x = resize_norm_img(img, (3, 48, 320))
    assert x.shape == (3, 48, 320)
    assert np.allclose(x[:, :, :96], 1.0) and np.allclose(x[:, :, 96:], 0.0)
    wide = resize_norm_img(np.zeros((10, 200, 3), np.uint8), (3, 48, 320), 20.0)
    assert wide.shape == (3, 48, 960)
    batch = RecResizeImg([3, 48, 320])({"image": img, "max_wh_ratio": 20.0})
    assert batch["image"].shape == (3, 48, 960)


def test_db_postprocess_finds_a_rectangle_and_unclips_it():
    pred = np.zeros((64, 128), np.float32)
    pred[20:36, 30:90] = 0.9
    boxes, scores = db(pred, 128, 256, unclip_ratio=1.5)  # source twice as big
    assert len(boxes) == 1 and scores[0] == pytest.approx(0.9, abs=0.05)
    box = boxes[0]
    xs, ys = box[:, 0], box[:, 1]
    # expanded beyond the blob (60x16 px at map scale, x2 to the source) on every side
    assert xs.min() < 60 and xs.max() > 178 and ys.min() < 40 and ys.max() > 70
    weak = db(pred, 128, 256, box_thresh=0.95)[0]
    assert len(weak) == 0
    slow = db(pred, 128, 256, score_mode="slow")[0]
    assert len(slow) == 1
    tiny = np.zeros((64, 128), np.float32)
    tiny[10:12, 10:12] = 1.0  # below min_size
    assert len(db(tiny, 64, 128)[0]) == 0
    with pytest.raises(ValueError):
        DBPostProcess(score_mode="medium")


def test_box_order_filter_and_reading_order():
    pts = np.array([[10, 20], [50, 22], [9, 40], [49, 41]], np.float32)
    ordered = order_points_clockwise(pts)
    assert ordered.tolist() == [[10, 20], [50, 22], [49, 41], [9, 40]]
    kept = filter_det_boxes([pts, np.array([[0, 0], [2, 0], [2, 2], [0, 2]], np.float32),
                             np.array([[-5, -5], [500, -5], [500, 30], [-5, 30]], np.float32)],
                            100, 200)
    assert len(kept) == 2 and kept[1][:, 0].max() == 199 and kept[1][:, 1].min() == 0
    line = lambda x, y: np.array([[x, y], [x + 20, y], [x + 20, y + 8], [x, y + 8]], np.float32)
    order = sorted_boxes([line(100, 50), line(10, 55), line(50, 10)])
    assert [int(b[0][0]) for b in order] == [50, 10, 100]  # same band: left to right


def test_rotate_crop_turns_tall_crops():
    img = np.zeros((100, 100, 3), np.uint8)
    flat = get_rotate_crop_image(img, [[10, 10], [60, 10], [60, 30], [10, 30]])
    assert flat.shape[:2] == (20, 50)
    tall = get_rotate_crop_image(img, [[10, 10], [30, 10], [30, 70], [10, 70]])
    assert tall.shape[:2] == (20, 60)


def test_unreadable_image_is_a_clear_error(tmp_path):
    bad = tmp_path / "x.jpg"
    bad.write_bytes(b"not an image")
    with pytest.raises(ValueError, match="not a readable image"):
        read_image(bad)


@pytest.mark.parametrize("params", [{"limit_side_len": 960, "limit_type": "max"},
                                    {"limit_side_len": 736, "limit_type": "min"},
                                    {"resize_long": 960}, {"image_shape": [640, 640]},
                                    {"image_shape": [640, 640], "keep_ratio": True}])
def test_det_resize_equals_paddleocr(testdata, params):
    ref_op = ppocr_module("ppocr.data.imaug.operators").DetResizeForTest(**params)
    for name in ("11.jpg", "img_12.jpg"):
        img = read_image(testdata / "images" / name)
        ours, ref = DetResizeForTest(**params)({"image": img}), ref_op({"image": img})
        assert np.array_equal(ours["image"], ref["image"])
        assert np.allclose(ours["shape"], ref["shape"])
    tiny = np.full((12, 20, 3), 200, np.uint8)  # padded to 32 px first
    assert np.array_equal(DetResizeForTest(**params)({"image": tiny})["image"],
                          ref_op({"image": tiny})["image"])


def test_normalize_equals_paddleocr(testdata):
    from ptocr.pipeline.preprocess.image import NormalizeImage

    ops = ppocr_module("ppocr.data.imaug.operators")
    params = dict(scale="1./255.", mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225],
                  order="hwc")
    img = read_image(testdata / "images" / "1.jpg")
    assert np.array_equal(NormalizeImage(**params)({"image": img})["image"],
                          ops.NormalizeImage(**params)({"image": img})["image"])


def test_db_and_ctc_equal_paddleocr(tmp_path):
    """PaddleOCR's DBPostProcess and CTCLabelDecode on the same synthetic maps/probabilities."""
    ref_db = ppocr_module("ppocr.postprocess.db_postprocess").DBPostProcess
    rng = np.random.RandomState(0)
    pred = np.zeros((1, 1, 320, 480), np.float32)
    for _ in range(12):  # text-like blobs with soft edges
        y, x = rng.randint(10, 290), rng.randint(10, 400)
        pred[0, 0, y: y + rng.randint(8, 25), x: x + rng.randint(20, 70)] = rng.uniform(.5, 1)
    pred += rng.uniform(0, 0.2, pred.shape).astype(np.float32)
    shape = np.array([[640, 960, 0.5, 0.5]])
    for kw in ({}, {"score_mode": "slow"}, {"use_dilation": True}, {"unclip_ratio": 1.5},
               {"box_thresh": 0.6, "thresh": 0.5}):
        ours = DBPostProcess(**kw)([pred], shape)[0]
        ref = ref_db(**kw)({"maps": pred}, shape)[0]
        assert len(ref["points"]) >= 5
        assert np.array_equal(np.array(ours["points"]), np.array(ref["points"]))
    ref_ctc = ppocr_module("ppocr.postprocess.rec_postprocess").CTCLabelDecode
    chars = [c for c in "abcdefghij"]
    dict_file = tmp_path / "dict.txt"  # PaddleOCR's decoder reads its dictionary from a file
    dict_file.write_text("\n".join(chars) + "\n", encoding="utf-8")
    probs = rng.dirichlet(np.ones(12) * 0.3, size=(4, 40)).astype(np.float32)
    ours = CTCLabelDecode(chars, use_space_char=True)([probs])
    ref = ref_ctc(str(dict_file), use_space_char=True)(probs)
    assert [t for t, _ in ours] == [t for t, _ in ref]
    assert np.allclose([s for _, s in ours], [s for _, s in ref], atol=1e-6)
