"""LayoutXLM and LayoutLMv2 WITH the visual backbone (ser/re_layoutxlm_xfund_zh,
ser/re_layoutlmv2_xfund_zh) against PaddleNLP 2.8.1's own modeling code and visual backbone
(tests/paddlenlp_ref.py: loaded from the wheel's files with small stand-ins for its package
imports and for yacs, which do not import here — see there), inside transcriptions of
PaddleOCR's wrappers (tests/paddlenlp_kie_visual_exports.py), small configurations (a 2-layer
encoder and a ResNeXt-50-FPN of 8..128 channels), every parameter and batch-norm statistic
random, on token ids + boxes + a 224x224 page image.

SER: the PIR export (PaddleOCR's input spec) converts by program order and passes the verifier
on a real page (images/1.jpg through the table's image operators) and a noise page; the training
checkpoint (PaddleNLP's names) converts by name and verifies against the export; the page
image matters; a checkpoint with two visual-backbone weights swapped is refused.
RE: paddle 3.3 cannot export the RE decoder (tests/test_kie_layoutxlm.py), so the converted
training checkpoint is compared with PaddleNLP's RE model run in dygraph, float32 and float64."""

import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from conftest import run_cli
from ptocr.converter.convert import convert
from ptocr.converter.float64 import torch_float64

HERE = Path(__file__).parent
SMALL = {"hidden_size": 48, "coordinate_size": 8, "num_hidden_layers": 2,
         "num_attention_heads": 4, "intermediate_size": 64, "vocab_size": 120}
# tests/paddlenlp_ref.py SMALL_VISUAL in ptocr's VisualBackbone arguments
VISUAL = {"depth": 50, "num_groups": 2, "width_per_group": 4, "stem_out_channels": 8,
          "res2_out_channels": 16, "fpn_out_channels": 16}
FAMILIES = {"layoutxlm": "LayoutXLM", "layoutlmv2": "LayoutLMv2"}


