"""Paddle twins of PaddleOCR's ResNetFPN (backbones/rec_resnet_fpn.py) and SRNHead
(heads/rec_srn_head.py with heads/self_attention.py), written with paddle after PaddleOCR's
modules: same module tree, parameter names and ops (the dilated 2x2 convs of (1, 1)-stride
stages, BN with fused ReLU, LayerNorm/dropout/residual command strings, dropouts as
functional ``downscale_in_infer`` calls, the shared word embedding, the sorted-key dict
output). Run as a script it exports the small twin (PIR with tools/export_model.py's input
spec, and .pdparams)."""

from collections import OrderedDict

import numpy as np
import paddle
import paddle.nn as pnn
import paddle.nn.functional as PF


# ---- backbones/rec_resnet_fpn.py

class PConvBNLayer(pnn.Layer):
    def __init__(self, cin, cout, k, stride=1, act=None):
        super().__init__()
        dilated = stride == (1, 1)
        self.conv = pnn.Conv2D(cin, cout, 2 if dilated else k, stride=stride,
                               padding=(k - 1) // 2, dilation=2 if dilated else 1,
                               bias_attr=False)
        self.bn = pnn.BatchNorm(cout, act=act)

    def forward(self, x):
        return self.bn(self.conv(x))


class PShortCut(pnn.Layer):
    def __init__(self, cin, cout, stride, is_first=False):
        super().__init__()
        self.use_conv = cin != cout or stride != 1 or is_first
        if self.use_conv:
            self.conv = PConvBNLayer(cin, cout, 1, 1 if stride == (1, 1) else stride)

    def forward(self, x):
        return self.conv(x) if self.use_conv else x


class PBottleneckBlock(pnn.Layer):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv0 = PConvBNLayer(cin, cout, 1, act="relu")
        self.conv1 = PConvBNLayer(cout, cout, 3, stride=stride, act="relu")
        self.conv2 = PConvBNLayer(cout, cout * 4, 1)
        self.short = PShortCut(cin, cout * 4, stride)
        self.out_channels = cout * 4

    def forward(self, x):
        return PF.relu(self.conv2(self.conv1(self.conv0(x))) + self.short(x))


class PBasicBlock(pnn.Layer):
    def __init__(self, cin, cout, stride, is_first):
        super().__init__()
        self.conv0 = PConvBNLayer(cin, cout, 3, stride=stride, act="relu")
        self.conv1 = PConvBNLayer(cout, cout, 3)
        self.short = PShortCut(cin, cout, stride, is_first)
        self.out_channels = cout

    def forward(self, x):
        return PF.relu(self.conv1(self.conv0(x)) + self.short(x))


