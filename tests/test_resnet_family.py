"""Op-level tests of the ResNet_vd family (PaddleOCR's backbones/det_resnet_vd.py ``ResNet_vd``
and backbones/rec_resnet_vd.py ``ResNet``) against paddle layers written here after those
files, on random weights copied through the mapping engine: the vd average pool (a framework
difference pinned directly), ConvBNLayer, BasicBlock, BottleneckBlock, whole backbones, and the
whole det/rec models through their real tables (det_db_r50_vd, ch_ppocr_server_v2.0_det,
ch_ppocr_server_v2.0_rec, rec_crnn_r34_vd, rec_rosetta_r34_vd)."""

import numpy as np
import paddle
import paddle.nn as pnn
import paddle.nn.functional as PF
import pytest
import torch

from paddle_ref import load_into, max_diff, randomize
from test_det_blocks import PaddleDBFPN, PaddleDBHead
from test_paddle_names import NAMES_DIR, synthetic_weights
from ptocr.converter import formats
from ptocr.converter.convert import convert, detect_arch
from ptocr.errors import PtocrError
from ptocr.converter.formats import PaddleWeights
from ptocr.converter.mapping import ArchSpec, find_arch
from ptocr.converter.verify import verify
from ptocr.models.backbones import resnet_vd as R
from ptocr.models.registry import lookup
from paddle_ref import PaddleModel

RNG = np.random.RandomState(7)
ARCHS = ["det_db_r50_vd", "ch_ppocr_server_v2.0_det", "ch_ppocr_server_v2.0_rec",
         "rec_crnn_r34_vd", "rec_rosetta_r34_vd"]


def rand(*shape):
    return RNG.uniform(-1, 1, shape).astype(np.float32)


def randomize_unit(layer, seed=0):
    """paddle_ref.randomize, with conv/linear weights scaled by 1/sqrt(fan-in) so a deep
    residual net keeps unit-scale activations (a fair test of fp32 parity)."""
    randomize(layer, seed)
    for name, tensor in layer.state_dict().items():
        if len(tensor.shape) >= 2 and "lstm" not in name:
            fan_in = int(np.prod(tensor.shape[1:])) if len(tensor.shape) == 4 else tensor.shape[0]
            tensor.set_value(tensor.numpy() * np.float32(2 * np.sqrt(3.0 / fan_in)))
    return layer


# ---- paddle references after det_resnet_vd.py ("det") and rec_resnet_vd.py ("rec")

