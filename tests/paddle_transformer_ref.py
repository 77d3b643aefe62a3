"""Paddle twins of PaddleOCR's transformer recognisers, transcribed from its modules
(backbones/rec_svtrnet.py SVTRNet, backbones/rec_vitstr.py ViTSTR, backbones/rec_nrtr_mtb.py
MTB, heads/rec_nrtr_head.py Transformer, necks/rnn.py reshape, heads/rec_ctc_head.py
CTCHead): same module tree, so the same state_dict() names. Dropout layers and drop paths
are kept where they own no parameters but matter at inference (SVTRNet's last dropout is
'downscale_in_infer'). Used in-process by the op-level tests and as a script by the export
tests (``python paddle_transformer_ref.py ARCH FORMAT OUT CONFIG_JSON``)."""

import json
import math
import os
import sys

if __name__ == "__main__" and sys.argv[2] == "pdmodel":
    os.environ["FLAGS_enable_pir_api"] = "0"  # before paddle is imported

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F


# ---- rec_svtrnet.py

class ConvBNLayer(nn.Layer):
    def __init__(self, cin, cout, kernel_size=3, stride=1, padding=0, bias_attr=False,
                 groups=1, act=nn.GELU):
        super().__init__()
        self.conv = nn.Conv2D(cin, cout, kernel_size, stride, padding, groups=groups,
                              bias_attr=bias_attr)
        self.norm = nn.BatchNorm2D(cout)
        self.act = act()

    def forward(self, x):
        return self.act(self.norm(self.conv(x)))


class Mlp(nn.Layer):
    def __init__(self, in_features, hidden_features=None, out_features=None,
                 act_layer=nn.GELU, drop=0.0):
        super().__init__()
        out_features = out_features or in_features
        hidden_features = hidden_features or in_features
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = act_layer()
        self.fc2 = nn.Linear(hidden_features, out_features)
        self.drop = nn.Dropout(drop)

    def forward(self, x):
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class ConvMixer(nn.Layer):
    def __init__(self, dim, num_heads=8, HW=[8, 25], local_k=[3, 3]):
        super().__init__()
        self.HW = HW
        self.dim = dim
        self.local_mixer = nn.Conv2D(dim, dim, local_k, 1, [local_k[0] // 2, local_k[1] // 2],
                                     groups=num_heads)

    def forward(self, x):
        h, w = self.HW
        x = x.transpose([0, 2, 1]).reshape([0, self.dim, h, w])
        x = self.local_mixer(x)
        return x.flatten(2).transpose([0, 2, 1])


class Attention(nn.Layer):
    def __init__(self, dim, num_heads=8, mixer="Global", HW=None, local_k=[7, 11],
                 qkv_bias=False, qk_scale=None):
        super().__init__()
        self.num_heads = num_heads
        self.dim = dim
        self.head_dim = dim // num_heads
        self.scale = qk_scale or self.head_dim ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias_attr=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.HW = HW
        if mixer == "Local" and HW is not None:
            H, W = HW
            hk, wk = local_k
            mask = paddle.ones([H * W, H + hk - 1, W + wk - 1], dtype="float32")
            for h in range(0, H):
                for w in range(0, W):
                    mask[h * W + w, h:h + hk, w:w + wk] = 0.0
            mask_paddle = mask[:, hk // 2:H + hk // 2, wk // 2:W + wk // 2].flatten(1)
            mask_inf = paddle.full([H * W, H * W], "-inf", dtype="float32")
            mask = paddle.where(mask_paddle < 1, mask_paddle, mask_inf)
            self.mask = mask.unsqueeze([0, 1])
        self.mixer = mixer

    def forward(self, x):
        qkv = self.qkv(x).reshape((0, -1, 3, self.num_heads, self.head_dim)).transpose(
            (2, 0, 3, 1, 4))
        q, k, v = qkv[0] * self.scale, qkv[1], qkv[2]
        attn = q.matmul(k.transpose((0, 1, 3, 2)))
        if self.mixer == "Local":
            attn += self.mask
        attn = F.softmax(attn, axis=-1)
        x = attn.matmul(v).transpose((0, 2, 1, 3)).reshape((0, -1, self.dim))
        return self.proj(x)


class Block(nn.Layer):
    def __init__(self, dim, num_heads, mixer="Global", local_mixer=[7, 11], HW=None,
                 mlp_ratio=4.0, qkv_bias=False, qk_scale=None, act_layer=nn.GELU,
                 epsilon=1e-6, prenorm=True):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, epsilon=epsilon)
        if mixer in ("Global", "Local"):
            self.mixer = Attention(dim, num_heads, mixer, HW, local_mixer, qkv_bias, qk_scale)
        else:
            self.mixer = ConvMixer(dim, num_heads=num_heads, HW=HW, local_k=local_mixer)
        self.norm2 = nn.LayerNorm(dim, epsilon=epsilon)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=act_layer)
        self.prenorm = prenorm

    def forward(self, x):
        if self.prenorm:
            x = self.norm1(x + self.mixer(x))
            x = self.norm2(x + self.mlp(x))
        else:
            x = x + self.mixer(self.norm1(x))
            x = x + self.mlp(self.norm2(x))
        return x


