"""MultiHead after PaddleOCR's heads/rec_multi_head.py.

For inference PaddleOCR runs only the CTC branch (SVTR/rnn encoder + CTCHead), and that is
what this module holds by default; the training-only sequence head of training checkpoints
is then declared in the mapping tables' ignore rules. With ``full_head`` (``ptocr convert
--full-head``) the sequence branch is built too (PP-OCRv4/v5: NRTR; PP-OCRv3: SAR), for
fine-tuning; training-mode forward then returns Paddle's dict of branch outputs.

The SAR branch also reads: ``model.head.eval_branch = "sar"`` makes the eval forward
``model(x, valid_ratio)`` return what the SAR head's own export returns (N x 25 x classes
softmax of its fixed decoding loop, valid_ratio as SARRecResizeImg gives it); the default
``"ctc"`` returns the CTC output, the MultiHead program's only output.
"""

from torch import nn

from ..necks.rnn import SequenceEncoder
from ..registry import register
from .rec_ctc_head import CTCHead
from .rec_nrtr_head import build_gtc_branch
from .rec_sar_head import SARHead


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
        self.before_gtc = self.gtc_head = self.sar_head = None
        self.eval_branch = "ctc"
        if full_head and "SARHead" in heads:
            sar_classes = (out_channels_list or {}).get("SARLabelDecode")
            if not sar_classes:
                raise ValueError("the SAR branch needs out_channels_list.SARLabelDecode")
            self.sar_head = SARHead(in_channels, sar_classes, **heads["SARHead"])
        elif full_head:
            if "NRTRHead" not in heads:
                raise ValueError(f"--full-head supports the NRTR and SAR branches; this "
                                 f"MultiHead has {', '.join(h for h in heads if h != 'CTCHead')}")
            gtc_classes = (out_channels_list or {}).get("NRTRLabelDecode")
            if not gtc_classes:
                raise ValueError("the NRTR branch needs out_channels_list.NRTRLabelDecode")
            self.before_gtc, self.gtc_head = build_gtc_branch(
                in_channels, gtc_classes, use_pos=use_pos, **heads["NRTRHead"])

    def forward(self, x, targets=None):
        if self.use_pool:
            n = x.shape[0]
            x = self.pool(x.reshape(n, 3, -1, self.in_channels).permute(0, 3, 1, 2))
        if not self.training and self.eval_branch == "sar":
            if self.sar_head is None:
                raise ValueError("eval_branch 'sar' needs the SAR branch (ptocr convert "
                                 "--full-head of a PP-OCRv3 training checkpoint)")
            return self.sar_head(x, targets)
        neck = self.ctc_encoder(x)
        ctc = self.ctc_head(neck)
        if not self.training or (self.gtc_head is None and self.sar_head is None):
            return ctc
        out = {"ctc": ctc, "ctc_neck": neck}
        if self.sar_head is not None:  # targets: [label_ctc, label_sar, length, valid_ratio]
            out["sar"] = self.sar_head(x, targets[1:])
        else:
            out["nrtr"] = self.gtc_head(self.before_gtc(x), targets[1:] if targets else None)
        return out
