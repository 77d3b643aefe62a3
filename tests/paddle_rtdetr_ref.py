"""Paddle twin of PP-DocLayout-L (PaddleDetection's RT-DETR: architectures/detr.py DETR with
backbones/hgnet_v2.py PPHGNetV2, transformers/hybrid_encoder.py HybridEncoder,
transformers/rtdetr_transformer.py RTDETRTransformer, heads/detr_head.py DINOHead,
post_process.py DETRPostProcess), transcribed with the same module tree and parameter names.
Exported as PaddleDetection exports it (export.post_process on): inputs a dict of image,
im_shape and scale_factor, outputs bbox [N, 6] and bbox_num, ``eval_size`` fixed (so the
position embedding and the anchors are precomputed, as in the real export).

The HGNetV2 stem and stages are test_server_family's twins of the same blocks (PaddleOCR's
copy of PaddleDetection's file: same names; PaddleDetection downsamples every stage by 2 and
builds no classifier tail).

    python paddle_rtdetr_ref.py OUTDIR pdmodel|pir
    (pir also writes OUTDIR/../train/best_accuracy.pdparams with the same weights)
"""

import copy
import math
import os
import sys

if __name__ == "__main__" and sys.argv[2] == "pdmodel":
    os.environ["FLAGS_enable_pir_api"] = "0"  # before paddle is imported

import numpy as np  # noqa: E402
import paddle  # noqa: E402
import paddle.nn as nn  # noqa: E402
import paddle.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from paddle_det_twins import _legacy, _legacy_op, sigmoid  # noqa: E402
from paddle_deep_rec import calibrate_batchnorm  # noqa: E402
from test_server_family import PHGStage, PStemBlock  # noqa: E402


def matmul(x, y, transpose_y=False):
    """paddle.matmul; in a 2.x export (paddle 3.3 traces generated ops on PIR kernels) the
    matmul_v2 op itself, see paddle_det_twins._legacy_op."""
    if not _legacy():
        return paddle.matmul(x, y, transpose_y=transpose_y)
    return _legacy_op("matmul_v2", {"X": x, "Y": y}, {"trans_x": False, "trans_y": transpose_y},
                      x.dtype)

def gelu(x):
    """F.gelu (op gelu, exact form)."""
    if not _legacy():
        return F.gelu(x)
    return _legacy_op("gelu", {"X": x}, {"approximate": False}, x.dtype)


def relu(x):
    """F.relu (op relu)."""
    return F.relu(x) if not _legacy() else _legacy_op("relu", {"X": x}, {}, x.dtype)


def silu(x):
    """F.silu (op silu)."""
    return F.silu(x) if not _legacy() else _legacy_op("silu", {"X": x}, {}, x.dtype)


def grid_sample(x, grid):
    """F.grid_sample as PaddleDetection calls it (bilinear, zeros, align_corners False); in a
    2.x export the grid_sampler op itself."""
    if not _legacy():
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros",
                             align_corners=False)
    from paddle.base.layer_helper import LayerHelper

    helper = LayerHelper("grid_sampler")
    out = helper.create_variable_for_type_inference(dtype=x.dtype)
    helper.append_op(type="grid_sampler", inputs={"X": x, "Grid": grid},
                     outputs={"Output": out},
                     attrs={"mode": "bilinear", "padding_mode": "zeros", "align_corners": False})
    return out


def sum_last(x):
    """x.sum(-1) (op reduce_sum in a 2.x export)."""
    if not _legacy():
        return x.sum(-1)
    return _legacy_op("reduce_sum", {"X": x}, {"dim": [-1], "keep_dim": False,
                                              "reduce_all": False}, x.dtype)


def log(x):
    """paddle.log (op log)."""
    return paddle.log(x) if not _legacy() else _legacy_op("log", {"X": x}, {}, x.dtype)


def floor(x):
    """paddle.floor (op floor)."""
    return paddle.floor(x) if not _legacy() else _legacy_op("floor", {"X": x}, {}, x.dtype)


# the small configuration of tests/test_rtdetr_layout.py
TINY = dict(
    stem_channels=[3, 8, 8],
    # in, mid, out, blocks, downsample, light_block, kernel, layer_num
    stage_config=[[8, 8, 16, 1, False, False, 3, 2], [16, 8, 24, 1, True, False, 3, 2],
                  [24, 8, 32, 2, True, True, 5, 2], [32, 8, 40, 1, True, True, 5, 2]],
    hidden_dim=16, nhead=2, dim_feedforward=32, num_classes=5, num_queries=12,
    num_decoder_layers=2, num_levels=3, depth_mult=0.34, num_top_queries=20,
    eval_size=[416, 416])


