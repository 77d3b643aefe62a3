"""AttentionHead after PaddleOCR's heads/rec_att_head.py (RARE; SPIN's head is a variant).

Inference decodes greedily for a fixed ``batch_max_length`` steps, as the exported program
does: each step attends over the sequence, feeds [context, one-hot of the previous argmax]
to a GRU cell and emits class scores. The output is every step's softmax (N×steps×classes),
the program's output tensor; the loop never stops early, since every step is part of it.
"""

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import register


class AttentionGRUCell(nn.Module):
    """Additive attention over ``batch_H`` (N×T×C) then one GRU step.

    Paddle's GRUCell and torch's agree on parameter names, shapes and gate order (r, z, c) and
    both compute h' = z·h + (1 − z)·c (tests/test_framework_ops.py pins this).
    """

    def __init__(self, input_size, hidden_size, num_embeddings):
        super().__init__()
        self.i2h = nn.Linear(input_size, hidden_size, bias=False)
        self.h2h = nn.Linear(hidden_size, hidden_size)
        self.score = nn.Linear(hidden_size, 1, bias=False)
        self.rnn = nn.GRUCell(input_size + num_embeddings, hidden_size)
        self.hidden_size = hidden_size

    def forward(self, prev_hidden, batch_H, char_onehots, batch_H_proj=None):
        if batch_H_proj is None:
            batch_H_proj = self.i2h(batch_H)
        e = self.score(torch.tanh(batch_H_proj + self.h2h(prev_hidden).unsqueeze(1)))
        alpha = torch.softmax(e, dim=1).transpose(1, 2)  # N×1×T
        context = torch.bmm(alpha, batch_H).squeeze(1)
        hidden = self.rnn(torch.cat([context, char_onehots], dim=1), prev_hidden)
        return hidden, alpha


@register("Head")
class AttentionHead(nn.Module):
    def __init__(self, in_channels, out_channels, hidden_size, batch_max_length=25, **_):
        super().__init__()
        self.input_size = in_channels
        self.hidden_size = hidden_size
        self.num_classes = out_channels
        self.out_channels = out_channels
        self.batch_max_length = batch_max_length
        self.attention_cell = AttentionGRUCell(in_channels, hidden_size, out_channels)
        self.generator = nn.Linear(hidden_size, out_channels)

    def forward(self, inputs, targets=None):
        n = inputs.shape[0]
        hidden = inputs.new_zeros(n, self.hidden_size)
        proj = self.attention_cell.i2h(inputs)  # the same every step: computed once
        if targets is not None:  # teacher forcing (training)
            steps = []
            for i in range(self.batch_max_length):
                onehot = F.one_hot(targets[:, i].long(), self.num_classes).to(inputs.dtype)
                hidden, _ = self.attention_cell(hidden, inputs, onehot, proj)
                steps.append(hidden)
            return self.generator(torch.stack(steps, dim=1))
        prev = torch.zeros(n, dtype=torch.long, device=inputs.device)
        steps = []
        for _ in range(self.batch_max_length):
            onehot = F.one_hot(prev, self.num_classes).to(inputs.dtype)
            hidden, _ = self.attention_cell(hidden, inputs, onehot, proj)
            logits = self.generator(hidden)
            steps.append(logits)
            prev = logits.argmax(dim=1)
        probs = torch.stack(steps, dim=1)
        return probs if self.training else torch.softmax(probs, dim=2)
