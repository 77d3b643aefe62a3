"""FCENet's neck after PaddleOCR's necks/fce_fpn.py (PaddleDetection's FPN): 1x1 lateral
convs, nearest x2 top-down adds, a 3x3 output conv per level; optional extra levels (max
pool, or strided convs from c5/p5). Plain convs with bias unless ``norm_type`` asks for a
conv + norm (ConvNormLayer)."""

import torch.nn.functional as F
from torch import nn

from ..layers import batch_norm, upsample_nearest
from ..registry import register


class ConvNormLayer(nn.Module):
    """conv (no bias) -> BN or GroupNorm; PaddleDetection's names ``conv`` and ``norm``."""

    def __init__(self, ch_in, ch_out, filter_size, stride, norm_type="bn", norm_groups=32):
        super().__init__()
        self.conv = nn.Conv2d(ch_in, ch_out, filter_size, stride, (filter_size - 1) // 2,
                              bias=False)
        self.norm = (nn.GroupNorm(norm_groups, ch_out) if norm_type == "gn"
                     else batch_norm(ch_out))

    def forward(self, x):
        return self.norm(self.conv(x))


@register("Neck", "FCEFPN")
class FCEFPN(nn.Module):
    def __init__(self, in_channels, out_channels, has_extra_convs=False, extra_stage=1,
                 use_c5=True, norm_type=None, relu_before_extra_convs=True, **_):
        super().__init__()
        self.out_channels = out_channels
        self.has_extra_convs, self.extra_stage = has_extra_convs, extra_stage
        self.use_c5, self.relu_before_extra_convs = use_c5, relu_before_extra_convs
        if not has_extra_convs and extra_stage > 1:
            raise ValueError("FCEFPN: extra_stage must be at most 1 without extra convs")

        def conv(cin, k, stride=1):
            if norm_type is not None:
                return ConvNormLayer(cin, out_channels, k, stride, norm_type)
            return nn.Conv2d(cin, out_channels, k, stride, (k - 1) // 2)

        # levels named after ResNet stages: in_channels end at res5
        st = 4 - len(in_channels)
        self.lateral_names, self.fpn_names = [], []
        for i, cin in enumerate(in_channels, start=st):
            name = "fpn_inner_res5_sum" if i == 3 else f"fpn_inner_res{i + 2}_sum_lateral"
            self.add_module(name, conv(cin, 1))
            self.lateral_names.append(name)
        for i in range(st, st + len(in_channels)):
            self.add_module(f"fpn_res{i + 2}_sum", conv(out_channels, 3))
            self.fpn_names.append(f"fpn_res{i + 2}_sum")
        if has_extra_convs:
            for i in range(extra_stage):
                lvl = st + len(in_channels) + i
                cin = in_channels[-1] if i == 0 and use_c5 else out_channels
                self.add_module(f"fpn_{lvl + 2}", conv(cin, 3, 2))
                self.fpn_names.append(f"fpn_{lvl + 2}")

    def forward(self, feats):
        laterals = [getattr(self, n)(f) for n, f in zip(self.lateral_names, feats)]
        for lvl in range(len(laterals) - 1, 0, -1):
            laterals[lvl - 1] = laterals[lvl - 1] + upsample_nearest(laterals[lvl], 2)
        outs = [getattr(self, n)(x) for n, x in zip(self.fpn_names, laterals)]
        if self.extra_stage > 0:
            if not self.has_extra_convs:
                outs.append(F.max_pool2d(outs[-1], 1, stride=2))
            else:
                outs.append(getattr(self, self.fpn_names[len(feats)])(
                    feats[-1] if self.use_c5 else outs[-1]))
                for i in range(1, self.extra_stage):
                    x = outs[-1].relu() if self.relu_before_extra_convs else outs[-1]
                    outs.append(getattr(self, self.fpn_names[len(feats) + i])(x))
        return outs
