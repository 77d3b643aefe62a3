"""Paddle twin of PaddleOCR's SPIN (configs/rec/rec_r32_gaspin_bilstm_att.yml):
transforms/gaspin_transformer.py (GA_SPIN_Transformer, SP_TransformerNetwork; its TPS
GridGenerator is tests/test_tps_attention.py's twin of transforms/tps.py), backbones/
rec_resnet_32.py, necks/rnn.py's cascadernn SequenceEncoder and heads/rec_spin_att_head.py,
written with paddle as PaddleOCR writes them (same module tree, so the same state_dict()
names), in BaseModel (tests/paddle_twins_stn.py's Model)."""

import functools
from math import log

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F
from paddle import ParamAttr

from paddle_twins_stn import Model
from test_resnet_family import randomize_unit
from test_tps_attention import PGridGenerator as GridGenerator


# ---- transforms/gaspin_transformer.py

class SP_TransformerNetwork(nn.Layer):
    def __init__(self, nc=1, default_type=5):
        super().__init__()
        self.power_list = self.cal_K(default_type)
        self.sigmoid = nn.Sigmoid()
        self.bn = nn.InstanceNorm2D(nc)

    def cal_K(self, k=5):
        x = []
        if k != 0:
            for i in range(1, k + 1):
                lower = round(log(1 - (0.5 / (k + 1)) * i) / log((0.5 / (k + 1)) * i), 2)
                upper = round(1 / lower, 2)
                x.append(lower)
                x.append(upper)
        x.append(1.00)
        return x

    def forward(self, batch_I, weights, offsets, lambda_color=None):
        batch_I = (batch_I + 1) * 0.5
        if offsets is not None:
            batch_I = batch_I * (1 - lambda_color) + offsets * lambda_color
        batch_weight_params = paddle.unsqueeze(paddle.unsqueeze(weights, -1), -1)
        batch_I_power = paddle.stack([batch_I.pow(p) for p in self.power_list], axis=1)
        batch_weight_sum = paddle.sum(batch_I_power * batch_weight_params, axis=1)
        batch_weight_sum = self.bn(batch_weight_sum)
        batch_weight_sum = self.sigmoid(batch_weight_sum)
        return batch_weight_sum * 2 - 1


