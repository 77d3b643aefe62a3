"""SRN (rec_r50_fpn_srn): a program with five inputs and five outputs.

Network: paddle twins of PaddleOCR's ResNetFPN and SRNHead (tests/paddle_srn_twins.py) at a
small configuration (ResNetFPN-18, one transformer layer per encoder), random weights and BN
statistics, exported in a subprocess with tools/export_model.py's input spec as a PIR
program and saved as .pdparams; both convert and pass the verifier in float64, fed the
inputs SRNRecResizeImg makes. Paddle 3.3 cannot save it as a 2.x program (its legacy tracer
fails on the functional dropouts of the transformer blocks), so no 2.x export is made. The
twin's dygraph forward is not a reference here: PaddleOCR's functional dropouts are in
training mode in dygraph (random), while the exported program runs them as inference
dropout (x 0.9) — the program is the reference.

Processing: PaddleOCR 2.10's own SRNRecResizeImg and SRNLabelDecode from the wheel.
"""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import ptocr
from paddle_srn_twins import ARCH, SMALL
from ppocr_ref import ppocr_module
from ptocr.converter import formats
from ptocr.converter.convert import convert
from ptocr.converter.mapping import find_arch
from ptocr.converter.verify import PaddleModule, PaddleProgram, verify
from ptocr.pipeline import model_inputs, read_image
from ptocr.pipeline.registry import build_postprocess, build_transforms, transform
from test_sar import save_checkpoint

TESTS = Path(__file__).resolve().parent
WORDS = ["words/en_word_1.png", "words/en_word_3.png", "words/ch_word_2.jpg",
         "words/ch_word_5.jpg"]
