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


# ---- transformer recognisers (SVTR, ViTSTR, NRTR): paddle layers from
# tests/paddle_transformer_ref.py, written after PaddleOCR's modules

def test_dropout_downscale_in_infer_scales_at_inference():
    """SVTRNet's last Dropout(p, mode='downscale_in_infer') multiplies by 1 - p at inference,
    where torch's Dropout (and paddle's default mode) is the identity."""
    from ptocr.models.layers import DownscaleInInferDropout

    x = rand(2, 5, 1, 7)
    ref = paddle.nn.Dropout(p=0.1, mode="downscale_in_infer")
    ref.eval()
    ours = DownscaleInInferDropout(0.1).eval()
    close(ref(paddle.to_tensor(x)), ours(torch.from_numpy(x)), atol=1e-6)
    assert not np.allclose(x, ours(torch.from_numpy(x)).numpy())
    default = paddle.nn.Dropout(p=0.1)
    default.eval()
    close(default(paddle.to_tensor(x)), nn.Dropout(0.1).eval()(torch.from_numpy(x)))


@pytest.mark.parametrize("hw,k", [((8, 25), (7, 11)), ((4, 16), (3, 5)), ((2, 5), (4, 6)),
                                  ((2, 3), (7, 11))])


def test_svtr_local_attention_mask(hw, k):
    """SVTRNet's Local mixer mask, built by paddle as PaddleOCR builds it (padded grid, window
    written per token, cropped) vs ours (window offsets), even and oversized windows too."""
    import paddle_transformer_ref as P
    from ptocr.models.necks.rnn import local_window_mask

    ref = P.Attention(8, 2, "Local", list(hw), list(k)).mask.numpy()
    ours = local_window_mask(hw, k).numpy()
    assert ref.shape == ours.shape == (1, 1, hw[0] * hw[1], hw[0] * hw[1])
    assert np.array_equal(ref, ours)


@pytest.mark.parametrize("mixer", ["Global", "Local", "Conv"])


def test_svtr_block_attention_layout(mixer):
    """qkv as one [dim, 3*dim] projection split (3, heads, head_dim) after the reshape, the
    scale on q before q @ k^T, the mask added to the logits; the Conv mixer a grouped conv
    over the token grid; post-norm block."""
    import paddle_transformer_ref as P
    from paddle_ref import load_into, max_diff, randomize
    from ptocr.models.necks.rnn import Block

    ref = randomize(P.Block(12, 3, mixer, [3, 5], [4, 6], mlp_ratio=2, qkv_bias=True,
                            prenorm=False), seed=4)
    ours = load_into(Block(12, 3, 2, True, None, "gelu", 1e-6, False, mixer, (3, 5), (4, 6)),
                     ref)
    assert max_diff(ref, ours, rand(2, 24, 12)) < 1e-5


@pytest.mark.parametrize("self_attn", [True, False])


def test_nrtr_multihead_attention_layout(self_attn):
    """NRTR's attention: fused qkv (self) or q + fused kv (cross), heads split after the
    projection, scale after q @ k^T, additive mask."""
    import paddle_transformer_ref as P
    from paddle_ref import load_into, randomize
    from ptocr.models.heads.rec_nrtr_head import MultiheadAttention

    ref = randomize(P.MultiheadAttention(16, 4, self_attn=self_attn), seed=5)
    ours = load_into(MultiheadAttention(16, 4, self_attn=self_attn), ref)
    q, kv = rand(2, 5, 16), rand(2, 7, 16)
    mask = np.triu(np.full((5, 5), -np.inf, np.float32), 1)[None, None]
    key = None if self_attn else kv
    with torch.no_grad():
        out = ours(torch.from_numpy(q), None if key is None else torch.from_numpy(key),
                   torch.from_numpy(mask) if self_attn else None)
    close(ref(paddle.to_tensor(q), None if key is None else paddle.to_tensor(key),
              paddle.to_tensor(mask) if self_attn else None), out, atol=1e-4)


def test_nrtr_positional_encoding_table_and_layout():
    """The sinusoid table (sin on even, cos on odd features) in Paddle's [max_len, 1, dim]
    buffer layout, added along the sequence axis of batch-first input."""
    import paddle_transformer_ref as P
    from ptocr.models.heads.rec_nrtr_head import PositionalEncoding

    ref = P.PositionalEncoding(0.1, 32)
    ref.eval()
    ours = PositionalEncoding(32)
    assert list(ref.pe.shape) == list(ours.pe.shape) == [5000, 1, 32]
    close(ref.pe, ours.pe, atol=2e-4)  # sin/cos of large positions differ in the last bits
    close(ref.pe[:100], ours.pe[:100], atol=1e-6)
    x = rand(3, 9, 32)
    close(ref(paddle.to_tensor(x)), ours(torch.from_numpy(x)), atol=1e-6)


