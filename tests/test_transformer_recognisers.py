"""SVTR, ViTSTR and NRTR, whole networks: paddle transcriptions of PaddleOCR's modules
(tests/paddle_transformer_ref.py) at small configurations of the real tables, every parameter
and BN statistic random, exported by paddle.jit.save and converted by the real `ptocr convert`
(program order, verified against Paddle Inference on random tensors and real word images
prepared by the table's own processing), the same weights as a training .pdparams converted
by name; pre- and post-processing against PaddleOCR 2.10's own operators; the OCR system and
the CLI errors with these recognisers.

Paddle 3.3 cannot save these networks as 2.x programs (FLAGS_enable_pir_api=0 fails on
matmul and gelu, "must be Value, but got Variable"), so the exports here are PIR programs;
test_legacy_program_export_is_impossible_here pins that fact."""

import copy
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import ptocr
from ppocr_ref import ppocr_module, wheel_root
from ptocr.converter import formats
from ptocr.converter.convert import convert
from ptocr.converter.mapping import find_arch
from ptocr.pipeline import read_image
from ptocr.pipeline.postprocess.rec_transformer import NRTRLabelDecode, ViTSTRLabelDecode
from ptocr.pipeline.preprocess.rec_fixed import GrayRecResizeImg, SVTRRecResizeImg

HERE = Path(__file__).parent
REF = HERE / "paddle_transformer_ref.py"

# small configurations of the real tables: (table, paddle twin config, table overrides)
SMALL = {
    "svtr": ("rec_svtr_tiny_none_ctc_ch", {
        "backbone": {"img_size": [32, 64], "embed_dim": [16, 24, 32], "depth": [2, 1, 2],
                     "num_heads": [2, 2, 4], "mixer": ["Local", "Conv", "Local", "Global",
                                                       "Global"],
                     "local_mixer": [[3, 5], [3, 3], [3, 5]], "out_channels": 24,
                     "out_char_num": 8, "prenorm": False, "mlp_ratio": 2},
        "classes": 12, "input": [3, 32, 64]},
        {"Backbone": {"name": "SVTRNet", "img_size": [32, 64], "embed_dim": [16, 24, 32],
                      "depth": [2, 1, 2], "num_heads": [2, 2, 4],
                      "mixer": ["Local", "Conv", "Local", "Global", "Global"],
                      "local_mixer": [[3, 5], [3, 3], [3, 5]], "out_channels": 24,
                      "out_char_num": 8, "prenorm": False, "mlp_ratio": 2,
                      "patch_merging": "Conv"}},
        {"SVTRRecResizeImg": {"image_shape": [3, 32, 64]}}),
    "vitstr": ("rec_vitstr_none_ce", {
        "backbone": {"img_size": [32, 64], "patch_size": [8, 8], "embed_dim": 24, "depth": 2,
                     "num_heads": 3, "seqlen": 10},
        "classes": 12, "input": [1, 32, 64]},
        {"Backbone": {"name": "ViTSTR", "img_size": [32, 64], "patch_size": [8, 8],
                      "embed_dim": 24, "depth": 2, "num_heads": 3, "seqlen": 10}},
        {"GrayRecResizeImg": {"image_shape": [64, 32]}}),
    "nrtr": ("rec_mtb_nrtr", {
        "head": {"d_model": 128, "nhead": 4, "num_encoder_layers": 2, "num_decoder_layers": 2,
                 "dim_feedforward": 64, "out_channels": 14, "max_len": 8},
        "input": [1, 8, 64]},
        {"Head": {"name": "Transformer", "d_model": 128, "nhead": 4, "num_encoder_layers": 2,
                  "num_decoder_layers": 2, "dim_feedforward": 64, "max_len": 8,
                  "beam_size": -1}},
        {"GrayRecResizeImg": {"image_shape": [64, 8]}}),
}
# dictionaries that fit the small heads: CTC 10 + blank + space; ViTSTR 10 + <s> </s>;
# NRTR 10 + blank <unk> <s> </s> (+ the projection's extra class)
DICT = list("abcdefghij")


