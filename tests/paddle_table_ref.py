"""Paddle twin of SLANet, transcribed from PaddleOCR's own modules (same module tree, same
parameter names): ppocr/modeling/backbones/det_pp_lcnet.py (PPLCNet returning blocks3-6),
ppocr/modeling/necks/csp_pan.py (CSPPAN), ppocr/modeling/heads/table_att_head.py (SLAHead,
inference path) with rec_att_head.py's AttentionGRUCell. Imported by the export scripts of
tests/test_table.py (run in a subprocess so FLAGS_enable_pir_api can differ)."""

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F
from paddle.nn import AdaptiveAvgPool2D, BatchNorm, Conv2D

NET_CONFIG = {
    "blocks2": [[3, 16, 32, 1, False]],
    "blocks3": [[3, 32, 64, 2, False], [3, 64, 64, 1, False]],
    "blocks4": [[3, 64, 128, 2, False], [3, 128, 128, 1, False]],
    "blocks5": [[3, 128, 256, 2, False], [5, 256, 256, 1, False], [5, 256, 256, 1, False],
                [5, 256, 256, 1, False], [5, 256, 256, 1, False], [5, 256, 256, 1, False]],
    "blocks6": [[5, 256, 512, 2, True], [5, 512, 512, 1, True]],
}


def make_divisible(v, divisor=8, min_value=None):
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


# ---- det_pp_lcnet.py