class GA_SPIN_Transformer(nn.Layer):
    def __init__(self, in_channels=1, I_r_size=(32, 100), offsets=False, norm_type="BN",
                 default_type=6, loc_lr=1, stn=True):
        super().__init__()
        self.nc = in_channels
        self.spt = True
        self.offsets = offsets
        self.stn = stn
        self.I_r_size = I_r_size
        self.out_channels = in_channels
        norm_layer = functools.partial(nn.BatchNorm2D, use_global_stats=True)
        self.sp_net = SP_TransformerNetwork(in_channels, default_type)
        self.spt_convnet = nn.Sequential(
            nn.Conv2D(in_channels, 32, 3, 1, 1, bias_attr=False), norm_layer(32), nn.ReLU(),
            nn.MaxPool2D(kernel_size=2, stride=2),
            nn.Conv2D(32, 64, 3, 1, 1, bias_attr=False), norm_layer(64), nn.ReLU(),
            nn.MaxPool2D(kernel_size=2, stride=2),
            nn.Conv2D(64, 128, 3, 1, 1, bias_attr=False), norm_layer(128), nn.ReLU(),
            nn.MaxPool2D(kernel_size=2, stride=2))
        self.stucture_fc1 = nn.Sequential(
            nn.Conv2D(128, 256, 3, 1, 1, bias_attr=False), norm_layer(256), nn.ReLU(),
            nn.MaxPool2D(kernel_size=2, stride=2),
            nn.Conv2D(256, 256, 3, 1, 1, bias_attr=False), norm_layer(256), nn.ReLU(),
            nn.MaxPool2D(kernel_size=2, stride=2),
            nn.Conv2D(256, 512, 3, 1, 1, bias_attr=False), norm_layer(512), nn.ReLU(),
            nn.AdaptiveAvgPool2D(1), nn.Flatten(1, -1),
            nn.Linear(512, 256, weight_attr=nn.initializer.Normal(0.001)),
            nn.BatchNorm1D(256), nn.ReLU())
        self.out_weight = 2 * default_type + 1
        self.spt_length = 2 * default_type + 1
        if offsets:
            self.out_weight += 1
        if self.stn:
            self.F = 20
            self.out_weight += self.F * 2
            self.GridGenerator = GridGenerator(self.F * 2, self.F)
        initial_bias = self.init_spin(default_type * 2).reshape(-1)
        param_attr = ParamAttr(learning_rate=loc_lr, initializer=nn.initializer.Assign(
            np.zeros([256, self.out_weight])))
        bias_attr = ParamAttr(learning_rate=loc_lr,
                              initializer=nn.initializer.Assign(initial_bias))
        self.stucture_fc2 = nn.Linear(256, self.out_weight, weight_attr=param_attr,
                                      bias_attr=bias_attr)
        self.sigmoid = nn.Sigmoid()
        if offsets:
            self.offset_fc1 = nn.Sequential(nn.Conv2D(128, 16, 3, 1, 1, bias_attr=False),
                                            norm_layer(16), nn.ReLU())
            self.offset_fc2 = nn.Conv2D(16, in_channels, 3, 1, 1)
            self.pool = nn.MaxPool2D(2, 2)

    def init_spin(self, nz):
        init_id = [0.00] * nz + [5.00]
        if self.offsets:
            init_id += [-5.00]
        init = np.array(init_id)
        if self.stn:
            F_ = self.F
            ctrl_pts_x = np.linspace(-1.0, 1.0, int(F_ / 2))
            ctrl_pts_y_top = np.linspace(0.0, -1.0, num=int(F_ / 2))
            ctrl_pts_y_bottom = np.linspace(1.0, 0.0, num=int(F_ / 2))
            ctrl_pts_top = np.stack([ctrl_pts_x, ctrl_pts_y_top], axis=1)
            ctrl_pts_bottom = np.stack([ctrl_pts_x, ctrl_pts_y_bottom], axis=1)
            initial_bias = np.concatenate([ctrl_pts_top, ctrl_pts_bottom], axis=0).reshape(-1)
            init = np.concatenate([init, initial_bias], axis=0)
        return init

    def forward(self, x, return_weight=False):
        feat = self.spt_convnet(x)
        fc1 = self.stucture_fc1(feat)
        sp_weight_fusion = self.stucture_fc2(fc1)
        sp_weight_fusion = sp_weight_fusion.reshape([x.shape[0], self.out_weight, 1])
        if self.offsets:
            lambda_color = sp_weight_fusion[:, self.spt_length, 0]
            lambda_color = self.sigmoid(lambda_color).unsqueeze(-1).unsqueeze(-1).unsqueeze(-1)
            sp_weight = sp_weight_fusion[:, :self.spt_length, :]
            offsets = self.pool(self.offset_fc2(self.offset_fc1(feat)))
            assert offsets.shape[2] == 2
            assert offsets.shape[3] == 6
            offsets = self.sigmoid(offsets)
            if return_weight:
                return offsets
            offsets = nn.functional.upsample(offsets, size=(x.shape[2], x.shape[3]),
                                             mode="bilinear")
            if self.stn:
                batch_C_prime = sp_weight_fusion[:, (self.spt_length + 1):, :].reshape(
                    [x.shape[0], self.F, 2])
                build_P_prime = self.GridGenerator(batch_C_prime, self.I_r_size)
                build_P_prime_reshape = build_P_prime.reshape(
                    [build_P_prime.shape[0], self.I_r_size[0], self.I_r_size[1], 2])
        else:
            sp_weight = sp_weight_fusion[:, :self.spt_length, :]
            lambda_color, offsets = None, None
            if self.stn:
                batch_C_prime = sp_weight_fusion[:, self.spt_length:, :].reshape(
                    [x.shape[0], self.F, 2])
                build_P_prime = self.GridGenerator(batch_C_prime, self.I_r_size)
                build_P_prime_reshape = build_P_prime.reshape(
                    [build_P_prime.shape[0], self.I_r_size[0], self.I_r_size[1], 2])
        x = self.sp_net(x, sp_weight, offsets, lambda_color)
        if self.stn:
            x = F.grid_sample(x=x, grid=build_P_prime_reshape, padding_mode="border")
        return x