class PResNetFPN(pnn.Layer):
    def __init__(self, in_channels=1, layers=50):
        super().__init__()
        self.depth = {18: [2, 2, 2, 2], 34: [3, 4, 6, 3], 50: [3, 4, 6, 3]}[layers]
        strides, filters = [(2, 2), (2, 2), (1, 1), (1, 1)], [64, 128, 256, 512]
        self.conv = PConvBNLayer(in_channels, 64, 7, stride=2, act="relu")
        self.block_list = []
        in_ch = 64
        for block in range(4):
            for i in range(self.depth[block]):
                stride = strides[block] if i == 0 else 1
                if layers >= 50:
                    b = self.add_sublayer(f"bottleneckBlock_{block}_{i}",
                                          PBottleneckBlock(in_ch, filters[block], stride))
                else:
                    b = self.add_sublayer(f"res{block + 2}{chr(97 + i)}",
                                          PBasicBlock(in_ch, filters[block], stride,
                                                      block == i == 0))
                in_ch = b.out_channels
                self.block_list.append(b)
        out_ch = [in_ch // 4, in_ch // 2, in_ch]
        self.base_block = []
        for i in [-2, -3]:
            self.base_block.append(self.add_sublayer(
                f"F_{i}_base_block_0", pnn.Conv2D(out_ch[i + 1] + out_ch[i], out_ch[i], 1)))
            self.base_block.append(self.add_sublayer(
                f"F_{i}_base_block_1", pnn.Conv2D(out_ch[i], out_ch[i], 3, padding=1)))
            self.base_block.append(self.add_sublayer(
                f"F_{i}_base_block_2", pnn.BatchNorm(out_ch[i], act="relu")))
        self.base_block.append(self.add_sublayer(f"F_{i}_base_block_3",
                                                 pnn.Conv2D(out_ch[i], 512, 1)))
        self.out_channels = 512

    def forward(self, x):
        x = self.conv(x)
        ends = [np.sum(self.depth[: i + 1]) for i in range(4)]
        F = []
        for i, block in enumerate(self.block_list):
            x = block(x)
            if i + 1 in ends:
                F.append(x)
        base, j = F[-1], 0
        for i, block in enumerate(self.base_block):
            if i % 3 == 0 and i < 6:
                j += 1
                base = paddle.concat([base, F[-j - 1]], axis=1)
            base = block(base)
        return base


# ---- heads/self_attention.py

P_DROP = 0.1  # prepostprocess, attention and relu dropout as SRNHead configures them


def drop(x):
    return PF.dropout(x, p=P_DROP, mode="downscale_in_infer")


class PMultiHeadAttention(pnn.Layer):
    def __init__(self, d_key, d_value, d_model, n_head):
        super().__init__()
        self.n_head, self.d_key, self.d_value, self.d_model = n_head, d_key, d_value, d_model
        self.q_fc = pnn.Linear(d_model, d_key * n_head, bias_attr=False)
        self.k_fc = pnn.Linear(d_model, d_key * n_head, bias_attr=False)
        self.v_fc = pnn.Linear(d_model, d_value * n_head, bias_attr=False)
        self.proj_fc = pnn.Linear(d_value * n_head, d_model, bias_attr=False)

    def forward(self, x, attn_bias):
        def heads(t, d):
            return paddle.transpose(paddle.reshape(t, [0, 0, self.n_head, d]), [0, 2, 1, 3])

        q = heads(self.q_fc(x), self.d_key)
        k = heads(self.k_fc(x), self.d_key)
        v = heads(self.v_fc(x), self.d_value)
        product = paddle.matmul(q, k, transpose_y=True) * self.d_model ** -0.5
        if attn_bias is not None:
            product += attn_bias.astype(product.dtype)
        out = paddle.matmul(drop(PF.softmax(product)), v)
        out = paddle.transpose(out, [0, 2, 1, 3])
        out = paddle.reshape(out, [0, 0, out.shape[2] * out.shape[3]])
        return self.proj_fc(out)


class PPrePostProcessLayer(pnn.Layer):
    def __init__(self, cmd, d_model):
        super().__init__()
        self.cmd = cmd
        for c in cmd:
            if c == "n":
                self.add_sublayer(f"layer_norm_{len(self.sublayers())}", pnn.LayerNorm(d_model))

    def forward(self, x, residual=None):
        norms = iter(self.sublayers())
        for c in self.cmd:
            if c == "a":
                x = x + residual if residual is not None else x
            elif c == "n":
                x = next(norms)(x)
            elif c == "d":
                x = drop(x)
        return x


class PFFN(pnn.Layer):
    def __init__(self, d_inner, d_model):
        super().__init__()
        self.fc1 = pnn.Linear(d_model, d_inner)
        self.fc2 = pnn.Linear(d_inner, d_model)

    def forward(self, x):
        return self.fc2(drop(PF.relu(self.fc1(x))))


class PEncoderLayer(pnn.Layer):
    def __init__(self, n_head, d_model):
        super().__init__()
        d = d_model // n_head
        self.preprocesser1 = PPrePostProcessLayer("n", d_model)
        self.self_attn = PMultiHeadAttention(d, d, d_model, n_head)
        self.postprocesser1 = PPrePostProcessLayer("da", d_model)
        self.preprocesser2 = PPrePostProcessLayer("n", d_model)
        self.ffn = PFFN(d_model, d_model)
        self.postprocesser2 = PPrePostProcessLayer("da", d_model)

    def forward(self, x, bias):
        attn = self.postprocesser1(self.self_attn(self.preprocesser1(x), bias), x)
        return self.postprocesser2(self.ffn(self.preprocesser2(attn)), attn)


class PEncoder(pnn.Layer):
    def __init__(self, n_layer, n_head, d_model):
        super().__init__()
        self.encoder_layers = [self.add_sublayer(f"layer_{i}", PEncoderLayer(n_head, d_model))
                               for i in range(n_layer)]
        self.processer = PPrePostProcessLayer("n", d_model)

    def forward(self, x, bias):
        for layer in self.encoder_layers:
            x = layer(x, bias)
        return self.processer(x)


class PPrepareEncoder(pnn.Layer):
    def __init__(self, d_model, max_len):
        super().__init__()
        self.d = d_model
        self.emb = pnn.Embedding(max_len, d_model)

    def forward(self, src, pos):
        src = paddle.scale(paddle.cast(src, "float32"), scale=self.d ** 0.5)
        return drop(src + self.emb(paddle.squeeze(pos, axis=-1)))


class PPrepareDecoder(pnn.Layer):
    def __init__(self, vocab, d_model, max_len):
        super().__init__()
        self.d = d_model
        self.emb0 = pnn.Embedding(vocab, d_model, padding_idx=0)
        self.emb1 = pnn.Embedding(max_len, d_model)

    def forward(self, words, pos):
        words = paddle.squeeze(paddle.cast(words, "int64"), axis=-1)
        emb = paddle.scale(self.emb0(words), scale=self.d ** 0.5)
        return drop(emb + self.emb1(paddle.squeeze(pos, axis=-1)))


class PWrapEncoderForFeature(pnn.Layer):
    def __init__(self, max_len, n_layer, n_head, d_model):
        super().__init__()
        self.prepare_encoder = PPrepareEncoder(d_model, max_len)
        self.encoder = PEncoder(n_layer, n_head, d_model)

    def forward(self, inputs):
        feats, pos, bias = inputs
        return self.encoder(self.prepare_encoder(feats, pos), bias)


class PWrapEncoder(pnn.Layer):
    def __init__(self, vocab, max_len, n_layer, n_head, d_model):
        super().__init__()
        self.prepare_decoder = PPrepareDecoder(vocab, d_model, max_len)
        self.encoder = PEncoder(n_layer, n_head, d_model)

    def forward(self, inputs):
        words, pos, bias = inputs
        return self.encoder(self.prepare_decoder(words, pos), bias)


# ---- heads/rec_srn_head.py

class PPVAM(pnn.Layer):
    def __init__(self, cin, max_len, n_head, n_enc, hidden):
        super().__init__()
        self.max_length = max_len
        self.wrap_encoder_for_feature = PWrapEncoderForFeature(256, n_enc, n_head, hidden)
        self.fc0 = pnn.Linear(cin, cin)
        self.emb = pnn.Embedding(max_len, cin)
        self.fc1 = pnn.Linear(cin, 1, bias_attr=False)

    def forward(self, inputs, enc_pos, gsrm_pos):
        b, c, h, w = inputs.shape
        feats = paddle.transpose(paddle.reshape(inputs, [-1, c, h * w]), [0, 2, 1])
        word = self.fc0(self.wrap_encoder_for_feature([feats, enc_pos, None]))
        b, t, c = word.shape
        word_ = paddle.tile(paddle.reshape(word, [-1, 1, t, c]), [1, self.max_length, 1, 1])
        pos_ = paddle.tile(paddle.reshape(self.emb(gsrm_pos), [-1, self.max_length, 1, c]),
                           [1, 1, t, 1])
        weight = self.fc1(PF.tanh(pos_ + word_))
        weight = PF.softmax(paddle.reshape(weight, [-1, self.max_length, t]), axis=-1)
        return paddle.matmul(weight, word)


class PGSRM(pnn.Layer):
    def __init__(self, cin, char_num, max_len, n_head, n_dec, hidden):
        super().__init__()
        self.char_num = char_num
        self.fc0 = pnn.Linear(cin, char_num)
        self.wrap_encoder0 = PWrapEncoder(char_num + 1, max_len, n_dec, n_head, hidden)
        self.wrap_encoder1 = PWrapEncoder(char_num + 1, max_len, n_dec, n_head, hidden)

    def forward(self, inputs, pos, bias1, bias2):
        b, t, c = inputs.shape
        word_out = self.fc0(paddle.reshape(inputs, [-1, c]))
        ids = paddle.reshape(paddle.argmax(PF.softmax(word_out), axis=1), [-1, t, 1])
        word1 = PF.pad(paddle.cast(ids, "float32"), [1, 0], value=1.0 * self.char_num,
                       data_format="NLC")
        word1 = paddle.cast(word1, "int64")[:, :-1, :]
        f1 = self.wrap_encoder0([word1, pos, bias1])
        f2 = self.wrap_encoder1([ids, pos, bias2])
        f2 = PF.pad(f2, [0, 1], value=0.0, data_format="NLC")[:, 1:, ]
        feats = f1 + f2
        out = paddle.matmul(feats, self.wrap_encoder0.prepare_decoder.emb0.weight,
                            transpose_y=True)
        b, t, c = out.shape
        return feats, word_out, paddle.reshape(out, [-1, c])


class PVSFD(pnn.Layer):
    def __init__(self, cin=512, pvam_ch=512, char_num=38):
        super().__init__()
        self.fc0 = pnn.Linear(cin * 2, pvam_ch)
        self.fc1 = pnn.Linear(pvam_ch, char_num)

    def forward(self, pvam, gsrm):
        b, t, c1 = pvam.shape
        b, t, c2 = gsrm.shape
        gate = PF.sigmoid(self.fc0(paddle.reshape(paddle.concat([pvam, gsrm], 2), [-1, c1 + c2])))
        gate = paddle.reshape(gate, [-1, t, c1])
        return self.fc1(paddle.reshape(gate * pvam + (1.0 - gate) * gsrm, [-1, c1]))


class PSRNHead(pnn.Layer):
    def __init__(self, cin, out_channels, max_text_length, num_heads, num_encoder_TUs,
                 num_decoder_TUs, hidden_dims):
        super().__init__()
        self.pvam = PPVAM(cin, max_text_length, num_heads, num_encoder_TUs, hidden_dims)
        self.gsrm = PGSRM(cin, out_channels, max_text_length, num_heads, num_decoder_TUs,
                          hidden_dims)
        self.vsfd = PVSFD(cin, char_num=out_channels)
        self.gsrm.wrap_encoder1.prepare_decoder.emb0 = self.gsrm.wrap_encoder0.prepare_decoder.emb0

    def forward(self, inputs, others):
        pvam = self.pvam(inputs, others[0], others[1])
        gsrm, word_out, gsrm_out = self.gsrm(pvam, others[1], others[2], others[3])
        final = self.vsfd(pvam, gsrm)
        if not self.training:
            final = PF.softmax(final, axis=1)
        _, decoded = paddle.topk(final, k=1)
        return OrderedDict([("predict", final), ("pvam_feature", pvam), ("decoded_out", decoded),
                            ("word_out", word_out), ("gsrm_out", gsrm_out)])


class PSRNModel(pnn.Layer):
    def __init__(self, backbone, head):
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, x, data=None):
        return self.head(self.backbone(x), data)


