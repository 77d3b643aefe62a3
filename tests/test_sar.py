"""SAR (rec_r31_sar) and PP-OCRv3's MultiHead SAR branch (--full-head).

Network: paddle twins of PaddleOCR's ResNet31 and SARHead (tests/paddle_sar_twins.py) at a
small configuration, every parameter and BN statistic random, exported by paddle.jit.save as
a PIR program with PaddleOCR's input spec ([image, valid_ratio], tools/export_model.py) and
saved as a training .pdparams; both convert and pass the verifier in float64. Paddle 3.3
cannot save LSTM networks as 2.x programs (its legacy tracer fails on paddle.nn.LSTM), so no
2.x export is made.

Processing: PaddleOCR 2.10's own SARRecResizeImg and SARLabelDecode from the wheel, on real
word images and on head outputs.
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
from paddle_sar_twins import SMALL, PResNet31, PRecModel, PSARHead, build
from ppocr_ref import ppocr_module
from ptocr.converter import formats
from ptocr.converter.convert import convert
from ptocr.converter.mapping import find_arch
from ptocr.converter.verify import PaddleProgram, verify
from ptocr.pipeline import model_inputs, read_image
from ptocr.pipeline.registry import build_postprocess, build_transforms, transform

TESTS = Path(__file__).resolve().parent

ARCH = "rec_r31_sar"
CLASSES = 93  # dict90 + <UKN>, <BOS/EOS>, <PAD>
HEAD = SMALL[ARCH]["head"]
WORDS = ["words/en_word_1.png", "words/en_word_3.png", "words/en_word_5.png",
         "words/ch_word_2.jpg"]


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    root = tmp_path_factory.mktemp("sar")
    res = subprocess.run([sys.executable, str(TESTS / "paddle_sar_twins.py"), ARCH, str(root)],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    model = build(ARCH)  # the same seeded twin, for dynamic-mode comparisons
    model.set_state_dict(paddle.load(str(root / "model.pdparams")))
    config = root / "sar.yml"
    config.write_text(yaml.safe_dump({"Architecture": {
        "model_type": "rec", "algorithm": "SAR", "Transform": None,
        "Backbone": {"name": "ResNet31", **SMALL[ARCH]["backbone"]},
        "Head": {"name": "SARHead", **HEAD}}}))
    return {"model": model, "pir": root / "pir", "pdparams": root / "model.pdparams",
            "config": config}


def ptocr_dicts():
    from pathlib import Path

    return Path(ptocr.__file__).resolve().parent / "dicts"


def word_batch(testdata, processing, words=WORDS):
    per = [model_inputs(processing, read_image(testdata / w)) for w in words]
    return [np.concatenate(parts) for parts in zip(*per)]


def test_pir_export_converts_and_verifies_in_float64(exports):
    weights = formats.read(exports["pir"])
    assert weights.format == "pir"
    spec = find_arch(ARCH)
    conv = convert(None, weights=weights, spec=spec, config_path=exports["config"])
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


def test_training_pdparams_convert_and_match_paddle(exports, testdata):
    conv = convert(exports["pdparams"], ARCH, config_path=exports["config"])
    assert conv.report.method == "names"
    assert len(conv.report.ignored) == 16  # paddle's per-cell aliases of both LSTMs
    spec = find_arch(ARCH)
    image, ratio = word_batch(testdata, spec.processing)
    assert image.shape == (4, 3, 48, 160) and ratio.dtype == np.float32
    assert ratio.min() < 0.6 and ratio.max() == 1.0  # narrow words mask the attention
    ref = exports["model"](paddle.to_tensor(image), [paddle.to_tensor(ratio)]).numpy()
    with torch.inference_mode():
        out = conv.model(torch.from_numpy(image), torch.from_numpy(ratio)).numpy()
    assert out.shape == (4, HEAD["max_text_length"], CLASSES - 1)
    assert np.array_equal(ref.argmax(-1), out.argmax(-1))
    assert np.abs(ref - out).max() < 1e-5


def test_valid_ratio_changes_the_output_as_in_paddle(exports):
    """The mask and the encoder's valid step: ratios below 1 change the result, as Paddle's."""
    conv = convert(exports["pdparams"], ARCH, config_path=exports["config"])
    x = np.random.RandomState(1).uniform(-1, 1, (3, 3, 48, 160)).astype(np.float32)
    ratios = np.array([1.0, 0.3, 0.55], np.float32)
    ref = exports["model"](paddle.to_tensor(x), [paddle.to_tensor(ratios)]).numpy()
    with torch.inference_mode():
        out = conv.model(torch.from_numpy(x), torch.from_numpy(ratios)).numpy()
        full = conv.model(torch.from_numpy(x), torch.ones(3)).numpy()
    assert np.abs(ref - out).max() < 1e-5
    assert np.abs(full[0] - out[0]).max() == 0 and np.abs(full[1] - out[1]).max() > 1e-3


def test_paddle_names_file_matches_the_full_size_twin():
    """tests/paddle_names/rec_r31_sar.txt is the twin's state_dict at PaddleOCR's default
    sizes (ResNet31 64..512, SARHead enc 512, d_k 512, dict90)."""
    from test_paddle_names import NAMES_DIR

    model = PRecModel(PResNet31(3), PSARHead(512, CLASSES))
    want = [f"{k}\t{','.join(map(str, v.shape))}" for k, v in model.state_dict().items()]
    lines = [ln for ln in (NAMES_DIR / f"{ARCH}.txt").read_text().splitlines()
             if ln and not ln.startswith("#")]
    assert lines == want


# ---- processing against PaddleOCR 2.10's own operators

def test_sar_resize_matches_ppocr(testdata):
    spec = find_arch(ARCH)
    ours = build_transforms(spec.processing["PreProcess"])
    ref_op = ppocr_module("ppocr.data.imaug.rec_img_aug").SARRecResizeImg(
        image_shape=[3, 48, 48, 160], width_downsample_ratio=0.25)
    words = sorted(p.relative_to(testdata) for p in (testdata / "words").iterdir())
    ratios = set()
    for w in words:
        img = read_image(testdata / w)
        want = ref_op({"image": img.copy()})
        got = transform(ours, {"image": img.copy(), "max_wh_ratio": 9.0})
        assert np.array_equal(want["image"], got["image"]), w
        assert np.float32(want["valid_ratio"]) == got["valid_ratio"]
        assert got["model_inputs"] == ["image", "valid_ratio"]
        ratios.add(float(got["valid_ratio"]))
    assert len(ratios) >= 3  # narrow and wide words alike


@pytest.mark.parametrize("use_space,rm_symbol", [(False, False), (True, False), (False, True)])
def test_sar_label_decode_matches_ppocr(tmp_path, use_space, rm_symbol):
    chars = (tmp_path / "d.txt")
    chars.write_text((testdict := "\n".join(list("0123456789abcdefABC!?") + ["中"])) + "\n")
    lines = testdict.split("\n")
    n = len(lines) + use_space + 2  # + <UKN>, <BOS/EOS>; <PAD> is never predicted
    rng = np.random.RandomState(0)
    logits = rng.randn(7, 8, n).astype("float32") * 3
    logits[0, :, n - 1] += 30  # <BOS/EOS> at once: empty read, NaN score
    logits[1, 4, n - 1] += 30  # end after four characters
    logits[2, :, n - 2] += 30  # all <UKN>
    logits[3, 2, n - 2] += 30
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    ref = ppocr_module("ppocr.postprocess.rec_postprocess").SARLabelDecode(
        character_dict_path=str(chars), use_space_char=use_space, rm_symbol=rm_symbol)
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
        want = ref(probs)
    ours = build_postprocess({"name": "SARLabelDecode", "rm_symbol": rm_symbol},
                             character_dict=lines, use_space_char=use_space)([probs])
    assert [t for t, _ in ours] == [t for t, _ in want]
    np.testing.assert_allclose([s for _, s in ours], [s for _, s in want], rtol=1e-6)
    assert ours[0] == ("", ours[0][1]) and np.isnan(ours[0][1])


# ---- usable: ptocr ocr / ptocr.OCR with a SAR checkpoint; bad inputs

def save_checkpoint(conv, path):
    """What `ptocr convert` writes (dictionary, task, processing), without a subprocess."""
    from ptocr.converter import dictionary
    from ptocr.converter.checkpoint import save

    chars = dictionary.resolve(conv.spec, conv.weights,
                               getattr(conv.model.head, "out_channels", None))
    save(path, conv.model.state_dict(), {
        "arch": conv.spec.name, "config": conv.config, "processing": conv.processing,
        "extra": {"task": conv.spec.task, **(chars or {})}})
    return path


@pytest.fixture(scope="module")
def det_checkpoint(models, tmp_path_factory):
    return save_checkpoint(convert(models("PP-OCRv4_mobile_det"), "PP-OCRv4_mobile_det"),
                           tmp_path_factory.mktemp("det") / "det.pth")


def test_ocr_reads_with_a_sar_checkpoint(exports, det_checkpoint, testdata, tmp_path, cli):
    from ptocr.converter.verify import PaddleModule

    conv = convert(exports["pir"], ARCH, config_path=exports["config"])
    rec = save_checkpoint(conv, tmp_path / "sar.pth")
    out = tmp_path / "ocr.json"
    res = cli("ocr", testdata / "images" / "11.jpg", "--det", det_checkpoint, "--rec", rec,
              "--drop-score", "0", "--json", out)
    assert res.returncode == 0, res.stderr
    lines = json.loads(out.read_text())["11.jpg"]
    assert lines
    alphabet = set(ptocr_dicts().joinpath("dict90.txt").read_text().splitlines())
    for line in lines:
        text = line["text"].replace("<UKN>", "")
        assert set(text) <= alphabet  # SARLabelDecode's classes, special tokens dropped
    # the Python API reads the same, and Paddle's own program inside the same pipeline
    # (image and valid_ratio fed as PaddleOCR's predict_rec feeds them) reads the same
    model = ptocr.load(rec)
    got = ptocr.OCR(det=str(det_checkpoint), rec=model, drop_score=0.0)(
        testdata / "images" / "11.jpg")
    assert [g["text"] for g in got] == [line["text"] for line in lines]
    crops = [read_image(testdata / w) for w in WORDS]
    ours = ptocr.OCR(det=None, rec=model).recognize(crops)
    paddle_rec = PaddleModule(exports["pir"], "rec", meta=model.ptocr_meta)
    theirs = ptocr.OCR(det=None, rec=paddle_rec).recognize(crops)
    assert [t for t, _ in ours] == [t for t, _ in theirs]
    np.testing.assert_allclose([s for _, s in ours], [s for _, s in theirs], atol=1e-5)


def test_dictionary_that_does_not_fit_is_refused(exports, tmp_path, cli):
    bad = tmp_path / "d.txt"
    bad.write_text("\n".join("abcdefghijklmnopqrstuvwxyz0123456789") + "\n")
    out = tmp_path / "sar.pth"
    res = cli("convert", "--arch", ARCH, "--paddle-dir", exports["pir"], "--config",
              exports["config"], "--out", out, "--no-verify", "--rec-dict", bad)
    assert res.returncode == 2 and "3 special tokens" in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and not out.exists()


def test_empty_crop_is_one_line_error():
    from ptocr.pipeline.preprocess.rec_sar import resize_norm_img_sar

    with pytest.raises(ValueError, match="empty image"):
        resize_norm_img_sar(np.zeros((0, 5, 3), np.uint8), (3, 48, 48, 160))


# ---- PP-OCRv3's MultiHead SAR branch: ptocr convert --full-head

def test_full_head_keeps_the_pp_ocrv3_sar_branch_and_reads_as_paddle(tmp_path, testdata):
    """A PP-OCRv3 training checkpoint (PaddleOCR's recorded names; backbone and SAR branch
    from paddle twins, the CTC branch random) converts with --full-head; eval_branch 'sar'
    makes the model return what PaddleOCR's SARHead returns in eval mode on the same
    backbone features and valid ratios (what a program exported with the SAR head gives,
    cf. the exported SAR programs above); the default stays the MultiHead program's CTC
    output; without --full-head the branch is ignored as training-only."""
    from test_mv1e_lcnet_family import PMobileNetV1Enhance
    from test_paddle_names import NAMES_DIR, synthetic_weights
    from paddle_ref import randomize

    arch = "ch_PP-OCRv3_rec"
    sar_small = {"enc_dim": 32, "d_k": 16, "max_text_length": 5}
    paddle.seed(4)
    backbone = randomize(PMobileNetV1Enhance(0.5, [1, 2], "avg", [2, 2]), 4)
    sar = randomize(PSARHead(512, 6627, **sar_small), 5)
    tensors = {k: v for k, v in synthetic_weights(NAMES_DIR / f"{arch}.txt").tensors.items()
               if not k.startswith(("backbone.", "head.sar_head."))}
    tensors.update({f"backbone.{k}": v.numpy() for k, v in backbone.state_dict().items()})
    tensors.update({f"head.sar_head.{k}": v.numpy() for k, v in sar.state_dict().items()})
    ckpt = tmp_path / "train.pdparams"
    paddle.save({k: paddle.to_tensor(v) for k, v in tensors.items()}, str(ckpt))
    architecture = find_arch(arch).architecture
    architecture["Head"]["head_list"][1] = {"SARHead": sar_small}
    cfg = tmp_path / "train.yml"
    cfg.write_text(yaml.safe_dump({"Architecture": architecture}))

    plain = convert(ckpt, arch, config_path=cfg)
    assert plain.model.head.sar_head is None
    assert any(n.startswith("head.sar_head.") for n in plain.report.ignored)
    conv = convert(ckpt, arch, config_path=cfg, full_head=True)
    assert not [n for n in conv.report.ignored if not n.endswith(("weight_ih", "weight_hh",
                                                                  "bias_ih", "bias_hh"))]
    assert conv.config["Head"]["out_channels_list"]["SARLabelDecode"] == 6627
    path = save_checkpoint(conv, tmp_path / "full.pth")
    model = ptocr.load(path)

    processing = {"PreProcess": {"transform_ops": [
        {"SARRecResizeImg": {"image_shape": [3, 48, 48, 320]}}]}}
    image, ratio = word_batch(testdata, processing, WORDS[1:])
    assert ratio.min() < 1.0
    with torch.inference_mode():
        ctc = model(torch.from_numpy(image))
        model.head.eval_branch = "sar"
        out = model(torch.from_numpy(image), torch.from_numpy(ratio)).numpy()
    assert ctc.shape == (3, 40, 6625)  # the MultiHead program's only output
    feats = backbone(paddle.to_tensor(image))
    ref = sar(feats, [paddle.to_tensor(ratio)]).numpy()
    assert out.shape == ref.shape == (3, 5, 6626)
    assert np.array_equal(ref.argmax(-1), out.argmax(-1))
    assert np.abs(ref - out).max() < 1e-5