OUTPUTS = ["decoded_out", "gsrm_out", "predict", "pvam_feature", "word_out"]


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    root = tmp_path_factory.mktemp("srn")
    res = subprocess.run([sys.executable, str(TESTS / "paddle_srn_twins.py"), str(root)],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    config = root / "srn.yml"
    head = dict(SMALL["head"])
    head.pop("out_channels")
    config.write_text(yaml.safe_dump({"Architecture": {
        "model_type": "rec", "algorithm": "SRN", "in_channels": 1, "Transform": None,
        "Backbone": {"name": "ResNetFPN", "layers": SMALL["layers"]},
        "Head": {"name": "SRNHead", **head}}}))
    return {"pir": root / "pir", "pdparams": root / "model.pdparams", "config": config}


def word_batch(testdata, processing, words=WORDS):
    per = [model_inputs(processing, read_image(testdata / w)) for w in words]
    return [np.concatenate(parts) for parts in zip(*per)]


@pytest.fixture(scope="module")
def converted(exports):
    return convert(exports["pir"], ARCH, config_path=exports["config"])


def test_pir_export_converts_and_verifies_in_float64(exports, converted):
    weights, spec, conv = converted.weights, converted.spec, converted
    assert weights.format == "pir" and conv.report.method == "program order"
    assert conv.config["Head"]["out_channels"] == 38
    report = verify(weights, conv.model, spec)
    assert report["passed"] and report["judged_in"] == "float64", report["results"]
    assert len(report["results"]) == 3 * 5  # a noise batch + two words, five outputs
    assert max(r["float64"]["max_abs"] for r in report["results"]) < 1e-6
    decoded = [r for r in report["results"] if r["output"] == 0]
    assert all(r["max_abs"] == 0 for r in decoded)  # the decoded indices are identical


def test_training_pdparams_convert_and_equal_the_program(exports, testdata):
    conv = convert(exports["pdparams"], ARCH, config_path=exports["config"])
    assert conv.report.method == "names"
    # paddle lists the shared word embedding under both GSRM encoders
    assert conv.report.ignored == ["head.gsrm.wrap_encoder1.prepare_decoder.emb0.weight"]
    xs = word_batch(testdata, find_arch(ARCH).processing)
    assert [x.dtype for x in xs] == [np.float32, np.int64, np.int64, np.float32, np.float32]
    ref = PaddleProgram(formats.read(exports["pir"]))(xs)
    with torch.inference_mode():
        out = conv.model(*[torch.from_numpy(x) for x in xs])
    assert list(out) == OUTPUTS
    for name, r, o in zip(OUTPUTS, ref, out.values()):
        assert r.shape == tuple(o.shape), name
        assert np.abs(r.astype(np.float64) - o.numpy()).max() < 1e-4, name
    # the visual features depend on the image (random classifier layers saturate the reads)
    pvam = out["pvam_feature"].numpy()
    assert np.abs(pvam[0] - pvam[1]).max() > 1e-4  # fp32 differences are ~1e-6


def test_paddle_names_file_matches_the_full_size_twin():
    """tests/paddle_names/rec_r50_fpn_srn.txt was dumped from PaddleOCR's own modules
    (ResNetFPN-50 + SRNHead, 2 + 4 layers, 38 classes); the twin has the same names."""
    from paddle_srn_twins import PResNetFPN, PSRNHead, PSRNModel
    from test_paddle_names import NAMES_DIR

    model = PSRNModel(PResNetFPN(1, 50), PSRNHead(512, 38, 25, 8, 2, 4, 512))
    want = [f"{k}\t{','.join(map(str, v.shape))}" for k, v in model.state_dict().items()]
    lines = [ln for ln in (NAMES_DIR / f"{ARCH}.txt").read_text().splitlines()
             if ln and not ln.startswith("#")]
    assert lines == want


def test_srn_resize_and_inputs_match_ppocr(testdata):
    ours = build_transforms(find_arch(ARCH).processing["PreProcess"])
    ref_op = ppocr_module("ppocr.data.imaug.rec_img_aug").SRNRecResizeImg(
        image_shape=[1, 64, 256], num_heads=8, max_text_length=25)
    for w in sorted((testdata / "words").iterdir()):
        img = read_image(w)
        want = ref_op({"image": img.copy()})
        got = transform(ours, {"image": img.copy()})
        assert got["model_inputs"] == ["image", "encoder_word_pos", "gsrm_word_pos",
                                       "gsrm_slf_attn_bias1", "gsrm_slf_attn_bias2"]
        assert np.array_equal(want["image"], got["image"]), w
        for key in got["model_inputs"][1:]:
            # predict_rec feeds the biases as float32 and the positions as int64
            assert np.array_equal(np.asarray(want[key]).astype(got[key].dtype), got[key]), key


@pytest.mark.parametrize("use_space", [False, True])
def test_srn_label_decode_matches_ppocr(tmp_path, use_space):
    chars = list("0123456789abcdefghijklmnopqrstuvwxyz")
    path = tmp_path / "d.txt"
    path.write_text("\n".join(chars) + "\n")
    n = len(chars) + use_space + 2
    rng = np.random.RandomState(1)
    logits = rng.randn(3 * 25, n).astype("float32") * 3
    logits[:25, n - 2] += 30  # all sos: empty read
    logits[30:40, n - 1] += 30  # eos in the middle: skipped, reading goes on
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    ref = ppocr_module("ppocr.postprocess.rec_postprocess").SRNLabelDecode(
        character_dict_path=str(path), use_space_char=use_space)
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
        want = ref({"predict": probs})
    outputs = [np.zeros((75, 1)), np.zeros((75, n + 1)), probs, np.zeros((3, 25, 8)),
               np.zeros((75, n))]
    ours = build_postprocess({"name": "SRNLabelDecode"}, character_dict=chars,
                             use_space_char=use_space)(outputs)
    assert [t for t, _ in ours] == [t for t, _ in want]
    np.testing.assert_allclose([s for _, s in ours], [s for _, s in want], rtol=1e-6)


def test_ocr_system_reads_with_an_srn_checkpoint_as_paddle(exports, converted, testdata,
                                                           tmp_path):
    """The OCR system feeds SRN's five inputs from its checkpoint's processing; Paddle's own
    program in the same pipeline reads the same texts and scores."""
    rec = ptocr.load(save_checkpoint(converted, tmp_path / "srn.pth"))
    crops = [read_image(testdata / w) for w in WORDS]
    ours = ptocr.OCR(det=None, rec=rec).recognize(crops)
    paddle_rec = PaddleModule(exports["pir"], "rec", meta=rec.ptocr_meta)
    theirs = ptocr.OCR(det=None, rec=paddle_rec).recognize(crops)
    assert [t for t, _ in ours] == [t for t, _ in theirs]
    assert all(set(t) <= set("0123456789abcdefghijklmnopqrstuvwxyz") for t, _ in ours)
    np.testing.assert_allclose([s for _, s in ours], [s for _, s in theirs], atol=1e-5)
