"""ViTParseQ after PaddleOCR's backbones/rec_vit_parseq.py (ParseQ's encoder).

A plain pre-norm ViT: one patch_size-strided conv, a learnt position embedding, ``depth``
blocks (LayerNorm -> self-attention -> residual, LayerNorm -> GELU MLP -> residual), a final
LayerNorm (epsilon 1e-5 throughout); returns the N x patches x embed_dim tokens. PaddleOCR's
VisionTransformer also creates a ``cls_token`` that its forward never uses: declared unused.
"""

import torch
from torch import nn

from ..necks.rnn import Attention, Mlp
from ..registry import register


class Block(nn.Module):
    def __init__(self, dim, num_heads, mlp_ratio=4.0, qkv_bias=False, qk_scale=None,
                 epsilon=1e-5):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=epsilon)
        self.attn = Attention(dim, num_heads, qkv_bias, qk_scale)  # global attention
        self.norm2 = nn.LayerNorm(dim, eps=epsilon)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), "gelu")

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, img_size, patch_size, in_channels, embed_dim):
        super().__init__()
        self.img_size = list(img_size)
        self.proj = nn.Conv2d(in_channels, embed_dim, tuple(patch_size), tuple(patch_size))
        self.num_patches = (img_size[0] // patch_size[0]) * (img_size[1] // patch_size[1])

    def forward(self, x):
        if list(x.shape[2:]) != self.img_size:  # PaddleOCR asserts the same
            raise ValueError(f"input is {tuple(x.shape[2:])}, the model needs "
                             f"{tuple(self.img_size)}")
        return self.proj(x).flatten(2).transpose(1, 2)


@register("Backbone")
class ViTParseQ(nn.Module):
    def __init__(self, img_size=(224, 224), patch_size=(16, 16), in_channels=3, embed_dim=768,
                 depth=12, num_heads=12, mlp_ratio=4.0, qkv_bias=True, **_training_only):
        super().__init__()
        self.patch_embed = PatchEmbed(img_size, patch_size, in_channels, embed_dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, self.patch_embed.num_patches, embed_dim))
        self.blocks = nn.ModuleList(Block(embed_dim, num_heads, mlp_ratio, qkv_bias)
                                    for _ in range(depth))
        self.norm = nn.LayerNorm(embed_dim, eps=1e-5)
        self.out_channels = embed_dim

    def paddle_unused(self):
        return ["cls_token"]

    def forward(self, x):
        x = self.patch_embed(x) + self.pos_embed
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x)

