"""Paddle twin of SDMGR, transcribed from PaddleOCR's ppocr/modeling/backbones/
kie_unet_sdmgr.py (Kie_backbone: UNet + roi_align + 7×7 max-pool) and ppocr/modeling/heads/
kie_sdmgr_head.py (SDMGRHead, GNNLayer, Block): the same module tree and parameter names, the
same paddle ops (nn.BatchNorm(act='relu'), nn.LSTM, nn.Embedding(padding_idx=0),
paddle.vision.ops.roi_align, the one-hot gather of the last LSTM step, paddle.scatter).

PaddleOCR's SDMGR cannot be exported as a static program (its backbone calls .numpy() on the
batch, and the docs list inference as not supported), so this twin runs in dygraph and the
proof compares it with the converted torch model in-process, on its paddle.save .pdparams."""

import paddle
import paddle.nn.functional as F
from paddle import nn


class Encoder(nn.Layer):
    def __init__(self, num_channels, num_filters):
        super().__init__()
        self.conv1 = nn.Conv2D(num_channels, num_filters, 3, 1, 1, bias_attr=False)
        self.bn1 = nn.BatchNorm(num_filters, act="relu")
        self.conv2 = nn.Conv2D(num_filters, num_filters, 3, 1, 1, bias_attr=False)
        self.bn2 = nn.BatchNorm(num_filters, act="relu")
        self.pool = nn.MaxPool2D(kernel_size=3, stride=2, padding=1)

    def forward(self, inputs):
        x = self.bn2(self.conv2(self.bn1(self.conv1(inputs))))
        return x, self.pool(x)


class Decoder(nn.Layer):
    def __init__(self, num_channels, num_filters):
        super().__init__()
        self.conv1 = nn.Conv2D(num_channels, num_filters, 3, 1, 1, bias_attr=False)
        self.bn1 = nn.BatchNorm(num_filters, act="relu")
        self.conv2 = nn.Conv2D(num_filters, num_filters, 3, 1, 1, bias_attr=False)
        self.bn2 = nn.BatchNorm(num_filters, act="relu")
        self.conv0 = nn.Conv2D(num_channels, num_filters, 1, 1, 0, bias_attr=False)
        self.bn0 = nn.BatchNorm(num_filters, act="relu")

    def forward(self, inputs_prev, inputs):
        x = self.bn0(self.conv0(inputs))
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        x = paddle.concat([inputs_prev, x], axis=1)
        return self.bn2(self.conv2(self.bn1(self.conv1(x))))


class UNet(nn.Layer):
    def __init__(self):
        super().__init__()
        self.down1 = Encoder(3, 16)
        self.down2 = Encoder(16, 32)
        self.down3 = Encoder(32, 64)
        self.down4 = Encoder(64, 128)
        self.down5 = Encoder(128, 256)
        self.up1 = Decoder(32, 16)
        self.up2 = Decoder(64, 32)
        self.up3 = Decoder(128, 64)
        self.up4 = Decoder(256, 128)

    def forward(self, inputs):
        x1, _ = self.down1(inputs)
        _, x2 = self.down2(x1)
        _, x3 = self.down3(x2)
        _, x4 = self.down4(x3)
        _, x5 = self.down5(x4)
        x = self.up4(x4, x5)
        x = self.up3(x3, x)
        x = self.up2(x2, x)
        return self.up1(x1, x)


class Kie_backbone(nn.Layer):  # noqa: N801
    def __init__(self, in_channels=3):
        super().__init__()
        self.img_feat = UNet()
        self.maxpool = nn.MaxPool2D(kernel_size=7)

    def forward(self, inputs):
        # the data loader's batch: image, relations, texts, points, labels, tag, ..., shape
        img, relations, texts, boxes = (t.numpy() for t in inputs[:4])
        tag, img_size = inputs[5].numpy().tolist(), inputs[-1].numpy()
        h, w = int(img_size[:, 0].max()), int(img_size[:, 1].max())
        img = paddle.to_tensor(img[:, :, :h, :w])
        rels, txts, bxs = [], [], []
        for i, (num, text_len) in enumerate(tag):
            rels.append(paddle.to_tensor(relations[i, :num, :num, :], dtype="float32"))
            txts.append(paddle.to_tensor(texts[i, :num, :text_len], dtype="float32"))
            bxs.append(paddle.to_tensor(boxes[i, :num, ...], dtype="float32"))
        x = self.img_feat(img)
        rois = paddle.concat(bxs, 0)
        rois_num = paddle.to_tensor([b.shape[0] for b in bxs], dtype="int32")
        # PaddleOCR trained SDMGR with paddle.fluid.layers.roi_align(x, boxes,
        # spatial_scale=1.0, pooled_height=7, pooled_width=7, rois_num=rois_num): the same
        # roi_align op with its attribute aligned=False. Today's source passes those keywords
        # to paddle.vision.ops.roi_align, whose signature has none of them (a TypeError on
        # paddle 2.1+); this is the fluid call in today's API.
        feats = paddle.vision.ops.roi_align(x, rois, rois_num, output_size=7, spatial_scale=1.0,
                                            sampling_ratio=-1, aligned=False)
        feats = self.maxpool(feats).squeeze(-1).squeeze(-1)
        return [rels, txts, feats]