@pytest.mark.parametrize("width,out", [(80, 40), (64, 25), (25, 25), (16, 8), (100, 26)])


def test_adaptive_avg_pool_bins(width, out):
    """SVTRNet pools the token grid to [1, out_char_num]: same bins in both frameworks,
    also when the width does not divide."""
    x = rand(2, 4, 2, width)
    close(paddle.nn.AdaptiveAvgPool2D([1, out])(paddle.to_tensor(x)),
          nn.AdaptiveAvgPool2d((1, out))(torch.from_numpy(x)))

# ---- deformable convolution v2 (FCENet's ResNet_vd dcn stages)

DCN_CASES = [  # n, cin, h, w, cout, k, stride, pad, dilation, deformable groups, groups
    (2, 4, 7, 9, 6, 3, 1, 1, 1, 2, 1),
    (1, 4, 8, 8, 4, 3, 2, 1, 1, 1, 1),
    (1, 6, 9, 7, 6, 3, 1, 2, 2, 3, 2),
    (1, 2, 5, 5, 3, 1, 1, 0, 1, 1, 1),
]


@pytest.mark.parametrize("case", DCN_CASES)


@pytest.mark.parametrize("plain", [True, False])


def test_deform_conv2d_matches_paddle(case, plain, monkeypatch):
    """Our deform_conv2d (plain torch; torchvision's when it imports) against
    paddle.vision.ops.deform_conv2d: offsets of several pixels (samples off the image and
    straddling its border), modulation mask, deformable and conv groups, stride, dilation."""
    from ptocr.models import deform_conv as D

    if plain:
        monkeypatch.setattr(D, "_TV_DEFORM", None)
    n, c, h, w, co, k, s, p, d, dg, g = case
    rng = np.random.RandomState(sum(case))
    ho, wo = (h + 2 * p - d * (k - 1) - 1) // s + 1, (w + 2 * p - d * (k - 1) - 1) // s + 1
    x = rng.randn(n, c, h, w).astype(np.float32)
    off = (rng.randn(n, 2 * dg * k * k, ho, wo) * 3).astype(np.float32)
    mask = rng.rand(n, dg * k * k, ho, wo).astype(np.float32)
    wt = rng.randn(co, c // g, k, k).astype(np.float32)
    b = rng.randn(co).astype(np.float32)
    pd = paddle.to_tensor
    ref = paddle.vision.ops.deform_conv2d(pd(x), pd(off), pd(wt), pd(b), stride=s, padding=p,
                                          dilation=d, deformable_groups=dg, groups=g,
                                          mask=pd(mask))
    t = torch.from_numpy
    ours = D.deform_conv2d(t(x), t(off), t(wt), t(b), s, p, d, mask=t(mask), groups=g)
    close(ref, ours)
    if k > 1:
        # the layout is part of the semantics: (x, y) pairs instead of (y, x) differ
        swapped = off.reshape(n, -1, 2, ho, wo)[:, :, ::-1].reshape(off.shape).copy()
        wrong = D.deform_conv2d(t(x), t(swapped), t(wt), t(b), s, p, d, mask=t(mask), groups=g)
        assert np.abs(ref.numpy() - wrong.numpy()).max() > 1e-2
    # zero offsets and a mask of ones are a plain convolution
    zero = D.deform_conv2d(t(x), torch.zeros_like(t(off)), t(wt), t(b), s, p, d,
                           mask=torch.ones_like(t(mask)), groups=g)
    plain_conv = torch.nn.functional.conv2d(t(x), t(wt), t(b), s, p, d, groups=g)
    assert torch.allclose(zero, plain_conv, atol=1e-4)


# ---- attention layouts, masks and positional tables of the language-model recognisers
# (ABINet, VisionLAN); paddle side: the twins written after PaddleOCR's modules


def test_cross_attention_kv_layout_and_additive_inf_mask():
    """PaddleOCR's MultiheadAttention packs k and v in one [in, 2*d] projection split as
    (2, heads, head_dim); ABINet's language model adds a -inf cloze mask to the scores."""
    import paddle_lm_twins as T
    from paddle_ref import load_into
    from ptocr.models.heads.rec_nrtr_head import MultiheadAttention

    paddle.seed(1)
    ref = T.MultiheadAttention(32, 4)
    ref.eval()
    ours = load_into(MultiheadAttention(32, 4), ref)
    q, kv = rand(2, 6, 32), rand(2, 6, 32)
    lengths = np.array([2, 5])
    mask = T._get_mask(paddle.to_tensor(lengths), 6)
    out = ref(paddle.to_tensor(q), key=paddle.to_tensor(kv), attn_mask=mask)
    with torch.no_grad():
        got = ours(torch.from_numpy(q), key=torch.from_numpy(kv),
                   attn_mask=torch.from_numpy(mask.numpy()))
    close(out, got)


def test_abinet_greedy_length_and_cloze_mask():
    """The data-dependent parts of ABINet's loop: length = first end token + 1 (or all), and
    the -inf mask beyond the length and on the diagonal."""
    import paddle_lm_twins as T
    from ptocr.models.heads.rec_abinet_head import get_length, get_mask

    logits = rand(5, 26, 7)
    logits[:4, :, 0] = -9  # rows 0-3 end only where set; row 4 stays random
    logits[0, 3, 0] = logits[0, 10, 0] = 9  # two ends: the first counts
    logits[1, 0, 0] = 9  # end first
    logits[2, :, 0] = -9  # no end
    logits[3, 25, 0] = 9  # end last
    ref = T._get_length(paddle.to_tensor(logits)).numpy()
    ours = get_length(torch.from_numpy(logits)).numpy()
    np.testing.assert_array_equal(ref, ours)
    assert ours[0] == 4 and ours[1] == 1 and ours[2] == 26 and ours[3] == 26
    lengths = np.clip(ours, 2, 26)
    ref_mask = T._get_mask(paddle.to_tensor(lengths), 26).numpy()
    np.testing.assert_array_equal(ref_mask, get_mask(torch.from_numpy(lengths), 26).numpy())


def test_visionlan_head_major_attention():
    """VisionLAN's MultiHeadAttention stacks heads in the batch dimension (head-major bmm),
    scales by sqrt(d_k) and applies residual + LayerNorm inside."""
    import paddle_lm_twins as T
    from paddle_ref import load_into
    from ptocr.models.heads.rec_visionlan_head import MultiHeadAttention

    paddle.seed(2)
    ref = T.VLMultiHeadAttention(4, 32, 8, 8)
    ref.eval()
    ours = load_into(MultiHeadAttention(4, 32, 8, 8), ref)
    x = rand(3, 10, 32)
    close(ref(*[paddle.to_tensor(x)] * 3), ours(*[torch.from_numpy(x)] * 3), atol=1e-4)


def test_positional_tables_equal_paddles():
    """The sinusoid tables torch builds (used when a checkpoint lacks the buffers) are
    Paddle's: NRTR/ABINet's [max_len, 1, d] (float32 sin/cos of large angles round
    differently in the two frameworks, ~1e-5; converted models load Paddle's own buffers) and
    VisionLAN's float64-then-float32 table (exact)."""
    import paddle_lm_twins as T
    from ptocr.models.heads.rec_nrtr_head import PositionalEncoding
    from ptocr.models.heads.rec_visionlan_head import sinusoid_table

    close(T.PositionalEncoding(0, 64, 256).pe, PositionalEncoding(64, 256).pe, atol=2e-5)
    np.testing.assert_array_equal(T.VLPositionalEncoding(64, 256).pos_table.numpy(),
                                  sinusoid_table(256, 64).numpy())


@pytest.mark.parametrize("src,size", [((1, 2), (8, 32)), ((3, 5), (8, 32)), ((5, 7), (4, 9))])


def test_nearest_upsample_to_a_size(src, size):
    """ABINet's key decoder ends in nn.Upsample(size=(h, w), nearest, align_corners False)."""
    x = rand(2, 3, *src)
    ref = paddle.nn.Upsample(size=size, mode="nearest", align_corners=False)(paddle.to_tensor(x))
    close(ref, nn.Upsample(size=size, mode="nearest")(torch.from_numpy(x)), atol=0)

def test_gru_cell_gate_order_and_update_rule():
    """paddle.nn.GRUCell and torch.nn.GRUCell (AttentionHead's decoder cell) share parameter
    names, shapes, gate order (r, z, c) and h' = z·h + (1 − z)·c with the reset gate applied
    after the hidden matmul, so weights copy by name unchanged; pinned with distinct gates."""
    ref = paddle.nn.GRUCell(7, 5)
    ours = nn.GRUCell(7, 5)
    assert set(ref.state_dict()) == set(ours.state_dict())
    for value in ref.state_dict().values():
        value.set_value(rand(*value.shape))
    ours.load_state_dict({k: torch.from_numpy(v.numpy()) for k, v in ref.state_dict().items()})
    x, h = rand(3, 7), rand(3, 5)
    out, state = ref(paddle.to_tensor(x), paddle.to_tensor(h))
    close(out, ours(torch.from_numpy(x), torch.from_numpy(h)))
    close(state, out)  # paddle returns (h, h)
    # swapping r and z in torch's layout changes the result: the order is really checked
    swapped = {k: torch.from_numpy(np.concatenate([v.numpy()[5:10], v.numpy()[:5],
                                                   v.numpy()[10:]]))
               for k, v in ref.state_dict().items()}
    ours.load_state_dict(swapped)
    assert np.abs(ours(torch.from_numpy(x), torch.from_numpy(h)).detach().numpy()
                  - out.numpy()).max() > 1e-3


def test_grid_sample_paddle_default_is_align_corners_true():
    """TPS calls paddle's F.grid_sample with its defaults: bilinear, zero padding and
    align_corners=True — torch's default is False, so ptocr passes True explicitly."""
    x = rand(2, 3, 8, 12)
    grid = RNG.uniform(-1.2, 1.2, (2, 8, 12, 2)).astype(np.float32)
    ref = paddle.nn.functional.grid_sample(paddle.to_tensor(x), paddle.to_tensor(grid))
    ours = torch.nn.functional.grid_sample(torch.from_numpy(x), torch.from_numpy(grid),
                                           mode="bilinear", padding_mode="zeros",
                                           align_corners=True)
    close(ref, ours)
    default = torch.nn.functional.grid_sample(torch.from_numpy(x), torch.from_numpy(grid))
    assert np.abs(default.numpy() - ref.numpy()).max() > 1e-2

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


def test_bilinear_weight_layout():
    """paddle.nn.Bilinear and torch.nn.Bilinear: the same [out, in1, in2] weight, y_k = x1 W_k
    x2 (no transpose; LayoutXLM's RE classifier)."""
    ref = paddle.nn.Bilinear(5, 5, 2, bias_attr=False)
    ref.weight.set_value(rand(2, 5, 5))
    ours = nn.Bilinear(5, 5, 2, bias=False)
    ours.weight.data = torch.from_numpy(ref.weight.numpy())
    x1, x2 = rand(3, 5), rand(3, 5)
    close(ref(paddle.to_tensor(x1), paddle.to_tensor(x2)),
          ours(torch.from_numpy(x1), torch.from_numpy(x2)))
    ours.weight.data = ours.weight.data.transpose(1, 2).contiguous()  # the other layout differs
    assert np.abs(ours(torch.from_numpy(x1), torch.from_numpy(x2)).detach().numpy()
                  - ref(paddle.to_tensor(x1), paddle.to_tensor(x2)).numpy()).max() > 1e-3

def test_stn_tps_matrices_and_sampling_equal_paddles():
    """STN_ON (SVTR en, SEED): PaddleOCR builds the TPS kernel inverse with paddle.inverse in
    float32 — ill-conditioned, so it sits ~1e-4..1e-3 away from the exact inverse and from
    any other float32 inverse; the radial-basis rows agree to float32 rounding. With Paddle's
    matrices loaded (what conversion from an export does) the whole transform (bilinear
    align_corners resize to 32x64, regressor with BatchNorm1D, spline, clip, grid_sample)
    equals paddle's; with the computed ones (training checkpoints) it stays close."""
    import paddle_twins_stn as S
    from paddle_ref import load_into
    from ptocr.models.transforms.stn import STN_ON

    for out_size in ([32, 100], [48, 160]):
        cfg = {**S.STN_DEFAULT, "tps_outputsize": out_size}
        ref = S.randomize(S.STN_ON(3, **cfg), seed=4)
        ours = load_into(STN_ON(3, **cfg), ref)
        inv_p, repr_p = ref.tps.inverse_kernel.numpy(), ref.tps.target_coordinate_repr.numpy()
        inv_err = np.abs(ours.tps.inverse_kernel.numpy() - inv_p).max()
        assert 1e-6 < inv_err < 1e-3, inv_err
        close(repr_p, ours.tps.target_coordinate_repr, atol=1e-6)
        # a smooth image (like text, unlike pixel noise, whose steep gradients turn fp32
        # rounding of the grid, ~1e-7, into ~1e-5 of output)
        coarse = np.random.RandomState(5).uniform(-3, 3, (2, 3, 8, 32)).astype(np.float32)
        x = torch.nn.functional.interpolate(torch.from_numpy(coarse), size=(64, 256),
                                            mode="bilinear", align_corners=True).numpy()
        want = ref(paddle.to_tensor(x)).numpy()
        with torch.no_grad():
            close(want, ours(torch.from_numpy(x)), atol=2e-3)
            ours.tps.inverse_kernel.copy_(torch.from_numpy(inv_p))
            ours.tps.target_coordinate_repr.copy_(torch.from_numpy(repr_p))
            got = ours(torch.from_numpy(x))
        assert got.shape[2:] == tuple(out_size)
        # fp32 rounding of the spline (entries of the inverse reach ~90) is all that is left:
        # Paddle's own fp32 output is ~2.5e-4 from the float64 evaluation of the same
        # transform; the whole-network tests judge in float64 (~1e-8)
        close(want, got, atol=2e-4)

def test_embedding_padding_idx_lookup_is_zero_in_paddle():
    """paddle.nn.Embedding(padding_idx=p) returns zeros for index p whatever the weight row
    holds; torch's nn.Embedding reads the row (padding_idx only freezes its gradient).
    SAR's and SRN's embeddings look up their padding index (SRN: index 0, the character '0'),
    PaddleNLP's LayoutXLM word table has padding_idx=0 (<s>), so ptocr uses
    models.layers.PaddleEmbedding."""
    from ptocr.models.layers import PaddleEmbedding

    for pad in (0, 5):
        ref = paddle.nn.Embedding(6, 4, padding_idx=pad)
        ref.weight.set_value(rand(6, 4) + 2.0)  # a trained row is not zero
        ours = PaddleEmbedding(6, 4, padding_idx=pad)
        ours.weight.data = torch.from_numpy(ref.weight.numpy())
        idx = np.array([[0, 5, 3], [5, 0, 1]])
        close(ref(paddle.to_tensor(idx)), ours(torch.from_numpy(idx)), atol=0)
        plain = nn.Embedding(6, 4, padding_idx=pad)
        plain.weight.data = torch.from_numpy(ref.weight.numpy())
        assert np.abs(plain(torch.from_numpy(idx)).detach().numpy()
                      - ref(paddle.to_tensor(idx)).numpy()).max() > 1.0


def test_lstm_step_by_step_equals_the_whole_sequence():
    """SAR's decoder re-runs paddle's LSTM over the whole (steps+1)-long input at every step;
    ptocr steps a forward LSTM once per position with its state. Paddle's output at position
    i of a forward LSTM over the whole sequence equals the stepped output."""
    ref = paddle.nn.LSTM(6, 5, num_layers=2, direction="forward")
    ours = nn.LSTM(6, 5, num_layers=2, batch_first=True)
    state = {k: v for k, v in ref.state_dict().items() if "cell" not in k}
    for k, v in state.items():
        v.set_value(rand(*v.shape))
    ours.load_state_dict({k: torch.from_numpy(v.numpy()) for k, v in state.items()})
    x = rand(2, 7, 6)
    whole = ref(paddle.to_tensor(x))[0].numpy()
    h, steps = None, []
    with torch.no_grad():
        for i in range(7):
            y, h = ours(torch.from_numpy(x[:, i: i + 1]), h)
            steps.append(y)
    close(whole, torch.cat(steps, 1).numpy(), atol=1e-6)


def test_layer_norm_over_chw_keeps_flat_affine_params():
    """nn.LayerNorm([C, 1, 1]) (TableMaster's global-context block): Paddle stores the affine
    parameters flat ([C]); ptocr's ContextNorm keeps them flat and normalises over C, H, W."""
    from ptocr.models.backbones.table_master_resnet import ContextNorm

    ref = paddle.nn.LayerNorm([16, 1, 1])
    rng = np.random.RandomState(0)
    ref.weight.set_value(rng.uniform(0.5, 1.5, [16]).astype("float32"))
    ref.bias.set_value(rng.uniform(-0.5, 0.5, [16]).astype("float32"))
    assert list(ref.weight.shape) == [16]
    ours = ContextNorm(16)
    with torch.no_grad():
        ours.weight.copy_(torch.from_numpy(ref.weight.numpy()))
        ours.bias.copy_(torch.from_numpy(ref.bias.numpy()))
    x = rng.randn(2, 16, 1, 1).astype("float32")
    want = ref(paddle.to_tensor(x)).numpy()
    with torch.no_grad():
        got = ours(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, want, atol=1e-6)


@pytest.mark.parametrize("aligned,sampling_ratio,scale", [(False, -1, 1.0), (True, -1, 1.0),
                                                          (False, 2, 0.5), (True, 3, 0.25)])
def test_roi_align_matches_paddle(aligned, sampling_ratio, scale):
    """paddle.vision.ops.roi_align (SDMGR pools each text box to 7×7 with aligned=False, the
    fluid op PaddleOCR trained it with) vs ptocr.models.roi_align: adaptive and fixed
    sampling grids, half-pixel alignment, boxes partly or wholly outside the map, boxes
    thinner than a pixel, two images with their own boxes (rois_num)."""
    from ptocr.models.roi_align import roi_align

    rng = np.random.RandomState(int(aligned) * 10 + sampling_ratio + 5)
    x = rng.randn(2, 4, 23, 31).astype("float32")
    x1, y1 = rng.uniform(-10, 40, 9) / scale * 0.6, rng.uniform(-10, 30, 9) / scale * 0.6
    w, h = rng.uniform(0.1, 40, 9) / scale, rng.uniform(0.1, 25, 9) / scale
    boxes = np.stack([x1, y1, x1 + w, y1 + h], 1).astype("float32")
    boxes[0] = [200, 200, 260, 230]  # wholly outside: zeros
    num = [4, 5]
    want = paddle.vision.ops.roi_align(paddle.to_tensor(x), paddle.to_tensor(boxes),
                                       paddle.to_tensor(np.array(num, "int32")), 7,
                                       spatial_scale=scale, sampling_ratio=sampling_ratio,
                                       aligned=aligned).numpy()
    got = roi_align(torch.from_numpy(x), torch.from_numpy(boxes), num, 7, spatial_scale=scale,
                    sampling_ratio=sampling_ratio, aligned=aligned).numpy()
    assert np.abs(want[0]).max() == 0
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)

