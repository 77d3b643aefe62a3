"""PP-OCRv5 server det and rec `--to transformers`: transformers' own
PPOCRV5ServerDetForObjectDetection / PPOCRV5ServerRecForTextRecognition (PaddlePaddle's torch
ports, HGNetV2 "L" backbone) filled from ptocr models through the tables' rename sets
(hf_pphgnetv2, hf_lkpan_pfhead, hf_svtr_ctc) and verified against the Paddle program.

No official server weights are reachable here: the Paddle references are the server twins of
tests/paddle_deep_rec.py (PPHGNetV2_B4 det + LKPAN with IntraCL + PFHeadLocal; PPHGNetV2_B4
text_rec + MultiHead's CTC branch), B4's widths and strides with one HG block per stage (the
time budget; `stage_num_blocks`, HGNetV2's own config key, carries the depth both ways),
realistic random weights, exported by paddle.jit.save as PIR, converted by the real engine
(program order)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import ptocr
from ptocr.converter import formats, hf
from ptocr.converter.convert import convert
from ptocr.converter.mapping import find_arch
from ptocr.converter.verify import PaddleProgram, verify
from ptocr.errors import MappingError

HERE = Path(__file__).resolve().parent
BLOCKS = [1, 1, 1, 1]
CASES = {
    "det": ("PP-OCRv5_server_det", {"task": "det", "blocks": BLOCKS},
            {"shapes": [[1, 3, 64, 96]], "images": ["images/img_12.jpg"]}),
    "rec": ("PP-OCRv5_server_rec", {"classes": 100, "blocks": BLOCKS},
            {"shapes": [[1, 3, 48, 160]], "images": ["words/ch_word_3.jpg"]}),
}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """task -> (PIR export, user table of the real one at the twin's depth); the two paddle
    exports run side by side."""
    root = tmp_path_factory.mktemp("hfserver")
    procs = {task: subprocess.Popen(
        [sys.executable, str(HERE / "paddle_deep_rec.py"), "pir", str(root / task / "pir"),
         json.dumps(cfg)], cwd=HERE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for task, (_arch, cfg, _inputs) in CASES.items()}
    out = {}
    for task, proc in procs.items():
        _stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr[-3000:]
        arch, _cfg, inputs = CASES[task]
        data = yaml.safe_load(find_arch(arch).path.read_text(encoding="utf-8"))
        data.update(name=f"test_{arch}", aliases=[], model_names=[], inputs=inputs)
        data["Architecture"]["Backbone"]["stage_num_blocks"] = BLOCKS
        if task == "det":  # one real image at a smaller resize (the time budget)
            data["processing"] = {"use": "det_db",
                                  "params": {"DetResizeForTest": {"limit_side_len": 160}}}
        table = root / task / "table.yaml"
        table.write_text(yaml.safe_dump(data), encoding="utf-8")
        out[task] = (root / task / "pir", table)
    return out


@pytest.fixture(scope="module")
def converted(exported, tmp_path_factory):
    """task -> (ptocr conversion, transformers model, its verifier report, folder)."""
    out = {}
    for task, (pir, table) in exported.items():
        weights = formats.read(pir)
        conv = convert(None, weights=weights, spec=find_arch(str(table)))
        hf_model, _cfg = hf.to_transformers(conv.model, conv.config, conv.spec)
        report = verify(weights, hf.HFOutputs(hf_model), hf.verify_spec(conv.spec))
        folder = tmp_path_factory.mktemp(f"hf{task}") / "out"
        extra = {"task": task}
        hf.write_folder(folder, hf_model, conv.spec, {"arch": conv.spec.name, "extra": extra,
                                                      "processing": conv.processing})
        out[task] = (conv, hf_model, report, folder)
    return out


@pytest.mark.parametrize("task", list(CASES))
def test_transformers_class_equals_paddle(converted, task):
    """transformers' class, filled through the rename sets with strict accounting, agrees
    with the Paddle program on a random batch and a real image, judged in float64 at
    verify_spec's tolerance (transformers' SVTR LayerNorm eps is 1e-6, PaddleOCR's 1e-5: ~6e-5
    on the rec twin; the det class has no such constant and agrees to ~1e-13)."""
    conv, _hf_model, report, _folder = converted[task]
    assert conv.report.method == "program order"
    rows = report["results"]
    assert report["passed"], rows
    assert any(r["input"].startswith("image ") for r in rows)
    assert max(r["float64"]["max_abs"] for r in rows) < (1e-4 if task == "rec" else 1e-9)
    assert max(r["max_abs"] for r in rows) < 5e-4  # fp32 as run (the deep-network case)


@pytest.mark.parametrize("task", list(CASES))
def test_mapping_is_exact_once_transformers_constants_are_taken(converted, task):
    """Float64 copies, the ptocr model with transformers' LayerNorm eps: what remains between
    the two implementations is the mapping alone (rec: the logits, before transformers' float32
    softmax)."""
    import copy

    conv, hf_model, _report, _folder = converted[task]
    ours = copy.deepcopy(conv.model).double().eval()
    for module in ours.modules():
        if isinstance(module, torch.nn.LayerNorm):
            module.eps = 1e-6
    theirs = copy.deepcopy(hf_model).double().eval()
    seen = []
    last = (theirs.head.head, ours.head.ctc_head.fc) if task == "rec" else ()
    hooks = [m.register_forward_hook(lambda _m, _i, out: seen.append(out)) for m in last]
    shape = [1, 3, 48, 64] if task == "rec" else [1, 3, 64, 64]
    x = torch.from_numpy(np.random.RandomState(2).uniform(-1, 1, shape))
    with torch.inference_mode():
        got = theirs(pixel_values=x).last_hidden_state
        want = ours(x)
    for h in hooks:
        h.remove()
    if last:
        got, want = seen
    assert (got - want).abs().max().item() <= 1e-9


@pytest.mark.parametrize("task", list(CASES))
def test_folder_loads_in_transformers_and_reads_back_into_ptocr(converted, exported, task):
    """from_pretrained: no missing, unexpected or mismatched keys, the twin's depth in the
    config; ptocr.load(folder) equals the direct conversion and Paddle."""
    import transformers

    conv, hf_model, _report, folder = converted[task]
    cls = getattr(transformers, hf.section(conv.spec)["class"])
    model, info = cls.from_pretrained(folder, output_loading_info=True)
    assert info["missing_keys"] == set() and info["unexpected_keys"] == set()
    assert info["mismatched_keys"] == set()
    assert model.config.backbone_config.stage_num_blocks == BLOCKS
    if task == "rec":
        assert model.config.head_out_channels == 100 and model.config.hidden_size == 120
    else:
        assert model.config.neck_out_channels == 256
    shape = [1, 3, 48, 160] if task == "rec" else [1, 3, 64, 96]
    x = np.random.RandomState(5).uniform(-1, 1, shape).astype(np.float32)
    ref = PaddleProgram(formats.read(exported[task][0]))(x)[0]
    back = ptocr.load(folder)
    assert back.ptocr_meta["arch"] == conv.spec.name.removeprefix("test_")
    with torch.inference_mode():
        theirs = model.eval()(pixel_values=torch.from_numpy(x)).last_hidden_state.numpy()
        again = back(torch.from_numpy(x)).numpy()
        direct = conv.model(torch.from_numpy(x)).numpy()
    assert np.abs(again - direct).max() == 0  # the same tensors, the same ptocr modules
    # fp32 as run: the rec twin's depth rounds to ~1e-4 in both frameworks (test_deep_network)
    tol = 5e-4 if task == "rec" else 1e-4
    assert np.abs(theirs - ref).max() < tol and np.abs(direct - ref).max() < tol


@pytest.mark.parametrize("task,key,value", [
    ("det", "neck_out_channels", 128), ("rec", "head_out_channels", 6625),
    ("rec", "hidden_size", 64)])
def test_config_that_does_not_fit_the_weights_is_refused(converted, task, key, value):
    conv, _hf_model, _report, folder = converted[task]
    cfg = json.loads((folder / "config.json").read_text())
    with pytest.raises(MappingError) as info:
        hf.to_transformers(conv.model, conv.config, conv.spec, {**cfg, key: value})
    message = str(info.value)
    assert "\n" not in message and message.startswith(
        "the transformers config does not fit the weights") and "shape conflicts" in message


def test_other_backbone_depth_is_refused(converted):
    """HGNetV2's block counts are read from the config too: a config with B4's full depth
    does not fit the shortened twin's weights."""
    conv, _hf_model, _report, folder = converted["rec"]
    cfg = json.loads((folder / "config.json").read_text())
    cfg["backbone_config"]["stage_num_blocks"] = [1, 1, 3, 1]
    with pytest.raises(MappingError, match="does not fit the weights"):
        hf.to_transformers(conv.model, conv.config, conv.spec, cfg)


def test_a_swapped_tensor_is_refused(converted, exported):
    """A deliberately broken transformers model (two equally shaped IntraCL kernels swapped)
    fails the verifier."""
    conv, hf_model, _report, _folder = converted["det"]
    import copy

    broken = copy.deepcopy(hf_model)
    blocks = broken.model.neck.intraclass_blocks
    a, b = blocks[0].symmetric_conv_long_longratio, blocks[1].symmetric_conv_long_longratio
    with torch.no_grad():
        wa = a.weight.clone()
        a.weight.copy_(b.weight)
        b.weight.copy_(wa)
    spec = hf.verify_spec(conv.spec)
    report = verify(formats.read(exported["det"][0]), hf.HFOutputs(broken), spec, images=False)
    assert not report["passed"]
