"""SRNHead after PaddleOCR's heads/rec_srn_head.py and heads/self_attention.py (SRN).

PVAM: a transformer encoder over the 8x32 feature positions (position embeddings from the
``encoder_word_pos`` input), then parallel visual attention: each of max_text_length reading
positions (embedded from ``gsrm_word_pos``) attends over the positions. GSRM: the argmax
characters of a linear classifier on those features go through two transformer encoders, a
forward one (input shifted right by the pad id, causal bias ``gsrm_slf_attn_bias1``) and a
backward one (``gsrm_slf_attn_bias2``); their sum, shifted, is the semantic feature; its
product with the shared word embedding gives the GSRM logits. VSFD: a sigmoid gate mixes the
visual and semantic features into the final classifier.

Every dropout of PaddleOCR's transformer blocks is ``mode="downscale_in_infer"`` with
p = 0.1, and the exported program runs them as inference dropout: each multiplies by 0.9
(the embeddings' sum, the attention weights, the FFN's hidden layer, each sublayer's output
before its residual). ptocr applies the same factors.

The program's inputs after the image are those four (SRNRecResizeImg makes them); its
outputs, as paddle.jit.save flattens the head's dict (sorted keys): decoded_out (top-1 index
per row), gsrm_out, predict (softmax, N*max_text_length x classes), pvam_feature, word_out.
The forward returns them in that order. Scalar constants (sqrt(d_model), d_model^-0.5) are
taken at float32 as Paddle's scale attributes hold them.
"""

from collections import OrderedDict

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..layers import PaddleEmbedding
from ..registry import register


def f32(v):
    return float(np.float32(v))


DROPOUT = f32(0.1)  # prepostprocess, attention and relu dropout of SRN's transformer blocks


def dropout(x, p, training):
    """paddle's F.dropout(mode="downscale_in_infer"): training drops without rescaling,
    inference multiplies by (1 - p) (the program's is_test form)."""
    if not p:
        return x
    if training:
        return F.dropout(x, p, True) * (1.0 - p)
    return x * (1.0 - p)


class MultiHeadAttention(nn.Module):
    def __init__(self, d_key, d_value, d_model, n_head=1, dropout_rate=0.0):
        super().__init__()
        self.n_head, self.d_key, self.d_value, self.d_model = n_head, d_key, d_value, d_model
        self.q_fc = nn.Linear(d_model, d_key * n_head, bias=False)
        self.k_fc = nn.Linear(d_model, d_key * n_head, bias=False)
        self.v_fc = nn.Linear(d_model, d_value * n_head, bias=False)
        self.proj_fc = nn.Linear(d_value * n_head, d_model, bias=False)
        self.scale = f32(d_model ** -0.5)  # PaddleOCR scales by d_model, not d_key

    def _heads(self, x, d):
        return x.reshape(x.shape[0], x.shape[1], self.n_head, d).transpose(1, 2)

    def forward(self, x, attn_bias=None):
        q = self._heads(self.q_fc(x), self.d_key)
        k = self._heads(self.k_fc(x), self.d_key)
        v = self._heads(self.v_fc(x), self.d_value)
        product = torch.matmul(q, k.transpose(-1, -2)) * self.scale
        if attn_bias is not None:
            product = product + attn_bias.to(product.dtype)
        weights = dropout(torch.softmax(product, -1), DROPOUT, self.training)
        out = torch.matmul(weights, v)
        out = out.transpose(1, 2).reshape(out.shape[0], out.shape[2], -1)
        return self.proj_fc(out)


class FFN(nn.Module):
    def __init__(self, d_inner_hid, d_model):
        super().__init__()
        self.fc1 = nn.Linear(d_model, d_inner_hid)
        self.fc2 = nn.Linear(d_inner_hid, d_model)

    def forward(self, x):
        return self.fc2(dropout(F.relu(self.fc1(x)), DROPOUT, self.training))


class PrePostProcessLayer(nn.Module):
    """PaddleOCR's command strings: 'n' LayerNorm (named layer_norm_<k>), 'a' residual add,
    'd' dropout (x 0.9 at inference)."""

    def __init__(self, process_cmd, d_model):
        super().__init__()
        self.process_cmd = process_cmd
        for cmd in process_cmd:
            if cmd == "n":
                self.add_module(f"layer_norm_{len(list(self.children()))}",
                                nn.LayerNorm(d_model, eps=1e-5))

    def forward(self, x, residual=None):
        norms = iter(self.children())
        for cmd in self.process_cmd:
            if cmd == "a" and residual is not None:
                x = x + residual
            elif cmd == "n":
                x = next(norms)(x)
            elif cmd == "d":
                x = dropout(x, DROPOUT, self.training)
        return x


