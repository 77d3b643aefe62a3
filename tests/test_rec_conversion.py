"""Real official recognisers: PP-OCRv4 mobile rec (2.x, structured names) and PP-OCRv5
mobile rec (PIR, program order) convert, verify on real word images, carry their dictionary."""

import numpy as np
import pytest
import torch

import ptocr
from ptocr.converter import formats
from ptocr.converter.verify import PaddleProgram
from ptocr.converter.mapping import find_arch
from ptocr.pipeline import model_inputs, read_image


@pytest.mark.parametrize("arch,classes,source", [
    ("PP-OCRv4_mobile_rec", 6625, "ppocr_keys_v1.txt"),
    ("PP-OCRv5_mobile_rec", 18385, "inference.yml"),
])
def test_real_recogniser_converts_verifies_and_carries_dict(arch, classes, source, models,
                                                           testdata, tmp_path, cli):
    out = tmp_path / "rec.pth"
    res = cli("convert", "--arch", arch, "--paddle-dir", models(arch), "--out", out)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "PASSED" in res.stdout and "image words/" in res.stdout
    model = ptocr.load(out)
    extra = model.ptocr_meta["extra"]
    assert extra["dict_source"] == source and extra["use_space_char"] is True
    assert len(extra["character_dict"]) + 2 == classes
    paddle = PaddleProgram(formats.read(models(arch)))
    for name in ("ch_word_2.jpg", "en_word_3.png"):
        x = model_inputs(find_arch(arch).processing, read_image(testdata / "words" / name))[0]
        (ref,) = paddle(x)
        with torch.inference_mode():
            got = model(torch.from_numpy(x)).numpy()
        assert got.shape == ref.shape and got.shape[-1] == classes
        assert np.abs(got - ref).max() <= 1e-4
        assert (got.argmax(-1) == ref.argmax(-1)).all()


def test_dictionary_must_fit_the_class_count(models, tmp_path, cli):
    bad = tmp_path / "dict.txt"
    bad.write_text("a\nb\nc\n")
    res = cli("convert", "--arch", "PP-OCRv4_mobile_rec", "--paddle-dir",
              models("PP-OCRv4_mobile_rec"), "--out", tmp_path / "r.pth", "--no-verify",
              "--rec-dict", bad)
    assert res.returncode == 2 and "has 3 entries" in res.stderr
    assert not (tmp_path / "r.pth").exists()
    res = cli("convert", "--arch", "PP-OCRv4_mobile_det", "--paddle-dir",
              models("PP-OCRv4_mobile_det"), "--out", tmp_path / "d.pth", "--no-verify",
              "--rec-dict", bad)
    assert res.returncode == 2 and "applies to recognisers" in res.stderr