class PConvBN(pnn.Layer):
    """det: the vd pool is always 2x2 and the conv keeps its stride (the det shortcut passes
    stride 1); rec: the vd pool window is the stride and the conv then runs at stride 1."""

    def __init__(self, cin, cout, k, stride=1, vd=False, act=None, variant="det"):
        super().__init__()
        self.vd = vd
        pool = 2 if variant == "det" else stride
        self._pool2d_avg = pnn.AvgPool2D(pool, pool, 0, ceil_mode=True)
        conv_stride = 1 if vd and variant == "rec" else stride
        self._conv = pnn.Conv2D(cin, cout, k, conv_stride, (k - 1) // 2, bias_attr=False)
        self._batch_norm = pnn.BatchNorm(cout, act=act)

    def forward(self, x):
        return self._batch_norm(self._conv(self._pool2d_avg(x) if self.vd else x))


def p_short(cin, cout, stride, if_first, variant):
    if variant == "det":
        return PConvBN(cin, cout, 1, 1, vd=not if_first)
    return PConvBN(cin, cout, 1, stride, vd=not if_first and stride[0] != 1, variant="rec")


class PBasic(pnn.Layer):
    def __init__(self, cin, cout, stride, shortcut=True, if_first=False, variant="det"):
        super().__init__()
        self.conv0 = PConvBN(cin, cout, 3, stride, act="relu", variant=variant)
        self.conv1 = PConvBN(cout, cout, 3, variant=variant)
        if not shortcut:
            self.short = p_short(cin, cout, stride, if_first, variant)
        self.shortcut = shortcut

    def forward(self, x):
        y = self.conv1(self.conv0(x))
        return PF.relu(paddle.add(x if self.shortcut else self.short(x), y))


class PBottleneck(pnn.Layer):
    def __init__(self, cin, cout, stride, shortcut=True, if_first=False, variant="det"):
        super().__init__()
        self.conv0 = PConvBN(cin, cout, 1, act="relu", variant=variant)
        self.conv1 = PConvBN(cout, cout, 3, stride, act="relu", variant=variant)
        self.conv2 = PConvBN(cout, cout * 4, 1, variant=variant)
        if not shortcut:
            self.short = p_short(cin, cout * 4, stride, if_first, variant)
        self.shortcut = shortcut

    def forward(self, x):
        y = self.conv2(self.conv1(self.conv0(x)))
        return PF.relu(paddle.add(x if self.shortcut else self.short(x), y))


class PResNet(pnn.Layer):
    """det ResNet_vd (stage outputs) or rec ResNet (final 2x2 max pool)."""

    def __init__(self, layers, variant="det"):
        super().__init__()
        self.variant = variant
        depth = R.DEPTHS[layers]
        cins = [64, 256, 512, 1024] if layers >= 50 else [64, 64, 128, 256]
        block, exp = (PBottleneck, 4) if layers >= 50 else (PBasic, 1)
        stem = 2 if variant == "det" else 1
        self.conv1_1 = PConvBN(3, 32, 3, stem, act="relu", variant=variant)
        self.conv1_2 = PConvBN(32, 32, 3, act="relu", variant=variant)
        self.conv1_3 = PConvBN(32, 64, 3, act="relu", variant=variant)
        self.pool2d_max = pnn.MaxPool2D(3, 2, 1)
        self.stages = []
        for s, n in enumerate(depth):
            blocks = []
            for i in range(n):
                f = [64, 128, 256, 512][s]
                if i == 0 and s != 0:
                    stride = 2 if variant == "det" else (2, 1)
                else:
                    stride = 1 if variant == "det" else (1, 1)
                blocks.append(self.add_sublayer(f"bb_{s}_{i}", block(
                    cins[s] if i == 0 else f * exp, f, stride, shortcut=i != 0,
                    if_first=s == i == 0, variant=variant)))
            self.stages.append(blocks)
        if variant == "rec":
            self.out_pool = pnn.MaxPool2D(2, 2, 0)

    def forward(self, x):
        x = self.pool2d_max(self.conv1_3(self.conv1_2(self.conv1_1(x))))
        outs = []
        for blocks in self.stages:
            for b in blocks:
                x = b(x)
            outs.append(x)
        return self.out_pool(x) if self.variant == "rec" else outs


class PSequenceEncoder(pnn.Layer):
    """necks/rnn.py with encoder_type reshape or rnn (2-layer BiLSTM)."""

    def __init__(self, cin, encoder_type, hidden_size=256):
        super().__init__()
        self.rnn = encoder_type == "rnn"
        if self.rnn:
            self.encoder = pnn.Layer()
            self.encoder.lstm = pnn.LSTM(cin, hidden_size, direction="bidirectional",
                                         num_layers=2)

    def forward(self, x):
        x = x.squeeze(axis=2).transpose([0, 2, 1])
        return self.encoder.lstm(x)[0] if self.rnn else x


class PCTCHead(pnn.Layer):
    def __init__(self, cin, classes):
        super().__init__()
        self.fc = pnn.Linear(cin, classes)

    def forward(self, x):
        return PF.softmax(self.fc(x), axis=2)


# ---- framework difference: the vd average pool

@pytest.mark.parametrize("window", [(2, 2), (2, 1)])
def test_vd_avg_pool_ceil_mode_averages_only_covered_pixels(window):
    """Paddle's AvgPool2D(ceil_mode=True, exclusive) keeps a last window that hangs over an
    odd edge and averages only the pixels it covers; torch's ceil_mode does the same with
    padding 0 (count_include_pad then has nothing to count, pinned for both settings)."""
    x = rand(2, 3, 7, 9)
    ref = pnn.AvgPool2D(window, window, 0, ceil_mode=True)(paddle.to_tensor(x)).numpy()
    rows, cols = 4, 5 if window[1] == 2 else 9
    assert ref.shape == (2, 3, rows, cols)
    # the overhanging last row averages row 6 alone, not row 6 and a zero pad
    np.testing.assert_allclose(ref[:, :, 3, 0], x[:, :, 6, :window[1]].mean(-1), atol=1e-6)
    for include_pad in (False, True):
        out = torch.nn.AvgPool2d(window, window, 0, ceil_mode=True,
                                 count_include_pad=include_pad)(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(out, ref, atol=1e-6)
    # floor mode would drop the last row: ceil_mode is part of the semantics
    assert torch.nn.AvgPool2d(window, window)(torch.from_numpy(x)).shape[2] == 3
    assert R.ConvBNLayer(3, 4, 1, window, is_vd_mode=True)._pool2d_avg.ceil_mode


# ---- blocks

@pytest.mark.parametrize("variant,stride,vd,hw", [
    ("det", 2, True, (7, 9)), ("det", 1, False, (7, 9)), ("det", 2, False, (8, 10)),
    ("rec", (2, 1), True, (7, 9)), ("rec", (2, 1), False, (8, 10)),
])
def test_conv_bn_layer(variant, stride, vd, hw):
    k = 1 if vd else 3
    # the det shortcut asks for stride 1 and pools 2x2: a vd stride of 2 in our terms
    p_stride = 1 if vd and variant == "det" else stride
    ref = randomize(PConvBN(6, 8, k, p_stride, vd, act=None if vd else "relu",
                            variant=variant), seed=1)
    ours = load_into(R.ConvBNLayer(6, 8, k, stride, is_vd_mode=vd,
                                   act=None if vd else "relu"), ref)
    assert max_diff(ref, ours, rand(2, 6, *hw)) < 1e-5


BLOCK_CASES = [  # variant, stride, shortcut, if_first, hw
    ("det", 1, False, True, (9, 11)),  # the network's first block: plain 1x1 projection
    ("det", 2, False, False, (9, 11)),  # a stage's first block: vd shortcut, odd edges
    ("det", 1, True, False, (8, 10)),  # identity shortcut
    ("rec", (1, 1), False, True, (9, 11)),
    ("rec", (2, 1), False, False, (9, 11)),
    ("rec", (1, 1), True, False, (8, 10)),
]


@pytest.mark.parametrize("variant,stride,shortcut,if_first,hw", BLOCK_CASES)
def test_basic_block(variant, stride, shortcut, if_first, hw):
    cin = 8 if shortcut else 6
    ref = randomize(PBasic(cin, 8, stride, shortcut, if_first, variant), seed=2)
    ours = load_into(R.BasicBlock(cin, 8, stride, shortcut, if_first), ref)
    assert (ours.short is None) == shortcut
    assert max_diff(ref, ours, rand(2, cin, *hw)) < 1e-5


@pytest.mark.parametrize("variant,stride,shortcut,if_first,hw", BLOCK_CASES)
def test_bottleneck_block(variant, stride, shortcut, if_first, hw):
    cin = 32 if shortcut else 6
    ref = randomize(PBottleneck(cin, 8, stride, shortcut, if_first, variant), seed=3)
    ours = load_into(R.BottleneckBlock(cin, 8, stride, shortcut, if_first), ref)
    assert max_diff(ref, ours, rand(2, cin, *hw)) < 1e-5


# ---- whole backbones

@pytest.mark.parametrize("hw", [(64, 96), (70, 90)])
def test_det_resnet18_vd_backbone_matches_paddle(hw):
    ref = randomize_unit(PResNet(18, "det"), seed=4)
    ours = load_into(R.ResNet_vd(layers=18), ref)
    assert ours.out_channels == [64, 128, 256, 512]
    x = rand(1, 3, *hw)
    outs = ref(paddle.to_tensor(x))
    assert [tuple(o.shape[2:]) for o in outs][-1] == tuple(-(-d // 32) for d in hw)
    assert min(float(np.abs(o.numpy()).max()) for o in outs) > 0.1  # not a vanished signal
    assert max_diff(ref, ours, x) < 1e-5


def test_rec_resnet34_vd_backbone_matches_paddle():
    ref = randomize_unit(PResNet(34, "rec"), seed=5)
    ours = load_into(lookup("Backbone", "ResNet", "rec")(layers=34), ref)
    x = rand(2, 3, 32, 72)
    assert tuple(ref(paddle.to_tensor(x)).shape) == (2, 512, 1, 18)  # height 1, width / 4
    assert max_diff(ref, ours, x) < 1e-5


def test_variants_registered_under_paddleocr_names():
    assert lookup("Backbone", "ResNet_vd", "det") is R.ResNet_vd
    assert lookup("Backbone", "ResNet", "rec") is R.RecResNet_vd
    assert lookup("Backbone", "ResNet", "cls") is R.RecResNet_vd
    # rec bottleneck depths: the real width, where PaddleOCR's attribute says 512
    rec50 = R.RecResNet_vd(layers=50)
    assert rec50.out_channels == 2048
    assert R.ResNet_vd(layers=50, out_indices=[1, 3]).out_channels == [512, 2048]


def test_unsupported_options_are_refused():
    from ptocr.models.deform_conv import DeformableConvV2

    dcn = R.ResNet_vd(layers=50, dcn_stage=[False, True, True, True])  # FCENet's backbone
    assert sum(isinstance(m, DeformableConvV2) for m in dcn.modules()) == 4 + 6 + 3
    basic = R.ResNet_vd(layers=18, dcn_stage=[False, True, True, True])
    assert not any(isinstance(m, DeformableConvV2) for m in basic.modules())  # as in paddle
    with pytest.raises(ValueError, match="layers"):
        R.ResNet_vd(layers=26)
    spec = find_arch("det_db_r50_vd")
    weights = synthetic_weights(NAMES_DIR / "det_db_r50_vd.txt")
    arch = dict(spec.architecture, Backbone={"name": "ResNet_vd", "layers": 50,
                                             "dcn_stage": [False, True, True, True]})
    with pytest.raises(PtocrError, match="conv_offset"):  # DB weights lack the dcn convs
        convert(None, weights=weights, spec=ArchSpec(**{**spec.__dict__, "architecture": arch}))


# ---- whole models through the real tables

def paddle_model(arch):
    if arch.startswith("det") or arch.endswith("_det"):
        layers = 50 if arch == "det_db_r50_vd" else 18
        backbone = PResNet(layers, "det")
        chans = [256, 512, 1024, 2048] if layers == 50 else [64, 128, 256, 512]
        return PaddleModel(backbone, PaddleDBFPN(chans, 256), PaddleDBHead(256))
    neck = PSequenceEncoder(512, "reshape" if "rosetta" in arch else "rnn")
    return PaddleModel(PResNet(34, "rec"), neck, PCTCHead(512, 37))


@pytest.mark.parametrize("arch,shape", [
    ("ch_ppocr_server_v2.0_det", (1, 3, 64, 64)),
    ("det_db_r50_vd", (1, 3, 64, 64)),
    ("rec_crnn_r34_vd", (2, 3, 32, 64)),
    ("rec_rosetta_r34_vd", (1, 3, 32, 100)),
    ("ch_ppocr_server_v2.0_rec", (1, 3, 32, 64)),
])
def test_whole_model_through_its_table(arch, shape):
    paddle.seed(0)
    ref = randomize_unit(paddle_model(arch), seed=6)
    tensors = {k: v.numpy() for k, v in ref.state_dict().items()}
    conv = convert(None, weights=PaddleWeights("pdparams", tensors, True), spec=find_arch(arch))
    assert conv.report.mapped + len(conv.report.ignored) >= len(tensors)
    if conv.spec.task == "det":
        assert conv.config["Head"]["with_thresh"]
    else:
        assert conv.config["Head"]["out_channels"] == 37
    x = rand(*shape)
    out = ref(paddle.to_tensor(x)).numpy()
    if conv.spec.task == "rec":
        assert out.shape == (shape[0], shape[3] // 4, 37)
    assert max_diff(ref, conv.model, x) < 1e-5


@pytest.mark.parametrize("arch", ARCHS)
def test_arch_auto_finds_each_table(arch):
    """Same-network recognisers (ch server v2.0 vs CRNN r34) are told apart by dictionary."""
    assert detect_arch(synthetic_weights(NAMES_DIR / f"{arch}.txt")).name == arch


# ---- a PIR program paddle saves here: no structured names, aligned by program order

def test_pir_det_program_aligns_by_program_order(tmp_path):
    paddle.seed(1)
    model = randomize_unit(PaddleModel(PResNet(18, "det"), PaddleDBFPN([64, 128, 256, 512], 32),
                                  PaddleDBHead(32)), seed=8)
    model.eval()
    spec_in = [paddle.static.InputSpec([None, 3, 64, 64], "float32", "x")]
    paddle.jit.save(model, str(tmp_path / "inference"), input_spec=spec_in)
    spec = ArchSpec(name="resnet18_vd_db", task="det", architecture={
        "model_type": "det", "Backbone": {"name": "ResNet_vd", "layers": 18},
        "Neck": {"name": "DBFPN", "out_channels": 32}, "Head": {"name": "DBHead", "k": 50}},
        inputs={"shapes": [[1, 3, 64, 64], [2, 3, 64, 64]]})
    weights = formats.read(tmp_path)
    assert not weights.structured
    conv = convert(None, weights=weights, spec=spec)
    assert conv.report.method == "program order"
    report = verify(weights, conv.model, spec, images=False)
    assert report["passed"], report["results"]
    assert max(r["max_abs"] for r in report["results"]) < 1e-5
