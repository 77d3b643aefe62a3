"""LayoutXLM and LayoutLMv2 for key information extraction, after PaddleNLP's
transformers/layoutxlm/modeling.py and layoutlmv2/modeling.py (the network; LayoutLMv2's is
LayoutXLM's code under another name, with fused q/k/v and relative position biases switched on by
its configuration) inside PaddleOCR's backbones/vqa_layoutlm.py (the wrappers
``LayoutXLMForSer`` / ``LayoutXLMForRe`` / ``LayoutLMv2ForSer`` / ``LayoutLMv2ForRe`` that hold
it as ``.model``). Module tree and parameter names are PaddleNLP's, so
``backbone.model.layoutxlm.encoder.layer.0.attention.self.query.weight`` maps 1:1.

Inputs, as PaddleOCR's export feeds them (a list, or the tensors as separate arguments):
SER ``[input_ids, bbox, attention_mask, token_type_ids(, image)]``, RE the same followed by
``entities, relations``. ``bbox`` holds token boxes normalised to 0..1000. LayoutXLM and
LayoutLMv2 (``use_visual_backbone: True``) take the page image [B, 3, 224, 224] (see
vqa_visual_backbone.py): its pooled ResNeXt-FPN features, projected to the hidden size, are
the 7x7 visual tokens appended to the text. VI-LayoutXLM (``use_visual_backbone: False``)
takes no image; the visual tokens are still appended (position + layout + visual segment
embeddings) but masked out as attention keys, as in PaddleNLP.

The wrappers take PaddleOCR's Backbone config (``mode``, ``num_classes``, ``pretrained`` and
``checkpoints`` are accepted; the last two only say where Paddle loads weights from) plus any
PaddleNLP config key (``hidden_size``, ``num_hidden_layers``, ...) overriding the pretrained
configuration ``mode`` names."""

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..layers import PaddleEmbedding, PaddleMultiHeadAttention
from ..registry import register
from .vqa_visual_backbone import VisualBackbone

# PaddleNLP 2.8.1 layoutxlm/configuration.py, LAYOUTXLM_PRETRAINED_INIT_CONFIGURATION
# ("layoutxlm-base-uncased"; "vi-layoutxlm-base-uncased" only adds use_visual_backbone False)
LAYOUTXLM_BASE = dict(
    vocab_size=250002, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
    intermediate_size=3072, hidden_act="gelu", max_position_embeddings=514,
    max_2d_position_embeddings=1024, coordinate_size=128, type_vocab_size=1,
    layer_norm_eps=1e-5, fast_qkv=False, has_relative_attention_bias=False, rel_pos_bins=32,
    max_rel_pos=128, has_spatial_attention_bias=False, rel_2d_pos_bins=64, max_rel_2d_pos=256,
    has_visual_segment_embedding=True, image_feature_pool_shape=[7, 7, 256],
    use_visual_backbone=True)
PRETRAINED = {"base": LAYOUTXLM_BASE, "vi": {**LAYOUTXLM_BASE, "use_visual_backbone": False}}
# PaddleNLP 2.8.1 layoutlmv2/configuration.py ("layoutlmv2-base-uncased"; the vi- variant only
# adds use_visual_backbone False)
LAYOUTLMV2_BASE = dict(
    LAYOUTXLM_BASE, vocab_size=30522, max_position_embeddings=512, type_vocab_size=2,
    layer_norm_eps=1e-12, fast_qkv=True, has_relative_attention_bias=True,
    has_spatial_attention_bias=True, has_visual_segment_embedding=False)
PRETRAINED_V2 = {"base": LAYOUTLMV2_BASE,
                 "vi": {**LAYOUTLMV2_BASE, "use_visual_backbone": False}}
# PaddleNLP's masking value for attention keys outside the mask
MASKED = -1e10


