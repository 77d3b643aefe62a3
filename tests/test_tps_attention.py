"""STAR-Net and RARE: PaddleOCR's TPS transform (transforms/tps.py) and AttentionHead
(heads/rec_att_head.py) written here with paddle as PaddleOCR writes them (same module tree,
same ParamAttr names), on rec MobileNetV3 + BiLSTM, randomised (BN statistics too),
exported by paddle.jit.save as PIR, saved as a training .pdparams, and
converted through the real tables; RARE's processing (fixed-width resize, AttnLabelDecode)
against PaddleOCR 2.10's own operators."""


import numpy as np
import paddle
import paddle.nn as pnn
import paddle.nn.functional as PF
import pytest
import torch
from paddle import ParamAttr

from ppocr_ref import ppocr_module
from test_cls_conversion import PaddleConvBN, PaddleResidualUnit
from test_resnet_family import PCTCHead, PResNet, PSequenceEncoder, randomize_unit
from ptocr.converter import formats
from ptocr.converter.convert import convert
from ptocr.converter.mapping import find_arch
from ptocr.converter.verify import verify
from ptocr.pipeline import model_inputs, read_image
from ptocr.pipeline.registry import build_postprocess, build_transforms, transform

WORDS = ["words/en_word_1.png", "words/en_word_2.png", "words/en_word_3.png"]
CLASSES = {"ctc": 37, "att": 38}  # 36 characters + CTC blank / + sos, eos
ARCHS = {"ctc": "rec_mv3_tps_bilstm_ctc", "att": "rec_mv3_tps_bilstm_att"}


# ---- paddle references after PaddleOCR's transforms/tps.py

_USED = set()


def pname(name):
    """PaddleOCR's fixed ParamAttr name; paddle's dygraph refuses a name twice per process,
    so later instances get a suffix (variable names only: structured names are unchanged)."""
    base, k = name, 1
    while name in _USED:
        name, k = f"{base}_{k}", k + 1
    _USED.add(name)
    return name


class PTPSConvBN(pnn.Layer):
    def __init__(self, cin, cout, k, act=None, name=None):
        super().__init__()
        self.conv = pnn.Conv2D(cin, cout, k, padding=(k - 1) // 2,
                               weight_attr=ParamAttr(name=pname(name + "_weights")), bias_attr=False)
        bn = "bn_" + name
        self.bn = pnn.BatchNorm(cout, act=act, param_attr=ParamAttr(name=pname(bn + "_scale")),
                                bias_attr=ParamAttr(pname(bn + "_offset")),
                                moving_mean_name=pname(bn + "_mean"),
                                moving_variance_name=pname(bn + "_variance"))

    def forward(self, x):
        return self.bn(self.conv(x))


class PLocalizationNetwork(pnn.Layer):
    def __init__(self, cin, F, loc_lr, model_name):
        super().__init__()
        self.F = F
        filters, fc_dim = (([64, 128, 256, 512], 256) if model_name == "large"
                           else ([16, 32, 64, 128], 64))
        self.block_list = []
        for i, c in enumerate(filters):
            name = "loc_conv%d" % i
            self.block_list.append(self.add_sublayer(
                name, PTPSConvBN(cin, c, 3, act="relu", name=name)))
            self.block_list.append(pnn.AdaptiveAvgPool2D(1) if i == len(filters) - 1
                                   else pnn.MaxPool2D(kernel_size=2, stride=2, padding=0))
            cin = c
        self.fc1 = pnn.Linear(cin, fc_dim, weight_attr=ParamAttr(learning_rate=loc_lr,
                                                                  name=pname("loc_fc1_w")),
                              bias_attr=ParamAttr(name=pname("loc_fc1.b_0")), name="loc_fc1")
        self.fc2 = pnn.Linear(fc_dim, F * 2, weight_attr=ParamAttr(learning_rate=loc_lr,
                                                                   name=pname("loc_fc2_w")),
                              bias_attr=ParamAttr(learning_rate=loc_lr, name=pname("loc_fc2_b")),
                              name="loc_fc2")
        self.out_channels = F * 2

    def forward(self, x):
        B = x.shape[0]
        for block in self.block_list:
            x = block(x)
        x = PF.relu(self.fc1(x.reshape([B, -1])))
        return self.fc2(x).reshape(shape=[-1, self.F, 2])