# ---- backbones/hgnet_v2.py

class PPHGNetV2(nn.Layer):
    def __init__(self, stem_channels, stage_config, use_lab=False, return_idx=(1, 2, 3)):
        super().__init__()
        self.return_idx = list(return_idx)
        self._out_channels = [s[2] for s in stage_config]
        self.stem = PStemBlock(*stem_channels, use_lab=use_lab)
        self.stages = nn.LayerList()
        for cin, mid, cout, blocks, down, light, k, layers in stage_config:
            self.stages.append(PHGStage(cin, mid, cout, blocks, layers, down, 2,
                                        v2=(light, k, use_lab)))

    def forward(self, inputs):
        x = self.stem(inputs["image"])
        outs = []
        for idx, stage in enumerate(self.stages):
            x = stage(x)
            if idx in self.return_idx:
                outs.append(x)
        return outs


# ---- backbones/csp_darknet.py BaseConv, backbones/cspresnet.py ConvBNLayer / RepVggBlock

class BaseConv(nn.Layer):
    def __init__(self, in_channels, out_channels, ksize, stride, groups=1, bias=False):
        super().__init__()
        self.conv = nn.Conv2D(in_channels, out_channels, ksize, stride, (ksize - 1) // 2,
                              groups=groups, bias_attr=bias)
        self.bn = nn.BatchNorm2D(out_channels)

    def forward(self, x):
        x = self.bn(self.conv(x))
        return x * sigmoid(x)


class ConvBNLayer(nn.Layer):
    def __init__(self, ch_in, ch_out, filter_size=3, stride=1, groups=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2D(ch_in, ch_out, filter_size, stride, padding, groups=groups,
                              bias_attr=False)
        self.bn = nn.BatchNorm2D(ch_out)

    def forward(self, x):
        return self.bn(self.conv(x))


class RepVggBlock(nn.Layer):
    def __init__(self, ch_in, ch_out):
        super().__init__()
        self.conv1 = ConvBNLayer(ch_in, ch_out, 3, stride=1, padding=1)
        self.conv2 = ConvBNLayer(ch_in, ch_out, 1, stride=1, padding=0)

    def forward(self, x):
        return silu(self.conv1(x) + self.conv2(x))  # ops.py ACT_SPEC['silu']


# ---- transformers/hybrid_encoder.py

class CSPRepLayer(nn.Layer):
    def __init__(self, in_channels, out_channels, num_blocks=3, expansion=1.0):
        super().__init__()
        hidden = int(out_channels * expansion)
        self.conv1 = BaseConv(in_channels, hidden, 1, 1)
        self.conv2 = BaseConv(in_channels, hidden, 1, 1)
        self.bottlenecks = nn.Sequential(*[RepVggBlock(hidden, hidden)
                                           for _ in range(num_blocks)])
        self.conv3 = BaseConv(hidden, out_channels, 1, 1) if hidden != out_channels \
            else nn.Identity()

    def forward(self, x):
        return self.conv3(self.bottlenecks(self.conv1(x)) + self.conv2(x))


class MultiHeadAttention(nn.Layer):
    """ppdet/modeling/layers.py MultiHeadAttention (kdim = vdim = embed_dim)."""

    def __init__(self, embed_dim, num_heads, dropout=0.0):
        super().__init__()
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.head_dim = embed_dim // num_heads
        self.in_proj_weight = self.create_parameter([embed_dim, 3 * embed_dim])
        self.in_proj_bias = self.create_parameter([3 * embed_dim], is_bias=True)
        self.out_proj = nn.Linear(embed_dim, embed_dim)

    def compute_qkv(self, tensor, index):
        d = self.embed_dim
        tensor = F.linear(tensor, self.in_proj_weight[:, index * d:(index + 1) * d],
                          self.in_proj_bias[index * d:(index + 1) * d])
        return tensor.reshape([0, 0, self.num_heads, self.head_dim]).transpose([0, 2, 1, 3])

    def forward(self, query, key=None, value=None, attn_mask=None):
        key = query if key is None else key
        value = query if value is None else value
        q, k, v = (self.compute_qkv(t, i) for i, t in enumerate([query, key, value]))
        product = matmul(q, k, transpose_y=True) * float(self.head_dim) ** -0.5
        if attn_mask is not None:
            product = product + attn_mask
        out = matmul(F.softmax(product), v)
        out = paddle.transpose(out, [0, 2, 1, 3])
        out = paddle.reshape(out, [0, 0, out.shape[2] * out.shape[3]])
        return self.out_proj(out)


class TransformerLayer(nn.Layer):
    def __init__(self, d_model, nhead, dim_feedforward=1024, activation="relu"):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, nhead)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.activation = {"gelu": gelu, "relu": relu}[activation]

    def forward(self, src, src_mask=None, pos_embed=None):
        residual = src
        q = k = src if pos_embed is None else src + pos_embed
        src = self.self_attn(q, k, value=src, attn_mask=src_mask)
        src = self.norm1(residual + src)
        residual = src
        src = self.linear2(self.activation(self.linear1(src)))
        return self.norm2(residual + src)


