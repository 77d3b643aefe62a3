"""KIE processing against PaddleOCR 2.10's own code (tests/ppocr_ref.py): VQATokenLabelEncode
(label_ops.py), VQATokenPad, VQASerTokenChunk, VQASerTokenLayoutLMPostProcess,
VQAReTokenLayoutLMPostProcess and tools/infer_kie_token_ser_re.py's make_input, run as
ppstructure/kie/predict_kie_token_ser.py runs them (infer_mode), on tokenizers trained here:
a sentencepiece model (checked against PaddleNLP's own LayoutXLMTokenizer, tests/
paddlenlp_ref.py) and a WordPiece vocabulary. Then the KIE system and `ptocr kie` on a real
image with real det/rec weights and small random SER/RE models, and its errors."""

import ast
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import run_cli
from paddlenlp_ref import layoutxlm_tokenizer
from ppocr_ref import ppocr_module, wheel_root
from ptocr.pipeline.postprocess.kie import (VQAReTokenLayoutLMPostProcess,
                                            VQASerTokenLayoutLMPostProcess)
from ptocr.pipeline.preprocess.kie import (KieTokenizer, VQASerTokenChunk, VQATokenLabelEncode,
                                           VQATokenPad, make_re_input)

CLASSES = ["QUESTION", "ANSWER", "HEADER"]
WORDS = ("name date total amount invoice number address phone email company price tax "
         "signature 姓名 日期 金额 地址 电话 公司 合计 发票 号码").split()


def corpus(n=400, seed=0):
    rng = np.random.RandomState(seed)
    return [" ".join(rng.choice(WORDS, rng.randint(2, 7))) + f" {rng.randint(0, 10**6)}"
            for _ in range(n)]


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory):
    """{kind: folder}: a sentencepiece model as PaddleNLP's LayoutXLM folder names it, and a
    WordPiece vocab.txt, both trained here."""
    import sentencepiece as spm
    from tokenizers import BertWordPieceTokenizer

    root = tmp_path_factory.mktemp("tok")
    sp_dir, wp_dir = root / "sp", root / "wp"
    sp_dir.mkdir(), wp_dir.mkdir()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(corpus()),
                                   model_prefix=str(sp_dir / "sentencepiece.bpe"),
                                   vocab_size=90, character_coverage=1.0, minloglevel=2)
    wp = BertWordPieceTokenizer(lowercase=True)
    wp.train_from_iterator(corpus(), vocab_size=110, min_frequency=1)
    wp.save_model(str(wp_dir))
    big = root / "big"  # a vocabulary larger than the small models' 120 rows
    big.mkdir()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(corpus(3000, 1)),
                                   model_prefix=str(big / "sentencepiece.bpe"),
                                   vocab_size=200, character_coverage=1.0, minloglevel=2)
    return {"sentencepiece": sp_dir, "wordpiece": wp_dir, "big": big}


def test_sentencepiece_ids_are_paddlenlps(tokenizers):
    ours = KieTokenizer(tokenizers["sentencepiece"])
    ref = layoutxlm_tokenizer(tokenizers["sentencepiece"] / "sentencepiece.bpe.model")
    assert ours.vocab_size == ref.vocab_size == 92
    assert ours.pad_token_id == ref.pad_token_id == 1
    for text in corpus(50, 3) + ["unseen ÆØÅ ☃ text", "a"]:
        assert ours.encode(text)["input_ids"] == ref.encode(text)["input_ids"], text
        assert ours.tokenize(text) == ref.tokenize(text)


def test_wordpiece_wraps_with_cls_and_sep(tokenizers):
    tok = KieTokenizer(tokenizers["wordpiece"])
    ids = tok.encode("Invoice number 42")["input_ids"]
    vocab = (tokenizers["wordpiece"] / "vocab.txt").read_text().splitlines()
    assert vocab[ids[0]] == "[CLS]" and vocab[ids[-1]] == "[SEP]"
    assert tok.pad_token_id == vocab.index("[PAD]")
    assert tok.tokenize("Invoice") == ["invoice"]


