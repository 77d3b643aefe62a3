"""Float64 evaluation of a Paddle inference program, the verifier's primary evidence.

In float32 a deep network's own rounding (Paddle's as much as torch's) can exceed any fixed
tolerance that would still catch a wrong mapping; in float64 a correct mapping agrees to
~1e-7 or better while every mistake we know of shows at 1e-5 or more. Paddle has no switch
for it, but an exported program is typed data:

  * PIR (``inference.json``): every tensor type is ``0.t_f32`` and the input's dtype attribute
    ``float32``; rewritten to ``0.t_f64`` / ``float64`` the program loads with
    ``paddle.jit.load`` and runs in float64 once its parameters are cast. The rewritten program
    is cached in the temp dir, keyed by the program's and parameters' content.
  * Paddle 2.x (``inference.pdmodel``): the old static executor (a subprocess, as Paddle 3 reads
    2.x programs only with FLAGS_enable_pir_api=0 set at import) loads the program, the var
    descs and fp32 ``dtype`` attributes are retyped and the parameters in the scope cast
    (static_fetch.run_float64).

What stays float32: op attributes such as BN/LayerNorm epsilons and hardsigmoid slopes are
stored as float32 numbers, so Paddle's float64 run uses e.g. 0.2 rounded to float32 where torch
uses 0.2; that is the residue (1e-8..1e-7 on the real models) the float64 tolerance sits above.
"""

import hashlib
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch


class Float64Unavailable(Exception):
    """The program cannot be evaluated in float64 (the message says why)."""


def _as_list(x):
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _to64(a):
    a = np.asarray(a)
    return a.astype(np.float64) if a.dtype == np.float32 else a


def torch_float64(model):
    """A float64 copy of the model: the exact function its float32 form approximates.

    Scalar constants are rounded to float32 first (normalisation epsilons, hardsigmoid slope
    and offset), as both frameworks hold them at deployment precision: torch's fp32 kernels
    round a Python 0.2 to float32 just as Paddle stores the attribute. Unrounded, they are the
    whole float64 residue on the real det/cls models (up to 1.6e-7 on PP-OCRv5 det, 1e-13
    after)."""
    import copy

    model64 = copy.deepcopy(model).double().eval()
    for module in model64.modules():
        for attr in ("eps", "slope", "offset"):
            value = getattr(module, attr, None)
            if isinstance(value, float):
                setattr(module, attr, float(np.float32(value)))
    return model64


_RESULTS = {}  # (program files, inputs) -> outputs: re-verifying the same export is free


def paddle_float64(weights, inputs):
    """[[output arrays] per input] of the program evaluated in float64, or Float64Unavailable."""
    if weights.format not in ("pir", "pdmodel"):
        raise Float64Unavailable(f"no program to evaluate ({weights.format})")
    h = hashlib.sha256(_digest([str(p) for p in weights.files[:2]]).encode())
    for x in inputs:
        for a in _as_list(x):
            a = np.ascontiguousarray(a)
            h.update(f"{a.dtype}{a.shape}".encode())
            h.update(a.tobytes())
    key = h.hexdigest()
    if key not in _RESULTS:
        run = _run_pir if weights.format == "pir" else _run_pdmodel
        if len(_RESULTS) >= 4:
            _RESULTS.pop(next(iter(_RESULTS)))
        _RESULTS[key] = run(weights, inputs)
    return [[o.copy() for o in row] for row in _RESULTS[key]]


def rewrite_pir(text):
    """inference.json text with float32 tensor types and dtype attributes made float64."""
    text = text.replace('"0.t_f32"', '"0.t_f64"').replace('"D":"float32"', '"D":"float64"')
    return _cast_one_hot(text) if '"1.one_hot"' in text else text


