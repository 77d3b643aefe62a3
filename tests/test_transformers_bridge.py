"""PaddleOCR -> Hugging Face transformers and back, on the real PP-OCRv5 mobile det and rec
(official PIR exports): `ptocr convert --to transformers` fills transformers' own classes
(PaddlePaddle's torch ports, an implementation no one here wrote), which load with
`from_pretrained` with no missing or unexpected keys and equal Paddle Inference; the folder
read back by `ptocr.load` equals the direct ptocr conversion."""

import json

import numpy as np
import pytest
import torch

import ptocr
from ptocr.converter import formats, hf
from ptocr.converter.convert import convert
from ptocr.converter.verify import PaddleProgram, make_inputs
from ptocr.pipeline import model_inputs, read_image

from conftest import run_cli
from test_mv1e_lcnet_family import exported_textline_ori  # noqa: F401 (its module fixture)

DET, REC = "PP-OCRv5_mobile_det", "PP-OCRv5_mobile_rec"


@pytest.fixture(scope="module")
def det_folder(models, tmp_path_factory):
    """The real det converted by the CLI (--no-verify: the verifier's run on these models is
    a minute of Paddle float64; here Paddle fp32 is compared below, on a real image)."""
    out = tmp_path_factory.mktemp("hf") / "det"
    res = run_cli("convert", "--arch", DET, "--paddle-dir", models(DET), "--to", "transformers",
                  "--out", out, "--no-verify")
    assert res.returncode == 0, res.stderr
    return out


def _direct(models, name):
    """The direct ptocr conversion, with the meta a checkpoint would carry."""
    from ptocr.converter import dictionary

    conv = convert(models(name), name)
    chars = dictionary.resolve(conv.spec, conv.weights,
                               getattr(conv.model.head, "out_channels", None)) or {}
    conv.model.ptocr_meta = {"arch": name, "config": conv.config, "processing": conv.processing,
                             "extra": {"task": conv.spec.task, **chars}}
    return conv


@pytest.fixture(scope="module")
def det_direct(models):
    return _direct(models, DET)


@pytest.fixture(scope="module")
def rec(models, tmp_path_factory):
    """(direct ptocr conversion, transformers folder) of the real rec, through the Python API
    the CLI uses."""
    conv = _direct(models, REC)
    hf_model, _ = hf.to_transformers(conv.model, conv.config, conv.spec)
    out = tmp_path_factory.mktemp("hf") / "rec"
    meta = {"arch": REC, "parity": {"verified": False}, "processing": conv.processing,
            "extra": conv.model.ptocr_meta["extra"]}
    hf.write_folder(out, hf_model, conv.spec, meta)
    return conv, out


_PROGRAMS = {}


def _paddle(models, name, x):
    """Paddle Inference's output on x (one predictor per real model, built once)."""
    if name not in _PROGRAMS:
        _PROGRAMS[name] = PaddleProgram(formats.read(models(name)))
    return _PROGRAMS[name](x)[0]


def _image_input(name, rel, testdata):
    spec = ptocr.converter.mapping.find_arch(name)
    return model_inputs(spec.processing, read_image(testdata / rel))[0]


def test_det_loads_in_transformers_and_equals_paddle(det_folder, models, testdata):
    from transformers import AutoModelForObjectDetection, PPOCRV5MobileDetForObjectDetection

    model, info = PPOCRV5MobileDetForObjectDetection.from_pretrained(
        det_folder, output_loading_info=True)
    assert info["missing_keys"] == set() and info["unexpected_keys"] == set()
    assert info["mismatched_keys"] == set()
    assert AutoModelForObjectDetection._model_mapping[type(model.config)] is type(model)
    assert {"config.json", "model.safetensors", "preprocessor_config.json"} <= {
        p.name for p in det_folder.iterdir()}
    pre = json.loads((det_folder / "preprocessor_config.json").read_text())
    assert pre["image_processor_type"] == "PPOCRV5ServerDetImageProcessor"
    x = _image_input(DET, "images/img_12.jpg", testdata)
    with torch.inference_mode():
        ours = model.eval()(pixel_values=torch.from_numpy(x)).last_hidden_state.numpy()
    ref = _paddle(models, DET, x)
    assert ours.shape == ref.shape
    assert np.abs(ours - ref).max() <= 1e-4


