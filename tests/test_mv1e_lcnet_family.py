"""Op-level tests of MobileNetV1Enhance (PP-OCRv2/v3 recognition backbone) and PaddleClas's
PP-LCNet classifier (PaddleX orientation models) against paddle layers written here after
PaddleOCR's rec_mv1_enhance.py and PaddleClas's pp_lcnet.py, on random weights copied
through the mapping engine (for PP-LCNet: with the real tables' rename rules)."""

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import paddle
import paddle.nn as pnn
import paddle.nn.functional as PF
import pytest
import torch

from paddle_ref import load_into, max_diff, randomize, scaled_diff
from test_paddle_names import NAMES_DIR, synthetic_weights
from ptocr.converter import formats
from ptocr.converter.convert import convert
from ptocr.converter.formats import PaddleWeights
from ptocr.converter.mapping import find_arch
from ptocr.converter.verify import verify
from ptocr.models.backbones.mobilenet_v1_enhance import DepthwiseSeparable, MobileNetV1Enhance
from ptocr.models.backbones.pplcnet import DepthwiseSeparable as LCNetBlock
from ptocr.models.heads.lcnet_cls_head import DropoutDownscaleInInfer
from paddle_ref import PaddleSE

RNG = np.random.RandomState(3)


def rand(*shape):
    return RNG.uniform(-1, 1, shape).astype(np.float32)


# ---- paddle references: MobileNetV1Enhance (PaddleOCR rec_mv1_enhance.py)

class PMV1ConvBN(pnn.Layer):
    def __init__(self, cin, k, cout, stride, padding, groups=1):
        super().__init__()
        self._conv = pnn.Conv2D(cin, cout, k, stride, padding, groups=groups, bias_attr=False)
        self._batch_norm = pnn.BatchNorm(cout, act="hard_swish")  # activation fused in BN

    def forward(self, x):
        return self._batch_norm(self._conv(x))


class PMV1Block(pnn.Layer):
    def __init__(self, cin, f1, f2, groups, stride, scale, dw_size=3, padding=1, use_se=False):
        super().__init__()
        self.use_se = use_se
        self._depthwise_conv = PMV1ConvBN(cin, dw_size, int(f1 * scale), stride, padding,
                                          int(groups * scale))
        if use_se:
            self._se = PaddleSE(int(f1 * scale))
        self._pointwise_conv = PMV1ConvBN(int(f1 * scale), 1, int(f2 * scale), 1, 0)

    def forward(self, x):
        x = self._depthwise_conv(x)
        return self._pointwise_conv(self._se(x) if self.use_se else x)


class PMobileNetV1Enhance(pnn.Layer):
    def __init__(self, scale=0.5, last_conv_stride=1, last_pool_type="max",
                 last_pool_kernel_size=(3, 2)):
        super().__init__()
        s = scale
        self.conv1 = PMV1ConvBN(3, 3, int(32 * s), 2, 1)
        blocks = [PMV1Block(int(32 * s), 32, 64, 32, 1, s),
                  PMV1Block(int(64 * s), 64, 128, 64, 1, s),
                  PMV1Block(int(128 * s), 128, 128, 128, 1, s),
                  PMV1Block(int(128 * s), 128, 256, 128, (2, 1), s),
                  PMV1Block(int(256 * s), 256, 256, 256, 1, s),
                  PMV1Block(int(256 * s), 256, 512, 256, (2, 1), s)]
        blocks += [PMV1Block(int(512 * s), 512, 512, 512, 1, s, 5, 2) for _ in range(5)]
        blocks += [PMV1Block(int(512 * s), 512, 1024, 512, (2, 1), s, 5, 2, True),
                   PMV1Block(int(1024 * s), 1024, 1024, 1024, last_conv_stride, s, 5, 2, True)]
        self.block_list = pnn.Sequential(*blocks)
        if last_pool_type == "avg":
            k = list(last_pool_kernel_size)
            self.pool = pnn.AvgPool2D(kernel_size=k, stride=k, padding=0)
        else:
            self.pool = pnn.MaxPool2D(kernel_size=2, stride=2, padding=0)

    def forward(self, x):
        return self.pool(self.block_list(self.conv1(x)))