def small_table(arch, tmp):
    """The real table with its Architecture, shapes and resize made small: a user table."""
    name, _, arch_over, pre_over = SMALL[arch]
    data = yaml.safe_load(find_arch(name).path.read_text(encoding="utf-8"))
    data["name"] = f"small_{name}"
    data["aliases"] = []
    data["Architecture"].update(copy.deepcopy(arch_over))
    shape = [1] + SMALL[arch][1]["input"]
    # decoding loops are the slow part: NRTR is checked on one random and one real input
    data["inputs"]["shapes"] = [shape] if arch == "nrtr" else [shape, [2] + shape[1:]]
    data["inputs"]["images"] = data["inputs"]["images"][:1 if arch == "nrtr" else 2]
    for entry in data["PreProcess"]["transform_ops"]:
        (op, params), = entry.items()
        params.update(pre_over.get(op, {}))
    path = tmp / f"small_{name}.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """arch -> (PIR export dir, training .pdparams, small table), paddle run in subprocesses
    (one export per architecture, side by side)."""
    tmp = tmp_path_factory.mktemp("transformer_rec")
    dict_file = tmp / "dict.txt"
    dict_file.write_text("\n".join(DICT) + "\n", encoding="utf-8")
    procs, out = {}, {}
    for arch, (_, cfg, _, _) in SMALL.items():
        d = tmp / arch
        d.mkdir()
        procs[arch] = subprocess.Popen([sys.executable, str(REF), arch, "pir", str(d),
                                        json.dumps(cfg)], stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, text=True)
        out[arch] = (d, Path(str(d) + "_train.pdparams"), small_table(arch, tmp))
    for arch, p in procs.items():
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]
    return out, dict_file, tmp


@pytest.fixture(scope="module")
def converted(exported):
    """arch -> verification rows of `ptocr convert --require-verify` on the export; the
    checkpoints are written beside the exports (tmp / '<arch>.pth')."""
    from conftest import run_cli

    out, dict_file, tmp = exported
    rows = {}
    for arch, (export, _, table) in out.items():
        pth, report = tmp / f"{arch}.pth", tmp / f"{arch}.json"
        space = ["--use-space-char"] if arch == "svtr" else ["--no-use-space-char"]
        res = run_cli("convert", "--arch", table, "--paddle-dir", export, "--out", pth,
                      "--rec-dict", dict_file, *space, "--require-verify", "--report", report)
        assert res.returncode == 0, res.stderr
        rep = json.loads(report.read_text())
        rows[arch] = rep["verify"]["results"] if "verify" in rep else rep["results"]
    return rows


@pytest.mark.parametrize("arch", list(SMALL))
def test_export_converts_and_verifies_with_the_cli(arch, exported, converted):
    out, dict_file, tmp = exported
    export, train, table = out[arch]
    pth, rows = tmp / f"{arch}.pth", converted[arch]
    assert all(r["pass"] for r in rows) and len(rows) >= 2
    assert any(r["input"].startswith("image ") for r in rows)  # real words, table's resize
    assert max(r["max_abs"] for r in rows) < 1e-4
    if arch == "nrtr":  # [token ids, probabilities]: the ids identical
        ids = [r for r in rows if r["output"] == 0]
        assert ids and all(r["max_abs"] == 0 for r in ids)
    # the training checkpoint of the same weights converts by name to the same model
    conv = convert(None, weights=formats.read(train), spec=find_arch(str(table)))
    assert conv.report.method == "names"
    a, b = ptocr.load(pth).state_dict(), conv.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


QKV = {"svtr": "backbone.blocks1.0.mixer.qkv.weight", "vitstr": "backbone.blocks.0.mixer.qkv.weight",
       "nrtr": "head.decoder.0.self_attn.qkv.weight"}


@pytest.mark.parametrize("arch", list(SMALL))
def test_a_deliberately_wrong_layout_is_refused(arch, exported, converted):
    """q and k swapped in one attention block (a plausible layout mistake): the verifier
    must fail it (the twins' random weights are sharpened so that it shows)."""
    from ptocr.converter.verify import verify

    out, _, tmp = exported
    export, _, table = out[arch]
    model = ptocr.load(tmp / f"{arch}.pth")
    w = model.state_dict()[QKV[arch]]
    d = w.shape[0] // 3
    with torch.no_grad():
        w.copy_(torch.cat([w[d:2 * d].clone(), w[:d].clone(), w[2 * d:].clone()]))
    report = verify(formats.read(export), model, find_arch(str(table)))
    assert not report["passed"]


def test_nrtr_greedy_loop_stops_where_the_program_stops():
    """PaddleOCR's forward_test leaves the loop once every row of the batch predicts </s>
    (and not before); the ids and probabilities gathered until then are the output."""
    from ptocr.models.heads.rec_nrtr_head import Transformer

    head = Transformer(d_model=16, nhead=2, num_encoder_layers=0, num_decoder_layers=1,
                       dim_feedforward=8, out_channels=6, max_len=10).eval()
    script = {1: [5, 4], 2: [3, 6], 3: [3, 3]}  # step -> argmax per row; </s> is 3

    def decode(tokens, memory):
        step = tokens.shape[1]
        logits = torch.zeros(2, step, 7)
        for row, cls in enumerate(script.get(step, [4, 4])):
            logits[row, -1, cls] = 5.0 + row
        return logits

    head.decode = decode
    seq, prob = head(torch.zeros(2, 4, 16))
    # step 2: row 0 says </s> but row 1 does not -> kept; step 3: both -> stop
    assert seq.tolist() == [[2, 5, 3], [2, 4, 6]]
    p0, p1 = [float(torch.softmax(torch.tensor([0.0] * 6 + [0.0]).index_fill(
        0, torch.tensor([0]), 5.0 + r), 0)[0]) for r in (0, 1)]
    assert torch.allclose(prob, torch.tensor([[1, p0, p0], [1, p1, p1]]))


def test_legacy_program_export_is_impossible_here(tmp_path):
    """Why the exports are PIR: paddle 3.3's 2.x (legacy IR) tracing refuses matmul."""
    code = ("import os; os.environ['FLAGS_enable_pir_api'] = '0'\n"
            "import paddle\n"
            "class M(paddle.nn.Layer):\n"
            "    def forward(self, x):\n"
            "        return paddle.matmul(x, x, transpose_y=True)\n"
            f"paddle.jit.save(M(), {str(tmp_path / 'm')!r}, input_spec=["
            "paddle.static.InputSpec([None, 3, 4], 'float32', 'x')])\n")
    script = tmp_path / "legacy_export.py"  # dy2static reads the source: a file, not -c
    script.write_text(code)
    res = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
    assert res.returncode != 0 and "must be Value, but got Variable" in res.stderr


# ---- the OCR system with these recognisers

@pytest.fixture(scope="module")
def det_checkpoint(tmp_path_factory, models):
    from conftest import run_cli

    path = tmp_path_factory.mktemp("det") / "det.pth"
    res = run_cli("convert", "--arch", "PP-OCRv4_mobile_det", "--paddle-dir",
                  models("PP-OCRv4_mobile_det"), "--out", path, "--no-verify")
    assert res.returncode == 0, res.stderr
    return path


def test_ocr_reads_with_each_recogniser(exported, converted, det_checkpoint, testdata, cli):
    """Preprocessing and decoding come from the checkpoint; the lines equal the recogniser
    run by hand on the same crops with PaddleOCR's own resize and decoder."""
    out, dict_file, tmp = exported
    img = testdata / "images" / "ger_1.jpg"
    ref_aug = ppocr_module("ppocr.data.imaug.rec_img_aug")
    ref_post = ppocr_module("ppocr.postprocess.rec_postprocess")
    for arch in SMALL:
        rec = ptocr.load(tmp / f"{arch}.pth")
        ocr = ptocr.OCR(det=det_checkpoint, rec=rec, drop_score=0.0)
        lines = ocr(img)
        assert lines, arch
        # by hand: the same crops, PaddleOCR's resize operator and label decoder
        crops = [ocr_crop(read_image(img), line["box"]) for line in lines[:4]]
        if arch == "svtr":
            pre = ref_aug.SVTRRecResizeImg(image_shape=[3, 32, 64], padding=False)
            post = ref_post.CTCLabelDecode(str(dict_file), use_space_char=True)
        else:
            pre = ref_aug.GrayRecResizeImg(**{
                "vitstr": dict(image_shape=[64, 32], resize_type="PIL",
                               inter_type="Image.BICUBIC", scale=False),
                "nrtr": dict(image_shape=[64, 8], resize_type="PIL")}[arch])
            post = (ref_post.ViTSTRLabelDecode if arch == "vitstr" else
                    ref_post.NRTRLabelDecode)(str(dict_file), use_space_char=False)
        for crop, line in zip(crops, lines):
            x = torch.from_numpy(pre({"image": crop})["image"][None])
            with torch.inference_mode():
                preds = rec(x)
            preds = [p.numpy() for p in preds] if isinstance(preds, tuple) else preds.numpy()
            (text, score), = post(preds)
            assert line["text"] == text, arch
            assert math.isclose(line["score"], score, rel_tol=1e-6) or (
                math.isnan(score) and math.isnan(line["score"]))
    # the CLI with NRTR as the recogniser
    res = cli("ocr", img, "--det", det_checkpoint, "--rec", tmp / "nrtr.pth", "--json",
              tmp / "nrtr_ocr.json", "--drop-score", "0", "--overwrite")
    assert res.returncode == 0, res.stderr
    assert json.loads((tmp / "nrtr_ocr.json").read_text(encoding="utf-8"))["ger_1.jpg"]


def ocr_crop(img, box):
    from ptocr.pipeline.boxes import get_rotate_crop_image

    return get_rotate_crop_image(img, np.array(box, dtype=np.float32))


def test_wrong_role_and_wrong_dictionary_are_one_line_errors(exported, det_checkpoint, tmp_path,
                                                             testdata, cli):
    out, dict_file, tmp = exported
    img = testdata / "images" / "ger_1.jpg"
    res = cli("ocr", img, "--det", det_checkpoint, "--rec", det_checkpoint, "--json",
              tmp_path / "o.json")
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert res.stderr.strip().startswith("error:") and len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o.json").exists()
    export, _, table = out["nrtr"]
    bad = tmp_path / "bad.txt"
    bad.write_text("\n".join(DICT[:7]) + "\n", encoding="utf-8")
    res = cli("convert", "--arch", table, "--paddle-dir", export, "--out", tmp_path / "n.pth",
              "--rec-dict", bad, "--no-verify")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "5 special tokens" in res.stderr and "the model has 15" in res.stderr
    assert not (tmp_path / "n.pth").exists()


# ---- processing against PaddleOCR 2.10's own operators

WORDS = ["ch_word_1.jpg", "ch_word_3.jpg", "en_word_1.png", "en_word_4.png"]


@pytest.mark.parametrize("params", [
    {"image_shape": [3, 32, 320], "padding": False},  # SVTR ch (predict_rec: svtr resize)
    {"image_shape": [3, 64, 256], "padding": False},  # SVTR en
    {"image_shape": [3, 32, 128], "padding": False},  # ParseQ
    {"image_shape": [3, 32, 100], "padding": True},
])
def test_svtr_resize_equals_paddleocr(testdata, params):
    ref = ppocr_module("ppocr.data.imaug.rec_img_aug").SVTRRecResizeImg(**params)
    for name in WORDS:
        img = read_image(testdata / "words" / name)
        ours, theirs = SVTRRecResizeImg(**params)({"image": img}), ref({"image": img})
        assert ours["image"].dtype == np.float32
        assert np.array_equal(ours["image"], theirs["image"]), name
        assert ours["valid_ratio"] == theirs["valid_ratio"]


@pytest.mark.parametrize("params", [
    dict(image_shape=[100, 32], resize_type="PIL"),  # NRTR (LANCZOS)
    dict(image_shape=[100, 32], resize_type="PIL", inter_type="Image.ANTIALIAS"),
    dict(image_shape=[224, 224], resize_type="PIL", inter_type="Image.BICUBIC", scale=False),
    dict(image_shape=[100, 32], resize_type="OpenCV"),
    dict(image_shape=[1, 32, 100], resize_type="PIL", padding=True),
])
def test_gray_resize_equals_paddleocr(testdata, params):
    aug = ppocr_module("ppocr.data.imaug.rec_img_aug")
    ref_params = dict(params)
    if ref_params.get("inter_type") == "Image.ANTIALIAS":  # gone from Pillow 10, = LANCZOS
        ref_params["inter_type"] = "Image.Resampling.LANCZOS"
    ref = aug.GrayRecResizeImg(**ref_params)
    for name in WORDS:
        img = read_image(testdata / "words" / name)
        ours, theirs = GrayRecResizeImg(**params)({"image": img}), ref({"image": img})
        assert ours["image"].dtype == np.float32 and ours["image"].shape == theirs["image"].shape
        assert np.array_equal(ours["image"], theirs["image"]), name


def test_predict_rec_resizes_for_nrtr_and_vitstr_as_the_tables_do(testdata):
    """tools/infer/predict_rec.py's own resize_norm_img for NRTR and ViTSTR (the inference
    tool, rather than the training operator) gives the tables' tensors."""
    import types

    src = wheel_root() / "tools" / "infer" / "predict_rec.py"
    text = src.read_text(encoding="utf-8")
    start = text.index("    def resize_norm_img(self, img, max_wh_ratio):")
    end = text.index("    def resize_norm_img_vl(")
    import textwrap

    import cv2
    from PIL import Image

    ns = {"cv2": cv2, "np": np, "Image": Image, "math": math}
    exec(textwrap.dedent(text[start:end]), ns)  # the method, verbatim from the wheel
    for algo, table in (("NRTR", "rec_mtb_nrtr"), ("ViTSTR", "rec_vitstr_none_ce")):
        spec = find_arch(table)
        (_, params), = spec.processing["PreProcess"]["transform_ops"][0].items()
        w, h = params["image_shape"]
        fake = types.SimpleNamespace(rec_image_shape=[1, h, w], rec_algorithm=algo,
                                     use_onnx=False)
        ours = GrayRecResizeImg(**params)
        for name in WORDS:
            img = read_image(testdata / "words" / name)
            assert np.array_equal(ours({"image": img})["image"],
                                  ns["resize_norm_img"](fake, img, w / h)), (algo, name)


def test_nrtr_and_vitstr_decoders_equal_paddleocr(tmp_path):
    post = ppocr_module("ppocr.postprocess.rec_postprocess")
    chars = list("abcdefghijklmnop")
    dict_file = tmp_path / "dict.txt"
    dict_file.write_text("\n".join(chars) + "\n", encoding="utf-8")
    rng = np.random.RandomState(3)
    # NRTR greedy outputs: <s> first, then ids over the projection's classes (incl. the
    # extra one beyond the label list, which PaddleOCR skips), </s> somewhere or nowhere
    n_cls = len(chars) + 4 + 1
    ids = rng.randint(4, n_cls + 1, (6, 12))
    ids[:, 0] = 2
    ids[0, 5] = 3
    ids[1, 1] = 3  # empty read
    ids[2, 7:] = 3
    probs = rng.uniform(0.1, 1, ids.shape).astype(np.float32)
    probs[:, 0] = 1
    for space in (False, True):
        ours = NRTRLabelDecode(chars, use_space_char=space)([ids, probs])
        ref = post.NRTRLabelDecode(str(dict_file), use_space_char=space)([ids, probs])
        assert [t for t, _ in ours] == [t for t, _ in ref]
        assert np.allclose([s for _, s in ours], [s for _, s in ref], equal_nan=True)
        assert ours[1][0] == "" and math.isnan(ours[1][1])
    # ViTSTR: per-position probabilities, position 0 the class token
    p = rng.dirichlet(np.ones(len(chars) + 2) * 0.3, size=(5, 27)).astype(np.float32)
    p[0, 4, 1] = 5.0  # </s> early in row 0
    ours = ViTSTRLabelDecode(chars)([p])
    ref = post.ViTSTRLabelDecode(str(dict_file))(p)
    assert [t for t, _ in ours] == [t for t, _ in ref] and ours[0][0] == ref[0][0]
    assert np.allclose([s for _, s in ours], [s for _, s in ref])


# ---- SVTRNet options the tables do not use, against the paddle transcription in-process

@pytest.mark.parametrize("types", ["Pool", "Conv"])
def test_svtr_patch_merging(types):
    import paddle_transformer_ref as P
    from paddle_ref import load_into, max_diff, randomize
    from ptocr.models.backbones.svtrnet import SubSample

    ref = randomize(P.SubSample(8, 12, types), seed=2)
    ours = load_into(SubSample(8, 12, types), ref)
    x = np.random.RandomState(1).uniform(-2, 2, (2, 8, 5, 9)).astype(np.float32)
    assert max_diff(ref, ours, x) < 1e-5


@pytest.mark.parametrize("merging,prenorm,sub_num", [("Pool", True, 2), (None, False, 3),
                                                     ("Conv", True, 3)])
def test_svtr_backbone_options(merging, prenorm, sub_num):
    import paddle_transformer_ref as P
    from paddle_ref import load_into, max_diff
    from ptocr.models.backbones.svtrnet import SVTRNet

    dims = [16, 24, 32] if merging else [16, 16, 16]  # without merging the width stays
    cfg = dict(img_size=[32, 64], embed_dim=dims, depth=[1, 1, 1], num_heads=[2, 2, 4],
               mixer=["Local", "Global", "Conv"], local_mixer=[[3, 3], [3, 3], [3, 3]],
               patch_merging=merging or "None", out_channels=20, out_char_num=6, prenorm=prenorm,
               sub_num=sub_num, mlp_ratio=2)
    ref = P.randomize(P.SVTRNet(**cfg), seed=3)
    ours = load_into(SVTRNet(**cfg), ref)
    x = np.random.RandomState(2).uniform(-1, 1, (2, 3, 32, 64)).astype(np.float32)
    assert max_diff(ref, ours, x) < 1e-5
