"""Paddle twin of PaddleOCR's ParseQ: ViTParseQ (backbones/rec_vit_parseq.py) and ParseQHead
(heads/rec_parseq_head.py, inference path), written with paddle after PaddleOCR's modules:
same module tree and parameter names (the unused ``cls_token`` included), the same ops in the
same order — the autoregressive loop over ``range(paddle.to_tensor(num_steps))`` that breaks
once every row holds an [E] (a while loop with a data-dependent exit in the saved program),
then the cloze refinement with the padding mask from the first [E] on. The MLP is the one of
tests/paddle_transformer_ref.py (PaddleOCR's ViT files share it).

Two deviations, needed to export at all and to run on a CPU, neither changing a value:
PaddleOCR builds the refinement mask as ``query_mask[np.where(temp.cpu().numpy())] = 0``
(numpy cannot run inside paddle.jit.save's tracer: "Calling nonzero on 0d arrays"), written
here as ``query_mask[temp] = 0``; and it moves the padding mask back with ``.cuda()``, which
a CPU-only paddle refuses in dygraph ("No available device found") and which a saved
program keeps as a memcpy to CUDA that Paddle Inference cannot create on CPU (both checked
on PaddleOCR's verbatim file); the twin leaves that copy out (``.cpu()`` stays).

Exported as PaddleOCR's tools/export_model.py exports a recogniser without a special case:
input [None, 3, 32, -1]; the program returns the dict's one value, ``predict``.
"""

import copy
import math

import numpy as np
import paddle
import paddle.nn as pnn

from paddle_transformer_ref import Mlp


# ---- backbones/rec_vit_parseq.py