class TransformerEncoder(nn.Layer):
    def __init__(self, encoder_layer, num_layers):
        super().__init__()
        self.layers = nn.LayerList([copy.deepcopy(encoder_layer) for _ in range(num_layers)])

    def forward(self, src, src_mask=None, pos_embed=None):
        for layer in self.layers:
            src = layer(src, src_mask=src_mask, pos_embed=pos_embed)
        return src


class HybridEncoder(nn.Layer):
    def __init__(self, in_channels, feat_strides=(8, 16, 32), hidden_dim=256,
                 use_encoder_idx=(2,), num_encoder_layers=1, encoder_layer=None,
                 pe_temperature=10000, expansion=1.0, depth_mult=1.0, eval_size=None):
        super().__init__()
        self.in_channels, self.feat_strides = in_channels, list(feat_strides)
        self.hidden_dim, self.use_encoder_idx = hidden_dim, list(use_encoder_idx)
        self.num_encoder_layers, self.pe_temperature = num_encoder_layers, pe_temperature
        self.eval_size = eval_size
        self.input_proj = nn.LayerList()
        for c in in_channels:
            self.input_proj.append(nn.Sequential(nn.Conv2D(c, hidden_dim, 1, bias_attr=False),
                                                 nn.BatchNorm2D(hidden_dim)))
        self.encoder = nn.LayerList([TransformerEncoder(encoder_layer, num_encoder_layers)
                                     for _ in range(len(use_encoder_idx))])
        self.lateral_convs = nn.LayerList()
        self.fpn_blocks = nn.LayerList()
        for _ in range(len(in_channels) - 1, 0, -1):
            self.lateral_convs.append(BaseConv(hidden_dim, hidden_dim, 1, 1))
            self.fpn_blocks.append(CSPRepLayer(hidden_dim * 2, hidden_dim,
                                               round(3 * depth_mult), expansion=expansion))
        self.downsample_convs = nn.LayerList()
        self.pan_blocks = nn.LayerList()
        for _ in range(len(in_channels) - 1):
            self.downsample_convs.append(BaseConv(hidden_dim, hidden_dim, 3, stride=2))
            self.pan_blocks.append(CSPRepLayer(hidden_dim * 2, hidden_dim,
                                               round(3 * depth_mult), expansion=expansion))
        if self.eval_size:
            for idx in self.use_encoder_idx:
                stride = self.feat_strides[idx]
                setattr(self, f"pos_embed{idx}", self.build_2d_sincos_position_embedding(
                    self.eval_size[1] // stride, self.eval_size[0] // stride,
                    self.hidden_dim, self.pe_temperature))

    @staticmethod
    def build_2d_sincos_position_embedding(w, h, embed_dim=256, temperature=10000.0):
        grid_w = paddle.arange(int(w), dtype=paddle.float32)
        grid_h = paddle.arange(int(h), dtype=paddle.float32)
        grid_w, grid_h = paddle.meshgrid(grid_w, grid_h)
        pos_dim = embed_dim // 4
        omega = paddle.arange(pos_dim, dtype=paddle.float32) / pos_dim
        omega = 1.0 / (temperature ** omega)
        out_w = grid_w.flatten()[..., None] @ omega[None]
        out_h = grid_h.flatten()[..., None] @ omega[None]
        return paddle.concat([paddle.sin(out_w), paddle.cos(out_w), paddle.sin(out_h),
                              paddle.cos(out_h)], axis=1)[None, :, :]

    def forward(self, feats):
        proj_feats = [self.input_proj[i](feat) for i, feat in enumerate(feats)]
        if self.num_encoder_layers > 0:
            for i, enc_ind in enumerate(self.use_encoder_idx):
                h, w = proj_feats[enc_ind].shape[2:]
                src_flatten = proj_feats[enc_ind].flatten(2).transpose([0, 2, 1])
                if self.training or self.eval_size is None:
                    pos_embed = self.build_2d_sincos_position_embedding(
                        w, h, self.hidden_dim, self.pe_temperature)
                else:
                    pos_embed = getattr(self, f"pos_embed{enc_ind}", None)
                memory = self.encoder[i](src_flatten, pos_embed=pos_embed)
                proj_feats[enc_ind] = memory.transpose([0, 2, 1]).reshape(
                    [-1, self.hidden_dim, h, w])
        inner_outs = [proj_feats[-1]]
        for idx in range(len(self.in_channels) - 1, 0, -1):
            feat_heigh = inner_outs[0]
            feat_low = proj_feats[idx - 1]
            feat_heigh = self.lateral_convs[len(self.in_channels) - 1 - idx](feat_heigh)
            inner_outs[0] = feat_heigh
            upsample_feat = F.interpolate(feat_heigh, scale_factor=2.0, mode="nearest")
            inner_out = self.fpn_blocks[len(self.in_channels) - 1 - idx](
                paddle.concat([upsample_feat, feat_low], axis=1))
            inner_outs.insert(0, inner_out)
        outs = [inner_outs[0]]
        for idx in range(len(self.in_channels) - 1):
            feat_low = outs[-1]
            feat_height = inner_outs[idx + 1]
            downsample_feat = self.downsample_convs[idx](feat_low)
            outs.append(self.pan_blocks[idx](paddle.concat([downsample_feat, feat_height], 1)))
        return outs


