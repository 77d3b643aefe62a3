"""Fuzz the Paddle readers: mutated real files must give a parsed result or ptocr's own error,
never another exception, a hang or a memory blow-up.

    python scripts/fuzz.py [--cases 10000] [--seed 0] [READER ...]

Readers: pdparams, pdiparams, pdmodel, json, info. Seeds are the real official models in
.cache/models (fetched by `make weights`); a .pdparams seed is pickled from real weights the way
paddle.save does (numpy arrays in a dict). `make fuzz` runs 10,000 cases per reader; the test
suite runs a short version (tests/test_fuzz_readers.py).
"""

import argparse
import pickle
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / ".cache" / "models"


def readers():
    from ptocr.converter.formats import parse_info, parse_pdparams
    from ptocr.converter.formats.program import parse_pdmodel, parse_pir
    from ptocr.converter.formats.tensor_stream import read_tensors

    return {"pdparams": parse_pdparams, "pdiparams": read_tensors, "pdmodel": parse_pdmodel,
            "json": parse_pir, "info": parse_info}


def seeds(models=MODELS):
    cls = models / "ch_ppocr_mobile_v2.0_cls"
    arrays = {f"backbone.t{i}": np.arange(i * 7, dtype=np.float32).reshape(i, 7)
              for i in range(1, 6)}
    return {
        "pdparams": [pickle.dumps(arrays, protocol=p) for p in (2, 4)],
        "pdiparams": [(cls / "inference.pdiparams").read_bytes()[:60000]],
        "pdmodel": [(cls / "inference.pdmodel").read_bytes()],
        "json": [(models / "PP-OCRv5_mobile_det" / "inference.json").read_bytes()],
        "info": [(cls / "inference.pdiparams.info").read_bytes()],
    }


def mutate(data, rng):
    """One random corruption: truncation, bit flips, huge/negative sizes, splices, nesting."""
    data = bytearray(data)
    kind = rng.randint(7)
    if kind == 0 and data:
        return bytes(data[: rng.randint(len(data))])
    if kind == 1 and data:
        for _ in range(rng.randint(1, 9)):
            pos = rng.randint(len(data))
            data[pos] ^= 1 << rng.randint(8)
        return bytes(data)
    if kind == 2 and len(data) > 8:
        pos = rng.randint(len(data) - 8)
        value = [2**63 - 1, 2**32 - 1, 2**31, 2**64 - 1, 0][rng.randint(5)]
        data[pos:pos + 8] = value.to_bytes(8, "little")
        return bytes(data)
    if kind == 3 and data:
        a, b = sorted(rng.randint(len(data), size=2))
        return bytes(data[:a] + data[b:] + data[a:b])
    if kind == 4:
        return bytes(rng.randint(256, size=rng.randint(1, 512)).astype(np.uint8))
    if kind == 5:  # deep nesting in each syntax
        depth = [100, 10000, 200000][rng.randint(3)]
        return [b"(" * depth, b"]" * depth, b"[" * depth, b"\x80\x02" + b"]" * depth][rng.randint(4)]
    if data:
        pos = rng.randint(len(data))
        return bytes(data[:pos] + bytes(rng.randint(256, size=16).astype(np.uint8)) + data[pos:])
    return bytes(data)


def run_case(reader, data):
    """Parse; return None when the outcome is allowed, else the unexpected exception."""
    from ptocr.errors import PtocrError

    try:
        reader(data)
    except PtocrError as exc:
        if not str(exc):
            return AssertionError("PtocrError without a message")
    except Exception as exc:  # anything else is a reader bug
        return exc
    return None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("names", nargs="*")
    args = parser.parse_args(argv)
    # a memory blow-up becomes a MemoryError (a failure) instead of swapping the machine
    resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30))
    rng = np.random.RandomState(args.seed)
    all_readers, all_seeds = readers(), seeds()
    failures = 0
    for name in args.names or list(all_readers):
        start, bad = time.perf_counter(), []
        for i in range(args.cases):
            seed = all_seeds[name][i % len(all_seeds[name])]
            data = mutate(seed, rng)
            err = run_case(all_readers[name], data)
            if err is not None:
                bad.append((i, type(err).__name__, str(err)[:200]))
        failures += len(bad)
        print(f"{name:10} {args.cases} cases, {len(bad)} unexpected, "
              f"{time.perf_counter() - start:.1f}s")
        for case in bad[:5]:
            print("   ", case)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