class EncoderLayer(nn.Module):
    def __init__(self, n_head, d_key, d_value, d_model, d_inner_hid, preprocess_cmd="n",
                 postprocess_cmd="da"):
        super().__init__()
        self.preprocesser1 = PrePostProcessLayer(preprocess_cmd, d_model)
        self.self_attn = MultiHeadAttention(d_key, d_value, d_model, n_head)
        self.postprocesser1 = PrePostProcessLayer(postprocess_cmd, d_model)
        self.preprocesser2 = PrePostProcessLayer(preprocess_cmd, d_model)
        self.ffn = FFN(d_inner_hid, d_model)
        self.postprocesser2 = PrePostProcessLayer(postprocess_cmd, d_model)

    def forward(self, x, attn_bias):
        attn = self.postprocesser1(self.self_attn(self.preprocesser1(x), attn_bias), x)
        return self.postprocesser2(self.ffn(self.preprocesser2(attn)), attn)


class Encoder(nn.Module):
    def __init__(self, n_layer, n_head, d_key, d_value, d_model, d_inner_hid,
                 preprocess_cmd="n", postprocess_cmd="da"):
        super().__init__()
        for i in range(n_layer):
            self.add_module(f"layer_{i}", EncoderLayer(n_head, d_key, d_value, d_model,
                                                       d_inner_hid, preprocess_cmd,
                                                       postprocess_cmd))
        self.n_layer = n_layer
        self.processer = PrePostProcessLayer(preprocess_cmd, d_model)

    def forward(self, x, attn_bias):
        for i in range(self.n_layer):
            x = getattr(self, f"layer_{i}")(x, attn_bias)
        return self.processer(x)


class PrepareEncoder(nn.Module):
    """Feature sequence scaled by sqrt(d_model) plus position embeddings."""

    def __init__(self, d_model, max_len):
        super().__init__()
        self.scale = f32(d_model ** 0.5)
        self.emb = nn.Embedding(max_len, d_model)

    def forward(self, features, pos):
        x = features * self.scale + self.emb(pos.squeeze(-1))
        return dropout(x, DROPOUT, self.training)


class PrepareDecoder(nn.Module):
    """Word embeddings (padding id 0 looks up zeros, as paddle's) scaled by sqrt(d_model)
    plus position embeddings."""

    def __init__(self, vocab, d_model, max_len, bos_idx=0, shared_emb0=None):
        super().__init__()
        self.scale = f32(d_model ** 0.5)
        if shared_emb0 is None:
            self.emb0 = PaddleEmbedding(vocab, d_model, padding_idx=bos_idx)
        else:  # held outside the module tree: one parameter, one state_dict entry
            self._shared = (shared_emb0,)
        self.emb1 = nn.Embedding(max_len, d_model)

    def __getattr__(self, name):
        if name == "emb0" and "_shared" in self.__dict__:
            return self.__dict__["_shared"][0]
        return super().__getattr__(name)

    def forward(self, words, pos):
        x = self.emb0(words.long().squeeze(-1)) * self.scale + self.emb1(pos.squeeze(-1))
        return dropout(x, DROPOUT, self.training)


