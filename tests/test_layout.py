"""PicoDet layout models (picodet_lcnet_x1_0_fgd_layout family): the network against a paddle
twin written after PaddleDetection's modules (tests/paddle_layout_ref.py), exported as a 2.x
program and as PIR and saved as a training checkpoint; PicoDetPostProcess and the layout
pre-processing against PaddleOCR's own code from the paddleocr 2.10.0 wheel, on synthetic
head outputs with known boxes and on the converted twin's outputs for a real image."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli
from ppocr_ref import ppocr_module, wheel_root

HERE = Path(__file__).parent
ONE_THREAD = {"OMP_NUM_THREADS": "1"}
LABELS = ["text", "title", "list", "table", "figure"]

TWIN_TABLE = """
name: picodet-layout-twin
task: layout
dict: layout_publaynet_dict.txt
dict_special_tokens: 0
Architecture:
  model_type: layout
  algorithm: PicoDet
  Backbone: {name: LCNet, scale: 0.25, feature_maps: [3, 4, 5]}
  Neck: {name: CSPPAN, out_channels: 16, num_features: 4}
  Head:
    name: PicoHead
    fpn_stride: [8, 16, 32, 64]
    feat_in_chan: 16
    reg_max: 7
    conv_feat: {name: PicoFeat, feat_in: 16, feat_out: 16, num_convs: 2, num_fpn_stride: 4,
                share_cls_reg: true}
infer:
  Head.num_classes: {shape: head.head_cls0.weight, dim: 0, offset: -32,
                     unstructured: {last_param_dim: 0, offset: -32}}
rules:
  ignore: ['^head\\.p\\d+_feat\\.scale_reg$', '^head\\.distribution_project\\.project$']
processing: {use: layout_picodet}
inputs:
  shapes: [[1, 3, 128, 96], [1, 3, 160, 224]]
