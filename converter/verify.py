"""Parity verification: the Paddle inference program and the torch model on the same tensors.

The Paddle side is Paddle Inference running the exported program on CPU, the artifact users
deploy; no PaddleOCR source is needed. Paddle is imported only here, and only when asked.
"""

import copy
import importlib.util
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from ..errors import PtocrError

DET_THRESH = 0.3  # DB binarisation threshold used for task-level agreement


def paddle_unavailable_reason():
    """None when Paddle Inference imports; else why not, in one line. A paddle that is
    installed but breaks on import (a broken wheel, a missing system library, an ABI
    mismatch) counts as absent, with its error quoted."""
    if "paddle" not in sys.modules or sys.modules["paddle"] is None:
        try:
            installed = importlib.util.find_spec("paddle") is not None
        except (ImportError, ValueError):
            installed = False
        if not installed or ("paddle" in sys.modules and sys.modules["paddle"] is None):
            return "paddle is not installed"
    try:
        import_paddle_inference()
    except Exception as exc:  # any failure of a third-party import: report, do not crash
        first = (str(exc).strip().splitlines() or [""])[0]
        return (f"paddle is installed but cannot be imported ({type(exc).__name__}"
                + (f": {first}" if first else "") + ")")
    return None


def paddle_available():
    return paddle_unavailable_reason() is None


def testdata_dir():
    """Real images for verification: $PTOCR_TESTDATA, else ../shared/testdata of the repo."""
    env = os.environ.get("PTOCR_TESTDATA")
    candidates = [Path(env)] if env else []
    root = Path(__file__).resolve().parent.parent
    candidates += [root.parent / "shared" / "testdata", Path.cwd().parent / "shared" / "testdata"]
    for c in candidates:
        if c.is_dir():
            return c
    return None


def import_paddle_inference():
    os.environ.setdefault("GLOG_minloglevel", "2")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # paddle warns about compilers it will not use here
        import paddle.inference as pi
    return pi


class PaddleProgram:
    """A Paddle inference program run by Paddle Inference on CPU."""

    def __init__(self, weights):
        pi = import_paddle_inference()

        program, params = [str(p) for p in weights.files[:2]]
        config = pi.Config(program, params)
        config.disable_gpu()
        config.disable_mkldnn()  # PIR programs fail with MKLDNN here; keep both alike
        config.disable_glog_info()
        config.set_cpu_math_library_num_threads(torch.get_num_threads())
        self.predictor = pi.create_predictor(config)

    def __call__(self, x):
        pred = self.predictor
        handle = pred.get_input_handle(pred.get_input_names()[0])
        handle.reshape(list(x.shape))
        handle.copy_from_cpu(np.ascontiguousarray(x, dtype=np.float32))
        pred.run()
        return [pred.get_output_handle(n).copy_to_cpu() for n in pred.get_output_names()]


class PaddleModule(torch.nn.Module):
    """A Paddle inference program standing in for a torch model (first output), so the OCR
    pipeline can run Paddle's models as a reference or a benchmark baseline."""

    def __init__(self, path, task, meta=None):
        super().__init__()
        from . import formats

        self.program = PaddleProgram(formats.read(path))
        self.ptocr_meta = meta or {"extra": {"task": task}}

    def forward(self, x):
        return torch.from_numpy(self.program(x.numpy())[0])


def torch_outputs(model, x):
    with torch.inference_mode():
        out = model(torch.from_numpy(x))
    if isinstance(out, dict):
        out = list(out.values())
    if not isinstance(out, (list, tuple)):
        out = [out]
    return [o.detach().cpu().numpy() for o in out]


def make_inputs(spec, images=True):
    """[(label, array)]: seeded random tensors at the table's shapes, then real images
    preprocessed by the table's own processing (PaddleOCR's PreProcess schema)."""
    inputs = []
    rng = np.random.RandomState(0)
    # `random: false`: the shapes only size the example input of program-order alignment
    for shape in spec.inputs.get("shapes", []) if spec.inputs.get("random", True) else []:
        inputs.append((f"random{list(shape)}", rng.uniform(-1, 1, shape).astype(np.float32)))
    data = testdata_dir() if images else None
    if data and spec.inputs.get("images") and (spec.processing or {}).get("PreProcess"):
        from ..pipeline import model_inputs, read_image

        for rel in spec.inputs["images"]:
            try:
                x = model_inputs(spec.processing, read_image(data / rel))[0]
            except ValueError as exc:
                raise PtocrError(f"{spec.name}: cannot prepare {rel}: {exc}") from None
            inputs.append((f"image {rel}", x))
    return inputs