class PAttention(pnn.Layer):
    def __init__(self, dim, num_heads=8, qkv_bias=False, qk_scale=None):
        super().__init__()
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.scale = qk_scale or head_dim ** -0.5
        self.qkv = pnn.Linear(dim, dim * 3, bias_attr=qkv_bias)
        self.attn_drop = pnn.Dropout(0.0)
        self.proj = pnn.Linear(dim, dim)
        self.proj_drop = pnn.Dropout(0.0)

    def forward(self, x):
        N, C = x.shape[1:]
        qkv = self.qkv(x).reshape((-1, N, 3, self.num_heads, C // self.num_heads)).transpose(
            (2, 0, 3, 1, 4))
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (q.matmul(k.transpose((0, 1, 3, 2)))) * self.scale
        attn = self.attn_drop(pnn.functional.softmax(attn, axis=-1))
        x = (attn.matmul(v)).transpose((0, 2, 1, 3)).reshape((-1, N, C))
        return self.proj_drop(self.proj(x))


class PBlock(pnn.Layer):
    def __init__(self, dim, num_heads, mlp_ratio=4.0, qkv_bias=False, epsilon=1e-5):
        super().__init__()
        self.norm1 = pnn.LayerNorm(dim, epsilon=epsilon)
        self.attn = PAttention(dim, num_heads=num_heads, qkv_bias=qkv_bias)
        self.drop_path = pnn.Identity()
        self.norm2 = pnn.LayerNorm(dim, epsilon=epsilon)
        self.mlp = Mlp(in_features=dim, hidden_features=int(dim * mlp_ratio), act_layer=pnn.GELU)

    def forward(self, x):
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PPatchEmbed(pnn.Layer):
    def __init__(self, img_size, patch_size, in_chans, embed_dim):
        super().__init__()
        self.img_size, self.patch_size = img_size, patch_size
        self.num_patches = (img_size[1] // patch_size[1]) * (img_size[0] // patch_size[0])
        self.proj = pnn.Conv2D(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose((0, 2, 1))


class PViTParseQ(pnn.Layer):
    def __init__(self, img_size=(32, 128), patch_size=(4, 8), in_channels=3, embed_dim=384,
                 depth=12, num_heads=6, mlp_ratio=4.0, qkv_bias=True, epsilon=1e-5):
        super().__init__()
        self.patch_embed = PPatchEmbed(img_size, patch_size, in_channels, embed_dim)
        num_patches = self.patch_embed.num_patches
        self.pos_embed = self.create_parameter(shape=(1, num_patches, embed_dim))
        self.add_parameter("pos_embed", self.pos_embed)
        self.cls_token = self.create_parameter(shape=(1, 1, embed_dim))  # never used
        self.add_parameter("cls_token", self.cls_token)
        self.pos_drop = pnn.Dropout(p=0.0)
        self.blocks = pnn.LayerList([PBlock(embed_dim, num_heads, mlp_ratio, qkv_bias, epsilon)
                                     for _ in range(depth)])
        self.norm = pnn.LayerNorm(embed_dim, epsilon=epsilon)
        self.head = pnn.Identity()  # class_num 0
        self.out_channels = embed_dim

    def forward(self, x):
        x = self.pos_drop(self.patch_embed(x) + self.pos_embed)
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x)


# ---- heads/rec_parseq_head.py

class PDecoderLayer(pnn.Layer):
    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1,
                 layer_norm_eps=1e-05):
        super().__init__()
        self.self_attn = pnn.MultiHeadAttention(d_model, nhead, dropout=dropout,
                                                need_weights=True)
        self.cross_attn = pnn.MultiHeadAttention(d_model, nhead, dropout=dropout,
                                                 need_weights=True)
        self.linear1 = pnn.Linear(d_model, dim_feedforward)
        self.dropout = pnn.Dropout(p=dropout)
        self.linear2 = pnn.Linear(dim_feedforward, d_model)
        self.norm1 = pnn.LayerNorm(d_model, epsilon=layer_norm_eps)
        self.norm2 = pnn.LayerNorm(d_model, epsilon=layer_norm_eps)
        self.norm_q = pnn.LayerNorm(d_model, epsilon=layer_norm_eps)
        self.norm_c = pnn.LayerNorm(d_model, epsilon=layer_norm_eps)
        self.dropout1 = pnn.Dropout(p=dropout)
        self.dropout2 = pnn.Dropout(p=dropout)
        self.dropout3 = pnn.Dropout(p=dropout)
        self.activation = pnn.GELU()

    def forward_stream(self, tgt, tgt_norm, tgt_kv, memory, tgt_mask, tgt_key_padding_mask):
        if tgt_key_padding_mask is not None:
            tgt_mask1 = (tgt_mask != float("-inf"))[None, None, :, :] & (
                tgt_key_padding_mask[:, None, None, :] == False)  # noqa: E712 (PaddleOCR's)
            tgt2, _ = self.self_attn(tgt_norm, tgt_kv, tgt_kv, attn_mask=tgt_mask1)
        else:
            tgt2, _ = self.self_attn(tgt_norm, tgt_kv, tgt_kv, attn_mask=tgt_mask)
        tgt = tgt + self.dropout1(tgt2)
        tgt2, _ = self.cross_attn(self.norm1(tgt), memory, memory)
        tgt = tgt + self.dropout2(tgt2)
        tgt2 = self.linear2(self.dropout(self.activation(self.linear1(self.norm2(tgt)))))
        return tgt + self.dropout3(tgt2)

    def forward(self, query, content, memory, query_mask=None, content_mask=None,
                content_key_padding_mask=None, update_content=True):
        query_norm = self.norm_q(query)
        content_norm = self.norm_c(content)
        query = self.forward_stream(query, query_norm, content_norm, memory, query_mask,
                                    content_key_padding_mask)
        if update_content:
            content = self.forward_stream(content, content_norm, content_norm, memory,
                                          content_mask, content_key_padding_mask)
        return query, content


class PDecoder(pnn.Layer):
    def __init__(self, decoder_layer, num_layers, norm):
        super().__init__()
        self.layers = pnn.LayerList([copy.deepcopy(decoder_layer) for _ in range(num_layers)])
        self.num_layers = num_layers
        self.norm = norm

    def forward(self, query, content, memory, query_mask=None, content_mask=None,
                content_key_padding_mask=None):
        for i, mod in enumerate(self.layers):
            last = i == len(self.layers) - 1
            query, content = mod(query, content, memory, query_mask, content_mask,
                                 content_key_padding_mask, update_content=not last)
        return self.norm(query)


class PTokenEmbedding(pnn.Layer):
    def __init__(self, charset_size, embed_dim):
        super().__init__()
        self.embedding = pnn.Embedding(num_embeddings=charset_size, embedding_dim=embed_dim)
        self.embed_dim = embed_dim

    def forward(self, tokens):
        return math.sqrt(self.embed_dim) * self.embedding(tokens.astype(paddle.int64))


class PParseQHead(pnn.Layer):
    def __init__(self, out_channels, max_text_length, embed_dim, dec_num_heads, dec_mlp_ratio,
                 dec_depth, decode_ar=True, refine_iters=1, dropout=0.1):
        super().__init__()
        self.bos_id, self.eos_id, self.pad_id = out_channels - 2, 0, out_channels - 1
        self.max_label_length = max_text_length
        self.decode_ar, self.refine_iters = decode_ar, refine_iters
        decoder_layer = PDecoderLayer(embed_dim, dec_num_heads, embed_dim * dec_mlp_ratio,
                                      dropout)
        self.decoder = PDecoder(decoder_layer, num_layers=dec_depth,
                                norm=pnn.LayerNorm(normalized_shape=embed_dim))
        self.head = pnn.Linear(embed_dim, out_channels - 2)
        self.text_embed = PTokenEmbedding(out_channels, embed_dim)
        self.pos_queries = paddle.create_parameter(shape=[1, max_text_length + 1, embed_dim],
                                                   dtype="float32")
        self.dropout = pnn.Dropout(p=dropout)

    def decode(self, tgt, memory, tgt_mask=None, tgt_padding_mask=None, tgt_query=None,
               tgt_query_mask=None):
        N, L = tgt.shape
        null_ctx = self.text_embed(tgt[:, :1])
        if L != 1:
            tgt_emb = self.pos_queries[:, :L - 1] + self.text_embed(tgt[:, 1:])
            tgt_emb = self.dropout(paddle.concat(x=[null_ctx, tgt_emb], axis=1))
        else:
            tgt_emb = self.dropout(null_ctx)
        if tgt_query is None:
            tgt_query = self.pos_queries[:, :L].expand(shape=[N, -1, -1])
        tgt_query = self.dropout(tgt_query)
        return self.decoder(tgt_query, tgt_emb, memory, tgt_query_mask, tgt_mask,
                            tgt_padding_mask)

    def forward_test(self, memory, max_length=None):
        testing = max_length is None
        max_length = self.max_label_length if max_length is None else min(
            max_length, self.max_label_length)
        bs = memory.shape[0]
        num_steps = max_length + 1
        pos_queries = self.pos_queries[:, :num_steps].expand(shape=[bs, -1, -1])
        tgt_mask = query_mask = paddle.triu(
            x=paddle.full(shape=(num_steps, num_steps), fill_value=float("-inf")), diagonal=1)
        if self.decode_ar:
            tgt_in = paddle.full(shape=(bs, num_steps), fill_value=self.pad_id).astype("int64")
            tgt_in[:, (0)] = self.bos_id
            logits = []
            for i in range(paddle.to_tensor(num_steps)):
                j = i + 1
                tgt_out = self.decode(tgt_in[:, :j], memory, tgt_mask[:j, :j],
                                      tgt_query=pos_queries[:, i:j],
                                      tgt_query_mask=query_mask[i:j, :j])
                p_i = self.head(tgt_out)
                logits.append(p_i)
                if j < num_steps:
                    tgt_in[:, (j)] = p_i.squeeze().argmax(axis=-1)
                    if testing and (tgt_in == self.eos_id).astype("bool").any(
                            axis=-1).astype("bool").all():
                        break
            logits = paddle.concat(x=logits, axis=1)
        else:
            tgt_in = paddle.full(shape=(bs, 1), fill_value=self.bos_id).astype("int64")
            tgt_out = self.decode(tgt_in, memory, tgt_query=pos_queries)
            logits = self.head(tgt_out)
        if self.refine_iters:
            temp = paddle.triu(x=paddle.ones(shape=[num_steps, num_steps], dtype="bool"),
                               diagonal=2)
            query_mask[temp] = 0  # PaddleOCR: query_mask[np.where(temp.cpu().numpy())] = 0
            bos = paddle.full(shape=(bs, 1), fill_value=self.bos_id).astype("int64")
            for i in range(self.refine_iters):
                tgt_in = paddle.concat(x=[bos, logits[:, :-1].argmax(axis=-1)], axis=1)
                tgt_padding_mask = (tgt_in == self.eos_id).astype(dtype="int32")
                tgt_padding_mask = tgt_padding_mask.cpu()
                tgt_padding_mask = tgt_padding_mask.cumsum(axis=-1) > 0
                # PaddleOCR: tgt_padding_mask.cuda().astype(...) (see the module note)
                tgt_padding_mask = tgt_padding_mask.astype(dtype="float32") == 1.0
                tgt_out = self.decode(tgt_in, memory, tgt_mask, tgt_padding_mask,
                                      tgt_query=pos_queries,
                                      tgt_query_mask=query_mask[:, :tgt_in.shape[1]])
                logits = self.head(tgt_out)
        return {"predict": logits}

    def forward(self, feat, targets=None):
        return self.forward_test(feat)


class PRecModel(pnn.Layer):
    def __init__(self, backbone, head):
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, x):
        return self.head(self.backbone(x))


