"""ABINet (rec_r45_abinet) and VisionLAN (rec_r45_visionlan), whole networks and processing.

Networks: paddle twins written after PaddleOCR's modules (tests/paddle_lm_twins.py; their
state_dict names equal the recorded PaddleOCR name lists, checked here), every parameter, BN
statistic and positional table random, exported by paddle itself as 2.x programs and PIR
programs and saved as training checkpoints; each converts and passes the verifier at 1e-4.

Processing: PaddleOCR 2.10's own operators from the wheel (ppocr/data/imaug/rec_img_aug.py,
ppocr/postprocess/rec_postprocess.py) on real word images and on head outputs.
"""

import copy
import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import ptocr
from ppocr_ref import ppocr_module
from ptocr.converter import formats
from ptocr.converter.convert import convert
from ptocr.converter.mapping import find_arch
from ptocr.converter.verify import PaddleModule, verify
from ptocr.errors import PtocrError
from ptocr.pipeline import model_inputs, read_image
from ptocr.pipeline.registry import build_postprocess

TESTS = Path(__file__).resolve().parent
TWINS = TESTS / "paddle_lm_twins.py"
ARCHS = ["rec_r45_abinet", "rec_r45_visionlan"]
DICT = TESTS.parent / "dicts" / "ppocr_default_dict.txt"
WORDS = [f"en_word_{i}.png" for i in range(1, 6)] + [f"ch_word_{i}.jpg" for i in range(1, 6)]


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """{arch: {'pdmodel': dir, 'pir': dir, 'pdparams': file, 'config': yml}}, one paddle run
    per program format for both architectures."""
    sys.path.insert(0, str(TESTS))
    from paddle_lm_twins import CONFIGS

    out = tmp_path_factory.mktemp("lm")
    for fmt in ("pdmodel", "pir"):
        res = subprocess.run([sys.executable, str(TWINS), str(out), fmt], capture_output=True,
                             text=True)
        assert res.returncode == 0, res.stderr[-3000:]
    found = {}
    for arch in ARCHS:
        config = out / f"{arch}.yml"
        config.write_text(yaml.safe_dump({"Architecture": CONFIGS[arch]["Architecture"]}))
        found[arch] = {"pdmodel": out / f"{arch}-pdmodel", "pir": out / f"{arch}-pir",
                       "pdparams": out / f"{arch}.pdparams", "config": config}
    return found


@pytest.fixture(scope="module")
def converted(exports):
    """The 2.x conversion of each architecture (model + weights), shared by the tests."""
    return {arch: convert(paths["pdmodel"], arch, config_path=paths["config"])
            for arch, paths in exports.items()}


def quick(spec):
    """The table's verification, on one random batch of two and one real image (time)."""
    inputs = {"shapes": [[2] + list(spec.inputs["shapes"][0][1:])],
              "images": spec.inputs["images"][:1]}
    return dataclasses.replace(spec, inputs=inputs)


@pytest.mark.parametrize("fmt", ["pdmodel", "pir"])
@pytest.mark.parametrize("arch", ARCHS)
def test_export_converts_and_passes_the_verifier(exports, converted, arch, fmt):
    conv = converted[arch] if fmt == "pdmodel" else \
        convert(exports[arch][fmt], arch, config_path=exports[arch]["config"])
    assert conv.report.method == ("names" if fmt == "pdmodel" else "program order")
    report = verify(conv.weights, conv.model, quick(conv.spec))
    assert report["passed"], report
    rows = report["results"]
    assert {r["input"].split()[0] for r in rows} == {"random[2,", "image"}
    assert max(r["max_abs"] for r in rows) <= 1e-4
    assert all(r["argmax_equal"] for r in rows)
    # VisionLAN's program returns the slot logits and the flattened features
    assert {r["output"] for r in rows} == ({0, 1} if arch == "rec_r45_visionlan" else {0})


@pytest.mark.parametrize("arch", ARCHS)
def test_training_checkpoint_converts_to_the_same_weights(exports, converted, arch):
    conv = convert(exports[arch]["pdparams"], arch, config_path=exports[arch]["config"])
    ref = converted[arch].model.state_dict()
    state = conv.model.state_dict()
    assert state.keys() == ref.keys()
    for name in ref:
        assert torch.equal(state[name], ref[name]), name
    # what only training runs is declared unused, nothing else
    unused = {"rec_r45_abinet": r"^head\.language\.cls\.",
              "rec_r45_visionlan": r"^head\.MLM_VRM\.(MLM|Prediction\.(pp_share|w_share))\."}
    import re

    assert conv.report.ignored
    assert all(re.match(unused[arch], n) for n in conv.report.ignored), conv.report.ignored


