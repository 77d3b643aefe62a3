"""PP-DocLayout-L (PaddleX's RT-DETR layout model): the network against a paddle twin written
after PaddleDetection's modules (tests/paddle_rtdetr_ref.py: PPHGNetV2, HybridEncoder,
RTDETRTransformer, DINOHead, DETRPostProcess inside the program, eval_size constants),
exported as a 2.x program and as PIR and saved as a training checkpoint, at a small
configuration; DETRPostProcess on both branches against the twin's; PaddleX's
DetPostProcess on known rows; `ptocr structure` with the converted twin on a real page."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli

HERE = Path(__file__).parent
ONE_THREAD = {"OMP_NUM_THREADS": "1"}
LABELS = ["text", "title", "list", "table", "figure"]

TWIN_TABLE = """
name: rtdetr-layout-twin
task: layout
dict: layout_publaynet_dict.txt
dict_special_tokens: 0
Architecture:
  model_type: layout
  algorithm: DETR
  Backbone:
    name: PPHGNetV2
    stem_channels: [3, 8, 8]
    stage_config: [[8, 8, 16, 1, false, false, 3, 2], [16, 8, 24, 1, true, false, 3, 2],
                   [24, 8, 32, 2, true, true, 5, 2], [32, 8, 40, 1, true, true, 5, 2]]
    return_idx: [1, 2, 3]
  Neck:
    name: HybridEncoder
    hidden_dim: 16
    encoder_layer: {name: TransformerLayer, d_model: 16, nhead: 2, dim_feedforward: 32,
                    activation: gelu}
    depth_mult: 0.34
    eval_size: [416, 416]
  Transformer: {name: RTDETRTransformer, hidden_dim: 16, num_queries: 12, num_levels: 3,
                nhead: 2, num_decoder_layers: 2, dim_feedforward: 32, learnt_init_query: false,
                eval_size: [416, 416]}
  PostProcess: {name: DETRPostProcess, num_top_queries: 20, use_focal_loss: true}
infer:
  Transformer.num_classes: {shape: transformer.dec_score_head.1.weight, dim: 1,
                            unstructured: {last_param_dim: 0}}
processing:
  use: layout_detr
  params: {Resize: {target_size: [416, 416]}}
inputs:
  random_images: [[[300, 700]]]
  shapes: [[1, 3, 416, 416]]
  random: false
tolerance: {max_abs: 1.0e-4}
"""


@pytest.fixture(scope="module")
def twin(tmp_path_factory):
    """{'pdmodel', 'pir', 'train', 'yaml', 'root'}: the small twin (HGNetV2 8-40 channels,
    hidden 16, 2 decoder layers, 12 queries, 5 classes, top 20, eval size 416) in both export
    forms (one process each, run at once) and as a training .pdparams, same weights."""
    root = tmp_path_factory.mktemp("rtdetr_twin")
    procs = {}
    for fmt in ("pdmodel", "pir"):
        (root / fmt).mkdir()
        procs[fmt] = subprocess.Popen(
            [sys.executable, str(HERE / "paddle_rtdetr_ref.py"), str(root / fmt), fmt],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=dict(os.environ, **ONE_THREAD))
    for fmt, proc in procs.items():
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, f"{fmt} export failed: {err[-3000:]}"
    (root / "twin.yaml").write_text(TWIN_TABLE)
    return {"pdmodel": root / "pdmodel", "pir": root / "pir", "train": root / "train",
            "yaml": root / "twin.yaml", "root": root}


@pytest.fixture(scope="module")
def converted(twin):
    """`ptocr convert` of the 2.x export through the CLI, verified on a noise page of another
    shape and aspect than the network input, through the table's own processing (so im_shape
    and scale_factor are the pipeline's)."""
    out = twin["root"] / "layout.pth"
    report = twin["root"] / "report.json"
    res = run_cli("convert", "--arch", twin["yaml"], "--paddle-dir", twin["pdmodel"], "--out",
                  out, "--report", report, env=ONE_THREAD)
    assert res.returncode == 0, res.stderr + res.stdout
    return out, json.loads(report.read_text())


def test_twin_2x_export_converts_and_verifies(converted, twin):
    import ptocr
    from ptocr.converter import formats

    path, report = converted
    assert report["passed"] and report["program_format"] == "pdmodel"
    assert report["judged_in"] == "float64" and report["fused"]["passed"]
    rows = report["results"]
    assert {r["input"] for r in rows} == {"noise 300x700"}
    assert {tuple(r["shape"]) for r in rows} == {(20, 6), (1,)}  # bbox rows, bbox_num
    assert max(r["float64"]["max_abs"] for r in rows) < 1e-6
    # fp32: box corners in pixels of the original page, rounding only
    assert max(r["max_abs"] for r in rows) < 1e-2
    # the program's three inputs (fed in DetInputs' order; a wrong order would not verify)
    assert sorted(formats.read(twin["pdmodel"]).program.feeds) == ["im_shape", "image",
                                                                   "scale_factor"]
    model = ptocr.load(path)
    assert model.ptocr_meta["extra"]["task"] == "layout"
    assert model.ptocr_meta["extra"]["character_dict"] == LABELS


