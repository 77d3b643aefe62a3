"""MultiHead after PaddleOCR's heads/rec_multi_head.py.

For inference PaddleOCR runs only the CTC branch (SVTR/rnn encoder + CTCHead), and that is
what this module holds; the training-only sequence head (NRTR or SAR) of training
checkpoints is declared in the mapping tables' ignore rules.
"""

from torch import nn

from ..necks.rnn import SequenceEncoder
from ..registry import register
from .rec_ctc_head import CTCHead


@register("Head")
class MultiHead(nn.Module):
    def __init__(self, in_channels, out_channels_list=None, head_list=None, out_channels=None,
                 use_pool=False, **_):
        super().__init__()
        heads = {next(iter(h)): next(iter(h.values())) for h in head_list or []}
        if "CTCHead" not in heads:
            raise ValueError("MultiHead without a CTCHead has no inference branch")
        ctc = heads["CTCHead"]
        neck = dict(ctc.get("Neck") or {"name": "reshape"})
        self.use_pool = use_pool
        if use_pool:
            self.pool = nn.AvgPool2d(kernel_size=[3, 2], stride=[3, 2])
        self.in_channels = in_channels
        self.ctc_encoder = SequenceEncoder(in_channels, encoder_type=neck.pop("name"), **neck)
        n_classes = out_channels or (out_channels_list or {}).get("CTCLabelDecode")
        if not n_classes:
            raise ValueError("MultiHead needs the number of CTC classes "
                             "(out_channels_list.CTCLabelDecode)")
        self.ctc_head = CTCHead(self.ctc_encoder.out_channels, n_classes,
                                **(ctc.get("Head") or {}))
        self.out_channels = n_classes

    def forward(self, x):
        if self.use_pool:
            n = x.shape[0]
            x = self.pool(x.reshape(n, 3, -1, self.in_channels).permute(0, 3, 1, 2))
        return self.ctc_head(self.ctc_encoder(x))