# ---- transformers/utils.py, deformable_transformer.py, rtdetr_transformer.py, detr_head.py

def inverse_sigmoid(x, eps=1e-5):
    x = x.clip(min=0.0, max=1.0)
    return log(x.clip(min=eps) / (1 - x).clip(min=eps))


def deformable_attention_core_func(value, value_spatial_shapes, value_level_start_index,
                                   sampling_locations, attention_weights):
    bs, _, n_head, c = value.shape
    _, Len_q, _, n_levels, n_points, _ = sampling_locations.shape
    split_shape = [h * w for h, w in value_spatial_shapes]
    value_list = value.split(split_shape, axis=1)
    sampling_grids = 2 * sampling_locations - 1
    sampling_value_list = []
    for level, (h, w) in enumerate(value_spatial_shapes):
        value_l_ = value_list[level].flatten(2).transpose([0, 2, 1]).reshape(
            [bs * n_head, c, h, w])
        sampling_grid_l_ = sampling_grids[:, :, :, level].transpose(
            [0, 2, 1, 3, 4]).flatten(0, 1)
        sampling_value_list.append(grid_sample(value_l_, sampling_grid_l_))
    attention_weights = attention_weights.transpose([0, 2, 1, 3, 4]).reshape(
        [bs * n_head, 1, Len_q, n_levels * n_points])
    output = sum_last(paddle.stack(sampling_value_list, axis=-2).flatten(-2)
                      * attention_weights).reshape([bs, n_head * c, Len_q])
    return output.transpose([0, 2, 1])


class PPMSDeformableAttention(nn.Layer):
    def __init__(self, embed_dim=256, num_heads=8, num_levels=4, num_points=4):
        super().__init__()
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.num_levels, self.num_points = num_levels, num_points
        self.total_points = num_heads * num_levels * num_points
        self.head_dim = embed_dim // num_heads
        self.sampling_offsets = nn.Linear(embed_dim, self.total_points * 2)
        self.attention_weights = nn.Linear(embed_dim, self.total_points)
        self.value_proj = nn.Linear(embed_dim, embed_dim)
        self.output_proj = nn.Linear(embed_dim, embed_dim)
        self.ms_deformable_attn_core = deformable_attention_core_func

    def forward(self, query, reference_points, value, value_spatial_shapes,
                value_level_start_index, value_mask=None):
        bs, Len_q = query.shape[:2]
        Len_v = value.shape[1]
        value = self.value_proj(value)
        value = value.reshape([bs, Len_v, self.num_heads, self.head_dim])
        sampling_offsets = self.sampling_offsets(query).reshape(
            [bs, Len_q, self.num_heads, self.num_levels, self.num_points, 2])
        attention_weights = self.attention_weights(query).reshape(
            [bs, Len_q, self.num_heads, self.num_levels * self.num_points])
        attention_weights = F.softmax(attention_weights).reshape(
            [bs, Len_q, self.num_heads, self.num_levels, self.num_points])
        sampling_locations = (reference_points[:, :, None, :, None, :2] + sampling_offsets
                              / self.num_points * reference_points[:, :, None, :, None, 2:]
                              * 0.5)
        output = self.ms_deformable_attn_core(value, value_spatial_shapes,
                                              value_level_start_index, sampling_locations,
                                              attention_weights)
        return self.output_proj(output)


