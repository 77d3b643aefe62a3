"""Run a Paddle 2.x inference program with the static executor: fetch intermediate variables
(the verifier localises divergence with them) or evaluate the program in float64.

Paddle 3 reads 2.x programs through its old static API only when FLAGS_enable_pir_api=0 is
set before paddle is imported, so this runs as its own process:

    python -m ptocr.converter.static_fetch [--fetch64] PREFIX INPUT.npy OUTPUT.npz VAR [VAR ...]
    python -m ptocr.converter.static_fetch --float64 PREFIX INPUTS.npz OUTPUT.npz
"""

import os
import subprocess
import sys
import tempfile
import warnings

import numpy as np


def _import_static_paddle():
    os.environ["FLAGS_enable_pir_api"] = "0"
    os.environ.setdefault("GLOG_minloglevel", "2")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import paddle

    paddle.enable_static()
    return paddle


def main(argv):
    if argv and argv[0] == "--float64":
        return float64_main(argv[1:])
    float64 = bool(argv) and argv[0] == "--fetch64"
    prefix, input_path, output_path, *names = argv[1:] if float64 else argv
    paddle = _import_static_paddle()
    exe = paddle.static.Executor(paddle.CPUPlace())
    prog, feeds, _ = paddle.static.load_inference_model(prefix, exe)
    if float64:
        retype_float64(paddle, prog, paddle.static.global_scope())
    block = prog.global_block()
    values = exe.run(prog, feed={feeds[0]: np.load(input_path)},
                     fetch_list=[block.var(n) for n in names])
    np.savez(output_path, **{f"v{i}": v for i, v in enumerate(values)})


def retype_float64(paddle, prog, scope):
    """Make every float32 tensor of the program float64: var descs, the parameters held in
    the scope, and ops' fp32 ``dtype``/``out_dtype`` attributes (fill_constant, cast, ...)."""
    core = paddle.base.core
    f32, f64 = core.VarDesc.VarType.FP32, core.VarDesc.VarType.FP64
    for block in prog.blocks:
        for var in block.vars.values():
            if var.type != core.VarDesc.VarType.LOD_TENSOR or var.dtype != f32:
                continue
            var.desc.set_dtype(f64)
            if var.persistable and scope.find_var(var.name) is not None:
                tensor = scope.find_var(var.name).get_tensor()
                tensor.set(np.array(tensor).astype(np.float64), paddle.CPUPlace())
        for op in block.ops:
            for attr in op.attr_names:
                if "dtype" in attr and op.attr(attr) in (f32, int(f32)):
                    op._set_attr(attr, f64)


def float64_main(argv):
    prefix, inputs_path, output_path = argv
    paddle = _import_static_paddle()
    exe = paddle.static.Executor(paddle.CPUPlace())
    scope = paddle.static.global_scope()
    prog, feeds, fetches = paddle.static.load_inference_model(prefix, exe)
    retype_float64(paddle, prog, scope)
    out = {}
    with np.load(inputs_path) as data:
        n = int(data["n"])
        for i in range(n):
            xs = [data[f"x{i}_{k}"] for k in range(int(data[f"k{i}"]))]
            feed = {name: (x.astype(np.float64) if x.dtype == np.float32 else x)
                    for name, x in zip(feeds, xs)}
            for j, value in enumerate(exe.run(prog, feed=feed, fetch_list=fetches)):
                out[f"o{i}_{j}"] = np.asarray(value)
    np.savez(output_path, **out)


def run_float64_subprocess(prefix, inputs):
    """[[outputs] per input] of the 2.x program at PREFIX in float64; RuntimeError with
    Paddle's last message line when it cannot run."""
    arrays = {"n": np.array(len(inputs))}
    for i, x in enumerate(inputs):
        xs = list(x) if isinstance(x, (list, tuple)) else [x]
        arrays[f"k{i}"] = np.array(len(xs))
        for k, a in enumerate(xs):
            arrays[f"x{i}_{k}"] = np.asarray(a)
    with tempfile.TemporaryDirectory(prefix="ptocr-f64-") as tmp:
        np.savez(f"{tmp}/in.npz", **arrays)
        env = dict(os.environ, FLAGS_enable_pir_api="0")
        res = subprocess.run([sys.executable, "-m", "ptocr.converter.static_fetch", "--float64",
                              prefix, f"{tmp}/in.npz", f"{tmp}/out.npz"],
                             capture_output=True, text=True, env=env)
        if res.returncode != 0:
            lines = [ln for ln in res.stderr.strip().splitlines() if ln.strip()]
            why = next((ln for ln in reversed(lines) if "Error" in ln), None)
            raise RuntimeError((why or (lines[-1] if lines else "no output")).strip()[:300])
        with np.load(f"{tmp}/out.npz") as data:
            outs = []
            for i in range(len(inputs)):
                row, j = [], 0
                while f"o{i}_{j}" in data:
                    row.append(data[f"o{i}_{j}"])
                    j += 1
                outs.append(row)
            return outs


if __name__ == "__main__":
    main(sys.argv[1:])
