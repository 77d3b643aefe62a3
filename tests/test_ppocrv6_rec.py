"""PP-OCRv6_small_rec, whole network: a paddle transcription of PaddleOCR's own modules
(tests/paddle_v6_ref.py: rec_lcnetv4.py PPLCNetV4, necks/rnn.py EncoderWithLightSVTR, the
MultiHead CTC branch) at the real table's sizes with a 10-character dictionary, every
parameter and BN statistic random, exported by paddle.jit.save as PIR programs twice: as
built (training form) and after PaddleOCR's own rep() (deploy form, what an export of a
re-parameterized model holds). The deploy export goes through the real `ptocr convert`
(program order, verified against Paddle Inference on random tensors and real word images);
the training form's .pdparams converts by name, equals the training-form program, and our
reparameterize() leaves its outputs unchanged. (Paddle 3.3 saves no 2.x program of networks
with gelu/matmul: tests/test_transformer_recognisers.py pins that fact.)"""

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
ARCH = "PP-OCRv6_small_rec"
DICT = list("abcdefghij")  # + blank + space: 12 classes
CFG = {"model_size": "small", "classes": 12, "input": [3, 48, None],
       "neck": {"dims": 120, "depth": 2, "mlp_ratio": 2.0, "local_kernel": 7}, "dir": "small"}
