"""The deep-network case of the float64 verifier: PP-OCRv5_server_rec's architecture
(PPHGNetV2_B4, text_rec, + MultiHead's CTC branch: SequenceEncoder svtr + CTCHead) as paddle
writes it, with random weights at realistic activation scale.

The blocks are the twins the op-level tests already hold (PPHGNetV2 of test_server_family,
after backbones/rec_pphgnetv2.py; the svtr encoder and CTCHead of test_sequence_blocks, after
necks/rnn.py and heads/rec_ctc_head.py); MultiHead is written here after
heads/rec_multi_head.py (eval: ctc_head(ctc_encoder(x)); its NRTR branch is training-only and
absent from inference programs).

"Realistic": plain uniform weights make a 60-layer network's activations vanish or explode,
neither of which is what fp32 rounding meets on a trained model. Conv/Linear weights are
fan-in scaled (test_server_family.randomize_scaled), then every BN's running statistics are set
from the activations it actually sees on a calibration input (mean and variance, each
perturbed at random by ~20%), so each BN output is ~unit scale as after training; the CTC
classifier is scaled so the logits spread as a trained recogniser's do (std ~5; per-step
probabilities far from uniform).

Run as a script to export (2.x programs need FLAGS_enable_pir_api=0 before paddle imports;
`make fidelity` exports the full B4 this way, and PP-OCRv5_server_det with {"task": "det"}):
    python paddle_deep_rec.py pir DIR/pir CONFIG_JSON          (also writes DIR/train.pdparams)
    python paddle_deep_rec.py pdmodel DIR/pdmodel CONFIG_JSON  (the same weights, as a 2.x program)
"""

import json
import os
import sys

if __name__ == "__main__" and sys.argv[1] == "pdmodel":
    os.environ["FLAGS_enable_pir_api"] = "0"

import numpy as np  # noqa: E402
import paddle  # noqa: E402
import paddle.nn as pnn  # noqa: E402

from paddle_transformer_ref import BaseModel  # noqa: E402
from test_sequence_blocks import PCTC, PSVTR, PSVTRSeq  # noqa: E402
from test_server_family import B4_REC, PPHGNetV2, randomize_scaled  # noqa: E402


class MultiHead(pnn.Layer):
    """heads/rec_multi_head.py at inference: the CTC branch (svtr neck, CTCHead)."""

    def __init__(self, in_channels, classes, dims=120, hidden_dims=120):
        super().__init__()
        self.ctc_encoder = PSVTRSeq(PSVTR(in_channels, dims, hidden_dims))
        self.ctc_head = PCTC(dims, classes)

    def forward(self, x):
        return self.ctc_head(self.ctc_encoder(x))


def build(cfg):
    """PPHGNetV2_B4 (text_rec) + MultiHead; cfg may shorten the stages (``blocks``: blocks per
    stage) to fit a test budget, widths stay B4's. ``task: det``: PP-OCRv5_server_det instead
    (PPHGNetV2_B4 det + LKPAN with IntraCL + PFHeadLocal, test_server_family's twins; ``blocks``
    shortens its stages too)."""
    if cfg.get("task") == "det":
        from test_server_family import (B4_DET, PLKPAN, PPFHeadLocal, PaddleModel,
                                        paddle_det_model)

        if not cfg.get("blocks"):
            return paddle_det_model("PP-OCRv5_server_det")
        backbone = PPHGNetV2(_shortened(B4_DET, cfg["blocks"]), [3, 32, 48], det=True)
        return PaddleModel(backbone, PLKPAN([128, 512, 1024, 2048], 256, intracl=True),
                           PPFHeadLocal(256, mode="large"))
    stages = _shortened(B4_REC, cfg.get("blocks", []))
    backbone = PPHGNetV2(stages, [3, 32, 48], text_rec=True)
    return BaseModel(backbone, None, MultiHead(2048, cfg["classes"]))


def _shortened(stages, blocks):
    stages = {k: list(v) for k, v in stages.items()}
    for stage, n in zip(stages.values(), blocks):
        stage[3] = n
    return stages


def calibrate_batchnorm(model, x, seed=0, spread=0.2):
    """Set every BN's running statistics from its own input on ``x`` (one forward, in network
    order: each BN is set before it runs, so later BNs see calibrated activations), each
    perturbed by ``spread``."""
    rng = np.random.RandomState(seed)

    def set_stats(layer, inputs):
        a = inputs[0].numpy().astype(np.float64)
        axes = tuple(i for i in range(a.ndim) if i != 1)
        mean, var = a.mean(axes), a.var(axes)
        n = mean.shape[0]
        layer._mean.set_value(
            (mean + spread * np.sqrt(var) * rng.standard_normal(n)).astype(np.float32))
        layer._variance.set_value(
            (var * rng.uniform(1 - spread, 1 + spread, n) + 1e-4).astype(np.float32))

    hooks = [layer.register_forward_pre_hook(set_stats) for layer in model.sublayers()
             if isinstance(layer, (pnn.BatchNorm2D, pnn.BatchNorm))]
    with paddle.no_grad():
        model(paddle.to_tensor(x))
    for h in hooks:
        h.remove()
    return model


def realistic(model, cfg):
    randomize_scaled(model, seed=cfg.get("seed", 1))
    det = cfg.get("task") == "det"
    shape = (1, 3, 256, 256) if det else (2, 3, 48, 320)
    calib = np.random.RandomState(9).uniform(-1, 1, shape).astype(np.float32)
    calibrate_batchnorm(model, calib, seed=cfg.get("seed", 1))
    if det:  # the probability map's logits as a trained detector's: mostly far from 0.5
        for branch in (model.head.binarize, model.head.thresh):
            branch.conv3.weight.set_value(branch.conv3.weight.numpy() * 4)
        model.eval()
        return model
    fc = model.head.ctc_head.fc.weight
    fc.set_value(fc.numpy() * cfg.get("logit_scale", 5.0))
    model.eval()
    return model


def export(fmt, out, cfg):
    paddle.seed(0)
    model = build(cfg)
    os.makedirs(out, exist_ok=True)
    if fmt == "pir":
        realistic(model, cfg)
        paddle.save(model.state_dict(), os.path.join(out, "..", "train.pdparams"))
    else:  # the very same weights
        model.set_state_dict(paddle.load(os.path.join(out, "..", "train.pdparams")))
        model.eval()
    height = None if cfg.get("task") == "det" else 48
    spec = [paddle.static.InputSpec([None, 3, height, None], "float32", "x")]
    paddle.jit.save(model, os.path.join(out, "inference"), input_spec=spec)


if __name__ == "__main__":
    export(sys.argv[1], sys.argv[2], json.loads(sys.argv[3]))
