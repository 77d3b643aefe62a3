"""SDMGR's graph head after PaddleOCR's heads/kie_sdmgr_head.py (itself after MMOCR's
sdmgr_head): each box's text -> character embeddings -> LSTM, the last valid step is the
box's text feature; fused with the box's visual feature by a low-rank bilinear Block; box
pair geometry -> edge embeddings; GNN layers pass messages over every ordered pair of boxes;
node classifier (box classes) and edge classifier (linked or not, per ordered pair).

Input: the backbone's ``[relations, texts, visual features]`` (per-sample lists, texts as
float character indices padded with -1). Output: ``(node logits [all boxes, classes],
edge logits [sum of boxes², 2])`` as Paddle's dygraph head returns them.
"""

import torch
import torch.nn.functional as F
from torch import nn

from ..layers import PaddleEmbedding
from ..necks.rnn import paddle_rnn_aliases
from ..registry import register


def _l2_normalize(x):
    """paddle.nn.functional.normalize (p=2, axis=1, epsilon=1e-12)."""
    return x / x.norm(dim=1, keepdim=True).clamp(min=1e-12)


class Block(nn.Module):
    """Low-rank bilinear fusion (MUTAN/BLOCK style): both inputs -> mm_dim, split into chunks,
    per chunk the product of two rank-``rank`` projections summed over the rank, signed
    square root and L2 norm ('before_cat'), concatenated, -> output_dim."""

    def __init__(self, input_dims, output_dim, mm_dim=1600, chunks=20, rank=15, shared=False,
                 dropout_input=0.0, dropout_pre_lin=0.0, dropout_output=0.0,
                 pos_norm="before_cat"):
        super().__init__()
        if pos_norm not in ("before_cat", "after_cat"):
            raise ValueError(f"Block pos_norm must be before_cat or after_cat, not {pos_norm!r}")
        if shared:
            raise NotImplementedError("Block(shared=True) is not used by SDMGR")
        self.rank, self.pos_norm = rank, pos_norm
        self.linear0 = nn.Linear(input_dims[0], mm_dim)
        self.linear1 = nn.Linear(input_dims[1], mm_dim)
        self.chunks = self.chunk_sizes(mm_dim, chunks)
        self.merge_linears0 = nn.ModuleList(nn.Linear(s, s * rank) for s in self.chunks)
        self.merge_linears1 = nn.ModuleList(nn.Linear(s, s * rank) for s in self.chunks)
        self.linear_out = nn.Linear(mm_dim, output_dim)

    @staticmethod
    def chunk_sizes(dim, chunks):
        size = (dim + chunks - 1) // chunks
        sizes = [size] * chunks
        sizes[-1] -= sum(sizes) - dim
        return sizes

    @staticmethod
    def _signed_sqrt_norm(z):
        return _l2_normalize(torch.sqrt(F.relu(z)) - torch.sqrt(F.relu(-z)))

    def forward(self, x):
        x0, x1 = self.linear0(x[0]), self.linear1(x[1])
        bs = x1.shape[0]
        zs = []
        for c0, c1, m0, m1 in zip(x0.split(self.chunks, -1), x1.split(self.chunks, -1),
                                  self.merge_linears0, self.merge_linears1):
            z = (m0(c0) * m1(c1)).reshape(bs, self.rank, -1).sum(1)
            zs.append(self._signed_sqrt_norm(z) if self.pos_norm == "before_cat" else z)
        z = torch.cat(zs, 1)
        if self.pos_norm == "after_cat":
            z = self._signed_sqrt_norm(z)
        return self.linear_out(z)


