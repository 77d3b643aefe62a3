"""The KIE system (`ptocr kie`, ptocr.KIE) on a real image with the real PP-OCRv4 det/rec and
small VI-LayoutXLM SER/RE checkpoints (random weights; their parity with PaddleNLP is
tests/test_kie_layoutxlm.py's): its lines and links equal PaddleOCR's own KIE processing
(label encode, pad, chunk, SER post-processing, make_input, RE post-processing from the 2.10
wheel) run on the same OCR lines and models. And its one-line errors."""

import json
import types

import cv2
import numpy as np
import pytest
import torch

from conftest import run_cli
from ppocr_ref import ppocr_module
from ptocr.converter import checkpoint
from ptocr.converter.mapping import find_arch
from ptocr.errors import PtocrError
from ptocr.models import build
from test_kie_processing import CLASSES, _paddleocr_make_input, tokenizers  # noqa: F401

SMALL = {"hidden_size": 48, "coordinate_size": 8, "num_hidden_layers": 2,
         "num_attention_heads": 4, "intermediate_size": 64, "vocab_size": 120}
IMAGE = "images/img_12.jpg"


def _checkpoint(arch, path, seed):
    """A converted-looking checkpoint of the table's network at a small size, random."""
    spec = find_arch(arch)
    config = dict(spec.architecture)
    config["Backbone"] = {**config["Backbone"], **SMALL,
                          **({"num_classes": 7} if "Ser" in config["Backbone"]["name"] else {})}
    torch.manual_seed(seed)
    model = build(config)
    with torch.no_grad():  # torch's default initialisation; a sharp SER classifier without
        if "Ser" in config["Backbone"]["name"]:  # "other", so lines get mixed labels for RE
            model.backbone.model.classifier.weight *= 20.0
            model.backbone.model.classifier.bias[0] -= 100.0
    checkpoint.save(path, model.state_dict(), {
        "arch": spec.name, "config": config, "source": [], "ptocr_version": "test",
        "parity": None, "extra": {"task": spec.task}, "processing": spec.processing})
    return path


@pytest.fixture(scope="module")
def setup(tmp_path_factory, models, tokenizers):  # noqa: F811
    out = tmp_path_factory.mktemp("kie")
    paths = {}
    for arch in ("PP-OCRv4_mobile_det", "PP-OCRv4_mobile_rec"):
        paths[arch] = out / f"{arch}.pth"
        res = run_cli("convert", "--arch", arch, "--paddle-dir", models(arch), "--out",
                      paths[arch], "--no-verify")
        assert res.returncode == 0, res.stderr
    paths["ser"] = _checkpoint("ser_vi_layoutxlm_xfund_zh", out / "ser.pth", 1)
    paths["re"] = _checkpoint("re_vi_layoutxlm_xfund_zh", out / "re.pth", 2)
    paths["out"] = out
    return paths


@pytest.fixture(scope="module")
def system(setup, tokenizers):  # noqa: F811
    import ptocr

    kie = ptocr.KIE(det=setup["PP-OCRv4_mobile_det"], rec=setup["PP-OCRv4_mobile_rec"],
                    ser=setup["ser"], re=setup["re"], tokenizer=tokenizers["sentencepiece"])
    ocr, seen = kie.ocr, {}

    def once(img, cls=True):  # the OCR of one image is computed once for every test here
        key = (img.shape, img.tobytes()[:4096], cls)
        if key not in seen:
            seen[key] = ocr(img, cls=cls)
        return seen[key]
    kie.ocr = once
    return kie


@pytest.fixture(scope="module")
def result(system, testdata):
    return system(cv2.imread(str(testdata / IMAGE)))


def paddleocr_kie(system, img, tokenizer_dir, class_path):
    """predict_kie_token_ser(_re)'s processing with PaddleOCR's own operators around the
    same models, on the lines of the same OCR."""
    from paddlenlp_ref import layoutxlm_tokenizer
    import sys

    label_ops = ppocr_module("ppocr.data.imaug.label_ops")
    pad = ppocr_module("ppocr.data.imaug.vqa.token.vqa_token_pad")
    chunk = ppocr_module("ppocr.data.imaug.vqa.token.vqa_token_chunk")
    ser_post = ppocr_module("ppocr.postprocess.vqa_token_ser_layoutlm_postprocess")
    re_post = ppocr_module("ppocr.postprocess.vqa_token_re_layoutlm_postprocess")
    tok = layoutxlm_tokenizer(tokenizer_dir / "sentencepiece.bpe.model")
    tr = sys.modules["paddlenlp.transformers"]
    tr.LayoutXLMTokenizer = tr.LayoutLMTokenizer = tr.LayoutLMv2Tokenizer = \
        types.SimpleNamespace(from_pretrained=lambda _n: tok)
    lines = [[ln["box"], (ln["text"], ln["score"])] for ln in system.ocr(img, cls=False)]
    engine = types.SimpleNamespace(ocr=lambda _img, cls=False: [lines])
    data = label_ops.VQATokenLabelEncode(class_path=str(class_path), infer_mode=True,
                                         ocr_engine=engine, order_method="tb-yx")({"image": img})
    data = pad.VQATokenPad(max_seq_len=512, return_attention_mask=True, infer_mode=True)(data)
    data = chunk.VQASerTokenChunk(max_seq_len=512, infer_mode=True)(data)
    x = [torch.from_numpy(data[k][None]) for k in ("input_ids", "bbox", "attention_mask",
                                                   "token_type_ids")]
    with torch.no_grad():
        logits = system.ser(x).numpy()
    ser = ser_post.VQASerTokenLayoutLMPostProcess(str(class_path))(
        logits, segment_offset_ids=[data["segment_offset_id"]], ocr_infos=[data["ocr_info"]])
    ser_inputs = [a[None] for a in (data["input_ids"], data["bbox"], data["attention_mask"],
                                    data["token_type_ids"])] + [None] * 4 + [[data["entities"]]]
    re_in, idx = _paddleocr_make_input()(ser_inputs, ser)
    with torch.no_grad():
        out = system.re(x + [torch.from_numpy(re_in[5]), torch.from_numpy(re_in[6])])
    pairs = re_post.VQAReTokenLayoutLMPostProcess()(
        {"pred_relations": out["pred_relations"].numpy()}, ser_results=ser,
        entity_idx_dict_batch=idx)[0]
    return ser[0], pairs


