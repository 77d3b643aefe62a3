"""RT-DETR's decoder side (PaddleDetection ppdet/modeling/transformers/rtdetr_transformer.py
RTDETRTransformer, deformable_transformer.py MSDeformableAttention, transformers/utils.py,
heads/detr_head.py MLP), at inference.

The encoder memory (every level projected again, flattened and concatenated) scores every
position through ``enc_output`` / ``enc_score_head``; the ``num_queries`` best positions give
the initial boxes (``enc_bbox_head`` + the position's anchor, in logit space) and the queries
(their memory features, or learnt ``tgt_embed`` when ``learnt_init_query``). Each decoder
layer runs self-attention, multi-scale deformable cross-attention around the current boxes
and a feed-forward block, then refines the boxes (``dec_bbox_head[i]``). The decoder stops at
``eval_idx`` (the last layer) and returns that layer's boxes (sigmoid, cx cy w h) and class
logits. Contrastive denoising is training-only: ``denoising_class_embed`` is not held.
"""

from collections import OrderedDict

import torch
from torch import nn
import torch.nn.functional as F

from ..layers import batch_norm, make_act
from ..necks.hybrid_encoder import MultiHeadAttention
from ..registry import register


def inverse_sigmoid(x, eps=1e-5):
    x = x.clamp(0.0, 1.0)
    return torch.log(x.clamp(min=eps) / (1 - x).clamp(min=eps))


class MLP(nn.Module):
    """``num_layers`` Linear layers with relu between them (heads/detr_head.py MLP)."""

    def __init__(self, input_dim, hidden_dim, output_dim, num_layers):
        super().__init__()
        dims = [input_dim] + [hidden_dim] * (num_layers - 1)
        self.layers = nn.ModuleList(nn.Linear(n, k) for n, k in
                                    zip(dims, dims[1:] + [output_dim]))

    def forward(self, x):
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


def deformable_attention_core(value, spatial_shapes, sampling_locations, attention_weights):
    """transformers/utils.py deformable_attention_core_func: per level, bilinear samples of
    the value map at the sampling locations (grid_sample, zeros padding, align_corners False,
    locations in [0, 1] mapped to [-1, 1]), weighted by the attention weights and summed.

    value [bs, len_v, heads, c]; sampling_locations [bs, len_q, heads, levels, points, 2];
    attention_weights [bs, len_q, heads, levels, points] -> [bs, len_q, heads * c]."""
    bs, _, heads, c = value.shape
    _, len_q, _, levels, points, _ = sampling_locations.shape
    values = value.split([h * w for h, w in spatial_shapes], dim=1)
    grids = 2 * sampling_locations - 1
    sampled = []
    for level, (h, w) in enumerate(spatial_shapes):
        v = values[level].flatten(2).transpose(1, 2).reshape(bs * heads, c, h, w)
        g = grids[:, :, :, level].transpose(1, 2).flatten(0, 1)  # [bs*heads, len_q, points, 2]
        sampled.append(F.grid_sample(v, g, mode="bilinear", padding_mode="zeros",
                                     align_corners=False))
    weights = attention_weights.transpose(1, 2).reshape(bs * heads, 1, len_q, levels * points)
    out = (torch.stack(sampled, dim=-2).flatten(-2) * weights).sum(-1)
    return out.reshape(bs, heads * c, len_q).transpose(1, 2)


class PPMSDeformableAttention(nn.Module):
    """Multi-scale deformable attention with 4-value (box) reference points: each head
    samples ``num_points`` locations per level at ref_xy + offset / points * ref_wh / 2."""

    def __init__(self, embed_dim=256, num_heads=8, num_levels=4, num_points=4):
        super().__init__()
        self.num_heads, self.num_levels, self.num_points = num_heads, num_levels, num_points
        self.head_dim = embed_dim // num_heads
        total = num_heads * num_levels * num_points
        self.sampling_offsets = nn.Linear(embed_dim, total * 2)
        self.attention_weights = nn.Linear(embed_dim, total)
        self.value_proj = nn.Linear(embed_dim, embed_dim)
        self.output_proj = nn.Linear(embed_dim, embed_dim)

    def forward(self, query, reference_points, value, spatial_shapes):
        bs, len_q = query.shape[:2]
        heads, levels, points = self.num_heads, self.num_levels, self.num_points
        value = self.value_proj(value).reshape(bs, value.shape[1], heads, self.head_dim)
        offsets = self.sampling_offsets(query).reshape(bs, len_q, heads, levels, points, 2)
        weights = self.attention_weights(query).reshape(bs, len_q, heads, levels * points)
        weights = weights.softmax(-1).reshape(bs, len_q, heads, levels, points)
        if reference_points.shape[-1] == 2:
            normalizer = torch.tensor(spatial_shapes, dtype=query.dtype).flip(1)
            locations = (reference_points.reshape(bs, len_q, 1, levels, 1, 2)
                         + offsets / normalizer.reshape(1, 1, 1, levels, 1, 2))
        else:
            ref = reference_points[:, :, None, :, None]
            locations = ref[..., :2] + offsets / points * ref[..., 2:] * 0.5
        out = deformable_attention_core(value, spatial_shapes, locations, weights)
        return self.output_proj(out)