def test_rec_loads_in_transformers_and_equals_paddle(rec, models, testdata):
    from transformers import PPOCRV5MobileRecForTextRecognition

    conv, folder = rec
    model, info = PPOCRV5MobileRecForTextRecognition.from_pretrained(
        folder, output_loading_info=True)
    assert info["missing_keys"] == set() and info["unexpected_keys"] == set()
    assert info["mismatched_keys"] == set()
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg["head_out_channels"] == 18385 and cfg["hidden_size"] == 120
    assert cfg["backbone_config"]["scale"] == 0.95
    chars = json.loads((folder / "preprocessor_config.json").read_text())["character_list"]
    assert len(chars) == 18385 and chars[0] == "blank" and chars[-1] == " "
    for rel in ("words/ch_word_1.jpg", "words/en_word_1.png"):
        x = _image_input(REC, rel, testdata)
        with torch.inference_mode():
            ours = model.eval()(pixel_values=torch.from_numpy(x)).last_hidden_state.numpy()
        ref = _paddle(models, REC, x)
        assert np.abs(ours - ref).max() <= 1e-4, rel
        assert (ours.argmax(-1) == ref.argmax(-1)).all()


def test_round_trip_equals_direct_checkpoint(det_folder, det_direct, rec, tmp_path):
    """transformers folder -> ptocr.load gives the direct conversion's outputs (once fused by
    reparameterize(), the det's are the same numbers exactly); a folder without ptocr's own
    record (as PaddlePaddle publishes them) reads the dictionary from the image processor."""
    import shutil

    conv, rec_folder = rec
    # small inputs: every weight takes part at any size
    for folder, direct, shape in ((det_folder, det_direct.model, [1, 3, 96, 128]),
                                  (rec_folder, conv.model, [2, 3, 48, 96])):
        back = ptocr.load(folder)
        assert back.ptocr_meta["arch"] == direct.ptocr_meta["arch"]
        assert back.ptocr_meta["extra"]["task"] == direct.ptocr_meta["extra"]["task"]
        x = torch.from_numpy(np.random.RandomState(0).uniform(-1, 1, shape).astype(np.float32))
        with torch.inference_mode():
            want = direct(x)
            # the training form (one kxk branch + zero branches) rounds in another order
            assert (back(x) - want).abs().max().item() <= 1e-5
            back.reparameterize()
            fused = (back(x) - want).abs().max().item()
        assert fused <= (0.0 if folder == det_folder else 1e-5)
    bare = tmp_path / "bare"
    shutil.copytree(rec_folder, bare)
    (bare / "ptocr.json").unlink()
    extra = ptocr.load(bare).ptocr_meta["extra"]
    want = conv.model.ptocr_meta["extra"]
    assert extra["character_dict"] == want["character_dict"]
    assert extra["use_space_char"] is want["use_space_char"] is True


def test_ocr_system_runs_on_transformers_folders(det_folder, det_direct, rec, testdata):
    conv, rec_folder = rec
    image = str(testdata / "images" / "img_12.jpg")
    small = {"det_limit_side_len": 480}  # the comparison, not the size, is the point
    from_hf = ptocr.OCR(det=str(det_folder), rec=str(rec_folder), **small)(image)
    direct = ptocr.OCR(det=det_direct.model, rec=conv.model, **small)(image)
    assert len(from_hf) > 3
    assert [r["text"] for r in from_hf] == [r["text"] for r in direct]
    for a, b in zip(from_hf, direct):
        assert np.abs(np.array(a["box"]) - np.array(b["box"])).max() <= 1
        assert abs(a["score"] - b["score"]) <= 1e-3


