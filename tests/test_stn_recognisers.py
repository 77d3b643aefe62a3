"""Recognisers with ASTER's STN_ON rectification: the English SVTR tables (rec_svtrnet tiny,
small, base). Whole networks: paddle twins of PaddleOCR's modules (tests/paddle_twins_stn.py,
SVTRNet and CTC from tests/paddle_transformer_ref.py) at small configurations of the real
tables, every parameter and BN statistic random, exported by paddle.jit.save (PIR: paddle 3.3
cannot trace SVTR's matmuls into a 2.x program, see test_transformer_recognisers.py) and saved
as training .pdparams, converted by the real `ptocr convert` and verified; pre- and
post-processing against PaddleOCR 2.10's own code; the OCR system with the converted model."""

import dataclasses
import json
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
from ptocr.converter.verify import verify
from ptocr.pipeline import model_inputs, read_image

HERE = Path(__file__).parent
TWINS = HERE / "paddle_twins_stn.py"
DICT = list("abcdefghijk")  # 11 characters + CTC blank = the small head's 12 classes

# the real table's STN (64x256 in, 32x100 out) with a small SVTRNet behind it
SMALL_BACKBONE = {"img_size": [32, 100], "embed_dim": [16, 24, 32], "depth": [1, 1, 1],
                  "num_heads": [2, 2, 4], "mixer": ["Local", "Global", "Global"],
                  "local_mixer": [[3, 5], [3, 5], [3, 5]], "out_channels": 24,
                  "out_char_num": 25, "prenorm": False, "mlp_ratio": 2}
CASES = {"svtr_en": ("rec_svtrnet", {"backbone": SMALL_BACKBONE, "classes": 12,
                                     "input": [3, 64, 256]})}


def small_table(case, tmp):
    name, cfg = CASES[case]
    data = yaml.safe_load(find_arch(name).path.read_text(encoding="utf-8"))
    data["name"], data["aliases"] = f"small_{name}", []
    data["Architecture"]["Backbone"].update(cfg["backbone"])
    # one random batch of two and two real words (time)
    data["inputs"]["shapes"] = [[2] + cfg["input"]]
    data["inputs"]["images"] = data["inputs"]["images"][:2]
    path = tmp / f"small_{name}.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """case -> (PIR export dir, training .pdparams, small table); one paddle run each."""
    tmp = tmp_path_factory.mktemp("stn_rec")
    (tmp / "dict.txt").write_text("\n".join(DICT) + "\n", encoding="utf-8")
    procs, out = {}, {}
    for case, (_, cfg) in CASES.items():
        d = tmp / case
        d.mkdir()
        procs[case] = subprocess.Popen([sys.executable, str(TWINS), case, "pir", str(d),
                                        json.dumps(cfg)], stderr=subprocess.PIPE, text=True)
        out[case] = (d, Path(str(d) + "_train.pdparams"), small_table(case, tmp))
    for case, p in procs.items():
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]
    return out, tmp


@pytest.fixture(scope="module")
def converted(exported):
    """case -> report of `ptocr convert --require-verify` on the export (checkpoint written
    to tmp / '<case>.pth')."""
    from conftest import run_cli

    out, tmp = exported
    reports = {}
    for case, (export, _, table) in out.items():
        res = run_cli("convert", "--arch", table, "--paddle-dir", export, "--out",
                      tmp / f"{case}.pth", "--rec-dict", tmp / "dict.txt",
                      "--no-use-space-char", "--require-verify", "--report",
                      tmp / f"{case}.json")
        assert res.returncode == 0, res.stderr
        reports[case] = json.loads((tmp / f"{case}.json").read_text())
    return reports


def quick(spec):
    """The table's verification on one real word only (time)."""
    return dataclasses.replace(spec, inputs={"shapes": [], "images": spec.inputs["images"][:1]})


def rows_of(report):
    return report["verify"]["results"] if "verify" in report else report["results"]


@pytest.mark.parametrize("case", list(CASES))
def test_export_converts_and_verifies_in_float64(case, exported, converted):
    rows = rows_of(converted[case])
    assert all(r["pass"] for r in rows) and len(rows) == 3
    assert any(r["input"].startswith("image ") for r in rows)  # real words, table's resize
    assert max(r["float64"]["max_abs"] for r in rows) < 1e-6
    assert max(r["max_abs"] for r in rows) < 1e-4


@pytest.mark.parametrize("case", list(CASES))
def test_training_checkpoint_converts(case, exported, converted):
    """The .pdparams holds every parameter but not the TPS matrices (plain tensors in
    PaddleOCR): they are computed (float64, rounded), Paddle's float32 inverse being
    ~5e-4 away; the result still passes the verifier against the export."""
    out, tmp = exported
    export, train, table = out[case]
    conv = convert(None, weights=formats.read(train), spec=find_arch(str(table)))
    assert conv.report.method == "names"
    a, b = ptocr.load(tmp / f"{case}.pth").state_dict(), conv.model.state_dict()
    assert a.keys() == b.keys()
    computed = {"transform.tps.inverse_kernel", "transform.tps.target_coordinate_repr"}
    assert all(torch.equal(a[k], b[k]) for k in a if k not in computed)
    for k in computed:
        assert 0 < (a[k] - b[k]).abs().max() < 1e-3 or torch.equal(a[k], b[k])
    report = verify(formats.read(export), conv.model, quick(find_arch(str(table))))
    assert report["passed"], report


