"""RobustScannerHead after PaddleOCR's heads/rec_robustscanner_head.py (RobustScanner).

A 1x1 conv reduces the ResNet31 map to ``enc_outchannles`` channels (the keys). Two decoders
attend over it with dot-product attention (scale 1, columns past the valid width of the
padded crop masked out) and read the backbone map (the values):
- the position decoder: keys from a row-wise 2-layer LSTM + conv mixer over the reduced map,
  queries from an embedding of the word positions (0..max_text_length-1, a program input);
- the hybrid decoder: queries from a 2-layer LSTM over the embeddings of the characters
  decoded so far (the start token first).
Per step, a GLU of a linear layer over both glimpses is classified; the argmax is fed back.

Inference runs PaddleOCR's fixed loop of ``max_text_length`` steps and returns every step's
softmax (N x steps x classes-1), as the exported program does. PaddleOCR re-runs the hybrid
LSTM over the whole decode sequence and attends with every position at each step, keeping
only the current one; a forward LSTM's output at a position depends only on the inputs up
to it and attention is per position, so the LSTM is stepped once per position and only the
current query attends here: the same numbers without the quadratic cost.
"""

import torch
import torch.nn.functional as F
from torch import nn

from ..layers import PaddleEmbedding
from ..registry import register
from .rec_sar_head import paddle_rnn_aliases


def valid_widths(valid_ratios, w):
    """PaddleOCR's ``min(w, int(w * valid_ratio + 0.5))`` per sample, in the ratio's dtype."""
    return torch.clamp((valid_ratios.reshape(-1) * w + 0.5).long(), max=w)


def dot_product_attention(query, key, value, h, w, valid_ratios=None):
    """DotProductAttentionLayer (scale 1): query N x L x C, key N x C x (h*w), value
    N x D x (h*w) -> glimpse N x L x D."""
    logits = torch.matmul(query, key)  # N x L x hw
    if valid_ratios is not None:
        masked = torch.arange(w, device=logits.device)[None, :] >= \
            valid_widths(valid_ratios, w)[:, None]  # N x w
        logits = logits.reshape(*logits.shape[:2], h, w).masked_fill(
            masked[:, None, None, :], float("-inf")).reshape(logits.shape)
    return torch.matmul(torch.softmax(logits, dim=2), value.transpose(1, 2))


class ChannelReductionEncoder(nn.Module):
    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.layer = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, feat):
        return self.layer(feat)


class SequenceAttentionDecoder(nn.Module):
    """The hybrid decoder (RobustScanner builds it with ``return_feature``: no prediction
    layer of its own)."""

    def __init__(self, num_classes, rnn_layers=2, dim_input=512, dim_model=128, max_seq_len=40,
                 start_idx=0, mask=True, padding_idx=None, dropout=0.0, encode_value=False):
        super().__init__()
        self.rnn_layers, self.start_idx = rnn_layers, start_idx
        self.mask, self.encode_value = mask, encode_value
        self.embedding = PaddleEmbedding(num_classes, dim_model, padding_idx=padding_idx)
        self.sequence_layer = nn.LSTM(dim_model, dim_model, num_layers=rnn_layers,
                                      batch_first=True, dropout=dropout)

    def paddle_unused(self):
        return paddle_rnn_aliases("sequence_layer", self.rnn_layers, False)

    def step(self, feat, out_enc, tokens, state, valid_ratios):
        """One decoding step: the LSTM advanced by ``tokens`` (N), the glimpse N x D."""
        n, c_enc, h, w = out_enc.shape
        query, state = self.sequence_layer(self.embedding(tokens)[:, None].to(out_enc.dtype),
                                           state)
        key = out_enc.reshape(n, c_enc, h * w)
        value = key if self.encode_value else feat.reshape(n, feat.shape[1], h * w)
        glimpse = dot_product_attention(query, key, value, h, w,
                                        valid_ratios if self.mask else None)
        return glimpse[:, 0], state


class PositionAwareLayer(nn.Module):
    def __init__(self, dim_model, rnn_layers=2):
        super().__init__()
        self.rnn_layers = rnn_layers
        self.rnn = nn.LSTM(dim_model, dim_model, num_layers=rnn_layers, batch_first=True)
        self.mixer = nn.Sequential(nn.Conv2d(dim_model, dim_model, 3, padding=1), nn.ReLU(),
                                   nn.Conv2d(dim_model, dim_model, 3, padding=1))

    def paddle_unused(self):
        return paddle_rnn_aliases("rnn", self.rnn_layers, False)

    def forward(self, img_feature):
        n, c, h, w = img_feature.shape
        rows = img_feature.permute(0, 2, 3, 1).reshape(n * h, w, c)  # each row a sequence
        out = self.rnn(rows)[0].reshape(n, h, w, c).permute(0, 3, 1, 2)
        return self.mixer(out)