class PGridGenerator(pnn.Layer):
    def __init__(self, cin, F):
        super().__init__()
        self.eps, self.F = 1e-6, F
        self.fc = pnn.Linear(cin, 6, weight_attr=ParamAttr(learning_rate=0.0, name=pname("ex_fc_w")),
                             bias_attr=ParamAttr(learning_rate=0.0, name=pname("ex_fc_b")),
                             name="ex_fc")

    def forward(self, batch_C_prime, I_r_size):
        C = self.build_C()
        P = self.build_P(I_r_size)
        inv_delta_C = paddle.to_tensor(self.build_inv_delta_C(C).astype("float32"))
        P_hat = paddle.to_tensor(self.build_P_hat(C, P).astype("float32"))
        B = batch_C_prime.shape[0]
        ex = self.fc(batch_C_prime.reshape([B, -1])).reshape([-1, 3, 2])
        batch_T = paddle.matmul(inv_delta_C, paddle.concat([batch_C_prime, ex], axis=1))
        return paddle.matmul(P_hat, batch_T)

    def build_C(self):
        F = self.F
        x = np.linspace(-1.0, 1.0, int(F / 2))
        top = np.stack([x, -1 * np.ones(int(F / 2))], axis=1)
        bottom = np.stack([x, np.ones(int(F / 2))], axis=1)
        return np.concatenate([top, bottom], axis=0)

    def build_P(self, I_r_size):
        w, h = I_r_size
        gx = (np.arange(-w, w, 2) + 1.0) / w
        gy = (np.arange(-h, h, 2) + 1.0) / h
        return np.stack(np.meshgrid(gx, gy), axis=2).reshape([-1, 2])

    def build_inv_delta_C(self, C):
        F = self.F
        hat_C = np.zeros((F, F), dtype=float)
        for i in range(F):
            for j in range(i, F):
                hat_C[i, j] = hat_C[j, i] = np.linalg.norm(C[i] - C[j])
        np.fill_diagonal(hat_C, 1)
        hat_C = (hat_C ** 2) * np.log(hat_C)
        delta_C = np.concatenate([
            np.concatenate([np.ones((F, 1)), C, hat_C], axis=1),
            np.concatenate([np.zeros((2, 3)), np.transpose(C)], axis=1),
            np.concatenate([np.zeros((1, 3)), np.ones((1, F))], axis=1)], axis=0)
        return np.linalg.inv(delta_C)

    def build_P_hat(self, C, P):
        n = P.shape[0]
        P_diff = np.tile(np.expand_dims(P, axis=1), (1, self.F, 1)) - np.expand_dims(C, 0)
        rbf_norm = np.linalg.norm(P_diff, ord=2, axis=2, keepdims=False)
        rbf = np.multiply(np.square(rbf_norm), np.log(rbf_norm + self.eps))
        return np.concatenate([np.ones((n, 1)), P, rbf], axis=1)


class PTPS(pnn.Layer):
    def __init__(self, cin, num_fiducial, loc_lr, model_name):
        super().__init__()
        self.loc_net = PLocalizationNetwork(cin, num_fiducial, loc_lr, model_name)
        self.grid_generator = PGridGenerator(self.loc_net.out_channels, num_fiducial)

    def forward(self, image):
        I_r_size = [image.shape[3], image.shape[2]]
        P = self.grid_generator(self.loc_net(image), I_r_size)
        P = P.reshape([-1, image.shape[2], image.shape[3], 2])
        return PF.grid_sample(x=image, grid=P)


# ---- after PaddleOCR's heads/rec_att_head.py

