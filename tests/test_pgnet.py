"""PGNet (e2e_r50_vd_pg): the whole network against a paddle twin written after PaddleOCR's
modules (tests/paddle_det_twins.py, pgnet: every parameter and BN statistic random) exported
by paddle as a 2.x program (converted and verified through the real CLI) and as PIR, and
saved as a training .pdparams; the recorded parameter names are the twin's; PGPostProcess
against PaddleOCR 2.10's own pg_postprocess.py / e2e_utils on synthetic maps with known
words and on the converted network's maps of a real image; `ptocr ocr --e2e` against
PaddleOCR's post-processing of Paddle's own maps; bad input is one line and writes nothing."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner

import ptocr
from conftest import run_cli
from det_twin_exports import export_twin, names_file_lines
from ppocr_ref import ppocr_module, wheel_root
from test_paddle_names import NAMES_DIR
from ptocr.converter import formats
from ptocr.converter.convert import convert
from ptocr.converter.mapping import find_arch, spec_from_dict
from ptocr.converter.verify import verify
from ptocr.pipeline import read_image
from ptocr.pipeline.postprocess.pg import OUTPUT_NAMES, PGPostProcess
from ptocr.pipeline.registry import build_transforms, transform

ARCH = "e2e_r50_vd_pg"
SIDE = 128  # E2EResizeForTest max_side_len of the tests: the real image at 128 px high
IC15 = (Path(ptocr.__file__).parent / "dicts" / "ic15_dict.txt").read_text().splitlines()


def invoke(*args):
    from ptocr.cli import main

    return CliRunner().invoke(main, [str(a) for a in args])


def small_table():
    """The real table with verifier inputs small enough for the test budget: one random
    shape and one real image through the table's own processing at max_side_len 128."""
    data = yaml.safe_load((Path(ptocr.__file__).parent / "mappings" / f"{ARCH}.yaml")
                          .read_text())
    data["PreProcess"]["transform_ops"][0] = {
        "E2EResizeForTest": {"max_side_len": SIDE, "valid_set": "totaltext"}}
    data.update(name=f"{ARCH}-test", aliases=[],
                inputs={"shapes": [[1, 3, 64, 64]], "images": ["images/11.jpg"]})
    return data


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    return export_twin("pgnet", tmp_path_factory.mktemp("pgnet"))


@pytest.fixture(scope="module")
def converted(exports, tmp_path_factory):
    """The 2.x program through `ptocr convert --arch TABLE.yaml` (the command, in this
    process; verified): (pth, report)."""
    out = tmp_path_factory.mktemp("pg-converted")
    table = out / "table.yaml"
    table.write_text(yaml.safe_dump(small_table()))
    res = invoke("convert", "--arch", table, "--paddle-dir", exports["pdmodel"], "--out",
                 out / "pg.pth", "--report", out / "report.json", "--require-verify")
    assert res.exit_code == 0, res.stdout[-3000:] + res.stderr[-2000:]
    return out / "pg.pth", json.loads((out / "report.json").read_text())


def test_2x_program_converts_and_verifies_through_the_cli(converted):
    pth, report = converted
    assert report["passed"]
    inputs = [r["input"] for r in report["results"]]
    assert inputs.count("image images/11.jpg") == 4  # f_border, f_char, f_direction, f_score
    assert max(r["max_abs"] for r in report["results"]) < 1e-4
    meta = ptocr.load(pth).ptocr_meta
    assert meta["extra"]["task"] == "e2e" and meta["extra"]["character_dict"] == IC15
    assert meta["processing"]["PostProcess"]["name"] == "PGPostProcess"


def test_pir_program_converts_and_verifies(exports):
    weights = formats.read(exports["pir"])
    assert weights.format == "pir"
    spec = spec_from_dict(small_table())
    conv = convert(None, weights=weights, spec=spec)
    assert conv.report.method == "program order"
    assert conv.config["Head"]["character_length"] == 37  # read from the program
    report = verify(weights, conv.model, spec, images=False)  # real images: the 2.x test
    assert report["passed"], report["results"]
    assert max(r["max_abs"] for r in report["results"]) < 1e-4


def test_training_checkpoint_converts_to_the_same_model(exports, converted):
    train = convert(None, weights=formats.read(exports["pdparams"]), spec=find_arch(ARCH))
    ref, ours = ptocr.load(converted[0]).state_dict(), train.model.state_dict()
    assert ref.keys() == ours.keys()
    assert all(torch.equal(ref[k], ours[k]) for k in ref)


def test_recorded_names_are_the_twins(exports):
    """tests/paddle_names/e2e_r50_vd_pg.txt is exactly the twin's state_dict (so the names
    test proves the full-size table consumes PaddleOCR's names)."""
    recorded = [line for line in (NAMES_DIR / f"{ARCH}.txt").read_text().splitlines()
                if line and not line.startswith("#")]
    assert recorded == names_file_lines(formats.read(exports["pdparams"]))


# ---- post-processing against PaddleOCR's own code