class TransformerDecoderLayer(nn.Layer):
    def __init__(self, d_model=256, n_head=8, dim_feedforward=1024, activation="relu",
                 n_levels=4, n_points=4):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, n_head)
        self.norm1 = nn.LayerNorm(d_model)
        self.cross_attn = PPMSDeformableAttention(d_model, n_head, n_levels, n_points)
        self.norm2 = nn.LayerNorm(d_model)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.activation = {"gelu": gelu, "relu": relu}[activation]
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm3 = nn.LayerNorm(d_model)

    def with_pos_embed(self, tensor, pos):
        return tensor if pos is None else tensor + pos

    def forward(self, tgt, reference_points, memory, memory_spatial_shapes,
                memory_level_start_index, attn_mask=None, memory_mask=None,
                query_pos_embed=None):
        q = k = self.with_pos_embed(tgt, query_pos_embed)
        tgt2 = self.self_attn(q, k, value=tgt, attn_mask=attn_mask)
        tgt = self.norm1(tgt + tgt2)
        tgt2 = self.cross_attn(self.with_pos_embed(tgt, query_pos_embed), reference_points,
                               memory, memory_spatial_shapes, memory_level_start_index,
                               memory_mask)
        tgt = self.norm2(tgt + tgt2)
        tgt2 = self.linear2(self.activation(self.linear1(tgt)))
        return self.norm3(tgt + tgt2)


class TransformerDecoder(nn.Layer):
    def __init__(self, hidden_dim, decoder_layer, num_layers, eval_idx=-1):
        super().__init__()
        self.layers = nn.LayerList([copy.deepcopy(decoder_layer) for _ in range(num_layers)])
        self.eval_idx = eval_idx if eval_idx >= 0 else num_layers + eval_idx

    def forward(self, tgt, ref_points_unact, memory, memory_spatial_shapes,
                memory_level_start_index, bbox_head, score_head, query_pos_head):
        output = tgt
        dec_out_bboxes, dec_out_logits = [], []
        ref_points_detach = sigmoid(ref_points_unact)
        for i, layer in enumerate(self.layers):
            ref_points_input = ref_points_detach.unsqueeze(2)
            query_pos_embed = query_pos_head(ref_points_detach)
            output = layer(output, ref_points_input, memory, memory_spatial_shapes,
                           memory_level_start_index, None, None, query_pos_embed)
            inter_ref_bbox = sigmoid(bbox_head[i](output)
                                       + inverse_sigmoid(ref_points_detach))
            if i == self.eval_idx:
                dec_out_logits.append(score_head[i](output))
                dec_out_bboxes.append(inter_ref_bbox)
                break
            ref_points_detach = inter_ref_bbox
        return paddle.stack(dec_out_bboxes), paddle.stack(dec_out_logits)


class MLP(nn.Layer):
    def __init__(self, input_dim, hidden_dim, output_dim, num_layers):
        super().__init__()
        self.num_layers = num_layers
        h = [hidden_dim] * (num_layers - 1)
        self.layers = nn.LayerList(nn.Linear(n, k) for n, k in
                                   zip([input_dim] + h, h + [output_dim]))

    def forward(self, x):
        for i, layer in enumerate(self.layers):
            x = relu(layer(x)) if i < self.num_layers - 1 else layer(x)
        return x


