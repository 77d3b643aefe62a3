"""The official direction classifier ch_ppocr_mobile_v2.0_cls (2.x, structured names), and
op-level checks of the MobileNetV3 blocks and ClsHead against paddle layers."""

import numpy as np
import paddle
import paddle.nn as pnn
import paddle.nn.functional as PF
import torch

import ptocr
from paddle_ref import load_into, max_diff, randomize
from ptocr.models.backbones.mobilenet_v3 import ResidualUnit
from ptocr.models.heads.cls_head import ClsHead
from paddle_ref import PaddleSE

ARCH = "ch_ppocr_mobile_v2.0_cls"


def test_real_classifier_converts_and_verifies(models, tmp_path, cli):
    out = tmp_path / "cls.pth"
    res = cli("convert", "--arch", ARCH, "--paddle-dir", models(ARCH), "--out", out)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "PASSED" in res.stdout and "image words/" in res.stdout
    model = ptocr.load(out)
    with torch.inference_mode():
        probs = model(torch.zeros(2, 3, 48, 192))
    assert probs.shape == (2, 2) and torch.allclose(probs.sum(1), torch.ones(2))


class PaddleConvBN(pnn.Layer):
    def __init__(self, cin, cout, k, s, groups=1, act=None):
        super().__init__()
        self.act = act
        self.conv = pnn.Conv2D(cin, cout, k, s, (k - 1) // 2, groups=groups, bias_attr=False)
        self.bn = pnn.BatchNorm(cout)

    def forward(self, x):
        x = self.bn(self.conv(x))
        return {"relu": PF.relu, "hardswish": PF.hardswish}.get(self.act, lambda t: t)(x)


class PaddleResidualUnit(pnn.Layer):
    def __init__(self, cin, mid, cout, k, s, use_se, act):
        super().__init__()
        self.shortcut = s == 1 and cin == cout
        self.expand_conv = PaddleConvBN(cin, mid, 1, 1, act=act)
        self.bottleneck_conv = PaddleConvBN(mid, mid, k, s, groups=mid, act=act)
        self.mid_se = PaddleSE(mid, 0.2) if use_se else None
        self.linear_conv = PaddleConvBN(mid, cout, 1, 1)

    def forward(self, x):
        y = self.bottleneck_conv(self.expand_conv(x))
        if self.mid_se is not None:
            y = self.mid_se(y)
        y = self.linear_conv(y)
        return x + y if self.shortcut else y


def test_residual_unit_with_se_matches_paddle():
    rng = np.random.RandomState(3)
    for cin, mid, cout, k, s, se, act in [(16, 64, 16, 3, 1, True, "hardswish"),
                                          (16, 48, 24, 5, (2, 1), True, "relu"),
                                          (24, 72, 24, 3, 1, False, "relu")]:
        ref = randomize(PaddleResidualUnit(cin, mid, cout, k, s, se, act), seed=k)
        ours = load_into(ResidualUnit(cin, mid, cout, k, s, se, act), ref)
        x = rng.uniform(-2, 2, (2, cin, 12, 20)).astype(np.float32)
        assert max_diff(ref, ours, x) < 1e-5


class PaddleClsHead(pnn.Layer):
    def __init__(self, c, n):
        super().__init__()
        self.pool = pnn.AdaptiveAvgPool2D(1)
        self.fc = pnn.Linear(c, n)

    def forward(self, x):
        x = self.pool(x)
        return PF.softmax(self.fc(paddle.reshape(x, [x.shape[0], x.shape[1]])), axis=1)


def test_cls_head_matches_paddle():
    ref = randomize(PaddleClsHead(32, 4))
    ours = load_into(ClsHead(32, 4), ref)
    x = np.random.RandomState(0).uniform(-1, 1, (3, 32, 3, 7)).astype(np.float32)
    assert max_diff(ref, ours, x) < 1e-6
