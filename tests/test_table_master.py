"""TableMaster (PaddleOCR configs/table/table_master.yml): the whole network against a paddle
twin written after PaddleOCR's modules (tests/paddle_table_master_ref.py; small decoder, the
backbone's fixed channels, one block per stage), randomised including BN statistics, exported
as a PIR program and saved as a training .pdparams, converted and verified; a mapping bug is
refused; TableMasterLabelDecode and TableMaster's preprocessing order against PaddleOCR's own
code from the paddleocr 2.10.0 wheel.

Paddle 3.3's old-IR (2.x) exporter fails on this network's decoding loop (a PIR Value reaches
an old-IR matmul), so the twin is exported in PIR only."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ppocr_ref import ppocr_module

HERE = Path(__file__).parent
TABLES = ["PMC524509_007_00.png", "example-table.jpeg"]

TWIN_TABLE = """
name: table_master-twin
task: table
dict_special_tokens: 4
Architecture:
  model_type: table
  algorithm: TableMaster
  Backbone:
    name: TableResNetExtra
    layers: [1, 1, 1, 1]
    gcb_config: {ratio: 0.0625, headers: 1, att_scale: false, fusion_type: channel_add,
                 layers: [false, true, true, true]}
  Head: {name: TableMasterHead, headers: 8, dropout: 0, d_ff: 64, max_text_length: 5,
         loc_reg_num: 4}
infer:
  Head.out_channels: {shape: head.cls_fc.weight, dim: 1, unstructured: 12}
PreProcess:
  transform_ops:
    - ResizeTableImage: {max_len: 64}
    - PaddingTableImage: {size: [64, 64]}
    - NormalizeImage: {scale: 1./255., mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5], order: hwc}
    - ToCHWImage: null
    - KeepKeys: {keep_keys: [image, shape]}
PostProcess: {name: TableMasterLabelDecode, box_shape: pad, merge_no_span_structure: true}
inputs:
  shapes: [[1, 3, 32, 32], [2, 3, 48, 64]]
  images: [tables/example-table.jpeg]
