"""Paddle twins of PaddleOCR's EAST, PSENet and DB++ modules, written with paddle after
ppocr/modeling/necks/east_fpn.py, heads/det_east_head.py, necks/fpn.py, heads/det_pse_head.py,
backbones/det_resnet.py (+ det_resnet_vd.py's ConvBNLayer and DeformableConvV2) and
necks/db_fpn.py (DBFPN with ASFBlock): same module trees, so the same state_dict() names.
Run as a script it builds the small test configurations, randomises every parameter and BN
statistic (seeded) and saves them (2.x programs need FLAGS_enable_pir_api=0 before paddle is
imported, hence a process per format):

    python paddle_twins_east_pse_dbpp.py OUT_DIR pdmodel|pir   (pir also saves .pdparams)
"""

import os
import sys

if __name__ == "__main__" and sys.argv[2] == "pdmodel":
    os.environ["FLAGS_enable_pir_api"] = "0"

import numpy as np  # noqa: E402
import paddle  # noqa: E402
from paddle import nn  # noqa: E402
import paddle.nn.functional as F  # noqa: E402


def sigmoid(x):
    """F.sigmoid. Paddle 3.3's F.sigmoid calls its PIR kernel on the legacy Variables of a
    2.x export and fails; there the same ``sigmoid`` op is appended directly."""
    if paddle.in_dynamic_mode() or paddle.framework.in_pir_mode():
        return F.sigmoid(x)
    from paddle.base.layer_helper import LayerHelper

    helper = LayerHelper("sigmoid")
    out = helper.create_variable_for_type_inference(dtype=x.dtype)
    helper.append_op(type="sigmoid", inputs={"X": x}, outputs={"Out": out}, attrs={})
    return out


class Sigmoid(nn.Layer):
    def forward(self, x):
        return sigmoid(x)


class ConvBN(nn.Layer):
    """east_fpn.py / det_east_head.py ConvBNLayer: conv (no bias) and BatchNorm(act)."""

    def __init__(self, cin, cout, k, stride=1, padding=0, act=None):
        super().__init__()
        self.conv = nn.Conv2D(cin, cout, k, stride, padding, bias_attr=False)
        self.bn = nn.BatchNorm(cout, act=act)

    def forward(self, x):
        return self.bn(self.conv(x))


class DeConvBN(nn.Layer):
    def __init__(self, cin, cout):
        super().__init__()
        self.deconv = nn.Conv2DTranspose(cin, cout, 4, 2, 1, bias_attr=False)
        self.bn = nn.BatchNorm(cout, act="relu")

    def forward(self, x):
        return self.bn(self.deconv(x))


class EASTFPN(nn.Layer):
    def __init__(self, in_channels, model_name):
        super().__init__()
        c = 128 if model_name == "large" else 64
        self.out_channels = c
        rev = in_channels[::-1]
        self.h1_conv = ConvBN(c + rev[1], c, 3, 1, 1, "relu")
        self.h2_conv = ConvBN(c + rev[2], c, 3, 1, 1, "relu")
        self.h3_conv = ConvBN(c + rev[3], c, 3, 1, 1, "relu")
        self.g0_deconv = DeConvBN(rev[0], c)
        self.g1_deconv = DeConvBN(c, c)
        self.g2_deconv = DeConvBN(c, c)
        self.g3_conv = ConvBN(c, c, 3, 1, 1, "relu")

    def forward(self, x):
        f = x[::-1]
        h = self.h1_conv(paddle.concat([self.g0_deconv(f[0]), f[1]], axis=1))
        h = self.h2_conv(paddle.concat([self.g1_deconv(h), f[2]], axis=1))
        h = self.h3_conv(paddle.concat([self.g2_deconv(h), f[3]], axis=1))
        return self.g3_conv(h)


class EASTHead(nn.Layer):
    def __init__(self, in_channels, model_name):
        super().__init__()
        n = [128, 64, 1, 8] if model_name == "large" else [64, 32, 1, 8]
        self.det_conv1 = ConvBN(in_channels, n[0], 3, 1, 1, "relu")
        self.det_conv2 = ConvBN(n[0], n[1], 3, 1, 1, "relu")
        self.score_conv = ConvBN(n[1], n[2], 1)
        self.geo_conv = ConvBN(n[1], n[3], 1)

    def forward(self, x):
        f_det = self.det_conv2(self.det_conv1(x))
        f_score = sigmoid(self.score_conv(f_det))
        f_geo = (sigmoid(self.geo_conv(f_det)) - 0.5) * 2 * 800
        return {"f_score": f_score, "f_geo": f_geo}


