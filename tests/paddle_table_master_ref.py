"""TableMaster written with paddle as PaddleOCR writes it (backbones/table_master_resnet.py,
heads/table_master_head.py; same module tree, so the same parameter names): the whole-network
reference of tests/test_table_master.py. Transcribed from PaddleOCR's source; the one
deliberate change is marked (the exported loop's sequence length read at run time,
as tests/paddle_transformer_ref.py does for NRTR).

Run as a script: ``python paddle_table_master_ref.py OUT_PREFIX pdmodel|pir PDPARAMS``."""

import copy
import math
import os
import sys

if __name__ == "__main__" and sys.argv[2] == "pdmodel":
    os.environ["FLAGS_enable_pir_api"] = "0"

import paddle  # noqa: E402
import paddle.nn as nn  # noqa: E402
import paddle.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from paddle_transformer_ref import BaseModel, randomize  # noqa: E402

# the small configuration of the tests: one block per stage, context blocks as the official
# config places them, 8 headers over the fixed 512 channels, a short decoding loop
SMALL = dict(layers=[1, 1, 1, 1], gcb_config=dict(ratio=0.0625, headers=1, att_scale=False,
                                                  fusion_type="channel_add",
                                                  layers=[False, True, True, True]),
             out_channels=12, headers=8, d_ff=64, max_text_length=5)


# ---- backbone (backbones/table_master_resnet.py)

class BasicBlock(nn.Layer):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None, gcb_config=None):
        super().__init__()
        self.conv1 = nn.Conv2D(inplanes, planes, kernel_size=3, stride=stride, padding=1,
                               bias_attr=False)
        self.bn1 = nn.BatchNorm2D(planes, momentum=0.9)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2D(planes, planes, kernel_size=3, stride=1, padding=1,
                               bias_attr=False)
        self.bn2 = nn.BatchNorm2D(planes, momentum=0.9)
        self.downsample = downsample
        self.stride = stride
        self.gcb_config = gcb_config
        if self.gcb_config is not None:
            self.context_block = MultiAspectGCAttention(
                inplanes=planes, ratio=gcb_config["ratio"], headers=gcb_config["headers"],
                att_scale=gcb_config["att_scale"], fusion_type=gcb_config["fusion_type"])

    def forward(self, x):
        residual = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.gcb_config is not None:
            out = self.context_block(out)
        if self.downsample is not None:
            residual = self.downsample(x)
        out += residual
        return self.relu(out)


def get_gcb_config(gcb_config, layer):
    if gcb_config is None or not gcb_config["layers"][layer]:
        return None
    return gcb_config


class TableResNetExtra(nn.Layer):
    def __init__(self, layers, in_channels=3, gcb_config=None):
        super().__init__()
        self.inplanes = 128
        self.conv1 = nn.Conv2D(in_channels, 64, kernel_size=3, stride=1, padding=1,
                               bias_attr=False)
        self.bn1 = nn.BatchNorm2D(64)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2D(64, 128, kernel_size=3, stride=1, padding=1, bias_attr=False)
        self.bn2 = nn.BatchNorm2D(128)
        self.relu2 = nn.ReLU()
        self.maxpool1 = nn.MaxPool2D(kernel_size=2, stride=2)
        self.layer1 = self._make_layer(BasicBlock, 256, layers[0], 1,
                                       get_gcb_config(gcb_config, 0))
        self.conv3 = nn.Conv2D(256, 256, kernel_size=3, stride=1, padding=1, bias_attr=False)
        self.bn3 = nn.BatchNorm2D(256)
        self.relu3 = nn.ReLU()
        self.maxpool2 = nn.MaxPool2D(kernel_size=2, stride=2)
        self.layer2 = self._make_layer(BasicBlock, 256, layers[1], 1,
                                       get_gcb_config(gcb_config, 1))
        self.conv4 = nn.Conv2D(256, 256, kernel_size=3, stride=1, padding=1, bias_attr=False)
        self.bn4 = nn.BatchNorm2D(256)
        self.relu4 = nn.ReLU()
        self.maxpool3 = nn.MaxPool2D(kernel_size=2, stride=2)
        self.layer3 = self._make_layer(BasicBlock, 512, layers[2], 1,
                                       get_gcb_config(gcb_config, 2))
        self.conv5 = nn.Conv2D(512, 512, kernel_size=3, stride=1, padding=1, bias_attr=False)
        self.bn5 = nn.BatchNorm2D(512)
        self.relu5 = nn.ReLU()
        self.layer4 = self._make_layer(BasicBlock, 512, layers[3], 1,
                                       get_gcb_config(gcb_config, 3))
        self.conv6 = nn.Conv2D(512, 512, kernel_size=3, stride=1, padding=1, bias_attr=False)
        self.bn6 = nn.BatchNorm2D(512)
        self.relu6 = nn.ReLU()
        self.out_channels = [256, 256, 512]

    def _make_layer(self, block, planes, blocks, stride=1, gcb_config=None):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2D(self.inplanes, planes * block.expansion, kernel_size=1,
                          stride=stride, bias_attr=False),
                nn.BatchNorm2D(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample, gcb_config=gcb_config)]
        self.inplanes = planes * block.expansion
        for _ in range(1, blocks):
            layers.append(block(self.inplanes, planes))
        return nn.Sequential(*layers)

    def forward(self, x):
        f = []
        x = self.relu1(self.bn1(self.conv1(x)))
        x = self.relu2(self.bn2(self.conv2(x)))
        x = self.maxpool1(x)
        x = self.layer1(x)
        x = self.relu3(self.bn3(self.conv3(x)))
        f.append(x)
        x = self.maxpool2(x)
        x = self.layer2(x)
        x = self.relu4(self.bn4(self.conv4(x)))
        f.append(x)
        x = self.maxpool3(x)
        x = self.layer3(x)
        x = self.relu5(self.bn5(self.conv5(x)))
        x = self.layer4(x)
        x = self.relu6(self.bn6(self.conv6(x)))
        f.append(x)
        return f


