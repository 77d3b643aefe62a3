"""RobustScanner (rec_r31_robustscanner).

Network: a paddle twin of PaddleOCR's ResNet31 + RobustScannerHead
(tests/paddle_robustscanner_twins.py) at a small configuration with the real 40-step loop
and dict90's 93 classes, every parameter and BN statistic random, exported by
paddle.jit.save as a PIR program with PaddleOCR's input spec ([image, [valid_ratio,
word_positions]], tools/export_model.py) and saved as a training .pdparams; both convert and
pass the verifier in float64. Paddle 3.3 cannot save LSTM networks as 2.x programs (its
legacy tracer fails on paddle.nn.LSTM, as for SAR), so no 2.x export is made.

Processing: PaddleOCR 2.10's own RobustScannerRecResizeImg and SARLabelDecode (rm_symbol, as
predict_rec configures it for RobustScanner) from the wheel.
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import paddle
import pytest
import torch
import yaml

import ptocr
from paddle_robustscanner_twins import ARCH, SMALL, PRobustScannerHead, build
from paddle_sar_twins import PRecModel, PResNet31
from ppocr_ref import ppocr_module
from ptocr.converter import formats
from ptocr.converter.convert import convert
from ptocr.converter.mapping import find_arch
from ptocr.converter.verify import verify
from ptocr.pipeline import model_inputs, read_image
from ptocr.pipeline.registry import build_postprocess, build_transforms, transform

TESTS = Path(__file__).resolve().parent
CLASSES = SMALL["classes"]
STEPS = SMALL["head"]["max_text_length"]
WORDS = ["words/en_word_1.png", "words/en_word_3.png", "words/en_word_5.png",
         "words/ch_word_2.jpg"]


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    root = tmp_path_factory.mktemp("robustscanner")
    res = subprocess.run([sys.executable, str(TESTS / "paddle_robustscanner_twins.py"),
                          str(root)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    model = build()  # the same seeded twin, for dynamic-mode comparisons
    model.set_state_dict(paddle.load(str(root / "model.pdparams")))
    # the shipped table at the twin's sizes, decoding STEPS steps (a user's own table, as
    # for a model trained with another Global.max_text_length)
    table = yaml.safe_load((Path(ptocr.__file__).resolve().parent / "mappings" /
                            f"{ARCH}.yaml").read_text())
    table["name"], table["aliases"] = "rec_r31_robustscanner_twin", []
    table["Architecture"]["Backbone"].update(SMALL["backbone"])
    table["Architecture"]["Head"].update(SMALL["head"])
    table["PreProcess"]["transform_ops"][0]["RobustScannerRecResizeImg"]["max_text_length"] = \
        STEPS
    (root / "twin.yaml").write_text(yaml.safe_dump(table, sort_keys=False))
    # a training config naming only what the weights cannot tell (the backbone's sizes, the
    # start and padding indices): the rest is read from the weights
    config = root / "robustscanner.yml"
    config.write_text(yaml.safe_dump({"Architecture": {
        "model_type": "rec", "algorithm": "RobustScanner", "Transform": None,
        "Backbone": {"name": "ResNet31", **SMALL["backbone"]},
        "Head": {"name": "RobustScannerHead", "start_idx": 91, "padding_idx": 92}}}))
    return {"model": model, "pir": root / "pir", "pdparams": root / "model.pdparams",
            "config": config, "table": root / "twin.yaml"}


@pytest.fixture(scope="module")
def pdparams_model(exports):
    return convert(exports["pdparams"], ARCH, config_path=exports["config"])


def word_batch(testdata, processing, words=WORDS):
    per = [model_inputs(processing, read_image(testdata / w)) for w in words]
    return [np.concatenate(parts) for parts in zip(*per)]


def run_twin(model, image, ratio, positions):
    return model(paddle.to_tensor(image),
                 [paddle.to_tensor(ratio), paddle.to_tensor(positions)]).numpy()


def test_pir_export_converts_and_verifies_in_float64(exports):
    weights = formats.read(exports["pir"])
    assert weights.format == "pir"
    spec = find_arch(str(exports["table"]))
    conv = convert(None, weights=weights, spec=spec)
    assert conv.report.method == "program order"
    assert conv.config["Head"]["out_channels"] == CLASSES  # read from the program
    report = verify(weights, conv.model, spec)
    assert report["passed"] and report["judged_in"] == "float64", report["results"]
    # a noise batch of two crops (valid ratios 0.45 and 1) + three words
    assert len(report["results"]) == 4
    assert max(r["float64"]["max_abs"] for r in report["results"]) < 1e-9
    assert max(r["max_abs"] for r in report["results"]) < 1e-5
    # the decoded index sequences (the fed-back greedy path) are identical
    assert all(r["argmax_equal"] for r in report["results"])


def test_training_pdparams_convert_by_name_and_match_paddle(exports, pdparams_model, testdata):
    conv = pdparams_model
    assert conv.report.method == "names"
    # inferred from the weights: classes, reduced channels, max_text_length
    head = conv.config["Head"]
    assert (head["out_channels"], head["enc_outchannles"], head["max_text_length"]) == (
        CLASSES, 16, STEPS)
    assert len(conv.report.ignored) == 16  # paddle's per-cell aliases of both 2-layer LSTMs
    image, ratio, positions = word_batch(testdata, find_arch(str(exports["table"])).processing)
    assert image.shape == (4, 3, 48, 160) and ratio.dtype == np.float32
    assert positions.dtype == np.int64 and positions.shape == (4, STEPS)
    assert ratio.min() < 0.6 and ratio.max() == 1.0  # narrow words mask the attention
    ref = run_twin(exports["model"], image, ratio, positions)
    with torch.inference_mode():
        out = conv.model(*map(torch.from_numpy, (image, ratio, positions))).numpy()
    assert out.shape == ref.shape == (4, STEPS, CLASSES - 1)
    assert np.array_equal(ref.argmax(-1), out.argmax(-1))
    assert np.abs(ref - out).max() < 1e-5


def test_valid_ratio_and_positions_change_the_output_as_in_paddle(exports, pdparams_model):
    """Both decoders mask columns past int(w * ratio + 0.5) (w = 40 here: ratios 0.3 ->
    12 columns, 0.5125 -> 21, 0.55 -> 22); the word positions are a real input."""
    model = pdparams_model.model
    x = np.random.RandomState(1).uniform(-1, 1, (3, 3, 48, 160)).astype(np.float32)
    ratios = np.array([1.0, 0.3, 0.5125], np.float32)
    positions = np.tile(np.arange(STEPS, dtype=np.int64), (3, 1))
    shifted = np.roll(positions, 1, axis=1)
    for r, p in ((ratios, positions), (ratios, shifted)):
        ref = run_twin(exports["model"], x, r, p)
        with torch.inference_mode():
            out = model(*map(torch.from_numpy, (x, r, p))).numpy()
        assert np.abs(ref - out).max() < 1e-5
    with torch.inference_mode():
        full = model(*map(torch.from_numpy, (x, np.ones(3, np.float32), positions))).numpy()
        masked = model(*map(torch.from_numpy, (x, ratios, positions))).numpy()
        moved = model(*map(torch.from_numpy, (x, ratios, shifted))).numpy()
    assert np.abs(full[0] - masked[0]).max() == 0 and np.abs(full[1] - masked[1]).max() > 1e-3
    assert np.abs(moved - masked).max() > 1e-3


def test_paddle_names_file_matches_the_full_size_twin():
    """tests/paddle_names/rec_r31_robustscanner.txt is the twin's state_dict at PaddleOCR's
    configuration (ResNet31 64..512, enc_outchannles 128, max_text_length 40, dict90)."""
    from test_paddle_names import NAMES_DIR

    with paddle.LazyGuard():  # names and shapes only: no initialisation of 46M parameters
        backbone = PResNet31(3)  # (paddle's lazy mode cannot build LSTMs: the head is built)
    model = PRecModel(backbone, PRobustScannerHead(CLASSES, 512, start_idx=91, padding_idx=92))
    want = [f"{k}\t{','.join(map(str, v.shape))}" for k, v in model.state_dict().items()]
    lines = [ln for ln in (NAMES_DIR / f"{ARCH}.txt").read_text().splitlines()
             if ln and not ln.startswith("#")]
    assert lines == want


# ---- processing against PaddleOCR 2.10's own operators

def test_robustscanner_resize_matches_ppocr(testdata):
    ours = build_transforms(find_arch(ARCH).processing["PreProcess"])
    ref_op = ppocr_module("ppocr.data.imaug.rec_img_aug").RobustScannerRecResizeImg(
        image_shape=[3, 48, 48, 160], max_text_length=40, width_downsample_ratio=0.25)
    ratios = set()
    for w in sorted(p.relative_to(testdata) for p in (testdata / "words").iterdir()):
        img = read_image(testdata / w)
        want = ref_op({"image": img.copy()})
        got = transform(ours, {"image": img.copy()})
        assert np.array_equal(want["image"], got["image"]), w
        assert np.float32(want["valid_ratio"]) == got["valid_ratio"]
        assert np.array_equal(want["word_positons"], got["word_positons"])
        assert got["word_positons"].dtype == want["word_positons"].dtype == np.int64
        assert got["model_inputs"] == ["image", "valid_ratio", "word_positons"]
        ratios.add(float(got["valid_ratio"]))
    assert len(ratios) >= 3


def test_decoding_of_the_network_output_matches_ppocr(exports, pdparams_model, testdata):
    """predict_rec's SARLabelDecode(rm_symbol=True) on the converted network's outputs for
    real words (dict90) gives PaddleOCR's strings and scores."""
    from ptocr.converter import dictionary

    spec = find_arch(ARCH)
    image, ratio, positions = word_batch(testdata, find_arch(str(exports["table"])).processing)
    with torch.inference_mode():
        probs = pdparams_model.model(*map(torch.from_numpy, (image, ratio, positions))).numpy()
    # sharpen so reads are neither all-empty nor all-<UKN>: decoding is what is tested here
    probs[:, :, :90] += np.random.RandomState(0).uniform(0, 1, probs[:, :, :90].shape)
    probs[0, 5, 91] += 3  # <BOS/EOS> after five characters in the first row
    assert probs.shape == (4, STEPS, CLASSES - 1)
    chars = dictionary.resolve(spec, pdparams_model.weights, CLASSES)
    path = Path(ptocr.__file__).resolve().parent / "dicts" / spec.dictionary
    ref = ppocr_module("ppocr.postprocess.rec_postprocess").SARLabelDecode(
        character_dict_path=str(path), use_space_char=False, rm_symbol=True)
    want = ref(probs)
    ours = build_postprocess(spec.processing["PostProcess"], character_dict=chars["character_dict"],
                             use_space_char=chars["use_space_char"])([probs])
    assert [t for t, _ in ours] == [t for t, _ in want]
    assert any(t for t, _ in ours) and len(ours[0][0]) <= 5
    np.testing.assert_allclose([s for _, s in ours], [s for _, s in want], rtol=1e-6)