class RTDETRTransformer(nn.Layer):
    def __init__(self, num_classes=80, hidden_dim=256, num_queries=300,
                 backbone_feat_channels=(512, 1024, 2048), feat_strides=(8, 16, 32),
                 num_levels=3, num_decoder_points=4, nhead=8, num_decoder_layers=6,
                 dim_feedforward=1024, activation="relu", learnt_init_query=False,
                 eval_size=None, eval_idx=-1, eps=1e-2):
        super().__init__()
        feat_strides = list(feat_strides)
        for _ in range(num_levels - len(feat_strides)):
            feat_strides.append(feat_strides[-1] * 2)
        self.hidden_dim, self.nhead, self.feat_strides = hidden_dim, nhead, feat_strides
        self.num_levels, self.num_classes, self.num_queries = num_levels, num_classes, num_queries
        self.eps, self.num_decoder_layers, self.eval_size = eps, num_decoder_layers, eval_size
        self.input_proj = nn.LayerList()
        for c in backbone_feat_channels:
            self.input_proj.append(nn.Sequential(
                ("conv", nn.Conv2D(c, hidden_dim, kernel_size=1, bias_attr=False)),
                ("norm", nn.BatchNorm2D(hidden_dim))))
        in_channels = backbone_feat_channels[-1]
        for _ in range(num_levels - len(backbone_feat_channels)):
            self.input_proj.append(nn.Sequential(
                ("conv", nn.Conv2D(in_channels, hidden_dim, kernel_size=3, stride=2, padding=1,
                                   bias_attr=False)),
                ("norm", nn.BatchNorm2D(hidden_dim))))
            in_channels = hidden_dim
        decoder_layer = TransformerDecoderLayer(hidden_dim, nhead, dim_feedforward, activation,
                                                num_levels, num_decoder_points)
        self.decoder = TransformerDecoder(hidden_dim, decoder_layer, num_decoder_layers,
                                          eval_idx)
        self.denoising_class_embed = nn.Embedding(num_classes, hidden_dim)
        self.learnt_init_query = learnt_init_query
        if learnt_init_query:
            self.tgt_embed = nn.Embedding(num_queries, hidden_dim)
        self.query_pos_head = MLP(4, 2 * hidden_dim, hidden_dim, num_layers=2)
        self.enc_output = nn.Sequential(nn.Linear(hidden_dim, hidden_dim),
                                        nn.LayerNorm(hidden_dim))
        self.enc_score_head = nn.Linear(hidden_dim, num_classes)
        self.enc_bbox_head = MLP(hidden_dim, hidden_dim, 4, num_layers=3)
        self.dec_score_head = nn.LayerList([nn.Linear(hidden_dim, num_classes)
                                            for _ in range(num_decoder_layers)])
        self.dec_bbox_head = nn.LayerList([MLP(hidden_dim, hidden_dim, 4, num_layers=3)
                                           for _ in range(num_decoder_layers)])
        if self.eval_size:
            self.anchors, self.valid_mask = self._generate_anchors()

    def _get_encoder_input(self, feats):
        proj_feats = [self.input_proj[i](feat) for i, feat in enumerate(feats)]
        if self.num_levels > len(proj_feats):
            len_srcs = len(proj_feats)
            for i in range(len_srcs, self.num_levels):
                if i == len_srcs:
                    proj_feats.append(self.input_proj[i](feats[-1]))
                else:
                    proj_feats.append(self.input_proj[i](proj_feats[-1]))
        feat_flatten, spatial_shapes, level_start_index = [], [], [0]
        for feat in proj_feats:
            _, _, h, w = feat.shape
            feat_flatten.append(feat.flatten(2).transpose([0, 2, 1]))
            spatial_shapes.append([h, w])
            level_start_index.append(h * w + level_start_index[-1])
        level_start_index.pop()
        return paddle.concat(feat_flatten, 1), spatial_shapes, level_start_index

    def forward(self, feats, pad_mask=None, gt_meta=None):
        memory, spatial_shapes, level_start_index = self._get_encoder_input(feats)
        target, init_ref_points_unact, enc_topk_bboxes, enc_topk_logits = \
            self._get_decoder_input(memory, spatial_shapes)
        out_bboxes, out_logits = self.decoder(
            target, init_ref_points_unact, memory, spatial_shapes, level_start_index,
            self.dec_bbox_head, self.dec_score_head, self.query_pos_head)
        return out_bboxes, out_logits, enc_topk_bboxes, enc_topk_logits, None

    def _generate_anchors(self, spatial_shapes=None, grid_size=0.05, dtype="float32"):
        if spatial_shapes is None:
            spatial_shapes = [[int(self.eval_size[0] / s), int(self.eval_size[1] / s)]
                              for s in self.feat_strides]
        anchors = []
        for lvl, (h, w) in enumerate(spatial_shapes):
            grid_y, grid_x = paddle.meshgrid(paddle.arange(end=h, dtype=dtype),
                                             paddle.arange(end=w, dtype=dtype))
            grid_xy = paddle.stack([grid_x, grid_y], -1)
            valid_WH = paddle.to_tensor([h, w]).astype(dtype)
            grid_xy = (grid_xy.unsqueeze(0) + 0.5) / valid_WH
            wh = paddle.ones_like(grid_xy) * grid_size * (2.0 ** lvl)
            anchors.append(paddle.concat([grid_xy, wh], -1).reshape([-1, h * w, 4]))
        anchors = paddle.concat(anchors, 1)
        valid_mask = ((anchors > self.eps) * (anchors < 1 - self.eps)).all(-1, keepdim=True)
        anchors = paddle.log(anchors / (1 - anchors))
        anchors = paddle.where(valid_mask, anchors, paddle.to_tensor(float("inf")))
        return anchors, valid_mask

    def _get_decoder_input(self, memory, spatial_shapes):
        bs, _, _ = memory.shape
        if self.training or self.eval_size is None:
            anchors, valid_mask = self._generate_anchors(spatial_shapes)
        else:
            anchors, valid_mask = self.anchors, self.valid_mask
        memory = paddle.where(valid_mask, memory, paddle.to_tensor(0.0))
        output_memory = self.enc_output(memory)
        enc_outputs_class = self.enc_score_head(output_memory)
        enc_outputs_coord_unact = self.enc_bbox_head(output_memory) + anchors
        _, topk_ind = paddle.topk(enc_outputs_class.max(-1), self.num_queries, axis=1)
        batch_ind = paddle.arange(end=bs, dtype=topk_ind.dtype)
        batch_ind = batch_ind.unsqueeze(-1).tile([1, self.num_queries])
        topk_ind = paddle.stack([batch_ind, topk_ind], axis=-1)
        reference_points_unact = paddle.gather_nd(enc_outputs_coord_unact, topk_ind)
        enc_topk_bboxes = sigmoid(reference_points_unact)
        enc_topk_logits = paddle.gather_nd(enc_outputs_class, topk_ind)
        if self.learnt_init_query:
            target = self.tgt_embed.weight.unsqueeze(0).tile([bs, 1, 1])
        else:
            target = paddle.gather_nd(output_memory, topk_ind)
        return target, reference_points_unact, enc_topk_bboxes, enc_topk_logits


