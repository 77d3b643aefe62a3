"""Unit tests of the OCR pre/post-processing steps on small constructed inputs."""

import numpy as np
import pytest

from ptocr.pipeline import preprocess as pp
from ptocr.pipeline.postprocess import (CTCLabelDecode, DBPostProcess, filter_det_boxes,
                                        get_rotate_crop_image, order_points_clockwise,
                                        sorted_boxes)


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
    x, (h, w, rh, rw) = pp.det_preprocess(img, 960, "max")
    assert x.shape == (1, 3, 448, 960) and (h, w) == (700, 1500)
    assert rh == pytest.approx(448 / 700) and rw == pytest.approx(960 / 1500)
    small = pp.det_preprocess(np.zeros((20, 40, 3), np.uint8))[0]
    assert small.shape == (1, 3, 32, 32)


def test_rec_resize_keeps_aspect_and_pads_right():
    img = np.full((24, 48, 3), 255, np.uint8)
    x = pp.rec_resize_norm(img, (3, 48, 320))
    assert x.shape == (3, 48, 320)
    assert np.allclose(x[:, :, :96], 1.0) and np.allclose(x[:, :, 96:], 0.0)
    wide = pp.rec_resize_norm(np.zeros((10, 200, 3), np.uint8), (3, 48, 320), 20.0)
    assert wide.shape == (3, 48, 960)


def test_db_postprocess_finds_a_rectangle_and_unclips_it():
    pred = np.zeros((64, 128), np.float32)
    pred[20:36, 30:90] = 0.9
    boxes, scores = DBPostProcess(unclip_ratio=1.5)(pred, 128, 256)  # source twice as big
    assert len(boxes) == 1 and scores[0] == pytest.approx(0.9, abs=0.05)
    box = boxes[0]
    xs, ys = box[:, 0], box[:, 1]
    # expanded beyond the blob (60x16 px at map scale, x2 to the source) on every side
    assert xs.min() < 60 and xs.max() > 178 and ys.min() < 40 and ys.max() > 70
    weak = DBPostProcess(box_thresh=0.95)(pred, 128, 256)[0]
    assert len(weak) == 0
    slow = DBPostProcess(score_mode="slow")(pred, 128, 256)[0]
    assert len(slow) == 1
    tiny = np.zeros((64, 128), np.float32)
    tiny[10:12, 10:12] = 1.0  # below min_size
    assert len(DBPostProcess()(tiny, 64, 128)[0]) == 0
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
        pp.read_image(bad)
