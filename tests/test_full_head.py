"""--full-head: the NRTR branch PaddleOCR's MultiHead trains beside CTC, converted from a
training checkpoint and compared with paddle layers written after PaddleOCR's
heads/rec_nrtr_head.py (decoder-only, as MultiHead builds it)."""

import math

import numpy as np
import paddle
import paddle.nn as pnn
import paddle.nn.functional as PF
import torch

import ptocr
from paddle_ref import randomize
from ptocr.converter import formats

D, HEADS, LAYERS, CLASSES = 64, 2, 2, 11  # small NRTR: nrtr_dim 64 -> 2 heads


class PMHA(pnn.Layer):
    def __init__(self, d, h, self_attn):
        super().__init__()
        self.h, self.hd, self.d, self.self_attn = h, d // h, d, self_attn
        if self_attn:
            self.qkv = pnn.Linear(d, 3 * d)
        else:
            self.q = pnn.Linear(d, d)
            self.kv = pnn.Linear(d, 2 * d)
        self.out_proj = pnn.Linear(d, d)

    def forward(self, query, key=None, attn_mask=None):
        qn = query.shape[1]
        if self.self_attn:
            qkv = self.qkv(query).reshape((0, qn, 3, self.h, self.hd)).transpose((2, 0, 3, 1, 4))
            q, k, v = qkv[0], qkv[1], qkv[2]
        else:
            q = self.q(query).reshape([0, qn, self.h, self.hd]).transpose([0, 2, 1, 3])
            kv = self.kv(key).reshape((0, key.shape[1], 2, self.h, self.hd)).transpose(
                (2, 0, 3, 1, 4))
            k, v = kv[0], kv[1]
        attn = q.matmul(k.transpose((0, 1, 3, 2))) * self.hd ** -0.5
        if attn_mask is not None:
            attn += attn_mask
        x = PF.softmax(attn, axis=-1).matmul(v).transpose((0, 2, 1, 3)).reshape((0, qn, self.d))
        return self.out_proj(x)


class PMlp(pnn.Layer):
    def __init__(self, d, hidden):
        super().__init__()
        self.fc1, self.fc2 = pnn.Linear(d, hidden), pnn.Linear(hidden, d)

    def forward(self, x):
        return self.fc2(PF.relu(self.fc1(x)))


class PBlock(pnn.Layer):
    def __init__(self, d, h):
        super().__init__()
        self.self_attn = PMHA(d, h, True)
        self.norm1 = pnn.LayerNorm(d)
        self.cross_attn = PMHA(d, h, False)
        self.norm2 = pnn.LayerNorm(d)
        self.mlp = PMlp(d, 4 * d)
        self.norm3 = pnn.LayerNorm(d)

    def forward(self, tgt, memory, mask):
        tgt = self.norm1(tgt + self.self_attn(tgt, attn_mask=mask))
        tgt = self.norm2(tgt + self.cross_attn(tgt, key=memory))
        return self.norm3(tgt + self.mlp(tgt))


class PEmb(pnn.Layer):
    def __init__(self, vocab, d):
        super().__init__()
        self.embedding = pnn.Embedding(vocab, d, padding_idx=0)


class PPos(pnn.Layer):
    def __init__(self, d, max_len=5000):
        super().__init__()
        pe = paddle.zeros([max_len, d])
        pos = paddle.arange(0, max_len, dtype="float32").unsqueeze(1)
        div = paddle.exp(paddle.arange(0, d, 2).astype("float32") * (-math.log(10000.0) / d))
        pe[:, 0::2] = paddle.sin(pos * div)
        pe[:, 1::2] = paddle.cos(pos * div)
        self.register_buffer("pe", paddle.transpose(paddle.unsqueeze(pe, 0), [1, 0, 2]))


