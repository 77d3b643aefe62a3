"""fp32 fidelity: how far each framework's float32 output is from the float64 evaluation of
the same network, per model (a figure, not a test).

    python scripts/fidelity.py [--models .cache/models] [--extra ARCH=DIR ...] [--out FILE.md]

For every input of the table (seeded random tensors and real images) the verifier evaluates
the Paddle program and the torch model in float32 and in float64; Paddle's fp32 error is
max|paddle32 - paddle64|, ptocr's max|torch32 - torch64|, each the maximum over the inputs.
ratio = ptocr / Paddle (<= 1: ptocr's fp32 is no less accurate than Paddle's).
"""

import argparse
import sys
import time
from pathlib import Path

REAL = ["PP-OCRv4_mobile_det", "PP-OCRv5_mobile_det", "PP-OCRv4_mobile_rec",
        "PP-OCRv5_mobile_rec", "ch_ppocr_mobile_v2.0_cls"]


def measure(arch, path):
    from ptocr.converter import formats
    from ptocr.converter.convert import convert
    from ptocr.converter.mapping import find_arch
    from ptocr.converter.verify import verify

    weights = formats.read(path)
    spec = find_arch(arch)
    conv = convert(None, weights=weights, spec=spec)
    started = time.perf_counter()
    report = verify(weights, conv.model, spec)
    rows = [r for r in report["results"] if "paddle_fp32_error" in r]
    if not rows:
        return {"arch": arch, "error": report.get("float64_unavailable", "no float64 figures")}
    paddle_err = max(r["paddle_fp32_error"] for r in rows)
    torch_err = max(r["torch_fp32_error"] for r in rows)
    return {"arch": arch, "inputs": len(rows), "paddle_fp32_vs_f64": paddle_err,
            "ptocr_fp32_vs_f64": torch_err, "ratio": torch_err / paddle_err if paddle_err else
            float("nan"), "float64_diff": max(r["float64"]["max_abs"] for r in rows),
            "passed": report["passed"], "seconds": round(time.perf_counter() - started, 1)}


def table(rows):
    lines = ["| model | inputs | Paddle fp32 vs f64 | ptocr fp32 vs f64 | ratio | Paddle f64 vs "
             "ptocr f64 |", "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['arch']} | | {r['error']} | | | |")
            continue
        lines.append(f"| {r['arch']} | {r['inputs']} | {r['paddle_fp32_vs_f64']:.2e} | "
                     f"{r['ptocr_fp32_vs_f64']:.2e} | {r['ratio']:.2f} | "
                     f"{r['float64_diff']:.1e} |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=".cache/models")
    ap.add_argument("--extra", action="append", default=[],
                    help="ARCH=DIR: another export to measure (e.g. a server network)")
    ap.add_argument("--out", help="also write the markdown table here")
    args = ap.parse_args(argv)
    work = [(a, Path(args.models) / a) for a in REAL if (Path(args.models) / a).is_dir()]
    work += [tuple(e.split("=", 1)) for e in args.extra]
    rows = []
    for arch, path in work:
        rows.append(measure(arch, path))
        print(rows[-1], file=sys.stderr, flush=True)
    text = table(rows)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
