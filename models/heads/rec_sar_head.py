"""SARHead after PaddleOCR's heads/rec_sar_head.py (SAR; PP-OCRv3's MultiHead SAR branch).

The encoder max-pools the feature map over its height, runs a 2-layer LSTM along the width
and keeps the output at the last valid column (``valid_ratio`` of the padded crop), through
a linear layer: the holistic feature. The parallel decoder is a 2-layer LSTM whose input at
step 0 is the holistic feature and then the embedding of the previous prediction; each step
attends over the feature map (2D additive attention, columns past the valid width masked
out) and predicts from [LSTM output, glimpse, holistic feature].

Inference runs PaddleOCR's fixed loop of ``max_text_length`` steps and returns every step's
softmax (N x steps x classes-1: the padding class is never predicted), as the exported
program does. PaddleOCR re-runs the decoder LSTM over the whole (steps+1)-long input at
every step; with a forward (not bidirectional) decoder the output at a position depends
only on the inputs up to it, so the LSTM is stepped once per position here: the same
numbers without the quadratic cost. A bidirectional decoder is re-run as PaddleOCR does.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..layers import PaddleEmbedding
from ..necks.rnn import paddle_rnn_aliases
from ..registry import register


def make_rnn(gru, input_size, hidden_size, bidirectional, dropout=0.0):
    cls = nn.GRU if gru else nn.LSTM
    return cls(input_size, hidden_size, num_layers=2, batch_first=True,
               bidirectional=bidirectional, dropout=dropout)


def valid_steps(valid_ratios, steps):
    """min(steps, ceil(ratio * steps)) per sample, computed in the ratio's dtype as Paddle
    does (a float32 ratio times the step count, then ceil)."""
    r = valid_ratios.reshape(-1)
    return torch.clamp(torch.ceil(r * steps).long(), max=steps)


class SAREncoder(nn.Module):
    def __init__(self, enc_bi_rnn=False, enc_drop_rnn=0.1, enc_gru=False, d_model=512,
                 d_enc=512, mask=True, **_):
        super().__init__()
        self.mask = mask
        self.rnn_encoder = make_rnn(enc_gru, d_model, d_enc, enc_bi_rnn, enc_drop_rnn)
        size = d_enc * (int(enc_bi_rnn) + 1)
        self.linear = nn.Linear(size, size)
        self._bi = enc_bi_rnn

    def paddle_unused(self):
        return paddle_rnn_aliases("rnn_encoder", 2, self._bi)

    def forward(self, feat, valid_ratios=None):
        feat_v = feat.amax(dim=2).transpose(1, 2)  # max over the height: N x W x C
        holistic = self.rnn_encoder(feat_v)[0]  # N x T x C
        if valid_ratios is not None and self.mask:
            last = valid_steps(valid_ratios, holistic.shape[1]) - 1
            # Paddle indexes with -1 when a ratio is 0: the last column, as Python does
            last = torch.where(last < 0, last + holistic.shape[1], last)
            valid_hf = holistic[torch.arange(holistic.shape[0]), last]
        else:
            valid_hf = holistic[:, -1]
        return self.linear(valid_hf)


class ParallelSARDecoder(nn.Module):
    def __init__(self, out_channels, enc_bi_rnn=False, dec_bi_rnn=False, dec_drop_rnn=0.0,
                 dec_gru=False, d_model=512, d_enc=512, d_k=64, pred_dropout=0.1,
                 max_text_length=30, mask=True, pred_concat=True, **_):
        super().__init__()
        self.num_classes = out_channels
        self.start_idx = out_channels - 2
        self.padding_idx = out_channels - 1
        self.max_seq_len = max_text_length
        self.mask, self.pred_concat, self.dec_bi_rnn = mask, pred_concat, dec_bi_rnn
        enc_size = d_enc * (int(enc_bi_rnn) + 1)
        dec_size = enc_size * (int(dec_bi_rnn) + 1)
        # 2D attention
        self.conv1x1_1 = nn.Linear(dec_size, d_k)
        self.conv3x3_1 = nn.Conv2d(d_model, d_k, 3, padding=1)
        self.conv1x1_2 = nn.Linear(d_k, 1)
        self.rnn_decoder = make_rnn(dec_gru, enc_size, enc_size, dec_bi_rnn, dec_drop_rnn)
        self.embedding = PaddleEmbedding(out_channels, enc_size, padding_idx=self.padding_idx)
        self.pred_dropout = nn.Dropout(pred_dropout)
        fc_in = dec_size + d_model + enc_size if pred_concat else d_model
        self.prediction = nn.Linear(fc_in, out_channels - 1)

    def paddle_unused(self):
        return paddle_rnn_aliases("rnn_decoder", 2, self.dec_bi_rnn)

    def _attend(self, y, keys, feat, holistic, valid_ratios):
        """Class scores for decoder outputs y (N x L x C) from the 2D attention over feat.
        ``keys`` caches the attention keys (the same at every step), computed on first use
        after the query, in the program's order of parameter use."""
        query = self.conv1x1_1(y)  # N x L x d_k
        if not keys:
            keys.append(self.conv3x3_1(feat))
        weight = torch.tanh(keys[0].unsqueeze(1) + query[..., None, None])  # N x L x d_k x h x w
        weight = self.conv1x1_2(weight.permute(0, 1, 3, 4, 2)).squeeze(-1)  # N x L x h x w
        n, length, h, w = weight.shape
        if valid_ratios is not None and self.mask:
            valid_w = valid_steps(valid_ratios, w)
            masked = torch.arange(w, device=weight.device)[None, :] >= valid_w[:, None]
            weight = weight.masked_fill(masked[:, None, None, :], float("-inf"))
        weight = torch.softmax(weight.reshape(n, length, -1), dim=-1).reshape(n, length, h, w)
        glimpse = torch.einsum("nchw,nlhw->nlc", feat, weight)
        if self.pred_concat:
            hol = holistic.expand(n, length, holistic.shape[-1])
            out = self.prediction(torch.cat([y, glimpse.to(y.dtype), hol.to(y.dtype)], 2))
        else:
            out = self.prediction(glimpse)
        return self.pred_dropout(out) if self.training else out

    def forward_train(self, feat, out_enc, label, valid_ratios=None):
        """Teacher forcing on ``label`` (N x L): scores N x L x classes-1."""
        out_enc = out_enc.unsqueeze(1)
        decoder_input = torch.cat([out_enc, self.embedding(label).to(out_enc.dtype)], 1)
        y = self.rnn_decoder(decoder_input)[0]
        out = self._attend(y, [], feat, out_enc, valid_ratios)
        return out[:, 1:]

    def forward_test(self, feat, out_enc, valid_ratios=None):
        n = feat.shape[0]
        out_enc = out_enc.unsqueeze(1)  # N x 1 x C
        attn_key = []  # the same at every step: computed once
        start = self.embedding(torch.full((n,), self.start_idx, dtype=torch.long,
                                          device=feat.device)).to(out_enc.dtype)
        outputs = []
        if self.dec_bi_rnn:  # outputs depend on later inputs: PaddleOCR's full re-run
            decoder_input = torch.cat(
                [out_enc, start[:, None].expand(n, self.max_seq_len, start.shape[-1])], 1)
            for i in range(1, self.max_seq_len + 1):
                y = self.rnn_decoder(decoder_input)[0][:, i: i + 1]
                probs = torch.softmax(self._attend(y, attn_key, feat, out_enc,
                                                   valid_ratios)[:, 0], -1)
                outputs.append(probs)
                if i < self.max_seq_len:
                    decoder_input = decoder_input.clone()
                    decoder_input[:, i + 1] = self.embedding(probs.argmax(1))
            return torch.stack(outputs, 1)
        # forward decoder: step the LSTM, position 0 = holistic feature, 1 = start token
        _, state = self.rnn_decoder(out_enc)
        step_in = start[:, None]
        for _ in range(self.max_seq_len):
            y, state = self.rnn_decoder(step_in, state)
            probs = torch.softmax(self._attend(y, attn_key, feat, out_enc,
                                               valid_ratios)[:, 0], -1)
            outputs.append(probs)
            step_in = self.embedding(probs.argmax(1))[:, None].to(out_enc.dtype)
        return torch.stack(outputs, 1)


