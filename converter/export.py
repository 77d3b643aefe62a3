"""``ptocr export``: compiled and exported forms of a checkpoint, each verified before use.

Formats (all made from the fast eval form, models/fuse.py):
  torchscript  ``torch.jit.trace`` (older deployments)
  exported     a ``torch.export`` ExportedProgram (``.pt2``)
  aoti         an AOTInductor package (``torch._inductor.aoti_compile_and_package``), which
               ``ptocr.load`` and ``ptocr.OCR`` run directly
  onnx         ``torch.onnx.export(dynamo=True)`` (``pip install 'ptocr[onnx]'``)

With ``dynamic`` the batch and the spatial sizes the pipeline varies are symbolic: det H and W
(multiples of 32), rec/cls width; else the artifact is fixed to one shape.

Compilers can be wrong (Inductor's ``freezing`` gives det maps 0.37 away from eager), so every
artifact is run on the convert inputs of its table (seeded random tensors and real images,
those its shapes admit) and compared with the float64 evaluation of the checkpoint it came from
(and with Paddle's program when a Paddle model is given); the figures, the source checkpoint's
sha256 and the artifact's own sha256 go into a sidecar ``FILE.ptocr.json``. Nothing is written
when parity fails. ``load_artifact`` refuses an artifact without its sidecar, one whose bytes
no longer match (tampered or damaged) and one whose source checkpoint has changed since (stale).
The sidecar guards against mistakes, not attackers: an artifact is code (AOTI packages hold a
shared library), so load only artifacts you trust.
"""

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ..errors import PtocrError
from ..fileutil import file_sha256

FORMATS = ("torchscript", "exported", "aoti", "onnx")
SUFFIXES = {"torchscript": ".pt", "exported": ".pt2", "aoti": ".pt2", "onnx": ".onnx"}
SIDECAR_SUFFIX = ".ptocr.json"
MAX_BATCH = 64
MAX_SIDE = 4096  # det: H, W up to 4096 (128 x 32); rec/cls width up to 4096


def sidecar_path(path):
    return Path(str(path) + SIDECAR_SUFFIX)


def is_artifact(path):
    """True for an export of ptocr (its sidecar exists) or a .pt2/.onnx file (refused later
    when it has no sidecar); a checkpoint named .pt without a sidecar stays a checkpoint."""
    p = Path(path)
    return sidecar_path(p).is_file() or p.suffix in (".pt2", ".onnx")


# ---------------------------------------------------------------- shapes

