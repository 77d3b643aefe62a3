"""The NRTR sequence head that PaddleOCR's MultiHead trains beside the CTC branch
(heads/rec_nrtr_head.py, decoder-only as MultiHead builds it). Inference programs do not
run it; ptocr builds it only with ``--full-head``, for people who fine-tune."""

import math

import torch
from torch import nn

from ..necks.rnn import Mlp

BOS, EOS = 2, 3  # PaddleOCR's NRTR label encoding: 0 pad, 1 unk, 2 <s>, 3 </s>


class MultiheadAttention(nn.Module):
    """Self-attention (one qkv projection) or cross-attention (q and kv projections)."""

    def __init__(self, embed_dim, num_heads, self_attn=False):
        super().__init__()
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.head_dim = embed_dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.self_attn = self_attn
        if self_attn:
            self.qkv = nn.Linear(embed_dim, embed_dim * 3)
        else:
            self.q = nn.Linear(embed_dim, embed_dim)
            self.kv = nn.Linear(embed_dim, embed_dim * 2)
        self.out_proj = nn.Linear(embed_dim, embed_dim)

    def _heads(self, x, parts):
        n, t, _ = x.shape
        return x.reshape(n, t, parts, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)

    def forward(self, query, key=None, attn_mask=None):
        if self.self_attn:
            q, k, v = self._heads(self.qkv(query), 3)
        else:
            q = self._heads(self.q(query), 1)[0]
            k, v = self._heads(self.kv(key), 2)
        attn = (q @ k.transpose(-2, -1)) * self.scale
        if attn_mask is not None:
            attn = attn + attn_mask
        x = torch.softmax(attn, dim=-1) @ v
        n, _, t, _ = x.shape
        return self.out_proj(x.transpose(1, 2).reshape(n, t, self.embed_dim))


class TransformerBlock(nn.Module):
    """Post-norm decoder block: self-attention, cross-attention to the image, MLP."""

    def __init__(self, d_model, nhead, dim_feedforward, epsilon=1e-5):
        super().__init__()
        self.self_attn = MultiheadAttention(d_model, nhead, self_attn=True)
        self.norm1 = nn.LayerNorm(d_model, eps=epsilon)
        self.cross_attn = MultiheadAttention(d_model, nhead)
        self.norm2 = nn.LayerNorm(d_model, eps=epsilon)
        self.mlp = Mlp(d_model, dim_feedforward, act="relu")
        self.norm3 = nn.LayerNorm(d_model, eps=epsilon)

    def forward(self, tgt, memory, self_mask=None):
        tgt = self.norm1(tgt + self.self_attn(tgt, attn_mask=self_mask))
        tgt = self.norm2(tgt + self.cross_attn(tgt, key=memory))
        return self.norm3(tgt + self.mlp(tgt))


class PositionalEncoding(nn.Module):
    def __init__(self, dim, max_len=5000):
        super().__init__()
        position = torch.arange(max_len, dtype=torch.float32).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32)
                             * (-math.log(10000.0) / dim))
        pe = torch.zeros(max_len, dim)
        pe[:, 0::2] = torch.sin(position * div_term)
        pe[:, 1::2] = torch.cos(position * div_term)
        # Paddle registers it as a persistable [max_len, 1, dim] buffer; keep its layout
        self.register_buffer("pe", pe.unsqueeze(1))

    def forward(self, x):  # x: N×T×C
        return x + self.pe[: x.shape[1]].transpose(0, 1)


class Embeddings(nn.Module):
    def __init__(self, d_model, vocab, padding_idx=0):
        super().__init__()
        self.embedding = nn.Embedding(vocab, d_model, padding_idx=padding_idx)
        self.d_model = d_model

    def forward(self, x):
        return self.embedding(x) * math.sqrt(self.d_model)


class NRTRDecoder(nn.Module):
    """PaddleOCR's Transformer with num_encoder_layers=-1: the image features are memory."""

    def __init__(self, d_model, nhead, num_decoder_layers, dim_feedforward, out_channels,
                 max_len=25):
        super().__init__()
        self.out_channels = out_channels + 1
        self.max_len = max_len
        self.embedding = Embeddings(d_model, self.out_channels)
        self.positional_encoding = PositionalEncoding(d_model)
        self.decoder = nn.ModuleList(
            TransformerBlock(d_model, nhead, dim_feedforward) for _ in range(num_decoder_layers))
        self.tgt_word_prj = nn.Linear(d_model, self.out_channels, bias=False)

    @staticmethod
    def causal_mask(size, device):
        return torch.triu(torch.full((size, size), float("-inf"), device=device), 1)[None, None]

    def decode(self, tokens, memory):
        tgt = self.positional_encoding(self.embedding(tokens))
        mask = self.causal_mask(tokens.shape[1], tokens.device)
        for block in self.decoder:
            tgt = block(tgt, memory, self_mask=mask)
        return self.tgt_word_prj(tgt)

    def forward(self, memory, targets=None):
        if self.training:  # teacher forcing on the label, as Paddle trains it
            tokens, lengths = targets[0], targets[1]
            return self.decode(tokens[:, : 2 + int(lengths.max())][:, :-1], memory)
        return self.greedy(memory)

    @torch.no_grad()
    def greedy(self, memory):
        """Greedy decoding: token ids and their probabilities, BOS first (forward_test)."""
        n = memory.shape[0]
        seq = torch.full((n, 1), BOS, dtype=torch.long, device=memory.device)
        prob = torch.ones(n, 1, device=memory.device)
        for _ in range(1, self.max_len):
            word = torch.softmax(self.decode(seq, memory)[:, -1], dim=-1)
            p, idx = word.max(dim=-1)
            if bool((idx == EOS).all()):
                break
            seq = torch.cat([seq, idx[:, None]], dim=1)
            prob = torch.cat([prob, p[:, None]], dim=1)
        return seq, prob


class FCTranspose(nn.Module):
    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.fc = nn.Linear(in_channels, out_channels, bias=False)

    def forward(self, x):
        return self.fc(x.transpose(1, 2))


class AddPos(nn.Module):
    def __init__(self, dim, width):
        super().__init__()
        self.dec_pos_embed = nn.Parameter(torch.zeros(1, width, dim))

    def forward(self, x):
        return x + self.dec_pos_embed[:, : x.shape[1]]


def build_gtc_branch(in_channels, n_classes, nrtr_dim=256, max_text_length=25,
                     num_decoder_layers=4, use_pos=False, **_):
    """(before_gtc, gtc_head) named and shaped as PaddleOCR's MultiHead builds them."""
    before = [nn.Flatten(2), FCTranspose(in_channels, nrtr_dim)]
    if use_pos:
        before.append(AddPos(nrtr_dim, 80))
    head = NRTRDecoder(nrtr_dim, nrtr_dim // 32, num_decoder_layers, nrtr_dim * 4, n_classes,
                       max_text_length)
    return nn.Sequential(*before), head