def test_twins_have_paddleocrs_names():
    """The twins' full-size trees give exactly the recorded PaddleOCR name lists."""
    sys.path.insert(0, str(TESTS))
    import paddle_lm_twins as T

    full = {"rec_r45_abinet": T.Model(T.ResNet45(), T.ABINetHead(512, 37, use_lang=True,
                                                                  iter_size=3)),
            "rec_r45_visionlan": T.Model(T.ResNet45(strides=[2, 2, 2, 1, 1]),
                                         T.VLHead(512, 36))}
    for arch, model in full.items():
        lines = (TESTS / "paddle_names" / f"{arch}.txt").read_text().splitlines()
        recorded = [line for line in lines if line and not line.startswith("#")]
        ours = [f"{n}\t{','.join(str(d) for d in t.shape)}" for n, t in
                model.state_dict().items()]
        assert ours == recorded, arch


# ---- pre-processing against PaddleOCR's operators


def test_abinet_resize_equals_paddleocr(testdata):
    ref_op = ppocr_module("ppocr.data.imaug.rec_img_aug").ABINetRecResizeImg([3, 32, 128])
    processing = find_arch("rec_r45_abinet").processing
    for name in WORDS:
        img = read_image(testdata / "words" / name)
        ours = model_inputs(processing, img)[0][0]
        ref = ref_op({"image": img.copy()})["image"]  # predict_rec feeds the BGR crop
        assert ours.dtype == ref.dtype == np.float32
        np.testing.assert_array_equal(ours, ref, err_msg=name)


def test_visionlan_resize_equals_paddleocr(testdata):
    """predict_rec's resize_norm_img_vl turns BGR to RGB; the imaug operator expects the RGB
    image its DecodeImage made."""
    ref_op = ppocr_module("ppocr.data.imaug.rec_img_aug").VLRecResizeImg([3, 64, 256])
    processing = find_arch("rec_r45_visionlan").processing
    for name in WORDS:
        img = read_image(testdata / "words" / name)
        ours = model_inputs(processing, img)[0][0]
        ref = ref_op({"image": img[:, :, ::-1].copy()})["image"]
        assert ours.shape == (3, 64, 256)
        np.testing.assert_array_equal(ours, ref.astype(np.float32), err_msg=name)


# ---- label decoding against PaddleOCR's decoders


def ours_decoder(arch):
    chars = DICT.read_text().splitlines()
    return build_postprocess(find_arch(arch).processing["PostProcess"], character_dict=chars,
                             use_space_char=False)


def same_results(ours, ref):
    assert [t for t, _ in ours] == [t for t, _ in ref]
    for (_, a), (_, b) in zip(ours, ref):
        assert (np.isnan(a) and np.isnan(b)) or abs(a - b) <= 1e-6, (a, b)


@pytest.mark.filterwarnings("ignore:Mean of empty slice:RuntimeWarning")
def test_abinet_decoding_equals_paddleocr(converted, testdata):
    ref = ppocr_module("ppocr.postprocess.rec_postprocess").ABINetLabelDecode(str(DICT))
    ours = ours_decoder("rec_r45_abinet")
    # outputs of the converted network on real words
    model = converted["rec_r45_abinet"].model
    x = np.concatenate([model_inputs(converted["rec_r45_abinet"].processing,
                                     read_image(testdata / "words" / n))[0] for n in WORDS[:2]])
    with torch.inference_mode():
        probs = model(torch.from_numpy(x)).numpy()
    # and probabilities with the end token at every position, none, and at the start
    rng = np.random.RandomState(3)
    crafted = rng.dirichlet(np.ones(37) * 0.3, size=(6, 26)).astype(np.float32)
    for i, end in enumerate([0, 1, 5, 12, 25, None]):
        if end is not None:
            crafted[i, end, 0] = 2.0
    with np.errstate(all="ignore"):  # PaddleOCR takes the mean of nothing for empty lines
        for preds in (probs, crafted):
            same_results(ours([preds]), ref(preds))
    assert np.isnan(ours([crafted])[0][1])  # end first: empty text, NaN score as PaddleOCR
    assert any(t for t, _ in ours([crafted]))