def _cast_one_hot(text):
    """one_hot has no dtype attribute: its kernel always writes float32 (the attention
    decoders' fed-back one-hot). Each gets a float64 cast after it, its users read that."""
    import json

    doc = json.loads(text)
    blocks, ids = [], []

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("ops"), list):
                blocks.append(node["ops"])
            if isinstance(node.get("%"), int):
                ids.append(node["%"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(doc)
    next_id, renamed = max(ids) + 1, {}
    for ops in blocks:
        for i in range(len(ops) - 1, -1, -1):
            op = ops[i]
            if op.get("#") != "1.one_hot":
                continue
            out = op["O"][0]
            out["TT"]["D"][0] = {"#": "0.t_f32"}
            cast_out = json.loads(json.dumps(out))
            cast_out["%"], cast_out["TT"]["D"][0] = next_id, {"#": "0.t_f64"}
            renamed[out["%"]] = next_id
            ops.insert(i + 1, {"#": "1.cast", "A": [{"AT": {"#": "1.a_dtype", "D": "float64"},
                                                     "N": "dtype"}],
                               "I": [{"%": out["%"]}], "O": [cast_out],
                               "OA": json.loads(json.dumps(op.get("OA", [])))})
            next_id += 1
    for ops in blocks:
        for op in ops:
            if op.get("#") == "1.cast" and op["I"] and op["I"][0]["%"] in renamed and \
                    op["O"][0]["%"] == renamed[op["I"][0]["%"]]:
                continue
            for ref in op.get("I") or []:
                if isinstance(ref, dict) and ref.get("%") in renamed:
                    ref["%"] = renamed[ref["%"]]
    return json.dumps(doc, separators=(",", ":"))


def _digest(paths):
    h = hashlib.sha256()
    for p in paths:
        st = os.stat(p)
        h.update(f"{Path(p).resolve()}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:20]


def pir_float64_prefix(weights):
    """Prefix of the float64 rewrite of a PIR program, cached in the temp dir."""
    program, params = [str(p) for p in weights.files[:2]]
    cache = Path(tempfile.gettempdir()) / f"ptocr-f64-{_digest([program, params])}"
    target = cache / "inference.json"
    if not target.exists():
        cache.mkdir(parents=True, exist_ok=True)
        link = cache / "inference.pdiparams"
        if not link.exists():
            try:
                link.symlink_to(Path(params).resolve())
            except FileExistsError:
                pass
        tmp = cache / f".inference.json.{os.getpid()}"
        tmp.write_text(rewrite_pir(Path(program).read_text(encoding="utf-8")),
                       encoding="utf-8")
        os.replace(tmp, target)
    return str(cache / "inference")


def _run_pir(weights, inputs):
    os.environ.setdefault("GLOG_minloglevel", "2")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import paddle
    try:
        layer = _load_float64(paddle, pir_float64_prefix(weights))
        results = []
        with paddle.no_grad():
            for x in inputs:
                out = layer(*[paddle.to_tensor(_to64(a)) for a in _as_list(x)])
                results.append([np.asarray(o.numpy()) for o in _as_list(out)])
    except Exception as exc:  # a missing float64 kernel, an op the rewrite cannot retype
        raise Float64Unavailable(_first_line(exc)) from None
    return results


def _load_float64(paddle, prefix):
    """The rewritten program as a layer with float64 parameters. Only floating tensors are
    cast: paddle.nn.LSTM/GRU programs hold an uninitialised uint8 dropout-state buffer that
    casting the whole layer (``layer.to``) fails on; it is set aside meanwhile."""
    layer = paddle.jit.load(prefix)
    layer.eval()
    held = []
    for sub in [layer] + layer.sublayers():
        for key, buf in list(sub._buffers.items()):
            if buf is not None and (not buf.is_floating_point() or not buf._is_initialized()):
                held.append((sub, key, sub._buffers.pop(key)))
    try:
        # floating tensors only: integer constants (LayoutXLM's position ids) stay integer
        layer._to_impl(dtype="float64", floating_only=True)
    finally:
        for sub, key, buf in held:
            sub._buffers[key] = buf
    return layer


def pir_intermediates64(weights, x, value_names):
    """{value name ('%17', as formats.program names PIR values): float64 array} for one
    input: the program's float64 rewrite with a fetch op appended per value (values inside
    control-flow regions cannot be fetched; they are left out)."""
    import json

    os.environ.setdefault("GLOG_minloglevel", "2")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import paddle
    doc = json.loads(rewrite_pir(Path(weights.files[0]).read_text(encoding="utf-8")))
    ops = doc["program"]["regions"][0]["blocks"][0]["ops"]
    types, top = {}, 0
    for op in ops:
        results = op.get("O") or []
        for res in [results] if isinstance(results, dict) else results:
            types[res["%"]] = res.get("TT")
            top = max(top, res["%"])
    cols = sum(op["#"] == "1.fetch" for op in ops)
    wanted = [n for n in dict.fromkeys(value_names) if n.startswith("%") and
              types.get(int(n[1:])) is not None]
    for k, name in enumerate(wanted):
        col = cols + k
        ops.append({"#": "1.fetch", "A": [
            {"AT": {"#": "0.a_str", "D": f"fetch_name_{col}"}, "N": "name"},
            {"AT": {"#": "0.a_i32", "D": col}, "N": "col"}],
            "I": [{"%": int(name[1:])}], "O": [{"%": top + 1 + k, "TT": types[int(name[1:])]}],
            "OA": [{"AT": {"#": "0.a_array", "D": [{"#": "0.a_bool", "D": True}]},
                    "N": "persistable"},
                   {"AT": {"#": "0.a_array", "D": [{"#": "0.a_bool", "D": False}]},
                    "N": "stop_gradient"}]})
    with tempfile.TemporaryDirectory(prefix="ptocr-pir-fetch-") as tmp:
        Path(tmp, "inference.json").write_text(json.dumps(doc), encoding="utf-8")
        Path(tmp, "inference.pdiparams").symlink_to(Path(weights.files[1]).resolve())
        try:
            layer = _load_float64(paddle, str(Path(tmp) / "inference"))
            with paddle.no_grad():
                outs = _as_list(layer(*[paddle.to_tensor(_to64(a)) for a in _as_list(x)]))
        except Exception as exc:
            raise Float64Unavailable(_first_line(exc)) from None
    extra = [np.asarray(o.numpy()) for o in outs[cols:]]
    return dict(zip(wanted, extra))


def _run_pdmodel(weights, inputs):
    from .static_fetch import run_float64_subprocess

    prefix = str(weights.files[0])[: -len(".pdmodel")]
    try:
        return run_float64_subprocess(prefix, inputs)
    except RuntimeError as exc:
        raise Float64Unavailable(str(exc)) from None


def _first_line(exc):
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    # paddle's errors start with a C++ stack; the summary line says what failed
    for ln in lines:
        if "Error" in ln and "Traceback" not in ln:
            return ln[:300]
    return (lines[-1] if lines else type(exc).__name__)[:300]


def torch_outputs64(model64, x):
    with torch.inference_mode():
        out = model64(*[torch.from_numpy(_to64(a)) for a in _as_list(x)])
    if isinstance(out, dict):
        out = list(out.values())
    return [o.detach().cpu().numpy() for o in _as_list(out)]