def test_glu_halves_and_robustscanner_mask_width():
    """RobustScanner's fusion: paddle's F.glu(x, -1) is the first half times the sigmoid of
    the second, as torch's; its attention mask keeps min(w, int(w * ratio + 0.5)) columns,
    computed in float32 as PaddleOCR's DotProductAttentionLayer does on a float32 ratio."""
    from ptocr.models.heads.rec_robustscanner_head import valid_widths

    x = rand(3, 5, 8)
    close(paddle.nn.functional.glu(paddle.to_tensor(x), -1),
          torch.nn.functional.glu(torch.from_numpy(x), -1), atol=1e-6)
    ratios = np.array([0.3, 0.475, 0.5125, 0.55, 0.6375, 0.9, 1.0, 0.0125], np.float32)
    for w in (40, 39, 20, 7):
        want = [min(w, int(paddle.to_tensor(r) * w + 0.5)) for r in ratios]
        assert valid_widths(torch.from_numpy(ratios), w).tolist() == want


@pytest.mark.parametrize("mask", [None, "float", "bool"])
def test_paddle_multihead_attention_layout_and_masks(mask):
    """paddle.nn.MultiHeadAttention (ParseQ's decoder): q/k/v/out projections in Paddle's
    [in, out] layout, keys longer than queries; a float mask is added, a bool mask (True =
    attend) becomes (mask - 1) * 1e9 — ptocr's PaddleMultiHeadAttention does the same."""
    from ptocr.models.layers import PaddleMultiHeadAttention
    from paddle_ref import load_into

    paddle.seed(0)
    ref = paddle.nn.MultiHeadAttention(16, 4)
    ref.eval()
    ours = load_into(PaddleMultiHeadAttention(16, 4), ref)
    q, kv = rand(2, 5, 16), rand(2, 7, 16)
    attn = None
    if mask == "float":
        attn = np.triu(np.full((5, 7), -np.inf, np.float32), 1)
    elif mask == "bool":
        attn = RNG.uniform(size=(2, 1, 5, 7)) > 0.4
        attn[..., 0] = True  # every query sees a key
    want = ref(paddle.to_tensor(q), paddle.to_tensor(kv), paddle.to_tensor(kv),
               attn_mask=None if attn is None else paddle.to_tensor(attn))
    with torch.no_grad():
        got = ours(torch.from_numpy(q), torch.from_numpy(kv), torch.from_numpy(kv),
                   None if attn is None else torch.from_numpy(attn))
    close(want, got, atol=1e-5)

