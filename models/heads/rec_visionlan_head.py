"""VisionLAN's head after PaddleOCR's heads/rec_visionlan_head.py, as inference runs it: the
visual reasoning module (VRM: a transformer encoder over the ResNet45 features, then the
parallel prediction layer reading ``max_text_length + 1`` slots). The masked language-aware
module (MLM) and the shared prediction branch (``pp_share``, ``w_share``) only train; exported
programs drop them and the tables declare their checkpoint tensors unused.

Eval outputs, as Paddle's program returns them: per-slot logits (slots, N, classes) — no
softmax, VLLabelDecode applies it — and the flattened feature sequence (N, H*W, C).
"""

import math

import numpy as np
import torch
from torch import nn

from ..registry import register


def sinusoid_table(n_position, d_hid):
    """VisionLAN's table: angle pos / 10000^(2*(j//2)/d), sin on even and cos on odd dims,
    computed in float64 as numpy does, then float32 (1, n_position, d_hid)."""
    pos = np.arange(n_position, dtype=np.float64)[:, None]
    j = np.arange(d_hid)
    table = pos / np.power(10000, 2 * (j // 2) / d_hid)
    table[:, 0::2] = np.sin(table[:, 0::2])
    table[:, 1::2] = np.cos(table[:, 1::2])
    return torch.from_numpy(table.astype(np.float32))[None]


class PositionalEncoding(nn.Module):
    def __init__(self, d_hid, n_position=200):
        super().__init__()
        self.register_buffer("pos_table", sinusoid_table(n_position, d_hid))

    def forward(self, x):
        return x + self.pos_table[:, : x.shape[1]]


class MultiHeadAttention(nn.Module):
    """Separate q/k/v projections (w_qs, w_ks, w_vs), scaled by sqrt(d_k), output projection
    ``fc``, then residual and LayerNorm inside the module."""

    def __init__(self, n_head, d_model, d_k, d_v):
        super().__init__()
        self.n_head, self.d_k, self.d_v = n_head, d_k, d_v
        self.w_qs = nn.Linear(d_model, n_head * d_k)
        self.w_ks = nn.Linear(d_model, n_head * d_k)
        self.w_vs = nn.Linear(d_model, n_head * d_v)
        self.layer_norm = nn.LayerNorm(d_model)
        self.fc = nn.Linear(n_head * d_v, d_model)

    def forward(self, q, k, v):
        n, len_q, _ = q.shape
        residual = q

        def heads(t, d):
            return t.reshape(n, t.shape[1], self.n_head, d).transpose(1, 2)

        q, k, v = heads(self.w_qs(q), self.d_k), heads(self.w_ks(k), self.d_k), \
            heads(self.w_vs(v), self.d_v)
        attn = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(self.d_k), dim=-1)
        out = (attn @ v).transpose(1, 2).reshape(n, len_q, self.n_head * self.d_v)
        return self.layer_norm(self.fc(out) + residual)


class PositionwiseFeedForward(nn.Module):
    def __init__(self, d_in, d_hid):
        super().__init__()
        self.w_1 = nn.Conv1d(d_in, d_hid, 1)
        self.w_2 = nn.Conv1d(d_hid, d_in, 1)
        self.layer_norm = nn.LayerNorm(d_in)

    def forward(self, x):
        y = self.w_2(torch.relu(self.w_1(x.transpose(1, 2)))).transpose(1, 2)
        return self.layer_norm(y + x)


class EncoderLayer(nn.Module):
    def __init__(self, d_model, d_inner, n_head, d_k, d_v):
        super().__init__()
        self.slf_attn = MultiHeadAttention(n_head, d_model, d_k, d_v)
        self.pos_ffn = PositionwiseFeedForward(d_model, d_inner)

    def forward(self, x):
        return self.pos_ffn(self.slf_attn(x, x, x))


class Transformer_Encoder(nn.Module):
    def __init__(self, n_layers=2, n_head=8, d_word_vec=512, d_k=64, d_v=64, d_model=512,
                 d_inner=2048, n_position=256):
        super().__init__()
        self.position_enc = PositionalEncoding(d_word_vec, n_position=n_position)
        self.layer_stack = nn.ModuleList(
            EncoderLayer(d_model, d_inner, n_head, d_k, d_v) for _ in range(n_layers))
        self.layer_norm = nn.LayerNorm(d_model, eps=1e-6)

    def forward(self, x):
        x = self.position_enc(x)
        for layer in self.layer_stack:
            x = layer(x)
        return self.layer_norm(x)


class PP_layer(nn.Module):
    """Parallel prediction: each reading-order slot attends over the feature positions."""

    def __init__(self, n_dim=512, N_max_character=25, n_position=256):
        super().__init__()
        self.character_len = N_max_character
        self.f0_embedding = nn.Embedding(N_max_character, n_dim)
        self.w0 = nn.Linear(N_max_character, n_position)
        self.wv = nn.Linear(n_dim, n_dim)
        self.we = nn.Linear(n_dim, N_max_character)

    def forward(self, enc_output):
        order = torch.arange(self.character_len, device=enc_output.device)
        order = self.f0_embedding(order).expand(enc_output.shape[0], -1, -1)
        t = self.w0(order.transpose(1, 2)).transpose(1, 2)  # N x n_position x n_dim
        t = self.we(torch.tanh(t + self.wv(enc_output)))
        return torch.softmax(t.transpose(1, 2), dim=2) @ enc_output


class Prediction(nn.Module):
    def __init__(self, n_dim=512, n_position=256, N_max_character=25, n_class=37):
        super().__init__()
        self.pp = PP_layer(n_dim, N_max_character, n_position)
        self.w_vrm = nn.Linear(n_dim, n_class)

    def forward(self, cnn_feature):
        return self.w_vrm(self.pp(cnn_feature))


class MLM_VRM(nn.Module):
    def __init__(self, n_layers=3, n_position=256, n_dim=512, max_text_length=25, nclass=37):
        super().__init__()
        self.SequenceModeling = Transformer_Encoder(n_layers=n_layers, n_position=n_position)
        self.Prediction = Prediction(n_dim, n_position, max_text_length + 1, nclass)

    def forward(self, x):
        n, c, h, w = x.shape
        # column-major flattening (width outer, height inner), as Paddle transposes first
        x = x.transpose(2, 3).reshape(n, c, h * w).transpose(1, 2)
        text_pre = self.Prediction(self.SequenceModeling(x))
        return text_pre.transpose(0, 1), x


@register("Head")
class VLHead(nn.Module):
    """``out_channels`` is PaddleOCR's (the dictionary size); the classifier has one more
    class (0: end), which is what ``self.out_channels`` reports."""

    def __init__(self, in_channels, out_channels=36, n_layers=3, n_position=256, n_dim=512,
                 max_text_length=25, **_training_only):
        super().__init__()
        self.MLM_VRM = MLM_VRM(n_layers, n_position, n_dim, max_text_length, out_channels + 1)
        self.out_channels = out_channels + 1

    def forward(self, feat, targets=None):
        return self.MLM_VRM(feat)
