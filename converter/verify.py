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

    def __init__(self, weights, mkldnn=False):
        pi = import_paddle_inference()

        program, params = [str(p) for p in weights.files[:2]]
        config = pi.Config(program, params)
        config.disable_gpu()
        if mkldnn:  # speed baselines; PIR programs fail with it in paddle 3.3.1 (README)
            config.enable_mkldnn()
        else:
            config.disable_mkldnn()  # PIR programs fail with MKLDNN here; keep both alike
        config.disable_glog_info()
        config.set_cpu_math_library_num_threads(torch.get_num_threads())
        self.predictor = pi.create_predictor(config)

    def __call__(self, x):
        """``x``: the image array, or the list of the program's inputs in its order (SAR's
        [image, valid_ratio], SRN's image + word positions + attention biases); each is fed
        with its own dtype (float arrays as float32)."""
        pred = self.predictor
        xs = list(x) if isinstance(x, (list, tuple)) else [x]
        names = pred.get_input_names()
        if len(xs) != len(names):
            raise PtocrError(f"the program takes {len(names)} inputs ({', '.join(names)}), "
                             f"given {len(xs)}")
        for name, a in zip(names, xs):
            a = np.asarray(a)
            handle = pred.get_input_handle(name)
            handle.reshape(list(a.shape))
            handle.copy_from_cpu(np.ascontiguousarray(
                a, dtype=np.float32 if a.dtype.kind == "f" else a.dtype))
        pred.run()
        return [pred.get_output_handle(n).copy_to_cpu() for n in pred.get_output_names()]


_PROGRAMS = {}  # program files -> PaddleProgram: a predictor is built once per export


def _program(weights):
    from .float64 import _digest

    key = _digest([str(p) for p in weights.files[:2]])
    if key not in _PROGRAMS:
        if len(_PROGRAMS) >= 2:
            _PROGRAMS.pop(next(iter(_PROGRAMS)))
        _PROGRAMS[key] = PaddleProgram(weights)
    return _PROGRAMS[key]


class PaddleModule(torch.nn.Module):
    """A Paddle inference program standing in for a torch model (its output, or the tuple
    of its outputs when it has several), so the OCR pipeline can run Paddle's models as a
    reference or a benchmark baseline."""

    def __init__(self, path, task, meta=None, mkldnn=False):
        super().__init__()
        from . import formats

        self.program = PaddleProgram(formats.read(path), mkldnn)
        self.ptocr_meta = meta or {"extra": {"task": task}}

    def forward(self, x, *extra):
        outs = [torch.from_numpy(o) for o in self.program([t.numpy() for t in (x, *extra)])]
        return outs[0] if len(outs) == 1 else tuple(outs)


def torch_outputs(model, x):
    """The model's outputs for ``x`` (an array, or the list of the program's inputs: the
    torch model takes them as positional arguments in the same order)."""
    xs = list(x) if isinstance(x, (list, tuple)) else [x]
    with torch.inference_mode():
        out = model(*[torch.from_numpy(np.asarray(a)) for a in xs])
    if isinstance(out, dict):
        out = list(out.values())
    if not isinstance(out, (list, tuple)):
        out = [out]
    return [o.detach().cpu().numpy() for o in out]


