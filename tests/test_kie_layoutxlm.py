"""VI-LayoutXLM SER and RE (ser_vi_layoutxlm_xfund_zh, re_vi_layoutxlm_xfund_zh) against
PaddleNLP 2.8.1's own modeling code (tests/paddlenlp_ref.py: loaded from the wheel's files
with small stand-ins for its package imports, which do not import on paddle 3.3 — see there),
inside transcriptions of PaddleOCR's LayoutXLMForSer/LayoutXLMForRe wrappers
(tests/paddlenlp_kie_exports.py), small configurations, every parameter random.

SER: the PIR export converts by program order and passes the verifier (float64) on seeded
token ids + boxes + masks; the same weights as a training checkpoint (PaddleNLP's names, as
PaddleOCR's save_pretrained writes them) convert by name and verify against the export.
RE: paddle 3.3 cannot export PaddleNLP's RE decoder (data-dependent control flow; pinned
below), so the converted training checkpoint is compared with PaddleNLP's RE model run in
dygraph, float32 and float64, on the same inputs: hidden states, loss and the predicted
relations."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from conftest import run_cli
from ptocr.converter.convert import convert
from ptocr.converter.float64 import torch_float64

HERE = Path(__file__).parent
SMALL = {"hidden_size": 48, "coordinate_size": 8, "num_hidden_layers": 2,
         "num_attention_heads": 4, "intermediate_size": 64, "vocab_size": 120}


def _arch(backbone, **extra):
    # a user's training config: the heads count is the one size the weights do not show
    return {"Architecture": {"model_type": "kie", "algorithm": "LayoutXLM", "Transform": None,
                             "Backbone": {"name": backbone, "mode": "vi", **extra}}}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("kie")
    res = subprocess.run([sys.executable, str(HERE / "paddlenlp_kie_exports.py"), str(out),
                          json.dumps({**SMALL, "num_classes": 7, "dropout": 0})],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    # the PIR program needs the sizes the weights do not show by name
    (out / "ser.yml").write_text(yaml.safe_dump(_arch("LayoutXLMForSer", num_classes=7, **SMALL)))
    (out / "re.yml").write_text(yaml.safe_dump(_arch("LayoutXLMForRe", num_attention_heads=4)))
    return out


def _convert_cli(exported, *args):
    report = exported / f"report-{len(list(exported.glob('report-*')))}.json"
    res = run_cli("convert", "--arch", "ser_vi_layoutxlm_xfund_zh", *args, "--report", report,
                  "--overwrite")
    return res, (json.loads(report.read_text()) if report.is_file() else None)


def _float64_worst(report):
    return max(r["float64"]["max_abs"] for r in report["results"])


def test_ser_export_converts_and_verifies_in_float64(exported):
    out = exported / "ser.pth"
    res, report = _convert_cli(exported, "--paddle-dir", exported / "ser_pir", "--config",
                               exported / "ser.yml", "--out", out)
    assert res.returncode == 0, res.stderr
    assert report["passed"] and report["judged_in"] == "float64"
    assert _float64_worst(report) < 1e-8, report["results"]
    assert max(r["max_abs"] for r in report["results"]) < 1e-4
    assert len(report["results"]) == 2  # two seeded token/box inputs, one logits output each
    assert report["results"][0]["shape"] == [1, 512, 7]


def _convert_and_verify(path, exported):
    """In process (the CLI path is covered above): convert by name, verify against the
    export, as `ptocr convert --reference` does."""
    from ptocr.converter import formats
    from ptocr.converter.verify import verify

    conv = convert(path, "ser_vi_layoutxlm_xfund_zh", exported / "ser.yml")
    return conv, verify(formats.read(exported / "ser_pir"), conv.model, conv.spec)


def test_ser_training_checkpoint_converts_by_names(exported):
    conv, report = _convert_and_verify(exported / "ser_train", exported)
    assert conv.report.method == "names" and conv.report.mapped == 46
    assert sorted(conv.report.ignored) == ["layoutxlm.embeddings.position_ids",
                                           "layoutxlm.pooler.dense.bias",
                                           "layoutxlm.pooler.dense.weight"]
    assert report["passed"] and _float64_worst(report) < 1e-8


def test_ser_broken_conversion_is_refused(exported, tmp_path):
    """The checkpoint with two attention weights swapped: right shapes, wrong numbers."""
    import pickle

    from ptocr.converter.formats import parse_pdparams

    tensors = parse_pdparams((exported / "ser_train" / "model_state.pdparams").read_bytes())
    q, k = ("layoutxlm.encoder.layer.1.attention.self.query.weight",
            "layoutxlm.encoder.layer.1.attention.self.key.weight")
    tensors[q], tensors[k] = tensors[k], tensors[q]
    bad = tmp_path / "model_state.pdparams"
    bad.write_bytes(pickle.dumps(tensors))
    _, report = _convert_and_verify(bad, exported)
    assert not report["passed"] and _float64_worst(report) > 1e-5


@pytest.fixture(scope="module")
def re_model(exported):
    conv = convert(exported / "re_train", "re_vi_layoutxlm_xfund_zh", exported / "re.yml")
    assert conv.report.method == "names"
    assert sorted(conv.report.ignored) == ["layoutxlm.embeddings.position_ids",
                                           "layoutxlm.pooler.dense.bias",
                                           "layoutxlm.pooler.dense.weight"]
    return conv.model


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("seed", [0, 1], ids=["no known relations", "two known relations"])
def test_re_matches_paddlenlp(exported, re_model, seed, dtype):
    ref = np.load(exported / "re_reference.npz")
    model = torch_float64(re_model) if dtype == "float64" else re_model
    x = [torch.from_numpy(ref[f"input{i}_{seed}"]) for i in range(6)]
    with torch.no_grad():
        out = model(x)
    key = f"{seed}_{dtype}"
    assert list(out) == ["hidden_states", "loss", "pred_relations"]  # the export's order
    tol = 1e-6 if dtype == "float32" else 1e-12
    hidden = ref[f"hidden_states_{key}"]
    assert out["hidden_states"].shape == hidden.shape == (1, 2, 512 + 49, 48)
    assert np.abs(out["hidden_states"].numpy() - hidden).max() < tol * max(1, np.abs(hidden).max())
    assert abs(float(out["loss"]) - float(ref[f"loss_{key}"])) < tol * 100
    pred = ref[f"pred_relations_{key}"]
    assert pred[0, 0, 0, 0] > 0  # some pairs are linked by the random weights
    np.testing.assert_array_equal(out["pred_relations"].numpy(), pred)


def test_paddle_cannot_export_the_re_decoder(exported):
    """Why RE is compared in dygraph: paddle 3.3's dy2static refuses PaddleNLP's REDecoder."""
    text = (exported / "re_export.txt").read_text()
    assert text != "exported" and "must be dense tensor type" in text, text[:500]
