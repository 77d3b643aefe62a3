"""Benchmark, one process, one run: each model in every ptocr form against ONNX Runtime
(RapidOCR's ONNX files of the same official models) and Paddle Inference with MKLDNN on.

Models and inputs (one seeded random tensor each, the same for every runtime):
PP-OCRv4 mobile det 1x3x640x640, PP-OCRv4 mobile rec 8x3x48x320, v2.0 cls 8x3x48x192.
--threads CPU threads for every runtime. The torch forms and ONNX Runtime are timed
interleaved (one call of each in turn, --repeats rounds, median per form), so load from
other processes falls on all of them alike and the ratios stay meaningful on a busy machine;
Paddle runs in a child process (see paddle_in_child), before and after the torch rounds.
Each form's output is compared with the eager training form (max abs) so a fast wrong form
shows.

ptocr forms: eager (fuse=False, the training form), fused contiguous, fused as ptocr.load
gives it (channels_last where its backbone prefers it), torchscript (trace of the fused
form), torchscript + freeze + optimize_for_inference (a user's own step on that artifact),
torch.compile (default settings; --only compile-freezing and compile-max-autotune add
Inductor's freezing and mode="max-autotune-no-cudagraphs"), exported (torch.export .pt2 run
as a module), aoti (AOTInductor package, static shape) and ptocr's own ONNX export run by
ONNX Runtime. compile/export time and artifact size go beside them. Needs the bench extras:
onnxruntime, rapidocr-onnxruntime==1.4.4 (make bench installs them).
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
    return statistics.median(sample_ms(fn, x, repeats))


def sample_ms(fn, x, repeats):
    fn(x)
    fn(x)  # warm-up (compiled forms specialise on the first calls)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - start)
    return [t * 1000 for t in times]


def interleaved_ms(fns, x, repeats):
    """{name: median ms}: one call of each function in turn, ``repeats`` rounds."""
    for fn in fns.values():
        fn(x)
        fn(x)
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn(x)
            times[name].append((time.perf_counter() - start) * 1000)
    return {name: statistics.median(t) for name, t in times.items()}


def ort_session(path, threads):
    import onnxruntime as ort

    opt = ort.SessionOptions()
    opt.intra_op_num_threads, opt.inter_op_num_threads = threads, 1
    opt.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(str(path), opt, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return lambda x: sess.run(None, {name: x})[0]


def paddle_in_child(model_dir, x, threads, repeats):
    """([ms per call], output) of Paddle Inference MKLDNN, measured in a child process: in
    this process paddle's OpenMP runtime (its threads spin after each run) and torch's fight
    over the two cores and slow every torch form down by an order of magnitude."""
    with tempfile.TemporaryDirectory() as tmp:
        np.save(f"{tmp}/x.npy", x)
        subprocess.run([sys.executable, __file__, "--paddle-worker", str(model_dir),
                        f"{tmp}/x.npy", f"{tmp}/out.npz", "--threads", str(threads),
                        "--repeats", str(repeats)], check=True, capture_output=True)
        with np.load(f"{tmp}/out.npz") as data:
            return [float(v) for v in data["ms"]], data["out"]


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

    def wanted(name):
        return only is None or name in only

    x0 = torch.zeros(shape)
    plain = ptocr.load(ckpt, fuse=False)
    yield "eager (training form)", torch_fn(plain), None, None, ""
    fused = ptocr.load(ckpt)
    cl = fused.ptocr_fused["channels_last"]
    contiguous = ptocr.load(ckpt).to(memory_format=torch.contiguous_format)
    yield "fused, contiguous", torch_fn(contiguous), None, None, \
        (f"{fused.ptocr_fused['folded']} conv+BN, "
         f"{fused.ptocr_fused.get('affine_folded', 0)} conv+affine folded")
    if cl:
        yield "fused, channels_last (ptocr.load)", torch_fn(fused), None, None, \
            "ptocr.load's default form"
    else:
        cl_model = ptocr.load(ckpt).to(memory_format=torch.channels_last)
        yield "fused, channels_last", torch_fn(cl_model), None, None, "not load's default"
    for fmt, suffix in (("torchscript", ".pt"), ("exported", ".pt2"), ("aoti", ".pt2"),
                        ("onnx", ".onnx")):
        if not wanted(fmt):
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
        if fmt == "torchscript" and wanted("torchscript-ofi"):
            # what a user can do with the artifact: freeze, then oneDNN's inference passes
            started = time.perf_counter()
            with torch.no_grad():
                ofi = torch.jit.optimize_for_inference(
                    torch.jit.freeze(torch.jit.load(str(out)).eval()))
                ofi(x0)
            yield ("torchscript + freeze + optimize_for_inference", torch_fn(ofi),
                   time.perf_counter() - started, None, "not verified by ptocr: see max_abs")
    variants = [("compile", "torch.compile", {}, False),
                ("compile-freezing", "torch.compile, Inductor freezing", {}, True),
                ("compile-max-autotune", "torch.compile max-autotune-no-cudagraphs",
                 {"mode": "max-autotune-no-cudagraphs"}, False)]
    for key, name, kwargs, freezing in variants:
        if only is None and key != "compile" or only is not None and key not in only:
            continue
        import torch._inductor.config as inductor_config

        torch._dynamo.reset()
        compiled = torch.compile(ptocr.load(ckpt), **kwargs)
        started = time.perf_counter()
        inductor_config.freezing = freezing
        try:
            with torch.inference_mode():
                compiled(x0)
        finally:
            inductor_config.freezing = False
        note = ("first call compiles; ptocr's --engine compiled checks it against eager"
                if key == "compile" else "first call compiles; not verified by ptocr: see "
                "max_abs")
        yield name, torch_fn(compiled), time.perf_counter() - started, None, note


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--only", help="comma list of forms to build besides the eager ones "
                    "(torchscript,torchscript-ofi,exported,aoti,onnx,compile,"
                    "compile-freezing,compile-max-autotune); default all but the last two")
    ap.add_argument("--models", help="comma list of tables (default: the three)")
    ap.add_argument("--json", help="write the figures here")
    ap.add_argument("--paddle-worker", nargs=3, metavar=("MODEL_DIR", "X_NPY", "OUT_NPZ"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.paddle_worker:
        model_dir, x_path, out_path = args.paddle_worker
        x = np.load(x_path)
        run = paddle_mkldnn(model_dir, args.threads)
        np.savez(out_path, ms=sample_ms(run, x, args.repeats), out=run(x))
        return
    import torch

    torch.set_num_threads(args.threads)
    import rapidocr_onnxruntime

    rapid = Path(rapidocr_onnxruntime.__file__).parent / "models"
    only = set(args.only.split(",")) if args.only else None
    rows, summary = [], []
    ORT, PADDLE = "ONNX Runtime (RapidOCR's ONNX)", "Paddle Inference, MKLDNN on"
    with tempfile.TemporaryDirectory() as tmp:
        for arch, shape, onnx_name in CASES:
            if args.models and arch not in args.models.split(","):
                continue
            ckpt = Path(tmp) / f"{arch}.pth"
            subprocess.run([sys.executable, "-m", "ptocr", "convert", "--arch", arch,
                            "--paddle-dir", str(MODELS / arch), "--out", str(ckpt),
                            "--no-verify"], check=True, capture_output=True)
            x = np.random.RandomState(0).uniform(-1, 1, shape).astype(np.float32)
            built = {ORT: (ort_session(rapid / onnx_name, args.threads), None, None, "")}
            for name, run, secs, size, note in forms(ckpt, shape, tmp, only):
                built[name] = (run, secs, size, note)
                print(f"  built {arch} {name}" + (f" in {secs:.1f}s" if secs else ""),
                      flush=True)
            paddle_ms, paddle_out = paddle_in_child(MODELS / arch, x, args.threads,
                                                    args.repeats // 2 + 1)
            runs = {name: b[0] for name, b in built.items() if b[0] is not None}
            ms = interleaved_ms(runs, x, args.repeats)
            more, _ = paddle_in_child(MODELS / arch, x, args.threads, args.repeats // 2 + 1)
            timed = {ORT: (ms[ORT], runs[ORT](x), None, None, ""),
                     PADDLE: (statistics.median(paddle_ms + more), paddle_out, None, None,
                              "child process, before and after")}
            for name, (run, secs, size, note) in built.items():
                if name != ORT:
                    timed[name] = (ms.get(name), run(x) if run else None, secs, size, note)
            ref = timed["eager (training form)"][1]
            ort_ms = timed[ORT][0]
            print(f"\n{arch} {'x'.join(map(str, shape))}, {args.threads} threads, median of "
                  f"{args.repeats} interleaved rounds")
            print(f"  {'form':46} {'ms':>8} {'x ORT':>7} {'max_abs vs eager':>17} "
                  f"{'build s':>8} {'MB':>6}  note")
            for name, (ms_, out, secs, size, note) in timed.items():
                diff = float(np.abs(out.astype(np.float64) - ref).max()) if out is not None \
                    else None
                row = {"model": arch, "shape": shape, "form": name, "ms": ms_,
                       "ratio_vs_ort": ms_ / ort_ms if ms_ else None, "max_abs_vs_eager": diff,
                       "build_seconds": secs, "size_bytes": size, "note": note}
                rows.append(row)
                print(f"  {name:46} {ms_ if ms_ else float('nan'):8.1f} "
                      f"{(ms_ / ort_ms) if ms_ else float('nan'):7.2f} "
                      f"{diff if diff is not None else float('nan'):17.2g} "
                      f"{secs if secs else float('nan'):8.1f} "
                      f"{(size / 1e6) if size else float('nan'):6.1f}  {note}", flush=True)
            # the best ptocr form among the verified ones (ptocr's own exports and eager)
            ours = [r for r in rows if r["model"] == arch and r["ms"] and r["form"] not in
                    (ORT, PADDLE) and "not verified" not in r["note"]
                    and not r["form"].startswith("onnx")]
            best = min(ours, key=lambda r: r["ms"])
            summary.append((arch, shape, timed["eager (training form)"][0], best, ort_ms,
                            timed[PADDLE][0]))
    print(f"\nSummary ({args.threads} threads): best verified ptocr form vs the runtimes")
    print(f"  {'model / input':40} {'eager':>8} {'best ptocr (form)':>40} {'ORT':>8} "
          f"{'Paddle':>8} {'best/ORT':>8}")
    for arch, shape, eager, best, ort_ms, paddle in summary:
        label = f"{arch} {'x'.join(map(str, shape))}"
        print(f"  {label:40} {eager:8.1f} {best['ms']:8.1f} ({best['form'][:29]:>29}) "
              f"{ort_ms:8.1f} {paddle:8.1f} {best['ms'] / ort_ms:8.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
