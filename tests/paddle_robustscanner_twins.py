"""Paddle twin of PaddleOCR's RobustScannerHead (heads/rec_robustscanner_head.py), written
with paddle after PaddleOCR's modules: same module tree and parameter names, the same ops in
the same order — the 1x1 channel-reduction encoder; the position decoder (row-wise 2-layer
LSTM + conv mixer as keys, an embedding of the word positions as queries); the hybrid
decoder re-running its LSTM over the whole decode sequence at every step and attending with
all positions, of which it keeps the current one; the per-sample -inf mask of columns past
``min(w, int(w * valid_ratio + 0.5))``; the GLU fusion; the fixed loop of
``max_text_length`` steps writing each argmax into the next slot. The backbone is the
ResNet31 twin of tests/paddle_sar_twins.py.

One deviation, needed to export at all: PaddleOCR writes the masked width as
``min(w, int(w * valid_ratio + 0.5))``; paddle 3.3's PIR tracer turns ``int()`` into a cast
but refuses Python's ``min`` on a tensor (bool(Tensor)), so the twin writes the same value as
a cast (truncation, as ``int`` of a positive number) and ``paddle.minimum``. PaddleOCR's own
file fails to export under paddle 3.3 on exactly that line (checked on the verbatim source).

Exported as PaddleOCR's tools/export_model.py exports it: inputs [x [N,3,48,160],
[valid_ratio [N], word_positions [N, max_text_length] int64]].
"""

import paddle
import paddle.nn as pnn
import paddle.nn.functional as PF

from paddle_sar_twins import PRecModel, PResNet31


class PChannelReductionEncoder(pnn.Layer):
    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.layer = pnn.Conv2D(in_channels, out_channels, kernel_size=1, stride=1, padding=0)

    def forward(self, feat):
        return self.layer(feat)


class PDotProductAttentionLayer(pnn.Layer):
    def __init__(self, dim_model=None):
        super().__init__()
        self.scale = dim_model ** -0.5 if dim_model is not None else 1.0

    def forward(self, query, key, value, h, w, valid_ratios=None):
        query = paddle.transpose(query, (0, 2, 1))
        logits = paddle.matmul(query, key) * self.scale
        n, c, t = logits.shape
        logits = paddle.reshape(logits, [n, c, h, w])
        if valid_ratios is not None:
            with paddle.base.framework._stride_in_no_check_dy2st_diff():
                for i, valid_ratio in enumerate(valid_ratios):
                    # PaddleOCR: min(w, int(w * valid_ratio + 0.5)); see the module note
                    valid_width = (w * valid_ratio + 0.5).astype("int64")
                    valid_width = paddle.minimum(valid_width, paddle.full_like(valid_width, w))
                    if valid_width < w:
                        logits[i, :, :, valid_width:] = float("-inf")
        logits = paddle.reshape(logits, [n, c, t])
        weights = PF.softmax(logits, axis=2)
        value = paddle.transpose(value, (0, 2, 1))
        glimpse = paddle.matmul(weights, value)
        return paddle.transpose(glimpse, (0, 2, 1))


class PSequenceAttentionDecoder(pnn.Layer):
    def __init__(self, num_classes, rnn_layers=2, dim_input=512, dim_model=128, max_seq_len=40,
                 start_idx=0, mask=True, padding_idx=None, dropout=0, return_feature=False,
                 encode_value=False):
        super().__init__()
        self.num_classes, self.dim_input, self.dim_model = num_classes, dim_input, dim_model
        self.return_feature, self.encode_value = return_feature, encode_value
        self.max_seq_len, self.start_idx, self.mask = max_seq_len, start_idx, mask
        self.embedding = pnn.Embedding(num_classes, dim_model, padding_idx=padding_idx)
        self.sequence_layer = pnn.LSTM(input_size=dim_model, hidden_size=dim_model,
                                       num_layers=rnn_layers, time_major=False, dropout=dropout)
        self.attention_layer = PDotProductAttentionLayer()
        self.prediction = None
        if not return_feature:
            self.prediction = pnn.Linear(dim_model if encode_value else dim_input,
                                         num_classes - 1)

    def forward_test_step(self, feat, out_enc, decode_sequence, current_step, valid_ratios):
        embed = self.embedding(decode_sequence)
        n, c_enc, h, w = out_enc.shape
        _, c_feat, _, _ = feat.shape
        query, _ = self.sequence_layer(embed)
        query = paddle.transpose(query, (0, 2, 1))
        key = paddle.reshape(out_enc, [n, c_enc, h * w])
        value = key if self.encode_value else paddle.reshape(feat, [n, c_feat, h * w])
        attn_out = self.attention_layer(query, key, value, h, w, valid_ratios)
        out = attn_out[:, :, current_step]
        if self.return_feature:
            return out
        return PF.softmax(self.prediction(out), axis=-1)