def make_inputs(spec, images=True, model=None):
    """[(label, array)]: seeded random tensors at the table's shapes, then real images
    preprocessed by the table's own processing (PaddleOCR's PreProcess schema). KIE tables
    (``inputs: {kie: ...}``) get seeded token ids, boxes and masks (a list per input)."""
    inputs = []
    if "kie" in spec.inputs:
        from .kie_inputs import kie_inputs, kie_pages

        pages = kie_pages(spec, model, testdata_dir() if images else None)
        return [(f"random tokens+boxes seed {seed}{pages[seed][0]}",
                 kie_inputs(spec.inputs["kie"], model, seed, pages[seed][1]))
                for seed in range(int(spec.inputs["kie"].get("cases", 2)))]
    rng = np.random.RandomState(0)
    # `random: false`: the shapes only size the example input of program-order alignment
    for shape in spec.inputs.get("shapes", []) if spec.inputs.get("random", True) else []:
        inputs.append((f"random{list(shape)}", rng.uniform(-1, 1, shape).astype(np.float32)))
    # programs with several inputs (or inputs that must be consistent with the image, such
    # as SAR's valid_ratio): batches of seeded noise crops of the given (h, w) sizes, prepared
    # by the table's own processing, as the pipeline prepares real crops
    for sizes in spec.inputs.get("random_images", []):
        from ..pipeline import model_inputs

        crops = [rng.randint(0, 256, (int(h), int(w), 3)).astype(np.uint8) for h, w in sizes]
        per_crop = [model_inputs(spec.processing, c) for c in crops]
        batch = [np.concatenate(parts) for parts in zip(*per_crop)]
        label = f"noise {'+'.join(f'{h}x{w}' for h, w in sizes)}"
        inputs.append((label, batch[0] if len(batch) == 1 else batch))
    data = testdata_dir() if images else None
    if data and spec.inputs.get("images") and (spec.processing or {}).get("PreProcess"):
        from ..pipeline import model_inputs, read_image

        for rel in spec.inputs["images"]:
            try:
                xs = model_inputs(spec.processing, read_image(data / rel))
            except ValueError as exc:
                raise PtocrError(f"{spec.name}: cannot prepare {rel}: {exc}") from None
            inputs.append((f"image {rel}", xs[0] if len(xs) == 1 else xs))
    return inputs


def input_shape(x):
    """Shape of an input (the image's, for a list of program inputs)."""
    return list((x[0] if isinstance(x, (list, tuple)) else x).shape)


def output_scale(tolerance, index):
    """A table's ``output_scale: [s0, s1, ...]`` says output i is a probability-domain value
    multiplied by s_i (EAST's geometry: (sigmoid - 0.5) * 1600 px), so its differences are
    judged after dividing by s_i: fp32 rounding at ±800 is ~1e-4 by itself. An entry that is
    a list scales the last axis column by column (detection rows [class, score, x0, y0, x1,
    y1]: pixels judged per 1000 px, the score as it is)."""
    scales = tolerance.get("output_scale") or []
    if index >= len(scales):
        return 1.0
    return [float(v) for v in scales[index]] if isinstance(scales[index], list) \
        else float(scales[index])


def _scaled_max(ref, out, scale):
    """max |ref - out| / scale in float64 (scale a number, or one per last-axis column)."""
    diff = np.abs(np.asarray(ref, np.float64) - np.asarray(out, np.float64))
    if not diff.size:
        return 0.0
    return float((diff / np.asarray(scale, np.float64)).max())


def _relative(fig):
    """A figure row's max_abs in units of its output scale (what the tolerance judges)."""
    return fig.get("max_abs_scaled", fig["max_abs"] / fig.get("scale", 1.0))


def compare(ref, out, task, tolerance, index=0):
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
    scale = output_scale(tolerance, index)
    if isinstance(scale, list):
        if ref.shape[-1] != len(scale):
            return {**fig, "error": f"{len(scale)} column scales for {ref.shape[-1]} columns",
                    "pass": False}
        fig["column_scale"] = scale
        fig["max_abs_scaled"] = _scaled_max(ref, out, scale)
        ok = fig["max_abs_scaled"] <= tolerance.get("max_abs", 1e-4)
    else:
        if scale != 1.0:
            fig["scale"] = scale
        ok = fig["max_abs"] <= tolerance.get("max_abs", 1e-4) * scale
    if task == "det":
        agree = float(((ref > DET_THRESH) == (out > DET_THRESH)).mean())
        fig["binary_agreement"] = agree
        ok = ok and agree >= tolerance.get("binary_agreement", 0.999)
    elif task in ("rec", "cls") and ref.ndim >= 2:
        fig["argmax_equal"] = bool((ref.argmax(-1) == out.argmax(-1)).all())
        ok = ok and fig["argmax_equal"]
    fig["pass"] = bool(ok)
    return fig


