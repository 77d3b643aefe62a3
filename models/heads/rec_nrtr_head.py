"""PaddleOCR's NRTR ``Transformer`` head (heads/rec_nrtr_head.py): an optional encoder of
self-attention blocks over the image sequence, then a decoder that reads greedily from <s>
until every sequence of the batch predicts </s> or max_len - 1 steps have run, returning
(token ids, their probabilities) as Paddle's exported program does. NRTR (rec_mtb_nrtr)
uses the whole head; PaddleOCR's MultiHead trains a decoder-only one beside its CTC branch
(ptocr builds that only with ``--full-head``, for people who fine-tune)."""

import math

import torch
from torch import nn

from ..layers import PaddleEmbedding
from ..necks.rnn import Mlp
from ..registry import register

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
    """Post-norm block: self-attention (norm1), cross-attention to memory (norm2), MLP
    (norm3); encoder blocks have no cross-attention, ABINet's language model no
    self-attention (its cross-attention takes the cloze mask)."""

    def __init__(self, d_model, nhead, dim_feedforward, epsilon=1e-5, with_self_attn=True,
                 with_cross_attn=True):
        super().__init__()
        self.with_self_attn, self.with_cross_attn = with_self_attn, with_cross_attn
        if with_self_attn:
            self.self_attn = MultiheadAttention(d_model, nhead, self_attn=True)
            self.norm1 = nn.LayerNorm(d_model, eps=epsilon)
        if with_cross_attn:
            self.cross_attn = MultiheadAttention(d_model, nhead)
            self.norm2 = nn.LayerNorm(d_model, eps=epsilon)
        self.mlp = Mlp(d_model, dim_feedforward, act="relu")
        self.norm3 = nn.LayerNorm(d_model, eps=epsilon)

    def forward(self, tgt, memory=None, self_mask=None, cross_mask=None):
        if self.with_self_attn:
            tgt = self.norm1(tgt + self.self_attn(tgt, attn_mask=self_mask))
        if self.with_cross_attn:
            tgt = self.norm2(tgt + self.cross_attn(tgt, key=memory, attn_mask=cross_mask))
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
    def __init__(self, d_model, vocab, padding_idx=0, scale_embedding=True):
        super().__init__()
        # paddle looks up padding_idx as zeros (torch would read the row)
        self.embedding = PaddleEmbedding(vocab, d_model, padding_idx=padding_idx)
        self.d_model, self.scale_embedding = d_model, scale_embedding

    def forward(self, x):
        x = self.embedding(x)
        return x * math.sqrt(self.d_model) if self.scale_embedding else x


@register("Head")
class Transformer(nn.Module):
    """PaddleOCR's NRTR head. ``out_channels`` is the label count; the projection has one
    more class (index 0 is padding)."""

    def __init__(self, d_model=512, nhead=8, num_encoder_layers=6, beam_size=0,
                 num_decoder_layers=6, max_len=25, dim_feedforward=1024, in_channels=0,
                 out_channels=0, scale_embedding=True, **_training_only):
        super().__init__()
        if beam_size and beam_size > 0:
            raise ValueError("NRTR beam search (beam_size > 0) is not supported; exports "
                             "decode greedily (beam_size <= 0)")
        self.out_channels = out_channels + 1
        self.max_len = max_len
        self.embedding = Embeddings(d_model, self.out_channels, 0, scale_embedding)
        self.positional_encoding = PositionalEncoding(d_model)
        self.encoder = nn.ModuleList(
            TransformerBlock(d_model, nhead, dim_feedforward, with_cross_attn=False)
            for _ in range(num_encoder_layers)) if num_encoder_layers > 0 else None
        self.decoder = nn.ModuleList(
            TransformerBlock(d_model, nhead, dim_feedforward) for _ in range(num_decoder_layers))
        self.tgt_word_prj = nn.Linear(d_model, self.out_channels, bias=False)

    @staticmethod
    def causal_mask(size, device):
        return torch.triu(torch.full((size, size), float("-inf"), device=device), 1)[None, None]

    def encode(self, src):
        if self.encoder is None:
            return src
        src = self.positional_encoding(src)
        for block in self.encoder:
            src = block(src)
        return src

    def decode(self, tokens, memory):
        tgt = self.positional_encoding(self.embedding(tokens))
        mask = self.causal_mask(tokens.shape[1], tokens.device)
        for block in self.decoder:
            tgt = block(tgt, memory, self_mask=mask)
        return self.tgt_word_prj(tgt)

    def forward(self, src, targets=None):
        if self.training:  # teacher forcing on the label, as Paddle trains it
            tokens, lengths = targets[0], targets[1]
            return self.decode(tokens[:, : 2 + int(lengths.max())][:, :-1], self.encode(src))
        return self.greedy(self.encode(src))

    @torch.no_grad()
    def greedy(self, memory):
        """Greedy decoding: token ids and their probabilities, BOS first (forward_test).
        Paddle's program stops as soon as every sequence predicts EOS, so the output length
        depends on the input; stopping there too gives the program's very tensors."""
        n = memory.shape[0]
        seq = torch.full((n, 1), BOS, dtype=torch.long, device=memory.device)
        prob = torch.ones(n, 1, device=memory.device, dtype=memory.dtype)
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
    head = Transformer(nrtr_dim, nrtr_dim // 32, num_encoder_layers=-1,
                       num_decoder_layers=num_decoder_layers, max_len=max_text_length,
                       dim_feedforward=nrtr_dim * 4, out_channels=n_classes)
    return nn.Sequential(*before), head
