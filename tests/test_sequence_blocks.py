"""Op-level tests of the recognition sequence blocks (SequenceEncoder rnn/fc/svtr, CTCHead,
MultiHead CTC branch) against paddle layers written after PaddleOCR's necks/rnn.py,
backbones/rec_svtrnet.py and heads/rec_ctc_head.py, on random weights."""

import numpy as np
import paddle
import paddle.nn as pnn
import paddle.nn.functional as PF

from paddle_lm_twins import matmul  # also appends 2.x programs' matmul_v2 (paddle_deep_rec)
from paddle_ref import load_into, max_diff, randomize
from ptocr.models.heads.rec_ctc_head import CTCHead
from ptocr.models.necks.rnn import SequenceEncoder

RNG = np.random.RandomState(2)


def seq_input(c, w, n=2):
    return RNG.uniform(-1, 1, (n, c, 1, w)).astype(np.float32)


class PIm2Seq(pnn.Layer):
    def forward(self, x):
        return x.squeeze(axis=2).transpose([0, 2, 1])


class PRNN(pnn.Layer):
    def __init__(self, cin, hidden):
        super().__init__()
        self.lstm = pnn.LSTM(cin, hidden, direction="bidirectional", num_layers=2)

    def forward(self, x):
        return self.lstm(x)[0]


class PFC(pnn.Layer):
    def __init__(self, cin, hidden):
        super().__init__()
        self.fc = pnn.Linear(cin, hidden)

    def forward(self, x):
        return self.fc(x)


class PSeq(pnn.Layer):
    def __init__(self, encoder):
        super().__init__()
        self.encoder_reshape = PIm2Seq()
        self.encoder = encoder

    def forward(self, x):
        return self.encoder(self.encoder_reshape(x))


def test_rnn_encoder_matches_paddle_and_drops_lstm_aliases():
    ref = randomize(PSeq(PRNN(24, 16)))
    assert any(".cell_fw." in k for k in ref.state_dict())  # paddle's per-cell aliases
    ours = load_into(SequenceEncoder(24, "rnn", hidden_size=16), ref)
    assert max_diff(ref, ours, seq_input(24, 11)) < 1e-5


def test_fc_encoder_matches_paddle():
    ref = randomize(PSeq(PFC(24, 16)))
    ours = load_into(SequenceEncoder(24, "fc", hidden_size=16), ref)
    assert max_diff(ref, ours, seq_input(24, 11)) < 1e-5


class PConvBN(pnn.Layer):
    def __init__(self, cin, cout, k, pad):
        super().__init__()
        self.conv = pnn.Conv2D(cin, cout, k, padding=pad, bias_attr=False)
        self.norm = pnn.BatchNorm2D(cout)

    def forward(self, x):
        return PF.swish(self.norm(self.conv(x)))


class PAttention(pnn.Layer):
    def __init__(self, dim, heads):
        super().__init__()
        self.h, self.hd, self.dim = heads, dim // heads, dim
        self.qkv = pnn.Linear(dim, 3 * dim)
        self.proj = pnn.Linear(dim, dim)

    def forward(self, x):
        qkv = self.qkv(x).reshape((0, -1, 3, self.h, self.hd)).transpose((2, 0, 3, 1, 4))
        q, k, v = qkv[0] * self.hd ** -0.5, qkv[1], qkv[2]
        attn = PF.softmax(matmul(q, k.transpose((0, 1, 3, 2))), axis=-1)
        return self.proj(matmul(attn, v).transpose((0, 2, 1, 3)).reshape((0, -1, self.dim)))


class PMlp(pnn.Layer):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1, self.fc2 = pnn.Linear(dim, hidden), pnn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(PF.swish(self.fc1(x)))


class PBlock(pnn.Layer):
    def __init__(self, dim, heads):
        super().__init__()
        self.norm1 = pnn.LayerNorm(dim, epsilon=1e-5)
        self.mixer = PAttention(dim, heads)
        self.norm2 = pnn.LayerNorm(dim, epsilon=1e-5)
        self.mlp = PMlp(dim, dim * 2)

    def forward(self, x):
        x = x + self.mixer(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PSVTR(pnn.Layer):
    def __init__(self, cin, dims, hidden, heads=8, k=(1, 3)):
        super().__init__()
        pad = [k[0] // 2, k[1] // 2]
        self.conv1 = PConvBN(cin, cin // 8, k, pad)
        self.conv2 = PConvBN(cin // 8, hidden, 1, 0)
        self.svtr_block = pnn.LayerList([PBlock(hidden, heads) for _ in range(2)])
        self.norm = pnn.LayerNorm(hidden, epsilon=1e-6)
        self.conv3 = PConvBN(hidden, cin, 1, 0)
        self.conv4 = PConvBN(2 * cin, cin // 8, k, pad)
        self.conv1x1 = PConvBN(cin // 8, dims, 1, 0)

    def forward(self, x):
        z = self.conv2(self.conv1(x))
        _, c, h, w = z.shape
        z = z.flatten(2).transpose([0, 2, 1])
        for blk in self.svtr_block:
            z = blk(z)
        z = self.norm(z).reshape([0, h, w, c]).transpose([0, 3, 1, 2])
        return self.conv1x1(self.conv4(paddle.concat([x, self.conv3(z)], axis=1)))


class PSVTRSeq(pnn.Layer):
    def __init__(self, encoder):
        super().__init__()
        self.encoder = encoder
        self.encoder_reshape = PIm2Seq()

    def forward(self, x):
        return self.encoder_reshape(self.encoder(x))


def test_svtr_encoder_matches_paddle():
    ref = randomize(PSVTRSeq(PSVTR(64, 32, 40)))
    ours = load_into(SequenceEncoder(64, "svtr", dims=32, hidden_dims=40, depth=2,
                                     kernel_size=[1, 3], use_guide=True), ref)
    assert max_diff(ref, ours, seq_input(64, 25)) < 1e-5


class PCTC(pnn.Layer):
    def __init__(self, cin, n, mid=None):
        super().__init__()
        self.mid = mid
        if mid:
            self.fc1, self.fc2 = pnn.Linear(cin, mid), pnn.Linear(mid, n)
        else:
            self.fc = pnn.Linear(cin, n)

    def forward(self, x):
        x = self.fc2(self.fc1(x)) if self.mid else self.fc(x)
        return PF.softmax(x, axis=2)


def test_ctc_head_matches_paddle_with_and_without_mid_channels():
    x = RNG.uniform(-1, 1, (2, 9, 24)).astype(np.float32)
    for mid in (None, 12):
        ref = randomize(PCTC(24, 30, mid))
        ours = load_into(CTCHead(24, 30, mid_channels=mid), ref)
        assert max_diff(ref, ours, x) < 1e-6