# Float64 tolerance. Measured on the five real models (Paddle float64 vs torch float64 on
# random and real inputs): <= 1.6e-7 with torch's constants as written, <= 3e-9 once they are
# rounded to float32 as Paddle stores them (torch_float64 does); every deliberate mapping error
# of tests/test_negative_controls.py shows at 1e-5 or more.
FLOAT64_MAX_ABS = 1e-6


def match_rows(tolerance, refs, outs):
    """``outs`` with the rows of each output the table lists in ``tolerance.match_rows``
    reordered to pair with Paddle's: programs that end in NMS return their kept rows
    [label, score, box...] in an order that near-equal scores may swap, so each Paddle row is
    paired with the closest unpaired torch row of the same label (the same kept boxes are
    then compared value by value; a different count stays a shape mismatch)."""
    outs = list(outs)
    for i in tolerance.get("match_rows") or []:
        if i >= min(len(refs), len(outs)):
            continue
        ref, out = np.asarray(refs[i]), np.asarray(outs[i])
        if ref.shape != out.shape or ref.ndim != 2 or not len(ref):
            continue
        order = np.full(len(ref), -1)
        for label in np.unique(ref[:, 0]):
            rows_r = np.flatnonzero(ref[:, 0] == label)
            rows_o = np.flatnonzero(out[:, 0] == label)
            if len(rows_r) != len(rows_o):
                return outs  # another count per label: left as it is, it will not match
            dist = np.abs(ref[rows_r, None].astype(np.float64)
                          - out[None, rows_o].astype(np.float64)).max(-1)
            for k in range(len(rows_r)):  # greedy: each Paddle row takes its closest free row
                j = int(np.argmin(dist[k]))
                order[rows_r[k]] = rows_o[j]
                dist[:, j] = np.inf
        outs[i] = out[order]
    return outs


def _max_abs(a, b):
    """max |a - b| in float64: 0 for empty arrays, inf when the shapes differ (programs that
    end in NMS return as many rows as they keep; another count is another result)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        return float("inf")
    return float(np.abs(a - b).max()) if a.size else 0.0


def _fails_on_rounding_only(fig, tolerance):
    """Failed on max_abs alone, with every task-level check agreeing."""
    if fig["pass"] or "max_abs" not in fig:
        return False
    return fig.get("binary_agreement", 1.0) >= tolerance.get("binary_agreement", 0.999) and \
        fig.get("argmax_equal", True)


def _judge_exact(fig, ref, exact, tolerance):
    """Fallback when Paddle cannot run the program in float64 (the rule before float64
    verification): the float64 evaluation of the torch model is the exact function it defines.
    When Paddle's fp32 output is within tolerance of that, the residual is fp32 rounding."""
    fig["max_abs_vs_exact"] = _max_abs(ref, exact)
    within = (_scaled_max(ref, exact, fig["column_scale"]) if "column_scale" in fig else
              fig["max_abs_vs_exact"] / fig.get("scale", 1.0))
    if within <= tolerance.get("max_abs", 1e-4):
        fig["pass"] = True
        fig["passed_by"] = "exact (float64) torch evaluation"


def _judge_float64(fig, ref, out, ref64, out64, task, tolerance, index=0):
    """The verdict: Paddle's program and the torch model, both evaluated in float64, agree
    within the float64 tolerance (and on the task). The fp32 figures stay as the deployment
    precision view, with each side's own fp32 distance from its float64 evaluation."""
    tol64 = tolerance.get("float64_max_abs", FLOAT64_MAX_ABS)
    fig64 = compare(ref64, out64, task, {**tolerance, "max_abs": tol64}, index)
    fig["fp32_pass"] = fig["pass"]
    fig["float64"] = {k: v for k, v in fig64.items() if k != "shape"}
    if "max_abs" in fig64:
        if index in (tolerance.get("match_rows") or []):  # NMS rows: pair them first
            ref64 = match_rows({"match_rows": [0]}, [ref], [ref64])[0]
            out64 = match_rows({"match_rows": [0]}, [out], [out64])[0]
        fig["paddle_fp32_error"] = _max_abs(ref, ref64)
        fig["torch_fp32_error"] = _max_abs(out, out64)
    fig["pass"] = fig64["pass"]


