"""Benchmark, one process, one run: each model in every ptocr form against ONNX Runtime
(RapidOCR's ONNX files of the same official models) and Paddle Inference with MKLDNN on.

Models and inputs (one seeded random tensor each, the same for every runtime):
PP-OCRv4 mobile det 1x3x640x640, PP-OCRv4 mobile rec 8x3x48x320, v2.0 cls 8x3x48x192.
Median of --repeats calls after warm-up, --threads CPU threads for every runtime. Each
form's output is compared with the eager training form (max abs) so a fast wrong form shows.

ptocr forms: eager (fuse=False, the training form), fused (ptocr.load's default), fused +
channels_last, torchscript (trace of the fused form), torch.compile (default settings),
exported (torch.export .pt2 run as a module), aoti (AOTInductor package, static shape) and
ptocr's own ONNX export run by ONNX Runtime. compile/export time and artifact size go
beside them. Needs the bench extras: onnxruntime, rapidocr-onnxruntime==1.4.4 (make bench
installs them).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / ".cache" / "models"
CASES = [  # (table, input shape, RapidOCR's ONNX file)
    ("PP-OCRv4_mobile_det", [1, 3, 640, 640], "ch_PP-OCRv4_det_infer.onnx"),
    ("PP-OCRv4_mobile_rec", [8, 3, 48, 320], "ch_PP-OCRv4_rec_infer.onnx"),
    ("ch_ppocr_mobile_v2.0_cls", [8, 3, 48, 192], "ch_ppocr_mobile_v2.0_cls_infer.onnx"),
]


def median_ms(fn, x, repeats):
    fn(x)
    fn(x)  # warm-up (compiled forms specialise on the first calls)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def ort_session(path, threads):
    import onnxruntime as ort

    opt = ort.SessionOptions()
    opt.intra_op_num_threads, opt.inter_op_num_threads = threads, 1
    opt.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(str(path), opt, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return lambda x: sess.run(None, {name: x})[0]


def paddle_in_child(model_dir, x, threads, repeats):
    """(median ms, output) of Paddle Inference MKLDNN, measured in a child process: in this
    process paddle's OpenMP runtime (its threads spin after each run) and torch's fight over
    the two cores and slow every torch form down by an order of magnitude."""
    with tempfile.TemporaryDirectory() as tmp:
        np.save(f"{tmp}/x.npy", x)
        subprocess.run([sys.executable, __file__, "--paddle-worker", str(model_dir),
                        f"{tmp}/x.npy", f"{tmp}/out.npz", "--threads", str(threads),
                        "--repeats", str(repeats)], check=True, capture_output=True)
        with np.load(f"{tmp}/out.npz") as data:
            return float(data["ms"]), data["out"]


def paddle_mkldnn(model_dir, threads):
    """Paddle Inference on CPU with MKLDNN (oneDNN) on. These three official models are
    Paddle 2.x programs (.pdmodel), which paddle 3.3.1 runs with MKLDNN; PIR programs
    (inference.json, e.g. PP-OCRv5) fail there at their first oneDNN kernel
    ("ConvertPirAttribute2RuntimeAttribute not support
    [pir::ArrayAttribute<pir::DoubleAttribute>]", onednn_instruction.cc)."""
    os.environ.setdefault("GLOG_minloglevel", "2")
    import paddle.inference as pi

    files = {p.name for p in Path(model_dir).iterdir()}
    program = "inference.json" if "inference.json" in files else "inference.pdmodel"
    config = pi.Config(str(Path(model_dir) / program), str(Path(model_dir) / "inference.pdiparams"))
    config.disable_gpu()
    config.enable_mkldnn()
    config.set_cpu_math_library_num_threads(threads)
    config.disable_glog_info()
    pred = pi.create_predictor(config)
    handle = pred.get_input_handle(pred.get_input_names()[0])
    out = pred.get_output_handle(pred.get_output_names()[0])

    def run(x):
        handle.reshape(list(x.shape))
        handle.copy_from_cpu(x)
        pred.run()
        return out.copy_to_cpu()
    return run


def torch_fn(module):
    import torch

    def run(x):
        with torch.inference_mode():
            out = module(torch.from_numpy(x))
        out = out[0] if isinstance(out, (list, tuple)) else out
        return out.numpy()
    return run


def forms(ckpt, shape, tmp, only=None):
    """(name, run function or None, build seconds, artifact bytes, note) per ptocr form."""
    import torch

    import ptocr
    from ptocr.converter.export import export

    x0 = torch.zeros(shape)
    plain = ptocr.load(ckpt, fuse=False)
    yield "eager (training form)", torch_fn(plain), None, None, ""
    fused = ptocr.load(ckpt)
    yield "fused", torch_fn(fused), None, None, f"{fused.ptocr_fused['folded']} conv+BN folded"
    cl = ptocr.load(ckpt)
    cl.to(memory_format=torch.channels_last)
    yield "fused + channels_last", torch_fn(cl), None, None, ""
    for fmt, suffix in (("torchscript", ".pt"), ("exported", ".pt2"), ("aoti", ".pt2"),
                        ("onnx", ".onnx")):
        if only and fmt not in only:
            continue
        out = Path(tmp) / f"{Path(ckpt).stem}-{fmt}{suffix}"
        started = time.perf_counter()
        try:
            record = export(ckpt, fmt, out, shape=shape, overwrite=True)
        except Exception as exc:
            yield fmt, None, time.perf_counter() - started, None, f"failed: {exc}"[:150]
            continue
        if fmt == "onnx":
            run = ort_session(out, torch.get_num_threads())
            name = "onnx (ptocr export) on ORT"
        else:
            run, name = torch_fn(ptocr.load(out)), fmt
        yield (name, run, record["export_seconds"], record["size_bytes"],
               "verified: " + record["parity"]["summary"].split(",")[0])
    if not only or "compile" in only:
        compiled = torch.compile(ptocr.load(ckpt))
        started = time.perf_counter()
        with torch.inference_mode():
            compiled(x0)
        yield ("torch.compile", torch_fn(compiled), time.perf_counter() - started, None,
               "first call compiles")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--only", help="comma list of forms to build (torchscript,exported,aoti,"
                    "onnx,compile); default all")
    ap.add_argument("--models", help="comma list of tables (default: the three)")
    ap.add_argument("--json", help="write the figures here")
    ap.add_argument("--paddle-worker", nargs=3, metavar=("MODEL_DIR", "X_NPY", "OUT_NPZ"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.paddle_worker:
        model_dir, x_path, out_path = args.paddle_worker
        x = np.load(x_path)
        run = paddle_mkldnn(model_dir, args.threads)
        np.savez(out_path, ms=median_ms(run, x, args.repeats), out=run(x))
        return
    import torch

    torch.set_num_threads(args.threads)
    import rapidocr_onnxruntime

    rapid = Path(rapidocr_onnxruntime.__file__).parent / "models"
    only = set(args.only.split(",")) if args.only else None
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for arch, shape, onnx_name in CASES:
            if args.models and arch not in args.models.split(","):
                continue
            ckpt = Path(tmp) / f"{arch}.pth"
            subprocess.run([sys.executable, "-m", "ptocr", "convert", "--arch", arch,
                            "--paddle-dir", str(MODELS / arch), "--out", str(ckpt),
                            "--no-verify"], check=True, capture_output=True)
            x = np.random.RandomState(0).uniform(-1, 1, shape).astype(np.float32)
            ort_run = ort_session(rapid / onnx_name, args.threads)
            timed = {"ONNX Runtime (RapidOCR's ONNX)": (median_ms(ort_run, x, args.repeats),
                                                        ort_run(x), None, None, "")}
            ms, out = paddle_in_child(MODELS / arch, x, args.threads, args.repeats)
            timed["Paddle Inference, MKLDNN on"] = (ms, out, None, None, "child process")
            for name, run, secs, size, note in forms(ckpt, shape, tmp, only):
                if run is None:
                    timed[name] = (None, None, secs, size, note)
                else:
                    timed[name] = (median_ms(run, x, args.repeats), run(x), secs, size, note)
                print(f"  measured {arch} {name}: {timed[name][0]} ms", flush=True)
            ref = timed["eager (training form)"][1]
            ort_ms = timed["ONNX Runtime (RapidOCR's ONNX)"][0]
            print(f"\n{arch} {'x'.join(map(str, shape))}, {args.threads} threads, median of "
                  f"{args.repeats}")
            print(f"  {'form':34} {'ms':>8} {'x ORT':>7} {'max_abs vs eager':>17} "
                  f"{'build s':>8} {'MB':>6}  note")
            for name, (ms, out, secs, size, note) in timed.items():
                diff = float(np.abs(out.astype(np.float64) - ref).max()) if out is not None \
                    else None
                row = {"model": arch, "shape": shape, "form": name, "ms": ms,
                       "ratio_vs_ort": ms / ort_ms if ms else None, "max_abs_vs_eager": diff,
                       "build_seconds": secs, "size_bytes": size, "note": note}
                rows.append(row)
                print(f"  {name:34} {ms if ms else float('nan'):8.1f} "
                      f"{(ms / ort_ms) if ms else float('nan'):7.2f} "
                      f"{diff if diff is not None else float('nan'):17.2g} "
                      f"{secs if secs else float('nan'):8.1f} "
                      f"{(size / 1e6) if size else float('nan'):6.1f}  {note}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
