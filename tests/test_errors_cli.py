"""Bad input through the real CLI: one `error:` line, the documented exit code, no traceback,
no output file; conversion with paddle unimportable; no paddle import when converting."""

import pickle
import shutil

import pytest
import torch

ARCH = "PP-OCRv4_mobile_det"


def assert_clean_failure(res, out, code=2, words=()):
    assert res.returncode == code, res.stdout + res.stderr
    lines = [l for l in res.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert "Traceback" not in res.stderr
    for w in words:
        assert w in lines[0], lines[0]
    assert not out.exists()
    assert not list(out.parent.glob(f".{out.name}.*"))  # no temp litter


class RunsCode:
    def __reduce__(self):
        import os

        return (os.system, ("touch PWNED",))


@pytest.fixture
def bad_inputs(tmp_path, models):
    real = models(ARCH)
    cases = {}
    (tmp_path / "empty").mkdir()
    cases["empty"] = (tmp_path / "empty", ["directory is empty"])
    cases["missing"] = (tmp_path / "nope", ["no such file or directory"])
    trunc = tmp_path / "trunc"
    shutil.copytree(real, trunc)
    data = (real / "inference.pdiparams").read_bytes()
    (trunc / "inference.pdiparams").write_bytes(data[: len(data) // 3])
    cases["truncated"] = (trunc, ["truncated or corrupt"])
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "inference.json").write_text('{"program": [1, 2')
    shutil.copy(models("PP-OCRv5_mobile_det") / "inference.pdiparams", garbage)
    cases["garbage json"] = (garbage, ["not a Paddle PIR program"])
    evil = tmp_path / "evil"
    evil.mkdir()
    (evil / "model.pdparams").write_bytes(pickle.dumps({"w": RunsCode()}))
    cases["hostile pickle"] = (evil, ["refused"])
    cases["other architecture"] = (models("ch_ppocr_mobile_v2.0_cls"), ["do not fit", ARCH])
    return cases


@pytest.mark.parametrize("case", ["empty", "missing", "truncated", "garbage json",
                                  "hostile pickle", "other architecture"])
def test_bad_input_is_one_line_and_writes_nothing(case, bad_inputs, tmp_path, cli):
    path, words = bad_inputs[case]
    out = tmp_path / "out" / "x.pth"
    out.parent.mkdir()
    res = cli("convert", "--arch", ARCH, "--paddle-dir", path, "--out", out, cwd=tmp_path)
    assert_clean_failure(res, out, 2, words)
    assert not (tmp_path / "PWNED").exists()  # the pickle's payload never ran


def test_unknown_arch_and_existing_output(models, tmp_path, cli):
    out = tmp_path / "x.pth"
    assert_clean_failure(cli("convert", "--arch", "nonsense", "--paddle-dir", models(ARCH),
                             "--out", out), out, 2, ["unknown architecture"])
    out.write_bytes(b"keep me")
    res = cli("convert", "--arch", ARCH, "--paddle-dir", models(ARCH), "--out", out,
              "--no-verify")
    assert res.returncode == 2 and "already exists" in res.stderr
    assert out.read_bytes() == b"keep me"  # nothing the user gave is modified


def test_debug_shows_the_traceback(tmp_path, cli):
    res = cli("convert", "--debug", "--arch", ARCH, "--paddle-dir", tmp_path / "nope", "--out",
              tmp_path / "x.pth")
    assert res.returncode == 2 and "Traceback" in res.stderr


def _paddle_blocked(tmp_path):
    shim = tmp_path / "shim"
    shim.mkdir()
    # Python's own convention: a None entry in sys.modules makes `import paddle` fail
    (shim / "sitecustomize.py").write_text("import sys\nsys.modules['paddle'] = None\n")
    return {"PYTHONPATH": str(shim)}


def test_convert_works_with_paddle_unimportable(models, tmp_path, cli):
    env = _paddle_blocked(tmp_path)
    check = cli("inspect", models(ARCH), env=env)
    assert check.returncode == 0
    out = tmp_path / "det.pth"
    res = cli("convert", "--arch", ARCH, "--paddle-dir", models(ARCH), "--out", out, env=env)
    assert res.returncode == 0, res.stderr
    assert "parity NOT verified" in res.stderr and "paddle is not installed" in res.stderr
    parity = torch.load(out, weights_only=True)["parity"]
    assert parity["verified"] is False
    out2 = tmp_path / "det2.pth"
    res = cli("convert", "--arch", ARCH, "--paddle-dir", models(ARCH), "--out", out2,
              "--require-verify", env=env)
    assert_clean_failure(res, out2, 2, ["cannot be verified"])


def test_convert_never_imports_paddle(models, tmp_path):
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-X", "importtime", "-m", "ptocr", "convert",
                          "--arch", ARCH, "--paddle-dir", str(models(ARCH)), "--out",
                          str(tmp_path / "d.pth"), "--no-verify"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-500:]
    imported = [l.split("|")[-1].strip() for l in res.stderr.splitlines() if "import time:" in l]
    assert "torch" in imported and not any(m.split(".")[0] == "paddle" for m in imported)


def _paddle_broken(tmp_path):
    """A `paddle` package first on sys.path that raises on import, as a broken wheel or a
    missing system library does in the field."""
    fake = tmp_path / "broken" / "paddle"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(
        "raise ImportError('libpaddle.so: cannot open shared object file')\n")
    return {"PYTHONPATH": str(fake.parent)}


def test_broken_paddle_counts_as_absent(models, tmp_path, cli):
    env = _paddle_broken(tmp_path)
    out = tmp_path / "det.pth"
    res = cli("convert", "--arch", ARCH, "--paddle-dir", models(ARCH), "--out", out, env=env)
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr and "internal error" not in res.stderr
    warning = [l for l in res.stderr.splitlines() if "parity NOT verified" in l]
    assert warning and "cannot be imported" in warning[0] and "libpaddle.so" in warning[0]
    parity = torch.load(out, weights_only=True)["parity"]
    assert parity["verified"] is False and "libpaddle.so" in parity["reason"]
    out2 = tmp_path / "det2.pth"
    res = cli("convert", "--arch", ARCH, "--paddle-dir", models(ARCH), "--out", out2,
              "--require-verify", env=env)
    assert_clean_failure(res, out2, 2, ["cannot be verified", "libpaddle.so"])
    report = tmp_path / "report.json"
    res = cli("verify", "--paddle-dir", models(ARCH), "--torch", out, "--report", report,
              env=env)
    assert_clean_failure(res, report, 2, ["cannot be verified", "cannot be imported",
                                          "libpaddle.so"])


def test_json_output_has_no_nan():
    """An empty read's score (a mean over no characters) is NaN, which JSON cannot hold: the
    CLI writes null instead, so the file parses."""
    import json
    import math

    from ptocr.cli.ocr import _dumps

    text = _dumps({"word.png": {"text": "", "score": math.nan},
                   "page.png": [{"text": "a", "score": 0.9, "box": [[0, 0]]},
                                {"text": "", "score": math.inf}]})
    data = json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in JSON"))
    assert data["word.png"]["score"] is None and data["page.png"][1]["score"] is None
    assert data["page.png"][0]["score"] == 0.9
