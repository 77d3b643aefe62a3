"""Issue 3: the verifier catches wrong conversions and names the module that diverges."""

import json

import torch

import ptocr
from ptocr.converter import checkpoint, formats
from ptocr.converter.convert import convert
from ptocr.converter.mapping import find_arch
from ptocr.converter.verify import verify

ARCH = "PP-OCRv4_mobile_det"


def test_verify_passes_a_good_checkpoint_and_fails_a_broken_one(models, tmp_path, cli):
    good = tmp_path / "good.pth"
    res = cli("convert", "--arch", ARCH, "--paddle-dir", models(ARCH), "--out", good,
              "--no-verify")
    assert res.returncode == 0, res.stderr
    res = cli("verify", "--paddle-dir", models(ARCH), "--torch", good, "--report",
              tmp_path / "good.json")
    assert res.returncode == 0, res.stdout + res.stderr
    report = json.loads((tmp_path / "good.json").read_text())
    assert report["passed"]
    figures = report["results"][0]
    assert {"max_abs", "mean_abs", "max_rel", "cosine", "binary_agreement"} <= set(figures)
    assert {"torch", "paddle", "ptocr"} <= set(report["versions"])

    state, meta = checkpoint.read(good)
    name = "head.binarize.conv_bn1.running_var"
    state[name] = state[name] * 1.5  # one BN variance off by half
    bad = tmp_path / "bad.pth"
    checkpoint.save(bad, state, meta)
    res = cli("verify", "--paddle-dir", models(ARCH), "--torch", bad)
    assert res.returncode == 1
    assert "FAILED" in res.stdout


def test_wrong_mapping_is_localised_to_its_module(models):
    """Swap two same-shaped depthwise kernels: shapes check out, numbers do not."""
    spec = find_arch(ARCH)
    a = "backbone.blocks5.1.dw_conv.reparam_conv.weight"
    b = "backbone.blocks5.2.dw_conv.reparam_conv.weight"
    weights = formats.read(models(ARCH))
    tensors = dict(weights.tensors)
    tensors[a], tensors[b] = tensors[b], tensors[a]
    weights.tensors = tensors
    conv = convert(None, weights=weights, spec=spec)
    report = verify(weights, conv.model, spec, images=False)
    assert not report["passed"]
    div = report["first_divergence"]
    assert div["module"] == "backbone.blocks5.1.dw_conv.reparam_conv", div
    assert div["type"] == "Conv2d" and div["max_abs"] > 1e-3


def test_convert_refuses_to_write_when_parity_fails(models, tmp_path, cli, monkeypatch):
    """--force writes anyway and records the failure; without it nothing is written."""
    cfg = tmp_path / "wrong.yml"
    # a user config that builds the network with a different SE hardsigmoid is impossible to
    # express; instead change the DB head's k (no effect in eval) and the neck's shortcut,
    # which keeps every shape but changes the function.
    cfg.write_text(
        "Architecture:\n  model_type: det\n  algorithm: DB\n  Transform:\n"
        "  Backbone: {name: PPLCNetV3, scale: 0.75, det: true}\n"
        "  Neck: {name: RSEFPN, out_channels: 96, shortcut: false}\n"
        "  Head: {name: DBHead, k: 50}\n")
    out = tmp_path / "x.pth"
    res = cli("convert", "--arch", ARCH, "--paddle-dir", models(ARCH), "--out", out,
              "--config", cfg)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "parity failed" in res.stderr and not out.exists()
    assert len([l for l in res.stderr.splitlines() if l.startswith("error:")]) == 1
    res = cli("convert", "--arch", ARCH, "--paddle-dir", models(ARCH), "--out", out,
              "--config", cfg, "--force")
    assert res.returncode == 0
    parity = torch.load(out, weights_only=True)["parity"]
    assert parity["verified"] and not parity["passed"]