class Block(nn.Layer):
    def __init__(self, input_dims, output_dim, mm_dim=1600, chunks=20, rank=15):
        super().__init__()
        self.rank = rank
        self.linear0 = nn.Linear(input_dims[0], mm_dim)
        self.linear1 = nn.Linear(input_dims[1], mm_dim)
        self.merge_linears0 = nn.LayerList()
        self.merge_linears1 = nn.LayerList()
        size = (mm_dim + chunks - 1) // chunks
        self.chunks = [size] * chunks
        self.chunks[-1] -= sum(self.chunks) - mm_dim
        for s in self.chunks:
            self.merge_linears0.append(nn.Linear(s, s * rank))
            self.merge_linears1.append(nn.Linear(s, s * rank))
        self.linear_out = nn.Linear(mm_dim, output_dim)

    def forward(self, x):
        x0 = self.linear0(x[0])
        x1 = self.linear1(x[1])
        bs = x1.shape[0]
        zs = []
        for c0, c1, m0, m1 in zip(paddle.split(x0, self.chunks, -1),
                                  paddle.split(x1, self.chunks, -1),
                                  self.merge_linears0, self.merge_linears1):
            z = paddle.sum((m0(c0) * m1(c1)).reshape([bs, self.rank, -1]), 1)
            z = paddle.sqrt(F.relu(z)) - paddle.sqrt(F.relu(-z))
            zs.append(F.normalize(z))
        return self.linear_out(paddle.concat(zs, 1))


class GNNLayer(nn.Layer):
    def __init__(self, node_dim=256, edge_dim=256):
        super().__init__()
        self.in_fc = nn.Linear(node_dim * 2 + edge_dim, node_dim)
        self.coef_fc = nn.Linear(node_dim, 1)
        self.out_fc = nn.Linear(node_dim, node_dim)
        self.relu = nn.ReLU()

    def forward(self, nodes, edges, nums):
        start, cat_nodes = 0, []
        for num in nums:
            s = nodes[start:start + num]
            cat_nodes.append(paddle.concat([paddle.expand(s.unsqueeze(1), [-1, num, -1]),
                                            paddle.expand(s.unsqueeze(0), [num, -1, -1])],
                                           -1).reshape([num ** 2, -1]))
            start += num
        cat_nodes = paddle.concat([paddle.concat(cat_nodes), edges], -1)
        cat_nodes = self.relu(self.in_fc(cat_nodes))
        coefs = self.coef_fc(cat_nodes)
        start, residuals = 0, []
        for num in nums:
            residual = F.softmax(-paddle.eye(num).unsqueeze(-1) * 1e9
                                 + coefs[start:start + num ** 2].reshape([num, num, -1]), 1)
            residuals.append((residual * cat_nodes[start:start + num ** 2]
                              .reshape([num, num, -1])).sum(1))
            start += num ** 2
        nodes += self.relu(self.out_fc(paddle.concat(residuals)))
        return [nodes, cat_nodes]


class SDMGRHead(nn.Layer):
    def __init__(self, in_channels=16, num_chars=92, visual_dim=16, fusion_dim=1024,
                 node_input=32, node_embed=256, edge_input=5, edge_embed=256, num_gnn=2,
                 num_classes=26):
        super().__init__()
        self.fusion = Block([visual_dim, node_embed], node_embed, fusion_dim)
        self.node_embed = nn.Embedding(num_chars, node_input, 0)
        self.rnn = nn.LSTM(input_size=node_input, hidden_size=node_embed, num_layers=1)
        self.edge_embed = nn.Linear(edge_input, edge_embed)
        self.gnn_layers = nn.LayerList([GNNLayer(node_embed, edge_embed)
                                        for _ in range(num_gnn)])
        self.node_cls = nn.Linear(node_embed, num_classes)
        self.edge_cls = nn.Linear(edge_embed, 2)

    def forward(self, input, targets=None):
        relations, texts, x = input
        node_nums, char_nums = [], []
        for text in texts:
            node_nums.append(text.shape[0])
            char_nums.append(paddle.sum((text > -1).astype(int), axis=-1))
        max_num = max([c.max() for c in char_nums])
        all_nodes = paddle.concat([paddle.concat(
            [t, paddle.zeros((t.shape[0], max_num - t.shape[1]))], -1) for t in texts])
        embed_nodes = self.node_embed(paddle.clip(all_nodes, min=0).astype(int))
        rnn_nodes, _ = self.rnn(embed_nodes)
        b, h, w = rnn_nodes.shape
        nodes = paddle.zeros([b, w])
        all_nums = paddle.concat(char_nums)
        valid = paddle.nonzero((all_nums > 0).astype(int))
        last = (paddle.gather(all_nums, valid) - 1).unsqueeze(-1).unsqueeze(-1)
        last = paddle.expand(last, [last.shape[0], last.shape[1], rnn_nodes.shape[-1]])
        sel = paddle.gather(rnn_nodes, valid)
        n, c, a = sel.shape
        one_hot = F.one_hot(last[:, 0, :], num_classes=c).transpose([0, 2, 1])
        one_hot = paddle.multiply(sel, one_hot.astype("float32")).sum(axis=1, keepdim=True)
        nodes = paddle.scatter(nodes, valid.squeeze(1), one_hot.expand([n, 1, a]).squeeze(1))
        if x is not None:
            nodes = self.fusion([x, nodes])
        all_edges = paddle.concat([r.reshape([-1, r.shape[-1]]) for r in relations])
        embed_edges = F.normalize(self.edge_embed(all_edges.astype("float32")))
        for layer in self.gnn_layers:
            nodes, cat_nodes = layer(nodes, embed_edges, node_nums)
        return self.node_cls(nodes), self.edge_cls(cat_nodes)


class SDMGR(nn.Layer):
    """PaddleOCR's BaseModel for model_type kie: backbone and head, no neck."""

    def __init__(self, **head):
        super().__init__()
        self.backbone = Kie_backbone()
        self.head = SDMGRHead(**head)

    def forward(self, batch):
        return self.head(self.backbone(batch), None)