def test_config_that_does_not_fit_the_weights_is_refused(det_folder, det_direct, tmp_path):
    """A transformers config (e.g. a Hub repo's) that does not fit the weights is one line
    naming the tensors, raised before the folder is written (the CLI prints it as its
    `error:` line)."""
    from ptocr.errors import MappingError

    cfg = json.loads((det_folder / "config.json").read_text())
    for key, value in (("neck_out_channels", 64), ("layer_list_out_channels", [8, 8, 8, 8])):
        with pytest.raises(MappingError) as info:
            hf.to_transformers(det_direct.model, det_direct.config, det_direct.spec,
                               {**cfg, key: value})
        message = str(info.value)
        assert "\n" not in message and message.startswith(
            "the transformers config does not fit the weights") and "shape conflicts" in message


def test_rec_config_with_other_class_count_or_hidden_size_is_refused(rec):
    from ptocr.errors import MappingError

    conv, folder = rec
    cfg = json.loads((folder / "config.json").read_text())
    for key, value in (("head_out_channels", 6625), ("hidden_size", 64)):
        with pytest.raises(MappingError, match="does not fit the weights.*shape conflicts"):
            hf.to_transformers(conv.model, conv.config, conv.spec, {**cfg, key: value})


def test_folder_whose_weights_do_not_fit_its_config_is_refused(rec, tmp_path):
    import shutil

    from ptocr.errors import MappingError

    _conv, folder = rec
    bad = tmp_path / "bad"
    shutil.copytree(folder, bad)
    cfg = json.loads((bad / "config.json").read_text())
    (bad / "config.json").write_text(json.dumps({**cfg, "head_out_channels": 97}))
    with pytest.raises(MappingError, match="does not fit its config.json"):
        ptocr.load(bad)


# ---- PP-LCNet orientation classifier: a PaddleClas twin exported as PIR (the export of
# tests/test_mv1e_lcnet_family.py), to transformers' PPLCNetForImageClassification

@pytest.fixture(scope="module")
def textline_ori(exported_textline_ori, tmp_path_factory):  # noqa: F811
    name = "PP-LCNet_x0_25_textline_ori"
    conv = convert(exported_textline_ori, name)
    hf_model, _ = hf.to_transformers(conv.model, conv.config, conv.spec)
    out = tmp_path_factory.mktemp("hf") / "cls"
    hf.write_folder(out, hf_model, conv.spec, {"arch": name, "processing": conv.processing,
                                                "extra": {"task": "cls"}})
    return exported_textline_ori, conv, out


def test_textline_classifier_to_transformers_equals_paddle(textline_ori):
    from transformers import PPLCNetForImageClassification

    export, conv, folder = textline_ori
    model, info = PPLCNetForImageClassification.from_pretrained(folder, output_loading_info=True)
    assert info["missing_keys"] == set() and info["unexpected_keys"] == set()
    assert model.config.num_labels == 2 and model.config.id2label[1] == "180_degree"
    program = PaddleProgram(formats.read(export))
    back = ptocr.load(folder)
    for label, x in make_inputs(conv.spec, images=False):
        ref = program(x)[0]
        with torch.inference_mode():
            logits = model.eval()(pixel_values=torch.from_numpy(x)).last_hidden_state
            probs = torch.softmax(logits, -1).numpy()  # Paddle's export ends in softmax
            assert np.abs(back(torch.from_numpy(x)).numpy() - conv.model(
                torch.from_numpy(x)).numpy()).max() <= 1e-6, label
        assert np.abs(probs - ref).max() <= 1e-5, label


def test_archs_marks_and_convert_refuses_architectures_without_a_class(tmp_path):
    from click.testing import CliRunner

    from ptocr.cli import main

    res = CliRunner().invoke(main, ["archs"])
    lines = res.output.splitlines()
    col = lines[0].index(" hf ") + 1  # the column after architecture, task and proof
    marks = {line.split()[0]: line[col:col + 3].strip() for line in lines[1:]}
    assert marks[DET] == marks[REC] == marks["PP-LCNet_x0_25_textline_ori"] == "hf"
    assert marks["ch_PP-OCRv3_det"] == "-"
    out = tmp_path / "x"
    res = CliRunner().invoke(main, ["convert", "--arch", "ch_PP-OCRv3_det", "--paddle-dir",
                                    str(tmp_path), "--to", "transformers", "--out", str(out)])
    assert res.exit_code != 0 and not out.exists()
    assert "transformers has no class for this architecture" in res.output


