"""Corpus OCR (`ptocr ocr SOURCE --out DIR`): the in-process and Ray Data engines give
identical rows; re-runs resume without duplicates or gaps after the driver is killed; a
worker killed mid-batch is retried by Ray; unreadable files become error rows."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from ptocr.engines.rows import read_rows

WORDS = ["ch_word_1.jpg", "ch_word_2.jpg", "ch_word_3.jpg", "en_word_1.png", "en_word_2.png",
         "en_word_3.png", "en_word_4.png"]
COPIES = 30  # ~210 rows: small word images keep the suite fast


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, models):
    from conftest import run_cli

    out = tmp_path_factory.mktemp("corpus-models")
    paths = {}
    for task, arch in (("det", "PP-OCRv4_mobile_det"), ("rec", "PP-OCRv4_mobile_rec")):
        paths[task] = out / f"{arch}.pth"
        res = run_cli("convert", "--arch", arch, "--paddle-dir", models(arch), "--out",
                      paths[task], "--no-verify")
        assert res.returncode == 0, res.stderr
    return paths


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, testdata):
    """A folder of word images (copies under distinct names), one real page and a corrupt
    file, listed in a JSONL manifest too."""
    root = tmp_path_factory.mktemp("corpus")
    images = root / "images"
    images.mkdir()
    for i in range(COPIES):
        for name in WORDS:
            (images / f"{i:03d}_{name}").symlink_to(testdata / "words" / name)
    (images / "page_1.jpg").symlink_to(testdata / "images" / "1.jpg")
    (images / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    paths = sorted(str(p) for p in images.iterdir())
    manifest = root / "manifest.jsonl"
    manifest.write_text("".join(json.dumps({"path": p, "id": i}) + "\n"
                                for i, p in enumerate(paths)))
    return {"dir": images, "manifest": manifest, "paths": paths}


def by_path(rows):
    return {r["path"]: r for r in rows}


@pytest.fixture(scope="module")
def local_rows(checkpoints, corpus, tmp_path_factory):
    from conftest import run_cli

    out = tmp_path_factory.mktemp("local-out")
    # one torch thread, as each Ray worker: equal thread counts give bitwise-equal rows
    res = run_cli("ocr", corpus["dir"], "--det", checkpoints["det"], "--rec", checkpoints["rec"],
                  "--out", out, "--shard-size", "64", "--threads", "1")
    assert res.returncode == 0, res.stderr
    assert "1 unreadable" in res.stderr
    rows = read_rows(out)
    assert len(rows) == len(corpus["paths"]) and len(by_path(rows)) == len(rows)
    return rows


def test_local_rows_have_the_schema_and_errors_as_rows(local_rows, corpus):
    rows = by_path(local_rows)
    broken = rows[str(corpus["dir"] / "broken.png")]
    assert broken["error"] and "not a readable image" in broken["error"]
    assert broken["lines"] == [] and broken["width"] is None
    page = rows[str(corpus["dir"] / "page_1.jpg")]
    assert page["error"] is None and len(page["lines"]) >= 2 and page["width"] > 0
    line = page["lines"][0]
    assert set(line) == {"box", "text", "score"} and len(line["box"]) == 4
    models = json.loads(page["models"])
    assert set(models) == {"det", "rec"} and all(len(v) == 64 for v in models.values())
    words = [r for p, r in rows.items() if p.endswith("en_word_1.png")]
    assert len(words) == COPIES and len({json.dumps(r["lines"]) for r in words}) == 1
    assert words[0]["lines"] and words[0]["lines"][0]["text"]


def test_ray_engine_gives_identical_rows_and_python_api(checkpoints, corpus, local_rows,
                                                        tmp_path):
    import ray

    import ptocr
    from ptocr.engines.corpus import run_corpus

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        out = tmp_path / "ray-out"
        summary = run_corpus([corpus["manifest"]], out, checkpoints["det"], checkpoints["rec"],
                             engine="ray", num_workers=2, batch_size=16, shard_size=50,
                             progress_bar=False)
        assert summary["done"] == len(corpus["paths"]) and summary["errors"] == 1
        assert by_path(read_rows(out)) == by_path(local_rows)
        # the same rows through the Python API, inside a user's own Ray pipeline
        ds = ray.data.from_items([{"file": p} for p in corpus["paths"][:20]])
        rows = ptocr.ray.ocr_dataset(ds, det=checkpoints["det"], rec=checkpoints["rec"],
                                     path_column="file", num_workers=1).take_all()
        expected = by_path(local_rows)
        assert rows and all(r == expected[r["path"]] for r in rows) and len(rows) == 20
    finally:
        ray.shutdown()


def _ray_cli(args, env=None, **kw):
    return subprocess.Popen([sys.executable, "-m", "ptocr", "ocr", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, **(env or {})), start_new_session=True, **kw)


def _kill_group(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and the local Ray it started
    except ProcessLookupError:
        pass
    proc.wait()


def test_resume_after_killing_the_driver_and_a_killed_worker(checkpoints, corpus, local_rows,
                                                             tmp_path):
    out = tmp_path / "out"
    args = [corpus["dir"], "--det", checkpoints["det"], "--rec", checkpoints["rec"], "--out",
            out, "--engine", "ray", "--num-workers", "2", "--batch-size", "8",
            "--shard-size", "16"]
    proc = _ray_cli(args)
    deadline = time.time() + 600
    while time.time() < deadline and len(list(out.glob("part-*"))) < 2:
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.2)
    _kill_group(proc)  # half way: some shards written, the rest not
    first = read_rows(out)
    assert 0 < len(first) < len(corpus["paths"])
    # the re-run skips what is there; one of its workers dies mid-batch and is retried
    flag = tmp_path / "worker-died"
    proc = _ray_cli(args, env={"PTOCR_RAY_FAULT_ONCE": str(flag)})
    try:
        _, stderr = proc.communicate(timeout=900)
    finally:
        _kill_group(proc)
    assert proc.returncode == 0, stderr
    assert flag.exists(), "the fault was not injected"
    assert f"{len(first)} already in" in stderr
    rows = read_rows(out)
    assert sorted(r["path"] for r in rows) == corpus["paths"]  # each exactly once
    assert by_path(rows) == by_path(local_rows)


def test_bad_corpus_inputs_are_one_line_errors(checkpoints, tmp_path, cli):
    for args, words in (([tmp_path / "nope"], "no such file"),
                        ([tmp_path / "*.png"], "matches no file")):
        res = cli("ocr", *args, "--det", checkpoints["det"], "--rec", checkpoints["rec"],
                  "--out", tmp_path / "o")
        assert res.returncode == 2 and res.stderr.count("\n") == 1 and words in res.stderr
    manifest = tmp_path / "m.jsonl"
    manifest.write_text('{"file": "a.jpg"}\n')
    res = cli("ocr", manifest, "--det", checkpoints["det"], "--rec", checkpoints["rec"],
              "--out", tmp_path / "o")
    assert res.returncode == 2 and "no 'path' field" in res.stderr
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").iterdir())
