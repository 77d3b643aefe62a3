"""Helpers for op-level tests: copy a paddle layer's random weights into our torch block
through the real mapping engine, and compare outputs."""

import numpy as np
import paddle
import torch

from ptocr.converter.formats import PaddleWeights
from ptocr.converter.mapping import ArchSpec, map_weights


def randomize(layer, seed=0):
    """Random values for every parameter and buffer (BN statistics included), eval mode."""
    rng = np.random.RandomState(seed)
    for name, tensor in layer.state_dict().items():
        shape = list(tensor.shape)
        if name.endswith("_variance"):
            value = rng.uniform(0.5, 1.5, shape)
        else:
            value = rng.uniform(-0.5, 0.5, shape)
        tensor.set_value(value.astype(tensor.numpy().dtype))
    layer.eval()
    return layer


def load_into(torch_module, paddle_layer, renames=(), prefix=""):
    """Fill ``torch_module`` from ``paddle_layer`` by structured name, strictly, as convert does."""
    tensors = {prefix + k: v.numpy() for k, v in paddle_layer.state_dict().items()}
    spec = ArchSpec(name="test", task="test", architecture={}, renames=list(renames))
    state, _ = map_weights(PaddleWeights("pdparams", tensors, True), torch_module, spec)
    torch_module.load_state_dict(state, strict=True)
    return torch_module.eval()


def run_both(paddle_layer, torch_module, x):
    """Outputs of both on the same numpy input (lists of numpy arrays)."""
    with torch.inference_mode():
        out = torch_module(torch.from_numpy(x))
    ref = paddle_layer(paddle.to_tensor(x))
    as_list = lambda o: list(o) if isinstance(o, (list, tuple)) else [o]
    return ([r.numpy() for r in as_list(ref)], [o.numpy() for o in as_list(out)])


def max_diff(paddle_layer, torch_module, x):
    """Largest abs difference, relative to the output's magnitude when that exceeds 1 (random
    weights can make activations large, and fp32 rounding scales with them)."""
    refs, outs = run_both(paddle_layer, torch_module, x)
    return max(scaled_diff(r, o) for r, o in zip(refs, outs))


def scaled_diff(ref, out):
    assert ref.shape == out.shape, (ref.shape, out.shape)
    return float(np.abs(ref - out).max()) / max(1.0, float(np.abs(ref).max()))


# Paddle twins of blocks several families share, written after PaddleOCR's layers.

class PaddleLAB(paddle.nn.Layer):
    """LearnableAffineBlock: scale * x + bias with two scalars."""

    def __init__(self):
        super().__init__()
        self.scale = self.create_parameter([1])
        self.bias = self.create_parameter([1])

    def forward(self, x):
        return self.scale * x + self.bias


class PaddleSE(paddle.nn.Layer):
    """Squeeze-excitation: pool, 1x1 conv, relu, 1x1 conv, hardsigmoid(slope), multiply."""

    def __init__(self, c, slope=0.1666667):
        super().__init__()
        self.slope = slope
        self.avg_pool = paddle.nn.AdaptiveAvgPool2D(1)
        self.conv1 = paddle.nn.Conv2D(c, c // 4, 1)
        self.conv2 = paddle.nn.Conv2D(c // 4, c, 1)

    def forward(self, x):
        y = self.conv2(paddle.nn.functional.relu(self.conv1(self.avg_pool(x))))
        return x * paddle.nn.functional.hardsigmoid(y, slope=self.slope, offset=0.5)


class PaddleModel(paddle.nn.Layer):
    """backbone -> neck -> head, named as PaddleOCR's BaseModel names them."""

    def __init__(self, backbone, neck, head):
        super().__init__()
        self.backbone, self.neck, self.head = backbone, neck, head

    def forward(self, x):
        return self.head(self.neck(self.backbone(x)))