@register("Head")
class SARHead(nn.Module):
    """``forward(feat, valid_ratios=None)``: eval -> N x max_text_length x (classes - 1)
    softmax; training -> ``forward(feat, [label, ..., valid_ratios])`` as PaddleOCR's
    targets, teacher-forced scores."""

    def __init__(self, in_channels, out_channels, enc_dim=512, max_text_length=30,
                 enc_bi_rnn=False, enc_drop_rnn=0.1, enc_gru=False, dec_bi_rnn=False,
                 dec_drop_rnn=0.0, dec_gru=False, d_k=512, pred_dropout=0.1, pred_concat=True,
                 **_):
        super().__init__()
        self.out_channels = out_channels
        self.encoder = SAREncoder(enc_bi_rnn=enc_bi_rnn, enc_drop_rnn=enc_drop_rnn,
                                  enc_gru=enc_gru, d_model=in_channels, d_enc=enc_dim)
        self.decoder = ParallelSARDecoder(
            out_channels, enc_bi_rnn=enc_bi_rnn, dec_bi_rnn=dec_bi_rnn,
            dec_drop_rnn=dec_drop_rnn, dec_gru=dec_gru, d_model=in_channels, d_enc=enc_dim,
            d_k=d_k, pred_dropout=pred_dropout, max_text_length=max_text_length,
            pred_concat=pred_concat)

    def forward(self, feat, targets=None):
        if self.training:
            label, valid_ratios = targets[0], targets[-1]
            holistic = self.encoder(feat, valid_ratios)
            return self.decoder.forward_train(feat, holistic, label, valid_ratios)
        # the exported program's extra input: valid_ratio ([N] or [N, 1]), or PaddleOCR's
        # targets list [valid_ratio]
        valid_ratios = targets[-1] if isinstance(targets, (list, tuple)) else targets
        holistic = self.encoder(feat, valid_ratios)
        return self.decoder.forward_test(feat, holistic, valid_ratios)