# ---- RT-DETR (PP-DocLayout-L): multi-scale deformable attention sampling

def test_ms_deformable_attention_core_matches_paddledetection():
    """transformers/utils.py deformable_attention_core_func (paddle's grid_sample, bilinear,
    zeros padding, align_corners False, locations in [0, 1] -> [-1, 1]) against ours, on
    non-square levels (a swapped x/y or h/w shows) with locations beyond the map (zero
    padding) and several heads, levels and points."""
    from paddle_rtdetr_ref import deformable_attention_core_func
    from ptocr.models.heads.rtdetr_transformer import deformable_attention_core

    shapes = [(6, 9), (3, 5), (2, 2)]
    bs, heads, c, len_q, points = 2, 3, 4, 7, 4
    value = rand(bs, sum(h * w for h, w in shapes), heads, c)
    locations = RNG.uniform(-0.15, 1.15, (bs, len_q, heads, len(shapes), points, 2)
                            ).astype(np.float32)
    weights = RNG.uniform(0, 1, (bs, len_q, heads, len(shapes), points)).astype(np.float32)
    starts = [0, 54, 69]
    ref = deformable_attention_core_func(paddle.to_tensor(value), shapes, starts,
                                         paddle.to_tensor(locations), paddle.to_tensor(weights))
    ours = deformable_attention_core(torch.from_numpy(value), shapes, torch.from_numpy(locations),
                                     torch.from_numpy(weights))
    close(ref, ours)
    # the check can fail: locations read as (y, x) instead of (x, y) sample elsewhere
    swapped = deformable_attention_core(torch.from_numpy(value), shapes,
                                        torch.from_numpy(locations[..., ::-1].copy()),
                                        torch.from_numpy(weights))
    assert np.abs(ref.numpy() - swapped.numpy()).max() > 1e-2