class PTransformer(pnn.Layer):
    def __init__(self):
        super().__init__()
        self.embedding = PEmb(CLASSES + 1, D)
        self.positional_encoding = PPos(D)
        self.decoder = pnn.LayerList([PBlock(D, HEADS) for _ in range(LAYERS)])
        self.tgt_word_prj = pnn.Linear(D, CLASSES + 1, bias_attr=False)

    def forward(self, memory, tokens):
        tgt = self.embedding.embedding(tokens) * math.sqrt(D)
        tgt = (tgt.transpose([1, 0, 2]) + self.positional_encoding.pe[: tgt.shape[1]]
               ).transpose([1, 0, 2])
        n = tokens.shape[1]
        mask = paddle.triu(paddle.full([n, n], float("-inf")), diagonal=1).unsqueeze([0, 1])
        for block in self.decoder:
            tgt = block(tgt, memory, mask)
        return self.tgt_word_prj(tgt)


class PFCTranspose(pnn.Layer):
    def __init__(self, cin, d):
        super().__init__()
        self.fc = pnn.Linear(cin, d, bias_attr=False)


def test_full_head_from_training_checkpoint_matches_paddle(models, tmp_path, cli):
    arch = "PP-OCRv4_mobile_rec"
    paddle.seed(0)
    gtc = randomize(PTransformer(), seed=5)
    gtc.positional_encoding.pe.set_value(PPos(D).pe)  # a fixed table, not a weight
    before = randomize(pnn.Sequential(pnn.Flatten(2), PFCTranspose(480, D)), seed=6)
    state = {k: paddle.to_tensor(v) for k, v in formats.read(models(arch)).tensors.items()}
    state.update({f"head.gtc_head.{k}": v for k, v in gtc.state_dict().items()})
    state.update({f"head.before_gtc.{k}": v for k, v in before.state_dict().items()})
    ckpt = tmp_path / "train.pdparams"
    paddle.save(state, str(ckpt))
    cfg = tmp_path / "train.yml"
    cfg.write_text(f"""Architecture:
  model_type: rec
  algorithm: SVTR_LCNet
  Backbone: {{name: PPLCNetV3, scale: 0.95}}
  Head:
    name: MultiHead
    head_list:
      - CTCHead:
          Neck: {{name: svtr, dims: 120, depth: 2, hidden_dims: 120, kernel_size: [1, 3],
                 use_guide: true}}
          Head: {{fc_decay: 0.00001}}
      - NRTRHead: {{nrtr_dim: {D}, max_text_length: 25, num_decoder_layers: {LAYERS}}}
""")
    # without --full-head the NRTR branch is training-only and ignored
    res = cli("convert", "--arch", arch, "--paddle-dir", ckpt, "--out", tmp_path / "ctc.pth",
              "--config", cfg, "--no-verify")
    assert res.returncode == 0, res.stderr
    assert "training-only ignored" in res.stderr
    res = cli("convert", "--arch", arch, "--paddle-dir", ckpt, "--out", tmp_path / "full.pth",
              "--config", cfg, "--no-verify", "--full-head")
    assert res.returncode == 0, res.stderr
    model = ptocr.load(tmp_path / "full.pth")
    head = model.head
    assert head.gtc_head is not None

    rng = np.random.RandomState(0)
    feats = rng.uniform(-1, 1, (2, 480, 1, 40)).astype(np.float32)
    tokens = rng.randint(0, CLASSES + 1, (2, 7)).astype(np.int64)
    with torch.no_grad():
        memory = head.before_gtc(torch.from_numpy(feats))
        ours = head.gtc_head.decode(torch.from_numpy(tokens), memory).numpy()
    ref_memory = before[1].fc(before[0](paddle.to_tensor(feats)).transpose([0, 2, 1]))
    ref = gtc(ref_memory, paddle.to_tensor(tokens)).numpy()
    np.testing.assert_allclose(memory.numpy(), ref_memory.numpy(), atol=1e-5)
    assert np.abs(ours - ref).max() < 1e-4
    # eval mode still returns exactly the CTC output of the inference program
    model.eval()
    with torch.inference_mode():
        assert model(torch.zeros(1, 3, 48, 320)).shape == (1, 40, 6625)


def test_full_head_refuses_inference_exports(models, tmp_path, cli):
    res = cli("convert", "--arch", "PP-OCRv4_mobile_rec", "--paddle-dir",
              models("PP-OCRv4_mobile_rec"), "--out", tmp_path / "x.pth", "--full-head")
    assert res.returncode == 2 and "training checkpoint" in res.stderr
