"""Paddle twin of PaddleOCR's SEED (configs/rec/rec_resnet_stn_bilstm_att.yml): STN_ON
(tests/paddle_twins_stn.py's twin of transforms/stn.py), backbones/rec_resnet_aster.py and
heads/rec_aster_head.py (AsterHead with its dygraph beam search, transcribed with its numpy
round trips), written with paddle as PaddleOCR writes them (same module tree, so the same
state_dict() names), in BaseModel (paddle_twins_stn.Model). Dygraph only: the beam search
reads tensors into numpy, so PaddleOCR has no export of it."""

import numpy as np
import paddle
from paddle import nn
from paddle.nn import functional as F

from paddle_twins_stn import STN_DEFAULT, STN_ON, Model
from test_resnet_family import randomize_unit


# ---- backbones/rec_resnet_aster.py

def conv3x3(in_planes, out_planes, stride=1):
    return nn.Conv2D(in_planes, out_planes, kernel_size=3, stride=stride, padding=1,
                     bias_attr=False)


def conv1x1(in_planes, out_planes, stride=1):
    return nn.Conv2D(in_planes, out_planes, kernel_size=1, stride=stride, bias_attr=False)


class AsterBlock(nn.Layer):
    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = conv1x1(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2D(planes)
        self.relu = nn.ReLU()
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2D(planes)
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


class ResNet_ASTER(nn.Layer):
    def __init__(self, with_lstm=True, n_group=1, in_channels=3):
        super().__init__()
        self.with_lstm = with_lstm
        self.n_group = n_group
        self.layer0 = nn.Sequential(
            nn.Conv2D(in_channels, 32, kernel_size=(3, 3), stride=1, padding=1,
                      bias_attr=False),
            nn.BatchNorm2D(32), nn.ReLU())
        self.inplanes = 32
        self.layer1 = self._make_layer(32, 3, [2, 2])
        self.layer2 = self._make_layer(64, 4, [2, 2])
        self.layer3 = self._make_layer(128, 6, [2, 1])
        self.layer4 = self._make_layer(256, 6, [2, 1])
        self.layer5 = self._make_layer(512, 3, [2, 1])
        if with_lstm:
            self.rnn = nn.LSTM(512, 256, direction="bidirect", num_layers=2)
            self.out_channels = 2 * 256
        else:
            self.out_channels = 512

    def _make_layer(self, planes, blocks, stride):
        downsample = None
        if stride != [1, 1] or self.inplanes != planes:
            downsample = nn.Sequential(conv1x1(self.inplanes, planes, stride),
                                       nn.BatchNorm2D(planes))
        layers = [AsterBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes
        for _ in range(1, blocks):
            layers.append(AsterBlock(self.inplanes, planes))
        return nn.Sequential(*layers)

    def forward(self, x):
        x5 = self.layer5(self.layer4(self.layer3(self.layer2(self.layer1(self.layer0(x))))))
        cnn_feat = x5.squeeze(2)
        cnn_feat = paddle.transpose(cnn_feat, perm=[0, 2, 1])
        if self.with_lstm:
            rnn_feat, _ = self.rnn(cnn_feat)
            return rnn_feat
        return cnn_feat


# ---- heads/rec_aster_head.py

class AsterHead(nn.Layer):
    def __init__(self, in_channels, out_channels, sDim, attDim, max_len_labels, time_step=25,
                 beam_width=5, **kwargs):
        super().__init__()
        self.num_classes = out_channels
        self.in_planes = in_channels
        self.sDim = sDim
        self.attDim = attDim
        self.max_len_labels = max_len_labels
        self.decoder = AttentionRecognitionHead(in_channels, out_channels, sDim, attDim,
                                                max_len_labels)
        self.time_step = time_step
        self.embeder = Embedding(self.time_step, in_channels)
        self.beam_width = beam_width
        self.eos = self.num_classes - 3

    def forward(self, x, targets=None, embed=None):
        return_dict = {}
        embedding_vectors = self.embeder(x)
        rec_pred, rec_pred_scores = self.decoder.beam_search(x, self.beam_width, self.eos,
                                                             embedding_vectors)
        return_dict["rec_pred"] = rec_pred
        return_dict["rec_pred_scores"] = rec_pred_scores
        return_dict["embedding_vectors"] = embedding_vectors
        return return_dict


class Embedding(nn.Layer):
    def __init__(self, in_timestep, in_planes, mid_dim=4096, embed_dim=300):
        super().__init__()
        self.in_timestep = in_timestep
        self.in_planes = in_planes
        self.embed_dim = embed_dim
        self.mid_dim = mid_dim
        self.eEmbed = nn.Linear(in_timestep * in_planes, self.embed_dim)

    def forward(self, x):
        x = paddle.reshape(x, [x.shape[0], -1])
        return self.eEmbed(x)


class AttentionRecognitionHead(nn.Layer):
    def __init__(self, in_channels, out_channels, sDim, attDim, max_len_labels):
        super().__init__()
        self.num_classes = out_channels
        self.in_planes = in_channels
        self.sDim = sDim
        self.attDim = attDim
        self.max_len_labels = max_len_labels
        self.decoder = DecoderUnit(sDim=sDim, xDim=in_channels, yDim=self.num_classes,
                                   attDim=attDim)

    def beam_search(self, x, beam_width, eos, embed):
        def _inflate(tensor, times, dim):
            repeat_dims = [1] * tensor.dim()
            repeat_dims[dim] = times
            return paddle.tile(tensor, repeat_dims)

        batch_size, l, d = x.shape
        x = paddle.tile(paddle.transpose(x.unsqueeze(1), perm=[1, 0, 2, 3]),
                        [beam_width, 1, 1, 1])
        inflated_encoder_feats = paddle.reshape(paddle.transpose(x, perm=[1, 0, 2, 3]),
                                                [-1, l, d])
        state = self.decoder.get_initial_state(embed, tile_times=beam_width)
        pos_index = paddle.reshape(paddle.arange(batch_size) * beam_width, shape=[-1, 1])
        sequence_scores = paddle.full(shape=[batch_size * beam_width, 1],
                                      fill_value=-float("Inf"))
        index = [i * beam_width for i in range(0, batch_size)]
        sequence_scores[index] = 0.0
        y_prev = paddle.full(shape=[batch_size * beam_width], fill_value=self.num_classes)
        stored_scores = list()
        stored_predecessors = list()
        stored_emitted_symbols = list()
        for i in range(self.max_len_labels):
            output, state = self.decoder(inflated_encoder_feats, state, y_prev)
            state = paddle.unsqueeze(state, axis=0)
            log_softmax_output = paddle.nn.functional.log_softmax(output, axis=1)
            sequence_scores = _inflate(sequence_scores, self.num_classes, 1)
            sequence_scores += log_softmax_output
            scores, candidates = paddle.topk(paddle.reshape(sequence_scores, [batch_size, -1]),
                                             beam_width, axis=1)
            y_prev = paddle.reshape(candidates % self.num_classes,
                                    shape=[batch_size * beam_width])
            sequence_scores = paddle.reshape(scores, shape=[batch_size * beam_width, 1])
            pos_index = paddle.expand_as(pos_index, candidates)
            # PaddleOCR: paddle.cast(candidates / self.num_classes + pos_index, "int64"),
            # written for paddle 2.x where `/` of int64 tensors divided as integers; paddle
            # 3.3 turns it into float32 and refuses float32 + int64, so the integer
            # division is spelt out (same values: candidates >= 0)
            predecessors = paddle.cast(candidates // self.num_classes + pos_index,
                                       dtype="int64")
            predecessors = paddle.reshape(predecessors, shape=[batch_size * beam_width, 1])
            state = paddle.index_select(state, index=predecessors.squeeze(), axis=1)
            stored_scores.append(sequence_scores.clone())
            y_prev = paddle.reshape(y_prev, shape=[-1, 1])
            eos_prev = paddle.full_like(y_prev, fill_value=eos)
            mask = eos_prev == y_prev
            mask = paddle.nonzero(mask)
            if mask.dim() > 0:
                sequence_scores = sequence_scores.numpy()
                mask = mask.numpy()
                sequence_scores[mask] = -float("inf")
                sequence_scores = paddle.to_tensor(sequence_scores)
            stored_predecessors.append(predecessors)
            y_prev = paddle.squeeze(y_prev)
            stored_emitted_symbols.append(y_prev)

        p = list()
        l = [[self.max_len_labels] * beam_width for _ in range(batch_size)]
        sorted_score, sorted_idx = paddle.topk(
            paddle.reshape(stored_scores[-1], shape=[batch_size, beam_width]), beam_width)
        s = sorted_score.clone()
        batch_eos_found = [0] * batch_size
        t = self.max_len_labels - 1
        t_predecessors = paddle.reshape(sorted_idx + pos_index.expand_as(sorted_idx),
                                        shape=[batch_size * beam_width])
        while t >= 0:
            current_symbol = paddle.index_select(stored_emitted_symbols[t],
                                                 index=t_predecessors, axis=0)
            t_predecessors = paddle.index_select(stored_predecessors[t].squeeze(),
                                                 index=t_predecessors, axis=0)
            eos_indices = stored_emitted_symbols[t] == eos
            eos_indices = paddle.nonzero(eos_indices)
            if eos_indices.dim() > 0:
                for i in range(eos_indices.shape[0] - 1, -1, -1):
                    idx = eos_indices[i]
                    b_idx = int(idx[0] / beam_width)
                    res_k_idx = beam_width - (batch_eos_found[b_idx] % beam_width) - 1
                    batch_eos_found[b_idx] += 1
                    res_idx = b_idx * beam_width + res_k_idx
                    t_predecessors[res_idx] = stored_predecessors[t][idx[0]]
                    current_symbol[res_idx] = stored_emitted_symbols[t][idx[0]]
                    s[b_idx, res_k_idx] = stored_scores[t][idx[0], 0]
                    l[b_idx][res_k_idx] = t + 1
            p.append(current_symbol)
            t -= 1
        s, re_sorted_idx = s.topk(beam_width)
        for b_idx in range(batch_size):
            l[b_idx] = [l[b_idx][k_idx.item()] for k_idx in re_sorted_idx[b_idx, :]]
        re_sorted_idx = paddle.reshape(re_sorted_idx + pos_index.expand_as(re_sorted_idx),
                                       [batch_size * beam_width])
        p = [paddle.reshape(paddle.index_select(step, re_sorted_idx, 0),
                            shape=[batch_size, beam_width, -1]) for step in reversed(p)]
        p = paddle.concat(p, -1)[:, 0, :]
        return p, paddle.ones_like(p)


class AttentionUnit(nn.Layer):
    def __init__(self, sDim, xDim, attDim):
        super().__init__()
        self.sDim = sDim
        self.xDim = xDim
        self.attDim = attDim
        self.sEmbed = nn.Linear(sDim, attDim)
        self.xEmbed = nn.Linear(xDim, attDim)
        self.wEmbed = nn.Linear(attDim, 1)

    def forward(self, x, sPrev):
        batch_size, T, _ = x.shape
        x = paddle.reshape(x, [-1, self.xDim])
        xProj = self.xEmbed(x)
        xProj = paddle.reshape(xProj, [batch_size, T, -1])
        sPrev = sPrev.squeeze(0)
        sProj = self.sEmbed(sPrev)
        sProj = paddle.unsqueeze(sProj, 1)
        sProj = paddle.expand(sProj, [batch_size, T, self.attDim])
        sumTanh = paddle.tanh(sProj + xProj)
        sumTanh = paddle.reshape(sumTanh, [-1, self.attDim])
        vProj = self.wEmbed(sumTanh)
        vProj = paddle.reshape(vProj, [batch_size, T])
        return F.softmax(vProj, axis=1)


class DecoderUnit(nn.Layer):
    def __init__(self, sDim, xDim, yDim, attDim):
        super().__init__()
        self.sDim = sDim
        self.xDim = xDim
        self.yDim = yDim
        self.attDim = attDim
        self.emdDim = attDim
        self.attention_unit = AttentionUnit(sDim, xDim, attDim)
        self.tgt_embedding = nn.Embedding(yDim + 1, self.emdDim,
                                          weight_attr=nn.initializer.Normal(std=0.01))
        self.gru = nn.GRUCell(input_size=xDim + self.emdDim, hidden_size=sDim)
        self.fc = nn.Linear(sDim, yDim, weight_attr=nn.initializer.Normal(std=0.01),
                            bias_attr=nn.initializer.Constant(value=0))
        self.embed_fc = nn.Linear(300, self.sDim)

    def get_initial_state(self, embed, tile_times=1):
        assert embed.shape[1] == 300
        state = self.embed_fc(embed)
        if tile_times != 1:
            state = state.unsqueeze(1)
            trans_state = paddle.transpose(state, perm=[1, 0, 2])
            state = paddle.tile(trans_state, repeat_times=[tile_times, 1, 1])
            trans_state = paddle.transpose(state, perm=[1, 0, 2])
            state = paddle.reshape(trans_state, shape=[-1, self.sDim])
        return state.unsqueeze(0)

    def forward(self, x, sPrev, yPrev):
        batch_size, T, _ = x.shape
        alpha = self.attention_unit(x, sPrev)
        context = paddle.squeeze(paddle.matmul(alpha.unsqueeze(1), x), axis=1)
        yPrev = paddle.cast(yPrev, dtype="int64")
        yProj = self.tgt_embedding(yPrev)
        concat_context = paddle.concat([yProj, context], 1)
        concat_context = paddle.squeeze(concat_context, 1)
        sPrev = paddle.squeeze(sPrev, 0)
        output, state = self.gru(concat_context, sPrev)
        output = paddle.squeeze(output, axis=1)
        output = self.fc(output)
        return output, state


# ---- the whole network

def build(arch):
    t = {k: v for k, v in arch["Transform"].items() if k != "name"}
    transform = STN_ON(3, **{**STN_DEFAULT, **t})
    backbone = ResNet_ASTER(in_channels=3)
    h = {k: v for k, v in arch["Head"].items() if k != "name"}
    head = AsterHead(backbone.out_channels, **h)
    return Model(transform, backbone, None, head)


def randomize(model, seed):
    """Every parameter and BN statistic random at unit scale (norm scales away from 0 so
    the deep encoder does not fade); the STN regressor near ASTER's initial control points;
    the <eos> score raised so beams end at different steps (the search's masking and
    back-tracking paths run)."""
    paddle.seed(seed)
    randomize_unit(model, seed)
    rng = np.random.RandomState(seed + 1)
    for layer in model.sublayers():
        if isinstance(layer, (nn.BatchNorm2D, nn.BatchNorm1D)):
            layer.weight.set_value((rng.uniform(0.8, 1.6, layer.weight.shape)
                                    * rng.choice([-1, 1], layer.weight.shape, p=[0.2, 0.8])
                                    ).astype("float32"))
    for name, t in model.state_dict().items():
        if name.endswith("stn_fc2.weight"):
            t.set_value((rng.uniform(-1, 1, t.shape) * 0.05).astype("float32"))
        elif name.endswith("stn_fc2.bias"):
            n = t.shape[0] // 4
            xs = np.linspace(0.05, 0.95, n)
            pts = np.concatenate([np.stack([xs, np.full(n, 0.05)], 1),
                                  np.stack([xs, np.full(n, 0.95)], 1)])
            t.set_value((pts + rng.uniform(-0.04, 0.04, pts.shape)).reshape(-1)
                        .astype("float32"))
        elif name.startswith("backbone.rnn.") and "weight" in name:
            t.set_value(t.numpy() * np.float32(3))
        elif name.startswith("head.decoder.decoder.") and "weight" in name and (
                ".fc." in name or "tgt_embedding" in name):
            t.set_value(t.numpy() * np.float32(6))
    head = model.head
    b = head.decoder.decoder.fc.bias
    bias = b.numpy()
    bias[head.eos] += 3.4
    b.set_value(bias)
    model.eval()
    return model
