"""AsterHead after PaddleOCR's heads/rec_aster_head.py (SEED).

``embeder`` maps the whole encoder sequence (``time_step`` = 25 columns × C, flattened) to a
300-d vector. In training that vector is pulled towards the word's fastText embedding (the
"semantic target", a training-only input); at inference it only initialises the decoder
state (``embed_fc``). Nothing else of the semantic branch is needed to read text.

Inference is PaddleOCR's beam search (width 5, ``max_len_labels`` steps, IBM's
pytorch-seq2seq TopKDecoder): every step runs the attention GRU decoder on all beams, keeps
the best ``beam_width`` of beams × classes per image, and marks beams that emitted <eos>;
the best sequence is then traced back. It is written for dygraph (it reads tensors into
numpy), so PaddleOCR has no inference program for it. Its quirks are kept because they change
results: the <eos> mask is applied with a numpy fancy index of the (row, column) pairs, which
also sets row 0 (image 0's first beam) to -inf whenever any beam ends; the returned scores
are ones. Outputs: [rec_pred (N×max_len ids), rec_pred_scores, embedding_vectors], the
order of PaddleOCR's result dict.
"""

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import register


class Embedding(nn.Module):
    def __init__(self, in_timestep, in_planes, mid_dim=4096, embed_dim=300):
        super().__init__()
        self.in_timestep, self.in_planes, self.embed_dim = in_timestep, in_planes, embed_dim
        self.eEmbed = nn.Linear(in_timestep * in_planes, embed_dim)

    def forward(self, x):
        if x.shape[1] * x.shape[2] != self.in_timestep * self.in_planes:
            raise ValueError(f"AsterHead needs {self.in_timestep} encoder steps (a 32x100 "
                             f"rectified image), got {x.shape[1]}")
        return self.eEmbed(x.reshape(x.shape[0], -1))


class AttentionUnit(nn.Module):
    def __init__(self, sDim, xDim, attDim):
        super().__init__()
        self.sEmbed = nn.Linear(sDim, attDim)
        self.xEmbed = nn.Linear(xDim, attDim)
        self.wEmbed = nn.Linear(attDim, 1)

    def forward(self, x, sPrev):
        v = self.wEmbed(torch.tanh(self.sEmbed(sPrev).unsqueeze(1) + self.xEmbed(x)))
        return torch.softmax(v.squeeze(2), dim=1)  # N x T


class DecoderUnit(nn.Module):
    """One step: attention on the state, [embedding of the previous symbol, context] into a
    GRU cell, class scores. ``tgt_embedding`` has yDim + 1 rows: the last is <BOS>."""

    def __init__(self, sDim, xDim, yDim, attDim):
        super().__init__()
        self.sDim = sDim
        self.attention_unit = AttentionUnit(sDim, xDim, attDim)
        self.tgt_embedding = nn.Embedding(yDim + 1, attDim)
        self.gru = nn.GRUCell(xDim + attDim, sDim)
        self.fc = nn.Linear(sDim, yDim)
        self.embed_fc = nn.Linear(300, sDim)

    def get_initial_state(self, embed, tile_times=1):
        return self.embed_fc(embed).repeat_interleave(tile_times, dim=0)  # N·k x sDim

    def forward(self, x, sPrev, yPrev):
        alpha = self.attention_unit(x, sPrev)
        context = torch.bmm(alpha.unsqueeze(1), x).squeeze(1)
        y = self.tgt_embedding(yPrev.long())
        state = self.gru(torch.cat([y, context], dim=1), sPrev)
        return self.fc(state), state