@pytest.mark.parametrize("cin,f1,f2,stride,k,use_se", [
    (16, 32, 64, 1, 3, False),
    (64, 128, 256, (2, 1), 3, False),
    (256, 512, 1024, (2, 1), 5, True),
    (512, 1024, 1024, [1, 2], 5, True),
])
def test_mv1e_depthwise_separable(cin, f1, f2, stride, k, use_se):
    ref = randomize(PMV1Block(cin, f1, f2, f1, stride, 0.5, k, k // 2, use_se), seed=k)
    ours = load_into(DepthwiseSeparable(cin, f1, f2, f1, stride, 0.5, k, k // 2, use_se), ref)
    assert (ours._se is not None) == use_se
    assert max_diff(ref, ours, rand(2, cin, 7, 12)) < 1e-5


V3 = dict(scale=0.5, last_conv_stride=[1, 2], last_pool_type="avg", last_pool_kernel_size=[2, 2])


@pytest.mark.parametrize("cfg,shape,out_hw", [
    (V3, (1, 3, 48, 320), (1, 40)),  # PP-OCRv3
    (dict(scale=0.5), (1, 3, 32, 320), (1, 80)),  # PP-OCRv2
])
def test_mv1e_backbone_matches_paddle(cfg, shape, out_hw):
    ref = randomize(PMobileNetV1Enhance(**cfg), seed=11)
    ours = load_into(MobileNetV1Enhance(**cfg), ref)
    x = rand(*shape)
    ref_out = ref(paddle.to_tensor(x)).numpy()
    assert ref_out.shape[2:] == out_hw and np.abs(ref_out).max() > 0.1  # not a vanished signal
    assert max_diff(ref, ours, x) < 1e-5


def test_avg_pool_2x2_drops_the_third_row_like_paddle():
    # v3's last map is 3 rows high; a [2, 2] pool with stride [2, 2] keeps only rows 0-1
    x = rand(1, 4, 3, 10)
    ref = pnn.AvgPool2D([2, 2], [2, 2], 0)(paddle.to_tensor(x)).numpy()
    out = torch.nn.AvgPool2d((2, 2), (2, 2), 0)(torch.from_numpy(x)).numpy()
    assert ref.shape == out.shape == (1, 4, 1, 5)
    np.testing.assert_allclose(ref, out, atol=1e-6)


@pytest.mark.parametrize("arch,shape,steps", [
    ("ch_PP-OCRv3_rec", (2, 3, 48, 320), 40),
    ("korean_PP-OCRv3_rec", (1, 3, 48, 480), 60),
    ("ch_PP-OCRv2_rec", (1, 3, 32, 320), 80),
])
def test_rec_tables_build_and_give_per_step_probabilities(arch, shape, steps):
    weights = synthetic_weights(NAMES_DIR / f"{arch}.txt")
    conv = convert(None, weights=weights, spec=find_arch(arch))
    n_classes = conv.model.head.out_channels
    # the names files' filler (all in [0, 1)) overflows a deep net: small signed values instead
    gen = torch.Generator().manual_seed(0)
    for name, t in conv.model.state_dict().items():
        if t.is_floating_point():
            low = 0.5 if name.endswith("running_var") else -0.1
            t.copy_(torch.rand(t.shape, generator=gen) * 0.2 + low)
    with torch.inference_mode():
        out = conv.model(torch.from_numpy(rand(*shape)))
    assert out.shape == (shape[0], steps, n_classes)
    assert torch.allclose(out.sum(-1), torch.ones(shape[0], steps), atol=1e-4)


# ---- paddle references: PP-LCNet (PaddleClas pp_lcnet.py), names as PaddleClas has them

def make_divisible(v, divisor=8):
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


class PLCConvBN(pnn.Layer):
    def __init__(self, cin, k, cout, stride, groups=1):
        super().__init__()
        self.conv = pnn.Conv2D(cin, cout, k, stride, (k - 1) // 2, groups=groups,
                               bias_attr=False)
        self.bn = pnn.BatchNorm2D(cout)
        self.act = pnn.Hardswish()

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class PLCSE(pnn.Layer):
    def __init__(self, c):
        super().__init__()
        self.avg_pool = pnn.AdaptiveAvgPool2D(1)
        self.conv1 = pnn.Conv2D(c, c // 4, 1)
        self.relu = pnn.ReLU()
        self.conv2 = pnn.Conv2D(c // 4, c, 1)
        self.hardsigmoid = pnn.Hardsigmoid()

    def forward(self, x):
        return x * self.hardsigmoid(self.conv2(self.relu(self.conv1(self.avg_pool(x)))))


class PLCBlock(pnn.Layer):
    def __init__(self, cin, cout, stride, k=3, use_se=False):
        super().__init__()
        self.use_se = use_se
        self.dw_conv = PLCConvBN(cin, k, cin, stride, cin)
        if use_se:
            self.se = PLCSE(cin)
        self.pw_conv = PLCConvBN(cin, 1, cout, 1)

    def forward(self, x):
        x = self.dw_conv(x)
        return self.pw_conv(self.se(x) if self.use_se else x)


CONFIG = {
    "blocks2": [[3, 16, 32, 1, False]],
    "blocks3": [[3, 32, 64, 2, False], [3, 64, 64, 1, False]],
    "blocks4": [[3, 64, 128, 2, False], [3, 128, 128, 1, False]],
    "blocks5": [[3, 128, 256, 2, False]] + [[5, 256, 256, 1, False]] * 5,
    "blocks6": [[5, 256, 512, 2, True], [5, 512, 512, 1, True]],
}


class PPPLCNet(pnn.Layer):
    """PaddleClas's PPLCNet network as exported: logits -> softmax (ExportModel)."""

    def __init__(self, scale, class_num, stride_list=(2, 2, 2, 2, 2), use_last_conv=True):
        super().__init__()
        self.conv1 = PLCConvBN(3, 3, make_divisible(16 * scale), stride_list[0])
        for i, stage in enumerate(CONFIG):
            setattr(self, stage, pnn.Sequential(*[
                PLCBlock(make_divisible(cin * scale), make_divisible(cout * scale),
                         stride_list[i] if j == 0 and i > 0 else s, k, se)
                for j, (k, cin, cout, s, se) in enumerate(CONFIG[stage])]))
        self.avg_pool = pnn.AdaptiveAvgPool2D(1)
        width = make_divisible(512 * scale)
        self.last_conv = None
        if use_last_conv:
            self.last_conv = pnn.Conv2D(width, 1280, 1, bias_attr=False)
            self.act = pnn.Hardswish()
            self.dropout = pnn.Dropout(p=0.2, mode="downscale_in_infer")
            width = 1280
        self.flatten = pnn.Flatten(start_axis=1, stop_axis=-1)
        self.fc = pnn.Linear(width, class_num)

    def features(self, x):
        x = self.conv1(x)
        for stage in CONFIG:
            x = getattr(self, stage)(x)
        return x

    def forward(self, x):
        x = self.avg_pool(self.features(x))
        if self.last_conv is not None:
            x = self.dropout(self.act(self.last_conv(x)))
        return PF.softmax(self.fc(self.flatten(x)), axis=-1)


def lcnet_ref(scale, class_num, seed=5, **kw):
    ref = randomize(PPPLCNet(scale, class_num, **kw), seed=seed)
    # keep the class scores in a range where the softmax is not saturated (a real test)
    ref.fc.weight.set_value(ref.fc.weight.numpy() * 0.05)
    return ref


@pytest.mark.parametrize("cin,cout,stride,k,use_se", [
    (8, 16, 1, 3, False), (32, 64, [2, 1], 3, False), (64, 64, 2, 5, True)])
def test_lcnet_depthwise_separable(cin, cout, stride, k, use_se):
    ref = randomize(PLCBlock(cin, cout, stride, k, use_se), seed=cin)
    ours = load_into(LCNetBlock(cin, cout, stride, k, use_se), ref)
    assert max_diff(ref, ours, rand(2, cin, 10, 14)) < 1e-5


def convert_paddle_layer(ref, arch):
    """Convert a paddle layer's state_dict (PaddleClas names) with the real table."""
    tensors = {k: v.numpy() for k, v in ref.state_dict().items()}
    weights = PaddleWeights("pdparams", formats.select_submodel(tensors, None, arch)[0], True)
    return convert(None, weights=weights, spec=find_arch(arch))


@pytest.mark.parametrize("arch,scale,classes,kw,shape", [
    ("PP-LCNet_x0_25_textline_ori", 0.25, 2,
     dict(stride_list=[2, [2, 1], [2, 1], [2, 1], [2, 1]]), (3, 3, 80, 160)),
    ("PP-LCNet_x1_0_doc_ori", 1.0, 4, {}, (1, 3, 224, 224)),
    ("PP-LCNet_x1_0_doc_ori", 1.0, 4, dict(use_last_conv=False), (1, 3, 224, 224)),
])
def test_pplcnet_classifier_matches_paddle(arch, scale, classes, kw, shape):
    ref = lcnet_ref(scale, classes, **kw)
    conv = convert_paddle_layer(ref, arch)
    assert conv.config["Head"]["class_num"] == classes
    assert conv.config["Head"]["use_last_conv"] == kw.get("use_last_conv", True)
    model = conv.model
    x = rand(*shape)
    with torch.inference_mode():
        feats = model.backbone(torch.from_numpy(x)).numpy()
    assert scaled_diff(ref.features(paddle.to_tensor(x)).numpy(), feats) < 1e-5
    probs = ref(paddle.to_tensor(x)).numpy()
    assert 0.01 < probs.max() < 0.999  # not saturated
    assert max_diff(ref, model, x) < 1e-5


def test_paddle_dropout_downscale_in_infer_scales_at_inference():
    x = rand(4, 16)
    layer = pnn.Dropout(p=0.2, mode="downscale_in_infer")
    layer.eval()
    ref = layer(paddle.to_tensor(x)).numpy()
    np.testing.assert_allclose(ref, 0.8 * x, rtol=1e-6)  # not the identity torch's eval is
    ours = DropoutDownscaleInInfer(0.2).eval()
    np.testing.assert_allclose(ours(torch.from_numpy(x)).numpy(), ref, rtol=1e-6)
    assert torch.equal(torch.nn.Dropout(0.2).eval()(torch.from_numpy(x)), torch.from_numpy(x))


def test_paddle_hardsigmoid_defaults_are_the_se_constants():
    from ptocr.models.backbones import mobilenet_v1_enhance, pplcnet

    x = rand(1000) * 4
    ref = pnn.Hardsigmoid()(paddle.to_tensor(x)).numpy()
    np.testing.assert_allclose(PF.hardsigmoid(paddle.to_tensor(x)).numpy(), ref)
    for module in (mobilenet_v1_enhance, pplcnet):
        ours = np.clip(x * module.SE_SLOPE + module.SE_OFFSET, 0, 1)
        np.testing.assert_allclose(ours, ref, atol=1e-6)


# ---- the classifier as paddle exports it (PIR program, no names: aligned by program order)

EXPORT = textwrap.dedent('''
    import sys
    sys.path.insert(0, sys.argv[2])
    import paddle
    from test_mv1e_lcnet_family import lcnet_ref
    model = lcnet_ref(0.25, 2, seed=9, stride_list=[2, [2, 1], [2, 1], [2, 1], [2, 1]])
    spec = [paddle.static.InputSpec([None, 3, 80, 160], "float32", "x")]
    paddle.jit.save(model, sys.argv[1], input_spec=spec)
''')


@pytest.fixture(scope="module")
def exported_textline_ori(tmp_path_factory):
    prefix = tmp_path_factory.mktemp("pir") / "inference"
    script = prefix.parent / "export.py"
    script.write_text(EXPORT)
    res = subprocess.run([sys.executable, str(script), str(prefix), str(Path(__file__).parent)],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    return prefix.parent


def test_exported_textline_classifier_converts_by_program_order(exported_textline_ori):
    weights = formats.read(exported_textline_ori)
    assert weights.format == "pir" and not weights.structured
    spec = find_arch("PP-LCNet_x0_25_textline_ori")
    conv = convert(None, weights=weights, spec=spec)
    assert conv.report.method == "program order"
    assert conv.config["Head"]["class_num"] == 2
    report = verify(weights, conv.model, spec, images=False)
    assert report["passed"], report["results"]
    assert max(r["max_abs"] for r in report["results"]) < 1e-5
