"""Framework differences between Paddle and torch, each pinned by paddle op vs our torch op
on random inputs and weights (see DESIGN.md). Family-specific ones (LSTM gate order,
interpolation modes, avg-pool ceil mode, ...) live with their families' tests."""

import numpy as np
import paddle
import pytest
import torch
from torch import nn

from ptocr.converter.mapping import to_torch_layout
from ptocr.models.layers import PaddleHardsigmoid, batch_norm, upsample_nearest

RNG = np.random.RandomState(0)


def rand(*shape):
    return RNG.uniform(-3, 3, shape).astype(np.float32)


def close(p, t, atol=1e-5):
    p = p.numpy() if hasattr(p, "numpy") else p
    t = t.detach().numpy() if hasattr(t, "detach") else t
    assert p.shape == t.shape
    np.testing.assert_allclose(p, t, atol=atol, rtol=0)


def test_linear_weight_is_in_out_in_paddle():
    layer = paddle.nn.Linear(5, 3)
    assert list(layer.weight.shape) == [5, 3]
    ours = nn.Linear(5, 3)
    ours.weight.data = torch.from_numpy(
        np.ascontiguousarray(to_torch_layout(layer.weight.numpy(), nn.Linear, "weight")))
    ours.bias.data = torch.from_numpy(layer.bias.numpy())
    x = rand(4, 5)
    close(layer(paddle.to_tensor(x)), ours(torch.from_numpy(x)))


def test_batchnorm_names_epsilon_and_momentum():
    layer = paddle.nn.BatchNorm2D(6)
    names = set(layer.state_dict())
    assert names == {"weight", "bias", "_mean", "_variance"}
    assert layer._epsilon == pytest.approx(1e-5) and layer._momentum == pytest.approx(0.9)
    for p in (layer.weight, layer.bias, layer._mean):
        p.set_value(rand(6))
    layer._variance.set_value(np.abs(rand(6)) + 0.1)
    layer.eval()
    ours = batch_norm(6).eval()
    ours.load_state_dict({"weight": torch.from_numpy(layer.weight.numpy()),
                          "bias": torch.from_numpy(layer.bias.numpy()),
                          "running_mean": torch.from_numpy(layer._mean.numpy()),
                          "running_var": torch.from_numpy(layer._variance.numpy()),
                          "num_batches_tracked": torch.tensor(0)})
    x = rand(2, 6, 5, 5)
    close(layer(paddle.to_tensor(x)), ours(torch.from_numpy(x)))
    # momentum conventions are complementary: one training step moves the running mean alike
    layer.train(), ours.train()
    layer(paddle.to_tensor(x)), ours(torch.from_numpy(x))
    close(layer._mean, ours.running_mean)


@pytest.mark.parametrize("slope,offset", [(0.1666667, 0.5), (0.2, 0.5)])
def test_hardsigmoid_slope_and_offset(slope, offset):
    x = rand(1000)
    ref = paddle.nn.functional.hardsigmoid(paddle.to_tensor(x), slope=slope, offset=offset)
    close(ref, PaddleHardsigmoid(slope, offset)(torch.from_numpy(x)), atol=1e-6)


def test_hardsigmoid_slope_matters():
    x = np.array([1.0, 2.0], dtype=np.float32)
    a = paddle.nn.functional.hardsigmoid(paddle.to_tensor(x), slope=0.2).numpy()
    b = torch.nn.functional.hardsigmoid(torch.from_numpy(x)).numpy()
    assert np.abs(a - b).max() > 0.03  # torch's hardsigmoid is not PaddleOCR's slope-0.2 one


def test_hardswish_matches():
    x = rand(1000)
    close(paddle.nn.functional.hardswish(paddle.to_tensor(x)),
          torch.nn.functional.hardswish(torch.from_numpy(x)), atol=1e-6)


def test_conv_transpose_weight_layout():
    layer = paddle.nn.Conv2DTranspose(4, 6, 2, stride=2)
    assert list(layer.weight.shape) == [4, 6, 2, 2]  # [in, out/groups, kh, kw], as torch
    ours = nn.ConvTranspose2d(4, 6, 2, stride=2)
    ours.weight.data = torch.from_numpy(layer.weight.numpy())
    ours.bias.data = torch.from_numpy(layer.bias.numpy())
    x = rand(1, 4, 5, 7)
    close(layer(paddle.to_tensor(x)), ours(torch.from_numpy(x)))


@pytest.mark.parametrize("scale", [2, 4, 8])
def test_nearest_upsample_align_mode_1(scale):
    x = rand(1, 3, 5, 7)
    ref = paddle.nn.functional.upsample(paddle.to_tensor(x), scale_factor=scale,
                                        mode="nearest", align_mode=1)
    close(ref, upsample_nearest(torch.from_numpy(x), scale), atol=0)


@pytest.mark.parametrize("size", [1, (1, 40), (3, 5)])
def test_adaptive_avg_pool_uneven_bins(size):
    x = rand(2, 3, 7, 81)
    ref = paddle.nn.functional.adaptive_avg_pool2d(paddle.to_tensor(x), size)
    close(ref, torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(x), size))


def test_avg_pool_kernel_as_stride():
    x = rand(1, 4, 3, 40)
    ref = paddle.nn.functional.avg_pool2d(paddle.to_tensor(x), [3, 2])
    close(ref, torch.nn.functional.avg_pool2d(torch.from_numpy(x), [3, 2]))