def compare(ref, out, task, tolerance):
    """Figures for one output pair and whether they pass."""
    if ref.shape != out.shape:
        return {"shape_paddle": list(ref.shape), "shape_torch": list(out.shape), "pass": False}
    ref64, out64 = ref.astype(np.float64).ravel(), out.astype(np.float64).ravel()
    diff = np.abs(ref64 - out64)
    denom = np.linalg.norm(ref64) * np.linalg.norm(out64)
    fig = {
        "shape": list(ref.shape),
        "max_abs": float(diff.max()) if diff.size else 0.0,
        "mean_abs": float(diff.mean()) if diff.size else 0.0,
        "max_rel": float((diff / np.maximum(np.abs(ref64), 1e-6)).max()) if diff.size else 0.0,
        "cosine": float(ref64 @ out64 / denom) if denom > 0 else 1.0,
    }
    ok = fig["max_abs"] <= tolerance.get("max_abs", 1e-4)
    if task == "det":
        agree = float(((ref > DET_THRESH) == (out > DET_THRESH)).mean())
        fig["binary_agreement"] = agree
        ok = ok and agree >= tolerance.get("binary_agreement", 0.999)
    elif task in ("rec", "cls") and ref.ndim >= 2:
        fig["argmax_equal"] = bool((ref.argmax(-1) == out.argmax(-1)).all())
        ok = ok and fig["argmax_equal"]
    fig["pass"] = bool(ok)
    return fig


def _fails_on_rounding_only(fig, tolerance):
    """Failed on max_abs alone, with every task-level check agreeing."""
    if fig["pass"] or "max_abs" not in fig:
        return False
    return fig.get("binary_agreement", 1.0) >= tolerance.get("binary_agreement", 0.999) and \
        fig.get("argmax_equal", True)


def _judge_exact(fig, ref, exact, tolerance):
    """Second opinion for an fp32 difference above tolerance: the float64 evaluation of the
    torch model is the exact function it defines. When Paddle's fp32 output is within
    tolerance of that, the two networks agree and the residual is fp32 rounding (on real
    images Paddle's own fp32 error vs float64 is ~1e-4 on the DB map)."""
    fig["max_abs_vs_exact"] = float(np.abs(ref.astype(np.float64) - exact).max())
    if fig["max_abs_vs_exact"] <= tolerance.get("max_abs", 1e-4):
        fig["pass"] = True
        fig["passed_by"] = "exact (float64) torch evaluation"


def verify(weights, model, spec, images=True):
    """Run both sides on every input; returns the report dict (report['passed'])."""
    if weights.program is None:
        raise PtocrError("parity needs the Paddle inference program (.pdmodel/.json); for a "
                         "training checkpoint pass --reference with an inference export")
    reason = paddle_unavailable_reason()
    if reason:
        raise PtocrError(f"parity cannot be verified: {reason}")
    started = time.perf_counter()
    paddle_prog = PaddleProgram(weights)
    model.eval()
    rows = []
    exact_model = None
    for label, x in make_inputs(spec, images):
        ref_outs = paddle_prog(x)
        outs = torch_outputs(model, x)
        if len(ref_outs) != len(outs):
            rows.append({"input": label, "output": 0, "pass": False,
                         "error": f"Paddle returns {len(ref_outs)} outputs, torch {len(outs)}"})
            continue
        figures = [compare(ref, out, spec.task, spec.tolerance) for ref, out in zip(ref_outs, outs)]
        if any(_fails_on_rounding_only(f, spec.tolerance) for f in figures):
            exact_model = exact_model or copy.deepcopy(model).double()
            exact = torch_outputs(exact_model, x.astype(np.float64))
            for fig, ref, ex in zip(figures, ref_outs, exact):
                _judge_exact(fig, ref, ex, spec.tolerance)
        for i, fig in enumerate(figures):
            rows.append({"input": label, "input_shape": list(x.shape), "output": i, **fig})
    report = {
        "arch": spec.name,
        "passed": all(r["pass"] for r in rows) and bool(rows),
        "tolerance": spec.tolerance,
        "results": rows,
        "seconds": round(time.perf_counter() - started, 3),
        "versions": versions(),
        "program_format": weights.format,
    }
    if not report["passed"] and weights.format == "pdmodel" and weights.var_names:
        probe = make_inputs(spec, False) or make_inputs(spec)  # tables with images only
        report["first_divergence"] = localise(weights, model, spec, probe[0][1])
    return report


def versions():
    import ptocr

    out = {"torch": str(torch.__version__), "ptocr": ptocr.__version__}
    try:
        from importlib.metadata import version

        out["paddle"] = version("paddlepaddle")
    except Exception:
        out["paddle"] = None
    return out


def summary(report):
    """The worst figures of a report in one line."""
    rows = [r for r in report["results"] if "max_abs" in r]
    worst = max(rows, key=lambda r: r["max_abs"]) if rows else None
    if worst is None:
        return "no comparable outputs"
    return (f"worst max_abs {worst['max_abs']:.3g} on {worst['input']} (tolerance "
            f"{report['tolerance'].get('max_abs', 1e-4):g}), min cosine "
            f"{min(r['cosine'] for r in rows):.6f}")


