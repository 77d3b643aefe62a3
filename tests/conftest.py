"""Shared fixtures: real official weights (fetched by `make weights` into .cache/models) and
the real images in ../shared/testdata. Missing data is a setup failure, never a skip."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MODELS = Path(os.environ.get("PTOCR_MODELS", ROOT / ".cache" / "models"))
TESTDATA = Path(os.environ.get("PTOCR_TESTDATA", ROOT.parent / "shared" / "testdata"))


def model_dir(name):
    path = MODELS / name
    if not (path / "inference.pdiparams").is_file():
        pytest.fail(f"real weights {name} missing in {MODELS}; run `make weights`")
    return path


@pytest.fixture(scope="session")
def models():
    """models('PP-OCRv4_mobile_det') -> Path of the official inference model."""
    return model_dir


@pytest.fixture(scope="session")
def testdata():
    if not TESTDATA.is_dir():
        pytest.fail(f"real test images missing: {TESTDATA}")
    return TESTDATA


def run_cli(*args, env=None, cwd=None):
    """Run the real `ptocr` command in a subprocess; returns CompletedProcess."""
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-m", "ptocr", *map(str, args)], capture_output=True,
                          text=True, env=full_env, cwd=cwd)


@pytest.fixture
def cli():
    return run_cli


def convert_and_verify_twin(twin, form):
    """Convert a table twin folder (twin.yaml, pir/ export, train/ checkpoint) from its PIR
    export (``form`` "pir", aligned by program order) or its training checkpoint ("pdparams",
    by names) and return the verifier's report against the PIR program."""
    from ptocr.converter import formats
    from ptocr.converter.convert import convert
    from ptocr.converter.mapping import find_arch
    from ptocr.converter.verify import verify

    spec = find_arch(str(twin / "twin.yaml"))
    program = formats.read(twin / "pir" / "inference.json")
    weights = program if form == "pir" else formats.read(twin / "train")
    conv = convert(None, weights=weights, spec=spec)
    assert conv.report.method == ("program order" if form == "pir" else "names")
    report = verify(program, conv.model, spec)
    return report


@pytest.fixture(scope="session")
def det_v4_checkpoint(tmp_path_factory, models):
    """The official PP-OCRv4 mobile detector converted once per session (for recogniser
    tests that run `ptocr ocr`)."""
    path = tmp_path_factory.mktemp("det_v4") / "det.pth"
    res = run_cli("convert", "--arch", "PP-OCRv4_mobile_det", "--paddle-dir",
                  models("PP-OCRv4_mobile_det"), "--out", path, "--no-verify")
    assert res.returncode == 0, res.stderr
    return path