def dynamic_shapes(task, example):
    """torch.export dynamic_shapes for the model's one input: batch always; det H and W as
    multiples of 32 (DetResizeForTest's rounding); rec/cls the width."""
    from torch.export import Dim

    batch = Dim("batch", min=1, max=MAX_BATCH)
    if example.dim() != 4:
        return ({0: batch},)
    if task == "det":
        h = Dim("h32", min=1, max=MAX_SIDE // 32)
        w = Dim("w32", min=1, max=MAX_SIDE // 32)
        return ({0: batch, 2: 32 * h, 3: 32 * w},)
    return ({0: batch, 3: Dim("width", min=8, max=MAX_SIDE)},)


def admits(shape, static_shape, task, dynamic):
    """Whether an input of ``shape`` fits the artifact (static: exactly its shape)."""
    shape = list(shape)
    if not dynamic:
        return shape == list(static_shape)
    if len(shape) != len(static_shape) or shape[1] != static_shape[1]:
        return False
    if len(shape) == 4 and task == "det":
        return shape[2] % 32 == 0 and shape[3] % 32 == 0
    if len(shape) == 4:
        return shape[2] == static_shape[2]
    return True


# ---------------------------------------------------------------- making artifacts

def _structure(out):
    if isinstance(out, torch.Tensor):
        return {"kind": "tensor"}
    if isinstance(out, dict):
        return {"kind": "dict", "keys": list(out)}
    return {"kind": "list", "n": len(out)}


def _build(model, fmt, example, task, dynamic, out):
    """Write the artifact of ``fmt`` to ``out`` (a temp path)."""
    ds = dynamic_shapes(task, example[0]) if dynamic else None
    if fmt == "torchscript":
        with torch.no_grad():
            traced = torch.jit.trace(model, example, check_trace=False)
        torch.jit.save(traced, str(out))
        return
    if fmt == "onnx":
        try:
            import onnxscript  # noqa: F401
        except ImportError:
            raise PtocrError("--format onnx needs onnx and onnxscript: pip install "
                             "'ptocr[onnx]'") from None
        with torch.no_grad():
            prog = torch.onnx.export(model, example, dynamo=True, dynamic_shapes=ds,
                                     external_data=False, verbose=False)
        prog.save(str(out))
        return
    with torch.no_grad():
        ep = torch.export.export(model, example, dynamic_shapes=ds)
    if fmt == "exported":
        torch.export.save(ep, str(out))
        return
    from torch._inductor import aoti_compile_and_package

    # freezing stays off: it gave wrong det maps on PP-OCRv4 (issue 14); verified anyway
    aoti_compile_and_package(ep, package_path=str(out))


def export(checkpoint_path, fmt, out, dynamic=False, shape=None, paddle_dir=None,
           overwrite=False, note=None):
    """Make, verify and write an artifact with its sidecar; returns the sidecar dict."""
    from .checkpoint import atomic_path, example_inputs, read
    from .mapping import find_arch
    from .. import load

    if fmt not in FORMATS:
        raise PtocrError(f"unknown export format {fmt!r} ({', '.join(FORMATS)})")
    out, checkpoint_path = Path(out), Path(checkpoint_path)
    if is_artifact(checkpoint_path) and sidecar_path(checkpoint_path).is_file():
        raise PtocrError(f"{checkpoint_path}: an exported artifact; export from the checkpoint")
    if sidecar_path(out).exists() and not overwrite:
        raise PtocrError(f"{sidecar_path(out)}: already exists (pass --overwrite to replace it)")
    _, meta = read(checkpoint_path)
    model = load(checkpoint_path)  # the fast eval form
    task = (meta.get("extra") or {}).get("task")
    spec = find_arch(meta.get("arch") or "")
    if shape:
        static_shape = list(shape)
    else:
        shapes = spec.inputs.get("shapes") or []
        if not shapes:
            ex = example_inputs(meta)
            if ex is None:
                raise PtocrError(f"{meta.get('arch')}: no input shape known; pass --shape")
            shapes = [list(ex[0].shape)]
        static_shape = list(shapes[0])
    example = (torch.zeros(static_shape),)
    if dynamic and static_shape[0] == 1:  # a batch of 1 would specialise the batch dim
        example = (torch.zeros([2] + static_shape[1:]),)
    started = time.perf_counter()
    with atomic_path(out, overwrite) as tmp, \
            tempfile.TemporaryDirectory(prefix=".ptocr-export-", dir=out.parent) as work:
        tmp = Path(tmp)
        built = Path(work) / f"artifact{SUFFIXES[fmt]}"  # AOTI wants a .pt2 name
        try:
            _build(model, fmt, example, task, dynamic, built)
        except PtocrError:
            raise
        except Exception as exc:  # an op a compiler cannot take: one line, nothing written
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            raise PtocrError(f"{fmt} export of {meta.get('arch')} failed: "
                             f"{type(exc).__name__}: {first}") from None
        build_seconds = time.perf_counter() - started
        with torch.no_grad():
            structure = _structure(model(*example))
        record = {
            "ptocr_artifact": 1, "format": fmt, "dynamic": bool(dynamic),
            "shape": static_shape, "task": task, "outputs": structure,
            "source": {"path": str(checkpoint_path.resolve()),
                       "sha256": file_sha256(checkpoint_path)},
            "meta": {k: meta.get(k) for k in ("arch", "processing", "extra", "parity",
                                                "ptocr_version")},
            "export_seconds": round(build_seconds, 2), "size_bytes": built.stat().st_size,
            "versions": {"torch": str(torch.__version__)},
        }
        runner = _runner(built, record)
        report = verify_artifact(runner, model, spec, record, paddle_dir)
        record["parity"] = report
        if not report["passed"]:
            raise PtocrError(f"{fmt} artifact fails parity with its checkpoint: "
                             f"{report['summary']}; nothing written")
        del runner  # an AOTI runner keeps its unpacked package open
        shutil.move(str(built), str(tmp))
        record["artifact_sha256"] = file_sha256(tmp)
        record["artifact"] = out.name
        with atomic_path(sidecar_path(out), True) as side:
            Path(side).write_text(json.dumps(record, indent=2, ensure_ascii=False),
                                  encoding="utf-8")
    return record


# ---------------------------------------------------------------- verification

def verify_artifact(runner, model, spec, record, paddle_dir=None):
    """The artifact against the float64 evaluation of its checkpoint's model on the table's
    convert inputs it admits (and against Paddle's program, float32 and float64, when a
    Paddle model is given). Gate: the table's fp32 tolerance (max_abs, task agreement)
    against float64 (the fp32 rule of the verifier, with the exact evaluation as reference);
    the figure against the eager fp32 model is reported beside it."""
    from .float64 import torch_float64, torch_outputs64
    from .verify import compare, make_inputs, torch_outputs

    task, dynamic, shape = record["task"], record["dynamic"], record["shape"]
    inputs = [(label, x) for label, x in make_inputs(spec)
              if admits(x.shape, shape, task, dynamic)]
    if not inputs:  # a static shape the table's inputs do not have
        rng = np.random.RandomState(0)
        inputs = [(f"random{shape}", rng.uniform(-1, 1, shape).astype(np.float32))]
    model64 = torch_float64(model)
    paddle = None
    if paddle_dir:
        from . import formats
        from .float64 import Float64Unavailable, paddle_float64
        from .verify import _program

        weights = formats.read(paddle_dir)
        paddle = (_program(weights), weights)
    tolerance = spec.tolerance
    rows = []
    for label, x in inputs:
        art = runner(x)
        eager = torch_outputs(model, x)
        exact = torch_outputs64(model64, x)
        refs = {"checkpoint float64": exact}
        if paddle is not None:
            refs["paddle fp32"] = paddle[0](x)
            try:
                refs["paddle float64"] = paddle_float64(paddle[1], [x])[0]
            except Float64Unavailable:
                pass
        for i, out in enumerate(art):
            row = {"input": label, "input_shape": list(x.shape), "output": i}
            for name, ref in refs.items():
                fig = compare(ref[i], out, task, tolerance, i)
                row[name] = {k: v for k, v in fig.items() if k != "shape"}
            row["eager fp32 max_abs"] = float(np.abs(eager[i].astype(np.float64)
                                                     - out.astype(np.float64)).max())
            row["pass"] = all(row[name]["pass"] for name in refs if name != "paddle fp32") and \
                ("paddle fp32" not in row or row["paddle fp32"]["pass"]
                 or row.get("paddle float64", {}).get("pass", False))
            rows.append(row)
    worst = max(rows, key=lambda r: r["checkpoint float64"].get("max_abs", float("inf")))
    summary = (f"max_abs {worst['checkpoint float64'].get('max_abs', float('nan')):.3g} vs "
               f"the checkpoint in float64 on {worst['input']} (tolerance "
               f"{tolerance.get('max_abs', 1e-4):g}), "
               f"{max(r['eager fp32 max_abs'] for r in rows):.3g} vs eager fp32")
    if paddle is not None:
        summary += (f", {max(r['paddle fp32'].get('max_abs', float('inf')) for r in rows):.3g}"
                    " vs Paddle fp32")
        p64 = [r["paddle float64"]["max_abs"] for r in rows if "max_abs" in
               r.get("paddle float64", {})]
        if p64:
            summary += f", {max(p64):.3g} vs Paddle float64"
    return {"passed": all(r["pass"] for r in rows) and bool(rows), "summary": summary,
            "inputs": len(inputs), "results": rows}


# ---------------------------------------------------------------- running artifacts

def _runner(path, record):
    """A function numpy input -> [numpy outputs] for the artifact at ``path``."""
    fmt = record["format"]
    if fmt == "onnx":
        try:
            import onnxruntime as ort
        except ImportError:
            raise PtocrError("running an ONNX artifact needs onnxruntime: pip install "
                             "'ptocr[onnx]'") from None
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        sess = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        return lambda x: [np.asarray(o) for o in sess.run(None, {name: x})]
    module = _torch_module(path, fmt)

    def run(x):
        with torch.inference_mode():
            out = module(torch.from_numpy(np.ascontiguousarray(x)))
        return [o.detach().cpu().numpy() for o in _flat(out)]
    return run


def _flat(out):
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        return list(out.values())
    return list(out)


def _torch_module(path, fmt):
    if fmt == "torchscript":
        return torch.jit.load(str(path), map_location="cpu").eval()
    if fmt == "exported":
        return torch.export.load(str(path)).module()
    if fmt == "aoti":
        from torch._inductor import aoti_load_package

        return aoti_load_package(str(path))
    raise PtocrError(f"unknown artifact format {fmt!r}")


class ArtifactModule(torch.nn.Module):
    """An exported artifact standing in for the model: same call, same outputs, with the
    checkpoint's ``ptocr_meta`` (processing, dictionary) so the OCR system takes it."""

    def __init__(self, run, record):
        super().__init__()
        # not a submodule: an exported program's module refuses train()/eval()
        self.__dict__["_run"] = run
        self.ptocr_artifact = record
        self.ptocr_meta = dict(record["meta"])

    def forward(self, x):
        out = self._run(x)
        kind = self.ptocr_artifact["outputs"]
        if kind["kind"] == "tensor":
            return _flat(out)[0]
        if kind["kind"] == "dict":
            return dict(zip(kind["keys"], _flat(out)))
        return list(_flat(out))


def read_sidecar(path):
    """The checked sidecar of an artifact (one-line errors for missing, tampered, stale)."""
    path = Path(path)
    side = sidecar_path(path)
    if not path.is_file():
        raise PtocrError(f"{path}: no such artifact")
    if not side.is_file():
        raise PtocrError(f"{path}: no sidecar {side.name}; not a verified ptocr export "
                         "(make it with `ptocr export`)")
    try:
        record = json.loads(side.read_text(encoding="utf-8"))
        assert record.get("ptocr_artifact") == 1 and record["format"] in FORMATS
    except Exception:
        raise PtocrError(f"{side}: not a ptocr export sidecar") from None
    if file_sha256(path) != record.get("artifact_sha256"):
        raise PtocrError(f"{path}: its bytes differ from those verified at export (tampered "
                         "or damaged); export it again")
    src = Path(record["source"]["path"])
    if src.is_file() and file_sha256(src) != record["source"]["sha256"]:
        raise PtocrError(f"{path}: stale, its checkpoint {src} has changed since the export; "
                         "export it again")
    return record


def load_artifact(path):
    """An exported artifact as a module (eval mode) carrying its checkpoint's ptocr_meta."""
    record = read_sidecar(path)
    fmt = record["format"]
    if fmt == "onnx":
        run_np = _runner(path, record)
        return ArtifactModule(lambda x: [torch.from_numpy(o) for o in
                                         run_np(x.detach().cpu().numpy())], record).eval()
    module = _torch_module(path, fmt)
    if fmt == "aoti":
        return ArtifactModule(lambda x: module(x.contiguous()), record).eval()
    return ArtifactModule(module, record).eval()


def cached_artifact(checkpoint_path, fmt="aoti", home=None, note=None):
    """The artifact of ``fmt`` (dynamic shapes) for a checkpoint, made once and kept under
    $PTOCR_HOME/compiled/<checkpoint sha256>-<fmt>; later calls load it without compiling."""
    from .models_cache import home as ptocr_home

    digest = file_sha256(checkpoint_path)
    root = Path(home) if home else ptocr_home() / "compiled"
    root.mkdir(parents=True, exist_ok=True)
    out = root / f"{digest[:24]}-{fmt}{SUFFIXES[fmt]}"
    if not (out.is_file() and sidecar_path(out).is_file()):
        if note:
            note(f"compiling {Path(checkpoint_path).name} ({fmt}, once; cached in {root})")
        export(checkpoint_path, fmt, out, dynamic=True, overwrite=True)
    return out


ENGINES = ("eager", "compiled", "aoti")


def engine_form(path, engine, map_location="cpu", note=None):
    """The model of checkpoint ``path`` in an engine's form (see ``ptocr.load``)."""
    from .checkpoint import example_inputs, load_model

    if engine not in ENGINES:
        raise PtocrError(f"unknown engine {engine!r} ({', '.join(ENGINES)})")
    if engine == "aoti":
        return load_artifact(cached_artifact(path, "aoti", note=note))
    model = load_model(path, map_location=map_location)
    if engine == "eager":
        return model
    compiled = torch.compile(model, dynamic=True)
    example = example_inputs(model.ptocr_meta, map_location)
    if example is not None:  # compilers can be wrong: compare before anyone gets it
        from .mapping import find_arch
        from .verify import compare

        tol = find_arch(model.ptocr_meta["arch"]).tolerance
        x = torch.rand(example[0].shape, generator=torch.Generator().manual_seed(0)) * 2 - 1
        with torch.inference_mode():
            ref, out = _flat(model(x)), _flat(compiled(x))
        for i, (r, o) in enumerate(zip(ref, out)):
            fig = compare(r.numpy(), o.numpy(), (model.ptocr_meta.get("extra") or {}).get(
                "task"), tol, i)
            if not fig["pass"]:
                raise PtocrError(f"{path}: torch.compile output differs from eager "
                                 f"(max_abs {fig.get('max_abs', float('nan')):.3g}); use "
                                 "engine eager")
    compiled.ptocr_meta = model.ptocr_meta
    return compiled
