"""Paddle twins of the language-model recognisers, written after PaddleOCR's own modules
(backbones/rec_resnet_45.py, heads/rec_abinet_head.py with heads/rec_nrtr_head.py's
TransformerBlock/MultiheadAttention/PositionalEncoding, heads/rec_visionlan_head.py): same
module tree, so the same state_dict names, training-only branches included (BCNLanguage.cls,
VisionLAN's MLM and shared prediction branch), so training checkpoints hold what real ones do.

Run as a script to export the test configurations with random weights (BN statistics and
buffers included): ``python paddle_lm_twins.py OUT_DIR pdmodel|pir``.
2.x program export needs FLAGS_enable_pir_api=0 before paddle is imported, hence the script.

Paddle 3.3's legacy (2.x) program translation has no matmul at all (Tensor.matmul, ``@``,
paddle.matmul and paddle.bmm go straight to PIR-only kernels) and rejects string fill values
("-inf"), which PaddleOCR's files use, and argmax, any, sigmoid and tanh likewise; the
twins call the helpers below, which append the 2.x programs' own ops (matmul_v2, arg_max,
reduce_any, sigmoid, tanh) when building one (bmm is matmul on 3-D tensors), and
float("-inf").
"""

import math
import os
import sys

if __name__ == "__main__" and sys.argv[2] == "pdmodel":
    os.environ["FLAGS_enable_pir_api"] = "0"

import numpy as np  # noqa: E402
import paddle  # noqa: E402
import paddle.nn.functional as F  # noqa: E402
from paddle import nn  # noqa: E402

def _legacy():
    return not (paddle.in_dynamic_mode() or paddle.framework.in_pir_mode())


def _legacy_op(op_type, inputs, attrs, dtype):
    from paddle.base.layer_helper import LayerHelper

    helper = LayerHelper(op_type)
    out = helper.create_variable_for_type_inference(dtype)
    helper.append_op(type=op_type, inputs=inputs, outputs={"Out": out}, attrs=attrs)
    return out


def matmul(x, y):
    if not _legacy():
        return paddle.matmul(x, y)
    return _legacy_op("matmul_v2", {"X": x, "Y": y}, {"trans_x": False, "trans_y": False},
                      x.dtype)


def argmax(x, axis):
    if not _legacy():
        return x.argmax(axis)
    return _legacy_op("arg_max", {"X": x}, {"axis": axis, "keepdims": False, "flatten": False,
                                            "dtype": 3}, "int64")  # 3: VarType.INT64


def any_(x, axis):
    if not _legacy():
        return x.any(axis)
    return _legacy_op("reduce_any", {"X": x}, {"dim": [axis], "keep_dim": False,
                                               "reduce_all": False}, "bool")


def sigmoid(x):
    return _legacy_op("sigmoid", {"X": x}, {}, x.dtype) if _legacy() else F.sigmoid(x)


class Tanh(nn.Layer):
    def forward(self, x):
        return _legacy_op("tanh", {"X": x}, {}, x.dtype) if _legacy() else paddle.tanh(x)


# ---- backbones/rec_resnet_45.py


