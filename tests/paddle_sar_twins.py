"""Paddle twins of PaddleOCR's ResNet31 (backbones/rec_resnet_31.py) and SARHead
(heads/rec_sar_head.py), written with paddle after PaddleOCR's modules: same module tree and
parameter names, the same ops in the same order (the encoder's per-sample valid step, the
decoder re-running its LSTM over the whole input at every step, the per-sample -inf mask of
the attention map, the fixed loop writing each prediction's embedding into the next slot).

One deviation, needed to export at all: PaddleOCR casts the masked width to int32 while
paddle 3.3's PIR `paddle.shape` is int64, so its `paddle.minimum` refuses to trace; the twin
casts to the shape's dtype (the value is the same).
"""

import paddle
import paddle.nn as pnn
import paddle.nn.functional as PF


# ---- backbones/rec_resnet_31.py

def conv3x3(cin, cout, stride=1):
    return pnn.Conv2D(cin, cout, kernel_size=3, stride=stride, padding=1, bias_attr=False)


class PBasicBlock(pnn.Layer):
    expansion = 1

    def __init__(self, cin, channels, stride=1, downsample=False):
        super().__init__()
        self.conv1 = conv3x3(cin, channels, stride)
        self.bn1 = pnn.BatchNorm2D(channels)
        self.relu = pnn.ReLU()
        self.conv2 = conv3x3(channels, channels)
        self.bn2 = pnn.BatchNorm2D(channels)
        if downsample:
            self.downsample = pnn.Sequential(
                pnn.Conv2D(cin, channels * self.expansion, 1, stride, bias_attr=False),
                pnn.BatchNorm2D(channels * self.expansion))
        else:
            self.downsample = pnn.Sequential()

    def forward(self, x):
        residual = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample:
            residual = self.downsample(x)
        out += residual
        return self.relu(out)


class PResNet31(pnn.Layer):
    def __init__(self, in_channels=3, layers=(1, 2, 5, 3),
                 channels=(64, 128, 256, 256, 512, 512, 512), last_stage_pool=False):
        super().__init__()
        self.conv1_1 = pnn.Conv2D(in_channels, channels[0], 3, 1, 1)
        self.bn1_1 = pnn.BatchNorm2D(channels[0])
        self.relu1_1 = pnn.ReLU()
        self.conv1_2 = pnn.Conv2D(channels[0], channels[1], 3, 1, 1)
        self.bn1_2 = pnn.BatchNorm2D(channels[1])
        self.relu1_2 = pnn.ReLU()
        kernels = {2: 2, 3: 2, 4: (2, 1), 5: 2 if last_stage_pool else None}
        for stage in range(2, 6):
            k = kernels[stage]
            setattr(self, f"pool{stage}", None if k is None else
                    pnn.MaxPool2D(kernel_size=k, stride=k, padding=0, ceil_mode=True))
            setattr(self, f"block{stage}", self._make_layer(channels[stage - 1], channels[stage],
                                                            layers[stage - 2]))
            setattr(self, f"conv{stage}", pnn.Conv2D(channels[stage], channels[stage], 3, 1, 1))
            setattr(self, f"bn{stage}", pnn.BatchNorm2D(channels[stage]))
            setattr(self, f"relu{stage}", pnn.ReLU())
        self.out_channels = channels[-1]

    def _make_layer(self, cin, cout, blocks):
        layers = []
        for _ in range(blocks):
            layers.append(PBasicBlock(cin, cout, downsample=cin != cout))
            cin = cout
        return pnn.Sequential(*layers)

    def forward(self, x):
        x = self.relu1_1(self.bn1_1(self.conv1_1(x)))
        x = self.relu1_2(self.bn1_2(self.conv1_2(x)))
        for stage in range(2, 6):
            pool = getattr(self, f"pool{stage}")
            if pool is not None:
                x = pool(x)
            x = getattr(self, f"block{stage}")(x)
            x = getattr(self, f"conv{stage}")(x)
            x = getattr(self, f"relu{stage}")(getattr(self, f"bn{stage}")(x))
        return x


# ---- heads/rec_sar_head.py

def _rnn(input_size, hidden, bi, dropout):
    return pnn.LSTM(input_size=input_size, hidden_size=hidden, num_layers=2, time_major=False,
                    dropout=dropout, direction="bidirectional" if bi else "forward")