# PP-OCRv6_tiny_rec: the simple stem, a reshape neck, the CTC head's guide layer and two fcs
TINY = {"model_size": "tiny", "classes": 12, "input": [3, 48, None], "mid_channels": 80,
        "use_guide": True, "neck": {"name": "reshape"}, "dir": "tiny"}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(training-form PIR export, its .pdparams, deploy-form PIR export, dictionary file,
    small user table): the same random weights, one paddle subprocess."""
    tmp = tmp_path_factory.mktemp("v6rec")
    dict_file = tmp / "dict.txt"
    dict_file.write_text("\n".join(DICT) + "\n", encoding="utf-8")
    res = subprocess.run([sys.executable, str(REF), "pir", str(tmp), json.dumps([CFG, TINY])],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    tiny, tmp = tmp / "tiny", tmp / "small"
    # the real table, verified on one random batch and one real word (the time budget)
    data = yaml.safe_load(find_arch(ARCH).path.read_text(encoding="utf-8"))
    data.update(name="test_PP-OCRv6_small_rec", aliases=[])
    data["inputs"] = {"shapes": [[2, 3, 48, 160]], "images": ["words/en_word_1.png"]}
    table = tmp / "table.yaml"
    table.write_text(yaml.safe_dump(data), encoding="utf-8")
    return tmp / "train", tmp / "train.pdparams", tmp / "deploy", dict_file, table, tiny


def test_deploy_export_converts_and_verifies_with_the_cli(exported, tmp_path):
    _train, _pdparams, deploy, dict_file, table, _tiny = exported
    out, report = tmp_path / "v6.pth", tmp_path / "report.json"
    res = run_cli("convert", "--arch", table, "--paddle-dir", deploy, "--out", out,
                  "--rec-dict", dict_file, "--use-space-char", "--require-verify",
                  "--report", report)
    assert res.returncode == 0, res.stderr
    rep = json.loads(report.read_text())
    rows = rep["verify"]["results"] if "verify" in rep else rep["results"]
    assert all(r["pass"] for r in rows) and len(rows) >= 2
    assert any(r["input"].startswith("image ") for r in rows)  # real words, table's resize
    assert max(r["max_abs"] for r in rows) < 1e-4


def test_training_pdparams_equals_the_training_program_and_fuses_exactly(exported):
    train, pdparams, _deploy, _dict, _table, _tiny = exported
    conv = convert(pdparams, ARCH)
    model = conv.model
    assert conv.config["Backbone"]["deploy"] is False
    assert hasattr(model.backbone.blocks2[0].token_mixer.rep_dw, "conv1")  # training form
    program = PaddleProgram(formats.read(train))
    rng = np.random.RandomState(3)
    x = rng.uniform(-1, 1, [2, 3, 48, 160]).astype(np.float32)
    ref = program(x)[0]
    with torch.inference_mode():
        ours = model(torch.from_numpy(x)).numpy()
        assert ours.shape == ref.shape == (2, 20, 12)
        assert np.abs(ours - ref).max() < 1e-4
        model.reparameterize()
        assert hasattr(model.backbone.blocks2[0].token_mixer.rep_dw, "reparam_conv")
        fused = model(torch.from_numpy(x)).numpy()
    assert np.abs(fused - ours).max() < 1e-5
    assert np.abs(fused - ref).max() < 1e-4


def test_a_broken_mapping_is_refused(exported, tmp_path):
    """Two equally shaped fused depthwise kernels swapped after the mapping: the verifier
    refuses the model."""
    _train, _pdparams, deploy, _dict, table, _tiny = exported
    weights = formats.read(deploy)
    conv = convert(None, weights=weights, spec=find_arch(str(table)))
    state = conv.model.state_dict()
    a = "backbone.blocks4.1.token_mixer.rep_dw.reparam_conv.weight"
    b = a.replace("blocks4.1", "blocks4.2")
    state[a], state[b] = state[b].clone(), state[a].clone()
    conv.model.load_state_dict(state)
    report = verify(weights, conv.model, conv.spec, images=False)
    assert not report["passed"]


# ---- to Hugging Face transformers' own PPOCRV6SmallRecForTextRecognition (PaddlePaddle's
# torch port: a second implementation no one here wrote) and back

def test_deploy_export_to_transformers_verifies_and_loads(exported, tmp_path):
    from transformers import PPOCRV6SmallRecForTextRecognition

    _train, _pdparams, deploy, dict_file, table, _tiny = exported
    out, report = tmp_path / "hf", tmp_path / "hf.json"
    res = run_cli("convert", "--arch", table, "--paddle-dir", deploy, "--to", "transformers",
                  "--out", out, "--rec-dict", dict_file, "--use-space-char",
                  "--require-verify", "--report", report)
    assert res.returncode == 0, res.stderr
    rep = json.loads(report.read_text())
    rows = rep["verify"]["results"] if "verify" in rep else rep["results"]
    assert all(r["pass"] for r in rows) and max(r["max_abs"] for r in rows) < 1e-4
    model, info = PPOCRV6SmallRecForTextRecognition.from_pretrained(
        out, output_loading_info=True)
    assert info["missing_keys"] == set() and info["unexpected_keys"] == set()
    assert info["mismatched_keys"] == set()
    assert model.config.head_out_channels == 12 and model.config.hidden_size == 120
    chars = json.loads((out / "preprocessor_config.json").read_text())["character_list"]
    assert chars == ["blank"] + DICT + [" "]


@pytest.fixture(scope="module")
def training_to_hf(exported, tmp_path_factory):
    """(direct ptocr conversion of the .pdparams, its transformers model, folder)."""
    from ptocr.converter import hf

    _train, pdparams, _deploy, _dict, table, _tiny = exported
    conv = convert(pdparams, weights=None, spec=find_arch(str(table)))
    hf_model, _ = hf.to_transformers(conv.model, conv.config, conv.spec)
    folder = tmp_path_factory.mktemp("v6hf") / "rec"
    hf.write_folder(folder, hf_model, conv.spec, {"arch": ARCH, "processing": conv.processing,
                                                  "extra": {"task": "rec"}})
    return conv, hf_model, folder


def test_training_form_to_transformers_equals_paddle_and_reads_back(exported,
                                                                    training_to_hf):
    import ptocr

    train = exported[0]
    conv, hf_model, folder = training_to_hf
    x = np.random.RandomState(5).uniform(-1, 1, [2, 3, 48, 128]).astype(np.float32)
    ref = PaddleProgram(formats.read(train))(x)[0]
    back = ptocr.load(folder)
    with torch.inference_mode():
        got = hf_model(pixel_values=torch.from_numpy(x)).last_hidden_state.numpy()
        direct = conv.model(torch.from_numpy(x)).numpy()
        again = back(torch.from_numpy(x)).numpy()
    assert np.abs(got - ref).max() < 1e-4
    assert (got.argmax(-1) == ref.argmax(-1)).all()
    assert np.abs(again - direct).max() < 1e-5  # RepDWConv fused on the way back


def test_mapping_is_exact_once_transformers_constants_are_taken(training_to_hf):
    """With transformers' constants (LayerNorm eps 1e-6 in the SVTR blocks, hardsigmoid 1/6)
    our float64 model and transformers' agree to rounding: the renames are exact."""
    from test_transformers_bridge import _outputs, _with_transformers_constants

    from ptocr.models.backbones.pplcnetv4 import RepDWConv

    conv, hf_model, _folder = training_to_hf
    fused = __import__("copy").deepcopy(conv.model)  # fused in float32, as the HF copy was
    for module in list(fused.modules()):
        if isinstance(module, RepDWConv):
            module.reparameterize()
    ours = _with_transformers_constants(fused)
    theirs = __import__("copy").deepcopy(hf_model).double().eval()
    x = torch.from_numpy(np.random.RandomState(6).uniform(-1, 1, [1, 3, 48, 96]))
    got, want = _outputs(theirs, ours, x, (theirs.head.head, ours.head.ctc_head.fc))
    assert (got - want).abs().max().item() <= 1e-9


