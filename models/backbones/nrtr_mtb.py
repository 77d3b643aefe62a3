"""NRTR's modality-transform block after PaddleOCR's backbones/rec_nrtr_mtb.py: two stride-2
conv -> ReLU -> BN layers (note: BN after the activation), then the W columns of the map as a
sequence of H*C features."""

from torch import nn

from ..layers import batch_norm
from ..registry import register


@register("Backbone")
class MTB(nn.Module):
    def __init__(self, cnn_num=2, in_channels=1, **_):
        super().__init__()
        if cnn_num != 2:
            # PaddleOCR builds no layers for other values (the block is then the identity)
            raise ValueError(f"MTB supports cnn_num 2, not {cnn_num}")
        self.block = nn.Sequential()
        chans = [in_channels, 32, 64]
        for i in range(cnn_num):
            self.block.add_module(f"conv_{i}", nn.Conv2d(chans[i], chans[i + 1], 3, 2, 1))
            self.block.add_module(f"relu_{i}", nn.ReLU())
            self.block.add_module(f"bn_{i}", batch_norm(chans[i + 1]))
        self.out_channels = in_channels  # as PaddleOCR declares it (the head ignores it)

    def forward(self, images):
        x = self.block(images).permute(0, 3, 2, 1)  # N, W, H, C
        return x.reshape(x.shape[0], x.shape[1], -1)
