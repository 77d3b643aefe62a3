"""PP-OCRv6_small_det, whole network: a paddle transcription of PaddleOCR's own modules
(tests/paddle_v6_ref.py: rec_lcnetv4.py PPLCNetV4 with det=True, db_fpn.py RepLKFPN with its
DilatedReparamBlocks, det_db_head.py DBHead with the training-only auxiliary heads) at the
real table's sizes, every parameter and BN statistic random, exported by paddle.jit.save as
PIR programs twice: as built (training form) and after the rep() PaddleOCR's export calls on
every layer (deploy form: backbone, neck and head fused). The deploy export goes through
`ptocr convert`'s engine (program order, verified against Paddle Inference on a random tensor and
a real image); the training .pdparams converts by name, equals the training program, and our
reparameterize() leaves its outputs unchanged. Then `--to transformers`: transformers' own
PPOCRV6SmallDetForObjectDetection (PaddlePaddle's torch port, a second implementation no one
here wrote) loads the folder with no missing or unexpected keys and agrees with Paddle.
(Paddle 3.3 saves no 2.x program of networks with gelu: see test_ppocrv6_rec.py.)"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from ptocr.converter import formats
from ptocr.converter.convert import convert
from ptocr.converter.mapping import find_arch
from ptocr.converter.verify import PaddleProgram, verify

from conftest import run_cli

HERE = Path(__file__).parent
REF = HERE / "paddle_v6_ref.py"
ARCH = "PP-OCRv6_small_det"
CFG = {"task": "det", "model_size": "small", "neck": 96, "kernel": 7, "input": [3, None, None],
       "dir": "small"}
# PP-OCRv6_medium_det's neck and head (RepLKPAN with IntraCL blocks) on the small backbone at
# 64 neck channels: the medium backbone is the small one's blocks with more channels (its
# PaddleOCR names and shapes: tests/paddle_names/PP-OCRv6_medium_det.txt)
PAN = {"task": "det", "model_size": "small", "neck": 64, "pan": True, "input": [3, None, None],
       "dir": "pan"}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(training-form PIR export, its .pdparams, deploy-form PIR export, small user table):
    the same random weights, one paddle subprocess."""
    tmp = tmp_path_factory.mktemp("v6det")
    res = subprocess.run([sys.executable, str(REF), "pir", str(tmp), json.dumps([CFG, PAN])],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    pan = tmp / "pan"
    tmp = tmp / "small"
    # the real table, verified on one random batch and one real image at a smaller resize
    # (the time budget)
    data = yaml.safe_load(find_arch(ARCH).path.read_text(encoding="utf-8"))
    data.update(name="test_PP-OCRv6_small_det", aliases=[], model_names=[])
    data["inputs"] = {"shapes": [[1, 3, 64, 96]], "images": ["images/img_12.jpg"]}
    data["processing"] = {"use": "det_db", "params": {"DetResizeForTest": {"limit_side_len": 160}}}
    table = tmp / "table.yaml"
    table.write_text(yaml.safe_dump(data), encoding="utf-8")
    return tmp / "train", tmp / "train.pdparams", tmp / "deploy", table, pan


def test_deploy_export_converts_and_verifies(exported):
    """The engine `ptocr convert` runs (the CLI's own plumbing is tested with the transformers
    target below): program-order alignment, then the verifier on a random tensor and a real
    image through the table's processing, fused-form check included."""
    _train, _pdparams, deploy, table, _pan = exported
    weights = formats.read(deploy)
    conv = convert(None, weights=weights, spec=find_arch(str(table)))
    assert conv.config["Backbone"]["deploy"] and conv.config["Neck"]["deploy"]
    assert conv.config["Head"]["deploy"]
    report = verify(weights, conv.model, conv.spec)
    rows = report["results"]
    assert report["passed"] and len(rows) >= 2
    assert any(r["input"].startswith("image ") for r in rows)  # a real image, table's resize
    assert max(r["max_abs"] for r in rows) < 1e-4


def test_training_pdparams_equals_the_training_program_and_fuses_exactly(exported):
    train, pdparams, deploy, _table, _pan = exported
    conv = convert(pdparams, ARCH)
    model = conv.model
    assert conv.config["Backbone"]["deploy"] is False and conv.config["Neck"]["deploy"] is False
    assert conv.config["Head"]["deploy"] is False
    assert "aux_binarize_p2" in " ".join(conv.report.ignored)  # training-only heads, ignored
    assert hasattr(model.neck.inp_conv_dw[0], "dil_conv_k3_3")  # training form
    x = np.random.RandomState(3).uniform(-1, 1, [1, 3, 96, 160]).astype(np.float32)
    ref = PaddleProgram(formats.read(train))(x)[0]
    deployed = PaddleProgram(formats.read(deploy))(x)[0]
    # a probability map that is neither flat nor saturated: mix-ups show
    assert 0.2 < (ref > 0.3).mean() < 0.8
    with torch.inference_mode():
        ours = model(torch.from_numpy(x)).numpy()
        assert ours.shape == ref.shape == (1, 1, 96, 160)
        assert np.abs(ours - ref).max() < 1e-4
        model.reparameterize()
        assert model.neck.inp_conv_dw[0].lk_origin.bias is not None
        assert model.head.binarize.conv_bn1 is None
        fused = model(torch.from_numpy(x)).numpy()
    assert np.abs(fused - ours).max() < 1e-5
    assert np.abs(fused - deployed).max() < 1e-4  # our fusing = PaddleOCR's rep()


def test_a_broken_mapping_is_refused(exported):
    """Two equally shaped fused dilated kernels of the neck swapped after the mapping: the
    verifier refuses the model."""
    _train, _pdparams, deploy, table, _pan = exported
    weights = formats.read(deploy)
    conv = convert(None, weights=weights, spec=find_arch(str(table)))
    state = conv.model.state_dict()
    a = "neck.inp_conv_dw.1.lk_origin.weight"
    b = a.replace(".1.", ".2.")
    state[a], state[b] = state[b].clone(), state[a].clone()
    conv.model.load_state_dict(state)
    report = verify(weights, conv.model, conv.spec, images=False)
    assert not report["passed"]


# ---- to Hugging Face transformers' own PPOCRV6SmallDetForObjectDetection and back

def test_deploy_export_to_transformers_verifies_loads_and_reads_back(exported, tmp_path):
    """What `ptocr convert --to transformers` does (the CLI's plumbing: test_ppocrv6_rec.py,
    test_transformers_bridge.py): fill transformers' class, verify it against Paddle, write
    the folder; then transformers' own from_pretrained and ptocr.load read it."""
    import ptocr
    from ptocr.converter import hf
    from transformers import PPOCRV6SmallDetForObjectDetection

    _train, _pdparams, deploy, table, _pan = exported
    weights = formats.read(deploy)
    conv = convert(None, weights=weights, spec=find_arch(str(table)))
    hf_model, _cfg = hf.to_transformers(conv.model, conv.config, conv.spec)
    report = verify(weights, hf.HFOutputs(hf_model), hf.verify_spec(conv.spec))
    rows = report["results"]
    assert report["passed"] and max(r["max_abs"] for r in rows) < 1e-4
    assert any(r["input"].startswith("image ") for r in rows)
    out = tmp_path / "hf"
    hf.write_folder(out, hf_model, conv.spec, {"arch": ARCH, "processing": conv.processing,
                                               "extra": {"task": "det"}})
    model, info = PPOCRV6SmallDetForObjectDetection.from_pretrained(
        out, output_loading_info=True)
    assert info["missing_keys"] == set() and info["unexpected_keys"] == set()
    assert info["mismatched_keys"] == set()
    assert model.config.neck_out_channels == 96 and model.config.dilated_kernel_size == 7
    assert model.config.layer_list_out_channels == [48, 96, 192, 384]
    # back: ptocr.load of the folder (training form, the fused blocks transformers holds)
    x = np.random.RandomState(4).uniform(-1, 1, [1, 3, 64, 96]).astype(np.float32)
    ref = PaddleProgram(formats.read(deploy))(x)[0]
    back = ptocr.load(out)
    with torch.inference_mode():
        theirs = model.eval()(pixel_values=torch.from_numpy(x)).last_hidden_state.numpy()
        again = back(torch.from_numpy(x)).numpy()
    assert np.abs(theirs - ref).max() < 1e-4 and np.abs(again - ref).max() < 1e-4


def test_training_form_to_transformers_equals_paddle(exported):
    """The training checkpoint (every branch, the head's BNs) to transformers: transformers'
    unfused convs take the BNs as they are, its fused depthwise convs our reparameterize()."""
    from ptocr.converter import hf

    train, pdparams, _deploy, table, _pan = exported
    conv = convert(pdparams, weights=None, spec=find_arch(str(table)))
    hf_model, cfg = hf.to_transformers(conv.model, conv.config, conv.spec)
    x = np.random.RandomState(5).uniform(-1, 1, [1, 3, 64, 128]).astype(np.float32)
    ref = PaddleProgram(formats.read(train))(x)[0]
    with torch.inference_mode():
        got = hf_model(pixel_values=torch.from_numpy(x)).last_hidden_state.numpy()
    assert np.abs(got - ref).max() < 1e-4
    # the renames are exact: with transformers' constants (hardsigmoid 1/6 in the backbone's
    # SE) our float64 model, fused where transformers is, equals transformers' in float64
    import copy

    from test_transformers_bridge import _outputs, _with_transformers_constants

    ours = copy.deepcopy(conv.model)
    for module in list(ours.modules()):
        if type(module).__name__ in ("RepDWConv", "DilatedReparamBlock"):
            module.reparameterize()
    theirs = copy.deepcopy(hf_model).double().eval()
    x64 = torch.from_numpy(np.random.RandomState(8).uniform(-1, 1, [1, 3, 64, 96]))
    a, b = _outputs(theirs, _with_transformers_constants(ours), x64)
    assert (a - b).abs().max().item() <= 1e-9
    # a config that does not fit the weights: one line, before anything is written
    from ptocr.errors import MappingError

    for key, value in (("neck_out_channels", 64), ("dilated_kernel_size", 5)):
        with pytest.raises(MappingError) as info:
            hf.to_transformers(conv.model, conv.config, conv.spec, {**cfg, key: value})
        assert "\n" not in str(info.value) and "does not fit the weights" in str(info.value)


# ---- PP-OCRv6_medium_det's RepLKPAN (DilatedReparamConv: depthwise + 1x1 + BN, IntraCL)

def test_medium_neck_converts_verifies_and_fuses_exactly(exported):
    pan = exported[-1]
    data = yaml.safe_load(find_arch("PP-OCRv6_medium_det").path.read_text(encoding="utf-8"))
    data.update(name="test_PP-OCRv6_medium_det", aliases=[], model_names=[])
    data["Architecture"]["Backbone"]["model_size"] = "small"
    data["Architecture"]["Neck"]["out_channels"] = 64
    data["Architecture"]["Head"]["aux_in_channels"] = 64
    data["inputs"] = {"shapes": [[1, 3, 64, 96]], "images": []}
    table = pan / "table.yaml"
    table.write_text(yaml.safe_dump(data), encoding="utf-8")
    spec = find_arch(str(table))
    weights = formats.read(pan / "deploy")
    deployed = convert(None, weights=weights, spec=spec)
    assert deployed.config["Neck"]["deploy"] and deployed.model.neck.inp_conv[0].bn is None
    report = verify(weights, deployed.model, deployed.spec, images=False)
    assert report["passed"] and max(r["max_abs"] for r in report["results"]) < 1e-4
    trained = convert(pan / "train.pdparams", weights=None, spec=spec)
    assert hasattr(trained.model.neck.pan_lat_conv[3].dw, "dil_conv_k3_4")
    x = np.random.RandomState(6).uniform(-1, 1, [1, 3, 96, 128]).astype(np.float32)
    ref = PaddleProgram(formats.read(pan / "train"))(x)[0]
    assert 0.2 < (ref > 0.3).mean() < 0.8
    with torch.inference_mode():
        ours = trained.model(torch.from_numpy(x)).numpy()
        trained.model.reparameterize()
        fused = trained.model(torch.from_numpy(x)).numpy()
    # fp32 rounding of the fused 9x9 kernels (the float64 verifier above is exact)
    assert np.abs(ours - ref).max() < 1e-4 and np.abs(fused - ours).max() < 1e-4
    assert np.abs(fused - PaddleProgram(weights)(x)[0]).max() < 1e-4


# ---- the OCR system's PP-OCRv6 defaults (data: _languages.yaml, _zoo.yaml, the table)

def test_ocr_version_pp_ocrv6_selects_the_small_tier_with_its_export_settings():
    from ptocr.converter import models_cache
    from ptocr.converter.zoo import load_manifest

    for lang in (None, "en", "japan", "chinese_cht", "fr"):
        chosen = models_cache.default_models("PP-OCRv6", lang)
        assert chosen["det"] == "PP-OCRv6_small_det" and chosen["rec"] == "PP-OCRv6_small_rec"
    assert models_cache.default_models(None, None)["det"] == "PP-OCRv5_mobile_det"  # unchanged
    names = {m["model"]: m for m in load_manifest()}
    for size in ("tiny", "small", "medium"):
        for task in ("det", "rec"):
            url = names[f"PP-OCRv6_{size}_{task}"]["sources"][0]["url"]
            assert url.endswith(f"/paddle3.0.0/PP-OCRv6_{size}_{task}_infer.tar")
    post = find_arch(ARCH).processing["PostProcess"]  # the official inference.yml's values
    assert (post["thresh"], post["box_thresh"], post["max_candidates"], post["unclip_ratio"]) \
        == (0.2, 0.45, 3000, 1.4)


def test_a_tiny_det_folder_without_ptocr_record_reads_back_as_tiny(tmp_path):
    """PPOCRV6SmallDetForObjectDetection serves both PP-OCRv6 small and tiny det: a folder
    as PaddlePaddle publishes them (no ptocr.json) is read with the table whose backbone its
    config has."""
    import ptocr
    from ptocr.converter import hf
    from ptocr.models import build

    spec = find_arch("PP-OCRv6_tiny_det")
    torch.manual_seed(0)
    model = build(spec.architecture).eval()
    hf_model, _cfg = hf.to_transformers(model, spec.architecture, spec)
    hf.write_folder(tmp_path / "tiny", hf_model, spec, {"arch": spec.name})
    (tmp_path / "tiny" / hf.PTOCR_FILE).unlink()
    back = ptocr.load(tmp_path / "tiny")
    assert back.ptocr_meta["arch"] == "PP-OCRv6_tiny_det"
    x = torch.rand(1, 3, 64, 64)
    with torch.inference_mode():
        assert (back(x) - model(x)).abs().max().item() < 1e-5


# ---- PP-OCRv6_medium_det to transformers' PPOCRV6MediumDetForObjectDetection and back: its
# neck holds each DilatedReparamConv as one dense 9x9 conv (the table's `compose`)

def _medium_hf_spec(pan):
    """The medium twin's table (small backbone, 64 neck channels) with the transformers
    config of that backbone (the small table's)."""
    data = yaml.safe_load(find_arch("PP-OCRv6_medium_det").path.read_text(encoding="utf-8"))
    small = yaml.safe_load(find_arch(ARCH).path.read_text(encoding="utf-8"))
    data.update(name="test_PP-OCRv6_medium_det_hf", aliases=[], model_names=[])
    data["Architecture"]["Backbone"]["model_size"] = "small"
    data["Architecture"]["Neck"]["out_channels"] = 64
    data["Architecture"]["Head"]["aux_in_channels"] = 64
    data["inputs"] = {"shapes": [[1, 3, 64, 96]], "images": []}
    data["transformers"]["config"]["backbone_config"] = small["transformers"]["config"][
        "backbone_config"]
    table = pan / "table_hf.yaml"
    table.write_text(yaml.safe_dump(data), encoding="utf-8")
    return find_arch(str(table))


def test_medium_to_transformers_verifies_loads_and_factors_back(exported, tmp_path):
    import copy

    from safetensors.numpy import load_file, save_file
    from transformers import PPOCRV6MediumDetForObjectDetection

    from ptocr.converter import hf
    from ptocr.errors import MappingError, PtocrError
    from test_transformers_bridge import _outputs, _with_transformers_constants

    pan = exported[-1]
    spec = _medium_hf_spec(pan)
    weights = formats.read(pan / "deploy")
    conv = convert(None, weights=weights, spec=spec)
    hf_model, cfg = hf.to_transformers(conv.model, conv.config, conv.spec)
    dense = hf_model.model.neck.input_feature_projection_convolution[0]
    assert tuple(dense.weight.shape) == (16, 64, 9, 9) and dense.bias is not None
    report = verify(weights, hf.HFOutputs(hf_model), hf.verify_spec(conv.spec), images=False)
    assert report["passed"] and max(r["max_abs"] for r in report["results"]) < 1e-4
    # the product is exact: in float64 our model with its DilatedReparamConvs multiplied out
    # equals it as it is (depthwise then 1x1)
    x64 = torch.from_numpy(np.random.RandomState(8).uniform(-1, 1, [1, 3, 64, 96]))
    ours64 = copy.deepcopy(conv.model).double().eval()
    dense64, done = hf._composed(ours64, hf.section(spec), copy_first=True)
    assert len(done) == 8
    with torch.inference_mode():
        assert (dense64(x64) - ours64(x64)).abs().max().item() <= 1e-9
    # and transformers' class holds those products: in float64, with transformers' constants
    # (hardsigmoid 1/6), it equals ours up to the float32 rounding of the stored products
    theirs64 = copy.deepcopy(hf_model).double().eval()
    a, b = _outputs(theirs64, _with_transformers_constants(copy.deepcopy(conv.model)), x64)
    assert (a - b).abs().max().item() <= 1e-5
    out = tmp_path / "hf"
    hf.write_folder(out, hf_model, conv.spec, {"arch": spec.name, "processing": conv.processing,
                                               "extra": {"task": "det"}})
    model, info = PPOCRV6MediumDetForObjectDetection.from_pretrained(
        out, output_loading_info=True)
    assert info["missing_keys"] == set() and info["unexpected_keys"] == set()
    assert info["mismatched_keys"] == set() and model.config.neck_out_channels == 64
    # back: each dense kernel factored into ptocr's depthwise and 1x1 convs
    back = hf.load_folder(out, spec)
    assert back.neck.pan_lat_conv[2].dw.lk_origin.weight.shape[1] == 1
    x = np.random.RandomState(4).uniform(-1, 1, [1, 3, 64, 96]).astype(np.float32)
    ref = PaddleProgram(weights)(x)[0]
    assert 0.2 < (ref > 0.3).mean() < 0.8
    with torch.inference_mode():
        theirs = model.eval()(pixel_values=torch.from_numpy(x)).last_hidden_state.numpy()
        again = back(torch.from_numpy(x)).numpy()
    assert np.abs(theirs - ref).max() < 1e-4 and np.abs(again - ref).max() < 1e-4
    # the training checkpoint (every branch and BN) fused, then multiplied out
    trained = convert(pan / "train.pdparams", weights=None, spec=spec)
    hf_trained, _cfg = hf.to_transformers(trained.model, trained.config, trained.spec)
    with torch.inference_mode():
        got = hf_trained(pixel_values=torch.from_numpy(x)).last_hidden_state.numpy()
    assert np.abs(got - PaddleProgram(formats.read(pan / "train"))(x)[0]).max() < 1e-4
    # a dense kernel that is not a depthwise conv times a 1x1 conv is refused, one line
    tensors = load_file(str(out / "model.safetensors"))
    key = "model.neck.path_aggregation_lateral_convolution.1.weight"
    tensors[key][3, 5, 0, 0] += 0.5
    save_file(tensors, str(out / "model.safetensors"))
    with pytest.raises(PtocrError) as info:
        hf.load_folder(out, spec)
    assert "\n" not in str(info.value) and key in str(info.value)
    assert "not a depthwise conv times a 1x1 conv" in str(info.value)
    # a config that does not fit the weights: one line, before anything is written
    with pytest.raises(MappingError) as info:
        hf.to_transformers(conv.model, conv.config, conv.spec, {**cfg, "neck_out_channels": 32})
    assert "\n" not in str(info.value) and "does not fit the weights" in str(info.value)
