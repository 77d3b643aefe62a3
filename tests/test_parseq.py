"""ParseQ (rec_vit_parseq).

Network: a paddle twin of PaddleOCR's ViTParseQ + ParseQHead (tests/paddle_parseq_twins.py)
at small widths with the real 26-step loop and parseq_dict's 97 classes, every parameter
random; the [E] logit biased so that some inputs end early (the program's loop breaks once
every row holds an [E]) and others run all steps. Exported by paddle.jit.save as PIR programs
with PaddleOCR's input spec ([None, 3, 32, -1]): as configured (autoregressive + one
refinement) and with refine_iters 0 (the output is then as long as the loop ran), and saved
as a training .pdparams; all convert and pass the verifier in float64, with the program's
output shapes. Paddle 3.3 cannot save this head as a 2.x program (see the test below).

Processing: PaddleOCR 2.10's own SVTRRecResizeImg (what predict_rec's resize_norm_img_svtr
does for ParseQ) and ParseQLabelDecode from the wheel.
"""

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import paddle
import pytest
import torch
import yaml

import ptocr
from paddle_parseq_twins import ARCH, SMALL, PParseQHead, PRecModel, PViTParseQ, build
from ppocr_ref import ppocr_module
from ptocr.converter import formats
from ptocr.converter.convert import convert
from ptocr.converter.mapping import find_arch
from ptocr.converter.verify import PaddleProgram, make_inputs, verify
from ptocr.pipeline import model_inputs, read_image
from ptocr.pipeline.registry import build_postprocess, build_transforms, transform

TESTS = Path(__file__).resolve().parent
CLASSES = SMALL["classes"]
DICT = Path(ptocr.__file__).resolve().parent / "dicts" / "parseq_dict.txt"


