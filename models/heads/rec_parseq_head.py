"""ParseQHead after PaddleOCR's heads/rec_parseq_head.py (ParseQ).

A pre-norm two-stream decoder (XLNet-style): position queries attend to the embedded context
tokens (``text_embed``: sqrt(D) * embedding; context token k > 0 also gets position query
k-1 added) and then to the ViT tokens; the last layer updates only the query stream. Classes:
``out_channels`` = [E] (eos, 0) + dictionary + [B] (bos) + [P] (pad); the linear ``head``
predicts all but [B] and [P].

Inference as PaddleOCR's ``forward_test`` (the exported program's loop):
- autoregressive decoding (``decode_ar``): step i queries position i with the tokens decoded
  so far; it stops early once every row of the batch holds an [E] (so the output has as many
  steps as the program ran: the loop must stop exactly where Paddle's does);
- ``refine_iters`` rounds of cloze refinement: all max_text_length + 1 positions at once,
  each seeing every context token but its own (and none at or after a row's first [E]).
Returns the logits (no softmax), N x steps x (classes - 2), as the program's ``predict``.

Two things PaddleOCR's code does that an exported program cannot: it builds the refinement
mask with numpy (``np.where``) and moves the padding mask with ``.cpu()`` / ``.cuda()``.
Neither changes a value; on a CPU-only Paddle ``.cuda()`` fails (dygraph: no device; a saved
program holds a memcpy to CUDA that Paddle Inference cannot place on CPU), so the program
ptocr verifies against is one without that copy, and here both are plain tensor ops. The
content-stream mask of the refinement is the causal one (PaddleOCR's in-place edit of the
query mask also reaches it in dygraph but not in a saved program; only decoders deeper than
one layer, unlike every published config, would read it).
"""

import math

import torch
from torch import nn

from ..layers import PaddleMultiHeadAttention
from ..registry import register


class DecoderLayer(nn.Module):
    def __init__(self, d_model, nhead, dim_feedforward=2048, layer_norm_eps=1e-5):
        super().__init__()
        self.self_attn = PaddleMultiHeadAttention(d_model, nhead)
        self.cross_attn = PaddleMultiHeadAttention(d_model, nhead)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.norm2 = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.norm_q = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.norm_c = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.activation = nn.GELU()

    def forward_stream(self, tgt, tgt_norm, tgt_kv, memory, tgt_mask, key_padding_mask):
        if key_padding_mask is not None:  # bool: attend where unmasked and not padding
            tgt_mask = (tgt_mask != float("-inf"))[None, None] & \
                ~key_padding_mask[:, None, None, :]
        tgt = tgt + self.self_attn(tgt_norm, tgt_kv, tgt_kv, tgt_mask)
        tgt = tgt + self.cross_attn(self.norm1(tgt), memory, memory)
        return tgt + self.linear2(self.activation(self.linear1(self.norm2(tgt))))

    def forward(self, query, content, memory, query_mask=None, content_mask=None,
                content_key_padding_mask=None, update_content=True):
        query_norm, content_norm = self.norm_q(query), self.norm_c(content)
        query = self.forward_stream(query, query_norm, content_norm, memory, query_mask,
                                    content_key_padding_mask)
        if update_content:
            content = self.forward_stream(content, content_norm, content_norm, memory,
                                          content_mask, content_key_padding_mask)
        return query, content


class Decoder(nn.Module):
    def __init__(self, d_model, nhead, dim_feedforward, num_layers):
        super().__init__()
        self.layers = nn.ModuleList(DecoderLayer(d_model, nhead, dim_feedforward)
                                    for _ in range(num_layers))
        self.norm = nn.LayerNorm(d_model, eps=1e-5)

    def forward(self, query, content, memory, query_mask=None, content_mask=None,
                content_key_padding_mask=None):
        for i, layer in enumerate(self.layers):
            query, content = layer(query, content, memory, query_mask, content_mask,
                                   content_key_padding_mask,
                                   update_content=i < len(self.layers) - 1)
        return self.norm(query)


class TokenEmbedding(nn.Module):
    def __init__(self, charset_size, embed_dim):
        super().__init__()
        self.embedding = nn.Embedding(charset_size, embed_dim)
        self.embed_dim = embed_dim

    def forward(self, tokens):
        return math.sqrt(self.embed_dim) * self.embedding(tokens.long())


