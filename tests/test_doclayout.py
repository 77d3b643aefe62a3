"""PaddleX PP-DocLayout-S/M (PicoDet: LCNet -> LCPAN -> PicoHeadV2, GFL decoding and
multiclass NMS inside the export): the whole network against a paddle twin written after
PaddleDetection's modules (tests/paddle_doclayout_ref.py; small sizes, 6 classes), exported as
a 2.x program and as PIR (both with the multiclass_nms3 op) and saved as a training .pdparams,
converted and verified (the NMS rows paired with Paddle's: same kept boxes, same counts); a
mapping bug refused; the PaddleX processing operators (Resize with scale_factor, ReadImage,
DetPostProcess). multiclass_nms3 itself is pinned op-level in test_framework_ops.py."""

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
LABELS = ["text", "title", "list", "table", "figure", "chart"]

TWIN_TABLE = """
name: pp-doclayout-twin
task: layout
dict_special_tokens: 0
Architecture:
  model_type: layout
  algorithm: PicoDet
  Backbone: {name: LCNet, scale: 0.25, feature_maps: [3, 4, 5]}
  Neck: {name: LCPAN, out_channels: 16, use_depthwise: true, num_features: 4}
  Head:
    name: PicoHeadV2
    conv_feat: {name: PicoFeat, feat_in: 16, feat_out: 16, num_convs: 2, num_fpn_stride: 4,
                norm_type: bn, share_cls_reg: true, use_se: true}
    fpn_stride: [8, 16, 32, 64]
    feat_in_chan: 16
    reg_max: 7
    cell_offset: 0.5
    nms: {name: MultiClassNMS, nms_top_k: 1000, keep_top_k: 5000, score_threshold: 0.0,
          nms_threshold: 0.6}
infer:
  Head.num_classes: {shape: head.head_cls0.weight, dim: 0,
                     unstructured: {last_param_dim: 0, skip: 12}}
rules:
  ignore: ['^head\\.head_(cls|reg)_list\\.', '^head\\.p\\d+_feat\\.scale_reg$']
processing: {use: layout_paddlex_det, params: {Resize: {target_size: [128, 96]}}}
inputs:
  random_images: [[[150, 100]], [[90, 200], [300, 120]]]
  shapes: [[1, 3, 128, 96]]
  random: false
  images: [tables/example-table.jpeg]
tolerance: {max_abs: 1.0e-4, match_rows: [0]}
"""