def ocr_lines(n, seed):
    """Lines as PaddleOCR's OCR engine returns them: [box, (text, score)]."""
    rng = np.random.RandomState(seed)
    # the top two lines share a row, right one first: PaddleOCR's tb-yx ordering leaves the
    # first pair as sorted by y (its inner loop never reaches index 0)
    lines = [[[[300.0, 2.0], [400.0, 2.0], [400.0, 20.0], [300.0, 20.0]], ("total 12", 0.9)],
             [[[50.0, 8.0], [200.0, 8.0], [200.0, 26.0], [50.0, 26.0]], ("name 姓名", 0.9)]]
    for _ in range(n):
        x, y = rng.randint(0, 700), rng.randint(40, 900)
        w, h = rng.randint(30, 250), rng.randint(12, 30)
        box = [[x, y], [x + w, y], [x + w, y + h], [x, y + h]]
        text = " ".join(rng.choice(WORDS, rng.randint(1, 5)))
        lines.append([[[float(a), float(b)] for a, b in box], (text, 0.9)])
    return lines


@pytest.fixture(scope="module")
def paddleocr_ops(tmp_path_factory):
    """PaddleOCR's SER pre-processing as predict_kie_token_ser builds it, with the tokenizer
    PaddleOCR would take from PaddleNLP given as the folder's."""
    import types

    label_ops = ppocr_module("ppocr.data.imaug.label_ops")
    pad = ppocr_module("ppocr.data.imaug.vqa.token.vqa_token_pad")
    chunk = ppocr_module("ppocr.data.imaug.vqa.token.vqa_token_chunk")
    class_path = tmp_path_factory.mktemp("cls") / "class_list_xfun.txt"
    class_path.write_text("\n".join(CLASSES) + "\n")

    def build(tokenizer, **params):
        stub = types.SimpleNamespace(from_pretrained=lambda _name: tokenizer)
        tr = sys.modules["paddlenlp.transformers"]
        tr.LayoutXLMTokenizer = tr.LayoutLMTokenizer = tr.LayoutLMv2Tokenizer = stub

        def run(image, lines):
            engine = types.SimpleNamespace(ocr=lambda img, cls=False: [lines])
            enc = label_ops.VQATokenLabelEncode(class_path=str(class_path), contains_re=False,
                                                infer_mode=True, ocr_engine=engine, **params)
            data = enc({"image": image})
            data = pad.VQATokenPad(max_seq_len=512, return_attention_mask=True,
                                   infer_mode=True)(data)
            return chunk.VQASerTokenChunk(max_seq_len=512, infer_mode=True)(data)
        return run
    return build, class_path


def ours(tokenizer, image, lines, **params):
    enc = VQATokenLabelEncode(contains_re=False, infer_mode=True, tokenizer=tokenizer, **params)
    data = {"image": image, "ocr_info": [{"transcription": t, "points": b}
                                         for b, (t, _) in lines]}
    data = VQATokenPad(max_seq_len=512, return_attention_mask=True)(enc(data))
    return VQASerTokenChunk(max_seq_len=512)(data)


@pytest.mark.parametrize("kind", ["sentencepiece", "wordpiece"])
@pytest.mark.parametrize("params", [{"order_method": "tb-yx"},
                                    {"use_textline_bbox_info": False},
                                    {"add_special_ids": True}],
                         ids=["tb-yx", "word boxes", "special ids"])
@pytest.mark.parametrize("n", [12, 150], ids=["12 lines", "150 lines (cut at 512)"])
def test_ser_preprocessing_equals_paddleocr(tokenizers, paddleocr_ops, kind, params, n):
    build, _ = paddleocr_ops
    # PaddleOCR is handed PaddleNLP's tokenizer for sentencepiece, ours for WordPiece
    tok = KieTokenizer(tokenizers[kind])
    ref_tok = (layoutxlm_tokenizer(tokenizers[kind] / "sentencepiece.bpe.model")
               if kind == "sentencepiece" else tok)
    image = np.zeros((1000, 800, 3), np.uint8)
    lines = ocr_lines(n, seed=n)
    ref = build(ref_tok, **params)(image, lines)
    got = ours(tok, image, lines, **params)
    for key in ("input_ids", "bbox", "attention_mask", "token_type_ids"):
        np.testing.assert_array_equal(got[key], ref[key], err_msg=key)
        assert got[key].dtype == ref[key].dtype and len(got[key]) == 512
    assert got["segment_offset_id"] == ref["segment_offset_id"]
    assert got["entities"] == ref["entities"]
    assert [i["transcription"] for i in got["ocr_info"]] == \
        [i["transcription"] for i in ref["ocr_info"]]
    assert [i["bbox"] for i in got["ocr_info"]] == [i["bbox"] for i in ref["ocr_info"]]


