"""TableResNetExtra, TableMaster's backbone (PaddleOCR's backbones/table_master_resnet.py, after
TableMASTER-mmocr): a two-conv stem, then four stages of basic blocks each closed by a 3x3
conv-BN-ReLU, three 2x2 max-pools (stride 8 overall). Blocks of the stages named in
``gcb_config['layers']`` end with a multi-aspect global-context block. Returns the three
feature maps PaddleOCR returns ([256, 256, 512] channels); the head reads the last."""

import torch
from torch import nn

from ..registry import register


def conv3x3(cin, cout):
    return nn.Conv2d(cin, cout, 3, 1, 1, bias=False)


class ContextNorm(nn.Module):
    """LayerNorm over a [C, 1, 1] context vector; Paddle keeps its affine parameters flat
    ([C]), so they are stored flat here too."""

    def __init__(self, channels, eps=1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x):
        return nn.functional.layer_norm(x, x.shape[1:], self.weight.view(-1, 1, 1),
                                        self.bias.view(-1, 1, 1), self.eps)


class MultiAspectGCAttention(nn.Module):
    """Global context: per header, softmax attention over positions pools a context vector,
    which a conv-LayerNorm-ReLU-conv bottleneck turns into a per-channel term fused into
    every position (add, multiply by its sigmoid, or concatenate)."""

    def __init__(self, inplanes, ratio, headers, pooling_type="att", att_scale=False,
                 fusion_type="channel_add"):
        super().__init__()
        assert pooling_type in ("avg", "att")
        assert fusion_type in ("channel_add", "channel_mul", "channel_concat")
        assert inplanes % headers == 0 and inplanes >= 8
        self.headers, self.inplanes = headers, inplanes
        self.planes = int(inplanes * ratio)
        self.pooling_type, self.fusion_type = pooling_type, fusion_type
        self.single_header_inplanes = inplanes // headers
        # PaddleOCR ignores the att_scale argument (always False), so no scaling here either
        if pooling_type == "att":
            self.conv_mask = nn.Conv2d(self.single_header_inplanes, 1, 1)
        else:
            self.avg_pool = nn.AdaptiveAvgPool2d(1)
        branch = nn.Sequential(nn.Conv2d(inplanes, self.planes, 1),
                               ContextNorm(self.planes), nn.ReLU(),
                               nn.Conv2d(self.planes, inplanes, 1))
        setattr(self, f"{fusion_type}_conv", branch)
        if fusion_type == "channel_concat":
            self.cat_conv = nn.Conv2d(2 * inplanes, inplanes, 1)

    def spatial_pool(self, x):
        n, c, h, w = x.shape
        if self.pooling_type != "att":
            return self.avg_pool(x)
        x = x.reshape(n * self.headers, self.single_header_inplanes, h, w)
        mask = torch.softmax(self.conv_mask(x).reshape(n * self.headers, 1, h * w), dim=2)
        values = x.reshape(n * self.headers, 1, self.single_header_inplanes, h * w)
        return (values @ mask.unsqueeze(-1)).reshape(n, c, 1, 1)

    def forward(self, x):
        context = self.spatial_pool(x)
        if self.fusion_type == "channel_add":
            return x + self.channel_add_conv(context)
        if self.fusion_type == "channel_mul":
            return x * torch.sigmoid(self.channel_mul_conv(context))
        term = self.channel_concat_conv(context).expand(-1, -1, *x.shape[2:])
        out = self.cat_conv(torch.cat([x, term], dim=1))
        return torch.relu(nn.functional.layer_norm(out, out.shape[1:]))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None, gcb_config=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.context_block = None
        if gcb_config is not None:
            self.context_block = MultiAspectGCAttention(
                planes, gcb_config["ratio"], gcb_config["headers"],
                att_scale=gcb_config.get("att_scale", False),
                fusion_type=gcb_config["fusion_type"])

    def forward(self, x):
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        if self.context_block is not None:
            out = self.context_block(out)
        residual = x if self.downsample is None else self.downsample(x)
        return self.relu(out + residual)


def _stage_gcb(gcb_config, index):
    return gcb_config if gcb_config is not None and gcb_config["layers"][index] else None


@register("Backbone")
class TableResNetExtra(nn.Module):
    def __init__(self, layers, in_channels=3, gcb_config=None, **_training_only):
        super().__init__()
        assert len(layers) >= 4
        self.inplanes = 128
        self.conv1, self.bn1, self.relu1 = conv3x3(in_channels, 64), nn.BatchNorm2d(64), nn.ReLU()
        self.conv2, self.bn2, self.relu2 = conv3x3(64, 128), nn.BatchNorm2d(128), nn.ReLU()
        self.maxpool1 = nn.MaxPool2d(2, 2)
        self.layer1 = self._make_layer(256, layers[0], _stage_gcb(gcb_config, 0))
        self.conv3, self.bn3, self.relu3 = conv3x3(256, 256), nn.BatchNorm2d(256), nn.ReLU()
        self.maxpool2 = nn.MaxPool2d(2, 2)
        self.layer2 = self._make_layer(256, layers[1], _stage_gcb(gcb_config, 1))
        self.conv4, self.bn4, self.relu4 = conv3x3(256, 256), nn.BatchNorm2d(256), nn.ReLU()
        self.maxpool3 = nn.MaxPool2d(2, 2)
        self.layer3 = self._make_layer(512, layers[2], _stage_gcb(gcb_config, 2))
        self.conv5, self.bn5, self.relu5 = conv3x3(512, 512), nn.BatchNorm2d(512), nn.ReLU()
        self.layer4 = self._make_layer(512, layers[3], _stage_gcb(gcb_config, 3))
        self.conv6, self.bn6, self.relu6 = conv3x3(512, 512), nn.BatchNorm2d(512), nn.ReLU()
        self.out_channels = [256, 256, 512]

    def _make_layer(self, planes, blocks, gcb_config):
        downsample = None
        if self.inplanes != planes:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes, 1, bias=False),
                                       nn.BatchNorm2d(planes))
        # only a stage's first block carries the context block (as in PaddleOCR)
        stage = [BasicBlock(self.inplanes, planes, 1, downsample, gcb_config)]
        self.inplanes = planes
        stage += [BasicBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*stage)

    def forward(self, x):
        x = self.relu2(self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x))))))
        x = self.layer1(self.maxpool1(x))
        f1 = self.relu3(self.bn3(self.conv3(x)))
        x = self.layer2(self.maxpool2(f1))
        f2 = self.relu4(self.bn4(self.conv4(x)))
        x = self.relu5(self.bn5(self.conv5(self.layer3(self.maxpool3(f2)))))
        f3 = self.relu6(self.bn6(self.conv6(self.layer4(x))))
        return [f1, f2, f3]
