"""RT-DETR's hybrid encoder (PaddleDetection ppdet/modeling/transformers/hybrid_encoder.py),
the neck of PP-DocLayout-L: each backbone level projected to ``hidden_dim`` (1x1 conv + BN);
intra-scale attention (AIFI: a transformer encoder with a 2-D sin-cos position embedding) on
the levels in ``use_encoder_idx``; then cross-scale fusion (CCFM) as a top-down FPN and a
bottom-up PAN of CSP blocks built from RepVGG blocks.

Parameter names follow PaddleDetection's modules: ``input_proj.{i}.{0,1}``,
``encoder.{i}.layers.{j}.self_attn.in_proj_weight`` ([d, 3d], Paddle's layout, kept as it is),
``lateral_convs``, ``fpn_blocks``, ``downsample_convs``, ``pan_blocks``.
"""

import torch
from torch import nn
import torch.nn.functional as F

from ..layers import ConvBNLayer, batch_norm, make_act
from ..registry import register


class MultiHeadAttention(nn.Module):
    """PaddleDetection's ppdet/modeling/layers.py MultiHeadAttention (q = k = v dims): one
    packed input projection held as Paddle stores it, ``in_proj_weight`` [d, 3d] applied as
    x @ W (q, k, v in column blocks), scaled dot-product, ``out_proj``. ``attn_mask`` is
    additive (0 / -inf)."""

    def __init__(self, embed_dim, num_heads, dropout=0.0):
        super().__init__()
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.head_dim = embed_dim // num_heads
        self.in_proj_weight = nn.Parameter(torch.zeros(embed_dim, 3 * embed_dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * embed_dim))
        self.out_proj = nn.Linear(embed_dim, embed_dim)

    def _project(self, x, index):
        d = self.embed_dim
        x = x @ self.in_proj_weight[:, index * d:(index + 1) * d] + \
            self.in_proj_bias[index * d:(index + 1) * d]
        return x.reshape(x.shape[0], x.shape[1], self.num_heads, self.head_dim).transpose(1, 2)

    def forward(self, query, key=None, value=None, attn_mask=None):
        key = query if key is None else key
        value = query if value is None else value
        q, k, v = (self._project(t, i) for i, t in enumerate((query, key, value)))
        product = (q @ k.transpose(-1, -2)) * float(self.head_dim) ** -0.5
        if attn_mask is not None:
            product = product + attn_mask
        out = torch.softmax(product, dim=-1) @ v
        out = out.transpose(1, 2).reshape(out.shape[0], -1, self.embed_dim)
        return self.out_proj(out)


class TransformerLayer(nn.Module):
    """Post-norm encoder layer (``normalize_before`` False in RT-DETR): self-attention with
    the position embedding added to queries and keys only, then the feed-forward block."""

    def __init__(self, d_model, nhead, dim_feedforward=1024, dropout=0.0, activation="relu",
                 normalize_before=False, **_training_only):
        super().__init__()
        self.normalize_before = normalize_before
        self.self_attn = MultiHeadAttention(d_model, nhead, dropout)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.activation = make_act(activation)

    def forward(self, src, src_mask=None, pos_embed=None):
        residual = src
        if self.normalize_before:
            src = self.norm1(src)
        q = k = src if pos_embed is None else src + pos_embed
        src = residual + self.self_attn(q, k, value=src, attn_mask=src_mask)
        if not self.normalize_before:
            src = self.norm1(src)
        residual = src
        if self.normalize_before:
            src = self.norm2(src)
        src = residual + self.linear2(self.activation(self.linear1(src)))
        if not self.normalize_before:
            src = self.norm2(src)
        return src


class TransformerEncoder(nn.Module):
    def __init__(self, encoder_layer, num_layers):
        super().__init__()
        self.layers = nn.ModuleList(TransformerLayer(**encoder_layer) for _ in range(num_layers))

    def forward(self, src, src_mask=None, pos_embed=None):
        for layer in self.layers:
            src = layer(src, src_mask=src_mask, pos_embed=pos_embed)
        return src


class RepVggBlock(nn.Module):
    """3x3 conv-BN plus 1x1 conv-BN, summed, then the activation (training form; the
    checkpoints hold both branches)."""

    def __init__(self, ch_in, ch_out, act="relu"):
        super().__init__()
        self.conv1 = ConvBNLayer(ch_in, ch_out, 3, padding=1)
        self.conv2 = ConvBNLayer(ch_in, ch_out, 1, padding=0)
        self.act = make_act(act)

    def forward(self, x):
        return self.act(self.conv1(x) + self.conv2(x))


class CSPRepLayer(nn.Module):
    """Two 1x1 BaseConv branches (conv-BN-SiLU), RepVGG blocks on the first, summed, then
    ``conv3`` (identity when the hidden width is the output width)."""

    def __init__(self, in_channels, out_channels, num_blocks=3, expansion=1.0, act="silu"):
        super().__init__()
        hidden = int(out_channels * expansion)
        self.conv1 = ConvBNLayer(in_channels, hidden, 1, act="silu")
        self.conv2 = ConvBNLayer(in_channels, hidden, 1, act="silu")
        self.bottlenecks = nn.Sequential(*[RepVggBlock(hidden, hidden, act=act)
                                           for _ in range(num_blocks)])
        self.conv3 = (ConvBNLayer(hidden, out_channels, 1, act="silu")
                      if hidden != out_channels else nn.Identity())

    def forward(self, x):
        return self.conv3(self.bottlenecks(self.conv1(x)) + self.conv2(x))


