"""Sequence encoders after PaddleOCR's necks/rnn.py: SequenceEncoder with the reshape, fc,
rnn (2-layer BiLSTM), cascadernn (BiLSTM + linear, stacked: SPIN), svtr (SVTR global-attention block) and lightsvtr (PP-OCRv6) encoders."""

import torch
from torch import nn

from ..layers import make_act
from ..registry import register


class Im2Seq(nn.Module):
    """N×C×1×W feature map -> N×W×C sequence."""

    def __init__(self, in_channels, **_):
        super().__init__()
        self.out_channels = in_channels

    def forward(self, x):
        assert x.shape[2] == 1, f"expected height 1, got {x.shape[2]}"
        return x.squeeze(2).permute(0, 2, 1)


def paddle_rnn_aliases(prefix, num_layers, bidirectional):
    """paddle.nn.LSTM/GRU list every weight twice in their state_dict: flat (weight_ih_l0,
    as torch names it) and per cell (0.cell.weight_ih; 0.cell_fw / 0.cell_bw when
    bidirectional), the second set aliasing the first."""
    cells = ("cell_fw", "cell_bw") if bidirectional else ("cell",)
    return [f"{prefix}.{layer}.{cell}.{p}" for layer in range(num_layers) for cell in cells
            for p in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]


class EncoderWithRNN(nn.Module):
    def __init__(self, in_channels, hidden_size):
        super().__init__()
        self.out_channels = hidden_size * 2
        self.lstm = nn.LSTM(in_channels, hidden_size, num_layers=2, bidirectional=True,
                            batch_first=True)

    def paddle_unused(self):
        return paddle_rnn_aliases("lstm", 2, True)

    def forward(self, x):
        return self.lstm(x)[0]


class BidirectionalLSTM(nn.Module):
    """One (num_layers) bidirectional LSTM, optionally followed by a linear projection of its
    2·hidden outputs (PaddleOCR's names: rnn, linear)."""

    def __init__(self, input_size, hidden_size, output_size=None, num_layers=1,
                 with_linear=False):
        super().__init__()
        self.num_layers = num_layers
        self.rnn = nn.LSTM(input_size, hidden_size, num_layers=num_layers, bidirectional=True,
                           batch_first=True)
        self.linear = nn.Linear(hidden_size * 2, output_size) if with_linear else None

    def paddle_unused(self):
        # paddle.nn.LSTM's per-cell aliases of its flat weights (see EncoderWithRNN)
        return [f"rnn.{layer}.cell_{d}.{p}" for layer in range(self.num_layers)
                for d in ("fw", "bw") for p in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]

    def forward(self, x):
        x = self.rnn(x)[0]
        return x if self.linear is None else self.linear(x)


class EncoderWithCascadeRNN(nn.Module):
    """``num_layers`` BidirectionalLSTMs in a row; layer i projects to out_channels[i]."""

    def __init__(self, in_channels, hidden_size, out_channels, num_layers=2, with_linear=False):
        super().__init__()
        self.out_channels = out_channels[-1]
        self.encoder = nn.ModuleList(
            BidirectionalLSTM(in_channels if i == 0 else out_channels[i - 1], hidden_size,
                              out_channels[i], 1, with_linear) for i in range(num_layers))

    def forward(self, x):
        for layer in self.encoder:
            x = layer(x)
        return x


class EncoderWithFC(nn.Module):
    def __init__(self, in_channels, hidden_size):
        super().__init__()
        self.out_channels = hidden_size
        self.fc = nn.Linear(in_channels, hidden_size)

    def forward(self, x):
        return self.fc(x)


class SVTRConvBN(nn.Module):
    """conv -> BN -> activation, with SVTR's names (conv, norm); the neck's convs have no
    bias, SVTRNet's patch embedding's do."""

    def __init__(self, in_channels, out_channels, kernel_size=3, padding=0, act="swish",
                 stride=1, bias=False):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride,
                              padding=padding, bias=bias)
        self.norm = nn.BatchNorm2d(out_channels)
        self.act = make_act(act)

    def forward(self, x):
        return self.act(self.norm(self.conv(x)))