class PSAREncoder(pnn.Layer):
    def __init__(self, enc_bi_rnn=False, enc_drop_rnn=0.1, d_model=512, d_enc=512, mask=True):
        super().__init__()
        self.mask = mask
        self.rnn_encoder = _rnn(d_model, d_enc, enc_bi_rnn, enc_drop_rnn)
        size = d_enc * (int(enc_bi_rnn) + 1)
        self.linear = pnn.Linear(size, size)

    def forward(self, feat, img_metas=None):
        valid_ratios = img_metas[-1] if img_metas is not None and self.mask else None
        feat_v = PF.max_pool2d(feat, kernel_size=(feat.shape[2], 1), stride=1, padding=0)
        feat_v = paddle.transpose(feat_v.squeeze(2), perm=[0, 2, 1])
        holistic = self.rnn_encoder(feat_v)[0]
        if valid_ratios is not None:
            valid_hf = []
            T = paddle.shape(holistic)[1]
            for i in range(valid_ratios.shape[0]):
                step = paddle.minimum(T, paddle.ceil(valid_ratios[i] * T).astype(T.dtype)) - 1
                valid_hf.append(holistic[i, step, :])
            valid_hf = paddle.stack(valid_hf, axis=0)
        else:
            valid_hf = holistic[:, -1, :]
        return self.linear(valid_hf)


class PParallelSARDecoder(pnn.Layer):
    def __init__(self, out_channels, enc_bi_rnn=False, dec_bi_rnn=False, dec_drop_rnn=0.0,
                 d_model=512, d_enc=512, d_k=64, pred_dropout=0.1, max_text_length=30,
                 mask=True, pred_concat=True):
        super().__init__()
        self.num_classes = out_channels
        self.start_idx, self.padding_idx = out_channels - 2, out_channels - 1
        self.max_seq_len, self.mask, self.pred_concat = max_text_length, mask, pred_concat
        enc_size = d_enc * (int(enc_bi_rnn) + 1)
        dec_size = enc_size * (int(dec_bi_rnn) + 1)
        self.conv1x1_1 = pnn.Linear(dec_size, d_k)
        self.conv3x3_1 = pnn.Conv2D(d_model, d_k, kernel_size=3, stride=1, padding=1)
        self.conv1x1_2 = pnn.Linear(d_k, 1)
        self.rnn_decoder = _rnn(enc_size, enc_size, dec_bi_rnn, dec_drop_rnn)
        self.embedding = pnn.Embedding(out_channels, enc_size, padding_idx=self.padding_idx)
        self.pred_dropout = pnn.Dropout(pred_dropout)
        fc_in = dec_size + d_model + enc_size if pred_concat else d_model
        self.prediction = pnn.Linear(fc_in, out_channels - 1)

    def _2d_attention(self, decoder_input, feat, holistic_feat, valid_ratios=None):
        y = self.rnn_decoder(decoder_input)[0]
        query = self.conv1x1_1(y)
        bsz, seq_len, attn_size = query.shape
        query = paddle.unsqueeze(query, axis=[3, 4])
        key = self.conv3x3_1(feat).unsqueeze(1)
        weight = paddle.tanh(paddle.add(key, query))
        weight = self.conv1x1_2(paddle.transpose(weight, perm=[0, 1, 3, 4, 2]))
        bsz, T, h, w, c = paddle.shape(weight)
        if valid_ratios is not None:
            for i in range(valid_ratios.shape[0]):
                valid_width = paddle.minimum(w, paddle.ceil(valid_ratios[i] * w).astype(w.dtype))
                if valid_width < w:
                    weight[i, :, :, valid_width:, :] = float("-inf")
        weight = PF.softmax(paddle.reshape(weight, [bsz, T, -1]), axis=-1)
        weight = paddle.transpose(paddle.reshape(weight, [bsz, T, h, w, c]), perm=[0, 1, 4, 2, 3])
        attn_feat = paddle.sum(paddle.multiply(feat.unsqueeze(1), weight), (3, 4), keepdim=False)
        if self.pred_concat:
            holistic_feat = paddle.expand(holistic_feat,
                                          shape=[bsz, seq_len, holistic_feat.shape[-1]])
            y = self.prediction(paddle.concat(
                (y, attn_feat.astype(y.dtype), holistic_feat.astype(y.dtype)), 2))
        else:
            y = self.prediction(attn_feat)
        return self.pred_dropout(y) if self.training else y

    def forward_train(self, feat, out_enc, label, valid_ratios):
        emb = self.embedding(label)
        out_enc = out_enc.unsqueeze(1).astype(emb.dtype)
        out = self._2d_attention(paddle.concat((out_enc, emb), axis=1), feat, out_enc,
                                 valid_ratios=valid_ratios)
        return out[:, 1:, :]

    def forward_test(self, feat, out_enc, valid_ratios):
        seq_len, bsz = self.max_seq_len, feat.shape[0]
        start = self.embedding(paddle.full((bsz,), fill_value=self.start_idx, dtype="int64"))
        emb_dim = start.shape[1]
        start = paddle.expand(start.unsqueeze(1), shape=[bsz, seq_len, emb_dim])
        out_enc = out_enc.unsqueeze(1)
        decoder_input = paddle.concat((out_enc, start), axis=1)
        outputs = []
        for i in range(1, seq_len + 1):
            out = self._2d_attention(decoder_input, feat, out_enc, valid_ratios=valid_ratios)
            char_output = PF.softmax(out[:, i, :], -1)
            outputs.append(char_output)
            emb = self.embedding(paddle.argmax(char_output, axis=1, keepdim=False))
            if i < seq_len:
                decoder_input[:, i + 1, :] = emb
        return paddle.stack(outputs, 1)