@pytest.mark.parametrize("form", ["pir", "train"])
def test_twin_pir_and_training_checkpoint_convert(twin, converted, form):
    """PIR (aligned by program order, the eval-size constants taken from the program)
    verified against its own program; the training .pdparams (names; denoising embedding and
    the auxiliary score heads ignored) gives the 2.x conversion's tensors, the constants the
    torch model computes itself agreeing with Paddle's to fp32 rounding."""
    import ptocr
    import torch
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
        assert report["passed"] and max(r["float64"]["max_abs"]
                                        for r in report["results"]) < 1e-6
    else:
        assert conv.report.method == "names"
        assert sorted(conv.report.ignored) == sorted(
            ["transformer.denoising_class_embed.weight", "transformer.dec_score_head.0.weight",
             "transformer.dec_score_head.0.bias"])
    reference = ptocr.load(converted[0]).state_dict()
    computed = {"neck.pos_embed2", "transformer.anchors", "transformer.valid_mask"}
    for name, tensor in conv.model.state_dict().items():
        if form == "train" and name in computed:
            if tensor.dtype == torch.bool:
                assert torch.equal(tensor, reference[name]), name
            else:
                np.testing.assert_allclose(tensor.numpy(), reference[name].numpy(),
                                           rtol=1e-5, atol=1e-5, err_msg=name)
            continue
        assert np.array_equal(tensor.numpy(), reference[name].numpy()), name


def test_broken_rtdetr_conversion_refused(twin, monkeypatch):
    """A mapping bug (the deformable attention's sampling offsets read as (y, x) pairs) is
    refused by the verifier."""
    from ptocr.converter import formats, mapping
    from ptocr.converter.convert import convert
    from ptocr.converter.mapping import find_arch
    from ptocr.converter.verify import verify

    real = mapping.to_torch_layout

    def yx_offsets(array, owner, name):
        array = real(array, owner, name)
        if "sampling_offsets" in name:  # torch layout: [out, in] weight, [out] bias
            array = array.reshape(-1, 2, *array.shape[1:])[:, ::-1].reshape(array.shape)
        return array

    monkeypatch.setattr(mapping, "to_torch_layout", yx_offsets)
    spec = find_arch(str(twin["yaml"]))
    conv = convert(None, weights=formats.read(twin["train"]), spec=spec)
    report = verify(formats.read(twin["pir"] / "inference.json"), conv.model, spec,
                    images=False)
    assert not report["passed"]
    assert max(r["float64"]["max_abs"] for r in report["results"]) > 1e-2


# ---- processing

@pytest.mark.parametrize("focal", [True, False])
def test_detr_postprocess_matches_paddledetection(focal):
    """DETRPostProcess (ours, inside the torch model) against the twin's transcription of
    PaddleDetection's, two images of different original sizes: sigmoid top-k over queries x
    classes (focal) or the softmax's best non-background class (when the queries outnumber
    the top-k), boxes scaled to round(im_shape / scale_factor)."""
    import paddle
    import torch

    from paddle_rtdetr_ref import DETRPostProcess as PaddlePost
    from ptocr.models.detr import DETRPostProcess

    rng = np.random.RandomState(1)
    classes = 5 if focal else 6  # the softmax branch's last class is background
    boxes = rng.uniform(0.05, 0.6, (2, 15, 4)).astype(np.float32)
    logits = rng.normal(0, 2, (2, 15, classes)).astype(np.float32)
    im_shape = np.array([[416, 416], [416, 416]], np.float32)
    scale = np.array([[416 / 500, 416 / 380], [416 / 300, 416 / 700]], np.float32)
    top = 20 if focal else 10
    want = PaddlePost(classes, top, use_focal_loss=focal)(
        (paddle.to_tensor(boxes), paddle.to_tensor(logits), None), paddle.to_tensor(im_shape),
        paddle.to_tensor(scale), None)
    got = DETRPostProcess(classes, top, use_focal_loss=focal)(
        torch.from_numpy(boxes), torch.from_numpy(logits), torch.from_numpy(im_shape),
        torch.from_numpy(scale))
    np.testing.assert_allclose(got[0].numpy(), want[0].numpy(), rtol=1e-6, atol=1e-4)
    assert got[1].dtype == torch.int32 and got[1].tolist() == want[1].numpy().tolist()
    assert got[0].shape == (2 * top, 6)
    # corners of the first image lie in its original 500 x 380 (w 380) frame
    assert got[0][:top, [2, 4]].max() <= 380 and got[0][:top, [3, 5]].max() <= 500


