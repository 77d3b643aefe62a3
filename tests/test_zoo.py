"""`ptocr zoo` against a local HTTP server on 127.0.0.1 serving archives built from the real
official weights: checksums, resumed downloads, failures that stay local, reports."""

import hashlib
import http.server
import json
import tarfile
import threading
import time

import pytest
import yaml

from ptocr.converter import zoo


class Handler(http.server.BaseHTTPRequestHandler):
    files = {}  # path -> bytes
    faults = {}  # path -> "corrupt" | "drop" (applied once)
    ranges = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        data = self.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        fault = self.faults.pop(self.path, None)
        start = 0
        header = self.headers.get("Range")
        if header:
            Handler.ranges.append((self.path, header))
            start = int(header.split("=")[1].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        if fault == "corrupt":
            body = bytes(b ^ 0xFF for b in body[:64]) + body[64:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if fault == "drop":  # connection dies half way
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.connection.close()
            return
        self.wfile.write(body)


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    Handler.files, Handler.faults, Handler.ranges = {}, {}, []
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def archive(model_dir, path, inner):
    with tarfile.open(path, "w") as tf:
        tf.add(model_dir, arcname=inner)
    return path.read_bytes()


def manifest(tmp_path, entries):
    path = tmp_path / "zoo.yaml"
    path.write_text(yaml.safe_dump({"models": entries}))
    return path


@pytest.fixture
def cls_tar(models, tmp_path):
    data = archive(models("ch_ppocr_mobile_v2.0_cls"), tmp_path / "cls.tar", "cls_infer")
    return data, hashlib.sha256(data).hexdigest()


def test_checksum_mismatch_is_rejected_and_fetched_again(server, cls_tar, tmp_path, cli):
    data, digest = cls_tar
    Handler.files["/cls.tar"] = data
    Handler.faults["/cls.tar"] = "corrupt"
    m = manifest(tmp_path, [{"model": "cls", "arch": "ch_ppocr_mobile_v2.0_cls",
                             "sources": [{"url": f"{server}/cls.tar", "sha256": digest}]}])
    res = cli("zoo", "--manifest", m, "--cache", tmp_path / "c", "--out", tmp_path / "o")
    assert res.returncode == 0, res.stdout + res.stderr
    rows = json.loads((tmp_path / "o" / "report.json").read_text())
    assert rows[0]["status"] == "ok" and rows[0]["max_abs_diff"] < 1e-4
    assert (tmp_path / "o" / "cls.pth").exists()
    md = (tmp_path / "o" / "report.md").read_text()
    assert "| cls | ch_ppocr_mobile_v2.0_cls | ok |" in md


def test_wrong_checksum_twice_is_unavailable(server, cls_tar, tmp_path):
    data, _ = cls_tar
    Handler.files["/cls.tar"] = data
    entry = {"model": "cls", "arch": "ch_ppocr_mobile_v2.0_cls",
             "sources": [{"url": f"{server}/cls.tar", "sha256": "0" * 64}]}
    rows = zoo.run(manifest=manifest(tmp_path, [entry]), cache=tmp_path / "c",
                   out=tmp_path / "o", verify=False, progress=False)
    assert rows[0]["status"] == "unavailable" and "checksum mismatch" in rows[0]["reason"]


def test_interrupted_download_resumes(server, cls_tar, tmp_path):
    data, digest = cls_tar
    Handler.files["/cls.tar"] = data
    Handler.faults["/cls.tar"] = "drop"
    m = manifest(tmp_path, [{"model": "cls", "arch": "ch_ppocr_mobile_v2.0_cls",
                             "sources": [{"url": f"{server}/cls.tar", "sha256": digest}]}])
    kw = dict(manifest=m, cache=tmp_path / "c", out=tmp_path / "o", verify=False,
              progress=False)
    first = zoo.run(**kw)
    assert first[0]["status"] == "unavailable" and "interrupted" in first[0]["reason"]
    partial = tmp_path / "c" / "downloads" / "cls.tar.partial"
    assert 0 < partial.stat().st_size < len(data)
    second = zoo.run(**kw)
    assert second[0]["status"] == "ok"
    assert Handler.ranges == [("/cls.tar", f"bytes={len(data) // 2}-")]


def test_failure_and_unavailability_stay_local_and_reruns_skip(server, cls_tar, models,
                                                               tmp_path, cli):
    data, digest = cls_tar
    Handler.files["/cls.tar"] = data
    Handler.files["/det.tar"] = archive(models("PP-OCRv4_mobile_det"), tmp_path / "d.tar", "d")
    (tmp_path / "local.tar").write_bytes(data)
    entries = [
        {"model": "wrong", "arch": "ch_ppocr_mobile_v2.0_cls",  # det weights, cls table
         "sources": [{"url": f"{server}/det.tar"}]},
        {"model": "gone", "arch": "ch_ppocr_mobile_v2.0_cls",
         "sources": [{"url": "http://127.0.0.1:9/nothing.tar"}]},
        {"model": "cls", "arch": "ch_ppocr_mobile_v2.0_cls",
         "sources": [{"url": f"{server}/missing.tar"}, {"url": f"{server}/cls.tar"}]},
        {"model": "cls_file", "arch": "ch_ppocr_mobile_v2.0_cls",
         "sources": [{"url": (tmp_path / "local.tar").as_uri(), "sha256": digest}]},
        {"model": "nope", "arch": "no_such_arch", "sources": []},
    ]
    m = manifest(tmp_path, entries)
    args = ("zoo", "--manifest", m, "--cache", tmp_path / "c", "--out", tmp_path / "o",
            "--no-verify", "--jobs", "2")
    started = time.perf_counter()
    res = cli(*args)
    assert time.perf_counter() - started < 60
    assert res.returncode == 1  # a model that could be fetched failed
    rows = {r["model"]: r for r in json.loads((tmp_path / "o" / "report.json").read_text())}
    assert rows["wrong"]["status"] == "failed" and "do not fit" in rows["wrong"]["error"]
    assert rows["gone"]["status"] == "unavailable"
    assert rows["cls"]["status"] == "ok" and rows["cls_file"]["status"] == "ok"
    assert rows["nope"]["status"] == "unavailable"
    assert set(rows["cls"]) >= {"model", "arch", "source", "status", "max_abs_diff", "seconds",
                                "out"}
    again = cli(*args)
    rows = {r["model"]: r for r in json.loads((tmp_path / "o" / "report.json").read_text())}
    assert "same source" in rows["cls"]["skipped"] and again.returncode == 1


def test_archives_cannot_escape_the_cache(tmp_path):
    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w") as tf:
        info = tarfile.TarInfo("../../escaped.txt")
        info.size = 2
        tf.addfile(info, __import__("io").BytesIO(b"hi"))
    with pytest.raises(zoo.Unavailable, match="escapes"):
        zoo.unpack(evil, tmp_path / "x" / "y")
    assert not (tmp_path / "escaped.txt").exists()