def twin_table(root, **head):
    """The shipped table at the twin's sizes (a user's own table)."""
    table = yaml.safe_load((Path(ptocr.__file__).resolve().parent / "mappings" /
                            f"{ARCH}.yaml").read_text())
    table["name"], table["aliases"] = f"{ARCH}_twin", []
    table["Architecture"]["Backbone"].update(SMALL["backbone"])
    table["Architecture"]["Head"].update({**SMALL["head"], **head})
    path = root / f"twin{'_'.join(f'_{k}{v}' for k, v in head.items())}.yaml"
    path.write_text(yaml.safe_dump(table, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    root = tmp_path_factory.mktemp("parseq")
    res = subprocess.run([sys.executable, str(TESTS / "paddle_parseq_twins.py"), str(root)],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    model = build()  # the same seeded twin, for dygraph comparisons
    model.set_state_dict(paddle.load(str(root / "model.pdparams")))
    return {"model": model, "pir": root / "pir", "pir_ar": root / "pir_ar",
            "pdparams": root / "model.pdparams", "table": twin_table(root),
            "table_ar": twin_table(root, refine_iters=0)}


def test_pir_export_converts_and_verifies_in_float64(exports):
    weights = formats.read(exports["pir"])
    spec = find_arch(str(exports["table"]))
    conv = convert(None, weights=weights, spec=spec)
    assert conv.report.method == "program order"
    assert conv.config["Head"]["out_channels"] == CLASSES  # read from the program
    report = verify(weights, conv.model, spec)
    assert report["passed"] and report["judged_in"] == "float64", report["results"]
    assert len(report["results"]) == 5  # two noise batches, three words
    assert max(r["float64"]["max_abs"] for r in report["results"]) < 1e-6
    assert all(r["argmax_equal"] for r in report["results"])


def test_loop_stops_where_the_program_stops(exports):
    """With refine_iters 0 the program returns the autoregressive logits, as many steps as
    its loop ran: it breaks once every row holds an [E] (not when the first row does), so
    these inputs give 2, 4, 4, 26 and 2 steps; the converted module gives the same shapes
    and values."""
    weights = formats.read(exports["pir_ar"])
    spec = find_arch(str(exports["table_ar"]))
    conv = convert(None, weights=weights, spec=spec)
    program = PaddleProgram(weights)
    shapes = []
    for label, x in make_inputs(spec):
        ref = program([x])[0]
        with torch.inference_mode():
            out = conv.model(torch.from_numpy(x)).numpy()
        assert out.shape == ref.shape, label
        assert np.abs(out - ref).max() < 1e-4 and np.array_equal(out.argmax(-1),
                                                                 ref.argmax(-1))
        ends = [int(np.argmax(row == 0)) if (row == 0).any() else None
                for row in out.argmax(-1)]
        shapes.append((out.shape[1], ends))
    assert shapes == [(2, [1]), (4, [3, 1, 3]), (4, [3]), (26, [None]), (2, [1])]


def test_training_pdparams_convert_by_name_and_match_paddle(exports, testdata):
    conv = convert(exports["pdparams"], str(exports["table"]))
    assert conv.report.method == "names"
    assert conv.report.ignored == ["backbone.cls_token"]  # PaddleOCR never uses it
    spec = find_arch(str(exports["table"]))
    x = np.concatenate([model_inputs(spec.processing, read_image(testdata / w))[0]
                        for w in ("words/en_word_1.png", "words/en_word_2.png",
                                  "words/en_word_4.png")])
    ref = exports["model"](paddle.to_tensor(x))["predict"].numpy()
    with torch.inference_mode():
        out = conv.model(torch.from_numpy(x)).numpy()
    assert out.shape == ref.shape == (3, 26, CLASSES - 2)
    assert np.array_equal(ref.argmax(-1), out.argmax(-1))
    assert np.abs(ref - out).max() < 1e-4


def test_paddle_names_file_matches_the_full_size_twin():
    """tests/paddle_names/rec_vit_parseq.txt is the twin's state_dict at PaddleOCR's
    configuration (configs/rec/rec_vit_parseq.yml, parseq_dict)."""
    from test_paddle_names import NAMES_DIR

    with paddle.LazyGuard():
        model = PRecModel(PViTParseQ(), PParseQHead(CLASSES, 25, 384, 12, 4, 1))
    want = [f"{k}\t{','.join(map(str, v.shape))}" for k, v in model.state_dict().items()]
    lines = [ln for ln in (NAMES_DIR / f"{ARCH}.txt").read_text().splitlines()
             if ln and not ln.startswith("#")]
    assert lines == want


def test_paddle_cannot_save_it_as_a_2x_program(tmp_path):
    """Why no 2.x export is tested: paddle 3.3's legacy tracer refuses the head."""
    code = ("import sys; sys.path.insert(0, %r); import paddle, paddle_parseq_twins as T; "
            "paddle.jit.save(T.build(), %r, input_spec=[paddle.static.InputSpec("
            "[None, 3, 32, -1], 'float32', 'x')])" % (str(TESTS), str(tmp_path / "m")))
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**__import__("os").environ, "FLAGS_enable_pir_api": "0"})
    assert res.returncode != 0 and not (tmp_path / "m.pdmodel").exists()
    assert "matmul(): argument (position 1) must be Value, but got Variable" in res.stderr


# ---- processing against PaddleOCR 2.10's own operators

def test_parseq_resize_matches_ppocr(testdata):
    ours = build_transforms(find_arch(ARCH).processing["PreProcess"])
    ref = ppocr_module("ppocr.data.imaug.rec_img_aug").SVTRRecResizeImg(
        image_shape=[3, 32, 128], padding=False)
    for w in sorted(p.relative_to(testdata) for p in (testdata / "words").iterdir()):
        img = read_image(testdata / w)
        got = transform(ours, {"image": img.copy()})
        assert np.array_equal(ref({"image": img.copy()})["image"], got["image"]), w


def test_label_decode_matches_ppocr(exports, testdata):
    """ParseQLabelDecode on the network's logits for real words and on logits with [E] at
    chosen steps: PaddleOCR's strings and scores (the mean maximum logit)."""
    chars = DICT.read_text().splitlines()
    ref = ppocr_module("ppocr.postprocess.rec_postprocess").ParseQLabelDecode(
        character_dict_path=str(DICT), use_space_char=False)
    ours = build_postprocess(find_arch(ARCH).processing["PostProcess"], character_dict=chars,
                             use_space_char=False)
    spec = find_arch(str(exports["table"]))
    x = np.concatenate([model_inputs(spec.processing, read_image(testdata / w))[0]
                        for w in ("words/en_word_1.png", "words/en_word_2.png")])
    net = exports["model"](paddle.to_tensor(x))["predict"].numpy()
    synthetic = np.random.RandomState(0).randn(4, 26, CLASSES - 2).astype("float32") * 3
    synthetic[0, :, 0] += 30  # [E] at once: empty read
    synthetic[1, 5, 0] += 30  # after five characters
    synthetic[2, :, 0] -= 30  # never: all 26 steps read
    for logits in (net, synthetic):
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # np.mean of an empty read
            want = ref(logits)
        got = ours([logits])
        assert [t for t, _ in got] == [t for t, _ in want]
        np.testing.assert_allclose([s for _, s in got], [s for _, s in want], rtol=1e-6)
    assert got[0][0] == "" and len(got[1][0]) == 5 and len(got[2][0]) == 26


# ---- usable: ptocr ocr with a ParseQ checkpoint

def test_ocr_reads_with_a_parseq_checkpoint(exports, testdata, tmp_path, cli, models):
    from test_sar import save_checkpoint
    from ptocr.converter.verify import PaddleModule

    det = save_checkpoint(convert(models("PP-OCRv4_mobile_det"), "PP-OCRv4_mobile_det"),
                          tmp_path / "det.pth")
    rec = save_checkpoint(convert(exports["pir"], str(exports["table"])), tmp_path / "pq.pth")
    out = tmp_path / "ocr.json"
    res = cli("ocr", testdata / "images" / "11.jpg", "--det", det, "--rec", rec,
              "--drop-score", "-100", "--json", out)
    assert res.returncode == 0, res.stderr
    lines = json.loads(out.read_text())["11.jpg"]
    assert lines and any(line["text"] for line in lines)
    alphabet = set(DICT.read_text().splitlines())
    assert all(set(line["text"]) <= alphabet for line in lines)
    # Paddle's own program in the same pipeline reads the same
    model = ptocr.load(rec)
    crops = [read_image(testdata / w) for w in ("words/en_word_1.png", "words/en_word_2.png",
                                                "words/en_word_3.png")]
    ours = ptocr.OCR(det=None, rec=model).recognize(crops)
    theirs = ptocr.OCR(det=None, rec=PaddleModule(exports["pir"], "rec",
                                                  meta=model.ptocr_meta)).recognize(crops)
    assert [t for t, _ in ours] == [t for t, _ in theirs]
    np.testing.assert_allclose([s for _, s in ours], [s for _, s in theirs], atol=1e-4)
