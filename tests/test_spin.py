"""SPIN (configs/rec/rec_r32_gaspin_bilstm_att.yml): GA-SPIN rectification, ResNet32, the
cascade BiLSTM neck and SPINAttentionHead. Whole network: the paddle twin of PaddleOCR's
modules (tests/paddle_twins_spin.py) at a small configuration of the real table (the
transform as configured, ResNet32 of 64 channels, hidden 32, the 70 classes of spin_dict),
every parameter and BN statistic random, exported by paddle.jit.save (PIR: paddle 3.3's
legacy 2.x program builder cannot trace paddle.matmul or the LSTM, see
test_tps_attention.py) and saved as a training .pdparams; converted by the real
`ptocr convert` and verified. Processing against PaddleOCR 2.10's own code."""

import json
import textwrap

import numpy as np
import paddle
import pytest
import torch
import yaml

import ptocr
from paddle_twins_spin import build, randomize
from ppocr_ref import ppocr_module, wheel_root
from ptocr.converter import formats
from ptocr.converter.convert import convert
from ptocr.converter.mapping import find_arch
from ptocr.converter.verify import verify
from ptocr.pipeline import model_inputs, read_image

ARCH = "rec_r32_gaspin_bilstm_att"
WORDS = ["words/en_word_1.png", "words/en_word_2.png", "words/en_word_3.png",
         "words/ch_word_1.jpg"]


def small_architecture():
    arch = yaml.safe_load(find_arch(ARCH).path.read_text(encoding="utf-8"))["Architecture"]
    arch["Backbone"]["out_channels"] = 64
    arch["Neck"].update(hidden_size=32, out_channels=[32, 64])
    arch["Head"]["hidden_size"] = 32
    return arch


@pytest.fixture(scope="module")
def twin(tmp_path_factory):
    """{'model', 'pir', 'pdparams', 'table'}: one paddle build and export."""
    root = tmp_path_factory.mktemp("spin")
    data = yaml.safe_load(find_arch(ARCH).path.read_text(encoding="utf-8"))
    data["name"], data["aliases"] = "small_spin", []
    data["Architecture"] = small_architecture()
    data["inputs"]["images"] = data["inputs"]["images"][:2]  # time
    table = root / "small_spin.yaml"
    table.write_text(yaml.safe_dump(data), encoding="utf-8")
    model = randomize(build(dict(data["Architecture"], Head=dict(
        data["Architecture"]["Head"], out_channels=70))), 7)
    paddle.save(model.state_dict(), str(root / "train.pdparams"))
    spec = [paddle.static.InputSpec([None, 1, 32, 100], "float32", "x")]
    paddle.jit.save(model, str(root / "pir" / "inference"), input_spec=spec)
    return {"model": model, "pir": root / "pir", "pdparams": root / "train.pdparams",
            "table": table, "root": root}


@pytest.fixture(scope="module")
def converted(twin):
    """`ptocr convert --require-verify` on the PIR export: (checkpoint, report)."""
    from conftest import run_cli

    out, rep = twin["root"] / "spin.pth", twin["root"] / "spin.json"
    res = run_cli("convert", "--arch", twin["table"], "--paddle-dir", twin["pir"], "--out", out,
                  "--require-verify", "--report", rep)
    assert res.returncode == 0, res.stderr
    return out, json.loads(rep.read_text())


def words(testdata, spec):
    return np.concatenate([model_inputs(spec.processing, read_image(testdata / w))[0]
                           for w in WORDS])


def test_export_converts_and_verifies(converted):
    _, report = converted
    rows = report["verify"]["results"] if "verify" in report else report["results"]
    assert len(rows) == 2 and all(r["pass"] for r in rows)
    assert all(r["input"].startswith("image ") for r in rows)  # real words (random: false)
    assert report.get("verify", report)["judged_in"] == "float64"
    assert max(r["float64"]["max_abs"] for r in rows) < 1e-6
    # fp32 (deployment precision): the TPS grid's fp32 rounding through grid_sample; Paddle's
    # own fp32 output is as far from its float64 evaluation as ours is
    assert max(r["max_abs"] for r in rows) < 1e-3
    assert max(r["max_abs"] for r in rows) < 3 * max(r["paddle_fp32_error"] for r in rows)
    # the decoded index sequences (the greedy loop's fed-back argmax) are identical
    assert all(r.get("argmax_equal", True) for r in rows)