tolerance: {max_abs: 1.0e-4}
"""


@pytest.fixture(scope="module")
def twin(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("table_master_twin")
    (tmp / "pir").mkdir()
    (tmp / "train").mkdir()
    res = subprocess.run([sys.executable, str(HERE / "paddle_table_master_ref.py"),
                          str(tmp / "pir" / "inference"), "pir",
                          str(tmp / "train" / "best_accuracy.pdparams")],
                         capture_output=True, text=True,
                         env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert res.returncode == 0, res.stderr[-2000:]
    (tmp / "twin.yaml").write_text(TWIN_TABLE)
    return tmp


@pytest.mark.parametrize("form", ["pir", "pdparams"])
def test_table_master_twin_converts_and_verifies(twin, form):
    from conftest import convert_and_verify_twin

    report = convert_and_verify_twin(twin, form)
    assert report["passed"], report["results"]
    assert report["judged_in"] == "float64", report.get("float64_unavailable")
    assert max(r["max_abs"] for r in report["results"]) < 1e-5
    # the fixed-length loop: max_text_length + 1 steps, 4 box values, 12 classes
    shapes = {tuple(r["shape"]) for r in report["results"]}
    assert {(1, 6, 4), (1, 6, 12), (2, 6, 4), (2, 6, 12)} <= shapes


def test_broken_table_master_conversion_refused(twin, monkeypatch):
    """A mapping bug (the decoder's square query projections left in Paddle's [in, out]
    layout, which no shape check can see) gives a model the verifier refuses."""
    from ptocr.converter import formats, mapping
    from ptocr.converter.convert import convert
    from ptocr.converter.mapping import find_arch
    from ptocr.converter.verify import verify

    real = mapping.to_torch_layout

    def untransposed(array, owner, name):
        array = real(array, owner, name)
        return array.T.copy() if name.endswith("linears.0.weight") else array

    monkeypatch.setattr(mapping, "to_torch_layout", untransposed)
    spec = find_arch(str(twin / "twin.yaml"))
    conv = convert(None, weights=formats.read(twin / "train"), spec=spec)
    report = verify(formats.read(twin / "pir" / "inference.json"), conv.model, spec,
                    images=False)
    assert not report["passed"]


def test_table_master_label_decode_matches_paddleocr():
    from ptocr.pipeline.postprocess.table import TableMasterLabelDecode

    ref_mod = ppocr_module("ppocr.postprocess.table_postprocess")
    dict_path = HERE.parent / "dicts" / "table_master_structure_dict.txt"
    chars = dict_path.read_text(encoding="utf-8").splitlines()
    rng = np.random.RandomState(0)
    logits = rng.randn(2, 40, 43).astype(np.float32) * 3
    logits[:, :, [2, 8]] += 4  # plenty of cell tokens ("<td></td>", "<td")
    logits[:, :, 41] -= 20
    logits[0, 30, 41] = 50  # <EOS> at step 30 of image 0 (and nowhere else)
    logits[1, 3, 42] = logits[1, 4, 39] = logits[1, 5, 40] = 50  # <PAD>, <UKN>, <SOS>
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    loc = rng.rand(2, 40, 4).astype(np.float32)
    shapes = np.array([[300, 500, 0.96, 0.96, 480, 480], [480, 200, 1.0, 1.0, 480, 480]])
    for box_shape in ("pad", "ori"):
        ref = ref_mod.TableMasterLabelDecode(str(dict_path), box_shape=box_shape,
                                             merge_no_span_structure=True)
        ours = TableMasterLabelDecode(character_dict=chars, box_shape=box_shape,
                                      merge_no_span_structure=True)
        assert ours.character == ref.character
        want = ref({"structure_probs": probs.copy(), "loc_preds": loc.copy()}, [shapes])
        got = ours([loc.copy(), probs.copy()], shapes)
        for b in range(2):
            assert got[b]["structure"] == want["structure_batch_list"][b][0]
            assert got[b]["score"] == pytest.approx(float(want["structure_batch_list"][b][1]))
            np.testing.assert_array_equal(got[b]["bboxes"], want["bbox_batch_list"][b])
        assert 0 < len(got[0]["structure"]) <= 30
        assert len(got[0]["bboxes"]) > 3


def test_table_master_preprocess_matches_paddleocr(testdata):
    """predict_structure.py for TableMaster: resize 480, pad, then normalise (0.5/0.5)."""
    from ptocr.converter.mapping import find_arch
    from ptocr.pipeline import read_image
    from ptocr.pipeline.registry import build_transforms, transform

    ops = ppocr_module("ppocr.data.imaug.table_ops")
    norm = ppocr_module("ppocr.data.imaug.operators")
    ours = build_transforms(find_arch("table_master").processing["PreProcess"])
    for name in TABLES:
        img = read_image(testdata / "tables" / name)
        data = {"image": img.copy()}
        for op in (ops.ResizeTableImage(max_len=480), ops.PaddingTableImage(size=[480, 480]),
                   norm.NormalizeImage(scale="1./255.", mean=[0.5, 0.5, 0.5],
                                       std=[0.5, 0.5, 0.5], order="hwc"), norm.ToCHWImage()):
            data = op(data)
        got = transform(ours, {"image": img.copy()})
        np.testing.assert_array_equal(got["image"], data["image"])
        np.testing.assert_array_equal(got["shape"], data["shape"])
        assert got["image"].shape == (3, 480, 480) and got["image"].min() == -1.0


def test_table_master_checkpoint_runs_its_processing_and_the_table_system_refuses_it(
        twin, tmp_path, testdata):
    """The converted checkpoint carries TableMaster's processing as data (resize, pad,
    normalise; TableMasterLabelDecode with the dictionary) and decodes a real table image to
    tokens and corner boxes; the table system refuses it with one line, since PaddleOCR
    matches TableMaster's cells with its TableMasterMatcher, which is not ported."""
    import ptocr
    from conftest import run_cli
    from ptocr.errors import PtocrError
    from ptocr.pipeline.system import Stage
    from ptocr.pipeline.table import TableRecognizer

    # 8 dictionary entries + <UKN>, <SOS>, <EOS>, <PAD> = the twin's 12 classes
    (tmp_path / "dict.txt").write_text("<thead>\n<tr>\n<td></td>\n</tr>\n</thead>\n<tbody>\n"
                                       "<td\n</tbody>\n")
    ckpt = tmp_path / "tm.pth"
    res = run_cli("convert", "--arch", twin / "twin.yaml", "--paddle-dir", twin / "pir",
                  "--rec-dict", tmp_path / "dict.txt", "--out", ckpt, "--no-verify")
    assert res.returncode == 0, res.stderr
    model = ptocr.load(ckpt)
    stage = Stage(model, "table", None,
                  character_dict=model.ptocr_meta["extra"]["character_dict"])
    data = stage.prepare(ptocr.pipeline.read_image(testdata / "tables" / "example-table.jpeg"))
    assert data["image"].shape == (3, 64, 64)
    out = stage.post(stage.run([data]), np.array([data["shape"]]))[0]
    assert set(out["structure"]) <= {"<thead>", "<tr>", "<td></td>", "</tr>", "</thead>",
                                     "<tbody>", "<td", "</tbody>"}
    assert out["bboxes"].ndim == 1 or out["bboxes"].shape[1] == 4
    with pytest.raises(PtocrError, match="TableMasterMatcher"):
        TableRecognizer(table=str(ckpt), det=None, rec=None, ocr=object())