# ---- PP-OCRv6_tiny_rec

def test_tiny_deploy_converts_verifies_and_training_form_fuses_exactly(exported):
    tiny = exported[-1]
    data = yaml.safe_load(find_arch("PP-OCRv6_tiny_rec").path.read_text(encoding="utf-8"))
    data.update(name="test_PP-OCRv6_tiny_rec", aliases=[], model_names=[])
    data["inputs"] = {"shapes": [[2, 3, 48, 160]], "images": []}
    table = tiny / "table.yaml"
    table.write_text(yaml.safe_dump(data), encoding="utf-8")
    spec = find_arch(str(table))
    weights = formats.read(tiny / "deploy")
    deployed = convert(None, weights=weights, spec=spec)
    assert deployed.config["Backbone"]["deploy"] is True
    assert deployed.config["Head"]["out_channels_list"]["CTCLabelDecode"] == 12
    report = verify(weights, deployed.model, deployed.spec, images=False)
    assert report["passed"] and max(r["max_abs"] for r in report["results"]) < 1e-4
    trained = convert(tiny / "train.pdparams", weights=None, spec=spec)
    model = trained.model
    assert hasattr(model.backbone.blocks2[0].token_mixer.rep_dw, "conv1")
    x = np.random.RandomState(7).uniform(-1, 1, [2, 3, 48, 128]).astype(np.float32)
    ref = PaddleProgram(formats.read(tiny / "train"))(x)[0]
    with torch.inference_mode():
        ours = model(torch.from_numpy(x)).numpy()
        model.reparameterize()
        fused = model(torch.from_numpy(x)).numpy()
    assert ours.shape == ref.shape == (2, 16, 12)
    assert np.abs(ours - ref).max() < 1e-4 and np.abs(fused - ours).max() < 1e-5
    assert (ref.max(-1) > 0.5).mean() > 0.2  # peaked class probabilities: mix-ups show
    # transformers' own PPOCRV6TinyRecForTextRecognition (the guide layer as its conv1/norm1,
    # conv2/norm2): the training checkpoint fills it and it agrees with Paddle
    from ptocr.converter import hf

    again = convert(tiny / "train.pdparams", weights=None, spec=spec)
    hf_model, cfg = hf.to_transformers(again.model, again.config, again.spec)
    assert cfg["hidden_size"] == 80 and cfg["head_out_channels"] == 12
    with torch.inference_mode():
        theirs = hf_model(pixel_values=torch.from_numpy(x)).last_hidden_state.numpy()
    assert np.abs(theirs - ref).max() < 1e-4
    assert (theirs.argmax(-1) == ref.argmax(-1)).all()