class PPositionAwareLayer(pnn.Layer):
    def __init__(self, dim_model, rnn_layers=2):
        super().__init__()
        self.dim_model = dim_model
        self.rnn = pnn.LSTM(input_size=dim_model, hidden_size=dim_model, num_layers=rnn_layers,
                            time_major=False)
        self.mixer = pnn.Sequential(
            pnn.Conv2D(dim_model, dim_model, kernel_size=3, stride=1, padding=1), pnn.ReLU(),
            pnn.Conv2D(dim_model, dim_model, kernel_size=3, stride=1, padding=1))

    def forward(self, img_feature):
        n, c, h, w = img_feature.shape
        rnn_input = paddle.reshape(paddle.transpose(img_feature, (0, 2, 3, 1)), (n * h, w, c))
        rnn_output, _ = self.rnn(rnn_input)
        rnn_output = paddle.transpose(paddle.reshape(rnn_output, (n, h, w, c)), (0, 3, 1, 2))
        return self.mixer(rnn_output)


class PPositionAttentionDecoder(pnn.Layer):
    def __init__(self, num_classes, rnn_layers=2, dim_input=512, dim_model=128, max_seq_len=40,
                 mask=True, return_feature=False, encode_value=False):
        super().__init__()
        self.num_classes, self.dim_input, self.dim_model = num_classes, dim_input, dim_model
        self.max_seq_len, self.return_feature = max_seq_len, return_feature
        self.encode_value, self.mask = encode_value, mask
        self.embedding = pnn.Embedding(max_seq_len + 1, dim_model)
        self.position_aware_module = PPositionAwareLayer(dim_model, rnn_layers)
        self.attention_layer = PDotProductAttentionLayer()
        self.prediction = None
        if not return_feature:
            self.prediction = pnn.Linear(dim_model if encode_value else dim_input,
                                         num_classes - 1)

    def forward_test(self, feat, out_enc, valid_ratios, position_index):
        n, c_enc, h, w = out_enc.shape
        _, c_feat, _, _ = feat.shape
        position_out_enc = self.position_aware_module(out_enc)
        query = paddle.transpose(self.embedding(position_index), (0, 2, 1))
        key = paddle.reshape(position_out_enc, (n, c_enc, h * w))
        if self.encode_value:
            value = paddle.reshape(out_enc, (n, c_enc, h * w))
        else:
            value = paddle.reshape(feat, (n, c_feat, h * w))
        attn_out = self.attention_layer(query, key, value, h, w, valid_ratios)
        attn_out = paddle.transpose(attn_out, (0, 2, 1))
        if self.return_feature:
            return attn_out
        return self.prediction(attn_out)


class PRobustScannerFusionLayer(pnn.Layer):
    def __init__(self, dim_model, dim=-1):
        super().__init__()
        self.dim_model, self.dim = dim_model, dim
        self.linear_layer = pnn.Linear(dim_model * 2, dim_model * 2)

    def forward(self, x0, x1):
        output = self.linear_layer(paddle.concat([x0, x1], self.dim))
        return PF.glu(output, self.dim)