def format_table(report):
    lines = [f"{'input':34} {'out':>3} {'max_abs':>10} {'mean_abs':>10} {'max_rel':>10} "
             f"{'cosine':>10} {'task':>9}  result"]
    for r in report["results"]:
        if "max_abs" not in r:
            lines.append(f"{r['input'][:34]:34} {r['output']:>3} "
                         f"{r.get('error') or 'shape mismatch'}  FAIL")
            continue
        task = r.get("binary_agreement", r.get("argmax_equal", ""))
        task = f"{task:.5f}" if isinstance(task, float) else str(task)
        result = "ok" if r["pass"] else "FAIL"
        if "max_abs_vs_exact" in r:
            result += f" (vs float64 torch: {r['max_abs_vs_exact']:.3g})"
        lines.append(f"{r['input'][:34]:34} {r['output']:>3} {r['max_abs']:10.3g} "
                     f"{r['mean_abs']:10.3g} {r['max_rel']:10.3g} {r['cosine']:10.6f} "
                     f"{task:>9}  {result}")
    div = report.get("first_divergence")
    if div:
        lines.append(f"first diverging module: {div['module']} ({div['type']}), paddle var "
                     f"{div['paddle_var']}: max_abs {div['max_abs']:.3g}")
    lines.append(f"parity {'PASSED' if report['passed'] else 'FAILED'}: {summary(report)}; "
                 f"{report['seconds']:.2f}s")
    return "\n".join(lines)


def localise(weights, model, spec, x):
    """Name the first torch module (in forward order) whose output differs from Paddle's.

    Each parameterised torch module is matched to the last program op that consumes one of
    its parameters; that op's output is the module's output in Paddle. The program is run
    with the static executor so every intermediate variable can be fetched.
    """
    from .mapping import _rename, torch_use_order

    var_of = {}
    for structured, var in weights.var_names.items():
        var_of[_rename(structured, spec.renames)] = var
    consumers = {}  # param var -> indices of ops using it
    ops = weights.program.ops
    for i, op in enumerate(ops):
        for _, names in op.inputs:
            for n in names:
                consumers.setdefault(n, []).append(i)
    module_out = {}
    for tname, owner in torch_use_order(model, torch.from_numpy(x)):
        mod_name = tname.rsplit(".", 1)[0]
        var = var_of.get(tname)
        if var in consumers:
            last = max(consumers[var])
            module_out[mod_name] = max(module_out.get(mod_name, -1), last)
    fetch = {}
    for mod_name, op_index in module_out.items():
        op = ops[op_index]
        outs = dict(op.outputs)
        name = (outs.get("Y") or outs.get("Out") or outs.get("Output") or
                next(iter(outs.values())))[0]
        fetch[mod_name] = name
    paddle_vals = _run_static(weights, x, list(fetch.values()))
    captured = {}
    hooks = []
    modules = dict(model.named_modules())

    def capture(name):
        def hook(_module, _inputs, output):
            captured.setdefault(name, output.detach().numpy())  # returns None: output kept

        return hook

    for mod_name in fetch:
        hooks.append(modules[mod_name].register_forward_hook(capture(mod_name)))
    try:
        torch_outputs(model, x)
    finally:
        for h in hooks:
            h.remove()
    tol = spec.tolerance.get("max_abs", 1e-4)
    order = [n for n in dict.fromkeys(t.rsplit(".", 1)[0] for t, _ in
                                      torch_use_order(model, torch.from_numpy(x))) if n in fetch]
    for mod_name in order:
        ref, out = paddle_vals[fetch[mod_name]], captured.get(mod_name)
        if out is None or ref.shape != out.shape:
            continue
        scale = max(1.0, float(np.abs(ref).max()))
        diff = float(np.abs(ref - out).max())
        if diff > tol * scale:
            return {"module": mod_name, "type": type(modules[mod_name]).__name__,
                    "paddle_var": fetch[mod_name], "max_abs": diff}
    return None


def _run_static(weights, x, fetch_names):
    """Intermediate variables of the 2.x program for input x (see static_fetch)."""
    import subprocess
    import sys
    import tempfile

    prefix = str(weights.files[0])[: -len(".pdmodel")]
    with tempfile.TemporaryDirectory(prefix="ptocr-localise-") as tmp:
        np.save(f"{tmp}/x.npy", x)
        res = subprocess.run([sys.executable, "-m", "ptocr.converter.static_fetch", prefix,
                              f"{tmp}/x.npy", f"{tmp}/out.npz", *fetch_names],
                             capture_output=True, text=True)
        if res.returncode != 0:
            tail = (res.stderr.strip().splitlines() or ["no output"])[-1]
            raise PtocrError(f"could not run the Paddle program to localise: {tail}")
        with np.load(f"{tmp}/out.npz") as data:
            return {n: data[f"v{i}"] for i, n in enumerate(fetch_names)}