class Attention(nn.Module):
    """Multi-head self-attention of SVTR (one qkv projection, heads split after). ``Global``
    attends everywhere; ``Local`` adds SVTRNet's window mask over an H×W token grid (each token
    sees a local_k window around it), built once like Paddle's (a constant, not a weight)."""

    def __init__(self, dim, num_heads=8, qkv_bias=False, qk_scale=None, mixer="Global",
                 HW=None, local_k=(7, 11)):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = qk_scale or self.head_dim ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.mixer = mixer
        if mixer == "Local" and HW is not None:
            # not a weight, but Paddle programs store it (program-order mapping checks it)
            self.register_buffer("mask", local_window_mask(HW, local_k), persistent=False)
            self.paddle_constants = ("mask",)

    def forward(self, x):
        n, t, c = x.shape
        qkv = self.qkv(x).reshape(n, t, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0] * self.scale, qkv[1], qkv[2]
        attn = q @ k.transpose(-2, -1)
        if self.mixer == "Local":
            attn = attn + self.mask
        attn = torch.softmax(attn, dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(n, t, c))


def local_window_mask(HW, local_k):
    """[1, 1, H*W, H*W]: 0 where key token j lies in the hk×wk window of query token i (rows
    i-hk//2 .. i-hk//2+hk-1, likewise columns), -inf elsewhere (SVTRNet's Local mixer)."""
    h, w = HW
    hk, wk = local_k
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    ys, xs = ys.flatten(), xs.flatten()
    dy, dx = ys[None] - ys[:, None], xs[None] - xs[:, None]  # [query, key] offsets
    inside = ((dy >= -(hk // 2)) & (dy <= hk - 1 - hk // 2)
              & (dx >= -(wk // 2)) & (dx <= wk - 1 - wk // 2))
    mask = torch.full((h * w, h * w), float("-inf"))
    mask[inside] = 0.0
    return mask[None, None]


class ConvMixer(nn.Module):
    """SVTRNet's Conv mixer: a grouped conv over the H×W token grid."""

    def __init__(self, dim, num_heads=8, HW=(8, 25), local_k=(3, 3)):
        super().__init__()
        self.HW = tuple(HW)
        self.local_mixer = nn.Conv2d(dim, dim, tuple(local_k), 1,
                                     (local_k[0] // 2, local_k[1] // 2), groups=num_heads)

    def forward(self, x):
        n, t, c = x.shape
        x = self.local_mixer(x.transpose(1, 2).reshape(n, c, *self.HW))
        return x.flatten(2).transpose(1, 2)


class Mlp(nn.Module):
    def __init__(self, in_features, hidden_features, act="gelu"):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = make_act(act)
        self.fc2 = nn.Linear(hidden_features, in_features)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """SVTR transformer block, pre- or post-norm as PaddleOCR configures it; the mixer is
    Global or Local attention or a Conv mixer (SVTRNet)."""

    def __init__(self, dim, num_heads, mlp_ratio=4.0, qkv_bias=False, qk_scale=None,
                 act="gelu", epsilon=1e-6, prenorm=True, mixer="Global", local_mixer=(7, 11),
                 HW=None):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=epsilon)
        if mixer in ("Global", "Local"):
            self.mixer = Attention(dim, num_heads, qkv_bias, qk_scale, mixer, HW, local_mixer)
        elif mixer == "Conv":
            self.mixer = ConvMixer(dim, num_heads, HW, local_mixer)
        else:
            raise ValueError(f"SVTR mixer must be Global, Local or Conv, not {mixer!r}")
        self.norm2 = nn.LayerNorm(dim, eps=epsilon)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act)
        self.prenorm = prenorm

    def forward(self, x):
        if self.prenorm:
            x = self.norm1(x + self.mixer(x))
            return self.norm2(x + self.mlp(x))
        x = x + self.mixer(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class EncoderWithSVTR(nn.Module):
    def __init__(self, in_channels, dims=64, depth=2, hidden_dims=120, use_guide=False,
                 num_heads=8, qkv_bias=True, mlp_ratio=2.0, kernel_size=(3, 3), qk_scale=None,
                 **_):
        super().__init__()
        pad = [kernel_size[0] // 2, kernel_size[1] // 2]
        self.conv1 = SVTRConvBN(in_channels, in_channels // 8, kernel_size, pad)
        self.conv2 = SVTRConvBN(in_channels // 8, hidden_dims, 1)
        self.svtr_block = nn.ModuleList(
            Block(hidden_dims, num_heads, mlp_ratio, qkv_bias, qk_scale, act="swish",
                  epsilon=1e-5, prenorm=False) for _ in range(depth))
        self.norm = nn.LayerNorm(hidden_dims, eps=1e-6)
        self.conv3 = SVTRConvBN(hidden_dims, in_channels, 1)
        self.conv4 = SVTRConvBN(2 * in_channels, in_channels // 8, kernel_size, pad)
        self.conv1x1 = SVTRConvBN(in_channels // 8, dims, 1)
        self.out_channels = dims
        # use_guide only stops gradients into the backbone during training
        self.use_guide = use_guide

    def forward(self, x):
        h = x
        z = x.detach() if self.use_guide else x
        z = self.conv2(self.conv1(z))
        n, c, hh, ww = z.shape
        z = z.flatten(2).transpose(1, 2)
        for blk in self.svtr_block:
            z = blk(z)
        z = self.norm(z).reshape(n, hh, ww, c).permute(0, 3, 1, 2)
        z = torch.cat([h, self.conv3(z)], dim=1)
        return self.conv1x1(self.conv4(z))


class EncoderWithLightSVTR(nn.Module):
    """PP-OCRv6's neck: a 1x1 skip conv added to [1x1 reduce -> + local (1 x k depthwise)
    conv -> SVTR global blocks -> LayerNorm]."""

    def __init__(self, in_channels, dims=64, depth=1, num_heads=8, qkv_bias=True,
                 mlp_ratio=4.0, qk_scale=None, local_kernel=7, use_guide=False, **_):
        super().__init__()
        self.conv_reduce = SVTRConvBN(in_channels, dims, 1)
        self.local_conv = nn.Sequential(
            nn.Conv2d(dims, dims, (1, local_kernel), padding=(0, local_kernel // 2),
                      groups=dims, bias=False),
            nn.BatchNorm2d(dims), nn.SiLU())
        self.svtr_block = nn.ModuleList(
            Block(dims, num_heads, mlp_ratio, qkv_bias, qk_scale, act="swish", epsilon=1e-5,
                  prenorm=False) for _ in range(depth))
        self.norm = nn.LayerNorm(dims, eps=1e-6)
        self.skip_conv = SVTRConvBN(in_channels, dims, 1)
        self.out_channels = dims
        self.use_guide = use_guide  # stops gradients into the backbone while training

    def forward(self, x):
        x = x.detach() if self.use_guide else x
        skip = self.skip_conv(x)
        z = self.conv_reduce(x)
        z = z + self.local_conv(z)
        n, c, hh, ww = z.shape
        z = z.flatten(2).transpose(1, 2)
        for blk in self.svtr_block:
            z = blk(z)
        z = self.norm(z).reshape(n, hh, ww, c).permute(0, 3, 1, 2)
        return z + skip


ENCODERS = {"fc": EncoderWithFC, "rnn": EncoderWithRNN, "svtr": EncoderWithSVTR,
            "lightsvtr": EncoderWithLightSVTR, "cascadernn": EncoderWithCascadeRNN}


@register("Neck")
class SequenceEncoder(nn.Module):
    def __init__(self, in_channels, encoder_type, hidden_size=48, **kwargs):
        super().__init__()
        self.encoder_reshape = Im2Seq(in_channels)
        self.encoder_type = encoder_type
        if encoder_type == "reshape":
            self.encoder = None
            self.out_channels = in_channels
            return
        if encoder_type not in ENCODERS:
            raise ValueError(f"unsupported SequenceEncoder type {encoder_type!r} "
                             f"(supported: reshape, {', '.join(ENCODERS)})")
        if encoder_type in ("svtr", "lightsvtr"):
            self.encoder = ENCODERS[encoder_type](in_channels, **kwargs)
        elif encoder_type == "cascadernn":
            self.encoder = EncoderWithCascadeRNN(in_channels, hidden_size, **kwargs)
        else:
            self.encoder = ENCODERS[encoder_type](in_channels, hidden_size)
        self.out_channels = self.encoder.out_channels

    def forward(self, x):
        if self.encoder_type in ("svtr", "lightsvtr"):  # these work on the 2-D map, then flattens
            return self.encoder_reshape(self.encoder(x))
        x = self.encoder_reshape(x)
        return x if self.encoder is None else self.encoder(x)