class PAttentionGRUCell(pnn.Layer):
    def __init__(self, input_size, hidden_size, num_embeddings):
        super().__init__()
        self.i2h = pnn.Linear(input_size, hidden_size, bias_attr=False)
        self.h2h = pnn.Linear(hidden_size, hidden_size)
        self.score = pnn.Linear(hidden_size, 1, bias_attr=False)
        self.rnn = pnn.GRUCell(input_size=input_size + num_embeddings, hidden_size=hidden_size)

    def forward(self, prev_hidden, batch_H, char_onehots):
        res = paddle.tanh(paddle.add(self.i2h(batch_H),
                                     paddle.unsqueeze(self.h2h(prev_hidden), axis=1)))
        alpha = paddle.transpose(PF.softmax(self.score(res), axis=1), [0, 2, 1])
        context = paddle.squeeze(paddle.mm(alpha, batch_H), axis=1)
        return self.rnn(paddle.concat([context, char_onehots], 1), prev_hidden), alpha


class PAttentionHead(pnn.Layer):
    def __init__(self, in_channels, out_channels, hidden_size):
        super().__init__()
        self.hidden_size, self.num_classes = hidden_size, out_channels
        self.attention_cell = PAttentionGRUCell(in_channels, hidden_size, out_channels)
        self.generator = pnn.Linear(hidden_size, out_channels)

    def forward(self, inputs, targets=None, batch_max_length=25):
        batch_size = paddle.shape(inputs)[0]
        hidden = paddle.zeros((batch_size, self.hidden_size))
        targets = paddle.zeros(shape=[batch_size], dtype="int32")
        probs = None
        for i in range(batch_max_length):
            char_onehots = PF.one_hot(targets, self.num_classes)
            (outputs, hidden), alpha = self.attention_cell(hidden, inputs, char_onehots)
            probs_step = self.generator(outputs)
            if probs is None:
                probs = paddle.unsqueeze(probs_step, axis=1)
            else:
                probs = paddle.concat([probs, paddle.unsqueeze(probs_step, axis=1)], axis=1)
            targets = probs_step.argmax(axis=1)
        if not self.training:
            probs = PF.softmax(probs, axis=2)
        return probs


def make_divisible(v, divisor=8, min_value=None):
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


class PRecMobileNetV3(pnn.Layer):
    """backbones/rec_mobilenet_v3.py, model_name large (large_stride [1, 2, 2, 2])."""

    CFG = [[3, 16, 16, False, "relu", 1], [3, 64, 24, False, "relu", (2, 1)],
           [3, 72, 24, False, "relu", 1], [5, 72, 40, True, "relu", (2, 1)],
           [5, 120, 40, True, "relu", 1], [5, 120, 40, True, "relu", 1],
           [3, 240, 80, False, "hardswish", 1], [3, 200, 80, False, "hardswish", 1],
           [3, 184, 80, False, "hardswish", 1], [3, 184, 80, False, "hardswish", 1],
           [3, 480, 112, True, "hardswish", 1], [3, 672, 112, True, "hardswish", 1],
           [5, 672, 160, True, "hardswish", (2, 1)], [5, 960, 160, True, "hardswish", 1],
           [5, 960, 160, True, "hardswish", 1]]

    def __init__(self, scale=0.5):
        super().__init__()
        inplanes = make_divisible(16 * scale)
        self.conv1 = PaddleConvBN(3, inplanes, 3, 2, act="hardswish")
        blocks = []
        for k, exp, c, se, nl, s in self.CFG:
            blocks.append(PaddleResidualUnit(inplanes, make_divisible(scale * exp),
                                             make_divisible(scale * c), k, s, se, nl))
            inplanes = make_divisible(scale * c)
        self.blocks = pnn.Sequential(*blocks)
        self.conv2 = PaddleConvBN(inplanes, make_divisible(scale * 960), 1, 1, act="hardswish")
        self.pool = pnn.MaxPool2D(kernel_size=2, stride=2, padding=0)
        self.out_channels = make_divisible(scale * 960)

    def forward(self, x):
        return self.pool(self.conv2(self.blocks(self.conv1(x))))