class PRobustScannerDecoder(pnn.Layer):
    def __init__(self, num_classes, dim_input=512, dim_model=128, hybrid_decoder_rnn_layers=2,
                 hybrid_decoder_dropout=0, position_decoder_rnn_layers=2, max_seq_len=40,
                 start_idx=0, mask=True, padding_idx=None, encode_value=False):
        super().__init__()
        self.num_classes, self.dim_input, self.dim_model = num_classes, dim_input, dim_model
        self.max_seq_len, self.encode_value = max_seq_len, encode_value
        self.start_idx, self.padding_idx, self.mask = start_idx, padding_idx, mask
        self.hybrid_decoder = PSequenceAttentionDecoder(
            num_classes, hybrid_decoder_rnn_layers, dim_input, dim_model, max_seq_len,
            start_idx, mask, padding_idx, hybrid_decoder_dropout, return_feature=True,
            encode_value=encode_value)
        self.position_decoder = PPositionAttentionDecoder(
            num_classes, position_decoder_rnn_layers, dim_input, dim_model, max_seq_len, mask,
            return_feature=True, encode_value=encode_value)
        self.fusion_module = PRobustScannerFusionLayer(dim_model if encode_value else dim_input)
        self.prediction = pnn.Linear(dim_model if encode_value else dim_input, num_classes - 1)

    def forward_test(self, feat, out_enc, valid_ratios, word_positions):
        seq_len = self.max_seq_len
        batch_size = feat.shape[0]
        decode_sequence = paddle.ones((batch_size, seq_len), dtype="int64") * self.start_idx
        position_glimpse = self.position_decoder.forward_test(feat, out_enc, valid_ratios,
                                                              word_positions)
        outputs = []
        for i in range(seq_len):
            hybrid_glimpse_step = self.hybrid_decoder.forward_test_step(
                feat, out_enc, decode_sequence, i, valid_ratios)
            fusion_out = self.fusion_module(hybrid_glimpse_step, position_glimpse[:, i, :])
            char_out = PF.softmax(self.prediction(fusion_out), -1)
            outputs.append(char_out)
            max_idx = paddle.argmax(char_out, axis=1, keepdim=False)
            if i < seq_len - 1:
                decode_sequence[:, i + 1] = max_idx
        return paddle.stack(outputs, 1)


class PRobustScannerHead(pnn.Layer):
    def __init__(self, out_channels, in_channels, enc_outchannles=128, hybrid_dec_rnn_layers=2,
                 hybrid_dec_dropout=0, position_dec_rnn_layers=2, start_idx=0,
                 max_text_length=40, mask=True, padding_idx=None, encode_value=False):
        super().__init__()
        self.encoder = PChannelReductionEncoder(in_channels, enc_outchannles)
        self.decoder = PRobustScannerDecoder(
            out_channels, in_channels, enc_outchannles, hybrid_dec_rnn_layers,
            hybrid_dec_dropout, position_dec_rnn_layers, max_text_length, start_idx, mask,
            padding_idx, encode_value)

    def forward(self, inputs, targets=None):
        out_enc = self.encoder(inputs)
        valid_ratios = None
        word_positions = targets[-1]
        if len(targets) > 1:
            valid_ratios = targets[-2]
        return self.decoder.forward_test(inputs, out_enc, valid_ratios, word_positions)


# ---- exports (a subprocess, as for SAR: dy2static traces the masked loop there)

ARCH = "rec_r31_robustscanner"
SMALL = {
    # a small ResNet31 and RobustScannerHead of rec_r31_robustscanner (dict90: 93 classes,
    # start 91, padding 92), decoding 8 steps (Global.max_text_length; the config's 40 makes
    # the exported loop 25 times costlier to run: the hybrid LSTM is re-run at every step)
    "backbone": {"layers": [1, 1, 2, 1], "channels": [8, 16, 16, 16, 24, 24, 24]},
    "head": {"enc_outchannles": 16, "max_text_length": 8, "start_idx": 91, "padding_idx": 92},
    "classes": 93,
}


def build(seed=11):
    """The small twin with random weights and BN statistics (eval mode)."""
    from paddle_ref import randomize

    paddle.seed(seed)
    backbone = PResNet31(3, **SMALL["backbone"])
    head = PRobustScannerHead(SMALL["classes"], backbone.out_channels, **SMALL["head"])
    return randomize(PRecModel(backbone, head), seed)


def input_spec(max_text_length):
    """PaddleOCR's tools/export_model.py input spec for RobustScanner."""
    return [paddle.static.InputSpec([None, 3, 48, 160], "float32", "x"),
            [paddle.static.InputSpec([None], "float32", "valid_ratio"),
             paddle.static.InputSpec([None, max_text_length], "int64", "word_positions")]]


def export(out, legacy=False):
    """OUT/model.pdparams (training checkpoint) and OUT/pir/inference.* (PIR program), or
    with ``legacy`` OUT/legacy/inference.* (a 2.x program; needs FLAGS_enable_pir_api=0)."""
    from pathlib import Path

    model = build()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    spec = input_spec(SMALL["head"]["max_text_length"])
    if legacy:
        paddle.jit.save(model, str(out / "legacy" / "inference"), input_spec=spec)
        return
    paddle.save(model.state_dict(), str(out / "model.pdparams"))
    paddle.jit.save(model, str(out / "pir" / "inference"), input_spec=spec)


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
    export(sys.argv[1], legacy=len(sys.argv) > 2 and sys.argv[2] == "legacy")