def test_training_pdparams_convert_and_match_paddle(twin, converted, testdata):
    weights = formats.read(twin["pdparams"])
    spec = find_arch(str(twin["table"]))
    conv = convert(None, weights=weights, spec=spec)
    assert conv.report.method == "names"
    assert conv.config["Head"]["out_channels"] == 70
    # every tensor of the export's conversion is the training checkpoint's
    a, b = ptocr.load(converted[0]).state_dict(), conv.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    x = words(testdata, spec)
    ref = twin["model"](paddle.to_tensor(x)).numpy()
    with torch.inference_mode():
        out = conv.model(torch.from_numpy(x)).numpy()
    assert out.shape == (4, 26, 70)
    assert np.array_equal(ref.argmax(-1), out.argmax(-1))
    # fp32 against paddle's dygraph: the TPS grid's rounding through grid_sample (~2e-4 on
    # these words); the float64 proof is the verifier's, on the same tensors (above)
    assert np.abs(ref - out).max() < 1e-3
    # a real test: the images decode differently and the probabilities are not flat
    assert len({tuple(r) for r in ref.argmax(-1)}) > 1 and ref.max() > 0.3


def test_ga_spin_transform_matches_paddle(twin, converted, testdata):
    """The rectifier alone on real words: the colour transform before sampling agrees to
    fp32 rounding, the sampling grid (PaddleOCR's 32-wide, 100-tall spline grid reshaped to
    32x100) to ~1e-5; grid_sample with border padding turns that into ~1e-3 at text edges
    (as for RARE's TPS), which the whole network's verifier bounds at 1e-4."""
    model = ptocr.load(converted[0])
    spec = find_arch(str(twin["table"]))
    x = words(testdata, spec)
    p, t = twin["model"].transform, model.transform
    with torch.inference_mode():
        fusion = t.stucture_fc2(t.stucture_fc1(t.spt_convnet(torch.from_numpy(x))))
        got = t(torch.from_numpy(x)).numpy()
        fid = fusion[:, t.spt_length + 1:].reshape(-1, 20, 2)
        got_grid = t.GridGenerator(fid, 32, 100).numpy()
    want_fusion = p.stucture_fc2(p.stucture_fc1(p.spt_convnet(paddle.to_tensor(x)))).numpy()
    assert np.abs(want_fusion - fusion.numpy()).max() < 1e-5
    want_grid = p.GridGenerator(paddle.to_tensor(fid.numpy()), [32, 100]).numpy()
    assert np.abs(want_grid - got_grid).max() < 2e-5
    want = p(paddle.to_tensor(x)).numpy()
    assert got.shape == x.shape and np.abs(want - got).max() < 5e-3
    assert np.abs(got - x).max() > 0.1  # it really transforms


def test_wrong_padding_or_grid_orientation_is_refused(twin, converted):
    """Negative controls: grid_sample with zero padding (Paddle's default, not GA-SPIN's
    border), or the spline grid built the natural way round (100 wide, 32 tall) instead of
    PaddleOCR's, must fail the verifier."""
    import dataclasses

    import ptocr.models.transforms.gaspin as gaspin

    spec = find_arch(str(twin["table"]))
    spec = dataclasses.replace(spec, inputs=dict(spec.inputs, images=spec.inputs["images"][:1]))
    program = formats.read(twin["pir"])
    model = ptocr.load(converted[0])  # passed the verifier (the converted fixture)
    original = gaspin.F.grid_sample
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(gaspin.F, "grid_sample",
                   lambda *a, **k: original(*a, **{**k, "padding_mode": "zeros"}))
        assert not verify(program, model, spec)["passed"]
    forward = gaspin.GridGenerator.forward
    with pytest.MonkeyPatch.context() as mp:  # 100 wide, 32 tall, row-major
        mp.setattr(gaspin.GridGenerator, "forward", lambda self, c, w, h: forward(self, c, h, w))
        assert not verify(program, model, spec)["passed"]