def test_pp_ms_deformable_attention_layer_matches_paddledetection():
    """rtdetr_transformer.py PPMSDeformableAttention with box reference points (sampling at
    ref_xy + offset / points * ref_wh / 2), random weights through the mapping engine."""
    from paddle_ref import load_into, randomize
    from paddle_rtdetr_ref import PPMSDeformableAttention as PaddleAttention
    from ptocr.models.heads.rtdetr_transformer import PPMSDeformableAttention

    shapes = [(6, 9), (3, 5), (2, 2)]
    ref = randomize(PaddleAttention(16, 2, 3, 4), seed=3)
    ours = load_into(PPMSDeformableAttention(16, 2, 3, 4), ref)
    query = rand(2, 5, 16) / 3
    boxes = RNG.uniform(0.1, 0.9, (2, 5, 1, 4)).astype(np.float32)
    value = rand(2, sum(h * w for h, w in shapes), 16) / 3
    want = ref(paddle.to_tensor(query), paddle.to_tensor(boxes), paddle.to_tensor(value),
               shapes, [0, 54, 69])
    with torch.no_grad():
        got = ours(torch.from_numpy(query), torch.from_numpy(boxes), torch.from_numpy(value),
                   shapes)
    close(want, got, atol=2e-5)

@pytest.mark.parametrize("kw", [
    # PP-DocLayout's PicoDet export (PaddleDetection MultiClassNMS in the PaddleX configs)
    dict(score_threshold=0.025, nms_top_k=1000, keep_top_k=100, nms_threshold=0.6,
         normalized=True, nms_eta=1.0, background_label=-1),
    dict(score_threshold=0.3, nms_top_k=40, keep_top_k=25, nms_threshold=0.5,
         normalized=False, nms_eta=1.0, background_label=0),
    dict(score_threshold=0.1, nms_top_k=-1, keep_top_k=-1, nms_threshold=0.7,
         normalized=True, nms_eta=0.9, background_label=3),
    dict(score_threshold=2.0, nms_top_k=10, keep_top_k=10, nms_threshold=0.5,
         normalized=True, nms_eta=1.0, background_label=-1),  # nothing kept: [0, 6]
])
def test_multiclass_nms_equals_paddles_multiclass_nms3(kw):
    """models/multiclass_nms.py vs Paddle's multiclass_nms3 kernel on random boxes: equal
    scores (stable order), duplicate and inverted boxes, touching boxes; batch of 2 with
    per-image counts."""
    from ptocr.models.multiclass_nms import multiclass_nms

    rng = np.random.default_rng(7)
    n, c, m = 2, 6, 400
    xy = rng.uniform(0, 200, (n, m, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(1, 60, (n, m, 2))], -1)
    boxes = np.round(boxes * 4) / 4  # shared edges, exact overlaps
    boxes[:, 10:20] = boxes[:, 0:10]  # duplicates (IoU 1)
    boxes[:, 20:25, [0, 2]] = boxes[:, 20:25, [2, 0]]  # inverted: area 0
    boxes = boxes.astype(np.float32)
    scores = np.round(rng.uniform(0, 1, (n, c, m)) * 50) / 50  # many equal scores
    scores = scores.astype(np.float32)
    out, _, num = paddle._C_ops.multiclass_nms3(
        paddle.to_tensor(boxes), paddle.to_tensor(scores), None, kw["score_threshold"],
        kw["nms_top_k"], kw["keep_top_k"], kw["nms_threshold"], kw["normalized"],
        kw["nms_eta"], kw["background_label"])
    ours, ours_num = multiclass_nms(torch.from_numpy(boxes), torch.from_numpy(scores), **kw)
    np.testing.assert_array_equal(ours_num.numpy(), num.numpy())
    assert ours.dtype == torch.float32
    np.testing.assert_array_equal(ours.numpy(), out.numpy())
    if kw["score_threshold"] < 1:
        assert len(out.numpy()) > 20

