"""fp32 fidelity: how far each framework's float32 output is from the float64 evaluation of
the same network, per model (a figure, not a test).

    python scripts/fidelity.py [--models .cache/models] [--extra ARCH=DIR[@SHAPES] ...]
                               [--out FILE.md]

For every input of the table (seeded random tensors and real images) the verifier evaluates
the Paddle program and the torch model in float32 and in float64; Paddle's fp32 error is
max|paddle32 - paddle64|, ptocr's max|torch32 - torch64|, each the maximum over the inputs.
ratio = ptocr / Paddle (<= 1: ptocr's fp32 is no less accurate than Paddle's).

The torch side is measured in the form ``ptocr.load`` returns by default: with conv+BN
folded (models/fuse.py) where this ptocr has it, else the converted (training) form; the
"form" column says which.

``--extra ARCH=DIR`` adds an export with its table's inputs; ``@1x3x320x320,2x3x160x240``
replaces them with random tensors at those shapes only (a server det at the table's real
image sizes takes minutes in float64). `make fidelity` adds the deep server networks at
realistic random weights (tests/paddle_deep_rec.py: PP-OCRv5_server_rec's PPHGNetV2_B4 +
MultiHead as PIR and 2.x, PP-OCRv5_server_det as PIR).
"""

import argparse
import copy
import sys
import time
from dataclasses import replace
from pathlib import Path

REAL = ["PP-OCRv4_mobile_det", "PP-OCRv5_mobile_det", "PP-OCRv4_mobile_rec",
        "PP-OCRv5_mobile_rec", "ch_ppocr_mobile_v2.0_cls"]


def default_form(model, example):
    """(model in the form ptocr.load gives, its name)."""
    import torch

    try:
        from ptocr.models.fuse import fuse
    except ImportError:
        return model, "converted"
    return fuse(copy.deepcopy(model), (torch.from_numpy(example),)), "conv+BN folded"


def measure(arch, path, shapes=None):
    import numpy as np

    from ptocr.converter import formats
    from ptocr.converter.convert import convert
    from ptocr.converter.float64 import torch_float64, torch_outputs64
    from ptocr.converter.mapping import find_arch
    from ptocr.converter.verify import make_inputs, torch_outputs, verify

    weights = formats.read(path)
    spec = find_arch(arch)
    if shapes:
        spec = replace(spec, inputs={"shapes": shapes})
    conv = convert(None, weights=weights, spec=spec)
    started = time.perf_counter()
    report = verify(weights, conv.model, spec, images=not shapes)
    rows = [r for r in report["results"] if "paddle_fp32_error" in r]
    if not rows:
        return {"arch": arch, "error": report.get("float64_unavailable", "no float64 figures")}
    paddle_err = max(r["paddle_fp32_error"] for r in rows)
    inputs = make_inputs(spec, images=not shapes)
    model, form = default_form(conv.model.eval(), inputs[0][1])
    torch_err = 0.0
    if form == "converted":
        torch_err = max(r["torch_fp32_error"] for r in rows)
    else:
        model64 = torch_float64(conv.model)
        for _, x in inputs:
            for out, out64 in zip(torch_outputs(model, x), torch_outputs64(model64, x)):
                torch_err = max(torch_err, float(np.abs(out.astype(np.float64) - out64).max()))
    return {"arch": arch, "program": weights.format, "form": form, "inputs": len(inputs),
            "paddle_fp32_vs_f64": paddle_err, "ptocr_fp32_vs_f64": torch_err,
            "ratio": torch_err / paddle_err if paddle_err else float("nan"),
            "float64_diff": max(r["float64"]["max_abs"] for r in rows),
            "passed": report["passed"], "seconds": round(time.perf_counter() - started, 1)}


def table(rows):
    lines = ["| model | program | torch form | inputs | Paddle fp32 vs f64 | ptocr fp32 vs f64 "
             "| ratio | Paddle f64 vs ptocr f64 |", "| --- | --- | --- | --- | --- | --- | --- "
             "| --- |"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['arch']} | | | | {r['error']} | | | |")
            continue
        lines.append(f"| {r['arch']} | {r['program']} | {r['form']} | {r['inputs']} | "
                     f"{r['paddle_fp32_vs_f64']:.2e} | {r['ptocr_fp32_vs_f64']:.2e} | "
                     f"{r['ratio']:.2f} | {r['float64_diff']:.1e} |")
    return "\n".join(lines)


def parse_extra(text):
    arch, rest = text.split("=", 1)
    path, _, shapes = rest.partition("@")
    shapes = [[int(v) for v in s.split("x")] for s in shapes.split(",")] if shapes else None
    return arch, path, shapes


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=".cache/models")
    ap.add_argument("--extra", action="append", default=[],
                    help="ARCH=DIR[@NxCxHxW,...]: another export to measure (a server network)")
    ap.add_argument("--out", help="also write the markdown table here")
    args = ap.parse_args(argv)
    work = [(a, Path(args.models) / a, None) for a in REAL if (Path(args.models) / a).is_dir()]
    work += [parse_extra(e) for e in args.extra]
    rows = []
    for arch, path, shapes in work:
        rows.append(measure(arch, path, shapes))
        print(rows[-1], file=sys.stderr, flush=True)
    text = table(rows)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
