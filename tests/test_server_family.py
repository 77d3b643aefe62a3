"""Op-level tests of the PP-OCRv4/v5 server blocks (PP-HGNet, PP-HGNetV2, LKPAN with
IntraCL, PFHeadLocal) against paddle layers written here after PaddleOCR's
backbones/rec_hgnet.py, backbones/rec_pphgnetv2.py, necks/db_fpn.py, necks/intracl.py and
heads/det_db_head.py, on random weights copied through the mapping engine; the whole det
models through their real tables; a PIR program paddle saves here, aligned by program order."""

import numpy as np
import paddle
import paddle.nn as pnn
import paddle.nn.functional as PF
import pytest
import torch

from paddle_ref import load_into, max_diff, randomize, scaled_diff
from ptocr.converter import formats
from ptocr.converter.convert import convert
from ptocr.converter.formats import PaddleWeights
from ptocr.converter.mapping import ArchSpec, find_arch
from ptocr.converter.verify import verify
from ptocr.models.backbones import pphgnet as H
from ptocr.models.heads.det_pfhead import PFHeadLocal
from ptocr.models.layers import upsample_nearest
from ptocr.models.necks.db_fpn import LKPAN, IntraCLBlock
from ptocr.models.registry import REGISTRIES
from paddle_ref import PaddleLAB, PaddleModel
# the shared twins: fan-in scaled random weights (paddle_det_twins) and det_db_head.py's Head
from paddle_det_twins import randomize_scaled  # noqa: F401  (tests/paddle_deep_rec imports it here)
from paddle_twins_east_pse_dbpp import DBHeadBranch as PDBHeadBranch

RNG = np.random.RandomState(5)


def rand(*shape):
    return RNG.uniform(-1, 1, shape).astype(np.float32)


# ---- paddle references: rec_hgnet.py / rec_pphgnetv2.py


class PConvBNAct(pnn.Layer):
    """Both versions' ConvBNAct (V1's is V2's with integer padding and no lab)."""

    def __init__(self, cin, cout, kernel_size=3, stride=1, padding=1, groups=1, use_act=True,
                 use_lab=False, **_):
        super().__init__()
        self.use_act, self.use_lab = use_act, use_lab
        k = kernel_size
        self.conv = pnn.Conv2D(cin, cout, k, stride,
                               padding=padding if isinstance(padding, str) else (k - 1) // 2,
                               groups=groups, bias_attr=False)
        self.bn = pnn.BatchNorm2D(cout)
        if use_act:
            self.act = pnn.ReLU()
            if use_lab:
                self.lab = PaddleLAB()

    def forward(self, x):
        x = self.bn(self.conv(x))
        if self.use_act:
            x = self.act(x)
            if self.use_lab:
                x = self.lab(x)
        return x


class PLightConvBNAct(pnn.Layer):
    def __init__(self, cin, cout, kernel_size, use_lab=False, **_):
        super().__init__()
        self.conv1 = PConvBNAct(cin, cout, 1, use_act=False, use_lab=use_lab)
        self.conv2 = PConvBNAct(cout, cout, kernel_size, groups=cout, use_lab=use_lab)

    def forward(self, x):
        return self.conv2(self.conv1(x))


class PESEModule(pnn.Layer):
    def __init__(self, c):
        super().__init__()
        self.avg_pool = pnn.AdaptiveAvgPool2D(1)
        self.conv = pnn.Conv2D(c, c, 1)
        self.sigmoid = pnn.Sigmoid()

    def forward(self, x):
        return paddle.multiply(x, self.sigmoid(self.conv(self.avg_pool(x))))


class PHGBlock(pnn.Layer):
    def __init__(self, cin, mid, cout, layer_num, identity=False):
        super().__init__()
        self.identity = identity
        self.layers = pnn.LayerList(
            [PConvBNAct(cin if i == 0 else mid, mid, 3) for i in range(layer_num)])
        self.aggregation_conv = PConvBNAct(cin + layer_num * mid, cout, 1)
        self.att = PESEModule(cout)

    def forward(self, x):
        outs = [x]
        y = x
        for layer in self.layers:
            y = layer(y)
            outs.append(y)
        y = self.att(self.aggregation_conv(paddle.concat(outs, axis=1)))
        return y + x if self.identity else y