# ---- SPIN (GA-SPIN transform, SPINAttentionHead)

def test_lstm_cell_gate_order_and_state():
    """paddle.nn.LSTMCell (SPIN's decoder cell) and torch.nn.LSTMCell: same names, [4H, in]
    layout and gate order (i, f, g, o); paddle returns (h, (h, c)), torch (h, c)."""
    ref = paddle.nn.LSTMCell(7, 5)
    ours = nn.LSTMCell(7, 5)
    assert set(ref.state_dict()) == set(ours.state_dict())
    for value in ref.state_dict().values():
        value.set_value(rand(*value.shape))
    ours.load_state_dict({k: torch.from_numpy(v.numpy()) for k, v in ref.state_dict().items()})
    x, h, c = rand(3, 7), rand(3, 5), rand(3, 5)
    out, (h2, c2) = ref(paddle.to_tensor(x), (paddle.to_tensor(h), paddle.to_tensor(c)))
    th, tc = ours(torch.from_numpy(x), (torch.from_numpy(h), torch.from_numpy(c)))
    close(out, th)
    close(h2, th)
    close(c2, tc)
    # f and g swapped changes the result: the order is really checked
    perm = np.r_[0:5, 10:15, 5:10, 15:20]
    ours.load_state_dict({k: torch.from_numpy(v.numpy()[perm])
                          for k, v in ref.state_dict().items()})
    th, _ = ours(torch.from_numpy(x), (torch.from_numpy(h), torch.from_numpy(c)))
    assert np.abs(th.detach().numpy() - out.numpy()).max() > 1e-3


