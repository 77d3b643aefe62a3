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
        self.rnn = self.make_rnn(input_size + num_embeddings, hidden_size)
        self.hidden_size = hidden_size

    @staticmethod
    def make_rnn(input_size, hidden_size):
        return nn.GRUCell(input_size, hidden_size)

    def attend(self, h, batch_H, batch_H_proj=None):
        """(context N×C, alpha N×1×T) for the decoder state h."""
        if batch_H_proj is None:
            batch_H_proj = self.i2h(batch_H)
        e = self.score(torch.tanh(batch_H_proj + self.h2h(h).unsqueeze(1)))
        alpha = torch.softmax(e, dim=1).transpose(1, 2)  # N×1×T
        return torch.bmm(alpha, batch_H).squeeze(1), alpha

    def forward(self, prev_hidden, batch_H, char_onehots, batch_H_proj=None):
        context, alpha = self.attend(prev_hidden, batch_H, batch_H_proj)
        hidden = self.rnn(torch.cat([context, char_onehots], dim=1), prev_hidden)
        return hidden, alpha


class AttentionLSTMCell(AttentionGRUCell):
    """SPIN's cell: the same attention (on h of the (h, c) state), then one LSTM step.
    Paddle's LSTMCell and torch's share names, [4H, in] layout and gate order (i, f, g, o)
    (tests/test_framework_ops.py). Returns ((h, c), alpha)."""

    @staticmethod
    def make_rnn(input_size, hidden_size):
        return nn.LSTMCell(input_size, hidden_size)

    def forward(self, prev_hidden, batch_H, char_onehots, batch_H_proj=None):
        context, alpha = self.attend(prev_hidden[0], batch_H, batch_H_proj)
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


@register("Head")
class SPINAttentionHead(nn.Module):
    """SPIN's head (heads/rec_spin_att_head.py): AttentionHead's greedy loop with an LSTM cell,
    run for batch_max_length + 1 = 26 steps (one more for the end token); the program
    returns every step's softmax."""

    def __init__(self, in_channels, out_channels, hidden_size, batch_max_length=25, **_):
        super().__init__()
        self.input_size = in_channels
        self.hidden_size = hidden_size
        self.num_classes = out_channels
        self.out_channels = out_channels
        self.num_steps = batch_max_length + 1
        self.attention_cell = AttentionLSTMCell(in_channels, hidden_size, out_channels)
        self.generator = nn.Linear(hidden_size, out_channels)

    def forward(self, inputs, targets=None):
        if targets is not None:
            raise ValueError("SPINAttentionHead: teacher forcing (training) is not ported")
        n = inputs.shape[0]
        state = (inputs.new_zeros(n, self.hidden_size), inputs.new_zeros(n, self.hidden_size))
        proj = self.attention_cell.i2h(inputs)  # the same every step: computed once
        prev = torch.zeros(n, dtype=torch.long, device=inputs.device)  # sos
        steps = []
        for _ in range(self.num_steps):
            onehot = F.one_hot(prev, self.num_classes).to(inputs.dtype)
            state, _ = self.attention_cell(state, inputs, onehot, proj)
            logits = self.generator(state[0])
            steps.append(logits)
            prev = logits.argmax(dim=1)
        return torch.softmax(torch.stack(steps, dim=1), dim=2)