def sincos_position_embedding(w, h, embed_dim=256, temperature=10000.0):
    """HybridEncoder.build_2d_sincos_position_embedding, [1, w*h, embed_dim].

    PaddleDetection meshes (w, h) with 'ij' indexing, so flat position p gets the x-frequency
    terms of p // h and the y terms of p % h, while the sequence it is added to is the
    feature map flattened row-major (p = y * w + x): the embedding is transposed relative to
    the map (and only a permutation of it off the square). Kept exactly as it is computed."""
    grid_w, grid_h = torch.meshgrid(torch.arange(int(w), dtype=torch.float32),
                                    torch.arange(int(h), dtype=torch.float32), indexing="ij")
    pos_dim = embed_dim // 4
    omega = torch.arange(pos_dim, dtype=torch.float32) / pos_dim
    omega = 1.0 / (temperature ** omega)
    out_w = grid_w.flatten()[:, None] @ omega[None]
    out_h = grid_h.flatten()[:, None] @ omega[None]
    return torch.cat([out_w.sin(), out_w.cos(), out_h.sin(), out_h.cos()], dim=1)[None]


@register("Neck")
class HybridEncoder(nn.Module):
    def __init__(self, in_channels=(512, 1024, 2048), feat_strides=(8, 16, 32), hidden_dim=256,
                 use_encoder_idx=(2,), num_encoder_layers=1, encoder_layer=None,
                 pe_temperature=10000, expansion=1.0, depth_mult=1.0, act="silu",
                 eval_size=None, **_training_only):
        super().__init__()
        in_channels = list(in_channels)
        self.in_channels, self.hidden_dim = in_channels, hidden_dim
        self.use_encoder_idx = list(use_encoder_idx)
        self.num_encoder_layers = num_encoder_layers
        self.pe_temperature = pe_temperature
        encoder_layer = dict(encoder_layer or {"d_model": hidden_dim, "nhead": 8})
        encoder_layer.pop("name", None)
        self.input_proj = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, hidden_dim, 1, bias=False), batch_norm(hidden_dim))
            for c in in_channels)
        self.encoder = nn.ModuleList(TransformerEncoder(encoder_layer, num_encoder_layers)
                                     for _ in self.use_encoder_idx)
        n_blocks = round(3 * depth_mult)
        levels = range(len(in_channels) - 1)
        # top-down FPN (from the coarsest level) and bottom-up PAN
        self.lateral_convs = nn.ModuleList(ConvBNLayer(hidden_dim, hidden_dim, 1, act="silu")
                                           for _ in levels)
        self.fpn_blocks = nn.ModuleList(CSPRepLayer(hidden_dim * 2, hidden_dim, n_blocks,
                                                    expansion, act) for _ in levels)
        self.downsample_convs = nn.ModuleList(
            ConvBNLayer(hidden_dim, hidden_dim, 3, stride=2, act="silu") for _ in levels)
        self.pan_blocks = nn.ModuleList(CSPRepLayer(hidden_dim * 2, hidden_dim, n_blocks,
                                                    expansion, act) for _ in levels)
        self.out_channels = [hidden_dim] * len(in_channels)
        # with ``eval_size`` PaddleDetection computes the position embeddings once, for that
        # input size, and an export stores them: held as buffers (an export's values are
        # taken, see paddle_computed); other input sizes compute their own
        self.paddle_computed = ()
        if eval_size:
            strides = list(feat_strides)
            for idx in self.use_encoder_idx:
                self.register_buffer(f"pos_embed{idx}", sincos_position_embedding(
                    eval_size[1] // strides[idx], eval_size[0] // strides[idx], hidden_dim,
                    pe_temperature))
            self.paddle_computed = tuple(f"pos_embed{idx}" for idx in self.use_encoder_idx)

    def forward(self, feats):
        proj = [p(f) for p, f in zip(self.input_proj, feats)]
        if self.num_encoder_layers > 0:
            for encoder, idx in zip(self.encoder, self.use_encoder_idx):
                h, w = proj[idx].shape[2:]
                src = proj[idx].flatten(2).transpose(1, 2)
                pos = getattr(self, f"pos_embed{idx}", None)
                if pos is None or pos.shape[1] != h * w:
                    pos = sincos_position_embedding(w, h, self.hidden_dim, self.pe_temperature)
                memory = encoder(src, pos_embed=pos.to(src.dtype))
                proj[idx] = memory.transpose(1, 2).reshape(-1, self.hidden_dim, h, w)
        n = len(self.in_channels)
        inner = [proj[-1]]
        for idx in range(n - 1, 0, -1):
            k = n - 1 - idx
            high = self.lateral_convs[k](inner[0])
            inner[0] = high
            up = F.interpolate(high, scale_factor=2.0, mode="nearest")
            inner.insert(0, self.fpn_blocks[k](torch.cat([up, proj[idx - 1]], dim=1)))
        outs = [inner[0]]
        for idx in range(n - 1):
            down = self.downsample_convs[idx](outs[-1])
            outs.append(self.pan_blocks[idx](torch.cat([down, inner[idx + 1]], dim=1)))
        return outs