def test_grid_sample_border_padding():
    """GA-SPIN samples with padding_mode='border' (align_corners True, paddle's default)."""
    x = rand(2, 1, 8, 12)
    grid = RNG.uniform(-1.3, 1.3, (2, 8, 12, 2)).astype(np.float32)
    ref = paddle.nn.functional.grid_sample(paddle.to_tensor(x), paddle.to_tensor(grid),
                                           padding_mode="border")
    ours = torch.nn.functional.grid_sample(torch.from_numpy(x), torch.from_numpy(grid),
                                           mode="bilinear", padding_mode="border",
                                           align_corners=True)
    close(ref, ours)
    zeros = torch.nn.functional.grid_sample(torch.from_numpy(x), torch.from_numpy(grid),
                                            padding_mode="zeros", align_corners=True)
    assert np.abs(zeros.numpy() - ref.numpy()).max() > 1e-2


def test_upsample_bilinear_default_and_instance_norm():
    """GA-SPIN's offsets: paddle's nn.functional.upsample(size, 'bilinear') defaults to
    align_corners False, align_mode 0 = torch's half-pixel bilinear (2x6 -> 32x100); its
    InstanceNorm2D (eps 1e-5, affine `scale`/`bias`) = torch's InstanceNorm2d(affine)."""
    x = rand(2, 1, 2, 6)
    ref = paddle.nn.functional.upsample(paddle.to_tensor(x), size=(32, 100), mode="bilinear")
    ours = torch.nn.functional.interpolate(torch.from_numpy(x), size=(32, 100),
                                           mode="bilinear", align_corners=False)
    close(ref, ours)
    pin = paddle.nn.InstanceNorm2D(3)
    assert set(pin.state_dict()) == {"scale", "bias"}
    pin.scale.set_value(rand(3))
    pin.bias.set_value(rand(3))
    tin = nn.InstanceNorm2d(3, affine=True)
    tin.load_state_dict({"weight": torch.from_numpy(pin.scale.numpy()),
                         "bias": torch.from_numpy(pin.bias.numpy())})
    y = rand(2, 3, 7, 9) * 3 + 1
    close(pin(paddle.to_tensor(y)), tin(torch.from_numpy(y)))