WORDS = [  # (text, centre line y(x) in map pixels, x from, x to)
    ("hello", lambda x: 12.0, 8, 72),
    ("ptocr", lambda x: 30 + 0.35 * (x - 16), 16, 84),  # slanted
    ("ok", lambda x: 54 + 3 * np.sin((x - 92) / 6.0), 92, 108),  # curved
    ("a", lambda x: 52.0, 8, 14),  # one character: dropped by both
]


def synthetic_maps(seed=0, h=64, w=112):
    """Maps (N=1, CHW, program order) of known words: a 5-px centre-line band per word
    (score 0.7..1), unit-free reading direction along the line, border offsets 6 px above
    and below it, and each character's class winning over the blank (the last class) on its
    stretch of the line, blanks between characters."""
    rng = np.random.RandomState(seed)
    lexicon = list("".join(IC15))
    score = rng.uniform(0.05, 0.15, (1, h, w)).astype(np.float32)
    border = np.zeros((4, h, w), np.float32)
    direction = np.zeros((2, h, w), np.float32)
    char = rng.uniform(-1, 0, (37, h, w)).astype(np.float32)
    char[36] = 2.0
    for text, centre, x0, x1 in WORDS:
        seg = (x1 - x0) / len(text)
        for x in range(x0, x1 + 1):
            cy, slope = centre(x), centre(x + 0.5) - centre(x - 0.5)
            for y in range(int(np.floor(cy - 2.5)), int(np.ceil(cy + 2.5)) + 1):
                if abs(y - cy) > 2.5:
                    continue
                score[0, y, x] = 0.7 + 0.3 * rng.rand()
                direction[:, y, x] = np.array([1.0, slope]) / np.hypot(1, slope) * 3.0
                border[:, y, x] = [cy - 6 - y, -slope * 0.3, cy + 6 - y, slope * 0.3]
                k = int((x - x0) // seg)
                if k < len(text) and 1.5 < (x - x0) - k * seg < seg - 1.5:
                    char[lexicon.index(text[k]), y, x] = 4.0 + rng.rand()
    return [border[None], char[None], direction[None], score[None]]


def paddleocr_pg(preds, shape, **params):
    """PaddleOCR's PGPostProcess (with its ic15 dictionary file) on maps in program order."""
    ppocr_module("ppocr.utils.e2e_utils.pgnet_pp_utils")
    ref = ppocr_module("ppocr.postprocess.pg_postprocess").PGPostProcess(
        character_dict_path=str(wheel_root() / "ppocr" / "utils" / "ic15_dict.txt"), **params)
    return ref(dict(zip(OUTPUT_NAMES, preds)), shape)


def assert_same(ours, ref):
    assert ours["texts"] == ref["texts"]
    assert len(ours["points"]) == len(ref["points"])
    for a, b in zip(ours["points"], ref["points"]):
        assert np.asarray(a).shape == np.asarray(b).shape
        assert np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).max() <= 1.0


PARAMS = [
    {"valid_set": "totaltext", "mode": "fast"},
    {"valid_set": "partvgg", "mode": "fast"},
    {"valid_set": "totaltext", "mode": "fast", "point_gather_mode": "align"},
    {"valid_set": "totaltext", "mode": "slow"},
]


@pytest.mark.parametrize("params", PARAMS, ids=lambda p: "-".join(map(str, p.values())))
def test_pg_postprocess_matches_paddleocr_on_known_words(params):
    preds = synthetic_maps()
    shape = np.array([[250, 440, 256 / 250, 448 / 440]])
    ref = paddleocr_pg(preds, shape, score_thresh=0.5, **params)
    ours = PGPostProcess(character_dict=IC15, score_thresh=0.5, **params)(preds, shape)[0]
    assert ref["texts"] == ["hello", "ptocr", "ok"]  # the words are read, "a" is dropped
    assert_same(ours, ref)
    # the polygons are where the words are: "hello" spans map x 8..72 (image x / 4 * ratio)
    xs = np.asarray(ours["points"][0], np.float64)[:, 0] * (448 / 440) / 4
    assert xs.min() < 10 and xs.max() > 70


@pytest.fixture(scope="module")
def image_maps(converted, testdata):
    """The converted network's maps of a real image through its checkpoint's processing:
    (maps in program order, the prepared data, a centre-line threshold). Random weights
    mark no real text, so the cut is the score map's 80th percentile (dozens of skeleton
    pieces) and the random character logits spell random strings."""
    model = ptocr.load(converted[0])
    pre = build_transforms(model.ptocr_meta["processing"]["PreProcess"])
    data = transform(pre, {"image": read_image(testdata / "images" / "11.jpg")})
    with torch.inference_mode():
        out = model(torch.from_numpy(data["image"][None]))
    preds = [o.numpy() for o in out.values()]
    return preds, data, float(np.percentile(preds[3], 80))