NOT_FLOAT64_MODEL = ("the model under test does not run in float64 (it computes in float32 "
                     "inside whatever its weights' type: transformers' SLANet decoder)")


def _runs_in_float64(model64, inputs):
    """The float64 model's outputs for the first input; Float64Unavailable when the model
    cannot run in float64 at all."""
    from .float64 import Float64Unavailable, torch_outputs64

    try:
        return torch_outputs64(model64, inputs[0][1])
    except RuntimeError as exc:
        if "dtype" not in str(exc):
            raise
        raise Float64Unavailable(NOT_FLOAT64_MODEL) from None


def _paddle_side(spec, refs):
    """The program's outputs the model under test returns: all, or the ones a transformers
    class reproduces (``spec.paddle_outputs``: SLANet's structure probabilities, not its
    cell boxes)."""
    keep = getattr(spec, "paddle_outputs", None)
    return list(refs) if keep is None else [refs[i] for i in keep]


def _steps_run(spec, ref, out):
    """``ref`` cut to the decoding steps the model ran, for a model that stops once every
    row has produced the end token (the last class) where the program runs on
    (``spec.stops_early``: transformers' SLANet): only when Paddle's own output has reached
    the end token in every row within those steps; otherwise unchanged (a shape mismatch)."""
    axis = (getattr(spec, "stops_early", None) or {}).get("axis")
    if axis is None or ref.ndim != out.ndim or ref.shape[:axis] != out.shape[:axis] or \
            not 0 < out.shape[axis] < ref.shape[axis]:
        return ref
    cut = np.take(ref, np.arange(out.shape[axis]), axis=axis)
    ended = (cut.argmax(-1) == ref.shape[-1] - 1).any(axis=axis)
    return cut if bool(ended.all()) else ref


