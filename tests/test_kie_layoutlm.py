"""LayoutLM SER (ser_layoutlm_xfund_zh) against PaddleNLP 2.8.1's own LayoutLMForTokenClassification
(tests/paddlenlp_ref.py: loaded from the wheel's files with small stand-ins for its package
imports — see there), inside a transcription of PaddleOCR's LayoutLMForSer wrapper
(tests/paddlenlp_kie_layoutlm_exports.py), a small configuration, every parameter random.

The PIR export converts by program order and passes the verifier (float64) on seeded token
ids + boxes + masks; the training checkpoint (PaddleNLP's names) converts by name and verifies
against the export; `ptocr convert --to transformers` writes a save_pretrained folder that
transformers loads as LayoutLMForTokenClassification with no missing or unexpected keys, whose
parity against the Paddle program is recorded in the folder and which agrees with PaddleNLP;
a broken checkpoint and a checkpoint of another family are refused."""

import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from conftest import run_cli
from ptocr.converter.convert import convert

HERE = Path(__file__).parent
SMALL = {"hidden_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4,
         "intermediate_size": 64, "vocab_size": 120}
ARCH = "ser_layoutlm_xfund_zh"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("layoutlm")
    res = subprocess.run([sys.executable, str(HERE / "paddlenlp_kie_layoutlm_exports.py"),
                          str(out), json.dumps({**SMALL, "num_classes": 7, "dropout": 0})],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    backbone = {"name": "LayoutLMForSer", "num_classes": 7}
    arch = {"model_type": "kie", "algorithm": "LayoutLM", "Transform": None}
    (out / "ser.yml").write_text(yaml.safe_dump(
        {"Architecture": {**arch, "Backbone": {**backbone, **SMALL}}}))
    # a training checkpoint shows every size but the heads count
    (out / "names.yml").write_text(yaml.safe_dump(
        {"Architecture": {**arch, "Backbone": {**backbone, "num_attention_heads": 4}}}))
    return out


def _inputs(out, seed=0):
    ins = np.load(out / "inputs.npz")
    return [torch.from_numpy(ins[f"input{i}_{seed}"]) for i in range(4)]


def test_export_converts_and_verifies_in_float64(exported):
    """In process (the CLI converts the same export in test_to_transformers_folder)."""
    from ptocr.converter import formats
    from ptocr.converter.verify import verify

    conv = convert(exported / "ser_pir", ARCH, exported / "ser.yml")
    assert conv.report.method == "program order"
    report = verify(formats.read(exported / "ser_pir"), conv.model, conv.spec)
    assert report["passed"] and report["judged_in"] == "float64"
    assert max(r["float64"]["max_abs"] for r in report["results"]) < 1e-8
    assert max(r["max_abs"] for r in report["results"]) < 1e-4
    assert [r["shape"] for r in report["results"]] == [[1, 512, 7]] * 2


def _verify_against_export(path, exported):
    from ptocr.converter import formats
    from ptocr.converter.verify import verify

    conv = convert(path, ARCH, exported / "names.yml")
    return conv, verify(formats.read(exported / "ser_pir"), conv.model, conv.spec)


def test_training_checkpoint_converts_by_names(exported):
    conv, report = _verify_against_export(exported / "ser_train", exported)
    assert conv.report.method == "names"
    assert sorted(conv.report.ignored) == ["layoutlm.embeddings.position_ids",
                                           "layoutlm.pooler.dense.bias",
                                           "layoutlm.pooler.dense.weight"]
    assert report["passed"] and max(r["float64"]["max_abs"] for r in report["results"]) < 1e-8
    with torch.no_grad():
        logits = conv.model(*_inputs(exported)).numpy()
    assert np.abs(logits - np.load(exported / "ser_dygraph.npy")).max() < 1e-5


def test_broken_conversion_is_refused(exported, tmp_path):
    from ptocr.converter.formats import parse_pdparams

    tensors = parse_pdparams((exported / "ser_train" / "model_state.pdparams").read_bytes())
    q, k = ("layoutlm.encoder.layers.1.self_attn.q_proj.weight",
            "layoutlm.encoder.layers.1.self_attn.k_proj.weight")
    tensors[q], tensors[k] = tensors[k], tensors[q]
    bad = tmp_path / "model_state.pdparams"
    bad.write_bytes(pickle.dumps(tensors))
    _, report = _verify_against_export(bad, exported)
    assert not report["passed"]


def test_another_familys_checkpoint_is_refused(exported, tmp_path):
    """A LayoutLM checkpoint given as LayoutXLM (CLI: one error line, no file) or as
    VI-LayoutXLM, and the reverse: refused by name before the large network is built."""
    from ptocr.errors import PtocrError

    out = tmp_path / "x.pth"
    res = run_cli("convert", "--arch", "ser_layoutxlm_xfund_zh", "--paddle-dir",
                  exported / "ser_train", "--out", out, "--no-verify")
    assert res.returncode != 0 and not out.exists()
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in res.stderr
    assert "weights do not fit ser_layoutxlm_xfund_zh" in lines[0]
    with pytest.raises(PtocrError, match="weights do not fit ser_vi_layoutxlm_xfund_zh"):
        convert(exported / "ser_train", "ser_vi_layoutxlm_xfund_zh")
    from ptocr.converter.formats import PaddleWeights

    xlm = PaddleWeights("pdparams", {  # LayoutXLM's names (tests/paddle_names/ lists them all)
        "layoutxlm.encoder.layer.0.attention.self.query.weight": np.zeros((8, 8), np.float32),
        "classifier.weight": np.zeros((8, 7), np.float32)}, True, files=[tmp_path / "x"])
    with pytest.raises(PtocrError, match="weights do not fit ser_layoutlm_xfund_zh"):
        convert(None, ARCH, weights=xlm)


def test_to_transformers_folder(exported):
    """A save_pretrained folder transformers loads as LayoutLMForTokenClassification with
    nothing missing or unexpected; its parity against the Paddle program is in ptocr.json."""
    import transformers

    from ptocr import load

    folder = exported / "hf"
    res = run_cli("convert", "--arch", ARCH, "--paddle-dir", exported / "ser_pir", "--config",
                  exported / "ser.yml", "--out", folder, "--to", "transformers", "--overwrite")
    assert res.returncode == 0, res.stderr
    record = json.loads((folder / "ptocr.json").read_text())
    assert record["transformers_class"] == "LayoutLMForTokenClassification"
    assert record["parity"]["passed"] and record["parity"]["max_abs"] < 1e-5
    model, info = transformers.LayoutLMForTokenClassification.from_pretrained(
        folder, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert not info["mismatched_keys"]
    x = _inputs(exported)
    with torch.no_grad():
        hf = model.eval()(input_ids=x[0], bbox=x[1], attention_mask=x[2],
                          token_type_ids=x[3]).logits.numpy()
        back = load(folder)(*x).numpy()
    ref = np.load(exported / "ser_dygraph.npy")
    assert np.abs(hf - ref).max() < 1e-5  # transformers vs PaddleNLP
    assert np.abs(back - ref).max() < 1e-5  # the folder read back by ptocr