class TransformerDecoderLayer(nn.Module):
    def __init__(self, d_model=256, n_head=8, dim_feedforward=1024, activation="relu",
                 n_levels=4, n_points=4):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, n_head)
        self.norm1 = nn.LayerNorm(d_model)
        self.cross_attn = PPMSDeformableAttention(d_model, n_head, n_levels, n_points)
        self.norm2 = nn.LayerNorm(d_model)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.activation = make_act(activation)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm3 = nn.LayerNorm(d_model)

    def forward(self, tgt, reference_points, memory, spatial_shapes, query_pos_embed=None):
        q = k = tgt if query_pos_embed is None else tgt + query_pos_embed
        tgt = self.norm1(tgt + self.self_attn(q, k, value=tgt))
        query = tgt if query_pos_embed is None else tgt + query_pos_embed
        tgt = self.norm2(tgt + self.cross_attn(query, reference_points, memory, spatial_shapes))
        return self.norm3(tgt + self.linear2(self.activation(self.linear1(tgt))))


class TransformerDecoder(nn.Module):
    def __init__(self, layer_args, num_layers, eval_idx=-1):
        super().__init__()
        self.layers = nn.ModuleList(TransformerDecoderLayer(**layer_args)
                                    for _ in range(num_layers))
        self.eval_idx = eval_idx if eval_idx >= 0 else num_layers + eval_idx

    def forward(self, tgt, ref_points_unact, memory, spatial_shapes, bbox_head, score_head,
                query_pos_head, query_pos_head_inv_sig=False):
        """Boxes and logits of layer ``eval_idx`` (inference stops there)."""
        output, ref = tgt, torch.sigmoid(ref_points_unact)
        for i, layer in enumerate(self.layers):
            pos = query_pos_head(inverse_sigmoid(ref) if query_pos_head_inv_sig else ref)
            output = layer(output, ref.unsqueeze(2), memory, spatial_shapes, pos)
            ref = torch.sigmoid(bbox_head[i](output) + inverse_sigmoid(ref))
            if i == self.eval_idx:
                return ref, score_head[i](output)
        raise ValueError(f"eval_idx {self.eval_idx} beyond {len(self.layers)} decoder layers")