# ---- processing against PaddleOCR's own code

def test_preprocessing_equals_predict_rec_and_the_eval_operator(testdata):
    """predict_rec.py's resize_norm_img_spin (verbatim from the wheel; it hands
    cv2.INTER_CUBIC to cv2.resize's dst slot, so the resize is bilinear) and rec_img_aug's
    SPINRecResizeImg with the config's parameters (same slip): the table's operator gives
    predict_rec's tensor exactly and the Eval operator's to its float64 normalisation's
    last bit."""
    import cv2

    text = (wheel_root() / "tools" / "infer" / "predict_rec.py").read_text(encoding="utf-8")
    start = text.index("    def resize_norm_img_spin(self, img):")
    end = text.index("    def resize_norm_img_svtr(")
    ns = {"cv2": cv2, "np": np}
    exec(textwrap.dedent(text[start:end]), ns)
    aug = ppocr_module("ppocr.data.imaug.rec_img_aug").SPINRecResizeImg(
        image_shape=[100, 32], interpolation=2, mean=[127.5], std=[127.5])
    spec = find_arch(ARCH)
    for name in WORDS + ["words/ch_word_3.jpg"]:
        img = read_image(testdata / name)
        ours = model_inputs(spec.processing, img)[0]
        assert ours.shape == (1, 1, 32, 100) and ours.dtype == np.float32
        assert np.array_equal(ours[0], ns["resize_norm_img_spin"](None, img))
        np.testing.assert_allclose(ours[0], aug({"image": img.copy()})["image"], rtol=0,
                                   atol=1e-7)
        # and it is the bilinear resize, not the cubic one the config names
        gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        cubic = cv2.resize(gray, (100, 32), interpolation=cv2.INTER_CUBIC)
        assert not np.array_equal(ours[0, 0], (cubic.astype(np.float32) - 127.5) / 127.5)


def test_spin_label_decode_matches_ppocr(tmp_path):
    from ptocr.pipeline.registry import build_postprocess

    chars = (wheel_root() / "ppocr" / "utils" / "dict" / "spin_dict.txt").read_text(
        encoding="utf-8").splitlines()
    rng = np.random.RandomState(0)
    for use_space in (False, True):
        n = len(chars) + 2 + use_space
        logits = rng.randn(5, 26, n).astype("float32") * 3
        logits[0, :, 0] += 20  # all sos: nothing read
        logits[1, 5:, 1] += 20  # eos after five characters
        logits[2, 3, 1] += 20  # an eos in the middle (skipped, reading goes on)
        probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
        ref = ppocr_module("ppocr.postprocess.rec_postprocess").SPINLabelDecode(
            character_dict_path=str(wheel_root() / "ppocr" / "utils" / "dict" /
                                    "spin_dict.txt"), use_space_char=use_space)(probs)
        ours = build_postprocess(find_arch(ARCH).processing["PostProcess"],
                                 character_dict=chars, use_space_char=use_space)([probs])
        assert [t for t, _ in ours] == [t for t, _ in ref]
        np.testing.assert_allclose([s for _, s in ours], [s for _, s in ref], rtol=1e-6)
        assert ours[0][0] == "" and np.isnan(ours[0][1])


# ---- usable: ptocr ocr with the SPIN checkpoint

def test_ocr_reads_with_the_spin_checkpoint(converted, det_v4_checkpoint, testdata, tmp_path,
                                            cli):
    det = det_v4_checkpoint
    out = tmp_path / "ocr.json"
    res = cli("ocr", testdata / "images" / "11.jpg", "--det", det, "--rec", converted[0],
              "--drop-score", "0", "--json", out)
    assert res.returncode == 0, res.stderr
    lines = json.loads(out.read_text())["11.jpg"]
    alphabet = set((wheel_root() / "ppocr" / "utils" / "dict" / "spin_dict.txt").read_text(
        encoding="utf-8").splitlines())
    assert lines and all(set(line["text"]) <= alphabet for line in lines)
    assert any(line["text"] for line in lines)
