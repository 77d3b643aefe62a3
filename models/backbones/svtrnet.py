"""SVTRNet after PaddleOCR's backbones/rec_svtrnet.py: patch embedding by strided convs, three
stages of Local/Global/Conv mixing blocks with patch merging between them, and a last stage
that pools the token grid to ``out_char_num`` columns for CTC. ViTSTR (backbones/rec_vitstr.py)
is built from the same PatchEmbed and blocks, as in PaddleOCR. The blocks are the SVTR blocks
of necks/rnn.py (the same ones PaddleOCR's SVTR neck imports)."""

import torch
from torch import nn

from ..layers import DownscaleInInferDropout
from ..necks.rnn import Block, SVTRConvBN
from ..registry import register


class PatchEmbed(nn.Module):
    """Image -> token sequence. 'pope': sub_num stride-2 conv-BN-GELU layers (SVTRNet; names
    proj.0, proj.1, ...); 'linear': one patch_size-strided conv from a single channel
    (ViTSTR; PaddleOCR hard-codes its input channel to 1)."""

    def __init__(self, img_size, in_channels, embed_dim, sub_num=2, patch_size=(4, 4),
                 mode="pope"):
        super().__init__()
        self.img_size = list(img_size)
        if mode == "linear":
            self.proj = nn.Conv2d(1, embed_dim, tuple(patch_size), tuple(patch_size))
            self.num_patches = (img_size[0] // patch_size[0]) * (img_size[1] // patch_size[1])
            return
        if sub_num not in (2, 3):
            raise ValueError(f"SVTRNet patch embedding supports sub_num 2 or 3, not {sub_num}")
        widths = [embed_dim // 2 ** (sub_num - 1 - i) for i in range(sub_num)]
        chans = [in_channels] + widths
        self.proj = nn.Sequential(*(SVTRConvBN(chans[i], chans[i + 1], 3, 1, "gelu", stride=2,
                                               bias=True) for i in range(sub_num)))
        self.num_patches = (img_size[0] // 2 ** sub_num) * (img_size[1] // 2 ** sub_num)

    def forward(self, x):
        if list(x.shape[2:]) != self.img_size:
            raise ValueError(f"input is {tuple(x.shape[2:])}, the model needs "
                             f"{tuple(self.img_size)}")
        return self.proj(x).flatten(2).transpose(1, 2)


class SubSample(nn.Module):
    """Patch merging: halve the token grid's height (stride [2, 1]) and change the width of
    the embedding, by a conv or by (avg + max pool) / 2 and a linear; then LayerNorm."""

    def __init__(self, in_channels, out_channels, types="Pool", stride=(2, 1)):
        super().__init__()
        self.types = types
        if types == "Pool":
            # Paddle's AvgPool2D is exclusive by default: padding is not counted
            self.avgpool = nn.AvgPool2d((3, 5), tuple(stride), (1, 2), count_include_pad=False)
            self.maxpool = nn.MaxPool2d((3, 5), tuple(stride), (1, 2))
            self.proj = nn.Linear(in_channels, out_channels)
        else:
            self.conv = nn.Conv2d(in_channels, out_channels, 3, tuple(stride), 1)
        self.norm = nn.LayerNorm(out_channels)  # Paddle's default epsilon 1e-5

    def forward(self, x):
        if self.types == "Pool":
            x = (self.avgpool(x) + self.maxpool(x)) * 0.5
            out = self.proj(x.flatten(2).transpose(1, 2))
        else:
            out = self.conv(x).flatten(2).transpose(1, 2)
        return self.norm(out)


def _act_name(act):
    return act.split(".")[-1] if isinstance(act, str) else act  # 'nn.GELU' -> 'GELU'


@register("Backbone")
class SVTRNet(nn.Module):
    def __init__(self, img_size=(32, 100), in_channels=3, embed_dim=(64, 128, 256),
                 depth=(3, 6, 3), num_heads=(2, 4, 8), mixer=("Local",) * 6 + ("Global",) * 6,
                 local_mixer=((7, 11), (7, 11), (7, 11)), patch_merging="Conv", mlp_ratio=4,
                 qkv_bias=True, qk_scale=None, last_drop=0.1, norm_layer="nn.LayerNorm",
                 epsilon=1e-6, out_channels=192, out_char_num=25, block_unit="Block",
                 act="nn.GELU", last_stage=True, sub_num=2, prenorm=True, use_lenhead=False,
                 **_training_only):
        super().__init__()
        if block_unit != "Block" or norm_layer != "nn.LayerNorm":
            raise ValueError(f"SVTRNet with block_unit={block_unit!r}, norm_layer="
                             f"{norm_layer!r} is not supported (Block, nn.LayerNorm)")
        if use_lenhead:
            raise ValueError("SVTRNet use_lenhead (a training-time length head) is not supported")
        self.img_size, self.embed_dim = list(img_size), list(embed_dim)
        self.out_channels = out_channels
        self.prenorm, self.last_stage = prenorm, last_stage
        self.patch_merging = patch_merging if patch_merging in ("Conv", "Pool") else None
        self.patch_embed = PatchEmbed(img_size, in_channels, embed_dim[0], sub_num)
        self.HW = [img_size[0] // 2 ** sub_num, img_size[1] // 2 ** sub_num]
        self.pos_embed = nn.Parameter(torch.zeros(1, self.HW[0] * self.HW[1], embed_dim[0]))
        mixer, act = list(mixer), _act_name(act)
        grids = [self.HW, [self.HW[0] // 2, self.HW[1]], [self.HW[0] // 4, self.HW[1]]]
        if self.patch_merging is None:
            grids = [self.HW] * 3
        start = 0
        for stage in range(3):
            blocks = nn.ModuleList(
                Block(embed_dim[stage], num_heads[stage], mlp_ratio, qkv_bias, qk_scale, act,
                      epsilon, prenorm, mixer[start + i], local_mixer[stage], grids[stage])
                for i in range(depth[stage]))
            setattr(self, f"blocks{stage + 1}", blocks)
            start += depth[stage]
            if stage < 2 and self.patch_merging is not None:
                setattr(self, f"sub_sample{stage + 1}",
                        SubSample(embed_dim[stage], embed_dim[stage + 1], self.patch_merging))
        self.grids = grids
        if last_stage:
            self.avg_pool = nn.AdaptiveAvgPool2d((1, out_char_num))
            self.last_conv = nn.Conv2d(embed_dim[2], out_channels, 1, bias=False)
            self.hardswish = nn.Hardswish()
            self.dropout = DownscaleInInferDropout(last_drop)
        else:
            self.out_channels = embed_dim[2]
        if not prenorm:
            self.norm = nn.LayerNorm(embed_dim[-1], eps=epsilon)

    @staticmethod
    def _grid(x, hw):
        n, _, c = x.shape
        return x.transpose(1, 2).reshape(n, c, *hw)

    def forward_features(self, x):
        x = self.patch_embed(x) + self.pos_embed
        for stage in range(3):
            for blk in getattr(self, f"blocks{stage + 1}"):
                x = blk(x)
            if stage < 2 and self.patch_merging is not None:
                x = getattr(self, f"sub_sample{stage + 1}")(self._grid(x, self.grids[stage]))
        return x if self.prenorm else self.norm(x)

    def forward(self, x):
        x = self.forward_features(x)
        if not self.last_stage:
            return x
        x = self.avg_pool(self._grid(x, self.grids[2]))
        return self.dropout(self.hardswish(self.last_conv(x)))


SCALE_DIM_HEADS = {"tiny": (192, 3), "small": (384, 6), "base": (768, 12)}


@register("Backbone")
class ViTSTR(nn.Module):
    """ViTSTR after PaddleOCR's backbones/rec_vitstr.py: linear patch embedding, a class token,
    post-norm SVTR blocks with Global attention, final LayerNorm; the first ``seqlen`` tokens
    as an N×C×1×seqlen map for the CTC-style head."""

    def __init__(self, img_size=(224, 224), in_channels=1, scale="tiny", seqlen=27,
                 patch_size=(16, 16), embed_dim=None, depth=12, num_heads=None, mlp_ratio=4,
                 qkv_bias=True, qk_scale=None, norm_layer="nn.LayerNorm", act_layer="nn.GELU",
                 epsilon=1e-6, out_channels=None, **_training_only):
        super().__init__()
        if norm_layer != "nn.LayerNorm":
            raise ValueError(f"ViTSTR norm_layer {norm_layer!r} is not supported")
        embed_dim = embed_dim or SCALE_DIM_HEADS[scale][0]
        num_heads = num_heads or SCALE_DIM_HEADS[scale][1]
        self.seqlen = seqlen
        self.patch_embed = PatchEmbed(img_size, in_channels, embed_dim, patch_size=patch_size,
                                      mode="linear")
        self.pos_embed = nn.Parameter(torch.zeros(1, self.patch_embed.num_patches + 1, embed_dim))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, mlp_ratio, qkv_bias, qk_scale, _act_name(act_layer),
                  epsilon, prenorm=False) for _ in range(depth))
        self.norm = nn.LayerNorm(embed_dim, eps=epsilon)
        self.out_channels = out_channels or embed_dim

    def forward(self, x):
        x = self.patch_embed(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        for blk in self.blocks:
            x = blk(x)
        x = self.norm(x)[:, : self.seqlen]
        return x.transpose(1, 2).unsqueeze(2)