class MultiAspectGCAttention(nn.Layer):
    def __init__(self, inplanes, ratio, headers, pooling_type="att", att_scale=False,
                 fusion_type="channel_add"):
        super().__init__()
        self.headers = headers
        self.inplanes = inplanes
        self.ratio = ratio
        self.planes = int(inplanes * ratio)
        self.pooling_type = pooling_type
        self.fusion_type = fusion_type
        self.att_scale = False
        self.single_header_inplanes = int(inplanes / headers)
        if pooling_type == "att":
            self.conv_mask = nn.Conv2D(self.single_header_inplanes, 1, kernel_size=1)
            self.softmax = nn.Softmax(axis=2)
        else:
            self.avg_pool = nn.AdaptiveAvgPool2D(1)
        if fusion_type == "channel_add":
            self.channel_add_conv = nn.Sequential(
                nn.Conv2D(self.inplanes, self.planes, kernel_size=1),
                nn.LayerNorm([self.planes, 1, 1]), nn.ReLU(),
                nn.Conv2D(self.planes, self.inplanes, kernel_size=1))
        elif fusion_type == "channel_mul":
            self.channel_mul_conv = nn.Sequential(
                nn.Conv2D(self.inplanes, self.planes, kernel_size=1),
                nn.LayerNorm([self.planes, 1, 1]), nn.ReLU(),
                nn.Conv2D(self.planes, self.inplanes, kernel_size=1))
        else:
            raise NotImplementedError(fusion_type)

    def spatial_pool(self, x):
        batch, channel, height, width = x.shape
        if self.pooling_type == "att":
            x = x.reshape([batch * self.headers, self.single_header_inplanes, height, width])
            input_x = x
            input_x = input_x.reshape([batch * self.headers, self.single_header_inplanes,
                                       height * width])
            input_x = input_x.unsqueeze(1)
            context_mask = self.conv_mask(x)
            context_mask = context_mask.reshape([batch * self.headers, 1, height * width])
            context_mask = self.softmax(context_mask)
            context_mask = context_mask.unsqueeze(-1)
            context = paddle.matmul(input_x, context_mask)
            context = context.reshape([batch, self.headers * self.single_header_inplanes, 1, 1])
        else:
            context = self.avg_pool(x)
        return context

    def forward(self, x):
        context = self.spatial_pool(x)
        out = x
        if self.fusion_type == "channel_mul":
            out = out * F.sigmoid(self.channel_mul_conv(context))
        else:
            out = out + self.channel_add_conv(context)
        return out


# ---- head (heads/table_master_head.py)

