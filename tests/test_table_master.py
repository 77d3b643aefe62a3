"""TableMaster (PaddleOCR configs/table/table_master.yml): the whole network against a paddle
twin written after PaddleOCR's modules (tests/paddle_table_master_ref.py; small decoder, the
backbone's fixed channels, one block per stage), randomised including BN statistics, exported
as a PIR program and saved as a training .pdparams, converted and verified; a mapping bug is
refused; TableMasterLabelDecode, TableMaster's preprocessing order and the TableMasterMatcher
(cell matching to HTML, spans included) against PaddleOCR's own code from the paddleocr 2.10.0
wheel; `ptocr table` with the converted twin writes HTML and .xlsx.

Paddle 3.3's old-IR (2.x) exporter fails on this network's decoding loop (a PIR Value reaches
an old-IR matmul), so the twin is exported in PIR only."""

import os
import re
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
Match: {name: TableMasterMatcher}
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


def _tm_reference():
    return ppocr_module("ppstructure.table.table_master_match").TableMasterMatcher()


def _tm_wrap(tokens):
    return ["<html>", "<body>", "<table>"] + list(tokens) + ["</table>", "</body>", "</html>"]


def test_table_master_matcher_spans_and_header_match_paddleocr():
    """A hand-made table: a bold header row with a colspan, a body cell spanning two rows
    and two columns, a line in two cells' overlap (IoU rule), a cell without a line inside
    (distance rule), an empty-cell placeholder, and lines outside every cell."""
    from ptocr.pipeline.postprocess.table_match import TableMasterMatcher

    tokens = ["<thead>", "<tr>", "<td", ' colspan="2"', ">", "</td>", "<td></td>", "</tr>",
              "</thead>", "<tbody>", "<tr>", "<td", ' rowspan="2"', ' colspan="2"', ">",
              "</td>", "<td></td>", "</tr>", "<tr>", "<eb></eb>", "</tr>", "<tr>",
              "<td></td>", "<td></td>", "<td></td>"]  # cut: no </tr></tbody>
    cells = np.array([[0, 0, 200, 30], [200, 0, 300, 30], [0, 30, 200, 90],
                      [200, 30, 300, 60], [0, 0, 0, 0], [0, 90, 100, 120],
                      [100, 90, 200, 120], [200, 90, 300, 120]], dtype=np.float32)
    boxes = np.array([[10, 5, 90, 25], [110, 5, 190, 25], [210, 5, 290, 25],
                      [20, 40, 180, 80], [150, 50, 260, 58], [5, 95, 60, 98],
                      [10, 200, 50, 220], [60, 201, 90, 219], [10, 300, 40, 320]],
                     dtype=np.float32)
    texts = ["<b>Head", "line</b>", "B", "body,span", "overlap", "c", "x", "y", "z"]
    want = _tm_reference()((_tm_wrap(tokens), cells), boxes, [(t, 0.9) for t in texts])
    got = TableMasterMatcher()(tokens, cells, boxes, texts)
    assert got == want
    assert '<td colspan="2"><b>Head line</b></td>' in got  # span kept, header in bold
    # PaddleOCR's span merge joins only '<td', ' rowspan="2"', ' colspan="2"', '>' when a
    # cell has both, so that cell's text is lost there too
    assert '<td rowspan="2" colspan="2"></td><td>overlap</td>' in got
    assert got.endswith("<tr><td>x</td></tr><tr><td>z</td></tr></tbody></table></body></html>")