class BasicBlock(nn.Layer):
    def __init__(self, in_channels, channels, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2D(in_channels, channels, 1, 1, bias_attr=False)
        self.bn1 = nn.BatchNorm2D(channels)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2D(channels, channels, 3, stride, 1, bias_attr=False)
        self.bn2 = nn.BatchNorm2D(channels)
        self.downsample = downsample

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        residual = self.downsample(x) if self.downsample is not None else x
        out += residual
        return self.relu(out)


class ResNet45(nn.Layer):
    def __init__(self, in_channels=3, layers=(3, 4, 6, 6, 3), strides=(2, 1, 2, 1, 1)):
        super().__init__()
        self.inplanes = 32
        self.conv1 = nn.Conv2D(in_channels, 32, 3, 1, 1, bias_attr=False)
        self.bn1 = nn.BatchNorm2D(32)
        self.relu = nn.ReLU()
        self.layer1 = self._make_layer(32, layers[0], strides[0])
        self.layer2 = self._make_layer(64, layers[1], strides[1])
        self.layer3 = self._make_layer(128, layers[2], strides[2])
        self.layer4 = self._make_layer(256, layers[3], strides[3])
        self.layer5 = self._make_layer(512, layers[4], strides[4])
        self.out_channels = 512

    def _make_layer(self, planes, blocks, stride=1):
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(
                nn.Conv2D(self.inplanes, planes, 1, stride, bias_attr=False),
                nn.BatchNorm2D(planes))
        layers = [BasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes
        for _ in range(1, blocks):
            layers.append(BasicBlock(self.inplanes, planes))
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        x = self.layer4(x)
        return self.layer5(x)


# ---- heads/rec_nrtr_head.py (the blocks ABINet imports); Mlp as rec_svtrnet.py's


class Mlp(nn.Layer):
    def __init__(self, in_features, hidden_features, act_layer=nn.ReLU, drop=0.0):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = act_layer()
        self.fc2 = nn.Linear(hidden_features, in_features)
        self.drop = nn.Dropout(drop)

    def forward(self, x):
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class MultiheadAttention(nn.Layer):
    def __init__(self, embed_dim, num_heads, dropout=0.0, self_attn=False):
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
        self.attn_drop = nn.Dropout(dropout)
        self.out_proj = nn.Linear(embed_dim, embed_dim)

    def forward(self, query, key=None, attn_mask=None):
        qN = query.shape[1]
        if self.self_attn:
            qkv = self.qkv(query).reshape((0, qN, 3, self.num_heads, self.head_dim)) \
                .transpose((2, 0, 3, 1, 4))
            q, k, v = qkv[0], qkv[1], qkv[2]
        else:
            kN = key.shape[1]
            q = self.q(query).reshape([0, qN, self.num_heads, self.head_dim]) \
                .transpose([0, 2, 1, 3])
            kv = self.kv(key).reshape((0, kN, 2, self.num_heads, self.head_dim)) \
                .transpose((2, 0, 3, 1, 4))
            k, v = kv[0], kv[1]
        attn = matmul(q, k.transpose((0, 1, 3, 2))) * self.scale
        if attn_mask is not None:
            attn += attn_mask
        attn = self.attn_drop(F.softmax(attn, axis=-1))
        x = matmul(attn, v).transpose((0, 2, 1, 3)).reshape((0, qN, self.embed_dim))
        return self.out_proj(x)


class TransformerBlock(nn.Layer):
    def __init__(self, d_model, nhead, dim_feedforward=2048, attention_dropout_rate=0.0,
                 residual_dropout_rate=0.1, with_self_attn=True, with_cross_attn=False,
                 epsilon=1e-5):
        super().__init__()
        self.with_self_attn = with_self_attn
        if with_self_attn:
            self.self_attn = MultiheadAttention(d_model, nhead, attention_dropout_rate,
                                                self_attn=with_self_attn)
            self.norm1 = nn.LayerNorm(d_model, epsilon=epsilon)
            self.dropout1 = nn.Dropout(residual_dropout_rate)
        self.with_cross_attn = with_cross_attn
        if with_cross_attn:
            self.cross_attn = MultiheadAttention(d_model, nhead, attention_dropout_rate)
            self.norm2 = nn.LayerNorm(d_model, epsilon=epsilon)
            self.dropout2 = nn.Dropout(residual_dropout_rate)
        self.mlp = Mlp(d_model, dim_feedforward, nn.ReLU, residual_dropout_rate)
        self.norm3 = nn.LayerNorm(d_model, epsilon=epsilon)
        self.dropout3 = nn.Dropout(residual_dropout_rate)

    def forward(self, tgt, memory=None, self_mask=None, cross_mask=None):
        if self.with_self_attn:
            tgt1 = self.self_attn(tgt, attn_mask=self_mask)
            tgt = self.norm1(tgt + self.dropout1(tgt1))
        if self.with_cross_attn:
            tgt2 = self.cross_attn(tgt, key=memory, attn_mask=cross_mask)
            tgt = self.norm2(tgt + self.dropout2(tgt2))
        return self.norm3(tgt + self.dropout3(self.mlp(tgt)))


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
        x = x + self.pe[: x.shape[0], :]
        return self.dropout(x).transpose([1, 0, 2])


# ---- heads/rec_abinet_head.py


class BCNLanguage(nn.Layer):
    def __init__(self, d_model=512, nhead=8, num_layers=4, dim_feedforward=2048, dropout=0.0,
                 max_length=25, detach=True, num_classes=37):
        super().__init__()
        self.d_model, self.detach = d_model, detach
        self.max_length = max_length + 1
        self.proj = nn.Linear(num_classes, d_model, bias_attr=False)
        self.token_encoder = PositionalEncoding(0.1, d_model, self.max_length)
        self.pos_encoder = PositionalEncoding(0, d_model, self.max_length)
        self.decoder = nn.LayerList([
            TransformerBlock(d_model, nhead, dim_feedforward, dropout, dropout,
                             with_self_attn=False, with_cross_attn=True)
            for _ in range(num_layers)])
        self.cls = nn.Linear(d_model, num_classes)

    def forward(self, tokens, lengths):
        if self.detach:
            tokens = tokens.detach()
        embed = self.token_encoder(self.proj(tokens))
        padding_mask = _get_mask(lengths, self.max_length)
        query = self.pos_encoder(paddle.zeros_like(embed))
        for layer in self.decoder:
            query = layer(query, embed, cross_mask=padding_mask)
        return query, self.cls(query)


def encoder_layer(in_c, out_c, k=3, s=2, p=1):
    return nn.Sequential(nn.Conv2D(in_c, out_c, k, s, p), nn.BatchNorm2D(out_c), nn.ReLU())


def decoder_layer(in_c, out_c, k=3, s=1, p=1, mode="nearest", scale_factor=None, size=None):
    align_corners = False if mode == "nearest" else True
    return nn.Sequential(
        nn.Upsample(size=size, scale_factor=scale_factor, mode=mode,
                    align_corners=align_corners),
        nn.Conv2D(in_c, out_c, k, s, p), nn.BatchNorm2D(out_c), nn.ReLU())


class PositionAttention(nn.Layer):
    def __init__(self, max_length, in_channels=512, num_channels=64, h=8, w=32,
                 mode="nearest"):
        super().__init__()
        self.max_length = max_length
        self.k_encoder = nn.Sequential(
            encoder_layer(in_channels, num_channels, s=(1, 2)),
            encoder_layer(num_channels, num_channels, s=(2, 2)),
            encoder_layer(num_channels, num_channels, s=(2, 2)),
            encoder_layer(num_channels, num_channels, s=(2, 2)))
        self.k_decoder = nn.Sequential(
            decoder_layer(num_channels, num_channels, scale_factor=2, mode=mode),
            decoder_layer(num_channels, num_channels, scale_factor=2, mode=mode),
            decoder_layer(num_channels, num_channels, scale_factor=2, mode=mode),
            decoder_layer(num_channels, in_channels, size=(h, w), mode=mode))
        self.pos_encoder = PositionalEncoding(0, in_channels, max_length)
        self.project = nn.Linear(in_channels, in_channels)

    def forward(self, x):
        B, C, H, W = x.shape
        k, v = x, x
        features = []
        for i in range(len(self.k_encoder)):
            k = self.k_encoder[i](k)
            features.append(k)
        for i in range(len(self.k_decoder) - 1):
            k = self.k_decoder[i](k)
            k = k + features[len(self.k_decoder) - 2 - i]
        k = self.k_decoder[-1](k)
        zeros = paddle.zeros((B, self.max_length, C), dtype=x.dtype)
        q = self.project(self.pos_encoder(zeros))
        attn_scores = F.softmax(matmul(q, k.flatten(2)) / (C ** 0.5), axis=-1)
        v = v.flatten(2).transpose([0, 2, 1])
        return matmul(attn_scores, v), attn_scores.reshape([0, self.max_length, H, W])


class ABINetHead(nn.Layer):
    def __init__(self, in_channels, out_channels, d_model=512, nhead=8, num_layers=3,
                 dim_feedforward=2048, dropout=0.1, max_length=25, use_lang=False,
                 iter_size=1, image_size=(32, 128)):
        super().__init__()
        self.max_length = max_length + 1
        h, w = image_size[0] // 4, image_size[1] // 4
        self.pos_encoder = PositionalEncoding(0.1, d_model, h * w)
        self.encoder = nn.LayerList([
            TransformerBlock(d_model, nhead, dim_feedforward, dropout, dropout,
                             with_self_attn=True, with_cross_attn=False)
            for _ in range(num_layers)])
        self.decoder = PositionAttention(max_length + 1, mode="nearest", h=h, w=w)
        self.out_channels = out_channels
        self.cls = nn.Linear(d_model, out_channels)
        self.use_lang = use_lang
        if use_lang:
            self.iter_size = iter_size
            self.language = BCNLanguage(d_model, nhead, 4, dim_feedforward, dropout,
                                        max_length, num_classes=out_channels)
            self.w_att_align = nn.Linear(2 * d_model, d_model)
            self.cls_align = nn.Linear(d_model, out_channels)

    def forward(self, x, targets=None):
        x = x.transpose([0, 2, 3, 1])
        _, H, W, C = x.shape
        feature = self.pos_encoder(x.flatten(1, 2))
        for layer in self.encoder:
            feature = layer(feature)
        feature = feature.reshape([0, H, W, C]).transpose([0, 3, 1, 2])
        v_feature, _ = self.decoder(feature)
        vis_logits = self.cls(v_feature)
        logits = vis_logits
        vis_lengths = _get_length(vis_logits)
        if self.use_lang:
            align_logits, align_lengths = vis_logits, vis_lengths
            for _ in range(self.iter_size):
                tokens = F.softmax(align_logits, axis=-1)
                lengths = paddle.clip(align_lengths, 2, self.max_length)
                l_feature, _ = self.language(tokens, lengths)
                fuse = paddle.concat((l_feature, v_feature), -1)
                f_att = sigmoid(self.w_att_align(fuse))
                output = f_att * v_feature + (1 - f_att) * l_feature
                align_logits = self.cls_align(output)
                align_lengths = _get_length(align_logits)
            logits = align_logits
        return F.softmax(logits, -1)


def _get_length(logit):
    out = argmax(logit, -1) == 0
    abn = any_(out, -1)
    out_int = out.cast("int32")
    out = (out_int.cumsum(-1) == 1) & out
    out = argmax(out.cast("int32"), -1) + 1
    len_seq = paddle.zeros_like(out) + logit.shape[1]
    return paddle.where(abn, out, len_seq)


def _get_mask(length, max_length):
    length = length.unsqueeze(-1)
    B = length.shape[0]
    grid = paddle.arange(0, max_length).unsqueeze(0).tile([B, 1])
    zero_mask = paddle.zeros([B, max_length], dtype="float32")
    inf_mask = paddle.full([B, max_length], float("-inf"), dtype="float32")
    diag_mask = paddle.diag(paddle.full([max_length], float("-inf"), dtype=paddle.float32),
                            offset=0)
    mask = paddle.where(grid >= length, inf_mask, zero_mask)
    return (mask.unsqueeze(1) + diag_mask).unsqueeze(1)


# ---- heads/rec_visionlan_head.py


class VLPositionalEncoding(nn.Layer):
    def __init__(self, d_hid, n_position=200):
        super().__init__()
        self.register_buffer("pos_table", self._table(n_position, d_hid))

    def _table(self, n_position, d_hid):
        def angles(pos):
            return [pos / np.power(10000, 2 * (j // 2) / d_hid) for j in range(d_hid)]

        table = np.array([angles(p) for p in range(n_position)])
        table[:, 0::2] = np.sin(table[:, 0::2])
        table[:, 1::2] = np.cos(table[:, 1::2])
        return paddle.unsqueeze(paddle.to_tensor(table, dtype="float32"), axis=0)

    def forward(self, x):
        table = self.pos_table[:, : x.shape[1]]
        if not _legacy():  # a 2.x program makes the detached copy an uninitialised parameter
            table = table.clone().detach()
        return x + table


class ScaledDotProductAttention(nn.Layer):
    def __init__(self, temperature, attn_dropout=0.1):
        super().__init__()
        self.temperature = temperature
        self.dropout = nn.Dropout(attn_dropout)
        self.softmax = nn.Softmax(axis=2)

    def forward(self, q, k, v, mask=None):
        attn = matmul(q, paddle.transpose(k, perm=[0, 2, 1])) / self.temperature
        attn = self.dropout(self.softmax(attn))
        return matmul(attn, v)


class VLMultiHeadAttention(nn.Layer):
    def __init__(self, n_head, d_model, d_k, d_v, dropout=0.1):
        super().__init__()
        self.n_head, self.d_k, self.d_v = n_head, d_k, d_v
        self.w_qs = nn.Linear(d_model, n_head * d_k)
        self.w_ks = nn.Linear(d_model, n_head * d_k)
        self.w_vs = nn.Linear(d_model, n_head * d_v)
        self.attention = ScaledDotProductAttention(temperature=np.power(d_k, 0.5))
        self.layer_norm = nn.LayerNorm(d_model)
        self.fc = nn.Linear(n_head * d_v, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, q, k, v, mask=None):
        d_k, d_v, n_head = self.d_k, self.d_v, self.n_head
        sz_b, len_q, _ = q.shape
        sz_b, len_k, _ = k.shape
        sz_b, len_v, _ = v.shape
        residual = q
        q = paddle.reshape(self.w_qs(q), shape=[-1, len_q, n_head, d_k])
        k = paddle.reshape(self.w_ks(k), shape=[-1, len_k, n_head, d_k])
        v = paddle.reshape(self.w_vs(v), shape=[-1, len_v, n_head, d_v])
        q = paddle.reshape(paddle.transpose(q, perm=[2, 0, 1, 3]), shape=[-1, len_q, d_k])
        k = paddle.reshape(paddle.transpose(k, perm=[2, 0, 1, 3]), shape=[-1, len_k, d_k])
        v = paddle.reshape(paddle.transpose(v, perm=[2, 0, 1, 3]), shape=[-1, len_v, d_v])
        output = self.attention(q, k, v, mask=None)
        output = paddle.reshape(output, shape=[n_head, -1, len_q, d_v])
        output = paddle.transpose(output, perm=[1, 2, 0, 3])
        output = paddle.reshape(output, shape=[-1, len_q, n_head * d_v])
        output = self.dropout(self.fc(output))
        return self.layer_norm(output + residual)


class PositionwiseFeedForward(nn.Layer):
    def __init__(self, d_in, d_hid, dropout=0.1):
        super().__init__()
        self.w_1 = nn.Conv1D(d_in, d_hid, 1)
        self.w_2 = nn.Conv1D(d_hid, d_in, 1)
        self.layer_norm = nn.LayerNorm(d_in)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        residual = x
        x = paddle.transpose(x, perm=[0, 2, 1])
        x = self.w_2(F.relu(self.w_1(x)))
        x = self.dropout(paddle.transpose(x, perm=[0, 2, 1]))
        return self.layer_norm(x + residual)


class EncoderLayer(nn.Layer):
    def __init__(self, d_model, d_inner, n_head, d_k, d_v, dropout=0.1):
        super().__init__()
        self.slf_attn = VLMultiHeadAttention(n_head, d_model, d_k, d_v, dropout=dropout)
        self.pos_ffn = PositionwiseFeedForward(d_model, d_inner, dropout=dropout)

    def forward(self, enc_input, slf_attn_mask=None):
        return self.pos_ffn(self.slf_attn(enc_input, enc_input, enc_input, mask=slf_attn_mask))


class Transformer_Encoder(nn.Layer):
    def __init__(self, n_layers=2, n_head=8, d_word_vec=512, d_k=64, d_v=64, d_model=512,
                 d_inner=2048, dropout=0.1, n_position=256):
        super().__init__()
        self.position_enc = VLPositionalEncoding(d_word_vec, n_position=n_position)
        self.dropout = nn.Dropout(p=dropout)
        self.layer_stack = nn.LayerList([
            EncoderLayer(d_model, d_inner, n_head, d_k, d_v, dropout=dropout)
            for _ in range(n_layers)])
        self.layer_norm = nn.LayerNorm(d_model, epsilon=1e-6)

    def forward(self, enc_output, src_mask):
        enc_output = self.dropout(self.position_enc(enc_output))
        for layer in self.layer_stack:
            enc_output = layer(enc_output, slf_attn_mask=src_mask)
        return self.layer_norm(enc_output)


class PP_layer(nn.Layer):
    def __init__(self, n_dim=512, N_max_character=25, n_position=256):
        super().__init__()
        self.character_len = N_max_character
        self.f0_embedding = nn.Embedding(N_max_character, n_dim)
        self.w0 = nn.Linear(N_max_character, n_position)
        self.wv = nn.Linear(n_dim, n_dim)
        self.we = nn.Linear(n_dim, N_max_character)
        self.active = Tanh()
        self.softmax = nn.Softmax(axis=2)

    def forward(self, enc_output):
        reading_order = paddle.arange(self.character_len, dtype="int64")
        reading_order = reading_order.unsqueeze(0).expand(
            [enc_output.shape[0], self.character_len])
        reading_order = self.f0_embedding(reading_order)
        reading_order = paddle.transpose(reading_order, perm=[0, 2, 1])
        t = self.w0(reading_order)
        t = self.active(paddle.transpose(t, perm=[0, 2, 1]) + self.wv(enc_output))
        t = self.we(t)
        t = self.softmax(paddle.transpose(t, perm=[0, 2, 1]))
        return matmul(t, enc_output)


class Prediction(nn.Layer):
    def __init__(self, n_dim=512, n_position=256, N_max_character=25, n_class=37):
        super().__init__()
        self.pp = PP_layer(n_dim, N_max_character, n_position)
        self.pp_share = PP_layer(n_dim, N_max_character, n_position)
        self.w_vrm = nn.Linear(n_dim, n_class)
        self.w_share = nn.Linear(n_dim, n_class)
        self.nclass = n_class

    def forward(self, cnn_feature, f_res, f_sub, train_mode=False, use_mlm=True):
        return self.w_vrm(self.pp(cnn_feature))  # the eval branch


class MLM(nn.Layer):
    def __init__(self, n_dim=512, n_position=256, max_text_length=25):
        super().__init__()
        self.MLM_SequenceModeling_mask = Transformer_Encoder(n_layers=2, n_position=n_position)
        self.MLM_SequenceModeling_WCL = Transformer_Encoder(n_layers=1, n_position=n_position)
        self.pos_embedding = nn.Embedding(max_text_length, n_dim)
        self.w0_linear = nn.Linear(1, n_position)
        self.wv = nn.Linear(n_dim, n_dim)
        self.active = Tanh()
        self.we = nn.Linear(n_dim, 1)
        self.sigmoid = nn.Sigmoid()


class MLM_VRM(nn.Layer):
    def __init__(self, n_layers=3, n_position=256, n_dim=512, max_text_length=25, nclass=37):
        super().__init__()
        self.MLM = MLM(n_dim, n_position, max_text_length)
        self.SequenceModeling = Transformer_Encoder(n_layers=n_layers, n_position=n_position)
        self.Prediction = Prediction(n_dim, n_position, max_text_length + 1, nclass)
        self.nclass, self.max_text_length = nclass, max_text_length

    def forward(self, x, label_pos, training_step, train_mode=False):
        b, c, h, w = x.shape
        x = paddle.transpose(x, perm=[0, 1, 3, 2])
        x = paddle.reshape(x, [-1, c, h * w])
        x = paddle.transpose(x, perm=[0, 2, 1])
        contextual_feature = self.SequenceModeling(x, src_mask=None)
        text_pre = self.Prediction(contextual_feature, 0, 0, train_mode=False, use_mlm=False)
        return paddle.transpose(text_pre, perm=[1, 0, 2]), x


class VLHead(nn.Layer):
    def __init__(self, in_channels, out_channels=36, n_layers=3, n_position=256, n_dim=512,
                 max_text_length=25, training_step="LA"):
        super().__init__()
        self.MLM_VRM = MLM_VRM(n_layers, n_position, n_dim, max_text_length, out_channels + 1)
        self.training_step = training_step

    def forward(self, feat, targets=None):
        return self.MLM_VRM(feat, targets, self.training_step, train_mode=False)


class Model(nn.Layer):
    """PaddleOCR's BaseModel for rec without transform and neck."""

    def __init__(self, backbone, head):
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, x):
        return self.head(self.backbone(x))


# The small whole-network configurations of the tests, as PaddleOCR training configs'
# Architecture sections (fewer blocks and layers than the shipped full-size tables; class
# counts are read from the weights), with the class count and input shape of the export.
CONFIGS = {
    "rec_r45_abinet": {
        "Architecture": {
            "model_type": "rec", "algorithm": "ABINet", "in_channels": 3, "Transform": None,
            "Backbone": {"name": "ResNet45", "layers": [1, 1, 1, 1, 1]},
            "Head": {"name": "ABINetHead", "use_lang": True, "iter_size": 2, "num_layers": 1,
                     "dim_feedforward": 64}},
        "out_channels": 37, "input": [3, 32, 128]},
    "rec_r45_visionlan": {
        "Architecture": {
            "model_type": "rec", "algorithm": "VisionLAN", "Transform": None,
            "Backbone": {"name": "ResNet45", "layers": [1, 1, 1, 1, 1],
                         "strides": [2, 2, 2, 1, 1]},
            "Head": {"name": "VLHead", "n_layers": 1, "n_position": 256, "n_dim": 512,
                     "max_text_length": 25, "training_step": "LA"}},
        "out_channels": 36, "input": [3, 64, 256]},
}
HEADS = {"ABINetHead": ABINetHead, "VLHead": VLHead}


def build(arch):
    cfg = CONFIGS[arch]
    backbone = dict(cfg["Architecture"]["Backbone"])
    head = dict(cfg["Architecture"]["Head"])
    backbone.pop("name")
    head_cls = HEADS[head.pop("name")]
    return Model(ResNet45(**backbone), head_cls(512, cfg["out_channels"], **head))


def randomize(model, seed=0):
    """Every parameter and buffer random (BN statistics and positional tables included);
    matrices scaled by 1/sqrt(fan-in) so deep stacks keep unit-scale activations."""
    rng = np.random.RandomState(seed)
    for name, tensor in model.state_dict().items():
        shape = list(tensor.shape)
        if name.endswith("_variance"):
            value = rng.uniform(0.5, 1.5, shape)
        elif len(shape) >= 2 and not name.endswith(("pe", "pos_table")):
            fan_in = int(np.prod(shape[1:])) if len(shape) >= 3 else shape[0]
            value = rng.uniform(-1, 1, shape) * np.sqrt(3.0 / fan_in)
        else:
            value = rng.uniform(-0.5, 0.5, shape)
        tensor.set_value(value.astype(tensor.numpy().dtype))
    model.eval()
    return model


def main(out_dir, fmt):
    """Export every architecture of CONFIGS into OUT_DIR/<arch>-<fmt>/inference; the 2.x run
    also saves the same weights as a training checkpoint OUT_DIR/<arch>.pdparams."""
    for arch, cfg in CONFIGS.items():
        paddle.seed(0)
        model = randomize(build(arch))
        if fmt == "pdmodel":
            paddle.save(model.state_dict(), os.path.join(out_dir, f"{arch}.pdparams"))
        spec = [paddle.static.InputSpec([None] + cfg["input"], "float32", "x")]
        paddle.jit.save(model, os.path.join(out_dir, f"{arch}-{fmt}", "inference"),
                        input_spec=spec)


if __name__ == "__main__":
    main(*sys.argv[1:3])