def _paddleocr_make_input():
    """make_input from tools/infer_kie_token_ser_re.py, compiled alone (the module imports
    PaddleOCR's modeling code, which no wheel ships)."""
    import paddle

    path = wheel_root() / "tools" / "infer_kie_token_ser_re.py"
    tree = ast.parse(path.read_text())
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "make_input")
    scope = {"np": np, "paddle": paddle}
    exec(compile(ast.Module([fn], []), str(path), "exec"), scope)
    return scope["make_input"]


def test_ser_and_re_postprocessing_equal_paddleocr(paddleocr_ops, tokenizers):
    _, class_path = paddleocr_ops
    ref_ser = ppocr_module("ppocr.postprocess.vqa_token_ser_layoutlm_postprocess")
    ref_re = ppocr_module("ppocr.postprocess.vqa_token_re_layoutlm_postprocess")
    tok = KieTokenizer(tokenizers["sentencepiece"])
    image = np.zeros((1000, 800, 3), np.uint8)
    data = ours(tok, image, ocr_lines(20, 5), order_method="tb-yx")
    rng = np.random.RandomState(0)
    logits = rng.randn(1, 512, 7).astype(np.float32)
    logits[0, :, 0] -= 1.5  # fewer O lines, so that RE gets entities
    ref_lines = ref_ser.VQASerTokenLayoutLMPostProcess(str(class_path))(
        logits, segment_offset_ids=[data["segment_offset_id"]],
        ocr_infos=[json.loads(json.dumps(data["ocr_info"]))])[0]
    got_lines = VQASerTokenLayoutLMPostProcess(class_list=CLASSES)(
        [logits], segment_offset_ids=[data["segment_offset_id"]],
        ocr_infos=[json.loads(json.dumps(data["ocr_info"]))])[0]
    assert [(r["pred_id"], r["pred"]) for r in got_lines] == \
        [(r["pred_id"], r["pred"]) for r in ref_lines]
    assert len({r["pred"] for r in got_lines}) >= 3

    # RE input as make_input builds it from the SER inputs (KeepKeys order) and results
    ser_inputs = [data["input_ids"][None], data["bbox"][None], data["attention_mask"][None],
                  data["token_type_ids"][None], None, None, None, None, [data["entities"]]]
    ref_in, ref_idx = _paddleocr_make_input()(ser_inputs, [ref_lines])
    ents, rels, idx = make_re_input(data, got_lines, 512)
    np.testing.assert_array_equal(ents[None], ref_in[5])
    np.testing.assert_array_equal(rels[None], ref_in[6])
    assert idx == ref_idx[0]

    # RE decoding on pred_relations as the RE model lays them out
    n = int(rels[0, 0])
    pred = np.full((1, 513 * 513, 7, 2), -1, np.int64)
    chosen = [1, 2, 2, n] if n >= 2 else [1]  # a repeated tail: linked once
    pred[0, 0] = len(chosen)
    for k, r in enumerate(chosen, 1):
        h, t = rels[r]
        pred[0, k] = [[h, -1], ents[h + 1, :2], [ents[h + 1, 2], -1], [t, -1],
                      ents[t + 1, :2], [ents[t + 1, 2], -1], [1, -1]]
    want = ref_re.VQAReTokenLayoutLMPostProcess()(
        {"pred_relations": pred}, ser_results=[ref_lines], entity_idx_dict_batch=ref_idx)[0]
    got = VQAReTokenLayoutLMPostProcess()([None, None, pred], ser_results=[got_lines],
                                          entity_idx_dict_batch=[idx])[0]
    assert [(h["transcription"], t["transcription"]) for h, t in got] == \
        [(h["transcription"], t["transcription"]) for h, t in want]
    assert 1 <= len(got) < len(chosen) or n < 2