class ConvBNReLU(nn.Layer):
    """fpn.py Conv_BN_ReLU."""

    def __init__(self, cin, cout, k=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2D(cin, cout, k, 1, padding, bias_attr=False)
        self.bn = nn.BatchNorm2D(cout, momentum=0.1)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.bn(self.conv(x)))


class FPN(nn.Layer):
    def __init__(self, in_channels, out_channels):
        super().__init__()
        c = out_channels
        self.toplayer_ = ConvBNReLU(in_channels[3], c)
        self.latlayer1_ = ConvBNReLU(in_channels[2], c)
        self.latlayer2_ = ConvBNReLU(in_channels[1], c)
        self.latlayer3_ = ConvBNReLU(in_channels[0], c)
        self.smooth1_ = ConvBNReLU(c, c, 3, 1)
        self.smooth2_ = ConvBNReLU(c, c, 3, 1)
        self.smooth3_ = ConvBNReLU(c, c, 3, 1)
        self.out_channels = c * 4

    @staticmethod
    def up(x, scale):
        return F.upsample(x, scale_factor=scale, mode="bilinear")

    def forward(self, x):
        f2, f3, f4, f5 = x
        p5 = self.toplayer_(f5)
        p4 = self.smooth1_(self.up(p5, 2) + self.latlayer1_(f4))
        p3 = self.smooth2_(self.up(p4, 2) + self.latlayer2_(f3))
        p2 = self.smooth3_(self.up(p3, 2) + self.latlayer3_(f2))
        return paddle.concat([p2, self.up(p3, 2), self.up(p4, 4), self.up(p5, 8)], axis=1)


class PSEHead(nn.Layer):
    def __init__(self, in_channels, hidden_dim=256, out_channels=7):
        super().__init__()
        self.conv1 = nn.Conv2D(in_channels, hidden_dim, 3, 1, 1)
        self.bn1 = nn.BatchNorm2D(hidden_dim)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2D(hidden_dim, out_channels, 1, 1, 0)

    def forward(self, x):
        return {"maps": self.conv2(self.relu1(self.bn1(self.conv1(x))))}


# ---- DB++: det_resnet.py ResNet (with det_resnet_vd.py's layers) and DBFPN(use_asf)

