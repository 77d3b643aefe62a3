"""Issue 14, correctness only (never speed): the fast eval form (conv+BN folded, rep blocks in
deploy form) and its place in the verifier's report; `ptocr export` artifacts (torchscript,
exported, aoti, onnx) verified against their checkpoint, loaded back by ptocr.load and run by
ptocr.OCR; stale and tampered artifacts refused with one line. The classifier (the smallest
real model) carries the exports; AOTI compiles once."""

import copy
import json
import shutil

import numpy as np
import pytest
import torch
from torch import nn

import ptocr
from ptocr.converter import formats
from ptocr.converter.mapping import find_arch
from ptocr.errors import PtocrError
from ptocr.models.fuse import fuse

CLS = "ch_ppocr_mobile_v2.0_cls"
DET = "PP-OCRv4_mobile_det"


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("speed")


@pytest.fixture(scope="module")
def cls_ckpt(work, models):
    from tests.conftest import run_cli

    out = work / "cls.pth"
    res = run_cli("convert", "--arch", CLS, "--paddle-dir", models(CLS), "--out", out,
                  "--no-verify")
    assert res.returncode == 0, res.stderr
    return out


def _x(shape, seed=0):
    return torch.from_numpy(np.random.RandomState(seed).uniform(-1, 1, shape).astype(np.float32))


# ---- the fast eval form

def test_load_folds_every_conv_bn_pair_and_keeps_the_checkpoint_state(cls_ckpt):
    fused, plain = ptocr.load(cls_ckpt), ptocr.load(cls_ckpt, fuse=False)
    assert fused.ptocr_fused["folded"] == 35  # every conv+BN of the classifier
    assert not hasattr(plain, "ptocr_fused")
    assert not any(type(m) is nn.BatchNorm2d for m in fused.modules())
    a, b = fused.state_dict(), plain.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    x = _x([3, 3, 48, 192])
    with torch.inference_mode():
        assert (fused(x) - plain(x)).abs().max() < 1e-5
    # an edit of a folded BN's tensors is seen: the fold is recomputed before the next call
    for m in (fused, plain):
        with torch.no_grad():
            m.backbone.conv1.bn.running_mean.add_(0.5)
    with torch.inference_mode():
        assert (fused(x) - plain(x)).abs().max() < 1e-5
    # float64 (the verifier's evaluation) refolds in float64: agreement to rounding of float64
    f64, p64 = copy.deepcopy(fused).double(), copy.deepcopy(plain).double()
    with torch.inference_mode():
        assert (f64(x.double()) - p64(x.double())).abs().max() < 1e-12


class _Tricky(nn.Module):
    """A conv whose output is also read by a residual, and a BN applied before its conv:
    neither pair may be folded."""

    def __init__(self):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4)
        self.bn2, self.conv2 = nn.BatchNorm2d(4), nn.Conv2d(4, 4, 1)
        self.conv3, self.bn3 = nn.Conv2d(4, 4, 1, bias=False), nn.BatchNorm2d(4)

    def forward(self, x):
        y = self.conv(x)
        y = self.bn(y) + y
        return self.bn3(self.conv3(self.conv2(self.bn2(y))))


def test_only_pairs_whose_conv_output_nothing_else_reads_are_folded():
    torch.manual_seed(0)
    model = _Tricky().eval()
    for bn in (model.bn, model.bn2, model.bn3):
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.data.uniform_(0.5, 2)
    x = torch.randn(2, 4, 8, 8)
    with torch.inference_mode():
        ref = model(x)
    fused = fuse(copy.deepcopy(model), (x,))
    assert fused.ptocr_fused["folded"] == 1
    assert type(fused.bn3).__name__ == "FoldedBatchNorm2d"
    assert type(fused.bn) is nn.BatchNorm2d and type(fused.bn2) is nn.BatchNorm2d
    with torch.inference_mode():
        assert (fused(x) - ref).abs().max() < 1e-5


def test_rep_blocks_fold_to_the_deploy_form(models):
    """A PP-OCRv4 det training-form network (rep branches) -> fused form within fp32
    rounding of the training form; its rep layers end in deploy form."""
    from ptocr.converter.convert import resolve_config
    from ptocr.models import build

    spec = find_arch(DET)
    config = resolve_config(spec, formats.read(models(DET)), None)
    config["Backbone"]["deploy"] = False
    torch.manual_seed(0)
    model = build(config).eval()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    x = _x([1, 3, 64, 96])
    with torch.inference_mode():
        ref = model(x)
    fused = fuse(copy.deepcopy(model), (x,))
    assert fused.ptocr_fused["rep_blocks"] > 0 and fused.ptocr_fused["folded"] > 0
    assert not any(hasattr(m, "conv_kxk") for m in fused.modules())
    with torch.inference_mode():
        assert (fused(x) - ref).abs().max() < 1e-5


def test_the_verifier_reports_and_gates_the_fused_form(cls_ckpt, models):
    from ptocr.converter.verify import format_table, verify

    model = ptocr.load(cls_ckpt, fuse=False)
    report = verify(formats.read(models(CLS)), model, find_arch(CLS))
    fused = report["fused"]
    assert report["passed"] and fused["passed"] and fused["folded"] == 35
    assert fused["float64_max_abs"] <= 1e-8  # Paddle float64 vs the fused form in float64
    assert "fused form (35 conv+BN folded" in format_table(report)