@pytest.fixture(scope="module")
def twin(tmp_path_factory):
    """{'pdmodel', 'pir', 'train', 'yaml', 'root'}: the small twin in both export forms (one
    process each, run at once) and as a training .pdparams with the same weights."""
    root = tmp_path_factory.mktemp("doclayout_twin")
    procs = {}
    for fmt in ("pdmodel", "pir"):
        (root / fmt).mkdir()
        extra = [str(root / "train" / "best_accuracy.pdparams")] if fmt == "pir" else []
        procs[fmt] = subprocess.Popen(
            [sys.executable, str(HERE / "paddle_doclayout_ref.py"), str(root / fmt / "inference"),
             fmt, *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=dict(os.environ, **ONE_THREAD))
    for fmt, proc in procs.items():
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, f"{fmt} export failed: {err[-3000:]}"
    (root / "twin.yaml").write_text(TWIN_TABLE)
    (root / "labels.txt").write_text("\n".join(LABELS) + "\n")
    return {"pdmodel": root / "pdmodel", "pir": root / "pir", "train": root / "train",
            "yaml": root / "twin.yaml", "labels": root / "labels.txt", "root": root}


@pytest.fixture(scope="module")
def converted(twin):
    """`ptocr convert` of the 2.x export through the CLI, verified, with the label list."""
    out = twin["root"] / "doclayout.pth"
    report = twin["root"] / "report.json"
    res = run_cli("convert", "--arch", twin["yaml"], "--paddle-dir", twin["pdmodel"],
                  "--rec-dict", twin["labels"], "--out", out, "--report", report,
                  env=ONE_THREAD)
    assert res.returncode == 0, res.stderr + res.stdout
    return out, json.loads(report.read_text())


def test_twin_2x_export_with_nms_converts_and_verifies(converted):
    import ptocr

    path, report = converted
    assert report["passed"] and report["program_format"] == "pdmodel"
    assert report["judged_in"] == "float64"
    rows = report["results"]
    assert {r["input"] for r in rows} == {"noise 150x100", "noise 90x200+300x120",
                                          "image tables/example-table.jpeg"}
    counts = [r for r in rows if r["output"] == 1]
    kept = [r for r in rows if r["output"] == 0]
    # the same number of kept boxes per image (int32 counts equal) and many of them
    assert all(r["max_abs"] == 0 for r in counts)
    assert [r["shape"] for r in counts] == [[1], [2], [1]]
    assert all(r["shape"][1] == 6 and r["shape"][0] > 50 for r in kept)
    assert max(r["max_abs"] for r in kept) < 1e-4  # boxes are in source-image pixels
    assert max(r["float64"]["max_abs"] for r in rows) < 1e-9
    assert report["fused"]["passed"]
    model = ptocr.load(path)
    assert model.ptocr_meta["extra"]["character_dict"] == LABELS


@pytest.mark.parametrize("form", ["pir", "train"])
def test_twin_pir_and_training_checkpoint_convert(twin, converted, form):
    """PIR (aligned by program order, the class count read from head_cls3's bias) verified
    against its own program; the training .pdparams (names; the head_cls_list/head_reg_list
    aliases and GFLHead's unused scales ignored) gives the very tensors of the 2.x
    conversion, the Integral's (randomised) ``project`` buffer included."""
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
        assert report["passed"], report["results"]
        assert max(r["float64"]["max_abs"] for r in report["results"]) < 1e-9
    else:
        assert conv.report.method == "names"
        ignored = sorted(conv.report.ignored)
        assert [n for n in ignored if "scale_reg" in n] == [
            f"head.p{k}_feat.scale_reg" for k in (3, 4, 5, 6)]
        assert len([n for n in ignored if "_list." in n]) == 16
    reference = ptocr.load(converted[0], fuse=False).state_dict()
    for name, tensor in conv.model.state_dict().items():
        assert np.array_equal(tensor.numpy(), reference[name].numpy()), name
    project = conv.model.head.distribution_project.project.numpy()
    assert not np.allclose(project, np.arange(8))  # the twin's random values, mapped


def test_broken_doclayout_conversion_refused(twin, monkeypatch):
    """A mapping bug (the class-alignment branch's 1-channel conv read from the wrong level)
    is refused by the verifier."""
    from ptocr.converter import formats, mapping
    from ptocr.converter.convert import convert
    from ptocr.converter.mapping import find_arch
    from ptocr.converter.verify import verify

    real = mapping.to_torch_layout

    def flipped(array, owner, name):
        array = real(array, owner, name)
        if name == "head.cls_align.0.dwconv.weight":
            array = array[:, ::-1].copy()  # input channels reversed
        return array

    monkeypatch.setattr(mapping, "to_torch_layout", flipped)
    spec = find_arch(str(twin["yaml"]))
    conv = convert(None, weights=formats.read(twin["train"]), spec=spec)
    report = verify(formats.read(twin["pir"] / "inference.json"), conv.model, spec,
                    images=False)
    assert not report["passed"]


def test_paddlex_resize_and_reader_give_image_and_scale_factor(testdata):
    """PaddleX's detection preprocessing (RGB, stretch with bicubic, ImageNet normalisation,
    CHW) and the program's second input [ratio_h, ratio_w]."""
    import cv2

    from ptocr.converter.mapping import find_arch
    from ptocr.pipeline import model_inputs, read_image

    img = read_image(testdata / "tables" / "example-table.jpeg")
    image, scale = model_inputs(find_arch("PP-DocLayout-S").processing, img)
    want = cv2.resize(img[:, :, ::-1], (480, 480), interpolation=cv2.INTER_CUBIC)
    want = (want.astype(np.float32) / 255 - np.array([0.485, 0.456, 0.406], np.float32)) / \
        np.array([0.229, 0.224, 0.225], np.float32)
    np.testing.assert_allclose(image[0], want.transpose(2, 0, 1), atol=1e-6)
    h, w = img.shape[:2]
    np.testing.assert_array_equal(scale, np.array([[480 / h, 480 / w]], np.float32))
    assert scale.dtype == np.float32 and image.shape == (1, 3, 480, 480)