class GNNLayer(nn.Module):
    """Every ordered pair (i, j) of a sample's boxes: [node i, node j, edge ij] -> in_fc ->
    ReLU; node i gathers its pairs weighted by a softmax over j != i of coef_fc; out_fc ->
    ReLU is added to the node. Returns the nodes and the pair features (edge classifier)."""

    def __init__(self, node_dim=256, edge_dim=256):
        super().__init__()
        self.in_fc = nn.Linear(node_dim * 2 + edge_dim, node_dim)
        self.coef_fc = nn.Linear(node_dim, 1)
        self.out_fc = nn.Linear(node_dim, node_dim)
        self.relu = nn.ReLU()

    def forward(self, nodes, edges, nums):
        pairs = []
        for sample in nodes.split(nums):
            n = len(sample)
            pairs.append(torch.cat([sample[:, None].expand(n, n, -1),
                                    sample[None].expand(n, n, -1)], -1).reshape(n * n, -1))
        cat_nodes = self.relu(self.in_fc(torch.cat([torch.cat(pairs), edges], -1)))
        coefs = self.coef_fc(cat_nodes)
        residuals, start = [], 0
        for n in nums:
            # a box does not attend to itself: -1e9 on the diagonal, as Paddle adds it
            eye = torch.eye(n, dtype=coefs.dtype, device=coefs.device)[..., None]
            weight = torch.softmax(-eye * 1e9 + coefs[start:start + n * n].reshape(n, n, -1), 1)
            residuals.append((weight * cat_nodes[start:start + n * n].reshape(n, n, -1)).sum(1))
            start += n * n
        nodes = nodes + self.relu(self.out_fc(torch.cat(residuals)))
        return nodes, cat_nodes


@register("Head")
class SDMGRHead(nn.Module):
    def __init__(self, in_channels=16, num_chars=92, visual_dim=16, fusion_dim=1024,
                 node_input=32, node_embed=256, edge_input=5, edge_embed=256, num_gnn=2,
                 num_classes=26, bidirectional=False):
        super().__init__()
        self.fusion = Block([visual_dim, node_embed], node_embed, fusion_dim)
        # index 0 is padding (and the dictionary's empty entry): Paddle looks it up as zeros
        self.node_embed = PaddleEmbedding(num_chars, node_input, 0)
        hidden = node_embed // 2 if bidirectional else node_embed
        # paddle.nn.LSTM(input, hidden, num_layers=1): one direction, batch-major; same
        # gate order and weight layout as torch's (tests/test_framework_ops.py)
        self.rnn = nn.LSTM(node_input, hidden, num_layers=1, batch_first=True)
        self.edge_embed = nn.Linear(edge_input, edge_embed)
        self.gnn_layers = nn.ModuleList(GNNLayer(node_embed, edge_embed) for _ in range(num_gnn))
        self.node_cls = nn.Linear(node_embed, num_classes)
        self.edge_cls = nn.Linear(edge_embed, 2)
        self.out_channels = num_classes

    def paddle_unused(self):
        return paddle_rnn_aliases("rnn", 1, False)

    def forward(self, x, targets=None):
        relations, texts, visual = x
        node_nums = [len(t) for t in texts]
        char_nums = torch.cat([(t > -1).sum(-1) for t in texts])
        max_num = int(char_nums.max()) if len(char_nums) else 0
        # each sample's texts padded on the right to the longest text of the batch
        all_nodes = torch.cat([F.pad(t, (0, max_num - t.shape[1])) for t in texts])
        rnn_nodes, _ = self.rnn(self.node_embed(all_nodes.clamp(min=0).long()))
        # the LSTM output at each text's last character; boxes without text stay zero
        nodes = rnn_nodes.new_zeros(rnn_nodes.shape[0], rnn_nodes.shape[2])
        valid = char_nums > 0
        last = (char_nums[valid] - 1).long()
        nodes[valid] = rnn_nodes[valid][torch.arange(len(last)), last]
        if visual is not None:
            nodes = self.fusion([visual, nodes])
        all_edges = torch.cat([r.reshape(-1, r.shape[-1]) for r in relations])
        edges = _l2_normalize(self.edge_embed(all_edges.to(self.edge_embed.weight.dtype)))
        for layer in self.gnn_layers:
            nodes, cat_nodes = layer(nodes, edges, node_nums)
        return self.node_cls(nodes), self.edge_cls(cat_nodes)
