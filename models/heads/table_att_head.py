"""SLAHead, the table-structure decoder of SLANet and SLANet_plus (PaddleOCR's
ppocr/modeling/heads/table_att_head.py), with the attention GRU cell of
ppocr/modeling/heads/rec_att_head.py.

At inference the head decodes greedily: each step attends over the flattened feature map,
feeds the one-hot of the previous step's argmax token to a GRU cell, and predicts a structure
token and a cell box (``loc_reg_num`` coordinates in [0, 1]). It runs up to
``max_text_length + 1`` steps and stops after the step at which every image of the batch has
produced the end token, and returns ``{'loc_preds', 'structure_probs'}`` in the program's
output order. The exported Paddle program (dy2static turns the early ``break`` into a loop
flag, and the step counter is incremented once more before the loop exits) returns one step
more than eager PaddleOCR when it stops early: a step of zero logits (uniform
probabilities) and zero boxes. We return the same; the decoder stops at the end token before
it.
"""

import torch
from torch import nn
import torch.nn.functional as F

from ..registry import register
from .rec_att_head import AttentionGRUCell  # shared with RARE, as in PaddleOCR


@register("Head")
class SLAHead(nn.Module):
    def __init__(self, in_channels, hidden_size, out_channels=30, max_text_length=500,
                 loc_reg_num=4, fc_decay=0.0, use_attn=False, **_):
        super().__init__()
        if use_attn:
            raise NotImplementedError("SLAHead with use_attn (SLANeXt) is not supported yet")
        in_channels = in_channels[-1] if isinstance(in_channels, (list, tuple)) else in_channels
        self.hidden_size = hidden_size
        self.max_text_length = max_text_length
        self.num_embeddings = self.out_channels = out_channels
        self.loc_reg_num = loc_reg_num
        self.eos = out_channels - 1
        self.structure_attention_cell = AttentionGRUCell(in_channels, hidden_size, out_channels)
        self.structure_generator = nn.Sequential(nn.Linear(hidden_size, hidden_size),
                                                 nn.Linear(hidden_size, out_channels))
        self.loc_generator = nn.Sequential(nn.Linear(hidden_size, hidden_size),
                                           nn.Linear(hidden_size, loc_reg_num), nn.Sigmoid())

    def forward(self, inputs):
        fea = inputs[-1] if isinstance(inputs, (list, tuple)) else inputs
        n = fea.shape[0]
        fea = fea.flatten(2).transpose(1, 2)  # N×(h·w)×C
        hidden = fea.new_zeros(n, self.hidden_size)
        pre_chars = torch.zeros(n, dtype=torch.long, device=fea.device)
        ended = torch.zeros(n, dtype=torch.bool, device=fea.device)
        structure, locs = [], []
        fea_proj = self.structure_attention_cell.i2h(fea)
        steps = self.max_text_length + 1
        for _ in range(steps):
            onehot = F.one_hot(pre_chars, self.num_embeddings).to(fea.dtype)
            hidden, _ = self.structure_attention_cell(hidden, fea, onehot, fea_proj)
            step = self.structure_generator(hidden)
            structure.append(step)
            locs.append(self.loc_generator(hidden))
            pre_chars = step.argmax(1)
            ended |= pre_chars == self.eos
            if bool(ended.all()):
                if len(structure) < steps:  # the program's extra, never-computed step
                    structure.append(torch.zeros_like(step))
                    locs.append(torch.zeros_like(locs[-1]))
                break
        return {"loc_preds": torch.stack(locs, 1),
                "structure_probs": F.softmax(torch.stack(structure, 1), dim=-1)}