# ---- usable: ptocr ocr / ptocr.OCR with a RobustScanner checkpoint

def test_ocr_reads_with_a_robustscanner_checkpoint(exports, testdata, tmp_path, cli, models):
    from test_sar import save_checkpoint
    from ptocr.converter.verify import PaddleModule

    det = save_checkpoint(convert(models("PP-OCRv4_mobile_det"), "PP-OCRv4_mobile_det"),
                          tmp_path / "det.pth")
    conv = convert(exports["pir"], str(exports["table"]))
    rec = save_checkpoint(conv, tmp_path / "rs.pth")
    out = tmp_path / "ocr.json"
    res = cli("ocr", testdata / "images" / "11.jpg", "--det", det, "--rec", rec,
              "--drop-score", "0", "--json", out)
    assert res.returncode == 0, res.stderr
    lines = json.loads(out.read_text())["11.jpg"]
    assert lines and any(line["text"] for line in lines)
    for line in lines:  # rm_symbol: lower-case letters and digits only (dict90 has no CJK)
        assert set(line["text"]) <= set("abcdefghijklmnopqrstuvwxyz0123456789")
    # Paddle's own program inside the same pipeline (image, valid_ratio, word positions fed
    # as PaddleOCR feeds them) reads the same
    model = ptocr.load(rec)
    crops = [read_image(testdata / w) for w in WORDS]
    ours = ptocr.OCR(det=None, rec=model).recognize(crops)
    paddle_rec = PaddleModule(exports["pir"], "rec", meta=model.ptocr_meta)
    theirs = ptocr.OCR(det=None, rec=paddle_rec).recognize(crops)
    assert [t for t, _ in ours] == [t for t, _ in theirs]
    np.testing.assert_allclose([s for _, s in ours], [s for _, s in theirs], atol=1e-5)