def test_wrong_sampling_or_matrices_are_refused(exported, converted, monkeypatch):
    """Negative controls: grid_sample with torch's default align_corners=False, or a TPS
    inverse off by 0.1%, must fail the verifier."""
    import ptocr.models.transforms.stn as stn

    out, tmp = exported
    export, _, table = out["svtr_en"]
    spec = quick(find_arch(str(table)))
    model = ptocr.load(tmp / "svtr_en.pth")
    original = stn.F.grid_sample
    monkeypatch.setattr(stn.F, "grid_sample",
                        lambda *a, **k: original(*a, **{**k, "align_corners": False}))
    assert not verify(formats.read(export), model, spec)["passed"]
    monkeypatch.setattr(stn.F, "grid_sample", original)
    with torch.no_grad():
        model.transform.tps.inverse_kernel.mul_(1.001)
    assert not verify(formats.read(export), model, spec)["passed"]


# ---- processing against PaddleOCR's own code

WORDS = ["en_word_1.png", "en_word_3.png", "ch_word_1.jpg", "ch_word_3.jpg"]


@pytest.mark.parametrize("table", ["rec_svtrnet", "rec_svtrnet_small", "rec_svtrnet_base"])
def test_svtr_en_input_equals_predict_rec(table, testdata):
    """The table's processing gives, on real words, the tensor of predict_rec.py's own
    resize_norm_img_svtr (--rec_algorithm SVTR --rec_image_shape 3,64,256, as PaddleOCR's
    SVTR doc runs it) and of rec_img_aug.SVTRRecResizeImg (the Eval operator)."""
    import textwrap
    import math

    import cv2

    text = (wheel_root() / "tools" / "infer" / "predict_rec.py").read_text(encoding="utf-8")
    start = text.index("    def resize_norm_img_svtr(self, img, image_shape):")
    end = text.index("    def resize_norm_img_cppd_padding(")
    ns = {"cv2": cv2, "np": np, "math": math}
    exec(textwrap.dedent(text[start:end]), ns)  # the method, verbatim from the wheel
    spec = find_arch(table)
    aug = ppocr_module("ppocr.data.imaug.rec_img_aug").SVTRRecResizeImg(
        image_shape=[3, 64, 256], padding=False)
    for name in WORDS:
        img = read_image(testdata / "words" / name)
        ours = model_inputs(spec.processing, img)[0]
        assert ours.shape == (1, 3, 64, 256)
        assert np.array_equal(ours[0], ns["resize_norm_img_svtr"](None, img, [3, 64, 256]))
        assert np.array_equal(ours[0], aug({"image": img})["image"])


def test_svtr_en_decoding_equals_paddleocr(exported, converted, testdata):
    """The converted model's CTC output on real words, decoded by the table's decoder and by
    PaddleOCR's CTCLabelDecode: same strings and scores."""
    from ptocr.pipeline.postprocess.rec import CTCLabelDecode

    out, tmp = exported
    model = ptocr.load(tmp / "svtr_en.pth")
    ref = ppocr_module("ppocr.postprocess.rec_postprocess").CTCLabelDecode(
        str(tmp / "dict.txt"), use_space_char=False)
    spec = find_arch(str(out["svtr_en"][2]))
    x = np.concatenate([model_inputs(spec.processing, read_image(testdata / "words" / n))
                        for n in WORDS])
    with torch.inference_mode():
        probs = model(torch.from_numpy(x)).numpy()
    ours = CTCLabelDecode(DICT, use_space_char=False)(probs)
    theirs = ref(probs)
    assert [t for t, _ in ours] == [t for t, _ in theirs]
    assert np.allclose([s for _, s in ours], [float(s) for _, s in theirs], rtol=1e-6)
    assert any(t for t, _ in ours)


# ---- the OCR system

@pytest.fixture(scope="module")
def det_checkpoint(tmp_path_factory, models):
    from conftest import run_cli

    path = tmp_path_factory.mktemp("det") / "det.pth"
    res = run_cli("convert", "--arch", "PP-OCRv4_mobile_det", "--paddle-dir",
                  models("PP-OCRv4_mobile_det"), "--out", path, "--no-verify")
    assert res.returncode == 0, res.stderr
    return path


def test_ptocr_ocr_reads_with_the_svtr_en_checkpoint(exported, converted, det_checkpoint,
                                                      testdata, cli):
    out, tmp = exported
    img = testdata / "images" / "ger_1.jpg"
    res = cli("ocr", img, "--det", det_checkpoint, "--rec", tmp / "svtr_en.pth", "--json",
              tmp / "svtr_ocr.json", "--drop-score", "0", "--overwrite")
    assert res.returncode == 0, res.stderr
    lines = json.loads((tmp / "svtr_ocr.json").read_text(encoding="utf-8"))["ger_1.jpg"]
    assert lines and all(set(line["text"]) <= set(DICT) for line in lines)