@pytest.mark.parametrize("eps", [1e-5, 1e-6])
def test_layer_norm_epsilon(eps):
    layer = paddle.nn.LayerNorm(8, epsilon=eps)
    assert layer._epsilon == eps  # per model: PaddleOCR's SVTR uses 1e-6, paddle default 1e-5
    layer.weight.set_value(rand(8)), layer.bias.set_value(rand(8))
    ours = nn.LayerNorm(8, eps=eps)
    ours.weight.data = torch.from_numpy(layer.weight.numpy())
    ours.bias.data = torch.from_numpy(layer.bias.numpy())
    x = rand(3, 5, 8) * 0.001  # small variance makes epsilon visible
    close(layer(paddle.to_tensor(x)), ours(torch.from_numpy(x)), atol=1e-4)


def test_embedding_layout():
    layer = paddle.nn.Embedding(10, 4)
    assert list(layer.weight.shape) == [10, 4]  # same as torch, not transposed
    ours = nn.Embedding(10, 4)
    ours.weight.data = torch.from_numpy(layer.weight.numpy())
    idx = np.array([[1, 9, 3]])
    close(layer(paddle.to_tensor(idx)), ours(torch.from_numpy(idx)), atol=0)


def test_softmax_and_sigmoid_heads():
    x = rand(2, 7, 11)
    close(paddle.nn.functional.softmax(paddle.to_tensor(x), axis=2),
          torch.softmax(torch.from_numpy(x), dim=2), atol=1e-6)
    close(paddle.nn.functional.sigmoid(paddle.to_tensor(x)), torch.sigmoid(torch.from_numpy(x)),
          atol=1e-6)


def test_lstm_gate_order_and_bidirectional_layout():
    """paddle.nn.LSTM and torch.nn.LSTM share parameter names, shapes, gate order (i, f, g,
    o) and the reverse-direction layout, so weights copy by name unchanged."""
    ref = paddle.nn.LSTM(6, 5, num_layers=2, direction="bidirectional")
    ours = nn.LSTM(6, 5, num_layers=2, bidirectional=True, batch_first=True)
    flat = {k: v for k, v in ref.state_dict().items() if "cell_" not in k}
    assert set(flat) == set(ours.state_dict())
    for name, value in flat.items():
        value.set_value(rand(*value.shape) * 0.3)
    ours.load_state_dict({k: torch.from_numpy(v.numpy()) for k, v in flat.items()})
    x = rand(2, 9, 6)
    out, _ = ref(paddle.to_tensor(x))
    close(out, ours(torch.from_numpy(x))[0])


@pytest.mark.parametrize("align_corners", [True, False])
def test_grid_sample_bilinear(align_corners):
    x = rand(1, 3, 6, 10)
    grid = RNG.uniform(-1.1, 1.1, (1, 4, 7, 2)).astype(np.float32)
    ref = paddle.nn.functional.grid_sample(paddle.to_tensor(x), paddle.to_tensor(grid),
                                           mode="bilinear", padding_mode="zeros",
                                           align_corners=align_corners)
    ours = torch.nn.functional.grid_sample(torch.from_numpy(x), torch.from_numpy(grid),
                                           mode="bilinear", padding_mode="zeros",
                                           align_corners=align_corners)
    close(ref, ours)


@pytest.mark.parametrize("mode,align", [("bilinear", False), ("bilinear", True)])
def test_bilinear_interpolate_modes(mode, align):
    x = rand(1, 2, 5, 7)
    ref = paddle.nn.functional.interpolate(paddle.to_tensor(x), size=[9, 13], mode=mode,
                                           align_corners=align, align_mode=0)
    ours = torch.nn.functional.interpolate(torch.from_numpy(x), size=[9, 13], mode=mode,
                                           align_corners=align)
    close(ref, ours)


def test_bilinear_align_mode_1_differs_from_torch():
    """Paddle's align_mode=1 (src = dst * scale) has no torch flag; a model using it needs its
    own sampling, so we pin that the two disagree."""
    x = rand(1, 1, 4, 4)
    ref = paddle.nn.functional.interpolate(paddle.to_tensor(x), scale_factor=2, mode="bilinear",
                                           align_corners=False, align_mode=1).numpy()
    ours = torch.nn.functional.interpolate(torch.from_numpy(x), scale_factor=2,
                                           mode="bilinear", align_corners=False).numpy()
    assert np.abs(ref - ours).max() > 1e-3


def test_gru_cell_gate_order_and_layout():
    """paddle.nn.GRUCell and torch.nn.GRUCell: same parameter names and [3H, in] layout (not
    Linear's transpose), same gate order (r, z, c) and update h' = z*h + (1-z)*c, and paddle
    returns (h', h'); SLAHead's attention cell relies on this."""
    ref = paddle.nn.GRUCell(7, 5)
    ours = nn.GRUCell(7, 5)
    assert set(ref.state_dict()) == set(ours.state_dict())
    for name, value in ref.state_dict().items():
        value.set_value(rand(*value.shape) * 0.3)
    ours.load_state_dict({k: torch.from_numpy(v.numpy()) for k, v in ref.state_dict().items()})
    x, h = rand(3, 7), rand(3, 5) * 0.3
    out, state = ref(paddle.to_tensor(x), paddle.to_tensor(h))
    close(out, ours(torch.from_numpy(x), torch.from_numpy(h)))
    close(state, out.numpy(), atol=0)