def test_pg_postprocess_matches_paddleocr_on_network_maps(image_maps):
    preds, data, thresh = image_maps
    shape = np.array([data["shape"]])
    for params in PARAMS:
        ref = paddleocr_pg(preds, shape, score_thresh=thresh, **params)
        ours = PGPostProcess(character_dict=IC15, score_thresh=thresh, **params)(preds,
                                                                                 shape)[0]
        assert len(ref["texts"]) > 0
        assert_same(ours, ref)


def test_ocr_e2e_cli_equals_paddleocr(converted, image_maps, testdata, tmp_path):
    """`ptocr ocr IMG --e2e pg.pth` (the whole CLI: checkpoint, its processing, the option)
    against PaddleOCR's predict_e2e steps on the network's maps of the same image (verified
    equal to Paddle's program above): its PGPostProcess, then points clipped into the image."""
    pth, _ = converted
    image = testdata / "images" / "11.jpg"
    preds, data, thresh = image_maps
    out = tmp_path / "e2e.json"
    res = run_cli("ocr", image, "--e2e", pth, "--json", out, "--e2e-pgnet-score-thresh",
                  repr(thresh))
    assert res.returncode == 0, res.stderr[-2000:]
    lines = json.loads(out.read_text())["11.jpg"]
    ref = paddleocr_pg(preds, np.array([data["shape"]]), score_thresh=thresh,
                       valid_set="totaltext", mode="fast")
    h, w = read_image(image).shape[:2]
    clipped = [[[int(min(max(x, 0), w - 1)), int(min(max(y, 0), h - 1))] for x, y in p]
               for p in ref["points"]]
    assert len(lines) == len(ref["texts"]) > 0
    assert [line["text"] for line in lines] == ref["texts"]
    for line, poly in zip(lines, clipped):
        assert np.abs(np.asarray(line["box"]) - np.asarray(poly)).max() <= 1
    # the Python API gives the same lines
    system = ptocr.OCR(e2e=pth, e2e_pgnet_score_thresh=thresh)
    assert system(image) == lines


# ---- bad input: one line, non-zero exit, no output file

@pytest.fixture(scope="module")
def det_pth(models, tmp_path_factory):
    out = tmp_path_factory.mktemp("pg-det") / "det.pth"
    res = invoke("convert", "--arch", "PP-OCRv4_mobile_det", "--paddle-dir",
                 models("PP-OCRv4_mobile_det"), "--out", out, "--no-verify")
    assert res.exit_code == 0, res.stderr
    return out


@pytest.mark.parametrize("case", ["pg-as-det", "pg-as-rec", "det-as-e2e", "det-with-e2e-dict",
                                  "e2e-with-det", "bad-mode", "missing-dict", "e2e-corpus"])
def test_bad_input_is_one_line_and_writes_nothing(case, converted, det_pth, testdata,
                                                  tmp_path):
    pg = converted[0]
    image = testdata / "images" / "11.jpg"
    out = tmp_path / "out.json"
    dict_file = tmp_path / "dict.txt"
    dict_file.write_text("a\nb\n")
    args = {
        "pg-as-det": ["--det", pg, "--rec", pg],
        "pg-as-rec": ["--det", det_pth, "--rec", pg],
        "det-as-e2e": ["--e2e", det_pth],
        "det-with-e2e-dict": ["--e2e", det_pth, "--e2e-char-dict-path", dict_file],
        "e2e-with-det": ["--e2e", pg, "--det", det_pth],
        "bad-mode": ["--e2e", pg, "--e2e-pgnet-mode", "medium"],
        "missing-dict": ["--e2e", pg, "--e2e-char-dict-path", tmp_path / "missing.txt"],
        "e2e-corpus": ["--e2e", pg, "--out", tmp_path / "shards"],
    }[case]
    json_out = [] if case == "e2e-corpus" else ["--json", out]
    res = invoke("ocr", image, *args, *json_out)
    assert res.exit_code != 0 and not out.exists() and not (tmp_path / "shards").exists()
    assert res.stderr.startswith("error:") and res.stderr.strip().count("\n") == 0, res.stderr
    expected = {"pg-as-det": "a e2e model was given where a det model is needed",
                "pg-as-rec": "a e2e model was given where a rec model is needed",
                "det-as-e2e": "a det model was given where a e2e model is needed",
                "det-with-e2e-dict": "a det model was given where a e2e model is needed",
                "e2e-with-det": "without --det", "bad-mode": "mode must be fast or slow",
                "missing-dict": "cannot read the character dictionary",
                "e2e-corpus": "not --e2e"}[case]
    assert expected in res.stderr


def test_convert_refuses_a_dictionary_that_does_not_fit(exports, tmp_path):
    out = tmp_path / "pg.pth"
    bad = tmp_path / "dict.txt"
    bad.write_text("a\nb\nc\n")
    res = invoke("convert", "--arch", ARCH, "--paddle-dir", exports["pdparams"], "--out", out,
                 "--rec-dict", bad, "--no-verify")
    assert res.exit_code != 0 and not out.exists()
    assert res.stderr.startswith("error:") and res.stderr.strip().count("\n") == 0
    assert "the model has 37" in res.stderr
