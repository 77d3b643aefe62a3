"""TableMasterHead (PaddleOCR's heads/table_master_head.py, after TableMASTER-mmocr's MASTER
decoder): pre-norm transformer decoder layers over the flattened backbone map, shared by two
branches — one more decoder layer each — for the structure tokens (``cls_fc``) and the
cell boxes (``bbox_fc``, sigmoid xywh fractions), both through one final LayerNorm.

Inference decodes greedily for exactly ``max_text_length + 1`` steps from <SOS> (no early
stop: the program runs the loop to the end) and returns the last step's full-sequence
outputs, ``{'loc_preds', 'structure_probs'}`` as the program returns them. Attention masks
use PaddleOCR's fp16-safe fill (-65500, not -inf), which also decides what a row of a
query that predicted <PAD> sees (a uniform softmax)."""

import copy
import math

import torch
from torch import nn

from ..registry import register
from .rec_nrtr_head import PositionalEncoding as _SinusoidalEncoding

MASK_FILL = -6.55e4


def clones(module, n):
    return nn.ModuleList(copy.deepcopy(module) for _ in range(n))


class MultiHeadAttention(nn.Module):
    """Four projections (query, key, value, output) as ``linears.0..3``."""

    def __init__(self, headers, d_model, dropout=0.0):
        super().__init__()
        assert d_model % headers == 0
        self.d_k, self.headers = d_model // headers, headers
        self.linears = clones(nn.Linear(d_model, d_model), 4)

    def forward(self, query, key, value, mask=None):
        n = query.shape[0]
        q, k, v = (lin(x).reshape(n, -1, self.headers, self.d_k).transpose(1, 2)
                   for lin, x in zip(self.linears, (query, key, value)))
        # PaddleOCR scales the keys (not the product) by 1/sqrt(d_k)
        score = q @ (k.transpose(-2, -1) / math.sqrt(self.d_k))
        if mask is not None:
            score = score.masked_fill(mask == 0, MASK_FILL)
        x = torch.softmax(score, dim=-1) @ v
        return self.linears[-1](x.transpose(1, 2).reshape(n, -1, self.headers * self.d_k))


class FeedForward(nn.Module):
    def __init__(self, d_model, d_ff, dropout=0.0):
        super().__init__()
        self.w_1 = nn.Linear(d_model, d_ff)
        self.w_2 = nn.Linear(d_ff, d_model)

    def forward(self, x):
        return self.w_2(torch.relu(self.w_1(x)))


class SubLayerConnection(nn.Module):
    """Pre-norm residual: x + sublayer(norm(x))."""

    def __init__(self, size, dropout=0.0):
        super().__init__()
        self.norm = nn.LayerNorm(size)

    def forward(self, x, sublayer):
        return x + sublayer(self.norm(x))


class DecoderLayer(nn.Module):
    def __init__(self, headers, d_model, dropout, d_ff):
        super().__init__()
        self.self_attn = MultiHeadAttention(headers, d_model, dropout)
        self.src_attn = MultiHeadAttention(headers, d_model, dropout)
        self.feed_forward = FeedForward(d_model, d_ff, dropout)
        self.sublayer = clones(SubLayerConnection(d_model, dropout), 3)

    def forward(self, x, feature, src_mask, tgt_mask):
        x = self.sublayer[0](x, lambda y: self.self_attn(y, y, y, tgt_mask))
        x = self.sublayer[1](x, lambda y: self.src_attn(y, feature, feature, src_mask))
        return self.sublayer[2](x, self.feed_forward)


class Embeddings(nn.Module):
    def __init__(self, d_model, vocab):
        super().__init__()
        self.lut = nn.Embedding(vocab, d_model)
        self.d_model = d_model

    def forward(self, x):
        return self.lut(x) * math.sqrt(self.d_model)


class PositionalEncoding(_SinusoidalEncoding):
    """NRTR's sinusoidal table, kept in this head's Paddle layout [1, max_len, d_model]."""

    def __init__(self, d_model, dropout=0.0, max_len=5000):
        super().__init__(d_model, max_len)
        self.pe = self.pe.transpose(0, 1).contiguous()

    def forward(self, x):
        return x + self.pe[:, : x.shape[1]]


@register("Head")
class TableMasterHead(nn.Module):
    def __init__(self, in_channels, out_channels=30, headers=8, d_ff=2048, dropout=0,
                 max_text_length=500, loc_reg_num=4, **_training_only):
        super().__init__()
        hidden_size = in_channels[-1] if isinstance(in_channels, (list, tuple)) else in_channels
        self.layers = clones(DecoderLayer(headers, hidden_size, dropout, d_ff), 2)
        self.cls_layer = clones(DecoderLayer(headers, hidden_size, dropout, d_ff), 1)
        self.bbox_layer = clones(DecoderLayer(headers, hidden_size, dropout, d_ff), 1)
        self.cls_fc = nn.Linear(hidden_size, out_channels)
        self.bbox_fc = nn.Sequential(nn.Linear(hidden_size, loc_reg_num), nn.Sigmoid())
        self.norm = nn.LayerNorm(hidden_size)
        self.embedding = Embeddings(hidden_size, out_channels)
        self.positional_encoding = PositionalEncoding(hidden_size)
        # TableMasterLabelDecode's tokens end with <UKN>, <SOS>, <EOS>, <PAD>
        self.SOS, self.PAD = out_channels - 3, out_channels - 1
        self.out_channels, self.loc_reg_num = out_channels, loc_reg_num
        self.max_text_length = max_text_length

    def make_mask(self, tgt):
        """Causal mask, with the rows of <PAD> queries cleared: [n, 1, L, L]."""
        length = tgt.shape[1]
        causal = torch.tril(torch.ones(length, length, dtype=torch.bool, device=tgt.device))
        return (tgt != self.PAD)[:, None, :, None] & causal

    def decode(self, tokens, feature, src_mask, tgt_mask):
        x = self.positional_encoding(self.embedding(tokens))
        for layer in self.layers:
            x = layer(x, feature, src_mask, tgt_mask)
        # each branch reads the shared layers' output; computed in Paddle's order (the
        # program-order weight alignment follows first use)
        cls_x = x
        for layer in self.cls_layer:
            cls_x = layer(x, feature, src_mask, tgt_mask)
        cls_x = self.norm(cls_x)
        bbox_x = x
        for layer in self.bbox_layer:
            bbox_x = layer(x, feature, src_mask, tgt_mask)
        return self.cls_fc(cls_x), self.bbox_fc(self.norm(bbox_x))

    def forward(self, feats, targets=None):
        feat = feats[-1]
        n, c = feat.shape[:2]
        memory = self.positional_encoding(feat.reshape(n, c, -1).transpose(1, 2))
        if self.training:  # teacher forcing on the padded structure label
            tokens = targets[0][:, :-1]
            out, loc = self.decode(tokens, memory, None, self.make_mask(tokens))
            return {"structure_probs": out, "loc_preds": loc}
        return self.greedy(memory)

    @torch.no_grad()
    def greedy(self, memory):
        tokens = torch.full((memory.shape[0], 1), self.SOS, dtype=torch.long,
                            device=memory.device)
        for _ in range(self.max_text_length + 1):
            out, loc = self.decode(tokens, memory, None, self.make_mask(tokens))
            prob = torch.softmax(out, dim=-1)  # argmax over probabilities, as Paddle picks
            tokens = torch.cat([tokens, prob[:, -1:].argmax(-1)], dim=1)
        return {"loc_preds": loc, "structure_probs": torch.softmax(out, dim=-1)}