def _with_transformers_constants(model):
    """A float64 copy of a ptocr model with the few constants transformers' ports use
    instead of Paddle's (hardsigmoid slope 1/6 for 0.1666667; LayerNorm epsilon 1e-6 in the
    SVTR blocks): what remains between it and the transformers model is the mapping alone."""
    import copy

    from ptocr.models.layers import PaddleHardsigmoid

    out = copy.deepcopy(model).double().eval()
    for module in out.modules():
        if isinstance(module, PaddleHardsigmoid) and module.slope == 0.1666667:
            module.slope = 1 / 6
        if isinstance(module, torch.nn.LayerNorm):
            module.eps = 1e-6
    return out


def _exact_passthrough(hf_model):
    """Float64 copy; the pass-through BNs of fused layers (running_var 1 - eps in float32, so
    exactly 1 there but 1 - 7e-9 in float64, ~1e-5 over the rec's depth) set to 1 - eps in
    float64, as they are meant."""
    model = hf_model.double().eval()
    for name, module in model.named_modules():
        if name.endswith("conv_symmetric.0.normalization"):
            if torch.allclose(module.running_var, torch.full_like(module.running_var, 0.99999)):
                module.running_var.fill_(1 - module.eps)
    return model


def test_mapping_is_exact_once_transformers_constants_are_taken(det_folder, det_direct, rec):
    """The verifier holds transformers models to 1e-4 (their constants differ from Paddle's
    by up to ~3e-5 on the real rec); this pins the mapping itself in float64: with the same
    constants the two implementations agree to rounding, and one swapped pair of equally
    shaped kernels shows at once."""
    from transformers import AutoModelForObjectDetection, AutoModelForTextRecognition

    conv, rec_folder = rec
    det_hf = _exact_passthrough(AutoModelForObjectDetection.from_pretrained(det_folder))
    rec_hf = _exact_passthrough(AutoModelForTextRecognition.from_pretrained(rec_folder))
    rng = np.random.RandomState(1)
    rec_ours = _with_transformers_constants(conv.model)
    # transformers' rec takes its softmax in float32 whatever the model's dtype: compare the
    # logits (the classifier's output) there. Small inputs (float64 convolutions are slow on
    # CPU): every weight takes part at any size.
    for hf_model, ours, shape, last in (
            (det_hf, _with_transformers_constants(det_direct.model), [1, 3, 64, 96], None),
            (rec_hf, rec_ours, [1, 3, 48, 64], (rec_hf.head.head, rec_ours.head.ctc_head.fc))):
        x = torch.from_numpy(rng.uniform(-1, 1, shape))
        got, want = _outputs(hf_model, ours, x, last)
        assert (got - want).abs().max().item() <= 1e-9
    state = rec_hf.state_dict()
    a = "model.backbone.encoder.blocks.3.layers.1.depthwise_convolution.conv_symmetric.0." \
        "convolution.weight"
    b = a.replace("layers.1", "layers.2")
    state[a], state[b] = state[b].clone(), state[a].clone()
    rec_hf.load_state_dict(state)
    got, want = _outputs(rec_hf, rec_ours, x, (rec_hf.head.head, rec_ours.head.ctc_head.fc))
    assert (got - want).abs().max().item() > 1e-6


def _outputs(hf_model, ours, x, last=None):
    """(transformers output, ptocr output) for x, or the outputs of the two ``last`` layers."""
    seen = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: seen.append(out)) for m in last or ()]
    try:
        with torch.inference_mode():
            got = hf_model(pixel_values=x).last_hidden_state
            want = ours(x)
    finally:
        for h in hooks:
            h.remove()
    return (seen[0], seen[1]) if last else (got, want)