def verify(weights, model, spec, images=True):
    """Run both sides on every input; returns the report dict (report['passed']).

    Judged in float64 on both sides (Paddle's program retyped, torch's model cast): that
    comparison separates a correct mapping (<= 1e-8 here) from a wrong one (>= 1e-5), which no
    fp32 tolerance does on deep networks. Where the program cannot run in float64 the report
    says why and the fp32 rule decides (``judged_in``)."""
    from .float64 import Float64Unavailable, paddle_float64, torch_float64, torch_outputs64

    if weights.program is None:
        raise PtocrError("parity needs the Paddle inference program (.pdmodel/.json); for a "
                         "training checkpoint pass --reference with an inference export")
    reason = paddle_unavailable_reason()
    if reason:
        raise PtocrError(f"parity cannot be verified: {reason}")
    started = time.perf_counter()
    paddle_prog = _program(weights)
    model.eval()
    inputs = make_inputs(spec, images, model)
    try:
        if getattr(spec, "no_float64", None):
            raise Float64Unavailable(spec.no_float64)
        refs64 = [_paddle_side(spec, r) for r in paddle_float64(weights, [x for _, x in inputs])]
        model64 = torch_float64(model)
        first64 = _runs_in_float64(model64, inputs)
        unavailable = None
    except Float64Unavailable as exc:
        refs64, unavailable = None, str(exc)
    rows, paddle_refs = [], []
    exact_model = None
    for index, (label, x) in enumerate(inputs):
        ref_outs = _paddle_side(spec, paddle_prog(x))
        paddle_refs.append(ref_outs)
        outs = match_rows(spec.tolerance, ref_outs, torch_outputs(model, x))
        if len(ref_outs) != len(outs):
            rows.append({"input": label, "output": 0, "pass": False,
                         "error": f"Paddle returns {len(ref_outs)} outputs, torch {len(outs)}"})
            continue
        ref_outs = [_steps_run(spec, ref, out) for ref, out in zip(ref_outs, outs)]
        figures = [compare(ref, out, spec.task, spec.tolerance, i)
                   for i, (ref, out) in enumerate(zip(ref_outs, outs))]
        if refs64 is not None:
            exact = match_rows(spec.tolerance, refs64[index],
                               first64 if index == 0 else torch_outputs64(model64, x))
            for i, (fig, ref, out, r64, o64) in enumerate(zip(figures, ref_outs, outs,
                                                              refs64[index], exact)):
                r64 = _steps_run(spec, r64, o64)
                if "max_abs" in fig:
                    _judge_float64(fig, ref, out, r64, o64, spec.task, spec.tolerance, i)
        elif any(_fails_on_rounding_only(f, spec.tolerance) for f in figures) and \
                unavailable != NOT_FLOAT64_MODEL:
            exact_model = exact_model or copy.deepcopy(model).double()
            exact = torch_outputs(exact_model, [a.astype(np.float64) if a.dtype.kind == "f"
                                                else a for a in (x if isinstance(x, list)
                                                                 else [x])])
            for fig, ref, ex in zip(figures, ref_outs, exact):
                _judge_exact(fig, ref, ex, spec.tolerance)
        for i, fig in enumerate(figures):
            rows.append({"input": label, "input_shape": input_shape(x), "output": i, **fig})
    fused = fused_form_report(model, spec, inputs, paddle_refs, refs64,
                              unavailable != NOT_FLOAT64_MODEL)
    report = {
        "arch": spec.name,
        "passed": all(r["pass"] for r in rows) and bool(rows) and fused["passed"],
        "fused": fused,
        "judged_in": "float64" if refs64 is not None else "float32",
        "tolerance": {"float64_max_abs": FLOAT64_MAX_ABS, **spec.tolerance},
        "results": rows,
        "seconds": round(time.perf_counter() - started, 3),
        "versions": versions(),
        "program_format": weights.format,
    }
    if unavailable:
        report["float64_unavailable"] = unavailable
    if not report["passed"] and (weights.format == "pdmodel" and weights.var_names or
                                 weights.format == "pir" and refs64 is not None):
        probe = (make_inputs(spec, False, model) or
                 make_inputs(spec, model=model))  # tables with images only
        x0 = probe[0][1]
        if not isinstance(x0, list):  # the static-executor probe feeds one input
            report["first_divergence"] = (localise(weights, model64, spec, x0, float64=True)
                                          if refs64 is not None else
                                          localise(weights, model, spec, x0))
    return report


