"""Paddle twin of PP-OCRv6's recogniser, transcribed from PaddleOCR's own modules
(backbones/rec_lcnetv4.py PPLCNetV4 with det=False, necks/rnn.py EncoderWithLightSVTR in a
SequenceEncoder, heads/rec_multi_head.py's CTC branch, heads/rec_ctc_head.py CTCHead): same
module tree, so the same state_dict() names. The SVTR Block, rec_svtrnet's ConvBNLayer and the
CTCHead are paddle_transformer_ref's. Run as a script it exports the training form and,
after PaddleOCR's own ``rep()``, the deploy form an export of a re-parameterized model holds
(``python paddle_v6_ref.py FORMAT OUT CONFIG_JSON``)."""

import json
import os
import sys

if __name__ == "__main__" and sys.argv[1] == "pdmodel":
    os.environ["FLAGS_enable_pir_api"] = "0"  # before paddle is imported

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import paddle  # noqa: E402
import paddle.nn as nn  # noqa: E402
import paddle.nn.functional as F  # noqa: E402

from paddle_det_twins import randomize_scaled  # noqa: E402
from paddle_ref import PaddleSE  # noqa: E402
from paddle_transformer_ref import Block, CTCHead, ConvBNLayer  # noqa: E402

NET_CONFIG_REC = {
    "tiny": {"stem": (24, 48), "stem_type": "simple",
             "blocks2": [[3, 48, 48, 1, True]],
             "blocks3": [[3, 48, 48, 1, False]],
             "blocks4": [[3, 48, 96, (2, 1), False], [3, 96, 96, 1, True],
                         [3, 96, 96, 1, False]],
             "blocks5": [[3, 96, 160, (2, 1), False], [3, 160, 160, 1, True],
                         [3, 160, 160, 1, False], [3, 160, 160, 1, False]],
             "blocks6": []},
    "small": {"stem": (48, 96), "stem_type": "branch",
              "blocks2": [[3, 96, 96, 1, True]],
              "blocks3": [[3, 96, 96, 1, False], [3, 96, 96, 1, False]],
              "blocks4": [[3, 96, 192, (2, 1), False], [3, 192, 192, 1, True],
                          [3, 192, 192, 1, False], [3, 192, 192, 1, True],
                          [3, 192, 192, 1, False], [3, 192, 192, 1, True],
                          [3, 192, 192, 1, False]],
              "blocks5": [[3, 192, 384, (2, 1), False], [3, 384, 384, 1, True],
                          [3, 384, 384, 1, False]],
              "blocks6": []},
    "medium": {"stem": (64, 128), "stem_type": "branch",
               "blocks2": [[3, 128, 128, 1, True]],
               "blocks3": [[3, 128, 256, 1, False], [3, 256, 256, 1, False],
                           [3, 256, 256, 1, True]],
               "blocks4": [[3, 256, 512, (2, 1), False], [3, 512, 512, 1, True],
                           [3, 512, 512, 1, False], [3, 512, 512, 1, True],
                           [3, 512, 512, 1, False], [3, 512, 512, 1, True],
                           [3, 512, 512, 1, False]],
               "blocks5": [[3, 512, 768, (2, 1), False], [3, 768, 768, 1, True],
                           [3, 768, 768, 1, False]],
               "blocks6": []},
}


# ---- rec_lcnetv4.py

class Conv2D_BN(nn.Sequential):
    def __init__(self, cin, cout, kernel_size=1, stride=1, padding=0, groups=1):
        super().__init__()
        self.add_sublayer("conv", nn.Conv2D(cin, cout, kernel_size, stride, padding,
                                            groups=groups, bias_attr=False))
        self.add_sublayer("bn", nn.BatchNorm2D(cout))

    @paddle.no_grad()
    def fuse(self):
        c, bn = self.conv, self.bn
        w = bn.weight / (bn._variance + bn._epsilon) ** 0.5
        w = c.weight * w[:, None, None, None]
        b = bn.bias - bn._mean * bn.weight / (bn._variance + bn._epsilon) ** 0.5
        m = nn.Conv2D(w.shape[1] * c._groups, w.shape[0], w.shape[2:], stride=c._stride,
                      padding=c._padding, groups=c._groups)
        m.weight.set_value(w)
        m.bias.set_value(b)
        return m