def test_visionlan_decoding_equals_paddleocr(converted, testdata):
    import paddle

    ref = ppocr_module("ppocr.postprocess.rec_postprocess").VLLabelDecode(
        str(DICT), max_text_length=25)
    ours = ours_decoder("rec_r45_visionlan")
    model = converted["rec_r45_visionlan"].model
    x = np.concatenate([model_inputs(converted["rec_r45_visionlan"].processing,
                                     read_image(testdata / "words" / n))[0] for n in WORDS[:2]])
    with torch.inference_mode():
        outs = [o.numpy() for o in model(torch.from_numpy(x))]
    rng = np.random.RandomState(4)
    logits = rng.normal(0, 3, (26, 6, 37)).astype(np.float32)
    for i, end in enumerate([0, 3, 9, 24, 25, None]):
        logits[:, i, 0] = -20.0
        if end is not None:
            logits[end, i, 0] = 20.0
    feats = np.zeros((6, 4, 8), np.float32)
    for preds in (outs, [logits, feats]):
        same_results(ours(preds), ref([paddle.to_tensor(preds[0]), paddle.to_tensor(preds[1])]))
    assert len({t for t, _ in ours([logits, feats])}) == 6


# ---- the OCR system


@pytest.fixture(scope="module")
def det_checkpoint(tmp_path_factory, models):
    from conftest import run_cli

    path = tmp_path_factory.mktemp("lm-det") / "det.pth"
    res = run_cli("convert", "--arch", "PP-OCRv4_mobile_det", "--paddle-dir",
                  models("PP-OCRv4_mobile_det"), "--out", path, "--no-verify")
    assert res.returncode == 0, res.stderr
    return path


@pytest.mark.parametrize("arch", ARCHS)
def test_ocr_system_reads_with_the_checkpoint_processing(converted, exports, det_checkpoint,
                                                         testdata, tmp_path, arch):
    """ptocr.OCR with the converted recogniser gives the lines that the Paddle program gives
    in the same pipeline (random weights: every line is kept, drop_score 0)."""
    from conftest import run_cli
    from ptocr.converter import dictionary
    from ptocr.converter.checkpoint import save

    conv = converted[arch]
    rec_path = tmp_path / f"{arch}.pth"
    # the table's dictionary (0-9a-z) with the decoder's end token fits the class count
    chars = dictionary.resolve(conv.spec, conv.weights, conv.model.head.out_channels)
    assert chars["dict_source"] == "ppocr_default_dict.txt"
    extra = {"task": "rec", **chars}
    save(rec_path, conv.model.state_dict(), {"arch": arch, "config": conv.config,
                                             "extra": extra, "processing": conv.processing})
    rec = ptocr.load(rec_path)
    det = ptocr.load(det_checkpoint)
    image = testdata / "images" / "ger_1.jpg"
    got = ptocr.OCR(det=det, rec=rec, drop_score=0.0)(image)
    paddle_rec = PaddleModule(exports[arch]["pdmodel"], "rec", copy.deepcopy(rec.ptocr_meta))
    ref = ptocr.OCR(det=det, rec=paddle_rec, drop_score=0.0)(image)
    assert len(got) == len(ref) >= 3
    assert [g["text"] for g in got] == [r["text"] for r in ref]
    np.testing.assert_allclose([g["score"] for g in got], [r["score"] for r in ref], atol=1e-5)
    if arch == "rec_r45_abinet":  # the command line reads the same lines
        res = run_cli("ocr", image, "--det", det_checkpoint, "--rec", rec_path,
                      "--drop-score", "0", "--json", tmp_path / "out.json")
        assert res.returncode == 0, res.stderr
        import json

        lines = json.loads((tmp_path / "out.json").read_text(encoding="utf-8"))["ger_1.jpg"]
        assert [line["text"] for line in lines] == [g["text"] for g in got]
    # a recogniser is no detector
    with pytest.raises(PtocrError, match="a rec model was given where a det model"):
        ptocr.OCR(det=rec_path, rec=rec_path)