def fused_form_report(model, spec, inputs, paddle_refs, refs64, runs_in_float64=True):
    """The fast eval form ``ptocr.load`` gives (models/fuse.py: conv+BN folded, rep blocks in
    deploy form) judged exactly as the model itself, on the same inputs against the same
    Paddle outputs (float64 when available); part of the verdict."""
    from ..models.fuse import fuse
    from .float64 import torch_float64, torch_outputs64

    if not inputs:
        return {"passed": False, "results": []}
    x0 = inputs[0][1]  # an array, or the list of a multi-input program's inputs
    from .checkpoint import channels_last

    fused = fuse(copy.deepcopy(model),
                 tuple(torch.from_numpy(np.asarray(a)) for a in (x0 if isinstance(x0, list)
                                                                  else [x0])),
                 channels_last=channels_last(model))
    fused64 = torch_float64(fused) if refs64 is not None else None
    exact_model, out_rows = None, []
    for index, ((label, x), ref_outs) in enumerate(zip(inputs, paddle_refs)):
        outs = match_rows(spec.tolerance, ref_outs, torch_outputs(fused, x))
        if len(ref_outs) != len(outs):
            out_rows.append({"input": label, "pass": False})
            continue
        outs64 = (match_rows(spec.tolerance, refs64[index], torch_outputs64(fused64, x))
                  if fused64 is not None else None)
        for i, (ref, out) in enumerate(zip(ref_outs, outs)):
            ref = _steps_run(spec, ref, out)
            fig = compare(ref, out, spec.task, spec.tolerance, i)
            if "max_abs" in fig and fused64 is not None:
                _judge_float64(fig, ref, out, _steps_run(spec, refs64[index][i], outs64[i]),
                               outs64[i], spec.task, spec.tolerance, i)
            elif _fails_on_rounding_only(fig, spec.tolerance) and runs_in_float64:
                exact_model = exact_model or torch_float64(fused)
                x64 = [a.astype(np.float64) if a.dtype.kind == "f" else a
                       for a in (x if isinstance(x, list) else [x])]
                _judge_exact(fig, ref, torch_outputs(exact_model, x64)[i], spec.tolerance)
            out_rows.append({"input": label, "output": i, **fig})
    info = getattr(fused, "ptocr_fused", {})
    f64 = [r["float64"]["max_abs"] for r in out_rows if "max_abs" in r.get("float64", {})]
    return {**info, "passed": bool(out_rows) and all(r["pass"] for r in out_rows),
            "max_abs": max((r.get("max_abs", float("inf")) for r in out_rows), default=None),
            "float64_max_abs": max(f64) if f64 else None, "results": out_rows}


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
    """The worst figures of a report in one line (the figure the verdict rests on first)."""
    rows = [r for r in report["results"] if "max_abs" in r]
    worst = max(rows, key=_relative) if rows else None
    if worst is None:
        return "no comparable outputs"
    tol = report["tolerance"]
    scale = (f" x output scale {worst['scale']:g}" if "scale" in worst else
             f" x column scales {worst['column_scale']}" if "column_scale" in worst else "")
    fp32 = (f"worst max_abs {worst['max_abs']:.3g} on {worst['input']} (tolerance "
            f"{tol.get('max_abs', 1e-4):g}{scale}), min cosine "
            f"{min(r['cosine'] for r in rows):.6f}")
    rows64 = [r for r in rows if "max_abs" in r.get("float64", {})]
    if not rows64:
        note = report.get("float64_unavailable")
        return fp32 + (f"; float64 unavailable: {note}" if note else "")
    w64 = max(rows64, key=lambda r: _relative(r["float64"]))
    paddle_err = max(r.get("paddle_fp32_error", 0.0) for r in rows64)
    torch_err = max(r.get("torch_fp32_error", 0.0) for r in rows64)
    return (f"float64 max_abs {w64['float64']['max_abs']:.3g} on {w64['input']} (tolerance "
            f"{tol.get('float64_max_abs', FLOAT64_MAX_ABS):g}); fp32 {fp32}; fp32 off float64: "
            f"Paddle {paddle_err:.3g}, torch {torch_err:.3g}")