ARCH = "rec_r50_fpn_srn"
# ResNetFPN-18 (BasicBlocks; the table's 50 has the same FPN code path) and one encoder
# layer per transformer; the widths are fixed by SRN (512) and the export (25 positions)
SMALL = {"layers": 18, "head": {"out_channels": 38, "max_text_length": 25, "num_heads": 8,
                                "num_encoder_TUs": 1, "num_decoder_TUs": 1,
                                "hidden_dims": 512}}


def build(seed=9, small=True):
    """The twin with random weights and BN statistics (conv weights scaled by 1/sqrt(fan-in)
    so the deep ResNet's activations stay O(1) and the outputs depend on the input)."""
    paddle.seed(seed)
    cfg = SMALL if small else {"layers": 50, "head": {**SMALL["head"], "num_encoder_TUs": 2,
                                                      "num_decoder_TUs": 4}}
    model = PSRNModel(PResNetFPN(1, cfg["layers"]), PSRNHead(512, **cfg["head"]))
    rng = np.random.RandomState(seed)
    for name, t in model.state_dict().items():
        if name.endswith("_variance"):
            v = rng.uniform(0.5, 1.5, t.shape)
        else:
            v = rng.uniform(-0.5, 0.5, t.shape)
            if len(t.shape) == 4 or (len(t.shape) == 2 and "emb" not in name):
                v = v * 2.0 / np.sqrt(np.prod(t.shape[1:]) if len(t.shape) == 4 else t.shape[0])
        t.set_value(v.astype(t.numpy().dtype))
    model.eval()
    return model


def input_spec(max_len=25):
    """tools/export_model.py's SRN input spec (the biases declared int64, fed float32)."""
    spec = paddle.static.InputSpec
    return [spec([None, 1, 64, 256], "float32", "x"),
            [spec([None, 256, 1], "int64"), spec([None, max_len, 1], "int64"),
             spec([None, 8, max_len, max_len], "int64"),
             spec([None, 8, max_len, max_len], "int64")]]


if __name__ == "__main__":
    import sys
    from pathlib import Path

    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    model = build()
    paddle.save(model.state_dict(), str(out / "model.pdparams"))
    paddle.jit.save(model, str(out / "pir" / "inference"), input_spec=input_spec())
