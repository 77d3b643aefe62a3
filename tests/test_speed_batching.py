"""Issue 14, folders: OCR.many pools the classifier's and recogniser's crops of several images
into shared batches. Correctness only (never speed): its results are those of one image at a
time, bitwise (texts, boxes and scores), on real images with the real official models; bad
images come back as their errors in place; the fast form ptocr.load gives these backbones is
channels_last, folds PPLCNetV3's affine blocks into their convs (refolded after an edit, and
picklable), and stays within the tolerance of the training form."""

import io
import subprocess
import sys

import numpy as np
import pytest
import torch

import ptocr
from ptocr.pipeline import read_image

DET, REC, CLS = "PP-OCRv4_mobile_det", "PP-OCRv4_mobile_rec", "ch_ppocr_mobile_v2.0_cls"
# a mix: a page of many lines (full and partial batches at several canvas widths), scene
# images with a few lines (partial batches that pool across images), single words
IMAGES = ["images/img_12.jpg", "images/1.jpg", "images/img_11.jpg", "words/en_word_1.png",
          "words/ch_word_1.jpg"]


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory, models):
    out = tmp_path_factory.mktemp("batching")
    paths, procs = {}, []
    for task, arch in (("det", DET), ("rec", REC), ("cls", CLS)):  # the three at once
        paths[task] = out / f"{arch}.pth"
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "ptocr", "convert", "--arch", arch, "--paddle-dir",
             str(models(arch)), "--out", str(paths[task]), "--no-verify"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
    for proc in procs:
        _, err = proc.communicate()
        assert proc.returncode == 0, err
    return paths


@pytest.fixture(scope="module")
def system(ckpts):
    # a smaller det side keeps the test quick; the batching does not depend on it
    return ptocr.OCR(det=str(ckpts["det"]), rec=str(ckpts["rec"]), cls=str(ckpts["cls"]),
                     det_limit_side_len=640)


@pytest.fixture(scope="module")
def images(testdata):
    return [read_image(testdata / name) for name in IMAGES]


def test_many_gives_the_per_image_results_bitwise(system, images):
    one = [system(img) for img in images]
    assert sum(len(lines) for lines in one) >= 15 and all(one)
    pooled = system.many(images)
    assert pooled == one  # floats compared exactly
    # another order pools other batches: still the same results
    assert system.many(images[:0:-1]) == one[:0:-1]
    # and with the classifier off for the call
    assert system.many(images[3:], cls=False) == [system(img, cls=False) for img in images[3:]]


def test_pooled_batches_really_cross_images(system, images):
    """The partial batches of different images run as one batch (fewer model calls)."""
    calls = []
    run = system.rec.run

    def counting(batch):
        calls.append(len(batch))
        return run(batch)
    system.rec.run = counting
    try:
        per_image = [system.recognize(c) for c in _crops(system, images[1:3])]
        alone = len(calls)
        calls.clear()
        assert system._recognize_many(_crops(system, images[1:3])) == per_image
        assert len(calls) < alone and 1 not in calls or calls.count(1) < alone
    finally:
        del system.rec.run


def _crops(system, images):
    from ptocr.pipeline.boxes import get_rotate_crop_image, sorted_boxes

    return [[get_rotate_crop_image(img, b.copy()) for b in sorted_boxes(system.detect(img))]
            for img in images]


def test_many_returns_errors_in_place(system, images):
    blank = np.full((64, 64, 3), 255, np.uint8)
    res = system.many([images[3], "/nonexistent.png", blank], errors="return")
    assert res[0] == system(images[3]) and res[2] == []
    assert isinstance(res[1], OSError)
    with pytest.raises(ValueError):
        system.many([images[3], np.zeros((4, 4), np.uint8)])


def test_fast_form_is_channels_last_and_close_to_the_training_form(ckpts):
    for task, shape in (("det", [1, 3, 96, 128]), ("rec", [2, 3, 48, 160]),
                        ("cls", [2, 3, 48, 192])):
        fast, plain = ptocr.load(ckpts[task]), ptocr.load(ckpts[task], fuse=False)
        assert fast.ptocr_fused["channels_last"]
        convs = [m for m in fast.modules() if isinstance(m, torch.nn.Conv2d)]
        assert convs and all(m.weight.is_contiguous(memory_format=torch.channels_last)
                             or m.weight.shape[-2:] == (1, 1) and m.weight.shape[1] == 1
                             for m in convs)
        x = torch.rand(shape, generator=torch.Generator().manual_seed(0))
        with torch.inference_mode():
            a, b = fast(x), plain(x)
        assert float((a - b).abs().max()) < 1e-4
        if task == "cls":
            assert "affine_folded" not in fast.ptocr_fused  # MobileNetV3: no affine blocks
            continue
        assert fast.ptocr_fused["affine_folded"] == 28  # one per rep layer (PPLCNetV3)
        # an edit of a folded affine block is seen, as one of a folded BN's tensors
        name, lab = next((n, m) for n, m in fast.named_modules()
                         if type(m).__name__ == "FoldedLearnableAffineBlock")
        with torch.no_grad():
            for m in (lab, plain.get_submodule(name)):
                m.scale.mul_(1.5)
                m.bias.add_(0.25)
        with torch.inference_mode():
            assert float((fast(x) - plain(x)).abs().max()) < 1e-4
        torch.save(fast, io.BytesIO())  # the made Folded class pickles by name