def format_table(report):
    f64 = report.get("judged_in") == "float64"
    head = (f"{'input':34} {'out':>3} {'max_abs':>10} {'mean_abs':>10} {'max_rel':>10} "
            f"{'cosine':>10} {'task':>9}")
    if f64:
        head += f" {'f64 diff':>10} {'pd32 err':>9} {'pt32 err':>9}"
    lines = [head + "  result"]
    for r in report["results"]:
        if "max_abs" not in r:
            lines.append(f"{r['input'][:34]:34} {r['output']:>3} "
                         f"{r.get('error') or 'shape mismatch'}  FAIL")
            continue
        task = r.get("binary_agreement", r.get("argmax_equal", ""))
        task = f"{task:.5f}" if isinstance(task, float) else str(task)
        result = "ok" if r["pass"] else "FAIL"
        if "scale" in r:
            result += f" (output scale {r['scale']:g})"
        if "column_scale" in r:
            result += f" (per column / {r['column_scale']}: {r['max_abs_scaled']:.3g})"
        if "max_abs_vs_exact" in r:
            result += f" (vs float64 torch: {r['max_abs_vs_exact']:.3g})"
        line = (f"{r['input'][:34]:34} {r['output']:>3} {r['max_abs']:10.3g} "
                f"{r['mean_abs']:10.3g} {r['max_rel']:10.3g} {r['cosine']:10.6f} {task:>9}")
        if f64:
            d64 = r.get("float64", {})
            line += (f" {d64.get('max_abs', float('nan')):10.3g} "
                     f"{r.get('paddle_fp32_error', float('nan')):9.2g} "
                     f"{r.get('torch_fp32_error', float('nan')):9.2g}")
            if r["pass"] and not r.get("fp32_pass", True):
                result += " (fp32 difference is rounding)"
        lines.append(line + f"  {result}")
    if f64:
        lines.append("judged in float64 (Paddle program and torch model both evaluated in "
                     "float64; pd32/pt32 err: each side's fp32 distance from float64)")
    elif report.get("float64_unavailable"):
        lines.append(f"float64 evaluation unavailable ({report['float64_unavailable']}); "
                     "judged in float32")
    div = report.get("first_divergence")
    if not report["passed"] and not div and report.get("program_format") == "pir":
        lines.append("first diverging module: not localised (a PIR program's intermediates "
                     "are fetched in float64 only)")
    if div:
        lines.append(f"first diverging module: {div['module']} ({div['type']}), paddle var "
                     f"{div['paddle_var']}: max_abs {div['max_abs']:.3g}")
    fused = report.get("fused")
    if fused:
        f64 = fused.get("float64_max_abs")
        lines.append(f"fused form ({fused.get('folded', 0)} conv+BN folded, "
                     f"{fused.get('rep_blocks', 0)} rep blocks"
                     + (f", {fused['affine_folded']} conv+affine folded"
                        if fused.get("affine_folded") else "")
                     + (", channels_last" if fused.get("channels_last") else "") + "): "
                     + (f"float64 max_abs {f64:.3g}, " if f64 is not None else "")
                     + (f"fp32 max_abs {fused['max_abs']:.3g}"
                        if fused.get("max_abs") is not None else "no outputs")
                     + f"  {'ok' if fused['passed'] else 'FAIL'}")
    lines.append(f"parity {'PASSED' if report['passed'] else 'FAILED'}: {summary(report)}; "
                 f"{report['seconds']:.2f}s")
    return "\n".join(lines)