def test_kie_equals_paddleocr_processing(system, result, testdata, tokenizers,  # noqa: F811
                                         tmp_path):
    class_path = tmp_path / "classes.txt"
    class_path.write_text("\n".join(CLASSES) + "\n")
    img = cv2.imread(str(testdata / IMAGE))
    got = result
    ref_lines, ref_pairs = paddleocr_kie(system, img, tokenizers["sentencepiece"], class_path)
    assert len(got["lines"]) == len(ref_lines) >= 10
    assert [(g["text"], g["label"]) for g in got["lines"]] == \
        [(r["transcription"], r["pred"]) for r in ref_lines]
    assert {g["label"] for g in got["lines"]} - {"O"}  # the random model labels something
    texts = [g["text"] for g in got["lines"]]
    assert [(texts[h], texts[t]) for h, t in got["relations"]] == \
        [(h["transcription"], t["transcription"]) for h, t in ref_pairs]
    assert got["relations"], "the random RE model links some pair"


def test_cli_writes_json_and_visualisation(setup, result, testdata, tokenizers,  # noqa: F811
                                           tmp_path):
    out, vis = tmp_path / "kie.json", tmp_path / "vis"
    res = run_cli("kie", testdata / IMAGE, "--det", setup["PP-OCRv4_mobile_det"], "--rec",
                  setup["PP-OCRv4_mobile_rec"], "--ser", setup["ser"], "--re", setup["re"],
                  "--tokenizer", tokenizers["sentencepiece"], "--json", out, "--vis-dir", vis)
    assert res.returncode == 0, res.stderr
    got = json.loads(out.read_text(encoding="utf-8"))["img_12.jpg"]
    ref = result
    assert [(a["text"], a["label"]) for a in got["lines"]] == \
        [(b["text"], b["label"]) for b in ref["lines"]]
    assert got["relations"] == ref["relations"]
    assert cv2.imread(str(vis / "img_12_kie.jpg")).shape[:2] == \
        cv2.imread(str(testdata / IMAGE)).shape[:2]


def test_no_text_is_one_line_and_no_files(setup, tokenizers, tmp_path):  # noqa: F811
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((200, 300, 3), 255, np.uint8))
    out, vis = tmp_path / "kie.json", tmp_path / "vis"
    res = run_cli("kie", blank, "--det", setup["PP-OCRv4_mobile_det"], "--rec",
                  setup["PP-OCRv4_mobile_rec"], "--ser", setup["ser"], "--tokenizer",
                  tokenizers["sentencepiece"], "--json", out, "--vis-dir", vis)
    assert res.returncode == 2
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "no text" in res.stderr and "Traceback" not in res.stderr
    assert not out.exists() and not any(vis.glob("*")) if vis.exists() else not out.exists()


@pytest.mark.parametrize("case", ["re as ser", "ser as re", "det as ser", "big vocabulary"])
def test_wrong_inputs_are_refused(setup, tokenizers, case):  # noqa: F811
    import ptocr

    kwargs = dict(det=setup["PP-OCRv4_mobile_det"], rec=setup["PP-OCRv4_mobile_rec"],
                  ser=setup["ser"], tokenizer=tokenizers["sentencepiece"])
    expect = {"re as ser": "where a SER model", "ser as re": "where an RE model",
              "det as ser": "a det model was given where a kie model",
              "big vocabulary": "does not fit the model's word embeddings (120)"}[case]
    if case == "re as ser":
        kwargs["ser"] = setup["re"]
    elif case == "ser as re":
        kwargs["re"] = setup["ser"]
    elif case == "det as ser":
        kwargs["ser"] = setup["PP-OCRv4_mobile_det"]
    else:
        kwargs["tokenizer"] = tokenizers["big"]
    with pytest.raises(PtocrError, match=expect.replace("(", r"\(").replace(")", r"\)")) as exc:
        ptocr.KIE(**kwargs)
    assert "\n" not in str(exc.value)


def test_cli_refuses_a_wrong_kind_checkpoint(setup, tokenizers, testdata, tmp_path):  # noqa: F811,E501
    out = tmp_path / "kie.json"
    res = run_cli("kie", testdata / IMAGE, "--det", setup["PP-OCRv4_mobile_det"], "--rec",
                  setup["PP-OCRv4_mobile_rec"], "--ser", setup["re"], "--tokenizer",
                  tokenizers["sentencepiece"], "--json", out)
    assert res.returncode != 0 and not out.exists()
    assert res.stderr.strip().count("\n") == 0 and res.stderr.startswith("error:"), res.stderr