# ---- exported artifacts

@pytest.fixture(scope="module")
def artifacts(work, cls_ckpt):
    """artifacts(fmt) -> (path, sidecar record); each format exported once (dynamic shapes
    except torchscript, a trace)."""
    from ptocr.converter.export import SUFFIXES, export

    made = {}

    def get(fmt):
        if fmt not in made:
            path = work / f"cls-{fmt}{SUFFIXES[fmt]}"
            made[fmt] = (path, export(cls_ckpt, fmt, path, dynamic=fmt != "torchscript"))
        return made[fmt]
    return get


@pytest.mark.parametrize("fmt", ["torchscript", "exported", "onnx", "aoti"])
def test_artifact_round_trip_and_parity(artifacts, cls_ckpt, fmt):
    path, record = artifacts(fmt)
    side = json.loads((path.parent / (path.name + ".ptocr.json")).read_text())
    assert side == json.loads(json.dumps(record))
    assert side["parity"]["passed"] and side["parity"]["inputs"] >= 2
    assert side["source"]["sha256"] and side["artifact_sha256"]
    worst = max(r["checkpoint float64"]["max_abs"] for r in side["parity"]["results"])
    assert worst <= 1e-4
    model, ref = ptocr.load(path), ptocr.load(cls_ckpt, fuse=False)
    assert model.ptocr_meta["arch"] == CLS
    shape = [3, 3, 48, 192] if fmt != "torchscript" else [1, 3, 48, 192]
    x = _x(shape, seed=7)  # a batch the export never saw (dynamic ones)
    with torch.inference_mode():
        assert (model(x) - ref(x)).abs().max() < 1e-4


def test_the_ocr_system_runs_an_aoti_package(artifacts, cls_ckpt, testdata):
    from ptocr.pipeline import read_image

    crops = [read_image(testdata / "words" / n) for n in ("ch_word_1.jpg", "en_word_2.png")]
    crops.append(crops[0][::-1, ::-1].copy())
    aoti = ptocr.OCR(det=None, rec=None, cls=str(artifacts("aoti")[0]), engine="aoti")
    eager = ptocr.OCR(det=None, rec=None, cls=str(cls_ckpt))
    (_, a), (_, b) = aoti.classify(crops), eager.classify(crops)
    assert [lab for lab, _ in a] == [lab for lab, _ in b]
    assert np.allclose([s for _, s in a], [s for _, s in b], atol=1e-4)
    with pytest.raises(PtocrError, match="needs the cls model as a checkpoint path"):
        ptocr.OCR(det=None, rec=None, cls=ptocr.load(cls_ckpt), engine="aoti")


def test_tampered_and_stale_artifacts_are_refused(artifacts, work, cls_ckpt, cli, testdata):
    from ptocr.converter import checkpoint
    from ptocr.converter.export import export

    path, _ = artifacts("exported")
    bad = work / "tampered.pt2"
    shutil.copy(path, bad)
    shutil.copy(path.parent / (path.name + ".ptocr.json"), work / "tampered.pt2.ptocr.json")
    data = bytearray(bad.read_bytes())
    data[len(data) // 2] ^= 1
    bad.write_bytes(bytes(data))
    with pytest.raises(PtocrError, match="tampered"):
        ptocr.load(bad)
    res = cli("cls", testdata / "words" / "en_word_2.png", "--model", bad)
    assert res.returncode != 0 and res.stderr.strip().startswith("error:")
    assert len(res.stderr.strip().splitlines()) == 1 and "tampered" in res.stderr

    # stale: the checkpoint the artifact came from has changed since
    src = work / "cls-copy.pth"
    shutil.copy(cls_ckpt, src)
    art = work / "cls-copy.pt"
    export(src, "torchscript", art)
    state, meta = checkpoint.read(src)
    state["backbone.conv1.bn.bias"] = state["backbone.conv1.bn.bias"] + 0.1
    checkpoint.save(src, state, meta, overwrite=True)
    with pytest.raises(PtocrError, match="stale"):
        ptocr.load(art)
    # no sidecar: not a verified export
    shutil.copy(path, work / "bare.pt2")
    with pytest.raises(PtocrError, match="no sidecar"):
        ptocr.load(work / "bare.pt2")


def test_an_artifact_that_fails_parity_is_not_written(work, cls_ckpt, monkeypatch):
    from ptocr.converter import export as export_mod

    real_trace = torch.jit.trace

    def wrong_trace(model, example, **kw):  # a compiler bug: one weight off
        model = copy.deepcopy(model)
        with torch.no_grad():
            model.head.fc.weight.mul_(1.5)
        return real_trace(model, example, **kw)

    monkeypatch.setattr(torch.jit, "trace", wrong_trace)
    out = work / "wrong.pt"
    with pytest.raises(PtocrError, match="fails parity"):
        export_mod.export(cls_ckpt, "torchscript", out)
    assert not out.exists() and not (work / "wrong.pt.ptocr.json").exists()


def test_export_command(work, cls_ckpt, cli):
    out = work / "cli.pt"
    res = cli("export", cls_ckpt, "--format", "torchscript", "--out", out)
    assert res.returncode == 0, res.stderr
    assert "parity PASSED" in res.stdout and out.is_file()
    res = cli("export", cls_ckpt, "--format", "torchscript", "--out", out)
    assert res.returncode != 0 and "already exists" in res.stderr