# ---- exports (a subprocess: the tracer handles the loop's break there)

ARCH = "rec_vit_parseq"
SMALL = {
    # rec_vit_parseq at small widths: 32x128 input, 4x8 patches, 2 ViT blocks of 48 channels,
    # one decoder layer with 6 heads, max_text_length 25, parseq_dict (94) + [E], [B], [P]
    "backbone": {"img_size": [32, 128], "patch_size": [4, 8], "embed_dim": 48, "depth": 2,
                 "num_heads": 6, "mlp_ratio": 4},
    "head": {"max_text_length": 25, "embed_dim": 48, "dec_num_heads": 6, "dec_mlp_ratio": 4,
             "dec_depth": 1, "decode_ar": True, "refine_iters": 1},
    "classes": 97,
    # the [E] logit's bias: some inputs end early (every row reads [E] within a few steps and
    # the program's loop breaks), others run all 26 steps
    "eos_bias": 1.7,
}


def build(seed=5):
    """The small twin, every parameter random (eval mode)."""
    paddle.seed(seed)
    backbone = PViTParseQ(**SMALL["backbone"])
    head = PParseQHead(SMALL["classes"], **SMALL["head"])
    model = PRecModel(backbone, head)
    rng = np.random.RandomState(seed)
    for name, t in model.state_dict().items():
        shape = list(t.shape)
        scale = 1.0 / np.sqrt(shape[0]) if len(shape) == 2 and "embedding" not in name else 0.5
        t.set_value((rng.uniform(-1, 1, shape) * scale * 1.7).astype("float32"))
    bias = model.head.head.bias.numpy()
    bias[0] += SMALL["eos_bias"]
    model.head.head.bias.set_value(bias)
    model.eval()
    return model


def export(out):
    """OUT/model.pdparams (training checkpoint), OUT/pir/inference.* (PIR program) and
    OUT/pir_ar/inference.* (the same weights with refine_iters 0: the program's output is
    then the autoregressive loop's, as long as the loop ran)."""
    from pathlib import Path

    model = build()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paddle.save(model.state_dict(), str(out / "model.pdparams"))
    spec = [paddle.static.InputSpec([None, 3, 32, -1], "float32", "x")]
    paddle.jit.save(model, str(out / "pir" / "inference"), input_spec=spec)
    model = build()
    model.head.refine_iters = 0
    paddle.jit.save(model, str(out / "pir_ar" / "inference"), input_spec=spec)


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
    export(sys.argv[1])
