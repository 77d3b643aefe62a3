"""SDMGR (kie_unet_sdmgr): PaddleOCR cannot export it as a static program (its backbone
calls .numpy() on the batch; tools/export_model.py has no input spec for it), so the proof
is in-process: a paddle dygraph twin of PaddleOCR's modules (tests/paddle_sdmgr_ref.py,
every parameter and BN statistic random) saved as a training .pdparams, converted by
`ptocr convert`, and both run on the same inputs. Processing is checked against PaddleOCR's
own KieLabelEncode / KieResize / DecodeImage / NormalizeImage / ToCHWImage and
tools/infer_kie.py (read_class_list, draw_kie_result) from the paddleocr==2.10.0 wheel."""

import json
import string
import sys
import types

import cv2
import numpy as np
import paddle
import pytest
import torch
from click.testing import CliRunner

from paddle_ref import randomize
from paddle_sdmgr_ref import SDMGR as PaddleSDMGR
from ppocr_ref import ppocr_module, wheel_root

from ptocr.cli import main

# a small head (the UNet's sizes are fixed in PaddleOCR's code); fusion_dim 98 gives
# Block's chunks 19 × 5 + 3, an uneven last chunk
HEAD = dict(num_chars=40, fusion_dim=98, node_embed=24, edge_embed=24, num_classes=5)
CHARS = list(string.ascii_lowercase + string.digits + ".:$")  # indices 1..39
CLASSES = ["Ignore", "Store_name_value", "Date_value", "Total_value", "Others"]
IMAGE = "images/img_12.jpg"
BOXES = [  # quads in several orders and rotations, floats, unknown characters, tiny boxes
    {"transcription": "total: $12.50", "points": [[20, 30], [260, 34], [258, 70], [18, 66]]},
    {"transcription": "Date 2024.01.02", "points": [[300.7, 200.2], [120.4, 198.9],
                                                    [121.3, 160.8], [299.6, 161.5]]},
    {"transcription": "ABC!!", "points": [[400, 40], [440, 80], [400, 120], [360, 80]]},
    {"transcription": "x", "points": [[5, 5], [8, 5], [8, 7], [5, 7]]},
    {"transcription": "store name 7", "points": [[50, 300], [600, 310], [590, 360], [45, 350]]},
    {"transcription": "off the edge", "points": [[600, 400], [900, 400], [900, 450], [600, 450]]},
]


def _cli(*args):
    res = CliRunner().invoke(main, [str(a) for a in args])
    return res.exit_code, res.stdout, res.stderr


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sdmgr")
    paddle.seed(0)
    twin = randomize(PaddleSDMGR(**HEAD), seed=3)
    paddle.save(twin.state_dict(), str(tmp / "sdmgr.pdparams"))
    (tmp / "dict.txt").write_text("\n".join(CHARS) + "\n", encoding="utf-8")
    (tmp / "classes.txt").write_text("\n".join(CLASSES) + "\n", encoding="utf-8")
    code, _, err = _cli("convert", "--arch", "kie_unet_sdmgr", "--paddle-dir",
                        tmp / "sdmgr.pdparams", "--out", tmp / "sdmgr.pth")
    assert code == 0, err
    assert "parity NOT verified" in err  # no program to verify against: the tests below are
    import ptocr

    return {"dir": tmp, "twin": twin, "model": ptocr.load(tmp / "sdmgr.pth"),
            "ckpt": tmp / "sdmgr.pth", "dict": tmp / "dict.txt", "classes": tmp / "classes.txt"}


def _twin_run(twin, image, relations, texts, points, tag, shape):
    """PaddleOCR's batch as infer_kie hands it over (KeepKeys of the Eval pipeline)."""
    batch = [image, relations, texts, points, np.zeros(1), tag, np.zeros(1), np.zeros(1), shape]
    node, edge = twin([paddle.to_tensor(b) for b in batch])
    return node.numpy(), edge.numpy()


def _torch_run(model, *inputs):
    with torch.inference_mode():
        node, edge = model(*[torch.from_numpy(np.asarray(x)) for x in inputs])
    return node.numpy(), edge.numpy()