class DeformableConvV2(nn.Layer):
    def __init__(self, cin, cout, k, stride=1, groups=1):
        super().__init__()
        self.offset_channel = 2 * k * k * groups
        self.mask_channel = k * k * groups
        self.conv_dcn = paddle.vision.ops.DeformConv2D(
            cin, cout, k, stride=stride, padding=(k - 1) // 2, deformable_groups=groups,
            bias_attr=False)
        self.conv_offset = nn.Conv2D(cin, groups * 3 * k * k, k, stride=stride,
                                     padding=(k - 1) // 2)

    def forward(self, x):
        offset, mask = paddle.split(self.conv_offset(x),
                                    [self.offset_channel, self.mask_channel], axis=1)
        return self.conv_dcn(x, offset, mask=sigmoid(mask))


class ResConvBN(nn.Layer):
    """det_resnet_vd.py ConvBNLayer (never vd mode in det_resnet.py)."""

    def __init__(self, cin, cout, k, stride=1, act=None, is_dcn=False):
        super().__init__()
        self._pool2d_avg = nn.AvgPool2D(2, 2, 0, ceil_mode=True)
        if is_dcn:
            self._conv = DeformableConvV2(cin, cout, k, stride, groups=1)
        else:
            self._conv = nn.Conv2D(cin, cout, k, stride, (k - 1) // 2, bias_attr=False)
        self._batch_norm = nn.BatchNorm(cout, act=act)

    def forward(self, x):
        return self._batch_norm(self._conv(x))


class Bottleneck(nn.Layer):
    def __init__(self, cin, f, stride, shortcut, is_dcn):
        super().__init__()
        self.conv0 = ResConvBN(cin, f, 1, act="relu")
        self.conv1 = ResConvBN(f, f, 3, stride, act="relu", is_dcn=is_dcn)
        self.conv2 = ResConvBN(f, f * 4, 1)
        if not shortcut:
            self.short = ResConvBN(cin, f * 4, 1, stride)
        self.shortcut = shortcut

    def forward(self, x):
        y = self.conv2(self.conv1(self.conv0(x)))
        return F.relu(paddle.add(x if self.shortcut else self.short(x), y))


class Basic(nn.Layer):
    def __init__(self, cin, f, stride, shortcut):
        super().__init__()
        self.conv0 = ResConvBN(cin, f, 3, stride, act="relu")
        self.conv1 = ResConvBN(f, f, 3)
        if not shortcut:
            self.short = ResConvBN(cin, f, 1, stride)
        self.shortcut = shortcut

    def forward(self, x):
        y = self.conv1(self.conv0(x))
        return F.relu(paddle.add(x if self.shortcut else self.short(x), y))


class ResNet(nn.Layer):
    def __init__(self, layers=50, dcn_stage=None):
        super().__init__()
        depth = {18: [2, 2, 2, 2], 34: [3, 4, 6, 3], 50: [3, 4, 6, 3]}[layers]
        cins = [64, 256, 512, 1024] if layers >= 50 else [64, 64, 128, 256]
        filters = [64, 128, 256, 512]
        dcn_stage = dcn_stage or [False] * 4
        self.conv = ResConvBN(3, 64, 7, 2, act="relu")
        self.pool2d_max = nn.MaxPool2D(3, 2, 1)
        self.stages, self.out_channels = [], []
        for s, n in enumerate(depth):
            blocks = []
            for i in range(n):
                stride = 2 if i == 0 and s != 0 else 1
                if layers >= 50:
                    block = Bottleneck(cins[s] if i == 0 else filters[s] * 4, filters[s], stride,
                                       i != 0, dcn_stage[s])
                else:
                    block = Basic(cins[s] if i == 0 else filters[s], filters[s], stride, i != 0)
                blocks.append(self.add_sublayer(f"res{s + 2}{chr(97 + i)}", block))
            self.out_channels.append(filters[s] * (4 if layers >= 50 else 1))
            self.stages.append(blocks)

    def forward(self, x):
        x = self.pool2d_max(self.conv(x))
        outs = []
        for blocks in self.stages:
            for b in blocks:
                x = b(x)
            outs.append(x)
        return outs


class ASFBlock(nn.Layer):
    def __init__(self, cin, inter, n=4):
        super().__init__()
        self.out_features_num = n
        self.conv = nn.Conv2D(cin, inter, 3, padding=1)
        self.spatial_scale = nn.Sequential(
            nn.Conv2D(1, 1, 3, bias_attr=False, padding=1), nn.ReLU(),
            nn.Conv2D(1, 1, 1, bias_attr=False), Sigmoid())
        self.channel_scale = nn.Sequential(nn.Conv2D(inter, n, 1, bias_attr=False), Sigmoid())

    def forward(self, fuse, features):
        fuse = self.conv(fuse)
        scores = self.spatial_scale(paddle.mean(fuse, axis=1, keepdim=True)) + fuse
        scores = self.channel_scale(scores)
        return paddle.concat([scores[:, i:i + 1] * features[i]
                              for i in range(self.out_features_num)], axis=1)


class DBFPN(nn.Layer):
    def __init__(self, in_channels, out_channels, use_asf=False):
        super().__init__()
        c = out_channels
        for i, cin in zip((2, 3, 4, 5), in_channels):
            setattr(self, f"in{i}_conv", nn.Conv2D(cin, c, 1, bias_attr=False))
        for i in (5, 4, 3, 2):
            setattr(self, f"p{i}_conv", nn.Conv2D(c, c // 4, 3, padding=1, bias_attr=False))
        self.use_asf = use_asf
        if use_asf:
            self.asf = ASFBlock(c, c // 4)

    def forward(self, x):
        c2, c3, c4, c5 = x
        up = lambda t, s: F.upsample(t, scale_factor=s, mode="nearest", align_mode=1)
        in5, in4, in3, in2 = self.in5_conv(c5), self.in4_conv(c4), self.in3_conv(c3), self.in2_conv(c2)
        out4 = in4 + up(in5, 2)
        out3 = in3 + up(out4, 2)
        out2 = in2 + up(out3, 2)
        p5 = up(self.p5_conv(in5), 8)
        p4 = up(self.p4_conv(out4), 4)
        p3 = up(self.p3_conv(out3), 2)
        p2 = self.p2_conv(out2)
        fuse = paddle.concat([p5, p4, p3, p2], axis=1)
        return self.asf(fuse, [p5, p4, p3, p2]) if self.use_asf else fuse


class DBHeadBranch(nn.Layer):
    def __init__(self, c):
        super().__init__()
        self.conv1 = nn.Conv2D(c, c // 4, 3, padding=1, bias_attr=False)
        self.conv_bn1 = nn.BatchNorm(c // 4, act="relu")
        self.conv2 = nn.Conv2DTranspose(c // 4, c // 4, 2, stride=2)
        self.conv_bn2 = nn.BatchNorm(c // 4, act="relu")
        self.conv3 = nn.Conv2DTranspose(c // 4, 1, 2, stride=2)

    def forward(self, x, return_f=False):
        # det_db_head.py's Head: PFHeadLocal also takes the features before the last conv
        f = self.conv_bn2(self.conv2(self.conv_bn1(self.conv1(x))))
        y = sigmoid(self.conv3(f))
        return (y, f) if return_f else y


class DBHead(nn.Layer):
    def __init__(self, c):
        super().__init__()
        self.binarize = DBHeadBranch(c)
        self.thresh = DBHeadBranch(c)

    def forward(self, x):
        return {"maps": self.binarize(x)}  # eval: the shrink map only


class Model(nn.Layer):
    """BaseModel: backbone -> neck -> head."""

    def __init__(self, backbone, neck, head):
        super().__init__()
        self.backbone, self.neck, self.head = backbone, neck, head

    def forward(self, x):
        return self.head(self.neck(self.backbone(x)))


# ---- the small test configurations (PaddleOCR's configs allow each)

def det_resnet_vd(layers=18):
    """det_resnet_vd.py ResNet_vd, as tests/test_resnet_family.py transcribes it."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from test_resnet_family import PResNet

    return PResNet(layers, "det")


SMALL = {
    # arch -> (table, Architecture of the test configuration)
    "east": ("det_r50_vd_east", {
        "model_type": "det", "algorithm": "EAST", "Transform": None,
        "Backbone": {"name": "ResNet_vd", "layers": 18},
        "Neck": {"name": "EASTFPN", "model_name": "small"},
        "Head": {"name": "EASTHead", "model_name": "small"}}),
    "pse": ("det_r50_vd_pse", {
        "model_type": "det", "algorithm": "PSE", "Transform": None,
        "Backbone": {"name": "ResNet_vd", "layers": 18},
        "Neck": {"name": "FPN", "out_channels": 32},
        "Head": {"name": "PSEHead", "hidden_dim": 32, "out_channels": 7}}),
    "dbpp": ("det_r50_db++_icdar15", {
        "model_type": "det", "algorithm": "DB++", "Transform": None,
        "Backbone": {"name": "ResNet", "layers": 50, "dcn_stage": [False, True, True, True]},
        "Neck": {"name": "DBFPN", "out_channels": 32, "use_asf": True},
        "Head": {"name": "DBHead", "k": 50}}),
}


def build(arch):
    if arch == "east":
        b = det_resnet_vd(18)
        neck = EASTFPN([64, 128, 256, 512], "small")
        return Model(b, neck, EASTHead(neck.out_channels, "small"))
    if arch == "pse":
        neck = FPN([64, 128, 256, 512], 32)
        return Model(det_resnet_vd(18), neck, PSEHead(neck.out_channels, 32, 7))
    b = ResNet(50, [False, True, True, True])
    return Model(b, DBFPN(b.out_channels, 32, use_asf=True), DBHead(32))


def randomize(layer, seed):
    """Every parameter and BN statistic random, scaled so the signal neither vanishes nor
    saturates through 20-50 layers (conv weights ~ 2/sqrt(fan-in), BN gains near 1): outputs
    then depend on the input pixel by pixel, which a parity check needs."""
    rng = np.random.RandomState(seed)
    for name, tensor in layer.state_dict().items():
        shape = list(tensor.shape)
        if len(shape) >= 2:
            fan_in = int(np.prod(shape[1:]))
            value = rng.uniform(-1, 1, shape) * np.sqrt(4.0 / fan_in)
        elif name.endswith(("_variance", ".weight")):
            value = rng.uniform(0.5, 1.5, shape)
        else:
            value = rng.uniform(-0.2, 0.2, shape)
        tensor.set_value(value.astype("float32"))
    layer.eval()
    return layer


def main(out_dir, fmt):
    for seed, arch in enumerate(SMALL):
        paddle.seed(seed)
        model = randomize(build(arch), seed)
        prefix = os.path.join(out_dir, fmt, arch, "inference")
        spec = [paddle.static.InputSpec([None, 3, None, None], "float32", "x")]
        paddle.jit.save(model, prefix, input_spec=spec)
        if fmt == "pir":
            os.makedirs(os.path.join(out_dir, "pdparams", arch), exist_ok=True)
            paddle.save(model.state_dict(), os.path.join(out_dir, "pdparams", arch,
                                                         "best_accuracy.pdparams"))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