class DINOHead(nn.Layer):
    def __init__(self, eval_idx=-1):
        super().__init__()
        self.eval_idx = eval_idx

    def forward(self, out_transformer, body_feats, inputs=None):
        dec_out_bboxes, dec_out_logits = out_transformer[:2]
        return dec_out_bboxes[self.eval_idx], dec_out_logits[self.eval_idx], None


# ---- post_process.py DETRPostProcess (bbox_decode_type 'origin', no masks)

def bbox_cxcywh_to_xyxy(x):
    cxcy, wh = paddle.split(x, 2, axis=-1)
    return paddle.concat([cxcy - 0.5 * wh, cxcy + 0.5 * wh], axis=-1)


class DETRPostProcess:
    def __init__(self, num_classes=80, num_top_queries=100, use_focal_loss=False):
        self.num_classes, self.num_top_queries = num_classes, num_top_queries
        self.use_focal_loss = use_focal_loss

    def __call__(self, head_out, im_shape, scale_factor, pad_shape):
        bboxes, logits, masks = head_out
        bbox_pred = bbox_cxcywh_to_xyxy(bboxes)
        origin_shape = floor(im_shape / scale_factor + 0.5)
        img_h, img_w = paddle.split(origin_shape, 2, axis=-1)
        out_shape = origin_shape.flip(1).tile([1, 2]).unsqueeze(1)
        bbox_pred *= out_shape
        scores = sigmoid(logits) if self.use_focal_loss else F.softmax(logits)[:, :, :-1]
        if not self.use_focal_loss:
            scores, labels = scores.max(-1), scores.argmax(-1)
            if scores.shape[1] > self.num_top_queries:
                scores, index = paddle.topk(scores, self.num_top_queries, axis=-1)
                batch_ind = paddle.arange(end=scores.shape[0]).unsqueeze(-1).tile(
                    [1, self.num_top_queries])
                index = paddle.stack([batch_ind, index], axis=-1)
                labels = paddle.gather_nd(labels, index)
                bbox_pred = paddle.gather_nd(bbox_pred, index)
        else:
            scores, index = paddle.topk(scores.flatten(1), self.num_top_queries, axis=-1)
            labels = index % self.num_classes
            index = index // self.num_classes
            batch_ind = paddle.arange(end=scores.shape[0]).unsqueeze(-1).tile(
                [1, self.num_top_queries])
            index = paddle.stack([batch_ind, index], axis=-1)
            bbox_pred = paddle.gather_nd(bbox_pred, index)
        bbox_pred = paddle.concat([labels.unsqueeze(-1).astype("float32"), scores.unsqueeze(-1),
                                   bbox_pred], axis=-1)
        bbox_num = paddle.to_tensor(self.num_top_queries, dtype="int32").tile(
            [bbox_pred.shape[0]])
        bbox_pred = bbox_pred.reshape([-1, 6])
        return bbox_pred, bbox_num, None