def relative_position_bucket(relative_position, bidirectional=True, num_buckets=32,
                             max_distance=128):
    """T5-style buckets: exact for small distances, logarithmic up to max_distance (the log
    in float32, as PaddleNLP casts)."""
    ret = torch.zeros_like(relative_position)
    if bidirectional:
        num_buckets //= 2
        ret = ret + (relative_position > 0).long() * num_buckets
        n = relative_position.abs()
    else:
        n = torch.clamp(-relative_position, min=0)
    max_exact = num_buckets // 2
    is_small = n < max_exact
    large = max_exact + (torch.log(n.float() / max_exact) / math.log(max_distance / max_exact)
                         * (num_buckets - max_exact)).long()
    large = torch.clamp(large, max=num_buckets - 1)
    return ret + torch.where(is_small, n, large)


class LayoutXLMEmbeddings(nn.Module):
    """Word, 1-D position, 2-D layout (x0, y0, x1, y1, h, w) and token type embeddings."""

    def __init__(self, cfg):
        super().__init__()
        hidden, coord = cfg["hidden_size"], cfg["coordinate_size"]
        # PaddleNLP builds the word table with padding_idx=0: token 0 (<s>) embeds as zeros
        self.word_embeddings = PaddleEmbedding(cfg["vocab_size"], hidden, padding_idx=0)
        self.position_embeddings = nn.Embedding(cfg["max_position_embeddings"], hidden)
        n2d = cfg["max_2d_position_embeddings"]
        self.x_position_embeddings = nn.Embedding(n2d, coord)
        self.y_position_embeddings = nn.Embedding(n2d, coord)
        self.h_position_embeddings = nn.Embedding(n2d, coord)
        self.w_position_embeddings = nn.Embedding(n2d, coord)
        self.token_type_embeddings = nn.Embedding(cfg["type_vocab_size"], hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=cfg["layer_norm_eps"])
        # arange, a constant the Paddle program and checkpoint store as a tensor
        self.register_buffer("position_ids", torch.arange(cfg["max_position_embeddings"])[None],
                             persistent=False)

    paddle_constants = ("position_ids",)

    def spatial(self, bbox):
        if bbox.numel() and (int(bbox.min()) < 0 or int(bbox.max()) >= self.x_position_embeddings.num_embeddings):
            raise ValueError("bbox coordinates must lie in 0..1000")
        return torch.cat([
            self.x_position_embeddings(bbox[:, :, 0]), self.y_position_embeddings(bbox[:, :, 1]),
            self.x_position_embeddings(bbox[:, :, 2]), self.y_position_embeddings(bbox[:, :, 3]),
            self.h_position_embeddings(bbox[:, :, 3] - bbox[:, :, 1]),
            self.w_position_embeddings(bbox[:, :, 2] - bbox[:, :, 0])], dim=-1)


class LayoutXLMSelfAttention(nn.Module):
    """q, k, v projections: three linears, or with ``fast_qkv`` (LayoutLMv2) one bias-free
    linear to 3 x hidden split in that order plus separate q and v biases (k has none)."""

    def __init__(self, cfg):
        super().__init__()
        hidden = cfg["hidden_size"]
        self.num_heads = cfg["num_attention_heads"]
        self.head_size = hidden // self.num_heads
        self.fast_qkv = cfg["fast_qkv"]
        if self.fast_qkv:
            self.qkv_linear = nn.Linear(hidden, 3 * hidden, bias=False)
            self.q_bias = nn.Parameter(torch.zeros(1, 1, hidden))
            self.v_bias = nn.Parameter(torch.zeros(1, 1, hidden))
        else:
            self.query = nn.Linear(hidden, hidden)
            self.key = nn.Linear(hidden, hidden)
            self.value = nn.Linear(hidden, hidden)

    def qkv(self, x):
        if self.fast_qkv:
            q, k, v = self.qkv_linear(x).chunk(3, dim=-1)
            return q + self.q_bias, k, v + self.v_bias
        return self.query(x), self.key(x), self.value(x)

    def _heads(self, x):
        b, n, _ = x.shape
        return x.reshape(b, n, self.num_heads, self.head_size).transpose(1, 2)

    def forward(self, x, masked, rel_pos=None):
        q, k, v = (self._heads(t) for t in self.qkv(x))
        q = q / math.sqrt(self.head_size)
        scores = q @ k.transpose(-1, -2)
        if rel_pos is not None:
            scores = scores + rel_pos
        # PaddleNLP replaces (not adds to) the scores of masked keys
        scores = scores.masked_fill(masked, MASKED)
        ctx = torch.softmax(scores, dim=-1) @ v
        return ctx.transpose(1, 2).flatten(2)


