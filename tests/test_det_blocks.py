"""Op-level tests of the PP-OCR mobile det blocks against paddle layers written after
PaddleOCR's rec_lcnetv3.py / db_fpn.py / det_db_head.py, on random weights."""

import numpy as np
import paddle
import paddle.nn as pnn
import paddle.nn.functional as PF

from paddle_ref import load_into, max_diff, randomize, scaled_diff
from ptocr.models.backbones.pplcnetv3 import LearnableRepLayer, LCNetV3Block
from ptocr.models.heads.det_db_head import DBHead
from ptocr.models.necks.db_fpn import RSEFPN, DBFPN
from paddle_ref import PaddleLAB, PaddleSE
from paddle_twins_east_pse_dbpp import DBHeadBranch as PaddleDBHeadBranch  # det_db_head.py Head

RNG = np.random.RandomState(1)


class PaddleConvBN(pnn.Layer):
    def __init__(self, cin, cout, k, stride, groups=1):
        super().__init__()
        self.conv = pnn.Conv2D(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias_attr=False)
        self.bn = pnn.BatchNorm2D(cout)

    def forward(self, x):
        return self.bn(self.conv(x))


class PaddleAct(pnn.Layer):
    def __init__(self):
        super().__init__()
        self.act = pnn.Hardswish()
        self.lab = PaddleLAB()

    def forward(self, x):
        return self.lab(self.act(x))


class PaddleRepLayer(pnn.Layer):
    """Training form: identity BN + k×k branches + 1×1 branch, affine, activation."""

    def __init__(self, cin, cout, k, stride, groups, branches):
        super().__init__()
        self.stride = stride
        self.identity = pnn.BatchNorm2D(cin) if cin == cout and stride == 1 else None
        self.conv_kxk = pnn.LayerList(
            [PaddleConvBN(cin, cout, k, stride, groups) for _ in range(branches)])
        self.conv_1x1 = PaddleConvBN(cin, cout, 1, stride, groups) if k > 1 else None
        self.lab = PaddleLAB()
        self.act = PaddleAct()

    def forward(self, x):
        out = 0
        if self.identity is not None:
            out += self.identity(x)
        if self.conv_1x1 is not None:
            out += self.conv_1x1(x)
        for conv in self.conv_kxk:
            out += conv(x)
        out = self.lab(out)
        return self.act(out) if self.stride != 2 else out


def test_rep_layer_training_form_and_reparameterized():
    for cin, cout, k, stride, groups in [(8, 8, 3, 1, 8), (8, 8, 5, 2, 8), (8, 16, 1, 1, 1)]:
        ref = randomize(PaddleRepLayer(cin, cout, k, stride, groups, 4), seed=k + stride)
        ours = LearnableRepLayer(cin, cout, k, stride, groups, num_conv_branches=4)
        # stride-2 layers: paddle holds activation params the network never uses
        load_into(ours, ref)
        x = RNG.uniform(-2, 2, (2, cin, 9, 11)).astype(np.float32)
        assert max_diff(ref, ours, x) < 1e-5
        ours.reparameterize()
        assert hasattr(ours, "reparam_conv") and not hasattr(ours, "conv_kxk")
        assert max_diff(ref, ours, x) < 1e-5


class PaddleRSELayer(pnn.Layer):
    def __init__(self, cin, cout, k, shortcut=True):
        super().__init__()
        self.in_conv = pnn.Conv2D(cin, cout, k, padding=k // 2, bias_attr=False)
        self.se_block = PaddleSE(cout, 0.2)
        self.shortcut = shortcut

    def forward(self, x):
        x = self.in_conv(x)
        return x + self.se_block(x) if self.shortcut else self.se_block(x)


def _pyramid(lateral, output, xs):
    ins = [lateral[i](xs[i]) for i in (3, 2, 1, 0)][::-1]
    up = lambda t, s: PF.upsample(t, scale_factor=s, mode="nearest", align_mode=1)
    out4 = ins[2] + up(ins[3], 2)
    out3 = ins[1] + up(out4, 2)
    out2 = ins[0] + up(out3, 2)
    p = [output[3](ins[3]), output[2](out4), output[1](out3), output[0](out2)]
    return paddle.concat([up(p[0], 8), up(p[1], 4), up(p[2], 2), p[3]], axis=1)


class PaddleRSEFPN(pnn.Layer):
    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.ins_conv = pnn.LayerList([PaddleRSELayer(c, out_channels, 1) for c in in_channels])
        self.inp_conv = pnn.LayerList(
            [PaddleRSELayer(out_channels, out_channels // 4, 3) for _ in in_channels])

    def forward(self, xs):
        return _pyramid(self.ins_conv, self.inp_conv, xs)


class PaddleDBFPN(pnn.Layer):
    def __init__(self, in_channels, out_channels):
        super().__init__()
        for i, c in zip((2, 3, 4, 5), in_channels):
            setattr(self, f"in{i}_conv", pnn.Conv2D(c, out_channels, 1, bias_attr=False))
            setattr(self, f"p{i}_conv",
                    pnn.Conv2D(out_channels, out_channels // 4, 3, padding=1, bias_attr=False))

    def forward(self, xs):
        lat = [getattr(self, f"in{i}_conv") for i in (2, 3, 4, 5)]
        out = [getattr(self, f"p{i}_conv") for i in (2, 3, 4, 5)]
        return _pyramid(lat, out, xs)


def _levels(channels, size=32):
    return [RNG.uniform(-1, 1, (1, c, size >> i, size >> i)).astype(np.float32)
            for i, c in enumerate(channels)]


def _neck_diff(ref, ours, xs):
    import torch

    with torch.inference_mode():
        out = ours([torch.from_numpy(x) for x in xs]).numpy()
    return scaled_diff(ref([paddle.to_tensor(x) for x in xs]).numpy(), out)


def test_rsefpn_matches_paddle():
    channels = [12, 18, 42, 360]
    ref = randomize(PaddleRSEFPN(channels, 32))
    ours = load_into(RSEFPN(channels, 32), ref)
    assert _neck_diff(ref, ours, _levels(channels)) < 1e-5


def test_dbfpn_matches_paddle():
    channels = [16, 24, 56, 480]
    ref = randomize(PaddleDBFPN(channels, 64))
    ours = load_into(DBFPN(channels, 64), ref)
    assert _neck_diff(ref, ours, _levels(channels)) < 1e-5


class PaddleDBHead(pnn.Layer):
    def __init__(self, c):
        super().__init__()
        self.binarize = PaddleDBHeadBranch(c)
        self.thresh = PaddleDBHeadBranch(c)

    def forward(self, x):
        return self.binarize(x)  # eval: shrink maps only


def test_db_head_matches_paddle_with_training_branch():
    ref = randomize(PaddleDBHead(32))
    ours = load_into(DBHead(32, with_thresh=True), ref)
    x = RNG.uniform(-1, 1, (2, 32, 10, 12)).astype(np.float32)
    assert max_diff(ref, ours, x) < 1e-5
    ours.train()
    import torch

    out = ours(torch.from_numpy(x))
    assert out.shape == (2, 3, 40, 48)  # shrink, threshold, binary maps as Paddle trains


def test_lcnetv3_block_with_se():
    block = LCNetV3Block(16, 32, 1, 5, use_se=True, conv_kxk_num=2)
    assert block.se is not None and block.dw_conv.act is not None