tolerance: {max_abs: 1.0e-4}
"""


@pytest.fixture(scope="module")
def twin(tmp_path_factory):
    """{'pdmodel', 'pir', 'train', 'yaml'}: the small twin (LCNet x0.25, neck 16, 2 convs per
    tower, 5 classes) in both export forms (one process each, run at once) and as a
    training .pdparams with the same weights."""
    root = tmp_path_factory.mktemp("layout_twin")
    procs = {}
    for fmt in ("pdmodel", "pir"):
        (root / fmt).mkdir()
        procs[fmt] = subprocess.Popen(
            [sys.executable, str(HERE / "paddle_layout_ref.py"), str(root / fmt / "inference"),
             fmt], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=dict(os.environ, **ONE_THREAD))
    for fmt, proc in procs.items():
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, f"{fmt} export failed: {err[-3000:]}"
    (root / "twin.yaml").write_text(TWIN_TABLE)
    return {"pdmodel": root / "pdmodel", "pir": root / "pir", "train": root / "train",
            "yaml": root / "twin.yaml", "root": root}


@pytest.fixture(scope="module")
def converted(twin):
    """`ptocr convert` of the 2.x export through the CLI: verified on two input sizes, written
    with the label list (a real page runs through it in the post-processing test)."""
    out = twin["root"] / "layout.pth"
    report = twin["root"] / "report.json"
    res = run_cli("convert", "--arch", twin["yaml"], "--paddle-dir", twin["pdmodel"], "--out",
                  out, "--report", report, env=ONE_THREAD)
    assert res.returncode == 0, res.stderr + res.stdout
    return out, json.loads(report.read_text())


def test_twin_2x_export_converts_and_verifies(converted):
    import ptocr

    path, report = converted
    assert report["passed"] and report["program_format"] == "pdmodel"
    assert report["judged_in"] == "float64"
    rows = report["results"]
    assert {r["input"] for r in rows} == {"random[1, 3, 128, 96]", "random[1, 3, 160, 224]"}
    assert {r["output"] for r in rows} == set(range(8))  # 4 score maps + 4 distributions
    second = [r for r in rows if r["input"] == "random[1, 3, 160, 224]"]
    assert [r["shape"] for r in second] == [[1, 20 * 28, 5], [1, 10 * 14, 5], [1, 5 * 7, 5],
                                            [1, 3 * 4, 5], [1, 20 * 28, 32], [1, 10 * 14, 32],
                                            [1, 5 * 7, 32], [1, 3 * 4, 32]]
    assert max(r["max_abs"] for r in rows) < 1e-5
    assert max(r["float64"]["max_abs"] for r in rows) < 1e-9
    model = ptocr.load(path)
    assert model.ptocr_meta["extra"]["task"] == "layout"
    # PaddleDetection names its export files model.pdmodel / model.pdiparams: read alike
    from ptocr.converter import formats

    renamed = path.parent / "paddledet_names"
    renamed.mkdir(exist_ok=True)
    for f in (path.parent / "pdmodel").iterdir():
        (renamed / f.name.replace("inference", "model")).write_bytes(f.read_bytes())
    a, b = formats.read(renamed), formats.read(path.parent / "pdmodel")
    assert a.format == b.format == "pdmodel" and list(a.tensors) == list(b.tensors)
    assert model.ptocr_meta["extra"]["character_dict"] == LABELS


@pytest.mark.parametrize("form", ["pir", "train"])
def test_twin_pir_and_training_checkpoint_convert(twin, converted, form):
    """PIR (aligned by program order) verified against its own program; the training
    .pdparams (structured names, GFLHead's unused parameters ignored) gives the very tensors
    of the 2.x conversion."""
    import ptocr
    from ptocr.converter import formats
    from ptocr.converter.convert import convert
    from ptocr.converter.mapping import find_arch
    from ptocr.converter.verify import verify

    spec = find_arch(str(twin["yaml"]))
    conv = convert(None, weights=formats.read(twin[form]), spec=spec)
    if form == "pir":
        assert conv.report.method == "program order"
        report = verify(formats.read(twin["pir"] / "inference.json"), conv.model, spec,
                        images=False)
        assert report["passed"] and max(r["max_abs"] for r in report["results"]) < 1e-5
    else:
        assert conv.report.method == "names"
        assert sorted(conv.report.ignored) == sorted(
            [f"head.p{k}_feat.scale_reg" for k in (3, 4, 5, 6)]
            + ["head.distribution_project.project"])
    reference = ptocr.load(converted[0]).state_dict()
    for name, tensor in conv.model.state_dict().items():
        assert np.array_equal(tensor.numpy(), reference[name].numpy()), name


def test_broken_layout_conversion_refused(twin, monkeypatch):
    """A mapping bug (the head's class rows and box-bin rows in the wrong order, as if the
    split of the shared 1x1 conv were read the other way round) is refused."""
    from ptocr.converter import formats, mapping
    from ptocr.converter.convert import convert
    from ptocr.converter.mapping import find_arch
    from ptocr.converter.verify import verify

    real = mapping.to_torch_layout

    def bins_first(array, owner, name):
        array = real(array, owner, name)
        if name.startswith("head.head_cls"):
            array = np.concatenate([array[5:], array[:5]])
        return array

    monkeypatch.setattr(mapping, "to_torch_layout", bins_first)
    spec = find_arch(str(twin["yaml"]))
    conv = convert(None, weights=formats.read(twin["train"]), spec=spec)
    report = verify(formats.read(twin["pir"] / "inference.json"), conv.model, spec,
                    images=False)
    assert not report["passed"]
    assert max(r["float64"]["max_abs"] for r in report["results"]) > 1e-2


# ---- processing against PaddleOCR's own code

def _paddleocr_post(score_threshold=0.5, nms_threshold=0.5):
    ref = ppocr_module("ppocr.postprocess.picodet_postprocess")
    labels = wheel_root() / "ppocr" / "utils" / "dict" / "layout_dict" / \
        "layout_publaynet_dict.txt"
    return ref.PicoDetPostProcess(str(labels), score_threshold=score_threshold,
                                  nms_threshold=nms_threshold)


def _ours(score_threshold=0.5, nms_threshold=0.5):
    from ptocr.pipeline.postprocess.layout import PicoDetPostProcess

    return PicoDetPostProcess(character_dict=LABELS, score_threshold=score_threshold,
                              nms_threshold=nms_threshold)


def _compare(ref, got):
    assert len(got) == len(ref)
    for r, g in zip(ref, got):
        assert g["label"] == r["label"]
        assert g["score"] == float(r["score"])
        assert np.array_equal(np.array(g["bbox"]), np.asarray(r["bbox"], dtype=np.float64))


def _synthetic(in_h=128, in_w=96):
    """Head outputs with known boxes: low scores everywhere but a few cells; distributions
    one-hot (logit 60 on one bin), so each distance is exactly bin * stride."""
    rng = np.random.RandomState(0)
    scores, dists = [], []
    for stride in (8, 16, 32, 64):
        cells = int(np.ceil(in_h / stride)) * int(np.ceil(in_w / stride))
        scores.append(rng.uniform(0, 0.2, (1, cells, 5)).astype(np.float32))
        d = rng.randn(1, cells, 4, 8).astype(np.float32)
        dists.append(d)

    def put(level, row, col, cls, score, bins):
        stride = (8, 16, 32, 64)[level]
        cols = int(np.ceil(in_w / stride))
        cell = row * cols + col
        scores[level][0, cell, cls] = score
        dists[level][0, cell] = -30.0
        for side, b in enumerate(bins):
            dists[level][0, cell, side, b] = 30.0
        cx, cy = (col + 0.5) * stride, (row + 0.5) * stride
        return [cx - bins[0] * stride, cy - bins[1] * stride, cx + bins[2] * stride,
                cy + bins[3] * stride]

    known = {
        # text at level 0 and a weaker copy one cell over (suppressed by NMS)
        "text": put(0, 12, 4, 0, 0.9, (2, 3, 4, 1)),
        "text_dup": put(0, 12, 5, 0, 0.8, (3, 3, 3, 1)),
        # a table at level 1 and a 'figure' inside it (the table wins the conflict)
        "table": put(1, 3, 2, 3, 0.85, (2, 2, 1, 1)),
        "figure": put(1, 3, 3, 4, 0.95, (1, 1, 0, 0)),
        # a title running off the input at level 2 (clipped)
        "title": put(2, 0, 0, 1, 0.7, (1, 1, 5, 0)),
    }
    return [s for s in scores] + [d.reshape(1, -1, 32) for d in dists], known


def test_picodet_postprocess_matches_paddleocr_on_known_boxes():
    preds, known = _synthetic()
    src_h, src_w = 256, 150
    ori = np.zeros((src_h, src_w, 3), np.uint8)
    img = np.zeros((1, 3, 128, 96), np.float32)
    want = _paddleocr_post()(ori, img, {"boxes": preds[:4], "boxes_num": preds[4:]})
    shape = [[src_h, src_w, 128 / src_h, 96 / src_w]]
    got = _ours()(preds, shape)[0]
    _compare(want, got)
    by_label = {g["label"]: g for g in got}
    assert sorted(by_label) == ["table", "text", "title"] and len(got) == 3
    sx, sy = np.float32(96 / src_w), np.float32(128 / src_h)
    for label in ("text", "table"):
        x0, y0, x1, y1 = known[label]
        np.testing.assert_allclose(by_label[label]["bbox"], [x0 / sx, y0 / sy, x1 / sx, y1 / sy],
                                   rtol=1e-6)
    x0, y0, x1, y1 = known["title"]
    np.testing.assert_allclose(by_label["title"]["bbox"],
                               [0, 0, min(x1, 96) / sx, y1 / sy], rtol=1e-6)
    # nothing above the threshold: no regions, both sides
    quiet = [p * (0.1 if i < 4 else 1) for i, p in enumerate(preds)]
    assert _ours()(quiet, shape)[0] == [] == _paddleocr_post()(
        ori, img, {"boxes": quiet[:4], "boxes_num": quiet[4:]})


def test_picodet_postprocess_matches_paddleocr_on_network_outputs(converted, testdata):
    """The converted twin's outputs on a real page, decoded by both at several thresholds."""
    import ptocr
    from ptocr.pipeline import read_image
    from ptocr.pipeline.system import Stage

    model = ptocr.load(converted[0])
    stage = Stage(model, "layout", character_dict=model.ptocr_meta["extra"]["character_dict"])
    img = read_image(testdata / "images" / "1.jpg")
    data = stage.prepare(img.copy())
    preds = stage.run([data])
    counts = []
    for thresh, nms in ((0.5, 0.5), (0.6, 0.3), (0.7, 0.6)):
        want = _paddleocr_post(thresh, nms)(img, data["image"][None], {
            "boxes": preds[:4], "boxes_num": preds[4:]})
        _compare(want, _ours(thresh, nms)(preds, [data["shape"]])[0])
        counts.append(len(want))
    assert max(counts) >= 3, counts


def test_layout_preprocess_matches_paddleocr(testdata):
    from ptocr.converter.mapping import find_arch
    from ptocr.pipeline import read_image
    from ptocr.pipeline.registry import build_transforms, transform

    ops = ppocr_module("ppocr.data.imaug.operators")
    ours = build_transforms(find_arch("picodet_lcnet_x1_0_fgd_layout").processing["PreProcess"])
    for name in ("images/1.jpg", "tables/example-table.jpeg"):
        img = read_image(testdata / name)
        data = {"image": img.copy()}
        for op in (ops.Resize(size=[800, 608]),
                   ops.NormalizeImage(std=[0.229, 0.224, 0.225], mean=[0.485, 0.456, 0.406],
                                      scale="1./255.", order="hwc"), ops.ToCHWImage()):
            data = op(data)
        got = transform(ours, {"image": img.copy()})
        np.testing.assert_array_equal(got["image"], data["image"])


# ---- the structure system: region handling, reading order and Markdown against PaddleOCR's
# own StructureSystem (ppstructure/predict_system.py) and recovery code, fed the same layout,
# OCR and table results

def _stub_modules(monkeypatch, names):
    import types
    from unittest import mock

    for name in names:
        module = types.ModuleType(name)
        module.__path__ = []
        module.__getattr__ = lambda attr: mock.MagicMock(name=attr)
        monkeypatch.setitem(sys.modules, name, module)


@pytest.fixture(scope="module")
def ocr_checkpoints(tmp_path_factory, models):
    from click.testing import CliRunner

    from ptocr.cli.main import main

    out = tmp_path_factory.mktemp("structure_models")
    paths = {}
    for arch in ("PP-OCRv4_mobile_det", "PP-OCRv4_mobile_rec", "SLANet_plus"):
        paths[arch] = out / f"{arch}.pth"
        res = CliRunner().invoke(main, ["convert", "--arch", arch, "--paddle-dir",
                                        str(models(arch)), "--out", str(paths[arch]),
                                        "--no-verify"])
        assert res.exit_code == 0, res.output
    return paths


def test_structure_matches_paddleocr_structure_system(converted, ocr_checkpoints, testdata,
                                                      monkeypatch, tmp_path):
    """A page built from a real table and a real text image; the layout regions are given
    (title, text, a table, a figure, a footer, in two columns), so PaddleOCR's
    StructureSystem.__call__, sorted_layout_boxes and convert_info_markdown run on exactly
    what ptocr.Structure sees."""
    import cv2
    import torch

    import ptocr
    from ptocr.pipeline.structure import Structure, sorted_layout_boxes, to_markdown

    torch.set_num_threads(1)
    table = cv2.imread(str(testdata / "tables" / "PMC524509_007_00.png"))
    text = cv2.imread(str(testdata / "images" / "11.jpg"))
    page = np.full((900, 1400, 3), 255, np.uint8)
    th, tw = table.shape[:2]
    page[320:320 + th, 60:60 + tw] = table
    sh, sw = min(text.shape[0], 560), min(text.shape[1], 640)
    page[300:300 + sh, 720:720 + sw] = text[:sh, :sw]
    regions = [  # the decoder's order is not reading order
        {"bbox": [720.4, 300.2, 720.0 + sw, 300.0 + sh], "label": "text", "score": 0.9},
        {"bbox": [58.0, 318.0, 62.0 + tw, 322.0 + th], "label": "table", "score": 0.95},
        {"bbox": [700.0, 20.0, 1300.0, 90.0], "label": "figure", "score": 0.8},
        {"bbox": [40.0, 20.0, 1360.0, 280.0], "label": "title", "score": 0.7},
        {"bbox": [0.0, 870.0, 1400.0, 900.0], "label": "footer", "score": 0.6},
    ]
    system = Structure(layout=converted[0], det=ocr_checkpoints["PP-OCRv4_mobile_det"],
                       rec=ocr_checkpoints["PP-OCRv4_mobile_rec"],
                       table=ocr_checkpoints["SLANet_plus"])
    system.layout = lambda img: [dict(r) for r in regions]  # the layout stage, given
    got = system(page)

    _stub_modules(monkeypatch, ["tools", "tools.infer", "tools.infer.predict_system",
                                "tools.infer.predict_rec", "ppstructure.layout",
                                "ppstructure.layout.predict_layout", "ppstructure.table",
                                "ppstructure.table.predict_table", "ppstructure.utility",
                                "docx", "docx.shared", "docx.enum", "docx.enum.text",
                                "docx.enum.section", "docx.oxml", "docx.oxml.ns",
                                "docx.enum.table", "ppstructure.recovery.table_process"])
    for name in ("ppstructure.predict_system", "ppstructure.recovery.recovery_to_doc"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    for name in ("ppocr.utils.logging", "ppocr.utils.utility", "ppocr.utils.visual"):
        ppocr_module(name)  # what the modules below import from ppocr
    doc = ppocr_module("ppstructure.recovery.recovery_to_doc")
    md = ppocr_module("ppstructure.recovery.recovery_to_markdown")
    monkeypatch.setattr(sys, "path", list(sys.path))  # predict_system.py edits sys.path
    ref_mod = ppocr_module("ppstructure.predict_system")

    lines = system.ocr(page)
    ref = object.__new__(ref_mod.StructureSystem)
    ref.mode, ref.image_orientation_predictor, ref.return_word_box = "structure", None, False
    ref.formula_system = None
    ref.layout_predictor = lambda img: (regions, 0.0)
    ref.text_system = lambda img: ([np.array(l["box"], np.float32) for l in lines],
                                   [(l["text"], l["score"]) for l in lines],
                                   {"det": 0.0, "rec": 0.0})
    ref.table_system = lambda roi, flag=False: (
        system.table(roi), {"table": 0.0, "match": 0.0, "det": 0.0, "rec": 0.0})
    want, _ = ref(page.copy())
    want = doc.sorted_layout_boxes(want, page.shape[1])

    assert [r["type"] for r in got] == [r["type"] for r in want]
    assert [r["type"] for r in got] == ["title", "table", "figure", "text", "footer"]
    for g, w in zip(got, want):
        assert g["bbox"] == w["bbox"] and g["layout"] == w["layout"] and g["score"] == w["score"]
        if g["type"] == "table":
            assert g["res"]["html"] == w["res"]["html"] and "<td>" in g["res"]["html"]
        else:
            assert g["res"] == [{**l, "text_region": [list(map(float, p)) for p in l[
                "text_region"]]} for l in w["res"]]
    assert sum(len(r["res"]) for r in got if r["type"] == "text") >= 3

    name = "page"
    md.convert_info_markdown(want, str(tmp_path), name)
    assert to_markdown(got, name) == (tmp_path / f"{name}_ocr.md").read_text(encoding="utf-8")

    # the reading-order rule alone on random two-column layouts
    rng = np.random.RandomState(0)
    for _ in range(200):
        boxes = []
        for _ in range(rng.randint(1, 9)):
            x0, y0 = rng.uniform(0, 900), rng.uniform(0, 1200)
            boxes.append({"bbox": [x0, y0, x0 + rng.uniform(20, 600), y0 + rng.uniform(10, 200)],
                          "id": len(boxes)})
        ours = sorted_layout_boxes([dict(b) for b in boxes], 1000)
        theirs = doc.sorted_layout_boxes([dict(b) for b in boxes], 1000)
        assert [(b["id"], b["layout"]) for b in ours] == [(b["id"], b["layout"]) for b in theirs]


def test_structure_cli(converted, ocr_checkpoints, testdata, tmp_path):
    """`ptocr structure` with the converted twin layout model: JSON, Markdown, the region
    image per page; an unreadable image reported on one line, the other written; a
    non-layout checkpoint as --layout refused on one line."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "page.jpg").write_bytes((testdata / "images" / "1.jpg").read_bytes())
    (inputs / "broken.png").write_bytes(b"not an image")
    ck = ocr_checkpoints
    res = run_cli("structure", inputs, "--layout", converted[0], "--table", ck["SLANet_plus"],
                  "--det", ck["PP-OCRv4_mobile_det"], "--rec", ck["PP-OCRv4_mobile_rec"],
                  "--out", tmp_path / "out", "--threads", "1", "--layout-score-threshold", "0.6",
                  env=ONE_THREAD)
    assert res.returncode == 1, res.stderr
    lines = [l for l in res.stderr.splitlines() if l.startswith(("warning", "error"))]
    assert any("broken.png" in l and "not a readable image" in l for l in lines), lines
    assert lines[-1] == "error: 1 of 2 images gave no structure"
    assert "Traceback" not in res.stderr
    regions = json.loads((tmp_path / "out" / "page.json").read_text(encoding="utf-8"))
    assert regions and all({"type", "bbox", "score", "res", "layout"} <= set(r) for r in regions)
    assert (tmp_path / "out" / "page.md").is_file()
    assert (tmp_path / "out" / "page_layout.jpg").stat().st_size > 0
    assert not (tmp_path / "out" / "broken.json").exists()

    res = run_cli("structure", inputs / "page.jpg", "--layout", ck["PP-OCRv4_mobile_det"],
                  "--det", ck["PP-OCRv4_mobile_det"], "--rec", ck["PP-OCRv4_mobile_rec"],
                  "--out", tmp_path / "out2")
    assert res.returncode == 2
    assert res.stderr.strip().splitlines()[-1].startswith("error: ") and \
        "a det model was given where a layout model is needed" in res.stderr
    assert "Traceback" not in res.stderr and not (tmp_path / "out2").exists()


def test_structure_cli_with_a_pp_doclayout_checkpoint(ocr_checkpoints, testdata, tmp_path):
    """`ptocr structure --layout` with a PP-DocLayout (PicoHeadV2, NMS inside) checkpoint: the
    small twin network of test_doclayout.py with torch's random weights and PP-DocLayout-S's
    processing and label list; regions come out of DetPostProcess and are read as usual."""
    import copy

    import torch
    import yaml

    from ptocr.converter.checkpoint import save
    from ptocr.converter.mapping import find_arch
    from test_doclayout import TWIN_TABLE

    config = copy.deepcopy(yaml.safe_load(TWIN_TABLE)["Architecture"])
    config["Head"]["num_classes"] = 23
    torch.manual_seed(0)
    from ptocr.models import build

    model = build(config).eval()
    labels = (HERE.parent / "dicts" / "layout_pp_doclayout_dict.txt").read_text().split()
    ckpt = tmp_path / "doclayout.pth"
    save(ckpt, model.state_dict(), {
        "arch": "pp-doclayout-twin", "config": config,
        "processing": find_arch("PP-DocLayout-S").processing,
        "extra": {"task": "layout", "character_dict": labels}})
    ck = ocr_checkpoints
    page = testdata / "images" / "1.jpg"
    res = run_cli("structure", page, "--layout", ckpt, "--det", ck["PP-OCRv4_mobile_det"],
                  "--rec", ck["PP-OCRv4_mobile_rec"], "--out", tmp_path / "out", "--threads",
                  "1", "--layout-score-threshold", "0.3", env=ONE_THREAD)
    assert res.returncode == 0, res.stderr
    regions = json.loads((tmp_path / "out" / "1.json").read_text(encoding="utf-8"))
    assert regions and {r["type"] for r in regions} <= set(labels)
    assert all(r["score"] > 0.3 for r in regions)
    assert (tmp_path / "out" / "1.md").is_file()