class PatchEmbed(nn.Layer):
    def __init__(self, img_size=[32, 100], in_channels=3, embed_dim=768, sub_num=2,
                 patch_size=[4, 4], mode="pope"):
        super().__init__()
        self.img_size = img_size
        self.num_patches = (img_size[1] // (2 ** sub_num)) * (img_size[0] // (2 ** sub_num))
        if mode == "pope":
            if sub_num == 2:
                self.proj = nn.Sequential(
                    ConvBNLayer(in_channels, embed_dim // 2, 3, 2, 1, None, act=nn.GELU),
                    ConvBNLayer(embed_dim // 2, embed_dim, 3, 2, 1, None, act=nn.GELU))
            if sub_num == 3:
                self.proj = nn.Sequential(
                    ConvBNLayer(in_channels, embed_dim // 4, 3, 2, 1, None, act=nn.GELU),
                    ConvBNLayer(embed_dim // 4, embed_dim // 2, 3, 2, 1, None, act=nn.GELU),
                    ConvBNLayer(embed_dim // 2, embed_dim, 3, 2, 1, None, act=nn.GELU))
        elif mode == "linear":
            self.proj = nn.Conv2D(1, embed_dim, kernel_size=patch_size, stride=patch_size)
            self.num_patches = img_size[0] // patch_size[0] * img_size[1] // patch_size[1]

    def forward(self, x):
        return self.proj(x).flatten(2).transpose((0, 2, 1))


class SubSample(nn.Layer):
    def __init__(self, cin, cout, types="Pool", stride=[2, 1]):
        super().__init__()
        self.types = types
        if types == "Pool":
            self.avgpool = nn.AvgPool2D(kernel_size=[3, 5], stride=stride, padding=[1, 2])
            self.maxpool = nn.MaxPool2D(kernel_size=[3, 5], stride=stride, padding=[1, 2])
            self.proj = nn.Linear(cin, cout)
        else:
            self.conv = nn.Conv2D(cin, cout, kernel_size=3, stride=stride, padding=1)
        self.norm = nn.LayerNorm(cout)

    def forward(self, x):
        if self.types == "Pool":
            x = (self.avgpool(x) + self.maxpool(x)) * 0.5
            out = self.proj(x.flatten(2).transpose((0, 2, 1)))
        else:
            out = self.conv(x).flatten(2).transpose((0, 2, 1))
        return self.norm(out)


class SVTRNet(nn.Layer):
    def __init__(self, img_size=[32, 100], in_channels=3, embed_dim=[64, 128, 256],
                 depth=[3, 6, 3], num_heads=[2, 4, 8], mixer=["Local"] * 6 + ["Global"] * 6,
                 local_mixer=[[7, 11], [7, 11], [7, 11]], patch_merging="Conv", mlp_ratio=4,
                 qkv_bias=True, qk_scale=None, last_drop=0.1, epsilon=1e-6, out_channels=192,
                 out_char_num=25, last_stage=True, sub_num=2, prenorm=True):
        super().__init__()
        self.img_size = img_size
        self.embed_dim = embed_dim
        self.out_channels = out_channels
        self.prenorm = prenorm
        patch_merging = None if patch_merging not in ("Conv", "Pool") else patch_merging
        self.patch_embed = PatchEmbed(img_size, in_channels, embed_dim[0], sub_num)
        num_patches = self.patch_embed.num_patches
        self.HW = [img_size[0] // (2 ** sub_num), img_size[1] // (2 ** sub_num)]
        self.pos_embed = self.create_parameter(shape=[1, num_patches, embed_dim[0]])
        self.add_parameter("pos_embed", self.pos_embed)
        kw = dict(mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, qk_scale=qk_scale, epsilon=epsilon,
                  prenorm=prenorm)
        self.blocks1 = nn.LayerList([
            Block(embed_dim[0], num_heads[0], mixer[0:depth[0]][i], local_mixer[0], self.HW,
                  **kw) for i in range(depth[0])])
        if patch_merging is not None:
            self.sub_sample1 = SubSample(embed_dim[0], embed_dim[1], patch_merging, [2, 1])
            HW = [self.HW[0] // 2, self.HW[1]]
        else:
            HW = self.HW
        self.patch_merging = patch_merging
        self.blocks2 = nn.LayerList([
            Block(embed_dim[1], num_heads[1], mixer[depth[0]:depth[0] + depth[1]][i],
                  local_mixer[1], HW, **kw) for i in range(depth[1])])
        if patch_merging is not None:
            self.sub_sample2 = SubSample(embed_dim[1], embed_dim[2], patch_merging, [2, 1])
            HW = [self.HW[0] // 4, self.HW[1]]
        else:
            HW = self.HW
        self.blocks3 = nn.LayerList([
            Block(embed_dim[2], num_heads[2], mixer[depth[0] + depth[1]:][i], local_mixer[2],
                  HW, **kw) for i in range(depth[2])])
        self.last_stage = last_stage
        if last_stage:
            self.avg_pool = nn.AdaptiveAvgPool2D([1, out_char_num])
            self.last_conv = nn.Conv2D(embed_dim[2], out_channels, 1, 1, 0, bias_attr=False)
            self.hardswish = nn.Hardswish()
            self.dropout = nn.Dropout(p=last_drop, mode="downscale_in_infer")
        if not prenorm:
            self.norm = nn.LayerNorm(embed_dim[-1], epsilon=epsilon)

    def forward_features(self, x):
        x = self.patch_embed(x)
        x = x + self.pos_embed
        for blk in self.blocks1:
            x = blk(x)
        if self.patch_merging is not None:
            x = self.sub_sample1(x.transpose([0, 2, 1]).reshape(
                [0, self.embed_dim[0], self.HW[0], self.HW[1]]))
        for blk in self.blocks2:
            x = blk(x)
        if self.patch_merging is not None:
            x = self.sub_sample2(x.transpose([0, 2, 1]).reshape(
                [0, self.embed_dim[1], self.HW[0] // 2, self.HW[1]]))
        for blk in self.blocks3:
            x = blk(x)
        if not self.prenorm:
            x = self.norm(x)
        return x

    def forward(self, x):
        x = self.forward_features(x)
        if self.last_stage:
            h = self.HW[0] // 4 if self.patch_merging is not None else self.HW[0]
            x = self.avg_pool(x.transpose([0, 2, 1]).reshape([0, self.embed_dim[2], h,
                                                              self.HW[1]]))
            x = self.dropout(self.hardswish(self.last_conv(x)))
        return x


# ---- rec_vitstr.py

class ViTSTR(nn.Layer):
    def __init__(self, img_size=[224, 224], in_channels=1, seqlen=27, patch_size=[16, 16],
                 embed_dim=192, depth=12, num_heads=3, mlp_ratio=4, qkv_bias=True,
                 epsilon=1e-6):
        super().__init__()
        self.seqlen = seqlen
        self.patch_embed = PatchEmbed(img_size, in_channels, embed_dim, patch_size=patch_size,
                                      mode="linear")
        num_patches = self.patch_embed.num_patches
        self.pos_embed = self.create_parameter(shape=[1, num_patches + 1, embed_dim])
        self.add_parameter("pos_embed", self.pos_embed)
        self.cls_token = self.create_parameter(shape=[1, 1, embed_dim])
        self.add_parameter("cls_token", self.cls_token)
        self.blocks = nn.LayerList([
            Block(embed_dim, num_heads, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias,
                  epsilon=epsilon, prenorm=False) for _ in range(depth)])
        self.norm = nn.LayerNorm(embed_dim, epsilon=epsilon)
        self.out_channels = embed_dim

    def forward(self, x):
        B = x.shape[0]
        x = self.patch_embed(x)
        cls_tokens = paddle.tile(self.cls_token, repeat_times=[B, 1, 1])
        x = paddle.concat((cls_tokens, x), axis=1)
        x = x + self.pos_embed
        for blk in self.blocks:
            x = blk(x)
        x = self.norm(x)
        x = x[:, :self.seqlen]
        return x.transpose([0, 2, 1]).unsqueeze(2)


# ---- rec_nrtr_mtb.py

class MTB(nn.Layer):
    def __init__(self, cnn_num, in_channels):
        super().__init__()
        self.block = nn.Sequential()
        self.cnn_num = cnn_num
        if cnn_num == 2:
            for i in range(cnn_num):
                self.block.add_sublayer(f"conv_{i}", nn.Conv2D(
                    in_channels if i == 0 else 32 * (2 ** (i - 1)), 32 * (2 ** i), 3, 2, 1))
                self.block.add_sublayer(f"relu_{i}", nn.ReLU())
                self.block.add_sublayer(f"bn_{i}", nn.BatchNorm2D(32 * (2 ** i)))

    def forward(self, images):
        x = self.block(images)
        x = paddle.transpose(x, [0, 3, 2, 1])
        s = x.shape
        return paddle.reshape(x, [s[0], s[1], s[2] * s[3]])


# ---- rec_nrtr_head.py (greedy path)

class MultiheadAttention(nn.Layer):
    def __init__(self, embed_dim, num_heads, self_attn=False):
        super().__init__()
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.self_attn = self_attn
        if self_attn:
            self.qkv = nn.Linear(embed_dim, embed_dim * 3)
        else:
            self.q = nn.Linear(embed_dim, embed_dim)
            self.kv = nn.Linear(embed_dim, embed_dim * 2)
        self.out_proj = nn.Linear(embed_dim, embed_dim)

    def forward(self, query, key=None, attn_mask=None):
        # PaddleOCR reads qN = query.shape[1] and kN = key.shape[1] into the reshapes; inside
        # the exported decoding loop paddle 3.3's PIR tracing freezes them at their first
        # value (1) and the program then fails at step 2, so the lengths are left to -1 here
        # (the same reshape whenever the program can run at all)
        if self.self_attn:
            qkv = self.qkv(query).reshape((0, -1, 3, self.num_heads, self.head_dim)).transpose(
                (2, 0, 3, 1, 4))
            q, k, v = qkv[0], qkv[1], qkv[2]
        else:
            q = self.q(query).reshape([0, -1, self.num_heads, self.head_dim]).transpose(
                [0, 2, 1, 3])
            kv = self.kv(key).reshape((0, -1, 2, self.num_heads, self.head_dim)).transpose(
                (2, 0, 3, 1, 4))
            k, v = kv[0], kv[1]
        attn = q.matmul(k.transpose((0, 1, 3, 2))) * self.scale
        if attn_mask is not None:
            attn += attn_mask
        attn = F.softmax(attn, axis=-1)
        x = attn.matmul(v).transpose((0, 2, 1, 3)).reshape((0, -1, self.embed_dim))
        return self.out_proj(x)


class TransformerBlock(nn.Layer):
    def __init__(self, d_model, nhead, dim_feedforward=2048, with_self_attn=True,
                 with_cross_attn=False, epsilon=1e-5):
        super().__init__()
        self.with_self_attn = with_self_attn
        if with_self_attn:
            self.self_attn = MultiheadAttention(d_model, nhead, self_attn=with_self_attn)
            self.norm1 = nn.LayerNorm(d_model, epsilon=epsilon)
        self.with_cross_attn = with_cross_attn
        if with_cross_attn:
            self.cross_attn = MultiheadAttention(d_model, nhead)
            self.norm2 = nn.LayerNorm(d_model, epsilon=epsilon)
        self.mlp = Mlp(d_model, dim_feedforward, act_layer=nn.ReLU)
        self.norm3 = nn.LayerNorm(d_model, epsilon=epsilon)

    def forward(self, tgt, memory=None, self_mask=None, cross_mask=None):
        if self.with_self_attn:
            tgt = self.norm1(tgt + self.self_attn(tgt, attn_mask=self_mask))
        if self.with_cross_attn:
            tgt = self.norm2(tgt + self.cross_attn(tgt, key=memory, attn_mask=cross_mask))
        return self.norm3(tgt + self.mlp(tgt))


class PositionalEncoding(nn.Layer):
    def __init__(self, dropout, dim, max_len=5000):
        super().__init__()
        self.dropout = nn.Dropout(p=dropout)
        pe = paddle.zeros([max_len, dim])
        position = paddle.arange(0, max_len, dtype=paddle.float32).unsqueeze(1)
        div_term = paddle.exp(paddle.arange(0, dim, 2).astype("float32")
                              * (-math.log(10000.0) / dim))
        pe[:, 0::2] = paddle.sin(position * div_term)
        pe[:, 1::2] = paddle.cos(position * div_term)
        pe = paddle.transpose(paddle.unsqueeze(pe, 0), [1, 0, 2])
        self.register_buffer("pe", pe)

    def forward(self, x):
        x = x.transpose([1, 0, 2])
        # PaddleOCR slices pe[: x.shape[0]]; in the exported decoding loop paddle 3.3 freezes
        # x.shape[0] at 1 (every position would get position 0's code), so read it at run time
        x = x + self.pe[: paddle.shape(x)[0], :]
        return self.dropout(x).transpose([1, 0, 2])


class Embeddings(nn.Layer):
    def __init__(self, d_model, vocab, padding_idx=None, scale_embedding=True):
        super().__init__()
        self.embedding = nn.Embedding(vocab, d_model, padding_idx=padding_idx)
        self.d_model = d_model
        self.scale_embedding = scale_embedding

    def forward(self, x):
        if self.scale_embedding:
            return self.embedding(x) * math.sqrt(self.d_model)
        return self.embedding(x)


class Transformer(nn.Layer):
    def __init__(self, d_model=512, nhead=8, num_encoder_layers=6, num_decoder_layers=6,
                 max_len=25, dim_feedforward=1024, out_channels=0, scale_embedding=True):
        super().__init__()
        self.out_channels = out_channels + 1
        self.max_len = max_len
        self.embedding = Embeddings(d_model, self.out_channels, 0, scale_embedding)
        self.positional_encoding = PositionalEncoding(0.1, d_model)
        if num_encoder_layers > 0:
            self.encoder = nn.LayerList([
                TransformerBlock(d_model, nhead, dim_feedforward, with_self_attn=True,
                                 with_cross_attn=False) for _ in range(num_encoder_layers)])
        else:
            self.encoder = None
        self.decoder = nn.LayerList([
            TransformerBlock(d_model, nhead, dim_feedforward, with_self_attn=True,
                             with_cross_attn=True) for _ in range(num_decoder_layers)])
        self.tgt_word_prj = nn.Linear(d_model, self.out_channels, bias_attr=False)

    def forward(self, src, targets=None):
        return self.forward_test(src)

    def forward_test(self, src):
        bs = src.shape[0]
        if self.encoder is not None:
            src = self.positional_encoding(src)
            for encoder_layer in self.encoder:
                src = encoder_layer(src)
        memory = src
        dec_seq = paddle.full((bs, 1), 2, dtype=paddle.int64)
        dec_prob = paddle.full((bs, 1), 1.0, dtype=paddle.float32)
        for len_dec_seq in range(1, paddle.to_tensor(self.max_len)):
            dec_seq_embed = self.positional_encoding(self.embedding(dec_seq))
            # dec_seq_embed.shape[1] in PaddleOCR (frozen at 1 by paddle 3.3's loop tracing)
            tgt_mask = self.generate_square_subsequent_mask(paddle.shape(dec_seq_embed)[1])
            tgt = dec_seq_embed
            for decoder_layer in self.decoder:
                tgt = decoder_layer(tgt, memory, self_mask=tgt_mask)
            dec_output = tgt[:, -1, :]
            word_prob = F.softmax(self.tgt_word_prj(dec_output), axis=-1)
            preds_idx = paddle.argmax(word_prob, axis=-1)
            if paddle.equal_all(preds_idx, paddle.full(preds_idx.shape, 3, dtype="int64")):
                break
            preds_prob = paddle.max(word_prob, axis=-1)
            dec_seq = paddle.concat([dec_seq, paddle.reshape(preds_idx, [-1, 1])], axis=1)
            dec_prob = paddle.concat([dec_prob, paddle.reshape(preds_prob, [-1, 1])], axis=1)
        return [dec_seq, dec_prob]

    def generate_square_subsequent_mask(self, sz):
        mask = paddle.zeros([sz, sz], dtype="float32")
        # PaddleOCR writes fill_value="-inf"; paddle 3.3's PIR tracing takes only a number
        mask_inf = paddle.triu(paddle.full(shape=[sz, sz], dtype="float32",
                                           fill_value=float("-inf")), diagonal=1)
        return (mask + mask_inf).unsqueeze([0, 1])


# ---- necks/rnn.py reshape, heads/rec_ctc_head.py, BaseModel

class Im2Seq(nn.Layer):
    def forward(self, x):
        return x.squeeze(axis=2).transpose([0, 2, 1])


class SequenceEncoder(nn.Layer):
    def __init__(self):
        super().__init__()
        self.encoder_reshape = Im2Seq()

    def forward(self, x):
        return self.encoder_reshape(x)


class CTCHead(nn.Layer):
    def __init__(self, cin, classes):
        super().__init__()
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        return F.softmax(self.fc(x), axis=2)


class BaseModel(nn.Layer):
    def __init__(self, backbone, neck, head):
        super().__init__()
        self.backbone = backbone
        if neck is not None:
            self.neck = neck
        self.head = head
        self.use_neck = neck is not None

    def forward(self, x):
        x = self.backbone(x)
        if self.use_neck:
            x = self.neck(x)
        return self.head(x)


def build(arch, cfg):
    """The whole recogniser of ``arch`` at the (small) configuration ``cfg``."""
    if arch == "svtr":
        bb = SVTRNet(**cfg["backbone"])
        return BaseModel(bb, SequenceEncoder(), CTCHead(bb.out_channels, cfg["classes"]))
    if arch == "vitstr":
        bb = ViTSTR(**cfg["backbone"])
        return BaseModel(bb, SequenceEncoder(), CTCHead(bb.out_channels, cfg["classes"]))
    if arch == "nrtr":
        return BaseModel(MTB(2, 1), None, Transformer(**cfg["head"]))
    raise KeyError(arch)


# weights scaled up after the fan-in scaling: attention projections so that attention is
# peaked (a q/k or head-layout mix-up then changes the output), classifiers so that the
# probabilities are far from uniform (near-uniform softmax hides errors below 1e-4)
SHARPEN = (("qkv.weight", 4.0), (".q.weight", 4.0), (".kv.weight", 4.0),
           ("head.fc.weight", 10.0), ("tgt_word_prj.weight", 10.0))


def randomize(model, seed, scale=1.0):
    """Every parameter and BN statistic random (uniform, fan-in scaled for weights so deep
    stacks keep unit-scale activations, then SHARPEN); the positional-encoding table is a
    constant."""
    rng = np.random.RandomState(seed)
    for name, t in model.state_dict().items():
        shape = list(t.shape)
        if name.endswith("_variance"):
            value = rng.uniform(0.5, 1.5, shape)
        elif name.endswith(".pe"):
            continue
        elif len(shape) >= 2 and not name.endswith(("pos_embed", "cls_token")) \
                and "embedding" not in name:
            fan_in = int(np.prod(shape[1:])) if len(shape) == 4 else shape[0]
            value = rng.uniform(-1, 1, shape) * np.sqrt(3.0 / fan_in) * scale
            value *= next((f for key, f in SHARPEN if name.endswith(key)), 1.0)
        else:
            value = rng.uniform(-0.5, 0.5, shape)
        t.set_value(value.astype("float32"))
    model.eval()
    return model


def export(arch, fmt, out, cfg):
    paddle.seed(0)
    model = randomize(build(arch, cfg), cfg.get("seed", 0))
    shape = [None] + list(cfg["input"])
    spec = [paddle.static.InputSpec(shape, "float32", "x")]
    paddle.jit.save(model, os.path.join(out, "inference"), input_spec=spec)
    paddle.save(model.state_dict(), out.rstrip("/") + "_train.pdparams")


if __name__ == "__main__":
    export(sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4]))