@register("Head")
class ParseQHead(nn.Module):
    """``forward(feat)`` (N x tokens x embed_dim) -> logits N x steps x (classes - 2).
    Inference only (training permutes the decoding order)."""

    def __init__(self, out_channels, max_text_length=25, embed_dim=384, dec_num_heads=12,
                 dec_mlp_ratio=4, dec_depth=1, decode_ar=True, refine_iters=1,
                 in_channels=None, **_training_only):
        super().__init__()
        self.out_channels = out_channels
        self.bos_id, self.eos_id, self.pad_id = out_channels - 2, 0, out_channels - 1
        self.max_label_length = max_text_length
        self.decode_ar, self.refine_iters = decode_ar, refine_iters
        self.decoder = Decoder(embed_dim, dec_num_heads, embed_dim * dec_mlp_ratio, dec_depth)
        self.head = nn.Linear(embed_dim, out_channels - 2)
        self.text_embed = TokenEmbedding(out_channels, embed_dim)
        self.pos_queries = nn.Parameter(torch.zeros(1, max_text_length + 1, embed_dim))

    def decode(self, tgt, memory, tgt_mask=None, tgt_padding_mask=None, tgt_query=None,
               tgt_query_mask=None):
        n, length = tgt.shape
        tgt_emb = self.text_embed(tgt[:, :1])  # the null context ([B])
        if length != 1:
            rest = self.pos_queries[:, :length - 1] + self.text_embed(tgt[:, 1:])
            tgt_emb = torch.cat([tgt_emb, rest], dim=1)
        if tgt_query is None:
            tgt_query = self.pos_queries[:, :length].expand(n, -1, -1)
        return self.decoder(tgt_query, tgt_emb.to(memory.dtype), memory, tgt_query_mask,
                            tgt_mask, tgt_padding_mask)

    def forward(self, feat, targets=None):
        if self.training:
            raise NotImplementedError("ParseQHead is ported for inference only")
        memory = feat
        bs, num_steps = memory.shape[0], self.max_label_length + 1
        pos_queries = self.pos_queries[:, :num_steps].expand(bs, -1, -1)
        causal = torch.triu(torch.full((num_steps, num_steps), float("-inf"),
                                       dtype=memory.dtype, device=memory.device), diagonal=1)
        if self.decode_ar:
            tgt_in = torch.full((bs, num_steps), self.pad_id, dtype=torch.long,
                                device=memory.device)
            tgt_in[:, 0] = self.bos_id
            logits = []
            for i in range(num_steps):
                j = i + 1
                out = self.decode(tgt_in[:, :j], memory, causal[:j, :j],
                                  tgt_query=pos_queries[:, i:j],
                                  tgt_query_mask=causal[i:j, :j])
                p_i = self.head(out)
                logits.append(p_i)
                if j < num_steps:
                    tgt_in[:, j] = p_i[:, 0].argmax(-1)
                    # Paddle's loop breaks once every row holds an [E]: the program's output
                    # then has j steps, so this one stops at the same step
                    if (tgt_in == self.eos_id).any(-1).all():
                        break
            logits = torch.cat(logits, dim=1)
        else:
            tgt_in = torch.full((bs, 1), self.bos_id, dtype=torch.long, device=memory.device)
            logits = self.head(self.decode(tgt_in, memory, tgt_query=pos_queries))
        if self.refine_iters:
            # cloze mask: query i sees every context token but token i + 1 (its own)
            query_mask = causal.masked_fill(
                torch.ones_like(causal, dtype=torch.bool).triu(2), 0.0)
            bos = torch.full((bs, 1), self.bos_id, dtype=torch.long, device=memory.device)
            for _ in range(self.refine_iters):
                tgt_in = torch.cat([bos, logits[:, :-1].argmax(-1)], dim=1)
                padding = (tgt_in == self.eos_id).int().cumsum(-1) > 0  # at/after first [E]
                out = self.decode(tgt_in, memory, causal, padding, tgt_query=pos_queries,
                                  tgt_query_mask=query_mask[:, :tgt_in.shape[1]])
                logits = self.head(out)
        return logits
