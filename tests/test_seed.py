"""SEED (configs/rec/rec_resnet_stn_bilstm_att.yml): STN_ON + ResNet_ASTER + AsterHead.

AsterHead's inference is a dygraph beam search (it reads tensors into numpy), so PaddleOCR
has no inference program for SEED and the verifier has nothing to run. The proof is
in-process: the paddle twin of PaddleOCR's modules (tests/paddle_twins_seed.py) at a small
head (sDim/attDim 64, 30 steps; STN and ResNet_ASTER as configured, the 97 classes of
EN_symbol_dict + eos, padding, unknown), every parameter and BN statistic random, saved as
a training .pdparams, converted by the real `ptocr convert`, and run on real words beside
the twin: the same beam-search ids, the encoder, the semantic embedding and the decoder's
logits within 1e-4. Processing against PaddleOCR 2.10's own operators."""

import json

import numpy as np
import paddle
import pytest
import torch
import yaml

import ptocr
from paddle_twins_seed import build, randomize
from ppocr_ref import ppocr_module, wheel_root
from ptocr.converter.mapping import find_arch
from ptocr.pipeline import model_inputs, read_image

ARCH = "rec_resnet_stn_bilstm_att"
WORDS = ["words/en_word_1.png", "words/en_word_2.png", "words/ch_word_1.jpg"]


@pytest.fixture(scope="module")
def twin(tmp_path_factory):
    root = tmp_path_factory.mktemp("seed")
    data = yaml.safe_load(find_arch(ARCH).path.read_text(encoding="utf-8"))
    data["name"], data["aliases"] = "small_seed", []
    data["Architecture"]["Head"].update(sDim=64, attDim=64, max_len_labels=30)
    table = root / "small_seed.yaml"
    table.write_text(yaml.safe_dump(data), encoding="utf-8")
    arch = dict(data["Architecture"], Head=dict(data["Architecture"]["Head"], out_channels=97))
    model = randomize(build(arch), 3)
    paddle.save(model.state_dict(), str(root / "train.pdparams"))
    return {"model": model, "pdparams": root / "train.pdparams", "table": table, "root": root}


@pytest.fixture(scope="module")
def converted(twin):
    from conftest import run_cli

    out = twin["root"] / "seed.pth"
    res = run_cli("convert", "--arch", twin["table"], "--paddle-dir", twin["pdparams"],
                  "--out", out)
    assert res.returncode == 0, res.stderr
    # no program exists for SEED: the converter says so instead of pretending
    assert "parity NOT verified (no Paddle program to compare with" in res.stderr
    return out


def words(testdata):
    spec = find_arch(ARCH)
    return np.concatenate([model_inputs(spec.processing, read_image(testdata / w))[0]
                           for w in WORDS])


def test_beam_search_and_logits_equal_the_paddle_twin(twin, converted, testdata):
    model = ptocr.load(converted)
    ref_model = twin["model"]
    x = words(testdata)
    ref = ref_model(paddle.to_tensor(x))
    ref_feats = ref_model.backbone(ref_model.transform(paddle.to_tensor(x)))
    rdec = ref_model.head.decoder.decoder
    ref_embed = ref_model.head.embeder(ref_feats)
    ref_logits, _ = rdec(ref_feats, rdec.get_initial_state(ref_embed),
                         paddle.full([len(x)], 97, dtype="int64"))
    with torch.inference_mode():
        ids, scores, embed = model(torch.from_numpy(x))
        feats = model.backbone(model.transform(torch.from_numpy(x)))
        # the head on the twin's own features: the semantic embedding and the decoder's
        # first-step logits
        same = torch.from_numpy(ref_feats.numpy())
        dec = model.head.decoder.decoder
        embed_same = model.head.embeder(same)
        logits, _ = dec(same, dec.get_initial_state(embed_same),
                        torch.full((len(x),), 97, dtype=torch.long))
    assert ids.dtype == torch.int64 and ids.shape == (len(x), 30)
    assert np.array_equal(ids.numpy(), ref["rec_pred"].numpy())  # the beam search's result
    assert np.array_equal(scores.numpy(), ref["rec_pred_scores"].numpy())
    # the encoder behind STN_ON: its TPS grid's fp32 rounding through grid_sample moves the
    # features by ~1e-4 (the SVTR tests pin STN_ON itself against Paddle in float64)
    assert np.abs(feats.numpy() - ref_feats.numpy()).max() < 5e-4
    assert np.abs(embed.numpy() - ref["embedding_vectors"].numpy()).max() < 5e-4
    assert np.abs(embed_same.numpy() - ref_embed.numpy()).max() < 1e-4
    assert np.abs(logits.numpy() - ref_logits.numpy()).max() < 1e-4
    # not a degenerate case: the images decode differently and <eos> (94) is emitted
    assert len({tuple(r) for r in ids.tolist()}) > 1 and (ids == 94).any()


