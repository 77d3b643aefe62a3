"""MultiHead after PaddleOCR's heads/rec_multi_head.py.

For inference PaddleOCR runs only the CTC branch (SVTR/rnn encoder + CTCHead), and that is
what this module holds by default; the training-only sequence head of training checkpoints
is then declared in the mapping tables' ignore rules. With ``full_head`` (``ptocr convert
--full-head``) the NRTR branch is built too, for fine-tuning; training-mode forward then
returns Paddle's dict of branch outputs.
"""

from torch import nn

from ..necks.rnn import SequenceEncoder
from ..registry import register
from .rec_ctc_head import CTCHead
from .rec_nrtr_head import build_gtc_branch


@register("Head")
class MultiHead(nn.Module):
    def __init__(self, in_channels, out_channels_list=None, head_list=None, out_channels=None,
                 use_pool=False, use_pos=False, full_head=False, **_):
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
        self.before_gtc = self.gtc_head = None
        if full_head:
            if "NRTRHead" not in heads:
                raise ValueError(f"--full-head supports the NRTR branch; this MultiHead has "
                                 f"{', '.join(h for h in heads if h != 'CTCHead')}")
            gtc_classes = (out_channels_list or {}).get("NRTRLabelDecode")
            if not gtc_classes:
                raise ValueError("the NRTR branch needs out_channels_list.NRTRLabelDecode")
            self.before_gtc, self.gtc_head = build_gtc_branch(
                in_channels, gtc_classes, use_pos=use_pos, **heads["NRTRHead"])

    def forward(self, x, targets=None):
        if self.use_pool:
            n = x.shape[0]
            x = self.pool(x.reshape(n, 3, -1, self.in_channels).permute(0, 3, 1, 2))
        neck = self.ctc_encoder(x)
        ctc = self.ctc_head(neck)
        if not self.training or self.gtc_head is None:
            return ctc
        return {"ctc": ctc, "ctc_neck": neck,
                "nrtr": self.gtc_head(self.before_gtc(x), targets[1:] if targets else None)}