class PHGV2Block(pnn.Layer):
    def __init__(self, cin, mid, cout, kernel_size=3, layer_num=6, identity=False,
                 light_block=True, use_lab=False):
        super().__init__()
        self.identity = identity
        layer = PLightConvBNAct if light_block else PConvBNAct
        self.layers = pnn.LayerList([layer(cin if i == 0 else mid, mid, kernel_size=kernel_size,
                                           use_lab=use_lab) for i in range(layer_num)])
        total = cin + layer_num * mid
        self.aggregation_squeeze_conv = PConvBNAct(total, cout // 2, 1, use_lab=use_lab)
        self.aggregation_excitation_conv = PConvBNAct(cout // 2, cout, 1, use_lab=use_lab)

    def forward(self, x):
        outs = [x]
        y = x
        for layer in self.layers:
            y = layer(y)
            outs.append(y)
        y = self.aggregation_squeeze_conv(paddle.concat(outs, axis=1))
        y = self.aggregation_excitation_conv(y)
        return y + x if self.identity else y


class PHGStage(pnn.Layer):
    """V1 HG_Stage (v2=None) or V2 HGV2_Stage (v2=(light_block, kernel, use_lab))."""

    def __init__(self, cin, mid, cout, block_num, layer_num, downsample=True, stride=2, v2=None):
        super().__init__()
        self.is_downsample = downsample
        use_lab = v2[2] if v2 else False
        if downsample:
            self.downsample = PConvBNAct(cin, cin, 3, stride, groups=cin, use_act=False,
                                         use_lab=use_lab)
        blocks = []
        for i in range(block_num):
            c = cin if i == 0 else cout
            if v2:
                blocks.append(PHGV2Block(c, mid, cout, v2[1], layer_num, i > 0, v2[0], v2[2]))
            else:
                blocks.append(PHGBlock(c, mid, cout, layer_num, i > 0))
        self.blocks = pnn.Sequential(*blocks)

    def forward(self, x):
        if self.is_downsample:
            x = self.downsample(x)
        return self.blocks(x)


class PPHGNet(pnn.Layer):
    def __init__(self, stem_channels, stage_config, layer_num, in_channels=3, det=False):
        super().__init__()
        self.det = det
        chans = [in_channels] + stem_channels
        self.stem = pnn.Sequential(*[PConvBNAct(chans[i], chans[i + 1], 3, 2 if i == 0 else 1)
                                     for i in range(len(chans) - 1)])
        if det:
            self.pool = pnn.MaxPool2D(kernel_size=3, stride=2, padding=1)
        self.stages = pnn.LayerList([PHGStage(*cfg[:3], cfg[3], layer_num, cfg[4], cfg[5])
                                     for cfg in stage_config.values()])

    def forward(self, x):
        x = self.stem(x)
        if self.det:
            x = self.pool(x)
        out = []
        for stage in self.stages:
            x = stage(x)
            out.append(x)
        return out if self.det else PF.avg_pool2d(x, [3, 2])


class PStemBlock(pnn.Layer):
    def __init__(self, cin, mid, cout, use_lab=False, text_rec=False):
        super().__init__()
        self.stem1 = PConvBNAct(cin, mid, 3, 2, use_lab=use_lab)
        self.stem2a = PConvBNAct(mid, mid // 2, 2, 1, "SAME", use_lab=use_lab)
        self.stem2b = PConvBNAct(mid // 2, mid, 2, 1, "SAME", use_lab=use_lab)
        self.stem3 = PConvBNAct(mid * 2, mid, 3, 1 if text_rec else 2, use_lab=use_lab)
        self.stem4 = PConvBNAct(mid, cout, 1, use_lab=use_lab)
        self.pool = pnn.MaxPool2D(kernel_size=2, stride=1, ceil_mode=True, padding="SAME")

    def forward(self, x):
        x = self.stem1(x)
        x2 = self.stem2b(self.stem2a(x))
        x1 = self.pool(x)
        return self.stem4(self.stem3(paddle.concat([x1, x2], 1)))


class PPHGNetV2(pnn.Layer):
    def __init__(self, stage_config, stem_channels, use_lab=False, det=False, text_rec=False,
                 class_expand=2048, class_num=1000):
        super().__init__()
        self.det, self.text_rec = det, text_rec
        self.stem = PStemBlock(*stem_channels, use_lab=use_lab, text_rec=text_rec)
        self.stages = pnn.LayerList()
        for cin, mid, cout, blocks, down, light, k, layers, stride in stage_config.values():
            self.stages.append(PHGStage(cin, mid, cout, blocks, layers, down, stride,
                                        v2=(light, k, use_lab)))
        # PaddleClas's classifier tail, built but never run by PaddleOCR
        self.avg_pool = pnn.AdaptiveAvgPool2D(1)
        self.last_conv = pnn.Conv2D(cout, class_expand, 1, bias_attr=False)
        self.act = pnn.ReLU()
        if use_lab:
            self.lab = PaddleLAB()
        self.flatten = pnn.Flatten(start_axis=1, stop_axis=-1)
        if not det:
            self.fc = pnn.Linear(class_expand, class_num)

    def forward(self, x):
        x = self.stem(x)
        out = []
        for stage in self.stages:
            x = stage(x)
            out.append(x)
        if self.det:
            return out
        return PF.avg_pool2d(x, [3, 2]) if self.text_rec else x


SMALL_DET = {"stage1": [128, 128, 256, 1, False, 2], "stage2": [256, 160, 512, 1, True, 2],
             "stage3": [512, 192, 768, 2, True, 2], "stage4": [768, 224, 1024, 1, True, 2]}
SMALL_REC = {"stage1": [128, 128, 256, 1, True, [2, 1]], "stage2": [256, 160, 512, 1, True, [1, 2]],
             "stage3": [512, 192, 768, 2, True, [2, 1]], "stage4": [768, 224, 1024, 1, True, [2, 1]]}
B4_DET = {"stage1": [48, 48, 128, 1, False, False, 3, 6, 2],
          "stage2": [128, 96, 512, 1, True, False, 3, 6, 2],
          "stage3": [512, 192, 1024, 3, True, True, 5, 6, 2],
          "stage4": [1024, 384, 2048, 1, True, True, 5, 6, 2]}
B4_REC = {"stage1": [48, 48, 128, 1, True, False, 3, 6, [2, 1]],
          "stage2": [128, 96, 512, 1, True, False, 3, 6, [1, 2]],
          "stage3": [512, 192, 1024, 3, True, True, 5, 6, [2, 1]],
          "stage4": [1024, 384, 2048, 1, True, True, 5, 6, [2, 1]]}


def paddle_backbone(name, det=False):
    if name == "PPHGNet_small":
        return PPHGNet([64, 64, 128], SMALL_DET if det else SMALL_REC, 6, det=det)
    return PPHGNetV2(B4_DET if det else B4_REC, [3, 32, 48], det=det, text_rec=not det)


# ---- paddle references: db_fpn.py LKPAN, intracl.py, det_db_head.py PFHeadLocal

class PIntraCLBlock(pnn.Layer):
    def __init__(self, c=96, rf=4):
        super().__init__()
        r = c // rf
        self.conv1x1_reduce_channel = pnn.Conv2D(c, r, 1)
        self.conv1x1_return_channel = pnn.Conv2D(r, c, 1)
        self.v_layer_7x1 = pnn.Conv2D(r, r, (7, 1), padding=(3, 0))
        self.v_layer_5x1 = pnn.Conv2D(r, r, (5, 1), padding=(2, 0))
        self.v_layer_3x1 = pnn.Conv2D(r, r, (3, 1), padding=(1, 0))
        self.q_layer_1x7 = pnn.Conv2D(r, r, (1, 7), padding=(0, 3))
        self.q_layer_1x5 = pnn.Conv2D(r, r, (1, 5), padding=(0, 2))
        self.q_layer_1x3 = pnn.Conv2D(r, r, (1, 3), padding=(0, 1))
        self.c_layer_7x7 = pnn.Conv2D(r, r, 7, padding=3)
        self.c_layer_5x5 = pnn.Conv2D(r, r, 5, padding=2)
        self.c_layer_3x3 = pnn.Conv2D(r, r, 3, padding=1)
        self.bn = pnn.BatchNorm2D(c)
        self.relu = pnn.ReLU()

    def forward(self, x):
        y = self.conv1x1_reduce_channel(x)
        y = self.c_layer_7x7(y) + self.v_layer_7x1(y) + self.q_layer_1x7(y)
        y = self.c_layer_5x5(y) + self.v_layer_5x1(y) + self.q_layer_1x5(y)
        y = self.c_layer_3x3(y) + self.v_layer_3x1(y) + self.q_layer_1x3(y)
        return x + self.relu(self.bn(self.conv1x1_return_channel(y)))


def up(x, s):
    return PF.upsample(x, scale_factor=s, mode="nearest", align_mode=1)


class PLKPAN(pnn.Layer):
    def __init__(self, in_channels, out_channels, intracl=False):
        super().__init__()
        q = out_channels // 4
        self.ins_conv = pnn.LayerList([pnn.Conv2D(c, out_channels, 1, bias_attr=False)
                                       for c in in_channels])
        self.inp_conv = pnn.LayerList([pnn.Conv2D(out_channels, q, 9, padding=4, bias_attr=False)
                                       for _ in in_channels])
        self.pan_head_conv = pnn.LayerList([pnn.Conv2D(q, q, 3, padding=1, stride=2,
                                                       bias_attr=False) for _ in range(3)])
        self.pan_lat_conv = pnn.LayerList([pnn.Conv2D(q, q, 9, padding=4, bias_attr=False)
                                           for _ in in_channels])
        self.intracl = intracl
        if intracl:
            self.incl1, self.incl2, self.incl3, self.incl4 = [PIntraCLBlock(q, 2)
                                                              for _ in range(4)]

    def forward(self, x):
        c2, c3, c4, c5 = x
        in5 = self.ins_conv[3](c5)
        in4 = self.ins_conv[2](c4)
        in3 = self.ins_conv[1](c3)
        in2 = self.ins_conv[0](c2)
        out4 = in4 + up(in5, 2)
        out3 = in3 + up(out4, 2)
        out2 = in2 + up(out3, 2)
        f5 = self.inp_conv[3](in5)
        f4 = self.inp_conv[2](out4)
        f3 = self.inp_conv[1](out3)
        f2 = self.inp_conv[0](out2)
        pan3 = f3 + self.pan_head_conv[0](f2)
        pan4 = f4 + self.pan_head_conv[1](pan3)
        pan5 = f5 + self.pan_head_conv[2](pan4)
        p2 = self.pan_lat_conv[0](f2)
        p3 = self.pan_lat_conv[1](pan3)
        p4 = self.pan_lat_conv[2](pan4)
        p5 = self.pan_lat_conv[3](pan5)
        if self.intracl:
            p5, p4, p3, p2 = self.incl4(p5), self.incl3(p4), self.incl2(p3), self.incl1(p2)
        return paddle.concat([up(p5, 8), up(p4, 4), up(p3, 2), p2], axis=1)


class PLocalModule(pnn.Layer):
    def __init__(self, in_c, mid_c):
        super().__init__()
        self.last_3 = pnn.Sequential()  # det_mobilenet_v3's ConvBNLayer: conv, bn, relu
        self.last_3.add_sublayer("conv", pnn.Conv2D(in_c + 1, mid_c, 3, 1, 1, bias_attr=False))
        self.last_3.add_sublayer("bn", pnn.BatchNorm(mid_c, act=None))
        self.last_3.add_sublayer("relu", pnn.ReLU())
        self.last_1 = pnn.Conv2D(mid_c, 1, 1, 1, 0)

    def forward(self, x, init_map):
        return self.last_1(self.last_3(paddle.concat([init_map, x], axis=1)))


class PPFHeadLocal(pnn.Layer):
    def __init__(self, c, k=50, mode="small"):
        super().__init__()
        self.k = k
        self.binarize = PDBHeadBranch(c)
        self.thresh = PDBHeadBranch(c)
        self.up_conv = pnn.Upsample(scale_factor=2, mode="nearest", align_mode=1)
        self.cbn_layer = PLocalModule(c // 4, c // 4 if mode == "large" else c // 8)

    def forward(self, x):
        shrink, f = self.binarize(x, return_f=True)
        cbn = PF.sigmoid(self.cbn_layer(self.up_conv(f), shrink))
        if not self.training:
            return 0.5 * (shrink + cbn)  # current PaddleOCR: {"maps": this}
        thresh = self.thresh(x)
        binary = paddle.reciprocal(1 + paddle.exp(-self.k * (shrink - thresh)))
        return paddle.concat([cbn, thresh, binary], axis=1)


# ---- framework differences

def test_same_padding_even_kernel_conv_matches_paddle():
    # Paddle's padding="SAME" with a 2x2 kernel pads one pixel after (right/bottom) only
    ref = randomize(PConvBNAct(4, 6, 2, 1, "SAME"), seed=1)
    ours = load_into(H.ConvBNAct(4, 6, 2, 1, "same"), ref)
    for hw in [(7, 9), (8, 8)]:
        x = rand(2, 4, *hw)
        assert ref(paddle.to_tensor(x)).shape[2:] == list(hw)
        assert max_diff(ref, ours, x) < 1e-6


def test_same_padding_max_pool_ignores_the_pad():
    pool = pnn.MaxPool2D(kernel_size=2, stride=1, ceil_mode=True, padding="SAME")
    x = rand(2, 3, 7, 10) - 2.0  # all negative: a zero pad would win at the border
    ref = pool(paddle.to_tensor(x)).numpy()
    out = torch.nn.functional.max_pool2d(
        H.same_pad(torch.from_numpy(x), 2, value=float("-inf")), 2, 1).numpy()
    assert ref.shape == out.shape == (2, 3, 7, 10)
    np.testing.assert_array_equal(ref, out)


def test_det_stem_max_pool_3x3_stride2_pad1():
    x = rand(1, 4, 9, 12) - 2.0
    ref = pnn.MaxPool2D(kernel_size=3, stride=2, padding=1)(paddle.to_tensor(x)).numpy()
    out = torch.nn.MaxPool2d(3, 2, 1)(torch.from_numpy(x)).numpy()
    np.testing.assert_array_equal(ref, out)


@pytest.mark.parametrize("hw", [(5, 7), (8, 8)])
def test_nearest_upsample_layer_and_interpolate_match_paddle(hw):
    # PFHeadLocal's nn.Upsample(scale 2, nearest, align_mode=1) and plain F.interpolate:
    # nearest with an integer scale repeats pixels in both frameworks
    x = rand(2, 3, *hw)
    ours = upsample_nearest(torch.from_numpy(x), 2).numpy()
    layer = pnn.Upsample(scale_factor=2, mode="nearest", align_mode=1)(paddle.to_tensor(x))
    interp = PF.interpolate(paddle.to_tensor(x), scale_factor=2, mode="nearest")
    np.testing.assert_array_equal(layer.numpy(), ours)
    np.testing.assert_array_equal(interp.numpy(), ours)


# ---- HGNet blocks

@pytest.mark.parametrize("use_act,use_lab,stride", [(True, False, 1), (True, True, [2, 1]),
                                                    (False, True, [1, 2])])
def test_conv_bn_act(use_act, use_lab, stride):
    ref = randomize(PConvBNAct(6, 8, 3, stride, use_act=use_act, use_lab=use_lab), seed=2)
    ours = load_into(H.ConvBNAct(6, 8, 3, stride, use_act=use_act, use_lab=use_lab), ref)
    assert max_diff(ref, ours, rand(2, 6, 9, 10)) < 1e-6


@pytest.mark.parametrize("identity", [False, True])
def test_hg_block_v1(identity):
    cin = 16 if identity else 8
    ref = randomize(PHGBlock(cin, 6, 16, 3, identity), seed=3)
    ours = load_into(H.HG_Block(cin, 6, 16, 3, identity), ref)
    assert max_diff(ref, ours, rand(2, cin, 7, 9)) < 1e-5


@pytest.mark.parametrize("stride,down", [([2, 1], True), ([1, 2], True), (2, False)])
def test_hg_stage_v1(stride, down):
    ref = randomize(PHGStage(8, 6, 16, 2, 3, down, stride), seed=4)
    ours = load_into(H.HG_Stage(8, 6, 16, 2, 3, down, stride), ref)
    assert max_diff(ref, ours, rand(1, 8, 8, 10)) < 1e-5


@pytest.mark.parametrize("light,k,use_lab", [(False, 3, False), (True, 5, False), (True, 5, True)])
def test_hgv2_block_and_stage(light, k, use_lab):
    ref = randomize(PHGV2Block(8, 6, 16, k, 3, False, light, use_lab), seed=k)
    ours = load_into(H.HGV2_Block(8, 6, 16, 3, False, k, light, use_lab), ref)
    assert max_diff(ref, ours, rand(2, 8, 7, 9)) < 1e-5
    ref = randomize(PHGStage(8, 6, 16, 2, 3, True, [2, 1], v2=(light, k, use_lab)), seed=6)
    block = lambda *a, **kw: H.HGV2_Block(*a, kernel_size=k, light_block=light,
                                          use_lab=use_lab, **kw)
    ours = load_into(H.HG_Stage(8, 6, 16, 2, 3, True, [2, 1], block, use_lab), ref)
    assert max_diff(ref, ours, rand(1, 8, 8, 10)) < 1e-5


@pytest.mark.parametrize("text_rec,use_lab", [(False, False), (True, False), (False, True)])
def test_hgv2_stem(text_rec, use_lab):
    ref = randomize(PStemBlock(3, 8, 12, use_lab, text_rec), seed=7)
    ours = load_into(H.StemBlock(3, 8, 12, use_lab, text_rec), ref)
    for hw in [(32, 48), (17, 23)]:  # odd sizes exercise the SAME pads
        assert max_diff(ref, ours, rand(2, 3, *hw)) < 1e-5


# ---- whole backbones (the real PPHGNet_small / PPHGNetV2_B4 configs, small inputs)

BACKBONES = [("PPHGNet_small", True, (1, 3, 64, 64)), ("PPHGNet_small", False, (1, 3, 48, 64)),
             ("PPHGNetV2_B4", True, (1, 3, 64, 64)), ("PPHGNetV2_B4", False, (1, 3, 48, 64))]


@pytest.mark.parametrize("name,det,shape", BACKBONES,
                         ids=[f"{n}-{'det' if d else 'rec'}" for n, d, _ in BACKBONES])
def test_whole_backbone_matches_paddle(name, det, shape):
    paddle.seed(0)
    ref = randomize_scaled(paddle_backbone(name, det), seed=8)
    kwargs = {"det": det} if det or name == "PPHGNet_small" else {"text_rec": True}
    ours = REGISTRIES["Backbone"][name](**kwargs)
    load_into(ours, ref)  # PPHGNetV2's unused classifier tail is declared, not held
    x = rand(*shape)
    refs = ref(paddle.to_tensor(x))
    refs = [r.numpy() for r in (refs if det else [refs])]
    with torch.inference_mode():
        outs = ours(torch.from_numpy(x))
    outs = [o.numpy() for o in (outs if det else [outs])]
    if not det:
        assert refs[0].shape[2] == 1  # 48-pixel lines end one row high
    assert [list(o.shape[1:2]) for o in outs] == [[c] for c in np.atleast_1d(ours.out_channels)]
    diffs = [scaled_diff(r, o) for r, o in zip(refs, outs)]
    assert max(diffs) < 1e-5, diffs


# ---- LKPAN, IntraCL, PFHeadLocal

def test_intracl_block():
    ref = randomize_scaled(PIntraCLBlock(16, 2), seed=9)
    ours = load_into(IntraCLBlock(16, 2), ref)
    assert max_diff(ref, ours, rand(2, 16, 11, 13)) < 1e-5


@pytest.mark.parametrize("intracl", [False, True])
def test_lkpan(intracl):
    chans = [8, 16, 24, 32]
    ref = randomize_scaled(PLKPAN(chans, 32, intracl), seed=10)
    ours = load_into(LKPAN(chans, 32, mode="large", intracl=intracl), ref)
    assert hasattr(ours, "incl4") == intracl
    x = [rand(2, c, 16 // 2 ** i, 24 // 2 ** i) for i, c in enumerate(chans)]
    refs = ref([paddle.to_tensor(a) for a in x]).numpy()
    with torch.inference_mode():
        out = ours([torch.from_numpy(a) for a in x]).numpy()
    assert out.shape == (2, 32, 16, 24)
    assert scaled_diff(refs, out) < 1e-5


@pytest.mark.parametrize("mode", ["large", "small"])
def test_pfhead_local_eval_and_training(mode):
    ref = randomize(PPFHeadLocal(32, mode=mode), seed=11)
    ours = load_into(PFHeadLocal(32, mode=mode, with_thresh=True), ref)
    x = rand(2, 32, 6, 10)
    assert max_diff(ref, ours, x) < 1e-5  # eval: 0.5 * (shrink + refined)
    ref_out = ref(paddle.to_tensor(x)).numpy()
    assert ref_out.shape == (2, 1, 24, 40) and 0 <= ref_out.min() and ref_out.max() <= 1
    ref.training = ours.training = True  # the head's own training branch, BN kept in eval
    assert max_diff(ref, ours, x) < 1e-5


# ---- the real tables: whole det models, PaddleOCR's structured names

def paddle_det_model(arch):
    if arch == "PP-OCRv4_server_det":
        backbone = paddle_backbone("PPHGNet_small", det=True)
        chans = [256, 512, 768, 1024]
    else:
        backbone = paddle_backbone("PPHGNetV2_B4", det=True)
        chans = [128, 512, 1024, 2048]
    return PaddleModel(backbone, PLKPAN(chans, 256, intracl=True), PPFHeadLocal(256, mode="large"))


@pytest.mark.parametrize("arch", ["PP-OCRv4_server_det", "PP-OCRv5_server_det"])
def test_whole_det_model_through_its_table(arch):
    paddle.seed(0)
    ref = randomize_scaled(paddle_det_model(arch), seed=12)
    tensors = {k: v.numpy() for k, v in ref.state_dict().items()}
    conv = convert(None, weights=PaddleWeights("pdparams", tensors, True), spec=find_arch(arch))
    assert conv.config["Head"]["with_thresh"] and conv.config["Neck"]["intracl"]
    x = rand(1, 3, 64, 64)
    assert max_diff(ref, conv.model, x) < 1e-5


# ---- a PIR program paddle saves here: no structured names, aligned by program order

TINY_V2 = {"stage1": [8, 8, 16, 1, False, False, 3, 2, 2],
           "stage2": [16, 8, 16, 1, True, False, 3, 2, 2],
           "stage3": [16, 8, 24, 2, True, True, 5, 2, 2],
           "stage4": [24, 8, 32, 1, True, True, 5, 2, 2]}
TINY_V1 = {"stage1": [8, 8, 16, 1, False, 2], "stage2": [16, 8, 16, 1, True, 2],
           "stage3": [16, 8, 24, 2, True, 2], "stage4": [24, 8, 32, 1, True, 2]}
TINY = {
    "TinyHGNetV2": (lambda: PPHGNetV2(TINY_V2, [3, 8, 8], use_lab=True, det=True, class_expand=8),
                    lambda **_: H.PPHGNetV2(TINY_V2, [3, 8, 8], use_lab=True, det=True)),
    "TinyHGNet": (lambda: PPHGNet([8, 8], TINY_V1, 2, det=True),
                  lambda **_: H.PPHGNet([8, 8], TINY_V1, 2, det=True)),
}


@pytest.mark.parametrize("backbone", list(TINY))
def test_pir_program_aligns_by_program_order(backbone, tmp_path):
    paddle_fn, torch_fn = TINY[backbone]
    paddle.seed(1)
    chans = [16, 16, 24, 32]
    model = randomize_scaled(PaddleModel(paddle_fn(), PLKPAN(chans, 16, intracl=True),
                                PPFHeadLocal(16, mode="large")), seed=13)
    spec_in = [paddle.static.InputSpec([None, 3, 64, 64], "float32", "x")]
    paddle.jit.save(model, str(tmp_path / "inference"), input_spec=spec_in)
    REGISTRIES["Backbone"][backbone] = torch_fn
    try:
        spec = ArchSpec(name=backbone, task="det", architecture={
            "model_type": "det", "Backbone": {"name": backbone},
            "Neck": {"name": "LKPAN", "out_channels": 16, "intracl": True},
            "Head": {"name": "PFHeadLocal", "mode": "large"}},
            inputs={"shapes": [[1, 3, 64, 64], [2, 3, 64, 64]]})
        weights = formats.read(tmp_path)
        assert not weights.structured
        conv = convert(None, weights=weights, spec=spec)
        assert conv.report.method == "program order"
        report = verify(weights, conv.model, spec, images=False)
    finally:
        del REGISTRIES["Backbone"][backbone]
    assert report["passed"], report["results"]
    assert max(r["max_abs"] for r in report["results"]) < 1e-5


# ---- the rec tables: PaddleOCR's names (tests/paddle_names) build per-step probabilities

@pytest.mark.parametrize("arch,classes", [("PP-OCRv4_server_rec", 6625),
                                          ("PP-OCRv5_server_rec", 18385)])
def test_rec_tables_give_per_step_probabilities(arch, classes):
    from test_paddle_names import NAMES_DIR, synthetic_weights

    conv = convert(None, weights=synthetic_weights(NAMES_DIR / f"{arch}.txt"),
                   spec=find_arch(arch))
    assert conv.config["Head"]["out_channels_list"]["CTCLabelDecode"] == classes
    assert conv.model.head.gtc_head is None  # the NRTR branch only with --full-head
    # the names files' filler (all in [0, 1)) overflows a deep net: unit-scale values instead
    gen = torch.Generator().manual_seed(0)
    for name, t in conv.model.state_dict().items():
        if t.is_floating_point():
            u = torch.rand(t.shape, generator=gen) * 2 - 1
            if t.ndim >= 2:
                t.copy_(u * (3.0 / t[0].numel()) ** 0.5)
            elif name.endswith(("running_var", "weight")):
                t.copy_(u * 0.5 + 1)
            else:
                t.copy_(u * 0.1)
    with torch.inference_mode():
        out = conv.model(torch.from_numpy(rand(2, 3, 48, 160)))
    assert out.shape == (2, 20, classes)  # width / 8 steps
    assert torch.allclose(out.sum(-1), torch.ones(2, 20), atol=1e-4)
    # --full-head keeps the NRTR branch: then only PPHGNetV2's classifier tail is left over
    full = convert(None, weights=synthetic_weights(NAMES_DIR / f"{arch}.txt"),
                   spec=find_arch(arch), full_head=True)
    assert all(n.startswith(("backbone.last_conv.", "backbone.fc.")) for n in full.report.ignored)