def proj_layer(in_channels, hidden_dim, kernel_size=1, stride=1):
    # named ('conv', 'norm') as PaddleDetection's Sequential of named layers
    return nn.Sequential(OrderedDict([
        ("conv", nn.Conv2d(in_channels, hidden_dim, kernel_size, stride,
                           (kernel_size - 1) // 2, bias=False)),
        ("norm", batch_norm(hidden_dim))]))


@register("Head")
class RTDETRTransformer(nn.Module):
    def __init__(self, num_classes=80, hidden_dim=256, num_queries=300,
                 backbone_feat_channels=(512, 1024, 2048), feat_strides=(8, 16, 32),
                 num_levels=3, num_decoder_points=4, nhead=8, num_decoder_layers=6,
                 dim_feedforward=1024, activation="relu", learnt_init_query=True,
                 query_pos_head_inv_sig=False, eval_idx=-1, eps=1e-2, in_channels=None,
                 position_embed_type="sine", eval_size=None, **_training_only):
        super().__init__()
        backbone_feat_channels = list(in_channels or backbone_feat_channels)
        self.hidden_dim, self.num_classes, self.num_queries = hidden_dim, num_classes, num_queries
        self.num_levels, self.eps = num_levels, eps
        self.num_decoder_layers = num_decoder_layers
        self.learnt_init_query = learnt_init_query
        self.query_pos_head_inv_sig = query_pos_head_inv_sig
        # extra levels beyond the given features: 3x3 stride-2 convs from the last one
        self.input_proj = nn.ModuleList(proj_layer(c, hidden_dim) for c in backbone_feat_channels)
        in_ch = backbone_feat_channels[-1]
        for _ in range(num_levels - len(backbone_feat_channels)):
            self.input_proj.append(proj_layer(in_ch, hidden_dim, 3, 2))
            in_ch = hidden_dim
        self.decoder = TransformerDecoder(
            dict(d_model=hidden_dim, n_head=nhead, dim_feedforward=dim_feedforward,
                 activation=activation, n_levels=num_levels, n_points=num_decoder_points),
            num_decoder_layers, eval_idx)
        if learnt_init_query:
            self.tgt_embed = nn.Embedding(num_queries, hidden_dim)
        self.query_pos_head = MLP(4, 2 * hidden_dim, hidden_dim, num_layers=2)
        self.enc_output = nn.Sequential(nn.Linear(hidden_dim, hidden_dim),
                                        nn.LayerNorm(hidden_dim))
        self.enc_score_head = nn.Linear(hidden_dim, num_classes)
        self.enc_bbox_head = MLP(hidden_dim, hidden_dim, 4, num_layers=3)
        # only the heads of layers up to eval_idx run at inference; the later score heads
        # and the earlier ones (training's auxiliary losses) are placeholders here, so the
        # indices keep PaddleDetection's names (see paddle_unused)
        last = self.decoder.eval_idx
        self.dec_score_head = nn.ModuleList(
            nn.Linear(hidden_dim, num_classes) if i == last else nn.Identity()
            for i in range(num_decoder_layers))
        self.dec_bbox_head = nn.ModuleList(
            MLP(hidden_dim, hidden_dim, 4, num_layers=3) if i <= last else nn.Identity()
            for i in range(num_decoder_layers))
        self.out_channels = num_classes
        # with ``eval_size`` PaddleDetection makes the anchors and their valid mask once (an
        # export stores them): buffers, taken from an export (paddle_computed)
        self.paddle_computed = ()
        if eval_size:
            strides = list(feat_strides) + [feat_strides[-1] * 2 ** (i + 1) for i in
                                            range(num_levels - len(feat_strides))]
            shapes = [(int(eval_size[0] / s), int(eval_size[1] / s)) for s in strides]
            anchors, valid = self._anchors(shapes, torch.float32)
            self.register_buffer("anchors", anchors)
            self.register_buffer("valid_mask", valid)
            self.paddle_computed = ("anchors", "valid_mask")

    def paddle_unused(self):
        # training-only parameters a training checkpoint holds and an export drops
        last = self.decoder.eval_idx
        names = ["denoising_class_embed.weight"]
        names += [f"dec_score_head.{i}.{p}" for i in range(self.num_decoder_layers)
                  if i != last for p in ("weight", "bias")]
        names += [f"dec_bbox_head.{i}.layers.{j}.{p}" for i in range(last + 1,
                                                                      self.num_decoder_layers)
                  for j in range(3) for p in ("weight", "bias")]
        return names

    def _encoder_input(self, feats):
        proj = [p(f) for p, f in zip(self.input_proj, feats)]
        for i in range(len(proj), self.num_levels):
            proj.append(self.input_proj[i](feats[-1] if i == len(feats) else proj[-1]))
        shapes = [tuple(int(s) for s in p.shape[2:]) for p in proj]
        return torch.cat([p.flatten(2).transpose(1, 2) for p in proj], dim=1), shapes

    def _anchors(self, shapes, dtype, grid_size=0.05):
        """Per position: centre ((i + 0.5) / size) and a level-dependent size, in logit space;
        positions too close to the border are invalid (their anchor is inf, their memory 0).
        PaddleDetection divides the (x, y) grid by [h, w]: identical on square maps, kept."""
        anchors = []
        for lvl, (h, w) in enumerate(shapes):
            gy, gx = torch.meshgrid(torch.arange(h, dtype=dtype), torch.arange(w, dtype=dtype),
                                    indexing="ij")
            xy = (torch.stack([gx, gy], -1)[None] + 0.5) / torch.tensor([h, w], dtype=dtype)
            wh = torch.ones_like(xy) * grid_size * (2.0 ** lvl)
            anchors.append(torch.cat([xy, wh], -1).reshape(1, h * w, 4))
        anchors = torch.cat(anchors, 1)
        valid = ((anchors > self.eps) & (anchors < 1 - self.eps)).all(-1, keepdim=True)
        # Paddle's float32 log is the correctly rounded one: a float64 log rounded to float32
        # reproduces the anchors an export stores bit for bit (torch's own float32 log is off
        # by an ulp in places)
        anchors = torch.log((anchors / (1 - anchors)).double()).to(dtype)
        return torch.where(valid, anchors, torch.full_like(anchors, float("inf"))), valid

    def forward(self, feats):
        memory, shapes = self._encoder_input(feats)
        valid = getattr(self, "valid_mask", None)
        if valid is not None and valid.shape[1] == memory.shape[1]:
            anchors = self.anchors  # Paddle reads the mask first, the anchors after the box head
        else:
            anchors, valid = self._anchors(shapes, memory.dtype)
        memory_masked = torch.where(valid, memory, torch.zeros_like(memory))
        output_memory = self.enc_output(memory_masked)
        enc_class = self.enc_score_head(output_memory)
        enc_coord_unact = self.enc_bbox_head(output_memory) + anchors.to(memory.dtype)
        topk = torch.topk(enc_class.max(-1).values, self.num_queries, dim=1).indices
        ref_unact = torch.gather(enc_coord_unact, 1, topk[..., None].expand(-1, -1, 4))
        if self.learnt_init_query:
            target = self.tgt_embed.weight[None].expand(memory.shape[0], -1, -1)
        else:
            target = torch.gather(output_memory, 1,
                                  topk[..., None].expand(-1, -1, output_memory.shape[-1]))
        # the decoder reads the unmasked memory (PaddleDetection masks only the scoring copy)
        return self.decoder(target, ref_unact, memory, shapes, self.dec_bbox_head,
                            self.dec_score_head, self.query_pos_head,
                            self.query_pos_head_inv_sig)