def test_converted_pdparams_equals_the_paddle_twin_on_a_real_image(setup, testdata):
    """Real image and boxes through ptocr's processing (checked against PaddleOCR's below);
    the network is told (``shape``) to read only the top-left 160×224 of the resized image,
    as it crops a batch to its largest image (paddle's dygraph UNet on the whole 512×832
    takes ~20 s on one thread), so some boxes lie partly or wholly outside the map."""
    from ptocr.pipeline.kie_sdmgr import SDMGR

    system = SDMGR(setup["ckpt"], setup["dict"], setup["classes"])
    from ptocr.pipeline.registry import transform

    data = transform(system.pre, {"image": cv2.imread(str(testdata / IMAGE)),
                                  "label": json.dumps(BOXES)})
    inputs = [np.asarray(data[k])[None] for k in data["keep_keys"]]
    assert data["keep_keys"] == ["image", "relations", "texts", "points", "tag", "shape"]
    inputs[-1] = np.array([[160, 224]])
    ref = _twin_run(setup["twin"], *inputs)
    out = _torch_run(setup["model"], *inputs)
    for r, o in zip(ref, out):
        assert r.shape == o.shape
        assert np.abs(r - o).max() < 1e-4, np.abs(r - o).max()
    assert ref[0].shape == (len(BOXES), HEAD["num_classes"]) and ref[1].shape == (36, 2)


def test_converted_model_equals_the_twin_on_a_batch_of_two(setup):
    """Two samples with different box counts and text lengths (per-sample cropping, GNN
    message passing within each sample), boxes partly outside the map, sub-pixel boxes, a
    box whose text has no known character (zero text feature)."""
    rng = np.random.RandomState(7)
    image = rng.randn(2, 3, 128, 160).astype("float32")
    relations = rng.randn(2, 12, 12, 5)
    texts = -np.ones((2, 12, 10))
    points = np.zeros((2, 12, 4))
    counts, lens = [5, 8], [[3, 7, 0, 1, 5], [2, 2, 9, 4, 1, 1, 6, 3]]
    for b in range(2):
        for i, n in enumerate(lens[b]):
            texts[b, i, :n] = rng.randint(1, HEAD["num_chars"], n)
        x1, y1 = rng.uniform(-8, 140, counts[b]), rng.uniform(-8, 100, counts[b])
        w, h = rng.uniform(0.3, 60, counts[b]), rng.uniform(0.2, 40, counts[b])
        points[b, :counts[b]] = np.stack([x1, y1, x1 + w, y1 + h], 1)
    tag = np.array([[counts[0], max(lens[0])], [counts[1], max(lens[1])]])
    shape = np.array([[96, 128], [128, 160]])
    ref = _twin_run(setup["twin"], image, relations, texts, points, tag, shape)
    out = _torch_run(setup["model"], image, relations, texts, points, tag, shape)
    assert ref[0].shape == (13, HEAD["num_classes"]) and ref[1].shape == (25 + 64, 2)
    for r, o in zip(ref, out):
        assert np.abs(r - o).max() < 1e-4, np.abs(r - o).max()


@pytest.fixture(scope="module")
def paddleocr_ops(setup):
    label_ops = ppocr_module("ppocr.data.imaug.label_ops")
    ops = ppocr_module("ppocr.data.imaug.operators")
    global_config = {"img_scale": [1024, 512]}  # create_operators merges Global into each op
    return [ops.DecodeImage(img_mode="RGB", channel_first=False, **global_config),
            label_ops.KieLabelEncode(character_dict_path=str(setup["dict"]),
                                     class_path=str(setup["classes"]), **global_config),
            ops.KieResize(**global_config),
            ops.NormalizeImage(scale=1, mean=[123.675, 116.28, 103.53],
                               std=[58.395, 57.12, 57.375], order="hwc", **global_config),
            ops.ToCHWImage(**global_config)]


@pytest.mark.parametrize("image,size", [(IMAGE, None), ("images/1.jpg", None),
                                        ("images/11.jpg", (90, 700)),
                                        ("images/11.jpg", (300, 200))])
def test_processing_equals_paddleocrs_eval_pipeline(setup, paddleocr_ops, testdata, image,
                                                    size):
    """The same image file and boxes through PaddleOCR's operators (its eval pipeline needs
    training labels: key_cls given to both) and ours: every model input identical."""
    from ptocr.pipeline.registry import build_transforms, transform
    from ptocr.converter.mapping import find_arch

    img = cv2.imread(str(testdata / image))
    if size:
        img = cv2.resize(img, size[::-1])
    anns = [dict(b, key_cls=i % HEAD["num_classes"], edge=i % 2) for i, b in enumerate(BOXES)]
    ref = {"image": cv2.imencode(".png", img)[1].tobytes(), "label": json.dumps(anns)}
    for op in paddleocr_ops:
        ref = op(ref)
    pre = build_transforms(find_arch("kie_unet_sdmgr").processing["PreProcess"],
                           {"KieLabelEncode": {"character_dict_path": str(setup["dict"]),
                                               "class_path": str(setup["classes"])}})
    ours = transform(pre, {"image": img, "label": json.dumps(anns)})
    for key in ("image", "relations", "texts", "points", "tag", "shape", "labels",
                "ori_boxes"):
        assert ours[key].shape == ref[key].shape, key
        assert ours[key].dtype == ref[key].dtype, key
        assert np.array_equal(ours[key], ref[key]), key
    # without training labels ours gives the same inputs (PaddleOCR's encoder demands them)
    plain = transform(pre, {"image": img, "label": json.dumps(BOXES)})
    assert "labels" not in plain
    for key in plain["keep_keys"]:
        assert np.array_equal(plain[key], ref[key]), key