def localise(weights, model, spec, x, float64=False):
    """Name the first torch module (in forward order) whose output differs from Paddle's.

    Each parameterised torch module is matched to the last program op that consumes one of
    its parameters; that op's output is the module's output in Paddle. The program is run
    with the static executor so every intermediate variable can be fetched. With
    ``float64`` (model is then the float64 copy) both sides run in float64 and a module
    diverges above the float64 tolerance, so mistakes hidden by fp32 rounding are found.
    """
    from .mapping import _rename, torch_use_order

    if float64:
        x = x.astype(np.float64)

    var_of = {}
    for structured, var in weights.var_names.items():
        var_of[_rename(structured, spec.renames)] = var
    if not weights.var_names:  # PIR: no structured names; aligned by program order
        from .mapping import program_alignment

        var_of = program_alignment(weights, model, torch.from_numpy(x))
    consumers = {}  # param var -> indices of ops using it
    ops = weights.program.ops
    for i, op in enumerate(ops):
        for _, names in op.inputs:
            for n in names:
                consumers.setdefault(n, []).append(i)
    # ops on parameters alone (paddle 3 saves a conv bias as reshape2(bias) -> add) are part
    # of the parameter: their outputs count as the parameter and the ops are not its consumers
    root = {v: v for v in var_of.values()}
    param_ops = set()
    for i, op in enumerate(ops):
        ins = [n for _, names in op.inputs for n in names]
        if ins and all(n in root for n in ins):
            param_ops.add(i)
            for _, names in op.outputs:
                for n in names:
                    root.setdefault(n, root[ins[0]])
    for n, r in root.items():
        if n != r:
            consumers.setdefault(r, []).extend(consumers.get(n, []))
    module_out = {}
    for tname, owner in torch_use_order(model, torch.from_numpy(x)):
        mod_name = tname.rsplit(".", 1)[0]
        var = var_of.get(tname)
        uses = [i for i in consumers.get(var, []) if i not in param_ops]
        if uses:
            module_out[mod_name] = max(module_out.get(mod_name, -1), max(uses))
    fetch = {}
    for mod_name, op_index in module_out.items():
        op = ops[op_index]
        outs = dict(op.outputs)
        name = (outs.get("Y") or outs.get("Out") or outs.get("Output") or
                next(iter(outs.values())))[0]
        fetch[mod_name] = name
    paddle_vals = _run_static(weights, x, list(fetch.values()), float64)
    captured = {}
    hooks = []
    modules = dict(model.named_modules())

    def capture(name):
        def hook(_module, _inputs, output):
            if isinstance(output, (tuple, list)):  # nn.LSTM: (sequence, (h, c))
                output = output[0]
            captured.setdefault(name, output.detach().numpy())  # returns None: output kept

        return hook

    for mod_name in fetch:
        hooks.append(modules[mod_name].register_forward_hook(capture(mod_name)))
    try:
        torch_outputs(model, x)
    finally:
        for h in hooks:
            h.remove()
    tol = (spec.tolerance.get("float64_max_abs", FLOAT64_MAX_ABS) if float64 else
           spec.tolerance.get("max_abs", 1e-4))
    order = [n for n in dict.fromkeys(t.rsplit(".", 1)[0] for t, _ in
                                      torch_use_order(model, torch.from_numpy(x))) if n in fetch]
    for mod_name in order:
        ref, out = paddle_vals[fetch[mod_name]], captured.get(mod_name)
        if out is not None and ref.ndim == 3 and ref.shape == (out.shape[1], out.shape[0],
                                                               out.shape[2]):
            ref = ref.transpose(1, 0, 2)  # paddle's rnn op runs time-major
        if out is None or ref.shape != out.shape:
            continue
        scale = max(1.0, float(np.abs(ref).max()))
        diff = float(np.abs(ref - out).max())
        if diff > tol * scale:
            return {"module": mod_name, "type": type(modules[mod_name]).__name__,
                    "paddle_var": fetch[mod_name], "max_abs": diff}
    return None


_STATIC = {}  # (program, input, names, float64) -> values: localising again is free


def _run_static(weights, x, fetch_names, float64=False):
    """Intermediate variables of the program for input x (2.x: see static_fetch; PIR: float64
    only, through the program's float64 rewrite with added fetch ops)."""
    import hashlib

    from .float64 import _digest, pir_intermediates64

    if weights.format == "pir":
        if not float64:
            raise PtocrError("a PIR program's intermediates are fetched in float64 only")
        return pir_intermediates64(weights, x, fetch_names)

    key = hashlib.sha256(repr((_digest([str(p) for p in weights.files[:2]]), fetch_names,
                               float64, x.dtype.str, x.shape)).encode() + x.tobytes()).hexdigest()
    if key not in _STATIC:
        if len(_STATIC) >= 4:
            _STATIC.pop(next(iter(_STATIC)))
        _STATIC[key] = _run_static_uncached(weights, x, fetch_names, float64)
    return _STATIC[key]


def _run_static_uncached(weights, x, fetch_names, float64):
    import subprocess
    import sys
    import tempfile

    prefix = str(weights.files[0])[: -len(".pdmodel")]
    with tempfile.TemporaryDirectory(prefix="ptocr-localise-") as tmp:
        np.save(f"{tmp}/x.npy", x)
        mode = ["--fetch64"] if float64 else []
        res = subprocess.run([sys.executable, "-m", "ptocr.converter.static_fetch", *mode, prefix,
                              f"{tmp}/x.npy", f"{tmp}/out.npz", *fetch_names],
                             capture_output=True, text=True)
        if res.returncode != 0:
            tail = (res.stderr.strip().splitlines() or ["no output"])[-1]
            raise PtocrError(f"could not run the Paddle program to localise: {tail}")
        with np.load(f"{tmp}/out.npz") as data:
            return {n: data[f"v{i}"] for i, n in enumerate(fetch_names)}