class ConvBNAct(nn.Layer):
    def __init__(self, cin, cout, kernel_size=3, stride=1, padding=1, use_act=True):
        super().__init__()
        self.use_act = use_act
        self.is_repped = False
        self.conv = nn.Conv2D(cin, cout, kernel_size, stride,
                              padding=padding if isinstance(padding, str)
                              else (kernel_size - 1) // 2, bias_attr=False)
        self.bn = nn.BatchNorm2D(cout)
        if use_act:
            self.act = nn.ReLU()

    def forward(self, x):
        x = self.conv(x)
        if not self.is_repped:
            x = self.bn(x)
        if self.use_act:
            x = self.act(x)
        return x

    @paddle.no_grad()
    def rep(self):
        if self.is_repped:
            return
        c, bn = self.conv, self.bn
        w = bn.weight / (bn._variance + bn._epsilon) ** 0.5
        fused_w = c.weight * w[:, None, None, None]
        fused_b = bn.bias - bn._mean * bn.weight / (bn._variance + bn._epsilon) ** 0.5
        m = nn.Conv2D(c._in_channels, c._out_channels, c._kernel_size, stride=c._stride,
                      padding=c._padding, dilation=c._dilation, groups=c._groups)
        m.weight.set_value(fused_w)
        m.bias.set_value(fused_b)
        self.conv = m
        del self.bn
        self.is_repped = True


class StemBlock(nn.Layer):
    def __init__(self, cin=3, mid=48, cout=96):
        super().__init__()
        self.stem1 = ConvBNAct(cin, mid, 3, 2)
        self.stem2a = ConvBNAct(mid, mid // 2, 2, 1, padding="SAME")
        self.stem2b = ConvBNAct(mid // 2, mid, 2, 1, padding="SAME")
        self.stem3 = ConvBNAct(mid * 2, mid, 3, 2)
        self.stem4 = ConvBNAct(mid, cout, 1, 1)
        self.pool = nn.MaxPool2D(kernel_size=2, stride=1, padding="SAME")
        self.is_repped = False

    def forward(self, x):
        x = self.stem1(x)
        x2 = self.stem2b(self.stem2a(x))
        x1 = self.pool(x)
        return self.stem4(self.stem3(paddle.concat([x1, x2], axis=1)))

    def rep(self):
        if self.is_repped:
            return
        for attr in ("stem1", "stem2a", "stem2b", "stem3", "stem4"):
            getattr(self, attr).rep()
        self.is_repped = True


class SELayer(nn.Layer):
    def __init__(self, channel, reduction=4):
        super().__init__()
        self.conv1 = nn.Conv2D(channel, channel // reduction, 1)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2D(channel // reduction, channel, 1)
        self.hardsigmoid = nn.Hardsigmoid()

    def forward(self, x):
        identity = x
        x = x.mean(axis=[2, 3], keepdim=True)
        x = self.hardsigmoid(self.conv2(self.relu(self.conv1(x))))
        return paddle.multiply(x=identity, y=x)


class RepDWConv(nn.Layer):
    def __init__(self, channels, kernel_size=3):
        super().__init__()
        self.channels, self.kernel_size = channels, kernel_size
        padding = (kernel_size - 1) // 2
        self.conv = Conv2D_BN(channels, channels, kernel_size, 1, padding, groups=channels)
        self.conv1 = nn.Conv2D(channels, channels, 1, 1, 0, groups=channels, bias_attr=False)
        self.bn = nn.BatchNorm2D(channels)
        self.is_repped = False

    def forward(self, x):
        if self.is_repped:
            return self.reparam_conv(x)
        return self.bn(self.conv(x) + self.conv1(x) + x)

    @paddle.no_grad()
    def rep(self):
        if self.is_repped:
            return
        conv = self.conv.fuse()
        p = self.kernel_size // 2
        conv1_w = F.pad(self.conv1.weight, [p, p, p, p])
        identity = F.pad(paddle.ones([self.conv1.weight.shape[0],
                                      self.conv1.weight.shape[1], 1, 1]), [p, p, p, p])
        conv.weight.set_value(conv.weight + conv1_w + identity)
        bn = self.bn
        scale = bn.weight / (bn._variance + bn._epsilon) ** 0.5
        conv.weight.set_value(conv.weight * scale[:, None, None, None])
        conv.bias.set_value(bn.bias + (conv.bias - bn._mean) * scale)
        self.reparam_conv = nn.Conv2D(self.channels, self.channels, self.kernel_size, 1,
                                      (self.kernel_size - 1) // 2, groups=self.channels)
        self.reparam_conv.weight.set_value(conv.weight)
        self.reparam_conv.bias.set_value(conv.bias)
        self.__delattr__("conv")
        self.__delattr__("conv1")
        self.__delattr__("bn")
        self.is_repped = True


class LCNetV4Block(nn.Layer):
    def __init__(self, cin, cout, stride, dw_size, use_se=False, expand_ratio=2):
        super().__init__()
        self.is_repped = False
        self.has_residual = cin == cout and stride == 1
        self.use_rep_dw = stride == 1 and cin == cout
        self.token_mixer = nn.Sequential()
        if self.use_rep_dw:
            self.token_mixer.add_sublayer("rep_dw", RepDWConv(cin, dw_size))
        else:
            self.token_mixer.add_sublayer("dw_conv", Conv2D_BN(
                cin, cin, dw_size, stride, (dw_size - 1) // 2, groups=cin))
        if use_se:
            self.token_mixer.add_sublayer("se", SELayer(cin))
        hidden = int(cin * expand_ratio)
        self.channel_mixer = nn.Sequential()
        self.channel_mixer.add_sublayer("expand", Conv2D_BN(cin, hidden, 1, 1, 0))
        self.channel_mixer.add_sublayer("act", nn.GELU())
        self.channel_mixer.add_sublayer("compress", Conv2D_BN(hidden, cout, 1, 1, 0))

    def forward(self, x):
        x = self.token_mixer(x)
        if self.has_residual:
            return x + self.channel_mixer(x)
        return self.channel_mixer(x)

    def rep(self):
        if self.is_repped:
            return
        if self.use_rep_dw:
            self.token_mixer.rep_dw.rep()
        else:
            self.token_mixer.dw_conv = self.token_mixer.dw_conv.fuse()
        for name in ("expand", "compress"):
            m = getattr(self.channel_mixer, name, None)
            if isinstance(m, Conv2D_BN):
                setattr(self.channel_mixer, name, m.fuse())
        self.is_repped = True


class PPLCNetV4(nn.Layer):
    def __init__(self, model_size="small"):
        super().__init__()
        cfg = NET_CONFIG_REC[model_size]
        mid, out = cfg["stem"]
        if cfg["stem_type"] == "branch":
            self.conv1 = StemBlock(3, mid, out)
        else:
            self.conv1 = nn.Sequential(Conv2D_BN(3, mid, 3, 2, 1), nn.GELU(),
                                       Conv2D_BN(mid, out, 3, 2, 1))

        def make_stage(name):
            return nn.Sequential(*[LCNetV4Block(i, o, s, k, se, expand_ratio=2)
                                   for k, i, o, s, se in cfg.get(name, [])])

        self.blocks2 = make_stage("blocks2")
        self.blocks3 = make_stage("blocks3")
        self.blocks4 = make_stage("blocks4")
        self.blocks5 = make_stage("blocks5")
        self.blocks6 = make_stage("blocks6")
        for name in reversed(["blocks2", "blocks3", "blocks4", "blocks5", "blocks6"]):
            if cfg.get(name):
                self.out_channels = cfg[name][-1][2]
                break

    def forward(self, x):
        x = self.conv1(x)
        x = self.blocks5(self.blocks4(self.blocks3(self.blocks2(x))))
        x = self.blocks6(x)
        if self.training:
            return F.adaptive_avg_pool2d(x, [1, 40])
        return F.avg_pool2d(x, [3, 2])

    def rep(self):
        if hasattr(self.conv1, "rep"):
            self.conv1.rep()
        for stage in (self.blocks2, self.blocks3, self.blocks4, self.blocks5, self.blocks6):
            for block in stage:
                block.rep()


# ---- the detection form of rec_lcnetv4.py (NET_CONFIG_DET)

NET_CONFIG_DET = {
    "tiny": {"stem": (16, 32),
             "blocks_s1": [[3, 32, 32, 1, True], [3, 32, 32, 1, False]],
             "blocks_s2": [[3, 32, 48, 2, False], [3, 48, 48, 1, True], [3, 48, 48, 1, False]],
             "blocks_s3": [[3, 48, 64, 2, False], [3, 64, 64, 1, True], [3, 64, 64, 1, False],
                           [3, 64, 64, 1, True], [3, 64, 64, 1, False]],
             "blocks_s4": [[3, 64, 160, 2, False], [3, 160, 160, 1, True],
                           [3, 160, 160, 1, False]]},
    "medium": {"stem": (64, 128),
               "blocks_s1": [[3, 128, 128, 1, True], [3, 128, 128, 1, False]],
               "blocks_s2": [[3, 128, 256, 2, False], [3, 256, 256, 1, True],
                             [3, 256, 256, 1, False]],
               "blocks_s3": [[3, 256, 512, 2, False], [3, 512, 512, 1, True],
                             [3, 512, 512, 1, False], [3, 512, 512, 1, True],
                             [3, 512, 512, 1, False]],
               "blocks_s4": [[3, 512, 896, 2, False], [3, 896, 896, 1, True],
                             [3, 896, 896, 1, False]]},
    "small": {"stem": (24, 48),
              "blocks_s1": [[3, 48, 48, 1, True], [3, 48, 48, 1, False]],
              "blocks_s2": [[3, 48, 96, 2, False], [3, 96, 96, 1, True], [3, 96, 96, 1, False]],
              "blocks_s3": [[3, 96, 192, 2, False], [3, 192, 192, 1, True],
                            [3, 192, 192, 1, False], [3, 192, 192, 1, True],
                            [3, 192, 192, 1, False]],
              "blocks_s4": [[3, 192, 384, 2, False], [3, 384, 384, 1, True],
                            [3, 384, 384, 1, False]]},
}


class PPLCNetV4Det(nn.Layer):
    """PPLCNetV4 with det=True (the same class in PaddleOCR; split here for readability)."""

    def __init__(self, model_size="small"):
        super().__init__()
        cfg = NET_CONFIG_DET[model_size]
        self.stem = StemBlock(3, *cfg["stem"])

        def make_stage(key):
            return nn.Sequential(*[LCNetV4Block(i, o, s, k, se, expand_ratio=2)
                                   for k, i, o, s, se in cfg[key]])

        self.blocks_s1 = make_stage("blocks_s1")
        self.blocks_s2 = make_stage("blocks_s2")
        self.blocks_s3 = make_stage("blocks_s3")
        self.blocks_s4 = make_stage("blocks_s4")
        self.out_channels = [cfg[k][-1][2] for k in ("blocks_s1", "blocks_s2", "blocks_s3",
                                                     "blocks_s4")]

    def forward(self, x):
        x = self.stem(x)
        o1 = self.blocks_s1(x)
        o2 = self.blocks_s2(o1)
        o3 = self.blocks_s3(o2)
        o4 = self.blocks_s4(o3)
        return [o1, o2, o3, o4]

    def rep(self):
        self.stem.rep()
        for stage in (self.blocks_s1, self.blocks_s2, self.blocks_s3, self.blocks_s4):
            for block in stage:
                block.rep()


# ---- necks/db_fpn.py: RSELayer, DilatedReparamBlock, RepLKFPN (det_mobilenet_v3's SEModule:
# hardsigmoid slope 0.2, offset 0.5)

class RSELayer(nn.Layer):
    def __init__(self, cin, cout, kernel_size, shortcut=True):
        super().__init__()
        self.out_channels = cout
        self.in_conv = nn.Conv2D(cin, cout, kernel_size, padding=int(kernel_size // 2),
                                 bias_attr=False)
        self.se_block = PaddleSE(cout, slope=0.2)
        self.shortcut = shortcut

    def forward(self, ins):
        x = self.in_conv(ins)
        return x + self.se_block(x) if self.shortcut else self.se_block(x)


DILATED = {5: ([3, 3], [1, 2]), 7: ([5, 3, 3], [1, 2, 3]), 9: ([5, 5, 3, 3], [1, 2, 3, 4]),
           11: ([5, 5, 3, 3, 3], [1, 2, 3, 4, 5]), 13: ([5, 7, 3, 3, 3], [1, 2, 3, 4, 5])}


class DilatedReparamBlock(nn.Layer):
    def __init__(self, channels, kernel_size=9):
        super().__init__()
        self.channels, self.kernel_size = channels, kernel_size
        self.is_repped = False
        self.kernel_sizes, self.dilates = DILATED[kernel_size]
        self.lk_origin = nn.Conv2D(channels, channels, kernel_size, 1, kernel_size // 2,
                                   groups=channels, bias_attr=False)
        self.origin_bn = nn.BatchNorm2D(channels)
        for k, r in zip(self.kernel_sizes, self.dilates):
            p = (r * (k - 1) + 1) // 2
            setattr(self, "dil_conv_k{}_{}".format(k, r), nn.Conv2D(
                channels, channels, k, 1, p, dilation=r, groups=channels, bias_attr=False))
            setattr(self, "dil_bn_k{}_{}".format(k, r), nn.BatchNorm2D(channels))

    def forward(self, x):
        if self.is_repped:
            return self.lk_origin(x)
        out = self.origin_bn(self.lk_origin(x))
        for k, r in zip(self.kernel_sizes, self.dilates):
            conv = getattr(self, "dil_conv_k{}_{}".format(k, r))
            bn = getattr(self, "dil_bn_k{}_{}".format(k, r))
            out = out + bn(conv(x))
        return out

    @staticmethod
    def _fuse_bn(conv, bn):
        std = paddle.sqrt(bn._variance + bn._epsilon)
        return conv.weight * (bn.weight / std).reshape([-1, 1, 1, 1]), \
            bn.bias - bn._mean * bn.weight / std

    @staticmethod
    def _convert_dilated_to_nondilated(kernel, r):
        if r == 1:
            return kernel
        identity = paddle.ones(shape=[1, 1, 1, 1], dtype=kernel.dtype)
        return paddle.concat([F.conv2d_transpose(kernel[i:i + 1], identity, stride=r)
                              for i in range(kernel.shape[0])], axis=0)

    @staticmethod
    def _merge(large, dilated, r):
        large_k, dilated_k = large.shape[2], dilated.shape[2]
        equiv_ks = r * (dilated_k - 1) + 1
        equiv = DilatedReparamBlock._convert_dilated_to_nondilated(dilated, r)
        rows = large_k // 2 - equiv_ks // 2
        return large + F.pad(equiv, [rows] * 4) if rows > 0 else large + equiv

    @paddle.no_grad()
    def rep(self):
        if self.is_repped:
            return
        origin_k, origin_b = self._fuse_bn(self.lk_origin, self.origin_bn)
        for k, r in zip(self.kernel_sizes, self.dilates):
            branch_k, branch_b = self._fuse_bn(getattr(self, "dil_conv_k{}_{}".format(k, r)),
                                               getattr(self, "dil_bn_k{}_{}".format(k, r)))
            origin_k = self._merge(origin_k, branch_k, r)
            origin_b = origin_b + branch_b
        merged = nn.Conv2D(self.channels, self.channels, self.kernel_size, 1,
                           self.kernel_size // 2, groups=self.channels, bias_attr=True)
        merged.weight.set_value(origin_k)
        merged.bias.set_value(origin_b)
        self.lk_origin = merged
        self.is_repped = True
        delattr(self, "origin_bn")
        for k, r in zip(self.kernel_sizes, self.dilates):
            delattr(self, "dil_conv_k{}_{}".format(k, r))
            delattr(self, "dil_bn_k{}_{}".format(k, r))


class RepLKFPN(nn.Layer):
    def __init__(self, in_channels, out_channels, shortcut=True, dilated_kernel_size=7):
        super().__init__()
        self.out_channels = out_channels
        self.ins_conv = nn.LayerList()
        self.inp_conv_dw = nn.LayerList()
        self.inp_conv_pw = nn.LayerList()
        self.inp_conv_se = nn.LayerList()
        self.shortcut = shortcut
        for c in in_channels:
            self.ins_conv.append(RSELayer(c, out_channels, 1, shortcut))
            self.inp_conv_dw.append(DilatedReparamBlock(out_channels, dilated_kernel_size))
            self.inp_conv_pw.append(nn.Conv2D(out_channels, out_channels // 4, 1,
                                              bias_attr=False))
            self.inp_conv_se.append(PaddleSE(out_channels // 4, slope=0.2))

    def _inp_forward(self, x, idx):
        x = self.inp_conv_pw[idx](self.inp_conv_dw[idx](x))
        if self.shortcut:
            return x + self.inp_conv_se[idx](x)
        return self.inp_conv_se[idx](x)

    def forward(self, x):
        c2, c3, c4, c5 = x
        in5 = self.ins_conv[3](c5)
        in4 = self.ins_conv[2](c4)
        in3 = self.ins_conv[1](c3)
        in2 = self.ins_conv[0](c2)
        out4 = in4 + F.upsample(in5, scale_factor=2, mode="nearest", align_mode=1)
        out3 = in3 + F.upsample(out4, scale_factor=2, mode="nearest", align_mode=1)
        out2 = in2 + F.upsample(out3, scale_factor=2, mode="nearest", align_mode=1)
        p5 = self._inp_forward(in5, 3)
        p4 = self._inp_forward(out4, 2)
        p3 = self._inp_forward(out3, 1)
        p2 = self._inp_forward(out2, 0)
        p5 = F.upsample(p5, scale_factor=8, mode="nearest", align_mode=1)
        p4 = F.upsample(p4, scale_factor=4, mode="nearest", align_mode=1)
        p3 = F.upsample(p3, scale_factor=2, mode="nearest", align_mode=1)
        return paddle.concat([p5, p4, p3, p2], axis=1)

    def rep(self):
        for block in self.inp_conv_dw:
            block.rep()


class DilatedReparamConv(nn.Layer):
    def __init__(self, in_channels, out_channels, kernel_size=9):
        super().__init__()
        self.is_repped = False
        self.dw = DilatedReparamBlock(in_channels, kernel_size)
        self.pw = nn.Conv2D(in_channels, out_channels, 1, bias_attr=False)
        self.bn = nn.BatchNorm2D(out_channels)

    def forward(self, x):
        x = self.pw(self.dw(x))
        if not self.is_repped:
            x = self.bn(x)
        return x

    @paddle.no_grad()
    def rep(self):
        if self.is_repped:
            return
        self.dw.rep()
        conv, bn = self.pw, self.bn
        scale = bn.weight / paddle.sqrt(bn._variance + bn._epsilon)
        fused = nn.Conv2D(conv._in_channels, conv._out_channels, conv._kernel_size,
                          stride=conv._stride, padding=conv._padding,
                          dilation=conv._dilation, groups=conv._groups)
        fused.weight.set_value(conv.weight * scale[:, None, None, None])
        fused.bias.set_value(bn.bias - bn._mean * scale)
        self.pw = fused
        del self.bn
        self.is_repped = True


class RepLKPAN(nn.Layer):
    def __init__(self, in_channels, out_channels, intracl=False):
        super().__init__()
        from test_server_family import PIntraCLBlock  # intracl.py's twin

        self.out_channels = out_channels
        self.is_repped = False
        q = out_channels // 4
        self.ins_conv = nn.LayerList()
        self.inp_conv = nn.LayerList()
        self.pan_head_conv = nn.LayerList()
        self.pan_lat_conv = nn.LayerList()
        for i, c in enumerate(in_channels):
            self.ins_conv.append(nn.Conv2D(c, out_channels, 1, bias_attr=False))
            self.inp_conv.append(DilatedReparamConv(out_channels, q, 9))
            if i > 0:
                self.pan_head_conv.append(nn.Conv2D(q, q, 3, padding=1, stride=2,
                                                    bias_attr=False))
            self.pan_lat_conv.append(DilatedReparamConv(q, q, 9))
        self.intracl = intracl
        if intracl:
            self.incl1 = PIntraCLBlock(q, 2)
            self.incl2 = PIntraCLBlock(q, 2)
            self.incl3 = PIntraCLBlock(q, 2)
            self.incl4 = PIntraCLBlock(q, 2)

    def forward(self, x):
        c2, c3, c4, c5 = x
        in5 = self.ins_conv[3](c5)
        in4 = self.ins_conv[2](c4)
        in3 = self.ins_conv[1](c3)
        in2 = self.ins_conv[0](c2)
        out4 = in4 + F.upsample(in5, scale_factor=2, mode="nearest", align_mode=1)
        out3 = in3 + F.upsample(out4, scale_factor=2, mode="nearest", align_mode=1)
        out2 = in2 + F.upsample(out3, scale_factor=2, mode="nearest", align_mode=1)
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
        if self.intracl is True:
            p5 = self.incl4(p5)
            p4 = self.incl3(p4)
            p3 = self.incl2(p3)
            p2 = self.incl1(p2)
        p5 = F.upsample(p5, scale_factor=8, mode="nearest", align_mode=1)
        p4 = F.upsample(p4, scale_factor=4, mode="nearest", align_mode=1)
        p3 = F.upsample(p3, scale_factor=2, mode="nearest", align_mode=1)
        return paddle.concat([p5, p4, p3, p2], axis=1)

    def rep(self):
        if self.is_repped:
            return
        for layer in list(self.inp_conv) + list(self.pan_lat_conv):
            layer.rep()
        self.is_repped = True


# ---- heads/det_db_head.py (PP-OCRv6: Head.rep() folds each BN into its conv; the per-level
# auxiliary heads are training-only)

class Head(nn.Layer):
    def __init__(self, c, kernel_list=(3, 2, 2)):
        super().__init__()
        self.conv1 = nn.Conv2D(c, c // 4, kernel_list[0], padding=int(kernel_list[0] // 2),
                               bias_attr=False)
        self.conv_bn1 = nn.BatchNorm(num_channels=c // 4, act="relu")
        self.conv2 = nn.Conv2DTranspose(c // 4, c // 4, kernel_list[1], stride=2)
        self.conv_bn2 = nn.BatchNorm(num_channels=c // 4, act="relu")
        self.conv3 = nn.Conv2DTranspose(c // 4, 1, kernel_list[2], stride=2)
        self.is_repped = False

    def forward(self, x):
        x = self.conv_bn1(self.conv1(x))
        x = self.conv_bn2(self.conv2(x))
        return F.sigmoid(self.conv3(x))

    @paddle.no_grad()
    def rep(self):
        if self.is_repped:
            return
        self.conv1 = self._fuse_conv_bn(self.conv1, self.conv_bn1)
        self.conv_bn1 = nn.ReLU()
        self.conv2 = self._fuse_convtranspose_bn(self.conv2, self.conv_bn2)
        self.conv_bn2 = nn.ReLU()
        self.is_repped = True

    @staticmethod
    def _fuse_conv_bn(conv, bn):
        scale = bn.weight / paddle.sqrt(bn._variance + bn._epsilon)
        fused = nn.Conv2D(conv._in_channels, conv._out_channels, conv._kernel_size,
                          stride=conv._stride, padding=conv._padding,
                          dilation=conv._dilation, groups=conv._groups)
        fused.weight.set_value(conv.weight * scale[:, None, None, None])
        fused.bias.set_value(bn.bias - bn._mean * scale)
        return fused

    @staticmethod
    def _fuse_convtranspose_bn(conv, bn):
        scale = bn.weight / paddle.sqrt(bn._variance + bn._epsilon)
        b = bn.bias - bn._mean * scale
        if conv.bias is not None:
            b = b + conv.bias * scale
        fused = nn.Conv2DTranspose(conv._in_channels, conv._out_channels, conv._kernel_size,
                                   stride=conv._stride, padding=conv._padding,
                                   dilation=conv._dilation, groups=conv._groups)
        fused.weight.set_value(conv.weight * scale[None, :, None, None])
        fused.bias.set_value(b)
        return fused


class DBHead(nn.Layer):
    def __init__(self, in_channels, k=50, aux_in_channels=0):
        super().__init__()
        self.k = k
        self.binarize = Head(in_channels)
        self.thresh = Head(in_channels)
        self.aux_in_channels = aux_in_channels
        if aux_in_channels > 0:
            for level in ("p4", "p3", "p2"):
                setattr(self, "aux_binarize_" + level, Head(aux_in_channels))
                setattr(self, "aux_thresh_" + level, Head(aux_in_channels))

    def forward(self, x):
        return self.binarize(x)  # eval: {'maps': shrink_maps}

    def rep(self):
        for layer in self.sublayers():
            if isinstance(layer, Head):
                layer.rep()


class DetModel(nn.Layer):
    def __init__(self, cfg):
        super().__init__()
        self.backbone = PPLCNetV4Det(cfg["model_size"])
        if cfg.get("pan"):  # PP-OCRv6 medium: RepLKPAN with IntraCL blocks
            self.neck = RepLKPAN(self.backbone.out_channels, cfg["neck"], intracl=True)
        else:
            self.neck = RepLKFPN(self.backbone.out_channels, cfg["neck"], True, cfg["kernel"])
        self.head = DBHead(cfg["neck"], 50, aux_in_channels=cfg["neck"])

    def forward(self, x):
        return self.head(self.neck(self.backbone(x)))


def export_rep(model):
    """tools/export_model.py (PaddleOCR 3.7): rep() on every layer that has one."""
    for layer in [model] + model.sublayers():
        if hasattr(layer, "rep") and not isinstance(layer, DetModel):
            layer.rep()


# ---- necks/rnn.py

class EncoderWithLightSVTR(nn.Layer):
    def __init__(self, in_channels, dims=64, depth=1, num_heads=8, qkv_bias=True,
                 mlp_ratio=4.0, local_kernel=7, **_):
        super().__init__()
        self.conv_reduce = ConvBNLayer(in_channels, dims, kernel_size=1, act=nn.Swish)
        self.local_conv = nn.Sequential(
            nn.Conv2D(dims, dims, [1, local_kernel], padding=[0, local_kernel // 2],
                      groups=dims, bias_attr=False),
            nn.BatchNorm2D(dims), nn.Swish())
        self.svtr_block = nn.LayerList([
            Block(dim=dims, num_heads=num_heads, mixer="Global", HW=None, mlp_ratio=mlp_ratio,
                  qkv_bias=qkv_bias, act_layer=nn.Swish, epsilon=1e-05, prenorm=False)
            for _ in range(depth)])
        self.norm = nn.LayerNorm(dims, epsilon=1e-6)
        self.skip_conv = ConvBNLayer(in_channels, dims, kernel_size=1, act=nn.Swish)
        self.out_channels = dims

    def forward(self, x):
        skip = self.skip_conv(x)
        z = self.conv_reduce(x)
        z = z + self.local_conv(z)
        B, C, H, W = z.shape
        z = z.flatten(2).transpose([0, 2, 1])
        for blk in self.svtr_block:
            z = blk(z)
        z = self.norm(z)
        z = z.reshape([0, H, W, C]).transpose([0, 3, 1, 2])
        return z + skip


class Im2Seq(nn.Layer):
    def forward(self, x):
        return x.squeeze(axis=2).transpose([0, 2, 1])


class SequenceEncoder(nn.Layer):
    def __init__(self, in_channels, **neck):
        super().__init__()
        self.encoder_reshape = Im2Seq()
        self.encoder = EncoderWithLightSVTR(in_channels, **neck)
        self.out_channels = self.encoder.out_channels

    def forward(self, x):
        return self.encoder_reshape(self.encoder(x))


class CTCHeadMid(nn.Layer):
    """heads/rec_ctc_head.py CTCHead (PaddleOCR 3.7) with use_guide and mid_channels: the
    guide layer (depthwise k5 + pointwise Conv1D, BN1D + hardswish each) over the sequence,
    fc1, fc2, softmax at inference."""

    def __init__(self, cin, classes, mid_channels, use_guide=False):
        super().__init__()
        self.use_guide = use_guide
        if use_guide:
            self.guide_layer = nn.Sequential(
                nn.Conv1D(cin, cin, kernel_size=5, padding=2, groups=cin, bias_attr=False),
                nn.BatchNorm1D(cin), nn.Hardswish(),
                nn.Conv1D(cin, cin, kernel_size=1, bias_attr=False),
                nn.BatchNorm1D(cin), nn.Hardswish())
        self.fc1 = nn.Linear(cin, mid_channels)
        self.fc2 = nn.Linear(mid_channels, classes)

    def forward(self, x):
        if self.use_guide:
            x = self.guide_layer(x.transpose([0, 2, 1])).transpose([0, 2, 1])
        return F.softmax(self.fc2(self.fc1(x)), axis=2)


class ReshapeEncoder(nn.Layer):
    """SequenceEncoder(encoder_type='reshape'): Im2Seq only (PP-OCRv6 tiny)."""

    def __init__(self, in_channels):
        super().__init__()
        self.encoder_reshape = Im2Seq()
        self.out_channels = in_channels

    def forward(self, x):
        return self.encoder_reshape(x)


class MultiHead(nn.Layer):
    """The CTC branch of heads/rec_multi_head.py (the NRTR branch is training-only)."""

    def __init__(self, in_channels, classes, mid_channels=None, use_guide=False, **neck):
        super().__init__()
        self.encoder_reshape = Im2Seq()
        if neck.get("name") == "reshape":
            self.ctc_encoder = ReshapeEncoder(in_channels)
        else:
            self.ctc_encoder = SequenceEncoder(in_channels, **neck)
        if mid_channels:
            self.ctc_head = CTCHeadMid(self.ctc_encoder.out_channels, classes, mid_channels,
                                       use_guide)
        else:
            self.ctc_head = CTCHead(self.ctc_encoder.out_channels, classes)

    def forward(self, x):
        return self.ctc_head(self.ctc_encoder(x))


class BaseModel(nn.Layer):
    def __init__(self, cfg):
        super().__init__()
        self.backbone = PPLCNetV4(cfg["model_size"])
        self.head = MultiHead(self.backbone.out_channels, cfg["classes"],
                              cfg.get("mid_channels"), cfg.get("use_guide", False),
                              **cfg["neck"])

    def forward(self, x):
        return self.head(self.backbone(x))


# scaled up after the fan-in scaling: attention peaked and class probabilities far from
# uniform, so that a mix-up anywhere shows in the output (near-uniform softmax hides errors)
# The residual branches' last BN scale is small (PaddleOCR initialises it to 0): with scales
# around 1 the 15 residual blocks grow the activations ~100x and the softmax saturates.
SHARPEN = (("qkv.weight", 4.0), ("compress.bn.weight", 0.2),
           ("ctc_head.fc1.weight", 4.0), ("ctc_head.fc2.weight", 12.0))  # tiny's two-layer head


def build(cfg, seed=0):
    """The randomised recogniser, training form: every parameter and BN statistic random,
    weights ~ 1/sqrt(fan-in) and BN scales around 1 so the deep stack keeps unit-scale
    activations (then SHARPEN)."""
    paddle.seed(seed)
    model = randomize_scaled(BaseModel(cfg), cfg.get("seed", seed))
    for name, t in model.state_dict().items():
        factor = next((f for key, f in SHARPEN if name.endswith(key)), None)
        if factor:
            t.set_value(t.numpy() * factor)
    return model.eval()


def build_det(cfg, seed=0):
    """The randomised detector, training form (aux heads included, as checkpoints hold them).
    The residual branches' last BN scale is small, as for the recogniser; the head's BN
    statistics are drawn around the activations so the probability map is not saturated."""
    paddle.seed(seed)
    model = randomize_scaled(DetModel(cfg), cfg.get("seed", seed))
    for name, t in model.state_dict().items():
        if name.endswith("compress.bn.weight"):
            t.set_value(t.numpy() * 0.2)
    return model.eval()


def export(fmt, out, cfg):
    """OUT/train: the training form's program, OUT/train.pdparams its weights; OUT/deploy:
    the same model's program after PaddleOCR's rep()."""
    det = cfg.get("task") == "det"
    model = build_det(cfg) if det else build(cfg)
    spec = [paddle.static.InputSpec([None] + list(cfg["input"]), "float32", "x")]
    paddle.jit.save(model, os.path.join(out, "train", "inference"), input_spec=spec)
    paddle.save(model.state_dict(), os.path.join(out, "train.pdparams"))
    if det:
        export_rep(model)
    else:
        model.backbone.rep()
    paddle.jit.save(model, os.path.join(out, "deploy", "inference"), input_spec=spec)


if __name__ == "__main__":
    config = json.loads(sys.argv[3])
    if isinstance(config, list):  # several networks in one paddle process: OUT/<dir>/...
        for one in config:
            os.makedirs(os.path.join(sys.argv[2], one["dir"]), exist_ok=True)
            export(sys.argv[1], os.path.join(sys.argv[2], one["dir"]), one)
    else:
        export(sys.argv[1], sys.argv[2], config)