# ---- backbones/rec_resnet_32.py

class BasicBlock(nn.Layer):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2D(inplanes, planes, 3, stride, 1, bias_attr=False)
        self.bn1 = nn.BatchNorm2D(planes)
        self.conv2 = nn.Conv2D(planes, planes, 3, 1, 1, bias_attr=False)
        self.bn2 = nn.BatchNorm2D(planes)
        self.relu = nn.ReLU()
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        residual = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            residual = self.downsample(x)
        out += residual
        return self.relu(out)


class ResNet(nn.Layer):
    def __init__(self, input_channel, output_channel, block, layers):
        super().__init__()
        self.output_channel_block = [int(output_channel / 4), int(output_channel / 2),
                                     output_channel, output_channel]
        ocb = self.output_channel_block
        self.inplanes = int(output_channel / 8)
        self.conv0_1 = nn.Conv2D(input_channel, int(output_channel / 16), 3, 1, 1,
                                 bias_attr=False)
        self.bn0_1 = nn.BatchNorm2D(int(output_channel / 16))
        self.conv0_2 = nn.Conv2D(int(output_channel / 16), self.inplanes, 3, 1, 1,
                                 bias_attr=False)
        self.bn0_2 = nn.BatchNorm2D(self.inplanes)
        self.relu = nn.ReLU()
        self.maxpool1 = nn.MaxPool2D(kernel_size=2, stride=2, padding=0)
        self.layer1 = self._make_layer(block, ocb[0], layers[0])
        self.conv1 = nn.Conv2D(ocb[0], ocb[0], 3, 1, 1, bias_attr=False)
        self.bn1 = nn.BatchNorm2D(ocb[0])
        self.maxpool2 = nn.MaxPool2D(kernel_size=2, stride=2, padding=0)
        self.layer2 = self._make_layer(block, ocb[1], layers[1], stride=1)
        self.conv2 = nn.Conv2D(ocb[1], ocb[1], 3, 1, 1, bias_attr=False)
        self.bn2 = nn.BatchNorm2D(ocb[1])
        self.maxpool3 = nn.MaxPool2D(kernel_size=2, stride=(2, 1), padding=(0, 1))
        self.layer3 = self._make_layer(block, ocb[2], layers[2], stride=1)
        self.conv3 = nn.Conv2D(ocb[2], ocb[2], 3, 1, 1, bias_attr=False)
        self.bn3 = nn.BatchNorm2D(ocb[2])
        self.layer4 = self._make_layer(block, ocb[3], layers[3], stride=1)
        self.conv4_1 = nn.Conv2D(ocb[3], ocb[3], 2, (2, 1), (0, 1), bias_attr=False)
        self.bn4_1 = nn.BatchNorm2D(ocb[3])
        self.conv4_2 = nn.Conv2D(ocb[3], ocb[3], 2, 1, 0, bias_attr=False)
        self.bn4_2 = nn.BatchNorm2D(ocb[3])

    def _make_layer(self, block, planes, blocks, stride=1):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2D(self.inplanes, planes * block.expansion, 1, stride, bias_attr=False),
                nn.BatchNorm2D(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        for _ in range(1, blocks):
            layers.append(block(self.inplanes, planes))
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.relu(self.bn0_1(self.conv0_1(x)))
        x = self.relu(self.bn0_2(self.conv0_2(x)))
        x = self.maxpool1(x)
        x = self.layer1(x)
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.maxpool2(x)
        x = self.layer2(x)
        x = self.relu(self.bn2(self.conv2(x)))
        x = self.maxpool3(x)
        x = self.layer3(x)
        x = self.relu(self.bn3(self.conv3(x)))
        x = self.layer4(x)
        x = self.relu(self.bn4_1(self.conv4_1(x)))
        x = self.relu(self.bn4_2(self.conv4_2(x)))
        return x


class ResNet32(nn.Layer):
    def __init__(self, in_channels, out_channels=512):
        super().__init__()
        self.out_channels = out_channels
        self.ConvNet = ResNet(in_channels, out_channels, BasicBlock, [1, 2, 5, 3])

    def forward(self, inputs):
        return self.ConvNet(inputs)


# ---- necks/rnn.py: SequenceEncoder(encoder_type cascadernn)

class Im2Seq(nn.Layer):
    def __init__(self, in_channels):
        super().__init__()
        self.out_channels = in_channels

    def forward(self, x):
        B, C, H, W = x.shape
        assert H == 1
        x = x.squeeze(axis=2)
        return x.transpose([0, 2, 1])


class BidirectionalLSTM(nn.Layer):
    def __init__(self, input_size, hidden_size, output_size=None, num_layers=1, dropout=0,
                 direction=False, time_major=False, with_linear=False):
        super().__init__()
        self.with_linear = with_linear
        self.rnn = nn.LSTM(input_size, hidden_size, num_layers=num_layers, dropout=dropout,
                           direction=direction, time_major=time_major)
        if self.with_linear:
            self.linear = nn.Linear(hidden_size * 2, output_size)

    def forward(self, input_feature):
        recurrent, _ = self.rnn(input_feature)
        if self.with_linear:
            return self.linear(recurrent)
        return recurrent


class EncoderWithCascadeRNN(nn.Layer):
    def __init__(self, in_channels, hidden_size, out_channels, num_layers=2,
                 with_linear=False):
        super().__init__()
        self.out_channels = out_channels[-1]
        self.encoder = nn.LayerList([
            BidirectionalLSTM(in_channels if i == 0 else out_channels[i - 1], hidden_size,
                              output_size=out_channels[i], num_layers=1,
                              direction="bidirectional", with_linear=with_linear)
            for i in range(num_layers)])

    def forward(self, x):
        for i, l in enumerate(self.encoder):
            x = l(x)
        return x


class SequenceEncoder(nn.Layer):
    def __init__(self, in_channels, encoder_type, hidden_size=48, **kwargs):
        super().__init__()
        self.encoder_reshape = Im2Seq(in_channels)
        self.out_channels = self.encoder_reshape.out_channels
        self.encoder_type = encoder_type
        assert encoder_type == "cascadernn"
        self.encoder = EncoderWithCascadeRNN(self.encoder_reshape.out_channels, hidden_size,
                                             **kwargs)
        self.out_channels = self.encoder.out_channels

    def forward(self, x):
        return self.encoder(self.encoder_reshape(x))


# ---- heads/rec_spin_att_head.py (inference branch)

class SPINAttentionHead(nn.Layer):
    def __init__(self, in_channels, out_channels, hidden_size, **kwargs):
        super().__init__()
        self.input_size = in_channels
        self.hidden_size = hidden_size
        self.num_classes = out_channels
        self.attention_cell = AttentionLSTMCell(in_channels, hidden_size, out_channels,
                                                use_gru=False)
        self.generator = nn.Linear(hidden_size, out_channels)

    def _char_to_onehot(self, input_char, onehot_dim):
        return F.one_hot(input_char, onehot_dim)

    def forward(self, inputs, targets=None, batch_max_length=25):
        batch_size = paddle.shape(inputs)[0]
        num_steps = batch_max_length + 1
        hidden = (paddle.zeros((batch_size, self.hidden_size)),
                  paddle.zeros((batch_size, self.hidden_size)))
        targets = paddle.zeros(shape=[batch_size], dtype="int32")
        probs = None
        for i in range(num_steps):
            char_onehots = self._char_to_onehot(targets, onehot_dim=self.num_classes)
            (outputs, hidden), alpha = self.attention_cell(hidden, inputs, char_onehots)
            probs_step = self.generator(outputs)
            if probs is None:
                probs = paddle.unsqueeze(probs_step, axis=1)
            else:
                probs = paddle.concat([probs, paddle.unsqueeze(probs_step, axis=1)], axis=1)
            targets = probs_step.argmax(axis=1)
        if not self.training:
            probs = paddle.nn.functional.softmax(probs, axis=2)
        return probs


class AttentionLSTMCell(nn.Layer):
    def __init__(self, input_size, hidden_size, num_embeddings, use_gru=False):
        super().__init__()
        self.i2h = nn.Linear(input_size, hidden_size, bias_attr=False)
        self.h2h = nn.Linear(hidden_size, hidden_size)
        self.score = nn.Linear(hidden_size, 1, bias_attr=False)
        self.rnn = nn.LSTMCell(input_size=input_size + num_embeddings, hidden_size=hidden_size)
        self.hidden_size = hidden_size

    def forward(self, prev_hidden, batch_H, char_onehots):
        batch_H_proj = self.i2h(batch_H)
        prev_hidden_proj = paddle.unsqueeze(self.h2h(prev_hidden[0]), axis=1)
        res = paddle.tanh(paddle.add(batch_H_proj, prev_hidden_proj))
        e = self.score(res)
        alpha = paddle.transpose(F.softmax(e, axis=1), [0, 2, 1])
        context = paddle.squeeze(paddle.mm(alpha, batch_H), axis=1)
        concat_context = paddle.concat([context, char_onehots], 1)
        cur_hidden = self.rnn(concat_context, prev_hidden)
        return cur_hidden, alpha


# ---- the whole network, small or as configured

def build(arch):
    """arch: the table's Architecture dict (in_channels, Transform, Backbone, Neck, Head)."""
    cin = arch.get("in_channels", 3)
    t = {k: v for k, v in arch["Transform"].items() if k != "name"}
    transform = GA_SPIN_Transformer(cin, **t)
    backbone = ResNet32(cin, arch["Backbone"].get("out_channels", 512))
    n = {k: v for k, v in arch["Neck"].items() if k not in ("name", "encoder_type",
                                                             "hidden_size")}
    neck = SequenceEncoder(backbone.out_channels, "cascadernn", arch["Neck"]["hidden_size"],
                           **n)
    head = SPINAttentionHead(neck.out_channels, arch["Head"]["out_channels"],
                             arch["Head"]["hidden_size"])
    return Model(transform, backbone, neck, head)


def randomize(model, seed):
    """Every parameter and BN statistic random at unit scale; stucture_fc2 near PaddleOCR's
    initialisation (colour weights around its identity-like 5 on beta = 1, the AIN gate
    around 0.5 instead of its -5 so the offsets matter, fiducials near the initial ones) so
    the rectification is a real warp that stays mostly inside the image."""
    paddle.seed(seed)
    randomize_unit(model, seed)
    rng = np.random.RandomState(seed + 1)
    # norm scales away from 0 (a ResNet32 with |scale| < 0.5 everywhere, or an instance
    # norm scaled near 0, would hand the head a nearly constant input)
    for layer in model.sublayers():
        if isinstance(layer, (nn.BatchNorm2D, nn.BatchNorm1D, nn.InstanceNorm2D)):
            w = layer.scale if isinstance(layer, nn.InstanceNorm2D) else layer.weight
            w.set_value((rng.uniform(0.8, 1.6, w.shape)
                         * rng.choice([-1, 1], w.shape, p=[0.2, 0.8])).astype("float32"))
    # recurrent weights and the class projection larger than fan-in scale, so that the
    # decoder's states and its per-step argmax (fed back) really depend on the image
    for name, tensor in model.state_dict().items():
        if ".rnn." in name and "weight" in name:
            tensor.set_value(tensor.numpy() * np.float32(4))
        elif name.startswith("head.generator.") or name.startswith("neck.encoder.encoder."):
            tensor.set_value(tensor.numpy() * np.float32(3))
    t = model.transform
    fc2 = t.stucture_fc2
    bias = t.init_spin(2 * (t.spt_length // 2)).astype("float32")
    bias[:t.spt_length] += rng.uniform(-1, 1, t.spt_length).astype("float32")
    if t.offsets:
        bias[t.spt_length] = rng.uniform(-0.5, 0.5)
    k = t.out_weight - t.F * 2
    bias[k:] += rng.uniform(-0.1, 0.1, t.F * 2).astype("float32")
    fc2.bias.set_value(bias)
    w = rng.uniform(-0.02, 0.02, fc2.weight.shape).astype("float32")
    w[:, :k] *= 10  # colour weights and gate react to the image more than the fiducials
    fc2.weight.set_value(w)
    gg = t.GridGenerator.fc
    gg.weight.set_value(rng.uniform(-0.01, 0.01, gg.weight.shape).astype("float32"))
    gg.bias.set_value(rng.uniform(-0.01, 0.01, gg.bias.shape).astype("float32"))
    model.eval()
    return model