def _arch(backbone, algorithm, **extra):
    return {"Architecture": {"model_type": "kie", "algorithm": algorithm, "Transform": None,
                             "Backbone": {"name": backbone, "mode": "base", **extra}}}


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    out = tmp_path_factory.mktemp("kie_visual_exports")
    res = subprocess.run([sys.executable, str(HERE / "paddlenlp_kie_visual_exports.py"), str(out),
                          ",".join(FAMILIES), json.dumps({**SMALL, "num_classes": 7,
                                                          "dropout": 0})],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    return out


@pytest.fixture(scope="module", params=list(FAMILIES))
def exported(request, exports):
    family = request.param
    out = exports / family
    algo = FAMILIES[family]
    # the PIR program carries no names: the sizes come from the user's config
    (out / "ser.yml").write_text(yaml.safe_dump(_arch(
        f"{algo}ForSer", algo, num_classes=7, image_feature_pool_shape=[7, 7, 16],
        visual_backbone=VISUAL, **SMALL)))
    # a training checkpoint shows every size but the heads count
    (out / "re.yml").write_text(yaml.safe_dump(_arch(f"{algo}ForRe", algo, num_attention_heads=4)))
    (out / "ser_names.yml").write_text(yaml.safe_dump(_arch(f"{algo}ForSer", algo,
                                                            num_attention_heads=4)))
    return family, out


def _arch_name(family, task):
    return f"{task}_{family}_xfund_zh"


def test_ser_export_converts_and_verifies(exported):
    """LayoutXLM through the CLI; LayoutLMv2 in process (the same code, one start-up less)."""
    family, out = exported
    if family == "layoutxlm":
        report_path = out / "report.json"
        res = run_cli("convert", "--arch", _arch_name(family, "ser"), "--paddle-dir",
                      out / "ser_pir", "--config", out / "ser.yml", "--out", out / "ser.pth",
                      "--report", report_path, "--overwrite")
        assert res.returncode == 0, res.stderr
        report = json.loads(report_path.read_text())
    else:
        from ptocr.converter import checkpoint, formats
        from ptocr.converter.verify import verify

        conv = convert(out / "ser_pir", _arch_name(family, "ser"), out / "ser.yml")
        report = verify(formats.read(out / "ser_pir"), conv.model, conv.spec)
        checkpoint.save(out / "ser.pth", conv.model.state_dict(), {
            "arch": conv.spec.name, "config": conv.config, "source": [], "parity": None,
            "ptocr_version": "test", "extra": {"task": "kie"}, "processing": conv.processing})
    assert report["passed"]
    labels = [r["input"] for r in report["results"]]
    assert len(labels) == 2 and "images/1.jpg" in labels[0] and "noise page" in labels[1]
    assert report["results"][0]["shape"] == [1, 512, 7]
    assert max(r["max_abs"] for r in report["results"]) < 1e-4
    if family == "layoutxlm":
        assert report["judged_in"] == "float64"
        assert max(r["float64"]["max_abs"] for r in report["results"]) < 1e-8
    else:
        # Paddle's float64 evaluation of this program is not the function its float32 run
        # computes (the table's no_float64); judged in float32, both sides ~1e-6 apart
        assert report["judged_in"] == "float32" and \
            "float32 decides" in report["float64_unavailable"]
        assert max(r["max_abs"] for r in report["results"]) < 5e-6


def _inputs(out, seed, n):
    ins = np.load(out / "inputs.npz")
    return [torch.from_numpy(ins[f"input{i}_{seed}"]) for i in range(n)]


def test_ser_page_image_matters(exported):
    """The export's image input is declared int64 (PaddleOCR's export_model) but fed float32,
    as PaddleOCR's predictor feeds it: the converted model agrees with PaddleNLP in dygraph on
    the float page. PaddleOCR normalises the page before PaddleNLP's backbone normalises it
    again with its own pixel statistics, so the backbone sees a nearly constant image and pages
    move the logits little; on the un-normalised page (0..255) the visual branch moves them
    plainly, and the converted model agrees with PaddleNLP there too."""
    family, out = exported
    from ptocr import load

    model = load(out / "ser.pth")
    x = _inputs(out, 0, 5)
    raw = torch.from_numpy(np.load(out / "raw_page.npy"))
    with torch.no_grad():
        logits = model(*x).numpy()
        blank = model(*x[:4], torch.zeros_like(x[4])).numpy()
        raw_logits = model(*x[:4], raw).numpy()
    err = np.abs(logits - np.load(out / "ser_dygraph.npy")).max()
    raw_err = np.abs(raw_logits - np.load(out / "ser_dygraph_raw.npy")).max()
    assert err < 1e-5 and raw_err < 1e-5
    # (with random weights the 49 visual keys move the text tokens' logits by ~1e-3 at most;
    # the RE tests compare the visual tokens' own states, which the page sets directly)
    assert np.abs(logits - blank).max() > 1e-5  # twice-normalised pages differ a little
    assert np.abs(raw_logits - logits).max() > 100 * max(err, raw_err, 1e-6)


def _verify_against_export(path, out, family, config):
    from ptocr.converter import formats
    from ptocr.converter.verify import verify

    conv = convert(path, _arch_name(family, "ser"), config)
    return conv, verify(formats.read(out / "ser_pir"), conv.model, conv.spec)


def test_ser_training_checkpoint_converts_by_names(exported):
    family, out = exported
    conv, report = _verify_against_export(out / "ser_train", out, family, out / "ser_names.yml")
    assert conv.report.method == "names"
    assert sorted(conv.report.ignored) == sorted(
        [f"{family}.embeddings.position_ids", f"{family}.pooler.dense.bias",
         f"{family}.pooler.dense.weight"]
        + [f"{family}.visual.backbone.fpn_output{i}.{p}" for i in (3, 4, 5)
           for p in ("bias", "weight")])
    # the visual backbone's size was read back from the weights
    assert conv.model.backbone.model.get_submodule(f"{family}.visual").out_channels == 16
    assert report["passed"] and max(r["max_abs"] for r in report["results"]) < 1e-4


def test_ser_broken_visual_backbone_is_refused(exported, tmp_path):
    """Two same-shaped visual-backbone convolutions swapped: right shapes, wrong numbers."""
    family, out = exported
    from ptocr.converter.formats import parse_pdparams

    tensors = parse_pdparams((out / "ser_train" / "model_state.pdparams").read_bytes())
    a = f"{family}.visual.backbone.bottom_up.res3.1.conv1.weight"
    b = f"{family}.visual.backbone.bottom_up.res3.2.conv1.weight"
    tensors[a], tensors[b] = tensors[b], tensors[a]
    bad = tmp_path / "model_state.pdparams"
    bad.write_bytes(pickle.dumps(tensors))
    if family == "layoutxlm":  # the verifier refuses it
        _, report = _verify_against_export(bad, out, family, out / "ser_names.yml")
        assert not report["passed"] and max(r["max_abs"] for r in report["results"]) > 1e-3
    else:  # (the same verifier; cheaper: the logits leave PaddleNLP's)
        conv = convert(bad, _arch_name(family, "ser"), out / "ser_names.yml")
        with torch.no_grad():
            logits = conv.model(*_inputs(out, 0, 5)).numpy()
        assert np.abs(logits - np.load(out / "ser_dygraph.npy")).max() > 1e-3


@pytest.fixture(scope="module")
def re_model(exported):
    family, out = exported
    conv = convert(out / "re_train", _arch_name(family, "re"), out / "re.yml")
    assert conv.report.method == "names"
    return family, out, conv.model


def _pairs(pred):
    """(head, tail) entity ids of the linked pairs in PaddleNLP's tensor layout."""
    n = int(pred[0, 0, 0, 0])
    return sorted((int(pred[0, k, 0, 0]), int(pred[0, k, 3, 0])) for k in range(1, n + 1))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("seed", [0, 1], ids=["no known relations", "two known relations"])
def test_re_matches_paddlenlp(re_model, seed, dtype):
    family, out, model = re_model
    ref = np.load(out / "re_reference.npz")
    model = torch_float64(model) if dtype == "float64" else model
    x = _inputs(out, seed, 7)
    if dtype == "float64":
        x[4] = x[4].double()
    with torch.no_grad():
        res = model(x)
    key = f"{seed}_{dtype}"
    tol = 1e-5 if dtype == "float32" else 1e-12
    assert list(res) == ["hidden_states", "loss", "pred_relations"]
    assert abs(float(res["loss"]) - float(ref[f"loss_{key}"])) < tol * 100
    hidden, pred = res["hidden_states"].numpy(), res["pred_relations"].numpy()
    assert hidden.shape == (1, 2, 512 + 49, 48)
    if family == "layoutxlm":
        want = ref[f"hidden_states_{key}"]
        assert np.abs(hidden - want).max() < tol * max(1, np.abs(want).max())
        want_pred = ref[f"pred_relations_{key}"]
        assert want_pred[0, 0, 0, 0] > 0  # the random weights link some pairs
        np.testing.assert_array_equal(pred[:, :want_pred.shape[1]], want_pred)
        assert (pred[:, want_pred.shape[1]:] == -1).all()
    else:
        # PaddleNLP's LayoutLMv2 decoder returns the last layer's states and the linked pairs
        # as dicts (in Python set order)
        want = ref[f"hidden_states_{key}"]
        assert np.abs(hidden[:, -1] - want).max() < tol * max(1, np.abs(want).max())
        want_pairs = [tuple(p) for p in ref[f"pairs_{key}"].tolist()]
        assert want_pairs and _pairs(pred) == want_pairs


# --- the KIE system with a visual model --------------------------------------------------

def test_page_image_ops_equal_paddleocr(testdata):
    """The table's page-image operators on a BGR page equal predict_kie_token_ser.py's
    (PaddleOCR 2.10 wheel: the RGB page, Resize 224, NormalizeImage, ToCHWImage)."""
    import cv2

    from ppocr_ref import ppocr_module
    from ptocr.converter.kie_inputs import image_ops
    from ptocr.converter.mapping import find_arch
    from ptocr.pipeline import model_inputs

    ops = ppocr_module("ppocr.data.imaug.operators")
    bgr = cv2.imread(str(testdata / "images" / "img_12.jpg"))
    data = {"image": bgr[:, :, ::-1]}  # predict_kie_token_ser's main: cv2.imread, then RGB
    for op in (ops.Resize(size=[224, 224]),
               ops.NormalizeImage(std=[58.395, 57.12, 57.375], mean=[123.675, 116.28, 103.53],
                                  scale="1", order="hwc"), ops.ToCHWImage()):
        data = op(data)
    for arch in ("ser_layoutxlm_xfund_zh", "ser_layoutlmv2_xfund_zh"):
        got = model_inputs(image_ops(find_arch(arch).processing), bgr)[0][0]
        np.testing.assert_array_equal(got, data["image"])


def _ocr_checkpoint(models, arch, path):
    """The real PP-OCRv4 det/rec converted in process (the CLI path is tested elsewhere)."""
    from ptocr.converter import checkpoint, dictionary

    conv = convert(models(arch), arch)
    chars = dictionary.resolve(conv.spec, conv.weights,
                               getattr(conv.model.head, "out_channels", None))
    checkpoint.save(path, conv.model.state_dict(), {
        "arch": conv.spec.name, "config": conv.config, "source": [], "ptocr_version": "test",
        "parity": None, "extra": {"task": conv.spec.task, **(chars or {})},
        "processing": conv.processing})
    return path


def _lines(shape, n=14):
    """OCR lines standing in for the OCR (tests/test_kie_system.py runs the real one): boxes
    down the page, texts of the tokenizers' corpus."""
    from test_kie_processing import corpus

    h, w = shape[:2]
    out = []
    for i, text in enumerate(corpus(n, 5)):
        x0, y0 = 20 + 37 * (i % 3), 30 + i * (h - 60) // n
        x1, y1 = min(w - 1, x0 + 25 * len(text.split())), y0 + 20
        out.append({"box": [[x0, y0], [x1, y0], [x1, y1], [x0, y1]], "text": text,
                    "score": 0.99})
    return out


@pytest.fixture(scope="module")
def visual_kie(tmp_path_factory, models, tokenizers):  # noqa: F811
    """ptocr.KIE with small random LayoutXLM SER/RE checkpoints with the visual backbone
    (the OCR's lines given)."""
    import ptocr
    import test_kie_system
    from test_kie_system import _checkpoint

    out = tmp_path_factory.mktemp("kie_visual")
    det = _ocr_checkpoint(models, "PP-OCRv4_mobile_det", out / "det.pth")
    rec = _ocr_checkpoint(models, "PP-OCRv4_mobile_rec", out / "rec.pth")
    small = dict(test_kie_system.SMALL)
    test_kie_system.SMALL = {**small, "visual_backbone": VISUAL,
                             "image_feature_pool_shape": [7, 7, 16]}
    try:
        ser = _checkpoint("ser_layoutxlm_xfund_zh", out / "ser.pth", 1)
        re_ = _checkpoint("re_layoutxlm_xfund_zh", out / "re.pth", 2)
    finally:
        test_kie_system.SMALL = small
    kie = ptocr.KIE(det=det, rec=rec, ser=ser, re=re_, tokenizer=tokenizers["sentencepiece"])
    kie.ocr = lambda img, cls=True: _lines(img.shape)
    return kie, {"det": det, "rec": rec}, re_


from test_kie_processing import CLASSES, tokenizers  # noqa: E402,F401


def test_kie_with_the_page_equals_paddleocr_processing(visual_kie, testdata, tokenizers,  # noqa: F811,E501
                                                       tmp_path):
    """ptocr.KIE's SER labels equal PaddleOCR's own processing (label encode, pad, chunk,
    Resize/NormalizeImage/ToCHWImage of the RGB page, SER post-processing: the 2.10 wheel)
    around the same model and the same (given) OCR lines; RE runs on the page too."""
    import cv2
    import types

    from paddlenlp_ref import layoutxlm_tokenizer
    from ppocr_ref import ppocr_module

    system = visual_kie[0]
    bgr = cv2.imread(str(testdata / "images" / "img_12.jpg"))
    got = system(bgr)
    assert len({ln["label"] for ln in got["lines"]}) > 1
    class_path = tmp_path / "classes.txt"
    class_path.write_text("\n".join(CLASSES) + "\n")
    label_ops = ppocr_module("ppocr.data.imaug.label_ops")
    pad = ppocr_module("ppocr.data.imaug.vqa.token.vqa_token_pad")
    chunk = ppocr_module("ppocr.data.imaug.vqa.token.vqa_token_chunk")
    ops = ppocr_module("ppocr.data.imaug.operators")
    ser_post = ppocr_module("ppocr.postprocess.vqa_token_ser_layoutlm_postprocess")
    tok = layoutxlm_tokenizer(tokenizers["sentencepiece"] / "sentencepiece.bpe.model")
    tr = sys.modules["paddlenlp.transformers"]
    tr.LayoutXLMTokenizer = tr.LayoutLMTokenizer = tr.LayoutLMv2Tokenizer = \
        types.SimpleNamespace(from_pretrained=lambda _n: tok)
    lines = [[ln["box"], (ln["text"], ln["score"])] for ln in system.ocr(bgr, cls=False)]
    engine = types.SimpleNamespace(ocr=lambda _img, cls=False: [lines])
    data = {"image": bgr[:, :, ::-1]}
    for op in (label_ops.VQATokenLabelEncode(class_path=str(class_path), infer_mode=True,
                                             ocr_engine=engine, algorithm="LayoutXLM"),
               pad.VQATokenPad(max_seq_len=512, return_attention_mask=True, infer_mode=True),
               chunk.VQASerTokenChunk(max_seq_len=512, infer_mode=True),
               ops.Resize(size=[224, 224]),
               ops.NormalizeImage(std=[58.395, 57.12, 57.375], mean=[123.675, 116.28, 103.53],
                                  scale="1", order="hwc"), ops.ToCHWImage()):
        data = op(data)
    x = [torch.from_numpy(np.asarray(data[k])[None]) for k in
         ("input_ids", "bbox", "attention_mask", "token_type_ids", "image")]
    with torch.no_grad():
        logits = system.ser(x).numpy()
    ref = ser_post.VQASerTokenLayoutLMPostProcess(str(class_path))(
        logits, segment_offset_ids=[data["segment_offset_id"]], ocr_infos=[data["ocr_info"]])[0]
    assert len(got["lines"]) == len(ref) >= 10
    assert [(g["text"], g["label"]) for g in got["lines"]] == \
        [(r["transcription"], r["pred"]) for r in ref]
    assert {g["label"] for g in got["lines"]} - {"O"}
    assert isinstance(got["relations"], list)


def test_kie_refuses_a_visual_re_beside_a_vi_ser(visual_kie, tokenizers, testdata, tmp_path):  # noqa: F811,E501
    """A VI SER table prepares no page; a visual RE model beside it is one error line."""
    import cv2

    import ptocr
    from ptocr.errors import PtocrError
    from test_kie_system import _checkpoint

    system, paths, re_path = visual_kie
    vi = _checkpoint("ser_vi_layoutxlm_xfund_zh", tmp_path / "vi.pth", 1)
    kie = ptocr.KIE(det=paths["det"], rec=paths["rec"], ser=vi, re=re_path,
                    tokenizer=tokenizers["sentencepiece"])
    kie.ocr = lambda img, cls=True: _lines(img.shape)
    with pytest.raises(PtocrError, match="does not prepare it") as exc:
        kie(cv2.imread(str(testdata / "images" / "img_12.jpg")))
    assert "\n" not in str(exc.value)