# ---- architectures/detr.py

class DETR(nn.Layer):
    def __init__(self, backbone, transformer, detr_head, neck, post_process):
        super().__init__()
        self.backbone, self.transformer, self.detr_head = backbone, transformer, detr_head
        self.neck, self.post_process = neck, post_process

    def forward(self, inputs):
        self.inputs = inputs
        body_feats = self.backbone(self.inputs)
        body_feats = self.neck(body_feats)
        out_transformer = self.transformer(body_feats, None, self.inputs)
        preds = self.detr_head(out_transformer, body_feats)
        bbox, bbox_num, _ = self.post_process(preds, self.inputs["im_shape"],
                                              self.inputs["scale_factor"],
                                              self.inputs["image"][2:].shape)
        return {"bbox": bbox, "bbox_num": bbox_num}


def build(cfg=TINY):
    backbone = PPHGNetV2(cfg["stem_channels"], cfg["stage_config"])
    d = cfg["hidden_dim"]
    layer = TransformerLayer(d, cfg["nhead"], cfg["dim_feedforward"], "gelu")
    neck = HybridEncoder([backbone._out_channels[i] for i in backbone.return_idx],
                         hidden_dim=d, encoder_layer=layer, depth_mult=cfg["depth_mult"],
                         eval_size=cfg["eval_size"])
    transformer = RTDETRTransformer(
        cfg["num_classes"], d, cfg["num_queries"], [d, d, d], num_levels=cfg["num_levels"],
        nhead=cfg["nhead"], num_decoder_layers=cfg["num_decoder_layers"],
        dim_feedforward=cfg["dim_feedforward"], eval_size=cfg["eval_size"])
    post = DETRPostProcess(cfg["num_classes"], cfg["num_top_queries"], use_focal_loss=True)
    return DETR(backbone, transformer, DINOHead(), neck, post)


def randomize(layer, seed=0):
    """Every parameter and BN statistic random (seeded); weights ~ 1/sqrt(fan-in) so the
    activations stay O(1) through the attention layers."""
    rng = np.random.RandomState(seed)
    for name, tensor in layer.state_dict().items():
        shape = list(tensor.shape)
        if len(shape) >= 2:
            fan_in = int(np.prod(shape[1:])) if len(shape) == 4 else shape[0]
            value = rng.uniform(-1, 1, shape) * np.sqrt(3.0 / fan_in)
        elif name.endswith("_variance") or (name.endswith(".weight") and "norm" in name):
            value = rng.uniform(0.5, 1.5, shape)
        else:
            value = rng.uniform(-0.3, 0.3, shape)
        tensor.set_value(value.astype(tensor.numpy().dtype))
    layer.eval()
    return layer


class _ImageOnly(nn.Layer):
    """The network on an image alone (im_shape / scale_factor of an unscaled input), for
    calibrate_batchnorm."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        shape = paddle.to_tensor([[float(x.shape[2]), float(x.shape[3])]] * x.shape[0])
        return self.model({"image": x, "im_shape": shape, "scale_factor": paddle.ones_like(shape)})


def realistic(model, cfg, seed=0):
    """Random weights, then every BN's statistics from its own input on a noise page (each
    perturbed), as a trained network's: without it the random stem flattens the page to a
    near-constant map and every query scores alike (fp32 ties in the top-k)."""
    randomize(model, seed)
    h, w = cfg["eval_size"]
    page = np.random.RandomState(seed + 7).uniform(0, 1, (1, 3, h, w)).astype(np.float32)
    calibrate_batchnorm(_ImageOnly(model), page, seed=seed)
    model.eval()
    return model


def export(out, fmt, cfg=TINY):
    paddle.seed(0)
    model = realistic(build(cfg), cfg)
    h, w = cfg["eval_size"]
    spec = [{"image": paddle.static.InputSpec([None, 3, h, w], "float32", "image"),
             "im_shape": paddle.static.InputSpec([None, 2], "float32", "im_shape"),
             "scale_factor": paddle.static.InputSpec([None, 2], "float32", "scale_factor")}]
    paddle.jit.save(model, os.path.join(out, "inference"), input_spec=spec)
    if fmt == "pir":
        train = os.path.join(os.path.dirname(out), "train")
        os.makedirs(train, exist_ok=True)
        paddle.save(model.state_dict(), os.path.join(train, "best_accuracy.pdparams"))


if __name__ == "__main__":
    export(sys.argv[1], sys.argv[2])
