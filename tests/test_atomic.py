"""Outputs are atomic: a process killed at any moment during a write leaves the old file or
the complete new one; existing outputs are kept unless --overwrite."""

import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from ptocr.converter import checkpoint

WRITER = textwrap.dedent('''
    import sys, torch
    from ptocr.converter import checkpoint
    state = {"w": torch.full((64, 1024, 1024), 7.0)}  # 256 MB: a write that takes a while
    print("start", flush=True)
    checkpoint.save(sys.argv[1], state, {"config": {"big": True}}, overwrite=True)
    print("done", flush=True)
''')


@pytest.mark.parametrize("delay", [0.05, 0.3, 0.8])
def test_sigkill_during_write_leaves_the_old_file(tmp_path, delay):
    out = tmp_path / "model.pth"
    checkpoint.save(out, {"w": torch.ones(3)}, {"config": {"old": True}})
    old = out.read_bytes()
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(out)], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "start"
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    state, meta = checkpoint.read(out)  # whatever happened, the file is whole
    if out.read_bytes() != old:  # the writer finished before the kill
        assert meta["config"] == {"big": True} and state["w"].shape == (64, 1024, 1024)
    else:
        assert meta["config"] == {"old": True}


def test_failed_write_leaves_no_temp_and_no_output(tmp_path):
    out = tmp_path / "x.pth"

    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        with checkpoint.atomic_path(out) as tmp:
            tmp.write_bytes(b"partial")
            raise Boom()
    assert list(tmp_path.iterdir()) == []


def test_reports_and_ocr_outputs_respect_overwrite(models, testdata, tmp_path, cli):
    det = tmp_path / "det.pth"
    assert cli("convert", "--arch", "PP-OCRv4_mobile_det", "--paddle-dir",
               models("PP-OCRv4_mobile_det"), "--out", det, "--no-verify").returncode == 0
    report = tmp_path / "report.json"
    report.write_text("mine")
    res = cli("verify", "--paddle-dir", models("PP-OCRv4_mobile_det"), "--torch", det,
              "--report", report)
    assert res.returncode == 2 and "already exists" in res.stderr
    assert report.read_text() == "mine"
    res = cli("verify", "--paddle-dir", models("PP-OCRv4_mobile_det"), "--torch", det,
              "--report", report, "--overwrite")
    assert res.returncode == 0 and report.read_text().startswith("{")
    out = tmp_path / "ocr.json"
    out.write_text("mine")
    res = cli("ocr", testdata / "images" / "1.jpg", "--det", det, "--rec", det, "--json", out)
    assert res.returncode == 2 and out.read_text() == "mine"