class PRecModel(pnn.Layer):
    """PaddleOCR's BaseModel with a transform: transform -> backbone -> neck -> head, as the
    mv3 tables (TPS small, MobileNetV3 large x0.5, hidden 96) or the r34 tables (TPS large,
    ResNet34_vd, hidden 256) configure it."""

    def __init__(self, kind, backbone="mv3"):
        super().__init__()
        mv3 = backbone == "mv3"
        hidden = 96 if mv3 else 256
        self.transform = PTPS(3, 20, 0.1, "small" if mv3 else "large")
        self.backbone = PRecMobileNetV3() if mv3 else PResNet(34, "rec")
        cin = 480 if mv3 else 512
        self.neck = PSequenceEncoder(cin, "rnn", hidden)
        self.head = (PCTCHead(2 * hidden, CLASSES[kind]) if kind == "ctc"
                     else PAttentionHead(2 * hidden, CLASSES[kind], hidden))

    def forward(self, x):
        return self.head(self.neck(self.backbone(self.transform(x))))


def paddle_model(kind, seed):
    """Random weights and BN statistics at unit scale; the fiducial regressor near PaddleOCR's
    initial fiducials, so the rectifying grid stays mostly inside the image."""
    paddle.seed(seed)
    model = randomize_unit(PRecModel(kind), seed)
    loc = model.transform.loc_net
    rng = np.random.RandomState(seed)
    F = 20
    x = np.linspace(-1.0, 1.0, F // 2)
    fid = np.concatenate([np.stack([x, np.linspace(0.0, -1.0, F // 2)], 1),
                          np.stack([x, np.linspace(1.0, 0.0, F // 2)], 1)]).reshape(-1)
    loc.fc2.bias.set_value((fid + rng.uniform(-0.1, 0.1, fid.shape)).astype("float32"))
    loc.fc2.weight.set_value(rng.uniform(-0.02, 0.02, loc.fc2.weight.shape).astype("float32"))
    gg = model.transform.grid_generator.fc
    gg.weight.set_value(rng.uniform(-0.01, 0.01, gg.weight.shape).astype("float32"))
    gg.bias.set_value(rng.uniform(-0.01, 0.01, gg.bias.shape).astype("float32"))
    model.eval()
    return model




@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """{kind: {'model': paddle model, 'pdparams': path, 'pir': dir}}.

    Only PIR: paddle 3.3.1 cannot build these networks as 2.x programs (with
    FLAGS_enable_pir_api=0 its paddle.matmul, which TPS's grid generator calls, has no legacy
    path, and its LSTM fails in the legacy translator), so a 2.x export is not made here."""
    root = tmp_path_factory.mktemp("tps_att")
    out = {}
    for seed, kind in enumerate(ARCHS, start=11):
        model = paddle_model(kind, seed)
        params = root / kind / "model.pdparams"
        params.parent.mkdir()
        paddle.save(model.state_dict(), str(params))
        spec = [paddle.static.InputSpec([None, 3, 32, 100], "float32", "x")]
        paddle.jit.save(model, str(root / kind / "pir" / "inference"), input_spec=spec)
        out[kind] = {"model": model, "pdparams": params, "pir": root / kind / "pir"}
    return out


def word_batch(testdata, spec):
    return np.concatenate([model_inputs(spec.processing, read_image(testdata / w))[0]
                           for w in WORDS])


@pytest.mark.parametrize("fmt", ["pir"])
@pytest.mark.parametrize("kind", list(ARCHS))
def test_export_converts_and_verifies(exports, kind, fmt, testdata):
    weights = formats.read(exports[kind][fmt])
    assert weights.format == fmt
    spec = find_arch(ARCHS[kind])
    conv = convert(None, weights=weights, spec=spec)
    assert conv.report.method == ("names" if fmt == "pdmodel" else "program order")
    assert conv.config["Head"]["out_channels"] == CLASSES[kind]
    report = verify(weights, conv.model, spec)
    assert report["passed"], report["results"]
    assert len(report["results"]) == 5  # real words only (random: false, see the table)
    assert max(r["max_abs"] for r in report["results"]) < 1e-4
    # the verifier's task check: the same argmax at every step of every output, i.e. the
    # decoded index sequences (the attention decoder's fed-back path) are identical
    assert all(r["argmax_equal"] for r in report["results"])


@pytest.mark.parametrize("kind", list(ARCHS))
def test_training_pdparams_convert(exports, kind, testdata):
    weights = formats.read(exports[kind]["pdparams"])
    assert weights.format == "pdparams" and weights.structured
    spec = find_arch(ARCHS[kind])
    conv = convert(None, weights=weights, spec=spec)
    assert conv.report.mapped == len(conv.model.state_dict()) - sum(
        n.endswith("num_batches_tracked") for n in conv.model.state_dict())
    x = word_batch(testdata, spec)
    ref = exports[kind]["model"](paddle.to_tensor(x)).numpy()
    with torch.inference_mode():
        out = conv.model(torch.from_numpy(x)).numpy()
    assert np.array_equal(ref.argmax(-1), out.argmax(-1))
    assert np.abs(ref - out).max() < 1e-4


def test_tps_rectifies_and_matches_paddle_at_other_sizes(testdata):
    """The spline matrices depend on the image size: checked at sizes other than 32x100,
    with both TPS sizes (small: 16..128 filters, large: 64..512). The sampling grids agree to
    fp32 rounding (both are ~3e-5 from the float64 grid); grid_sample turns a grid
    difference into one scaled by the image's gradient, so the rectified images are compared
    on a real word image, not on pixel noise."""
    import cv2
    from paddle_ref import load_into
    from ptocr.models.transforms.tps import TPS

    word = read_image(testdata / WORDS[0])
    for model_name, hw in (("small", (32, 64)), ("large", (48, 160))):
        ref = randomize_unit(PTPS(3, 20, 0.1, model_name), 5)
        rng = np.random.RandomState(5)
        ref.loc_net.fc2.weight.set_value(
            rng.uniform(-0.05, 0.05, ref.loc_net.fc2.weight.shape).astype("float32"))
        ours = load_into(TPS(3, 20, model_name=model_name), ref)
        img = cv2.resize(word, hw[::-1]).astype("float32").transpose(2, 0, 1) / 127.5 - 1
        x = np.stack([img, img[:, ::-1, ::-1]])
        fid = ref.loc_net(paddle.to_tensor(x))
        want_grid = ref.grid_generator(fid, [hw[1], hw[0]]).numpy()
        with torch.inference_mode():
            got_grid = ours.grid_generator(torch.from_numpy(fid.numpy()), hw[1], hw[0]).numpy()
            got = ours(torch.from_numpy(x)).numpy()
        assert np.abs(want_grid - got_grid).max() < 2e-5
        want = ref(paddle.to_tensor(x)).numpy()
        assert got.shape == x.shape
        # a 1e-5 grid difference at a text edge (pixel steps of ~2 over 1/W) moves a pixel by
        # ~1e-4: the bound is that, not the probability tolerance of whole networks
        assert np.abs(want - got).max() < 5e-4
        assert np.abs(got - x).max() > 0.05  # the grid really moved


# ---- processing against PaddleOCR 2.10's own operators

def test_fixed_width_resize_matches_ppocr(testdata):
    """infer_mode false: PaddleOCR's imaug RecResizeImg (resize_norm_img with padding), the
    canvas RARE's predict_rec uses; never widened by the batch's max_wh_ratio."""
    ref_op = ppocr_module("ppocr.data.imaug.rec_img_aug").RecResizeImg(
        image_shape=[3, 32, 100], infer_mode=False)
    spec = find_arch("rec_mv3_tps_bilstm_att")
    ours = build_transforms(spec.processing["PreProcess"])
    for w in WORDS + ["words/ch_word_2.jpg"]:
        img = read_image(testdata / w)
        want = ref_op({"image": img.copy()})["image"]
        got = transform(ours, {"image": img.copy(), "max_wh_ratio": 9.0})["image"]
        assert got.shape == (3, 32, 100)
        assert np.array_equal(want, got)


def test_attn_label_decode_matches_ppocr(tmp_path):
    dict_file = tmp_path / "d.txt"
    chars = list("0123456789abcdefghijklmnopqrstuvwxyz")
    dict_file.write_text("\n".join(chars) + "\n")
    rng = np.random.RandomState(0)
    for use_space in (False, True):
        n = len(chars) + 2 + use_space
        logits = rng.randn(6, 25, n).astype("float32") * 3
        logits[0, :, 0] += 20  # all sos: nothing kept, score NaN
        logits[1, 5:, n - 1] += 20  # eos after five characters
        logits[2, 3, n - 1] += 20  # an eos in the middle (PaddleOCR skips it and reads on)
        probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
        ref = ppocr_module("ppocr.postprocess.rec_postprocess").AttnLabelDecode(
            character_dict_path=str(dict_file), use_space_char=use_space)(probs)
        ours = build_postprocess({"name": "AttnLabelDecode"}, character_dict=chars,
                                 use_space_char=use_space)([probs])
        assert [t for t, _ in ours] == [t for t, _ in ref]
        np.testing.assert_allclose([s for _, s in ours], [s for _, s in ref], rtol=1e-6)
        assert np.isnan(ours[0][1]) and ours[0][0] == ""


def test_ctc_and_attention_tables_carry_their_processing():
    for name in ("rec_mv3_tps_bilstm_ctc", "rec_r34_vd_tps_bilstm_ctc"):
        spec = find_arch(name)
        assert spec.processing["PostProcess"]["name"] == "CTCLabelDecode"
        assert spec.dict_special_tokens == 1
    for name in ("rec_mv3_tps_bilstm_att", "rec_r34_vd_tps_bilstm_att"):
        spec = find_arch(name)
        assert spec.processing["PostProcess"]["name"] == "AttnLabelDecode"
        assert spec.dict_special_tokens == 2


# ---- usable: ptocr ocr with a RARE checkpoint; a dictionary that does not fit

def test_ocr_reads_with_a_rare_checkpoint(exports, models, testdata, tmp_path, cli):
    import json

    rec, det = tmp_path / "rare.pth", tmp_path / "det.pth"
    res = cli("convert", "--arch", "rec_mv3_tps_bilstm_att", "--paddle-dir",
              exports["att"]["pir"], "--out", rec, "--no-verify")
    assert res.returncode == 0, res.stderr
    res = cli("convert", "--arch", "PP-OCRv4_mobile_det", "--paddle-dir",
              models("PP-OCRv4_mobile_det"), "--out", det, "--no-verify")
    assert res.returncode == 0, res.stderr
    out = tmp_path / "ocr.json"
    res = cli("ocr", testdata / "images" / "11.jpg", "--det", det, "--rec", rec,
              "--drop-score", "0", "--json", out)
    assert res.returncode == 0, res.stderr
    lines = json.loads(out.read_text())["11.jpg"]
    assert lines
    alphabet = set("0123456789abcdefghijklmnopqrstuvwxyz")
    for line in lines:
        assert set(line["text"]) <= alphabet  # decoded by AttnLabelDecode, sos/eos dropped
    # the wrong role: a recogniser given as the detector
    res = cli("ocr", testdata / "images" / "11.jpg", "--det", rec, "--rec", rec)
    assert res.returncode != 0 and res.stderr.startswith("error:")
    assert len(res.stderr.strip().splitlines()) == 1


def test_dictionary_that_does_not_fit_attention_classes_is_refused(exports, tmp_path, cli):
    bad = tmp_path / "d.txt"
    bad.write_text("\n".join("abcdefghijklmnopqrstuvwxyz0123456789"[:37]) + "\n")  # 36 + 1
    (tmp_path / "extra.txt").write_text(bad.read_text() + "#\n")
    out = tmp_path / "rare.pth"
    res = cli("convert", "--arch", "rec_mv3_tps_bilstm_att", "--paddle-dir",
              exports["att"]["pir"], "--out", out, "--no-verify", "--rec-dict",
              tmp_path / "extra.txt", "--no-use-space-char")
    assert res.returncode == 2 and "2 special tokens" in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and not out.exists()