class TableMasterHead(nn.Layer):
    def __init__(self, in_channels, out_channels=30, headers=8, d_ff=2048, dropout=0,
                 max_text_length=500, loc_reg_num=4, **kwargs):
        super().__init__()
        hidden_size = in_channels[-1]
        self.layers = clones(DecoderLayer(headers, hidden_size, dropout, d_ff), 2)
        self.cls_layer = clones(DecoderLayer(headers, hidden_size, dropout, d_ff), 1)
        self.bbox_layer = clones(DecoderLayer(headers, hidden_size, dropout, d_ff), 1)
        self.cls_fc = nn.Linear(hidden_size, out_channels)
        self.bbox_fc = nn.Sequential(nn.Linear(hidden_size, loc_reg_num), nn.Sigmoid())
        self.norm = nn.LayerNorm(hidden_size)
        self.embedding = Embeddings(d_model=hidden_size, vocab=out_channels)
        self.positional_encoding = PositionalEncoding(d_model=hidden_size)
        self.SOS = out_channels - 3
        self.PAD = out_channels - 1
        self.out_channels = out_channels
        self.loc_reg_num = loc_reg_num
        self.max_text_length = max_text_length

    def make_mask(self, tgt):
        trg_pad_mask = (tgt != self.PAD).unsqueeze(1).unsqueeze(3)
        # PaddleOCR: tgt_len = tgt.shape[1]; in paddle 3.3's exported decoding loop that is
        # frozen at the loop variable's first length (1), so it is read at run time
        tgt_len = paddle.shape(tgt)[1]
        trg_sub_mask = paddle.tril(paddle.ones(([tgt_len, tgt_len]), dtype=paddle.float32))
        tgt_mask = paddle.logical_and(trg_pad_mask.astype(paddle.float32), trg_sub_mask)
        return tgt_mask.astype(paddle.float32)

    def decode(self, input, feature, src_mask, tgt_mask):
        x = self.embedding(input)
        x = self.positional_encoding(x)
        for i, layer in enumerate(self.layers):
            x = layer(x, feature, src_mask, tgt_mask)
        cls_x = x
        for layer in self.cls_layer:
            cls_x = layer(x, feature, src_mask, tgt_mask)
        cls_x = self.norm(cls_x)
        bbox_x = x
        for layer in self.bbox_layer:
            bbox_x = layer(x, feature, src_mask, tgt_mask)
        bbox_x = self.norm(bbox_x)
        return self.cls_fc(cls_x), self.bbox_fc(bbox_x)

    def greedy_forward(self, SOS, feature):
        input = SOS
        output = paddle.zeros([input.shape[0], self.max_text_length + 1, self.out_channels])
        bbox_output = paddle.zeros([input.shape[0], self.max_text_length + 1,
                                    self.loc_reg_num])
        max_text_length = paddle.to_tensor(self.max_text_length)
        for i in range(max_text_length + 1):
            target_mask = self.make_mask(input)
            out_step, bbox_output_step = self.decode(input, feature, None, target_mask)
            prob = F.softmax(out_step, axis=-1)
            next_word = prob.argmax(axis=2, dtype="int64")
            input = paddle.concat([input, next_word[:, -1].unsqueeze(-1)], axis=1)
            if i == self.max_text_length:
                output = out_step
                bbox_output = bbox_output_step
        return output, bbox_output

    def forward_test(self, out_enc):
        batch_size = out_enc.shape[0]
        SOS = paddle.zeros([batch_size, 1], dtype="int64") + self.SOS
        output, bbox_output = self.greedy_forward(SOS, out_enc)
        output = F.softmax(output)
        return {"structure_probs": output, "loc_preds": bbox_output}

    def forward(self, feat, targets=None):
        feat = feat[-1]
        b, c, h, w = feat.shape
        feat = feat.reshape([b, c, h * w])
        feat = feat.transpose((0, 2, 1))
        out_enc = self.positional_encoding(feat)
        return self.forward_test(out_enc)


class DecoderLayer(nn.Layer):
    def __init__(self, headers, d_model, dropout, d_ff):
        super().__init__()
        self.self_attn = MultiHeadAttention(headers, d_model, dropout)
        self.src_attn = MultiHeadAttention(headers, d_model, dropout)
        self.feed_forward = FeedForward(d_model, d_ff, dropout)
        self.sublayer = clones(SubLayerConnection(d_model, dropout), 3)

    def forward(self, x, feature, src_mask, tgt_mask):
        x = self.sublayer[0](x, lambda x: self.self_attn(x, x, x, tgt_mask))
        x = self.sublayer[1](x, lambda x: self.src_attn(x, feature, feature, src_mask))
        return self.sublayer[2](x, self.feed_forward)