def _infer_kie():
    """tools/infer_kie.py from the wheel, its training-time imports stood in by stubs."""
    if "tools.infer_kie" in sys.modules:
        return sys.modules["tools.infer_kie"]
    import importlib.util

    stubs = {"ppocr.data": dict(create_operators=None, transform=None),
             "ppocr.modeling": {}, "ppocr.modeling.architectures": dict(build_model=None),
             "ppocr.utils.save_load": dict(load_model=None, init_model=None),
             "tools": {}, "tools.program": {}}
    added = [name for name in stubs if name not in sys.modules]
    for name, attrs in stubs.items():
        module = sys.modules.setdefault(name, types.ModuleType(name))
        for key, value in attrs.items():
            if not hasattr(module, key):
                setattr(module, key, value)
    ppocr_module("ppocr.utils.logging")
    spec = importlib.util.spec_from_file_location("tools.infer_kie",
                                                  wheel_root() / "tools" / "infer_kie.py")
    module = importlib.util.module_from_spec(spec)
    saved_path = list(sys.path)
    try:  # infer_kie puts the wheel's package folder first on sys.path (its own layout), where
        # paddleocr.py would shadow the paddleocr package for every later ppocr_module
        spec.loader.exec_module(module)
    finally:
        sys.path[:] = saved_path
        for name in added:  # the stubs stand in for this load only
            sys.modules.pop(name, None)
    sys.modules["tools.infer_kie"] = module
    return module


def test_labels_scores_and_drawing_equal_infer_kie(setup, testdata, tmp_path):
    """PaddleOCR's read_class_list, softmax + max/argmax and draw_kie_result (its PNG) against
    ours on the same logits, boxes and image."""
    from ptocr.pipeline.kie_sdmgr import draw_sdmgr
    from ptocr.pipeline.postprocess.kie_sdmgr import SDMGRPostProcess

    ref_mod = _infer_kie()
    rng = np.random.RandomState(1)
    node = rng.randn(len(BOXES), HEAD["num_classes"]).astype("float32") * 3
    edge = rng.randn(len(BOXES) ** 2, 2).astype("float32")
    classes = ref_mod.read_class_list(str(setup["classes"]))
    ours = SDMGRPostProcess(class_path=str(setup["classes"]))([node, edge])
    assert ours_classes(setup) == classes
    probs = paddle.nn.functional.softmax(paddle.to_tensor(node), -1)
    ids = paddle.argmax(probs, -1).numpy().tolist()
    scores = paddle.max(probs, -1).numpy().tolist()
    assert [b["class_id"] for b in ours["boxes"]] == ids
    assert [b["label"] for b in ours["boxes"]] == [classes[i] for i in ids]
    assert np.allclose([b["score"] for b in ours["boxes"]], scores, atol=1e-6)
    link = np.exp(edge) / np.exp(edge).sum(1, keepdims=True)
    want = {(i, j) for i in range(len(BOXES)) for j in range(len(BOXES))
            if i != j and link[i * len(BOXES) + j, 1] > 0.5}
    assert {(i, j) for i, j, _ in ours["edges"]} == want

    img = cv2.imread(str(testdata / IMAGE))
    bboxes = np.array([[20, 30, 258, 70], [120, 160, 300, 200], [5, 5, 8, 7], [600, 400, 900, 450]],
                      np.float64)
    ref_mod.config = {"Global": {"save_res_path": str(tmp_path / "out" / "res.txt")}}
    ref_mod.logger = types.SimpleNamespace(info=lambda *_: None)
    batch = [None] * 6 + [img, bboxes]
    ref_mod.draw_kie_result(batch, probs[:4], classes, 0)
    drawn = cv2.imread(str(tmp_path / "out" / "kie_results" / "0.png"))
    result = {"boxes": [dict(b, bbox=list(map(float, bb)))
                        for b, bb in zip(ours["boxes"], bboxes)]}
    assert np.array_equal(draw_sdmgr(img, result), drawn)


def ours_classes(setup):
    from ptocr.pipeline.postprocess.kie_sdmgr import read_class_list

    return read_class_list(setup["classes"])