class AttentionRecognitionHead(nn.Module):
    def __init__(self, in_channels, out_channels, sDim, attDim, max_len_labels):
        super().__init__()
        self.num_classes = out_channels
        self.max_len_labels = max_len_labels
        self.decoder = DecoderUnit(sDim, in_channels, out_channels, attDim)

    def beam_search(self, x, beam_width, eos, embed):
        n, k, C = x.shape[0], beam_width, self.num_classes
        feats = x.repeat_interleave(k, dim=0)  # each image's beams consecutive
        state = self.decoder.get_initial_state(embed, tile_times=k)
        pos_index = (torch.arange(n, device=x.device) * k).reshape(-1, 1)
        scores = torch.full((n * k, 1), float("-inf"), dtype=x.dtype, device=x.device)
        scores[::k] = 0.0
        y_prev = torch.full((n * k,), C, dtype=torch.long, device=x.device)
        stored_scores, stored_predecessors, stored_symbols = [], [], []
        for _ in range(self.max_len_labels):
            output, state = self.decoder(feats, state, y_prev)
            scores = scores.expand(-1, C) + F.log_softmax(output, dim=1)
            top, candidates = torch.topk(scores.reshape(n, -1), k, dim=1)
            y_prev = (candidates % C).reshape(n * k)
            scores = top.reshape(n * k, 1)
            predecessors = (candidates // C + pos_index).reshape(n * k, 1)
            state = state.index_select(0, predecessors.squeeze(1))
            stored_scores.append(scores.clone())
            ended = (y_prev == eos).nonzero().squeeze(1)
            if len(ended):
                # PaddleOCR: scores.numpy()[nonzero(mask).numpy()] = -inf, where the
                # nonzero pairs are (row, 0): rows `ended` and row 0 are masked
                scores = scores.clone()
                scores[ended] = float("-inf")
                scores[0] = float("-inf")
            stored_predecessors.append(predecessors)
            stored_symbols.append(y_prev)
        return self._backtrack(n, k, eos, pos_index, stored_scores, stored_predecessors,
                               stored_symbols)

    def _backtrack(self, n, k, eos, pos_index, stored_scores, stored_predecessors,
                   stored_symbols):
        sorted_score, sorted_idx = torch.topk(stored_scores[-1].reshape(n, k), k)
        s = sorted_score.clone()
        eos_found = [0] * n
        t_pred = (sorted_idx + pos_index).reshape(n * k)
        p = []
        for t in range(self.max_len_labels - 1, -1, -1):
            current = stored_symbols[t].index_select(0, t_pred)
            t_pred = stored_predecessors[t].squeeze(1).index_select(0, t_pred)
            for idx in reversed((stored_symbols[t] == eos).nonzero().squeeze(1).tolist()):
                b = idx // k
                res_k = k - (eos_found[b] % k) - 1
                eos_found[b] += 1
                res = b * k + res_k
                t_pred[res] = stored_predecessors[t][idx, 0]
                current[res] = stored_symbols[t][idx]
                s[b, res_k] = stored_scores[t][idx, 0]
            p.append(current)
        _, re_sorted = s.topk(k)
        re_sorted = (re_sorted + pos_index).reshape(n * k)
        seq = torch.stack([step.index_select(0, re_sorted).reshape(n, k)
                           for step in reversed(p)], dim=-1)
        return seq[:, 0, :]


@register("Head")
class AsterHead(nn.Module):
    def __init__(self, in_channels, out_channels, sDim, attDim, max_len_labels, time_step=25,
                 beam_width=5, **_):
        super().__init__()
        self.num_classes = out_channels
        self.out_channels = out_channels
        self.decoder = AttentionRecognitionHead(in_channels, out_channels, sDim, attDim,
                                                max_len_labels)
        self.time_step = time_step
        self.embeder = Embedding(time_step, in_channels)
        self.beam_width = beam_width
        self.eos = out_channels - 3  # SEEDLabelDecode: dictionary, eos, padding, unknown

    def forward(self, x, targets=None):
        if targets is not None:
            raise ValueError("AsterHead: training (teacher forcing) is not ported")
        embedding_vectors = self.embeder(x)
        rec_pred = self.decoder.beam_search(x, self.beam_width, self.eos, embedding_vectors)
        return [rec_pred, torch.ones_like(rec_pred), embedding_vectors]