class MultiHeadAttention(nn.Layer):
    def __init__(self, headers, d_model, dropout):
        super().__init__()
        self.d_k = int(d_model / headers)
        self.headers = headers
        self.linears = clones(nn.Linear(d_model, d_model), 4)
        self.attn = None
        self.dropout = nn.Dropout(dropout)

    def forward(self, query, key, value, mask=None):
        B = query.shape[0]
        query, key, value = [
            l(x).reshape([B, 0, self.headers, self.d_k]).transpose([0, 2, 1, 3])
            for l, x in zip(self.linears, (query, key, value))]
        x, self.attn = self_attention(query, key, value, mask=mask, dropout=self.dropout)
        x = x.transpose([0, 2, 1, 3]).reshape([B, 0, self.headers * self.d_k])
        return self.linears[-1](x)


class FeedForward(nn.Layer):
    def __init__(self, d_model, d_ff, dropout):
        super().__init__()
        self.w_1 = nn.Linear(d_model, d_ff)
        self.w_2 = nn.Linear(d_ff, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        return self.w_2(self.dropout(F.relu(self.w_1(x))))


class SubLayerConnection(nn.Layer):
    def __init__(self, size, dropout):
        super().__init__()
        self.norm = nn.LayerNorm(size)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, sublayer):
        return x + self.dropout(sublayer(self.norm(x)))


def masked_fill(x, mask, value):
    mask = mask.astype(x.dtype)
    return x * paddle.logical_not(mask).astype(x.dtype) + mask * value


def self_attention(query, key, value, mask=None, dropout=None):
    d_k = value.shape[-1]
    score = paddle.matmul(query, key.transpose([0, 1, 3, 2]) / math.sqrt(d_k))
    if mask is not None:
        score = masked_fill(score, mask == 0, -6.55e4)
    p_attn = F.softmax(score, axis=-1)
    if dropout is not None:
        p_attn = dropout(p_attn)
    return paddle.matmul(p_attn, value), p_attn


def clones(module, N):
    return nn.LayerList([copy.deepcopy(module) for _ in range(N)])


class Embeddings(nn.Layer):
    def __init__(self, d_model, vocab):
        super().__init__()
        self.lut = nn.Embedding(vocab, d_model)
        self.d_model = d_model

    def forward(self, *input):
        x = input[0]
        return self.lut(x) * math.sqrt(self.d_model)


class PositionalEncoding(nn.Layer):
    def __init__(self, d_model, dropout=0.0, max_len=5000):
        super().__init__()
        self.dropout = nn.Dropout(p=dropout)
        pe = paddle.zeros([max_len, d_model])
        position = paddle.arange(0, max_len).unsqueeze(1).astype("float32")
        div_term = paddle.exp(paddle.arange(0, d_model, 2) * -math.log(10000.0) / d_model)
        pe[:, 0::2] = paddle.sin(position * div_term)
        pe[:, 1::2] = paddle.cos(position * div_term)
        pe = pe.unsqueeze(0)
        self.register_buffer("pe", pe)

    def forward(self, feat, **kwargs):
        # PaddleOCR: self.pe[:, :feat.shape[1]] (frozen at 1 in the exported loop, as above)
        feat = feat + self.pe[:, :paddle.shape(feat)[1]]
        return self.dropout(feat)


def build(cfg=SMALL):
    backbone = TableResNetExtra(cfg["layers"], gcb_config=cfg["gcb_config"])
    head = TableMasterHead(backbone.out_channels, cfg["out_channels"], cfg["headers"],
                           cfg["d_ff"], 0, cfg["max_text_length"])
    return BaseModel(backbone, None, head)


def export(prefix, fmt, pdparams, seed=0):
    paddle.seed(seed)
    model = randomize(build(), seed)
    paddle.save(model.state_dict(), pdparams)
    spec = [paddle.static.InputSpec([None, 3, None, None], "float32", "x")]
    paddle.jit.save(paddle.jit.to_static(model, input_spec=spec), prefix, input_spec=spec)


if __name__ == "__main__":
    export(sys.argv[1], sys.argv[2], sys.argv[3])
