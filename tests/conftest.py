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