class PositionAttentionDecoder(nn.Module):
    def __init__(self, rnn_layers=2, dim_model=128, max_seq_len=40, mask=True,
                 encode_value=False):
        super().__init__()
        self.mask, self.encode_value = mask, encode_value
        self.embedding = nn.Embedding(max_seq_len + 1, dim_model)
        self.position_aware_module = PositionAwareLayer(dim_model, rnn_layers)

    def forward(self, feat, out_enc, valid_ratios, position_index):
        """Glimpses N x L x D for the word positions (N x L)."""
        n, c_enc, h, w = out_enc.shape
        key = self.position_aware_module(out_enc).reshape(n, c_enc, h * w)
        query = self.embedding(position_index).to(out_enc.dtype)
        value = (out_enc.reshape(n, c_enc, h * w) if self.encode_value
                 else feat.reshape(n, feat.shape[1], h * w))
        return dot_product_attention(query, key, value, h, w,
                                     valid_ratios if self.mask else None)


class RobustScannerFusionLayer(nn.Module):
    def __init__(self, dim_model, dim=-1):
        super().__init__()
        self.dim = dim
        self.linear_layer = nn.Linear(dim_model * 2, dim_model * 2)

    def forward(self, x0, x1):
        # GLU: first half times the sigmoid of the second, as paddle's F.glu
        return F.glu(self.linear_layer(torch.cat([x0, x1], self.dim)), self.dim)


class RobustScannerDecoder(nn.Module):
    def __init__(self, num_classes, dim_input=512, dim_model=128, hybrid_decoder_rnn_layers=2,
                 hybrid_decoder_dropout=0.0, position_decoder_rnn_layers=2, max_seq_len=40,
                 start_idx=0, mask=True, padding_idx=None, encode_value=False):
        super().__init__()
        self.max_seq_len, self.start_idx = max_seq_len, start_idx
        self.hybrid_decoder = SequenceAttentionDecoder(
            num_classes, hybrid_decoder_rnn_layers, dim_input, dim_model, max_seq_len,
            start_idx, mask, padding_idx, hybrid_decoder_dropout, encode_value)
        self.position_decoder = PositionAttentionDecoder(
            position_decoder_rnn_layers, dim_model, max_seq_len, mask, encode_value)
        size = dim_model if encode_value else dim_input
        self.fusion_module = RobustScannerFusionLayer(size)
        self.prediction = nn.Linear(size, num_classes - 1)

    def forward(self, feat, out_enc, valid_ratios, word_positions):
        n = feat.shape[0]
        position_glimpse = self.position_decoder(feat, out_enc, valid_ratios, word_positions)
        tokens = torch.full((n,), self.start_idx, dtype=torch.long, device=feat.device)
        state, outputs = None, []
        for i in range(self.max_seq_len):
            hybrid, state = self.hybrid_decoder.step(feat, out_enc, tokens, state, valid_ratios)
            fused = self.fusion_module(hybrid, position_glimpse[:, i])
            probs = torch.softmax(self.prediction(fused), -1)
            outputs.append(probs)
            tokens = probs.argmax(1)
        return torch.stack(outputs, 1)


@register("Head")
class RobustScannerHead(nn.Module):
    """``forward(feat, [valid_ratio, word_positions])`` (the program's extra inputs, as
    PaddleOCR's targets: word positions last, valid ratios before them when given) ->
    N x max_text_length x (classes - 1) softmax. Inference only."""

    def __init__(self, out_channels, in_channels, enc_outchannles=128, hybrid_dec_rnn_layers=2,
                 hybrid_dec_dropout=0.0, position_dec_rnn_layers=2, start_idx=0,
                 max_text_length=40, mask=True, padding_idx=None, encode_value=False, **_):
        super().__init__()
        self.out_channels = out_channels
        self.max_text_length = max_text_length
        self.encoder = ChannelReductionEncoder(in_channels, enc_outchannles)
        self.decoder = RobustScannerDecoder(
            out_channels, in_channels, enc_outchannles, hybrid_dec_rnn_layers,
            hybrid_dec_dropout, position_dec_rnn_layers, max_text_length, start_idx, mask,
            padding_idx, encode_value)

    def forward(self, feat, targets=None):
        if self.training:
            raise NotImplementedError("RobustScannerHead is ported for inference only")
        if targets is None:  # PaddleOCR always passes word positions; these are its values
            targets = [torch.arange(self.max_text_length, device=feat.device)
                       .expand(feat.shape[0], -1)]
        targets = list(targets) if isinstance(targets, (list, tuple)) else [targets]
        word_positions = targets[-1].long()
        valid_ratios = targets[-2] if len(targets) > 1 else None
        return self.decoder(feat, self.encoder(feat), valid_ratios, word_positions)