def test_det_postprocess_threshold_clip_and_layout_nms():
    """PaddleX's DetPostProcess rules on known rows: score above the threshold, class > -1,
    corners clipped to the image; layout NMS keeps the best of same-class boxes with IoU
    (inclusive pixels) >= 0.6 and of different classes >= 0.98; rows split per image."""
    from ptocr.pipeline.postprocess.detr import DetPostProcess

    rows = np.array([
        [3, 0.90, -5.0, 10.0, 120.0, 80.0],   # table, clipped left
        [3, 0.80, 0.0, 12.0, 118.0, 82.0],    # same class, IoU > 0.6 with the first
        [0, 0.70, 0.0, 10.0, 120.0, 80.0],    # another class on the same place: IoU < 0.98
        [1, 0.40, 10.0, 10.0, 20.0, 20.0],    # below the threshold
        [-1, 0.95, 10.0, 10.0, 20.0, 20.0],   # no class
        [4, 0.60, 300.0, 400.0, 900.0, 700.0],  # second image, clipped right and bottom
    ], np.float32)
    counts = np.array([5, 1], np.int32)
    shapes = [[200, 150, 1.0, 1.0], [500, 380, 1.0, 1.0]]
    plain = DetPostProcess(character_dict=LABELS)([rows, counts], shapes)
    assert [[r["label"] for r in page] for page in plain] == [["table", "table", "text"],
                                                             ["figure"]]
    assert plain[0][0]["bbox"] == [0.0, 10.0, 120.0, 80.0]
    assert plain[1][0]["bbox"] == [300.0, 400.0, 380.0, 500.0]
    assert abs(plain[0][0]["score"] - 0.9) < 1e-6
    nms = DetPostProcess(character_dict=LABELS, layout_nms=True)([rows, counts], shapes)
    assert [[r["label"] for r in page] for page in nms] == [["table", "text"], ["figure"]]
    with pytest.raises(ValueError, match="label list"):
        DetPostProcess(character_dict=LABELS[:3])([rows, counts], shapes)
    # a program whose NMS kept nothing at all (PP-DocLayout-S/M): no regions
    assert DetPostProcess(character_dict=LABELS)([np.zeros((0,), np.float32),
                                                  np.array([0], np.int32)], shapes[:1]) == [[]]