def test_broken_conversions_are_refused_or_caught(twin, converted, testdata):
    """A checkpoint missing the semantic embedding is refused by the converter; a decoder
    GRU with its r and z gates swapped changes the beam search, so the comparison above can
    fail."""
    from ptocr.converter.convert import convert
    from ptocr.converter.formats import PaddleWeights
    from ptocr.errors import PtocrError

    state = {k: v.numpy() for k, v in twin["model"].state_dict().items()
             if k != "head.embeder.eEmbed.weight"}
    with pytest.raises(PtocrError, match="eEmbed"):
        convert(None, weights=PaddleWeights("pdparams", state, True),
                spec=find_arch(str(twin["table"])))
    model = ptocr.load(converted)
    gru = model.head.decoder.decoder.gru
    with torch.no_grad():
        for p in (gru.weight_ih, gru.weight_hh, gru.bias_ih, gru.bias_hh):
            h = p.shape[0] // 3
            p.copy_(torch.cat([p[h:2 * h], p[:h], p[2 * h:]]))
        x = words(testdata)
        ids = model(torch.from_numpy(x))[0]
    ref = twin["model"](paddle.to_tensor(x))["rec_pred"].numpy()
    assert not np.array_equal(ids.numpy(), ref)


def test_eval_resize_matches_ppocr(testdata):
    """Eval's RecResizeImg(image_shape [3, 64, 256], padding false) from the wheel: the
    crop stretched to 64x256, (x / 255 - 0.5) / 0.5; the table's operator gives it exactly."""
    ref = ppocr_module("ppocr.data.imaug.rec_img_aug").RecResizeImg(
        image_shape=[3, 64, 256], padding=False, character_dict_path=None)
    spec = find_arch(ARCH)
    for name in WORDS + ["words/ch_word_3.jpg"]:
        img = read_image(testdata / name)
        ours = model_inputs(spec.processing, img)[0]
        assert ours.shape == (1, 3, 64, 256)
        assert np.array_equal(ours[0], ref({"image": img.copy()})["image"])


def test_seed_label_decode_matches_ppocr(twin, converted, testdata):
    from ptocr.pipeline.registry import build_postprocess

    dict_path = wheel_root() / "ppocr" / "utils" / "EN_symbol_dict.txt"
    chars = dict_path.read_text(encoding="utf-8").splitlines()
    ref_op = ppocr_module("ppocr.postprocess.rec_postprocess").SEEDLabelDecode(
        character_dict_path=str(dict_path), use_space_char=False)
    ours_op = build_postprocess(find_arch(ARCH).processing["PostProcess"],
                                character_dict=chars, use_space_char=False)
    rng = np.random.RandomState(0)
    ids = rng.randint(0, 97, (6, 30))
    ids[0, 0] = 94  # eos first: nothing read
    ids[1, 7] = 94  # read seven symbols
    ids[2, :] = rng.randint(0, 94, 30)  # no eos: all thirty
    ids[3, 3] = 95  # padding and unknown read as words, as PaddleOCR does
    ids[3, 4] = 96
    ids[3, 9] = 94
    # and the converted model's own output on real words
    with torch.inference_mode():
        real = ptocr.load(converted)(torch.from_numpy(words(testdata)))
    for pred in ({"rec_pred": ids, "rec_pred_scores": np.ones_like(ids)},
                 {"rec_pred": real[0].numpy(), "rec_pred_scores": real[1].numpy()}):
        theirs = ref_op(pred)
        ours = ours_op([pred["rec_pred"], pred["rec_pred_scores"]])
        assert [t for t, _ in ours] == [t for t, _ in theirs]
        np.testing.assert_equal([s for _, s in ours], [float(s) for _, s in theirs])


def test_ocr_reads_with_the_seed_checkpoint(converted, det_v4_checkpoint, testdata, tmp_path,
                                            cli):
    out = tmp_path / "ocr.json"
    res = cli("ocr", testdata / "images" / "11.jpg", "--det", det_v4_checkpoint, "--rec",
              converted, "--drop-score", "0", "--json", out)
    assert res.returncode == 0, res.stderr
    lines = json.loads(out.read_text())["11.jpg"]
    alphabet = set((wheel_root() / "ppocr" / "utils" / "EN_symbol_dict.txt").read_text(
        encoding="utf-8").splitlines())
    assert lines and all(set(line["text"]) <= alphabet | set("paddingunknown")
                         for line in lines)