class PSARHead(pnn.Layer):
    def __init__(self, in_channels, out_channels, enc_dim=512, max_text_length=30,
                 enc_bi_rnn=False, enc_drop_rnn=0.1, dec_bi_rnn=False, dec_drop_rnn=0.0,
                 d_k=512, pred_dropout=0.1, pred_concat=True):
        super().__init__()
        self.encoder = PSAREncoder(enc_bi_rnn, enc_drop_rnn, in_channels, enc_dim)
        self.decoder = PParallelSARDecoder(
            out_channels, enc_bi_rnn, dec_bi_rnn, dec_drop_rnn, in_channels, enc_dim, d_k,
            pred_dropout, max_text_length, pred_concat=pred_concat)

    def forward(self, feat, targets=None):
        metas = targets
        holistic = self.encoder(feat, metas)
        valid = metas[-1] if metas is not None else None
        if self.training:
            return self.decoder.forward_train(feat, holistic, targets[0], valid)
        return self.decoder.forward_test(feat, holistic, valid)


class PRecModel(pnn.Layer):
    """PaddleOCR's BaseModel without transform and neck: the extra program inputs arrive as
    ``data`` and reach the head as its targets."""

    def __init__(self, backbone, head):
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, x, data=None):
        return self.head(self.backbone(x), targets=data)


# ---- exports (run as a script: paddle's dy2static traces these heads as a plain process
# does, while inside pytest it falls back to an AST translation that fails on the masked
# loop; the tests run this in a subprocess)

SMALL = {
    # a small ResNet31 (fewer blocks and channels) and SARHead of rec_r31_sar
    "rec_r31_sar": {"backbone": {"layers": [1, 1, 2, 1], "channels": [8, 16, 16, 16, 24, 24, 24]},
                    "head": {"enc_dim": 32, "d_k": 16, "max_text_length": 6}, "classes": 93},
}


def build(arch, seed=7):
    """The small twin of ``arch`` with random weights and BN statistics (eval mode)."""
    from paddle_ref import randomize

    cfg = SMALL[arch]
    paddle.seed(seed)
    backbone = PResNet31(3, **cfg["backbone"])
    model = PRecModel(backbone, PSARHead(backbone.out_channels, cfg["classes"], **cfg["head"]))
    return randomize(model, seed)


def input_spec(arch):
    """PaddleOCR's tools/export_model.py input spec of the algorithm."""
    if arch == "rec_r31_sar":
        return [paddle.static.InputSpec([None, 3, 48, 160], "float32", "x"),
                [paddle.static.InputSpec([None], "float32", "valid_ratio")]]
    raise KeyError(arch)


def export(arch, out):
    """OUT/model.pdparams (training checkpoint) and OUT/pir/inference.* (PIR program)."""
    from pathlib import Path

    model = build(arch)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paddle.save(model.state_dict(), str(out / "model.pdparams"))
    paddle.jit.save(model, str(out / "pir" / "inference"), input_spec=input_spec(arch))


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
    export(sys.argv[1], sys.argv[2])
