"""Run a Paddle 2.x inference program with the static executor and fetch intermediate
variables (used by the verifier to localise divergence).

Paddle 3 reads 2.x programs through its old static API only when FLAGS_enable_pir_api=0 is
set before paddle is imported, so this runs as its own process:

    python -m ptocr.converter.static_fetch PREFIX INPUT.npy OUTPUT.npz VAR [VAR ...]
"""

import os
import sys
import warnings

import numpy as np


def main(argv):
    prefix, input_path, output_path, *names = argv
    os.environ["FLAGS_enable_pir_api"] = "0"
    os.environ.setdefault("GLOG_minloglevel", "2")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import paddle

    paddle.enable_static()
    exe = paddle.static.Executor(paddle.CPUPlace())
    prog, feeds, _ = paddle.static.load_inference_model(prefix, exe)
    block = prog.global_block()
    values = exe.run(prog, feed={feeds[0]: np.load(input_path)},
                     fetch_list=[block.var(n) for n in names])
    np.savez(output_path, **{f"v{i}": v for i, v in enumerate(values)})


if __name__ == "__main__":
    main(sys.argv[1:])