def _box_file(path, lines):
    path.write_text("".join(f"{img}\t{json.dumps(b)}\n" for img, b in lines), encoding="utf-8")
    return path


def test_cli_labels_boxes_of_a_box_file(setup, testdata, tmp_path):
    boxes = _box_file(tmp_path / "boxes.txt", [(IMAGE, BOXES), ("images/1.jpg", [])])
    out, vis = tmp_path / "kie.json", tmp_path / "vis"
    code, _, err = _cli("kie", "--sdmgr", setup["ckpt"], "--dict-path", setup["dict"],
                        "--class-path", setup["classes"], "--data-dir", testdata, boxes,
                        "--json", out, "--vis-dir", vis)
    # the image without boxes is one warning, the other is written, exit 1
    assert code == 1, err
    assert "1.jpg: no text boxes; skipped" in err and "Traceback" not in err
    (res,) = json.loads(out.read_text())
    assert res["image"].endswith("img_12.jpg") and len(res["boxes"]) == len(BOXES)
    names = set(CLASSES)
    for box, ann in zip(res["boxes"], BOXES):
        assert box["label"] in names and 0 < box["score"] <= 1
        assert box["transcription"] == ann["transcription"]
    assert all(i != j and 0.5 < p <= 1 for i, j, p in res["edges"])
    drawn = cv2.imread(str(vis / "img_12_sdmgr.jpg"))
    h, w = cv2.imread(str(testdata / IMAGE)).shape[:2]
    assert drawn.shape[:2] == (h, 3 * w)


@pytest.mark.parametrize("case", ["no tab", "bad json", "no points", "three points"])
def test_malformed_box_file_is_one_line_and_no_output(setup, testdata, tmp_path, case):
    line = {"no tab": f"{IMAGE} {json.dumps(BOXES)}",
            "bad json": f"{IMAGE}\t[{{\"transcription\": \"a\"",
            "no points": f"{IMAGE}\t" + json.dumps([{"transcription": "a"}]),
            "three points": f"{IMAGE}\t" + json.dumps([{"transcription": "a",
                                                        "points": [[0, 0], [1, 0], [1, 1]]}])}
    boxes = tmp_path / "boxes.txt"
    boxes.write_text(f"{IMAGE}\t{json.dumps(BOXES)}\n{line[case]}\n", encoding="utf-8")
    out, vis = tmp_path / "kie.json", tmp_path / "vis"
    code, _, err = _cli("kie", "--sdmgr", setup["ckpt"], "--dict-path", setup["dict"],
                        "--data-dir", testdata, boxes, "--json", out, "--vis-dir", vis)
    assert code != 0 and err.startswith("error:") and err.strip().count("\n") == 0, err
    assert "line 2" in err and not out.exists() and not vis.exists()


def test_wrong_kind_checkpoint_and_dictionary_are_refused(setup, models, testdata, tmp_path):
    det = tmp_path / "det.pth"
    code, _, err = _cli("convert", "--arch", "PP-OCRv4_mobile_det", "--paddle-dir",
                        models("PP-OCRv4_mobile_det"), "--out", det, "--no-verify")
    assert code == 0, err
    boxes = _box_file(tmp_path / "boxes.txt", [(IMAGE, BOXES)])
    out = tmp_path / "kie.json"
    big = tmp_path / "big_dict.txt"
    big.write_text("\n".join(CHARS + ["A", "B"]) + "\n", encoding="utf-8")
    for ckpt, dict_path, expect in [(det, setup["dict"], "a det model was given where a kie"),
                                    (setup["ckpt"], big, "41 characters do not fit")]:
        code, _, err = _cli("kie", "--sdmgr", ckpt, "--dict-path", dict_path, "--data-dir",
                            testdata, boxes, "--json", out)
        assert code != 0 and expect in err and err.strip().count("\n") == 0, err
        assert not out.exists()


@pytest.mark.parametrize("damage", ["missing tensor", "wrong shape"])
def test_broken_conversion_is_refused(setup, tmp_path, damage):
    state = paddle.load(str(setup["dir"] / "sdmgr.pdparams"))
    if damage == "missing tensor":
        del state["head.gnn_layers.1.coef_fc.weight"]
    else:
        state["backbone.img_feat.up2.conv1.weight"] = paddle.zeros([32, 64, 1, 3])
    paddle.save(state, str(tmp_path / "broken.pdparams"))
    out = tmp_path / "broken.pth"
    code, _, err = _cli("convert", "--arch", "kie_unet_sdmgr", "--paddle-dir",
                        tmp_path / "broken.pdparams", "--out", out)
    assert code != 0 and not out.exists()
    assert ("gnn_layers.1.coef_fc.weight" if damage == "missing tensor"
            else "up2.conv1.weight") in err