def test_table_master_matcher_matches_paddleocr_on_random_tables():
    """Random structures (header or not, row/col spans, <eb> placeholders, cut short or
    complete), cell boxes (some padding), OCR lines (inside, overlapping, outside cells;
    float32, float64 or integer boxes; bold and comma texts): identical HTML; where PaddleOCR's
    matcher fails, ours says so with a ValueError."""
    from ptocr.pipeline.postprocess.table_match import TableMasterMatcher

    ref, ours = _tm_reference(), TableMasterMatcher()
    cells = [["<td></td>"], ["<td", ' colspan="2"', ">", "</td>"],
             ["<td", ' rowspan="3"', ' colspan="2"', ">", "</td>"],
             ["<td", ' rowspan="2"', ">", "</td>"], ["<eb></eb>"], ["<eb2></eb2>"],
             ["<eb1></eb1>"]]
    words = ["a", "<b>Bold</b>", "<b>x", "y</b>", "1,5", " s p", "<b>", "n", "<b>T</b>"]
    seen = {"span": 0, "bold": 0, "virtual": 0, "fails": 0}
    for seed in range(400):
        rng = np.random.default_rng(seed)
        tokens, n = [], 0
        for part in ("thead", "tbody"):
            if part == "thead" and rng.random() < 0.3:
                continue
            tokens.append(f"<{part}>")
            for _ in range(rng.integers(1, 4)):
                tokens.append("<tr>")
                for _ in range(rng.integers(1, 4)):
                    tokens += cells[rng.choice(len(cells), p=[.5, .15, .1, .1, .05, .05, .05])]
                    n += 1
                tokens.append("</tr>")
            tokens.append(f"</{part}>")
        cut = rng.random()
        if cut < 0.3:
            tokens = tokens[:rng.integers(1, len(tokens))]
        elif cut < 0.4:
            tokens = tokens[:-1] + ["<td></td>"]
        n_cells = max(1, n + rng.integers(-2, 2))
        xy = rng.uniform(0, [400, 300], (n_cells, 2))
        boxes_c = np.concatenate([xy, xy + rng.uniform(5, 80, (n_cells, 2))], 1)
        boxes_c = boxes_c.astype(np.float32)
        if rng.random() < 0.3:
            boxes_c = np.round(boxes_c)
        boxes_c[rng.random(n_cells) < 0.1] = 0
        if (boxes_c.sum(1) == 0).all():
            boxes_c[0] = [1, 1, 20, 20]
        n_ocr = rng.integers(1, 12)
        oxy = rng.uniform(0, [400, 300], (n_ocr, 2))
        for k in range(n_ocr):
            if rng.random() < 0.5:
                oxy[k] = boxes_c[rng.integers(n_cells), :2] + rng.uniform(-5, 10, 2)
        if rng.random() < 0.3:  # leftover lines sharing rows
            oxy[:, 1] = np.round(oxy[:, 1] / 40) * 40
        boxes_o = np.concatenate([oxy, oxy + rng.uniform(3, 60, (n_ocr, 2))], 1)
        boxes_o = (boxes_o.astype(rng.choice([np.float32, np.float64]))
                   if rng.random() < 0.8 else np.round(boxes_o).astype(int))
        texts = [str(rng.choice(words)) + str(k) * int(rng.random() < .5)
                 for k in range(n_ocr)]
        try:
            want = ref((_tm_wrap(tokens), boxes_c), boxes_o, [(t, 0.9) for t in texts])
        except (IndexError, TypeError):
            with pytest.raises(ValueError, match="TableMasterMatcher"):
                ours(tokens, boxes_c, boxes_o, texts)
            seen["fails"] += 1
            continue
        got = ours(tokens, boxes_c, boxes_o, texts)
        assert got == want, seed
        seen["span"] += bool(re.search(r'span="\d">(<b>)?\w', got))
        seen["bold"] += "<thead><tr><td><b>" in got
        seen["virtual"] += tokens[-1] != "</tbody>"
    assert min(seen.values()) > 0 and seen["span"] > 100, seen


def test_table_master_checkpoint_carries_its_match_rule(twin, tmp_path):
    """The converted checkpoint carries TableMaster's processing as data, the matching rule
    included, and the table system takes TableMasterMatcher from it."""
    import ptocr
    from conftest import run_cli
    from ptocr.converter.mapping import find_arch
    from ptocr.pipeline.postprocess.table_match import TableMasterMatcher
    from ptocr.pipeline.table import TableRecognizer

    assert find_arch("table_master").processing["Match"] == {"name": "TableMasterMatcher"}
    (tmp_path / "dict.txt").write_text("<thead>\n<tr>\n<td></td>\n</tr>\n</thead>\n<tbody>\n"
                                       "<td\n</tbody>\n")
    ckpt = tmp_path / "tm.pth"
    res = run_cli("convert", "--arch", twin / "twin.yaml", "--paddle-dir", twin / "pir",
                  "--rec-dict", tmp_path / "dict.txt", "--out", ckpt, "--no-verify",
                  env={"OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stderr
    model = ptocr.load(ckpt)
    assert model.ptocr_meta["processing"]["Match"] == {"name": "TableMasterMatcher"}
    system = TableRecognizer(table=model, det=None, rec=None, ocr=object())
    assert isinstance(system.match, TableMasterMatcher)