class LCNetConvBNLayer(nn.Layer):
    def __init__(self, num_channels, filter_size, num_filters, stride, num_groups=1):
        super().__init__()
        self.conv = Conv2D(num_channels, num_filters, filter_size, stride=stride,
                           padding=(filter_size - 1) // 2, groups=num_groups, bias_attr=False)
        self.bn = BatchNorm(num_filters)
        self.hardswish = nn.Hardswish()

    def forward(self, x):
        return self.hardswish(self.bn(self.conv(x)))


class SEModule(nn.Layer):
    def __init__(self, channel, reduction=4):
        super().__init__()
        self.avg_pool = AdaptiveAvgPool2D(1)
        self.conv1 = Conv2D(channel, channel // reduction, 1, stride=1, padding=0)
        self.relu = nn.ReLU()
        self.conv2 = Conv2D(channel // reduction, channel, 1, stride=1, padding=0)
        self.hardsigmoid = nn.Hardsigmoid()

    def forward(self, x):
        identity = x
        x = self.hardsigmoid(self.conv2(self.relu(self.conv1(self.avg_pool(x)))))
        # PaddleOCR writes paddle.multiply(x=identity, y=x); paddle 3.3's old-IR export
        # rejects that call, so the same elementwise product is written as an operator
        return identity * x


class DepthwiseSeparable(nn.Layer):
    def __init__(self, num_channels, num_filters, stride, dw_size=3, use_se=False):
        super().__init__()
        self.use_se = use_se
        self.dw_conv = LCNetConvBNLayer(num_channels, dw_size, num_channels, stride,
                                        num_groups=num_channels)
        if use_se:
            self.se = SEModule(num_channels)
        self.pw_conv = LCNetConvBNLayer(num_channels, 1, num_filters, 1)

    def forward(self, x):
        x = self.dw_conv(x)
        if self.use_se:
            x = self.se(x)
        return self.pw_conv(x)


class PPLCNet(nn.Layer):
    def __init__(self, in_channels=3, scale=1.0):
        super().__init__()
        self.out_channels = [int(NET_CONFIG[b][-1][2] * scale)
                             for b in ("blocks3", "blocks4", "blocks5", "blocks6")]
        self.conv1 = LCNetConvBNLayer(in_channels, 3, make_divisible(16 * scale), 2)

        def stage(name):
            return nn.Sequential(*[
                DepthwiseSeparable(make_divisible(in_c * scale), make_divisible(out_c * scale),
                                   dw_size=k, stride=s, use_se=se)
                for k, in_c, out_c, s, se in NET_CONFIG[name]])

        self.blocks2 = stage("blocks2")
        self.blocks3 = stage("blocks3")
        self.blocks4 = stage("blocks4")
        self.blocks5 = stage("blocks5")
        self.blocks6 = stage("blocks6")

    def forward(self, x):
        outs = []
        x = self.blocks2(self.conv1(x))
        x = self.blocks3(x)
        outs.append(x)
        x = self.blocks4(x)
        outs.append(x)
        x = self.blocks5(x)
        outs.append(x)
        x = self.blocks6(x)
        outs.append(x)
        return outs


# ---- csp_pan.py

class ConvBNLayer(nn.Layer):
    def __init__(self, in_channel=96, out_channel=96, kernel_size=3, stride=1, groups=1,
                 act="leaky_relu"):
        super().__init__()
        self.act = act
        self.conv = nn.Conv2D(in_channel, out_channel, kernel_size, groups=groups,
                              padding=(kernel_size - 1) // 2, stride=stride, bias_attr=False)
        self.bn = nn.BatchNorm2D(out_channel)

    def forward(self, x):
        x = self.bn(self.conv(x))
        if self.act == "leaky_relu":
            x = F.leaky_relu(x)
        elif self.act == "hard_swish":
            x = F.hardswish(x)
        return x


class DPModule(nn.Layer):
    def __init__(self, in_channel=96, out_channel=96, kernel_size=3, stride=1,
                 act="leaky_relu"):
        super().__init__()
        self.act = act
        self.dwconv = nn.Conv2D(in_channel, out_channel, kernel_size, groups=out_channel,
                                padding=(kernel_size - 1) // 2, stride=stride, bias_attr=False)
        self.bn1 = nn.BatchNorm2D(out_channel)
        self.pwconv = nn.Conv2D(out_channel, out_channel, 1, groups=1, padding=0,
                                bias_attr=False)
        self.bn2 = nn.BatchNorm2D(out_channel)

    def act_func(self, x):
        if self.act == "leaky_relu":
            x = F.leaky_relu(x)
        elif self.act == "hard_swish":
            x = F.hardswish(x)
        return x

    def forward(self, x):
        x = self.act_func(self.bn1(self.dwconv(x)))
        return self.act_func(self.bn2(self.pwconv(x)))


class DarknetBottleneck(nn.Layer):
    def __init__(self, in_channels, out_channels, kernel_size=3, expansion=0.5,
                 add_identity=True, use_depthwise=False, act="leaky_relu"):
        super().__init__()
        hidden_channels = int(out_channels * expansion)
        conv_func = DPModule if use_depthwise else ConvBNLayer
        self.conv1 = ConvBNLayer(in_channels, hidden_channels, 1, act=act)
        self.conv2 = conv_func(hidden_channels, out_channels, kernel_size=kernel_size,
                               stride=1, act=act)
        self.add_identity = add_identity and in_channels == out_channels

    def forward(self, x):
        out = self.conv2(self.conv1(x))
        return out + x if self.add_identity else out


class CSPLayer(nn.Layer):
    def __init__(self, in_channels, out_channels, kernel_size=3, expand_ratio=0.5,
                 num_blocks=1, add_identity=True, use_depthwise=False, act="leaky_relu"):
        super().__init__()
        mid_channels = int(out_channels * expand_ratio)
        self.main_conv = ConvBNLayer(in_channels, mid_channels, 1, act=act)
        self.short_conv = ConvBNLayer(in_channels, mid_channels, 1, act=act)
        self.final_conv = ConvBNLayer(2 * mid_channels, out_channels, 1, act=act)
        self.blocks = nn.Sequential(*[
            DarknetBottleneck(mid_channels, mid_channels, kernel_size, 1.0, add_identity,
                              use_depthwise, act=act) for _ in range(num_blocks)])

    def forward(self, x):
        x_short = self.short_conv(x)
        x_main = self.blocks(self.main_conv(x))
        return self.final_conv(paddle.concat((x_main, x_short), axis=1))


class Channel_T(nn.Layer):
    def __init__(self, in_channels=(116, 232, 464), out_channels=96, act="leaky_relu"):
        super().__init__()
        self.convs = nn.LayerList()
        for c in in_channels:
            self.convs.append(ConvBNLayer(c, out_channels, 1, act=act))

    def forward(self, x):
        return [self.convs[i](x[i]) for i in range(len(x))]


class CSPPAN(nn.Layer):
    def __init__(self, in_channels, out_channels, kernel_size=5, num_csp_blocks=1,
                 use_depthwise=True, act="hard_swish"):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = [out_channels] * len(in_channels)
        conv_func = DPModule if use_depthwise else ConvBNLayer
        self.conv_t = Channel_T(in_channels, out_channels, act=act)
        self.top_down_blocks = nn.LayerList()
        for idx in range(len(in_channels) - 1, 0, -1):
            self.top_down_blocks.append(CSPLayer(
                out_channels * 2, out_channels, kernel_size=kernel_size,
                num_blocks=num_csp_blocks, add_identity=False, use_depthwise=use_depthwise,
                act=act))
        self.downsamples = nn.LayerList()
        self.bottom_up_blocks = nn.LayerList()
        for idx in range(len(in_channels) - 1):
            self.downsamples.append(conv_func(out_channels, out_channels,
                                              kernel_size=kernel_size, stride=2, act=act))
            self.bottom_up_blocks.append(CSPLayer(
                out_channels * 2, out_channels, kernel_size=kernel_size,
                num_blocks=num_csp_blocks, add_identity=False, use_depthwise=use_depthwise,
                act=act))

    def forward(self, inputs):
        inputs = self.conv_t(inputs)
        inner_outs = [inputs[-1]]
        for idx in range(len(self.in_channels) - 1, 0, -1):
            feat_heigh = inner_outs[0]
            feat_low = inputs[idx - 1]
            upsample_feat = F.upsample(feat_heigh, size=feat_low.shape[2:4], mode="nearest")
            inner_out = self.top_down_blocks[len(self.in_channels) - 1 - idx](
                paddle.concat([upsample_feat, feat_low], 1))
            inner_outs.insert(0, inner_out)
        outs = [inner_outs[0]]
        for idx in range(len(self.in_channels) - 1):
            feat_low = outs[-1]
            feat_height = inner_outs[idx + 1]
            downsample_feat = self.downsamples[idx](feat_low)
            out = self.bottom_up_blocks[idx](paddle.concat([downsample_feat, feat_height], 1))
            outs.append(out)
        return tuple(outs)


# ---- rec_att_head.py / table_att_head.py

class AttentionGRUCell(nn.Layer):
    def __init__(self, input_size, hidden_size, num_embeddings, use_gru=False):
        super().__init__()
        self.i2h = nn.Linear(input_size, hidden_size, bias_attr=False)
        self.h2h = nn.Linear(hidden_size, hidden_size)
        self.score = nn.Linear(hidden_size, 1, bias_attr=False)
        self.rnn = nn.GRUCell(input_size=input_size + num_embeddings, hidden_size=hidden_size)
        self.hidden_size = hidden_size

    def forward(self, prev_hidden, batch_H, char_onehots):
        batch_H_proj = self.i2h(batch_H)
        prev_hidden_proj = paddle.unsqueeze(self.h2h(prev_hidden), axis=1)
        res = paddle.tanh(paddle.add(batch_H_proj, prev_hidden_proj))
        e = self.score(res)
        alpha = F.softmax(e, axis=1)
        alpha = paddle.transpose(alpha, [0, 2, 1])
        context = paddle.squeeze(paddle.mm(alpha, batch_H), axis=1)
        concat_context = paddle.concat([context, char_onehots], 1)
        cur_hidden = self.rnn(concat_context, prev_hidden)
        return cur_hidden, alpha


class SLAHead(nn.Layer):
    """Inference path of PaddleOCR's SLAHead (use_attn False; the training branch with
    targets is not part of an export)."""

    def __init__(self, in_channels, hidden_size, out_channels=30, max_text_length=500,
                 loc_reg_num=4, fc_decay=0.0, **kwargs):
        super().__init__()
        in_channels = in_channels[-1]
        self.hidden_size = hidden_size
        self.max_text_length = max_text_length
        self.emb = self._char_to_onehot
        self.num_embeddings = out_channels
        self.loc_reg_num = loc_reg_num
        self.eos = self.num_embeddings - 1
        self.structure_attention_cell = AttentionGRUCell(in_channels, hidden_size,
                                                         self.num_embeddings)
        self.structure_generator = nn.Sequential(nn.Linear(self.hidden_size, self.hidden_size),
                                                 nn.Linear(hidden_size, out_channels))
        self.loc_generator = nn.Sequential(nn.Linear(self.hidden_size, self.hidden_size),
                                           nn.Linear(self.hidden_size, loc_reg_num),
                                           nn.Sigmoid())

    def forward(self, inputs, targets=None):
        fea = inputs[-1]
        batch_size = fea.shape[0]
        fea = paddle.reshape(fea, [fea.shape[0], fea.shape[1], -1])
        fea = fea.transpose([0, 2, 1])
        hidden = paddle.zeros((batch_size, self.hidden_size))
        structure_preds = paddle.zeros((batch_size, self.max_text_length + 1,
                                        self.num_embeddings))
        loc_preds = paddle.zeros((batch_size, self.max_text_length + 1, self.loc_reg_num))
        structure_preds.stop_gradient = True
        loc_preds.stop_gradient = True
        structure_ids = paddle.zeros((batch_size, self.max_text_length + 1), dtype="int32")
        pre_chars = paddle.zeros(shape=[batch_size], dtype="int32")
        max_text_length = paddle.to_tensor(self.max_text_length)
        for i in range(max_text_length + 1):
            hidden, structure_step, loc_step = self._decode(pre_chars, fea, hidden)
            pre_chars = structure_step.argmax(axis=1, dtype="int32")
            structure_preds[:, i, :] = structure_step
            loc_preds[:, i, :] = loc_step
            structure_ids[:, i] = pre_chars
            if (structure_ids == self.eos).any(-1).all():
                break
        if not self.training:
            structure_preds = F.softmax(structure_preds[:, : i + 1])
            loc_preds = loc_preds[:, : i + 1]
        return {"structure_probs": structure_preds, "loc_preds": loc_preds}

    def _decode(self, pre_chars, features, hidden):
        emb_feature = self.emb(pre_chars)
        (output, hidden), alpha = self.structure_attention_cell(hidden, features, emb_feature)
        structure_step = self.structure_generator(output)
        loc_step = self.loc_generator(output)
        return hidden, structure_step, loc_step

    def _char_to_onehot(self, input_char):
        return F.one_hot(input_char, self.num_embeddings)


class SLANet(nn.Layer):
    """BaseModel with backbone, neck, head (PaddleOCR's names)."""

    def __init__(self, scale, neck_channels, hidden_size, out_channels, max_text_length,
                 loc_reg_num=8):
        super().__init__()
        self.backbone = PPLCNet(scale=scale)
        self.neck = CSPPAN(self.backbone.out_channels, neck_channels)
        self.head = SLAHead(self.neck.out_channels, hidden_size, out_channels,
                            max_text_length, loc_reg_num)

    def forward(self, x):
        return self.head(self.neck(self.backbone(x)))


def randomize(layer, seed=0, head_seed=14):
    """Every parameter and BN statistic random: backbone and neck scaled to keep activations
    O(1); the decoder's parameters uniform in [-1, 1] from their own seed. With head seed 14
    (small SLANet of tests/test_table.py) the greedy decoding emits the end token before
    its last step, so the early stop and the program's extra step are exercised."""
    rng = np.random.RandomState(seed)
    for name, tensor in layer.state_dict().items():
        shape = list(tensor.shape)
        if name.endswith("_variance"):
            value = rng.uniform(0.5, 1.5, shape)
        elif len(shape) >= 2:
            fan_in = int(np.prod(shape[1:])) if len(shape) == 4 else shape[0]
            value = rng.uniform(-1, 1, shape) * np.sqrt(3.0 / fan_in)
        else:
            value = rng.uniform(-0.5, 0.5, shape)
        tensor.set_value(value.astype(tensor.numpy().dtype))
    head = getattr(layer, "head", None)
    if head is not None:
        rng = np.random.RandomState(head_seed)
        for tensor in head.state_dict().values():
            tensor.set_value(rng.uniform(-1, 1, tensor.shape).astype(tensor.numpy().dtype))
    layer.eval()
    return layer