def test_det_postprocess_matches_paddlex():
    """Ours against PaddleX 3.7.2's own DetPostProcess.apply (tests/paddlex_ref.py) on random
    DETR rows of random pages: thresholds, layout NMS, the page-sized image rule, the merge
    modes and unclip ratios; same regions, labels, scores and clipped corners."""
    from paddlex_ref import paddlex_processors
    from ptocr.pipeline.postprocess.detr import DetPostProcess

    paddlex = paddlex_processors()
    labels = (Path(__file__).parent.parent / "dicts" / "layout_pp_doclayout_dict.txt"
              ).read_text().split()
    rng = np.random.RandomState(0)
    regions = 0
    for trial in range(120):
        w, h = int(rng.randint(300, 2000)), int(rng.randint(300, 2000))
        n = int(rng.randint(1, 30))
        x0, y0 = rng.uniform(-50, w, n), rng.uniform(-50, h, n)
        bw, bh = rng.uniform(1, w * 1.1, n), rng.uniform(1, h * 1.1, n)
        cls = rng.randint(-1, len(labels), n).astype(np.float32)
        if trial % 5 == 0:
            cls[: n // 2] = labels.index("image")
        rows = np.stack([cls, rng.uniform(0, 1, n), x0, y0, x0 + bw, y0 + bh], 1
                        ).astype(np.float32)
        if trial % 7 == 0 and n > 2:  # a near-duplicate of the first box
            rows[1, 2:], rows[1, 0] = rows[0, 2:] + 2.0, rows[0, 0]
        kw = dict(threshold=float(rng.choice([0.3, 0.5])), layout_nms=bool(trial % 2),
                  layout_unclip_ratio=[None, 1.05, (1.1, 0.95)][trial % 3],
                  layout_merge_bboxes_mode=[None, "large", "small", "union"][trial % 4])
        want = paddlex.DetPostProcess(labels=labels).apply(rows.copy(), (w, h), *kw.values())
        got = DetPostProcess(character_dict=labels, **kw)([rows, np.array([n])],
                                                           [[h, w, 1.0, 1.0]])[0]
        assert [(r["label"], round(r["score"], 6)) for r in want] == \
            [(g["label"], round(g["score"], 6)) for g in got], trial
        for r, g in zip(want, got):
            np.testing.assert_allclose(np.array(r["coordinate"], np.float64), g["bbox"],
                                       atol=1e-3)
        regions += len(got)
    assert regions > 300


def test_layout_detr_preprocessing_gives_paddlex_inputs():
    """RGB (PaddleX reads every detection image so), resize to the target size (cubic),
    x / 255, CHW, and im_shape = the network input, scale_factor = [h, w] ratios (PaddleX's
    ToBatch order), in the program's input order."""
    import cv2

    from ptocr.converter.mapping import find_arch
    from ptocr.pipeline import model_inputs

    spec = find_arch("PP-DocLayout-L")
    img = np.random.RandomState(0).randint(0, 256, (300, 500, 3)).astype(np.uint8)
    im_shape, image, scale = model_inputs(spec.processing, img)
    assert im_shape.tolist() == [[640.0, 640.0]] and im_shape.dtype == np.float32
    np.testing.assert_allclose(scale, [[640 / 300, 640 / 500]], rtol=1e-6)
    want = cv2.resize(img[:, :, ::-1], (640, 640), interpolation=cv2.INTER_CUBIC)
    np.testing.assert_allclose(image[0], (want.astype(np.float32) / 255.0).transpose(2, 0, 1), atol=1e-6)


def test_structure_cli_runs_the_converted_twin(converted, models, testdata, tmp_path):
    """`ptocr structure --layout` with the converted RT-DETR twin on a real page (regions
    from its boxes, OCR inside them): JSON, Markdown and the region image written."""
    from click.testing import CliRunner

    from ptocr.cli.main import main

    ck = {}
    for arch in ("PP-OCRv4_mobile_det", "PP-OCRv4_mobile_rec"):
        ck[arch] = tmp_path / f"{arch}.pth"
        res = CliRunner().invoke(main, ["convert", "--arch", arch, "--paddle-dir",
                                        str(models(arch)), "--out", str(ck[arch]),
                                        "--no-verify"])
        assert res.exit_code == 0, res.output
    page = tmp_path / "in" / "page.jpg"
    page.parent.mkdir()
    page.write_bytes((testdata / "images" / "1.jpg").read_bytes())
    res = run_cli("structure", page, "--layout", converted[0], "--det",
                  ck["PP-OCRv4_mobile_det"], "--rec", ck["PP-OCRv4_mobile_rec"], "--out",
                  tmp_path / "out", "--threads", "1", env=ONE_THREAD)
    assert res.returncode == 0, res.stderr
    regions = json.loads((tmp_path / "out" / "page.json").read_text(encoding="utf-8"))
    assert regions and all({"type", "bbox", "score", "res", "layout"} <= set(r) for r in regions)
    assert {r["type"] for r in regions} <= set(LABELS)
    assert all(r["score"] > 0.5 for r in regions)  # DetPostProcess's threshold
    assert any(r["res"] for r in regions)  # OCR lines inside some region
    assert (tmp_path / "out" / "page.md").is_file()
    assert (tmp_path / "out" / "page_layout.jpg").stat().st_size > 0


def test_label_list_from_paddlex_inference_yml(twin, tmp_path):
    """A PaddleX export names its classes in inference.yml (``label_list``): taken over the
    table's list, and refused when the model predicts another number of classes."""
    import yaml

    from ptocr.converter import dictionary, formats
    from ptocr.converter.convert import convert
    from ptocr.converter.mapping import find_arch
    from ptocr.errors import PtocrError

    export = tmp_path / "export"
    export.mkdir()
    for f in (twin["pir"]).iterdir():
        (export / f.name).write_bytes(f.read_bytes())
    spec = find_arch(str(twin["yaml"]))
    for labels in (["seal", "chart", "text", "table", "header"], ["seal", "chart"]):
        (export / "inference.yml").write_text(yaml.safe_dump(
            {"Global": {"model_name": "PP-DocLayout-L"}, "label_list": labels}))
        weights = formats.read(export)
        conv = convert(None, weights=weights, spec=spec)
        classes = conv.model.head.out_channels
        assert classes == 5
        if len(labels) == classes:
            got = dictionary.resolve(spec, weights, classes)
            assert got == {"character_dict": labels, "dict_source": "inference.yml"}
        else:
            with pytest.raises(PtocrError, match="has 2 entries, the model predicts 5"):
                dictionary.resolve(spec, weights, classes)


def test_layout_options_reach_det_postprocess():
    """--layout-score-threshold and --layout-nms (PaddleOCR/PaddleX names) override the
    checkpoint's DetPostProcess parameters."""
    from ptocr.converter.mapping import find_arch
    from ptocr.pipeline.options import split_options
    from ptocr.pipeline.registry import build_postprocess

    _, overrides = split_options({"layout_score_threshold": 0.7, "layout_nms": True})
    post = build_postprocess(find_arch("PP-DocLayout-L").processing["PostProcess"],
                             overrides["layout"], character_dict=LABELS)
    assert (post.threshold, post.layout_nms) == (0.7, True)