def _encoder_args(n_layer, n_head, d_model):
    return dict(n_layer=n_layer, n_head=n_head, d_key=d_model // n_head,
                d_value=d_model // n_head, d_model=d_model, d_inner_hid=d_model)


class WrapEncoderForFeature(nn.Module):
    def __init__(self, max_length, n_layer, n_head, d_model):
        super().__init__()
        self.prepare_encoder = PrepareEncoder(d_model, max_length)
        self.encoder = Encoder(**_encoder_args(n_layer, n_head, d_model))

    def forward(self, features, pos, attn_bias=None):
        return self.encoder(self.prepare_encoder(features, pos), attn_bias)


class WrapEncoder(nn.Module):
    def __init__(self, vocab, max_length, n_layer, n_head, d_model, shared_emb0=None):
        super().__init__()
        self.prepare_decoder = PrepareDecoder(vocab, d_model, max_length,
                                              shared_emb0=shared_emb0)
        self.encoder = Encoder(**_encoder_args(n_layer, n_head, d_model))

    def forward(self, words, pos, attn_bias):
        return self.encoder(self.prepare_decoder(words, pos), attn_bias)


class PVAM(nn.Module):
    def __init__(self, in_channels, max_text_length, num_heads, num_encoder_tus, hidden_dims):
        super().__init__()
        self.max_length = max_text_length
        # PaddleOCR sizes the position table for 256 feature positions (a 64x256 input)
        self.wrap_encoder_for_feature = WrapEncoderForFeature(256, num_encoder_tus, num_heads,
                                                              hidden_dims)
        self.fc0 = nn.Linear(in_channels, in_channels)
        self.emb = nn.Embedding(max_text_length, in_channels)
        self.fc1 = nn.Linear(in_channels, 1, bias=False)

    def forward(self, inputs, encoder_word_pos, gsrm_word_pos):
        n, c, h, w = inputs.shape
        features = inputs.reshape(n, c, h * w).transpose(1, 2)
        word_features = self.fc0(self.wrap_encoder_for_feature(features, encoder_word_pos))
        t = word_features.shape[1]
        pos = self.emb(gsrm_word_pos).reshape(-1, self.max_length, 1, c)
        y = torch.tanh(pos + word_features.reshape(-1, 1, t, c))  # N x L x T x C
        weight = torch.softmax(self.fc1(y).reshape(-1, self.max_length, t), -1)
        return torch.matmul(weight, word_features)  # N x L x C


class GSRM(nn.Module):
    def __init__(self, in_channels, char_num, max_text_length, num_heads, num_decoder_tus,
                 hidden_dims):
        super().__init__()
        self.char_num = char_num
        self.fc0 = nn.Linear(in_channels, char_num)
        self.wrap_encoder0 = WrapEncoder(char_num + 1, max_text_length, num_decoder_tus,
                                         num_heads, hidden_dims)
        # PaddleOCR shares the word embedding: wrap_encoder1 uses wrap_encoder0's (paddle
        # lists it under both names; the second is declared an alias in SRNHead)
        self.wrap_encoder1 = WrapEncoder(char_num + 1, max_text_length, num_decoder_tus,
                                         num_heads, hidden_dims,
                                         shared_emb0=self.wrap_encoder0.prepare_decoder.emb0)

    def forward(self, inputs, gsrm_word_pos, bias1, bias2):
        n, t, c = inputs.shape
        word_out = self.fc0(inputs.reshape(-1, c))
        word_ids = torch.softmax(word_out, -1).argmax(1).reshape(-1, t, 1)
        # forward reading: ids shifted right, the pad id (char_num) first
        word1 = torch.cat([torch.full_like(word_ids[:, :1], self.char_num), word_ids[:, :-1]], 1)
        feature1 = self.wrap_encoder0(word1, gsrm_word_pos, bias1)
        feature2 = self.wrap_encoder1(word_ids, gsrm_word_pos, bias2)
        # backward reading: features shifted left, zeros last
        feature2 = torch.cat([feature2[:, 1:], torch.zeros_like(feature2[:, :1])], 1)
        gsrm_features = feature1 + feature2
        gsrm_out = torch.matmul(gsrm_features,
                                self.wrap_encoder0.prepare_decoder.emb0.weight.t())
        return gsrm_features, word_out, gsrm_out.reshape(-1, gsrm_out.shape[-1])


class VSFD(nn.Module):
    def __init__(self, in_channels=512, pvam_ch=512, char_num=38):
        super().__init__()
        self.fc0 = nn.Linear(in_channels * 2, pvam_ch)
        self.fc1 = nn.Linear(pvam_ch, char_num)

    def forward(self, pvam_feature, gsrm_feature):
        n, t, c1 = pvam_feature.shape
        gate = torch.sigmoid(self.fc0(torch.cat([pvam_feature, gsrm_feature], 2)
                                      .reshape(-1, c1 + gsrm_feature.shape[2])))
        gate = gate.reshape(-1, t, c1)
        combined = gate * pvam_feature + (1.0 - gate) * gsrm_feature
        return self.fc1(combined.reshape(-1, c1))


@register("Head")
class SRNHead(nn.Module):
    """``forward(features, [encoder_word_pos, gsrm_word_pos, gsrm_slf_attn_bias1,
    gsrm_slf_attn_bias2])`` (PaddleOCR's ``others``; the torch model takes them as further
    positional inputs after the image)."""

    def __init__(self, in_channels, out_channels, max_text_length=25, num_heads=8,
                 num_encoder_TUs=2, num_decoder_TUs=4, hidden_dims=512, **_):
        super().__init__()
        self.out_channels = out_channels
        self.max_text_length = max_text_length
        self.pvam = PVAM(in_channels, max_text_length, num_heads, num_encoder_TUs, hidden_dims)
        self.gsrm = GSRM(in_channels, out_channels, max_text_length, num_heads,
                         num_decoder_TUs, hidden_dims)
        self.vsfd = VSFD(in_channels=in_channels, char_num=out_channels)

    def paddle_unused(self):
        # the shared embedding appears under both encoders in paddle's state_dict
        return ["gsrm.wrap_encoder1.prepare_decoder.emb0.weight"]

    def forward(self, inputs, others):
        encoder_word_pos, gsrm_word_pos, bias1, bias2 = others[-4:]
        pvam_feature = self.pvam(inputs, encoder_word_pos, gsrm_word_pos)
        gsrm_feature, word_out, gsrm_out = self.gsrm(pvam_feature, gsrm_word_pos, bias1, bias2)
        final_out = self.vsfd(pvam_feature, gsrm_feature)
        if not self.training:
            final_out = torch.softmax(final_out, 1)
        decoded_out = final_out.argmax(1, keepdim=True)  # paddle.topk(k=1)'s indices
        return OrderedDict([("decoded_out", decoded_out), ("gsrm_out", gsrm_out),
                            ("predict", final_out), ("pvam_feature", pvam_feature),
                            ("word_out", word_out)])
