"""SDMGR's visual backbone after PaddleOCR's backbones/kie_unet_sdmgr.py: a small UNet
(five conv-BN-ReLU encoders, four decoders that upsample ×2 and fuse the skip) over the whole
image, then RoIAlign of every text box on its full-resolution output, max-pooled to one
16-d feature per box.

PaddleOCR's Kie_backbone takes the data loader's whole batch; ours takes the entries it
reads, in KeepKeys order without the training labels: ``[image, relations, texts, points,
tag, shape]`` (tag = [box count, longest text], shape = [resized h, w]). Like Paddle it
crops the padded image to the resized size and each sample's relations/texts/boxes to its
own counts, and hands ``[relations, texts, box features]`` to the head.
"""

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import register
from ..roi_align import roi_align


def _pair(module, cin, cout, k, idx):
    """Register conv{idx} and bn{idx} on ``module`` (Paddle's flat names)."""
    setattr(module, f"conv{idx}", nn.Conv2d(cin, cout, k, 1, k // 2, bias=False))
    setattr(module, f"bn{idx}", nn.BatchNorm2d(cout))


def _cbr(module, idx, x):
    return F.relu(getattr(module, f"bn{idx}")(getattr(module, f"conv{idx}")(x)))


class Encoder(nn.Module):
    def __init__(self, num_channels, num_filters):
        super().__init__()
        _pair(self, num_channels, num_filters, 3, 1)
        _pair(self, num_filters, num_filters, 3, 2)
        self.pool = nn.MaxPool2d(3, 2, 1)

    def forward(self, x):
        x = _cbr(self, 2, _cbr(self, 1, x))
        return x, self.pool(x)


class Decoder(nn.Module):
    """1×1 conv-BN-ReLU on the deeper map, ×2 bilinear (half-pixel), concat after the skip,
    two 3×3 conv-BN-ReLU."""

    def __init__(self, num_channels, num_filters):
        super().__init__()
        _pair(self, num_channels, num_filters, 3, 1)
        _pair(self, num_filters, num_filters, 3, 2)
        _pair(self, num_channels, num_filters, 1, 0)

    def forward(self, inputs_prev, inputs):
        x = F.interpolate(_cbr(self, 0, inputs), scale_factor=2, mode="bilinear",
                          align_corners=False)
        x = torch.cat([inputs_prev, x], 1)
        return _cbr(self, 2, _cbr(self, 1, x))


class UNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.down1 = Encoder(3, 16)
        self.down2 = Encoder(16, 32)
        self.down3 = Encoder(32, 64)
        self.down4 = Encoder(64, 128)
        self.down5 = Encoder(128, 256)
        self.up1 = Decoder(32, 16)
        self.up2 = Decoder(64, 32)
        self.up3 = Decoder(128, 64)
        self.up4 = Decoder(256, 128)
        self.out_channels = 16

    def forward(self, x):
        # as Paddle: each level after the first works on the previous level's pooled map,
        # and the skips are the pooled maps too (only down1's is full resolution)
        x1, _ = self.down1(x)
        _, x2 = self.down2(x1)
        _, x3 = self.down3(x2)
        _, x4 = self.down4(x3)
        _, x5 = self.down5(x4)
        x = self.up4(x4, x5)
        x = self.up3(x3, x)
        x = self.up2(x2, x)
        return self.up1(x1, x)


@register("Backbone")
class Kie_backbone(nn.Module):  # noqa: N801 (PaddleOCR's class name)
    takes_all_inputs = True  # BaseModel hands it every input (models/__init__.py)

    def __init__(self, in_channels=3, **_):
        super().__init__()
        self.out_channels = 16
        self.img_feat = UNet()
        self.maxpool = nn.MaxPool2d(7)

    def pre_process(self, img, relations, texts, boxes, tag, img_size):
        # Paddle makes these float32 tensors; ours take the weights' dtype (float64 checks)
        dtype = self.img_feat.down1.conv1.weight.dtype
        h, w = int(img_size[:, 0].max()), int(img_size[:, 1].max())
        rels, txts, bxs = [], [], []
        for i, (num, text_len) in enumerate(tag.long().tolist()):
            rels.append(relations[i, :num, :num].to(dtype))
            txts.append(texts[i, :num, :text_len].to(dtype))
            bxs.append(boxes[i, :num].to(dtype))
        return img[:, :, :h, :w].to(dtype), rels, txts, bxs

    def forward(self, inputs):
        img, relations, texts, boxes, tag, img_size = inputs
        img, relations, texts, boxes = self.pre_process(img, relations, texts, boxes, tag,
                                                        img_size)
        x = self.img_feat(img)
        # aligned=False: PaddleOCR trained SDMGR with paddle.fluid.layers.roi_align, whose op
        # attribute `aligned` is False (today's source passes the fluid keywords to
        # paddle.vision.ops.roi_align, which does not accept them)
        feats = roi_align(x, torch.cat(boxes), [len(b) for b in boxes], 7, spatial_scale=1.0,
                          sampling_ratio=-1, aligned=False)
        return [relations, texts, self.maxpool(feats).flatten(1)]