class LayoutXLMSelfOutput(nn.Module):
    """dense, then LayerNorm of (output + residual); also the FFN's output (LayoutXLMOutput)."""

    def __init__(self, cfg, in_size=None):
        super().__init__()
        self.dense = nn.Linear(in_size or cfg["hidden_size"], cfg["hidden_size"])
        self.LayerNorm = nn.LayerNorm(cfg["hidden_size"], eps=cfg["layer_norm_eps"])

    def forward(self, x, residual):
        return self.LayerNorm(self.dense(x) + residual)


class LayoutXLMAttention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.self = LayoutXLMSelfAttention(cfg)
        self.output = LayoutXLMSelfOutput(cfg)

    def forward(self, x, masked, rel_pos=None):
        return self.output(self.self(x, masked, rel_pos), x)


class LayoutXLMIntermediate(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        if cfg["hidden_act"] != "gelu":
            raise ValueError(f"LayoutXLM supports hidden_act gelu, not {cfg['hidden_act']!r}")
        self.dense = nn.Linear(cfg["hidden_size"], cfg["intermediate_size"])

    def forward(self, x):
        return F.gelu(self.dense(x))  # exact erf GELU, paddle.nn.GELU's default


class LayoutXLMLayer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.attention = LayoutXLMAttention(cfg)
        self.intermediate = LayoutXLMIntermediate(cfg)
        self.output = LayoutXLMSelfOutput(cfg, cfg["intermediate_size"])

    def forward(self, x, masked, rel_pos=None):
        x = self.attention(x, masked, rel_pos)
        return self.output(self.intermediate(x), x)


class LayoutXLMEncoder(nn.Module):
    """Post-norm layers with optional 1-D and 2-D relative position biases (one-hot bucket
    -> linear, one bias per head), shared by every layer."""

    def __init__(self, cfg):
        super().__init__()
        self.layer = nn.ModuleList(LayoutXLMLayer(cfg) for _ in range(cfg["num_hidden_layers"]))
        heads = cfg["num_attention_heads"]
        self.rel_1d = cfg["has_relative_attention_bias"]
        self.rel_2d = cfg["has_spatial_attention_bias"]
        self.rel_pos_bins, self.max_rel_pos = cfg["rel_pos_bins"], cfg["max_rel_pos"]
        self.rel_2d_pos_bins, self.max_rel_2d_pos = cfg["rel_2d_pos_bins"], cfg["max_rel_2d_pos"]
        if self.rel_1d:
            self.rel_pos_bias = nn.Linear(self.rel_pos_bins, heads, bias=False)
        if self.rel_2d:
            self.rel_pos_x_bias = nn.Linear(self.rel_2d_pos_bins, heads, bias=False)
            self.rel_pos_y_bias = nn.Linear(self.rel_2d_pos_bins, heads, bias=False)

    def _bias(self, linear, coords, bins, max_distance, dtype):
        rel = coords.unsqueeze(-2) - coords.unsqueeze(-1)
        bucket = relative_position_bucket(rel, num_buckets=bins, max_distance=max_distance)
        return linear(F.one_hot(bucket, bins).to(dtype)).permute(0, 3, 1, 2)

    def forward(self, x, masked, bbox, position_ids):
        rel_pos = None
        if self.rel_1d:
            rel_pos = self._bias(self.rel_pos_bias, position_ids, self.rel_pos_bins,
                                 self.max_rel_pos, x.dtype)
        if self.rel_2d:
            rel_2d = (self._bias(self.rel_pos_x_bias, bbox[:, :, 0], self.rel_2d_pos_bins,
                                 self.max_rel_2d_pos, x.dtype)
                      + self._bias(self.rel_pos_y_bias, bbox[:, :, 3], self.rel_2d_pos_bins,
                                   self.max_rel_2d_pos, x.dtype))
            rel_pos = rel_2d if rel_pos is None else rel_pos + rel_2d
        hidden = []
        for layer in self.layer:
            x = layer(x, masked, rel_pos)
            hidden.append(x)
        return x, hidden


class LayoutXLMModel(nn.Module):
    """Text tokens followed by pool_h x pool_w visual tokens through one encoder. The pooler
    PaddleNLP also builds feeds no output of the SER/RE models (exports prune it), so it is
    not held (``paddle_unused``). ``visual_backbone`` (a dict of VisualBackbone's arguments,
    PaddleNLP's visual_backbone.yaml by default) sizes the image branch."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        hidden = cfg["hidden_size"]
        self.use_visual_backbone = bool(cfg["use_visual_backbone"])
        self.embeddings = LayoutXLMEmbeddings(cfg)
        if self.use_visual_backbone:
            # image_feature_pool_shape[2], which PaddleNLP asserts equal to the FPN's channels,
            # is taken from the backbone (whose size the weights show)
            self.visual = VisualBackbone(cfg["image_feature_pool_shape"][:2],
                                         **(cfg.get("visual_backbone") or {}))
            self.visual_proj = nn.Linear(self.visual.out_channels, hidden)
        if cfg["has_visual_segment_embedding"]:
            self.visual_segment_embedding = nn.Parameter(torch.zeros(hidden))
        self.visual_LayerNorm = nn.LayerNorm(hidden, eps=cfg["layer_norm_eps"])
        self.encoder = LayoutXLMEncoder(cfg)

    def paddle_unused(self):
        return ["pooler.dense.weight", "pooler.dense.bias"]

    def visual_bbox(self, batch, device):
        """The pool_h x pool_w grid's cells as 0..1000 boxes, row-major."""
        ph, pw = self.cfg["image_feature_pool_shape"][:2]
        xs = torch.arange(0, 1000 * (pw + 1), 1000, device=device) // pw
        ys = torch.arange(0, 1000 * (ph + 1), 1000, device=device) // ph
        grid = torch.stack([xs[:-1].expand(ph, pw), ys[:-1, None].expand(ph, pw),
                            xs[1:].expand(ph, pw), ys[1:, None].expand(ph, pw)], dim=-1)
        return grid.reshape(1, ph * pw, 4).expand(batch, -1, -1)

    def forward(self, input_ids, bbox, attention_mask, token_type_ids, image=None):
        if self.use_visual_backbone and image is None:
            raise ValueError("this model takes the page image as its fifth input")
        batch, seq = input_ids.shape
        emb = self.embeddings
        position_ids = emb.position_ids[:, :seq].expand(batch, seq)
        visual_bbox = self.visual_bbox(batch, input_ids.device)
        n_visual = visual_bbox.shape[1]
        visual_position_ids = torch.arange(n_visual, device=input_ids.device).expand(batch, -1)

        words = emb.word_embeddings(input_ids)
        text = (words + emb.position_embeddings(position_ids)
                + emb.spatial(bbox) + emb.token_type_embeddings(token_type_ids))
        text = emb.LayerNorm(text)
        visual = emb.position_embeddings(visual_position_ids) + emb.spatial(visual_bbox)
        if self.use_visual_backbone:
            visual = self.visual_proj(self.visual(image)) + visual
        if hasattr(self, "visual_segment_embedding"):
            visual = visual + self.visual_segment_embedding
        visual = self.visual_LayerNorm(visual)

        # keys outside attention_mask are masked; without the visual backbone, every visual one
        seen = torch.full((batch, n_visual), float(self.use_visual_backbone), dtype=text.dtype,
                          device=text.device)
        keep = torch.cat([attention_mask.to(text.dtype), seen], 1)
        masked = (keep == 0)[:, None, None, :]
        return self.encoder(torch.cat([text, visual], 1), masked,
                            torch.cat([bbox, visual_bbox], 1),
                            torch.cat([position_ids, visual_position_ids], 1))


def _config(mode, overrides, pretrained=None, family="LayoutXLM"):
    pretrained = pretrained or PRETRAINED
    if mode not in pretrained:
        raise ValueError(f"{family} mode {mode!r}: PaddleOCR knows {', '.join(pretrained)}")
    cfg = dict(pretrained[mode], visual_backbone=None)
    unknown = set(overrides) - set(cfg)
    if unknown:
        raise ValueError(f"unknown {family} config keys: {', '.join(sorted(unknown))}")
    cfg.update(overrides)
    return cfg


def _split(x, more):
    """PaddleOCR passes the inputs as one list; verifiers may pass them one by one."""
    return list(x) + list(more) if isinstance(x, (list, tuple)) else [x, *more]


class LayoutXLMForTokenClassification(nn.Module):
    """Also LayoutLMv2ForTokenClassification: the encoder is held as ``layoutlmv2`` there."""

    def __init__(self, cfg, num_classes, base="layoutxlm"):
        super().__init__()
        self.base = base
        setattr(self, base, LayoutXLMModel(cfg))
        self.classifier = nn.Linear(cfg["hidden_size"], num_classes)

    def forward(self, input_ids, bbox, attention_mask, token_type_ids, image=None):
        seq = input_ids.shape[1]
        hidden, _ = getattr(self, self.base)(input_ids, bbox, attention_mask, token_type_ids,
                                             image)
        return self.classifier(hidden[:, :seq])


@register("Backbone")
class LayoutXLMForSer(nn.Module):
    """Semantic entity recognition: per-token class logits [batch, seq, num_classes] (the
    one output of PaddleOCR's SER export)."""

    PRETRAINED, BASE, FAMILY = PRETRAINED, "layoutxlm", "LayoutXLM"

    def __init__(self, num_classes=7, mode="base", pretrained=True, checkpoints=None,
                 in_channels=None, **config):
        super().__init__()
        cfg = _config(mode, config, self.PRETRAINED, self.FAMILY)
        self.use_visual_backbone = cfg["use_visual_backbone"]
        self.model = LayoutXLMForTokenClassification(cfg, num_classes, self.BASE)
        self.out_channels = 1

    def forward(self, x, *more):
        x = _split(x, more)
        image = x[4] if self.use_visual_backbone else None
        return self.model(x[0], x[1], x[2], x[3], image)


@register("Backbone")
class LayoutLMv2ForSer(LayoutXLMForSer):
    PRETRAINED, BASE, FAMILY = PRETRAINED_V2, "layoutlmv2", "LayoutLMv2"


class BiaffineAttention(nn.Module):
    """bilinear(x1, x2) (no bias) + linear([x1, x2])."""

    def __init__(self, in_features, out_features):
        super().__init__()
        self.bilinear = nn.Bilinear(in_features, in_features, out_features, bias=False)
        self.linear = nn.Linear(2 * in_features, out_features)

    def forward(self, x1, x2):
        return self.bilinear(x1, x2) + self.linear(torch.cat([x1, x2], -1))


def _projection(hidden):
    # indices 0 and 3 hold the weights, as in PaddleNLP's Sequential (dropouts at 2 and 5)
    return nn.Sequential(nn.Linear(hidden * 2, hidden), nn.ReLU(), nn.Identity(),
                         nn.Linear(hidden, hidden // 2), nn.ReLU(), nn.Identity())


class REDecoder(nn.Module):
    """Relation extraction over SER entities. ``entities`` [B, N, 3]: row 0 holds the counts,
    rows 1.. (start token, end token, label: 0 header, 1 question, 2 answer); ``relations``
    [B, M, 2]: row 0 the counts, rows 1.. known (head, tail) pairs (none at inference). Every
    (question, answer) pair is scored; the output lists the pairs predicted as linked, each as
    a 7x2 block (head id; head start, end; head label; tail id; tail start, end; tail label;
    1), block 0 holding the count — PaddleNLP's layout, which VQAReTokenLayoutLMPostProcess
    reads."""

    def __init__(self, hidden_size):
        super().__init__()
        self.entity_emb = nn.Embedding(3, hidden_size)
        self.ffnn_head = _projection(hidden_size)
        self.ffnn_tail = _projection(hidden_size)
        self.rel_classifier = BiaffineAttention(hidden_size // 2, 2)

    @staticmethod
    def build_relation(relations, entities):
        """Candidate pairs per document: the known (positive) pairs first, then every other
        question x answer pair; labels 1 / 0. As PaddleNLP's build_relation (entities of a
        document with at most 2 entities are replaced by a placeholder)."""
        batch, n = entities.shape[:2]
        entities = entities.clone()
        new = torch.full((batch, n * n, 3), -1, dtype=relations.dtype)
        for b in range(batch):
            if entities[b, 0, 0] <= 2:
                placeholder = torch.full((512, 3), -1, dtype=entities.dtype)
                placeholder[0, :] = 2
                placeholder[1:3, 0] = 0
                placeholder[1:3, 1] = 1
                placeholder[1:3, 2] = 0
                entities[b] = placeholder
            count = int(entities[b, 0, 2])
            labels = entities[b, 1:count + 1, 2]
            ids = torch.arange(count, dtype=entities.dtype)
            heads, tails = ids[labels == 1], ids[labels == 2]
            candidates = torch.stack(torch.meshgrid(heads, tails, indexing="ij"), 2).reshape(-1, 2)
            if len(candidates) == 0:
                raise ValueError("relation extraction needs at least one question and one "
                                 "answer entity")
            positive = torch.stack([relations[b, 1:int(relations[b, 0, 0]) + 1, 0],
                                    relations[b, 1:int(relations[b, 0, 1]) + 1, 1]], 1)
            match = (candidates[:, None, :] == positive[None, :, :]).all(2)
            negative = candidates[~match.any(1)]
            positive = positive[match.any(0)]
            ordered = torch.cat([positive, negative]) if len(negative) else positive
            label = torch.zeros(len(ordered), 1, dtype=ordered.dtype)
            label[:len(positive)] = 1
            per_doc = torch.cat([ordered, label], 1)
            new[b, 0] = len(per_doc)
            new[b, 1:len(per_doc) + 1] = per_doc
        return new, entities

    def forward(self, hidden_states, entities, relations):
        batch, n = entities.shape[:2]
        relations, entities = self.build_relation(relations, entities)
        loss = hidden_states.new_zeros(())
        out = torch.full((batch, n * n, 7, 2), -1, dtype=entities.dtype)
        for b in range(batch):
            rel = relations[b, 1:int(relations[b, 0, 0]) + 1]
            head_ids, tail_ids, rel_labels = rel[:, 0], rel[:, 1], rel[:, 2]
            ent = entities[b]
            starts = ent[1:int(ent[0, 0]) + 1, 0]
            labels = ent[1:int(ent[0, 2]) + 1, 2]
            head = torch.cat([hidden_states[b][starts[head_ids]],
                              self.entity_emb(labels[head_ids])], -1)
            tail = torch.cat([hidden_states[b][starts[tail_ids]],
                              self.entity_emb(labels[tail_ids])], -1)
            logits = self.rel_classifier(self.ffnn_head(head), self.ffnn_tail(tail))
            loss = loss + F.cross_entropy(logits, rel_labels)
            linked = [i for i, p in enumerate(logits.argmax(-1).tolist()) if p == 1]
            if linked:
                out[b, 0] = len(linked)
                for k, i in enumerate(linked, 1):
                    h, t = int(head_ids[i]), int(tail_ids[i])
                    block = torch.full((7, 2), -1, dtype=entities.dtype)
                    block[0, 0], block[1] = h, ent[h + 1, :2]
                    block[2, 0], block[3, 0] = ent[h + 1, 2], t
                    block[4], block[5, 0], block[6, 0] = ent[t + 1, :2], ent[t + 1, 2], 1
                    out[b, k] = block
        return loss, out


class LayoutXLMForRelationExtraction(nn.Module):
    def __init__(self, cfg, base="layoutxlm"):
        super().__init__()
        self.base = base
        setattr(self, base, LayoutXLMModel(cfg))
        self.extractor = REDecoder(cfg["hidden_size"])

    def forward(self, input_ids, bbox, attention_mask, token_type_ids, entities, relations,
                image=None):
        seq = input_ids.shape[1]
        hidden, layers = getattr(self, self.base)(input_ids, bbox, attention_mask,
                                                  token_type_ids, image)
        loss, pred_relations = self.extractor(hidden[:, :seq], entities, relations)
        # PaddleOCR's RE export returns its dict's values in key order
        return {"hidden_states": torch.stack(layers, 1), "loss": loss,
                "pred_relations": pred_relations}


@register("Backbone")
class LayoutXLMForRe(nn.Module):
    """Relation extraction: {hidden_states [B, layers, seq + visual, hidden], loss,
    pred_relations [B, N*N, 7, 2]} (see REDecoder). Inputs as PaddleOCR's wrapper takes them:
    the image (when the model has the visual backbone) between token_type_ids and entities."""

    PRETRAINED, BASE, FAMILY = PRETRAINED, "layoutxlm", "LayoutXLM"

    def __init__(self, mode="base", pretrained=True, checkpoints=None, in_channels=None,
                 num_classes=None, **config):
        super().__init__()
        cfg = _config(mode, config, self.PRETRAINED, self.FAMILY)
        self.use_visual_backbone = cfg["use_visual_backbone"]
        self.model = LayoutXLMForRelationExtraction(cfg, self.BASE)
        self.out_channels = 1

    def forward(self, x, *more):
        x = _split(x, more)
        image = x[4] if self.use_visual_backbone else None
        return self.model(x[0], x[1], x[2], x[3], x[-2], x[-1], image)


@register("Backbone")
class LayoutLMv2ForRe(LayoutXLMForRe):
    """PaddleNLP 2.8.1's LayoutLMv2ForRelationExtraction keeps an older decoder that takes
    entities and relations as lists of dicts (PaddleOCR's tensor inputs cannot reach it, and
    PaddleOCR publishes no RE LayoutLMv2 export); its parameters and arithmetic are LayoutXLM's,
    so the converted model takes PaddleOCR's tensor inputs and returns LayoutXLMForRe's
    outputs, which the KIE pipeline reads. The dict decoder lists the linked pairs in Python set
    order; the pairs themselves are the same (tests/test_kie_visual.py)."""

    PRETRAINED, BASE, FAMILY = PRETRAINED_V2, "layoutlmv2", "LayoutLMv2"


# ---- LayoutLM (PaddleNLP transformers/layoutlm/modeling.py): text + 2-D layout, no image ----

# PaddleNLP 2.8.1 layoutlm/configuration.py, "layoutlm-base-uncased"
LAYOUTLM_BASE = dict(
    vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
    intermediate_size=3072, hidden_act="gelu", max_position_embeddings=512,
    max_2d_position_embeddings=1024, layer_norm_eps=1e-12, pad_token_id=0, type_vocab_size=2)


class LayoutLMEmbeddings(nn.Module):
    """Word + position + x0 + y0 + x1 + y1 + h + w + token type embeddings (all of the hidden
    size, summed), LayerNorm."""

    def __init__(self, cfg):
        super().__init__()
        hidden, n2d = cfg["hidden_size"], cfg["max_2d_position_embeddings"]
        self.word_embeddings = PaddleEmbedding(cfg["vocab_size"], hidden,
                                               padding_idx=cfg["pad_token_id"])
        self.position_embeddings = nn.Embedding(cfg["max_position_embeddings"], hidden)
        self.x_position_embeddings = nn.Embedding(n2d, hidden)
        self.y_position_embeddings = nn.Embedding(n2d, hidden)
        self.h_position_embeddings = nn.Embedding(n2d, hidden)
        self.w_position_embeddings = nn.Embedding(n2d, hidden)
        self.token_type_embeddings = nn.Embedding(cfg["type_vocab_size"], hidden)
        self.layer_norm = nn.LayerNorm(hidden, eps=cfg["layer_norm_eps"])
        # PaddleNLP counts positions with a cumsum (its position_ids buffer, which checkpoints
        # hold, is not read)
        self.register_buffer("position_ids", torch.arange(cfg["max_position_embeddings"])[None],
                             persistent=False)

    def forward(self, input_ids, bbox, token_type_ids):
        if bbox.numel() and (int(bbox.min()) < 0 or
                             int(bbox.max()) >= self.x_position_embeddings.num_embeddings):
            raise ValueError("bbox coordinates must lie in 0..1000")
        x = (self.word_embeddings(input_ids)
             + self.position_embeddings(self.position_ids[:, :input_ids.shape[1]])
             + self.x_position_embeddings(bbox[:, :, 0]) + self.y_position_embeddings(bbox[:, :, 1])
             + self.x_position_embeddings(bbox[:, :, 2]) + self.y_position_embeddings(bbox[:, :, 3])
             + self.h_position_embeddings(bbox[:, :, 3] - bbox[:, :, 1])
             + self.w_position_embeddings(bbox[:, :, 2] - bbox[:, :, 0])
             + self.token_type_embeddings(token_type_ids))
        return self.layer_norm(x)


class TransformerEncoderLayer(nn.Module):
    """paddle.nn.TransformerEncoderLayer, post-norm, GELU (exact). Its LayerNorms get the
    config's epsilon: PaddleNLP's LayoutLM _init_weights sets every LayerNorm's epsilon to
    1e-12 when the model is built (paddle's own default would be 1e-5)."""

    def __init__(self, cfg):
        super().__init__()
        hidden = cfg["hidden_size"]
        self.self_attn = PaddleMultiHeadAttention(hidden, cfg["num_attention_heads"])
        self.linear1 = nn.Linear(hidden, cfg["intermediate_size"])
        self.linear2 = nn.Linear(cfg["intermediate_size"], hidden)
        self.norm1 = nn.LayerNorm(hidden, eps=cfg["layer_norm_eps"])
        self.norm2 = nn.LayerNorm(hidden, eps=cfg["layer_norm_eps"])

    def forward(self, x, mask_bias):
        x = self.norm1(x + self.self_attn(x, x, x, mask_bias))
        return self.norm2(x + self.linear2(F.gelu(self.linear1(x))))


class TransformerEncoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.layers = nn.ModuleList(TransformerEncoderLayer(cfg)
                                    for _ in range(cfg["num_hidden_layers"]))

    def forward(self, x, mask_bias):
        for layer in self.layers:
            x = layer(x, mask_bias)
        return x


class LayoutLMModel(nn.Module):
    """Embeddings then paddle's TransformerEncoder; the pooler feeds no SER output (exports
    prune it): not held."""

    def __init__(self, cfg):
        super().__init__()
        if cfg["hidden_act"] != "gelu":
            raise ValueError(f"LayoutLM supports hidden_act gelu, not {cfg['hidden_act']!r}")
        self.embeddings = LayoutLMEmbeddings(cfg)
        self.encoder = TransformerEncoder(cfg)

    def paddle_unused(self):
        return ["pooler.dense.weight", "pooler.dense.bias"]

    def forward(self, input_ids, bbox, attention_mask, token_type_ids):
        x = self.embeddings(input_ids, bbox, token_type_ids)
        # paddle's int attention mask: 1 attends, 0 is masked by adding (0 - 1) * 1e9
        mask_bias = (attention_mask[:, None, None, :].to(x.dtype) - 1.0) * 1e9
        return self.encoder(x, mask_bias)


class LayoutLMForTokenClassification(nn.Module):
    def __init__(self, cfg, num_classes):
        super().__init__()
        self.layoutlm = LayoutLMModel(cfg)
        self.classifier = nn.Linear(cfg["hidden_size"], num_classes)

    def forward(self, input_ids, bbox, attention_mask, token_type_ids):
        return self.classifier(self.layoutlm(input_ids, bbox, attention_mask, token_type_ids))


@register("Backbone")
class LayoutLMForSer(nn.Module):
    """LayoutLM semantic entity recognition: per-token class logits [batch, seq, num_classes].
    Inputs ``[input_ids, bbox, attention_mask, token_type_ids]`` (no image, as PaddleOCR's
    wrapper)."""

    use_visual_backbone = False

    def __init__(self, num_classes=7, mode="base", pretrained=True, checkpoints=None,
                 in_channels=None, **config):
        super().__init__()
        cfg = _config(mode, config, {"base": LAYOUTLM_BASE}, "LayoutLM")
        cfg.pop("visual_backbone")
        self.model = LayoutLMForTokenClassification(cfg, num_classes)
        self.out_channels = 1

    def forward(self, x, *more):
        x = _split(x, more)
        return self.model(x[0], x[1], x[2], x[3])
