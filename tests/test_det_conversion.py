"""Issue 2 end to end on the real official PP-OCRv4 mobile det model: convert with the real
CLI, load back, and compare with Paddle Inference on real images."""

import json
import os

import numpy as np
import pytest
import torch

import ptocr
from ptocr.converter import formats
from ptocr.converter.verify import PaddleProgram
from ptocr.converter.mapping import find_arch
from ptocr.pipeline import model_inputs, read_image

ARCH = "PP-OCRv4_mobile_det"


@pytest.fixture(scope="module")
def converted(tmp_path_factory, models):
    out = tmp_path_factory.mktemp("det") / "det.pth"
    from conftest import run_cli

    res = run_cli("convert", "--arch", ARCH, "--paddle-dir", models(ARCH), "--out", out,
                  "--report", out.with_suffix(".json"))
    assert res.returncode == 0, res.stderr
    return out


def test_checkpoint_fields_and_weights_only_load(converted):
    payload = torch.load(converted, weights_only=True)
    assert set(payload) >= {"state_dict", "arch", "config", "source", "ptocr_version", "parity"}
    assert payload["arch"] == ARCH
    assert payload["parity"]["verified"] and payload["parity"]["passed"]
    assert {s["file"] for s in payload["source"]} == {
        "inference.pdmodel", "inference.pdiparams", "inference.pdiparams.info"}
    assert all(len(s["sha256"]) == 64 for s in payload["source"])
    report = json.loads(converted.with_suffix(".json").read_text())
    assert report["passed"] and report["versions"]["paddle"]
    assert any(r["input"].startswith("image") for r in report["results"])


def test_loaded_model_matches_paddle_on_real_images(converted, models, testdata):
    model = ptocr.load(converted)
    assert not model.training
    paddle = PaddleProgram(formats.read(models(ARCH)))
    for name in ("11.jpg", "img_12.jpg", "00015504.jpg"):
        x = model_inputs(find_arch(ARCH).processing, read_image(testdata / "images" / name))[0]
        (ref,) = paddle(x)
        with torch.inference_mode():
            out = model(torch.from_numpy(x)).numpy()
        assert out.shape == ref.shape and out.shape[1] == 1
        assert np.abs(out - ref).max() <= 1e-4, name


def test_safetensors_output_holds_the_same(converted, models, tmp_path, cli):
    out = tmp_path / "det.safetensors"
    res = cli("convert", "--arch", ARCH.lower(), "--paddle-dir", models(ARCH), "--out", out,
              "--no-verify")
    assert res.returncode == 0, res.stderr
    a, b = ptocr.load(converted).state_dict(), ptocr.load(out).state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert ptocr.load(out).ptocr_meta["parity"]["verified"] is False


def _paddle_saved_checkpoint(models, path, prefix=""):
    """A training-style .pdparams written by paddle.save from the real model's weights."""
    import paddle

    weights = formats.read(models(ARCH))
    state = {prefix + k: paddle.to_tensor(v) for k, v in weights.tensors.items()}
    paddle.save(state, str(path))
    return weights


def test_pdparams_saved_by_paddle_converts_identically(models, tmp_path, cli, converted):
    pdparams = tmp_path / "best_accuracy.pdparams"
    _paddle_saved_checkpoint(models, pdparams)
    (tmp_path / "best_accuracy.pdopt").write_bytes(b"optimizer state, ignored")
    out = tmp_path / "from_train.pth"
    res = cli("convert", "--arch", ARCH, "--paddle-dir", pdparams, "--out", out,
              "--reference", models(ARCH))
    assert res.returncode == 0, res.stderr
    assert "PASSED" in res.stdout
    a, b = ptocr.load(converted).state_dict(), ptocr.load(out).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_distillation_checkpoint_submodels(models, tmp_path, cli):
    import paddle

    weights = formats.read(models(ARCH))
    state = {}
    for sub in ("Student", "Student2", "Teacher"):
        state.update({f"{sub}.{k}": paddle.to_tensor(v) for k, v in weights.tensors.items()})
    pdparams = tmp_path / "distill.pdparams"
    paddle.save(state, str(pdparams))
    res = cli("convert", "--arch", ARCH, "--paddle-dir", pdparams, "--out", tmp_path / "s.pth",
              "--no-verify")
    assert res.returncode == 0, res.stderr
    assert ptocr.load(tmp_path / "s.pth").ptocr_meta["extra"]["submodel"] == "Student"
    res = cli("convert", "--arch", ARCH, "--paddle-dir", pdparams, "--out", tmp_path / "t.pth",
              "--no-verify", "--submodel", "Teacher")
    assert res.returncode == 0, res.stderr
    res = cli("convert", "--arch", ARCH, "--paddle-dir", pdparams, "--out", tmp_path / "x.pth",
              "--no-verify", "--submodel", "Nobody")
    assert res.returncode == 2 and "Student, Student2, Teacher" in res.stderr
    assert not (tmp_path / "x.pth").exists()


def test_pir_model_aligned_by_program_order(models, tmp_path, cli):
    out = tmp_path / "v5.pth"
    res = cli("convert", "--arch", "PP-OCRv5_mobile_det", "--paddle-dir",
              models("PP-OCRv5_mobile_det"), "--out", out)
    assert res.returncode == 0, res.stderr + res.stdout
    assert "program order" in res.stderr
    assert ptocr.load(out).ptocr_meta["parity"]["passed"]


def test_inspect_and_archs(models, cli):
    res = cli("inspect", models(ARCH), "-n", "3")
    assert res.returncode == 0
    assert "format: pdmodel" in res.stdout and "tensors: 234" in res.stdout
    assert f"architecture: {ARCH}" in res.stdout
    res = cli("archs")
    assert res.returncode == 0 and ARCH in res.stdout and "real weights" in res.stdout


def test_python_m_ptocr_entry(cli):
    res = cli("--help")
    assert res.returncode == 0 and "convert" in res.stdout


def test_arch_auto_picks_from_weights_and_inference_yml(models, tmp_path, cli):
    res = cli("convert", "--arch", "auto", "--paddle-dir", models(ARCH), "--out",
              tmp_path / "a.pth", "--no-verify")
    assert res.returncode == 0, res.stderr
    # v4 and v5 mobile det share one network; the first table that fits names it
    assert ptocr.load(tmp_path / "a.pth").ptocr_meta["arch"] == ARCH
    res = cli("convert", "--arch", "auto", "--paddle-dir", models("PP-OCRv5_mobile_det"),
              "--out", tmp_path / "b.pth", "--no-verify")
    assert res.returncode == 0, res.stderr  # inference.yml names the model
    assert ptocr.load(tmp_path / "b.pth").ptocr_meta["arch"] == "PP-OCRv5_mobile_det"
