"""ABINet's head after PaddleOCR's heads/rec_abinet_head.py: a transformer encoder over the
ResNet45 feature map, position attention reading ``max_length + 1`` glyph slots (vision
model), then ``iter_size`` rounds of the bidirectional cloze language model (BCNLanguage) and
the gated fusion of vision and language features (alignment). In eval it returns the
per-slot softmax of the last alignment, as Paddle's program does.

The language model's input length comes from the current prediction (first end token), so
the loop is data-dependent in its masks but fixed in its number of rounds: nothing stops early.
"""

import torch
from torch import nn

from ..registry import register
from .rec_nrtr_head import PositionalEncoding, TransformerBlock


def get_length(logit):
    """Greedy length of each sequence: position of the first end token (class 0) + 1, or the
    full length when there is none (PaddleOCR's _get_length)."""
    is_end = logit.argmax(-1) == 0
    first = ((is_end.int().cumsum(-1) == 1) & is_end).int().argmax(-1) + 1
    return torch.where(is_end.any(-1), first, torch.full_like(first, logit.shape[1]))


def get_mask(length, max_length):
    """Additive cross-attention mask (B, 1, N, N): -inf at keys beyond the length and on the
    diagonal (a slot may not see its own token: the cloze objective)."""
    grid = torch.arange(max_length, device=length.device)[None]
    zero = torch.zeros((), dtype=torch.float32, device=length.device)
    inf = torch.full((), float("-inf"), dtype=torch.float32, device=length.device)
    mask = torch.where(grid >= length[:, None], inf, zero)
    diag = torch.diag(torch.full((max_length,), float("-inf"), device=length.device))
    return (mask[:, None, :] + diag)[:, None]


class BCNLanguage(nn.Module):
    """The language model as inference runs it: its own classifier (``cls``) only feeds the
    training loss, so exported programs drop it and so does this module (training
    checkpoints' ``cls`` tensors are declared unused)."""

    def __init__(self, d_model=512, nhead=8, num_layers=4, dim_feedforward=2048, max_length=25,
                 num_classes=37):
        super().__init__()
        self.max_length = max_length + 1  # + the end token
        self.proj = nn.Linear(num_classes, d_model, bias=False)
        self.token_encoder = PositionalEncoding(d_model, max_len=self.max_length)
        self.pos_encoder = PositionalEncoding(d_model, max_len=self.max_length)
        self.decoder = nn.ModuleList(
            TransformerBlock(d_model, nhead, dim_feedforward, with_self_attn=False,
                             with_cross_attn=True) for _ in range(num_layers))

    def paddle_unused(self):
        return ["cls.weight", "cls.bias"]

    def forward(self, tokens, lengths):
        embed = self.token_encoder(self.proj(tokens))
        mask = get_mask(lengths, self.max_length)
        query = self.pos_encoder(torch.zeros_like(embed))
        for layer in self.decoder:
            query = layer(query, embed, cross_mask=mask)
        return query


def encoder_layer(in_c, out_c, stride):
    return nn.Sequential(nn.Conv2d(in_c, out_c, 3, stride, 1), nn.BatchNorm2d(out_c), nn.ReLU())


def decoder_layer(in_c, out_c, scale_factor=None, size=None):
    # nearest, align_corners False in Paddle: the same index rule as torch's 'nearest'
    return nn.Sequential(nn.Upsample(size=size, scale_factor=scale_factor, mode="nearest"),
                         nn.Conv2d(in_c, out_c, 3, 1, 1), nn.BatchNorm2d(out_c), nn.ReLU())


class PositionAttention(nn.Module):
    """Queries are the positional encodings of the slots; keys come from a small U-Net over
    the features, values are the features themselves."""

    def __init__(self, max_length, in_channels=512, num_channels=64, h=8, w=32):
        super().__init__()
        self.max_length = max_length
        self.k_encoder = nn.Sequential(
            encoder_layer(in_channels, num_channels, (1, 2)),
            *[encoder_layer(num_channels, num_channels, (2, 2)) for _ in range(3)])
        self.k_decoder = nn.Sequential(
            *[decoder_layer(num_channels, num_channels, scale_factor=2) for _ in range(3)],
            decoder_layer(num_channels, in_channels, size=(h, w)))
        self.pos_encoder = PositionalEncoding(in_channels, max_len=max_length)
        self.project = nn.Linear(in_channels, in_channels)

    def forward(self, x):
        n, c, h, w = x.shape
        k, features = x, []
        for layer in self.k_encoder:
            k = layer(k)
            features.append(k)
        for i, layer in enumerate(list(self.k_decoder)[:-1]):
            k = layer(k) + features[len(self.k_decoder) - 2 - i]
        k = self.k_decoder[-1](k)
        q = self.project(self.pos_encoder(x.new_zeros(n, self.max_length, c)))
        scores = torch.softmax(q @ k.flatten(2) / c ** 0.5, dim=-1)
        return scores @ x.flatten(2).transpose(1, 2)


@register("Head")
class ABINetHead(nn.Module):
    def __init__(self, in_channels, out_channels, d_model=512, nhead=8, num_layers=3,
                 dim_feedforward=2048, max_length=25, use_lang=False, iter_size=1,
                 image_size=(32, 128), **_training_only):
        super().__init__()
        self.max_length = max_length + 1
        h, w = image_size[0] // 4, image_size[1] // 4
        self.pos_encoder = PositionalEncoding(d_model, max_len=h * w)
        self.encoder = nn.ModuleList(
            TransformerBlock(d_model, nhead, dim_feedforward, with_self_attn=True,
                             with_cross_attn=False) for _ in range(num_layers))
        self.decoder = PositionAttention(max_length + 1, in_channels=d_model, h=h, w=w)
        self.out_channels = out_channels
        self.cls = nn.Linear(d_model, out_channels)
        self.use_lang = use_lang
        if use_lang:
            self.iter_size = iter_size
            self.language = BCNLanguage(d_model, nhead, 4, dim_feedforward, max_length,
                                        out_channels)
            self.w_att_align = nn.Linear(2 * d_model, d_model)
            self.cls_align = nn.Linear(d_model, out_channels)

    def forward(self, x, targets=None):
        n, c, h, w = x.shape
        feature = self.pos_encoder(x.permute(0, 2, 3, 1).flatten(1, 2))
        for layer in self.encoder:
            feature = layer(feature)
        feature = feature.reshape(n, h, w, c).permute(0, 3, 1, 2)
        v_feature = self.decoder(feature)
        logits = self.cls(v_feature)
        if self.use_lang:
            align_logits, align_lengths = logits, get_length(logits)
            for _ in range(self.iter_size):
                tokens = torch.softmax(align_logits, dim=-1)
                lengths = align_lengths.clamp(2, self.max_length)
                l_feature = self.language(tokens, lengths)
                gate = torch.sigmoid(self.w_att_align(torch.cat((l_feature, v_feature), -1)))
                align_logits = self.cls_align(gate * v_feature + (1 - gate) * l_feature)
                align_lengths = get_length(align_logits)
            logits = align_logits
        return torch.softmax(logits, dim=-1)
