"""The front door: default models fetched once through a file:// mirror manifest (no network),
PDFs, each stage alone, and `from ptocr import PaddleOCR` against PaddleOCR 2.10's own
`ocr()` (tests/reference/paddleocr_api.json, made by scripts/make_api_reference.py with the
official paddleocr==2.10.0 package on the official PP-OCRv4 det/rec and v2.0 cls models)."""

import hashlib
import json
import shutil
import tarfile
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

import ptocr
from conftest import run_cli
from ptocr.converter import models_cache, zoo
from ptocr.errors import PtocrError

REFERENCE = Path(__file__).parent / "reference" / "paddleocr_api.json"
V5 = ("PP-OCRv5_mobile_det", "PP-OCRv5_mobile_rec")
V4 = ("PP-OCRv4_mobile_det", "PP-OCRv4_mobile_rec", "ch_ppocr_mobile_v2.0_cls")


def make_mirror(folder, models, names):
    """A file:// mirror of official inference archives and its manifest."""
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for name in names:
        tar = folder / f"{name}_infer.tar"
        with tarfile.open(tar, "w") as tf:
            tf.add(models(name), arcname=f"{name}_infer")
        entry = {"model": name, "arch": name, "sources": [
            {"url": tar.as_uri(), "sha256": hashlib.sha256(tar.read_bytes()).hexdigest(),
             "kind": "inference"}]}
        entries.append(entry)
    manifest = folder / "zoo.yaml"
    manifest.write_text(yaml.safe_dump({"models": entries}))
    return manifest


@pytest.fixture(scope="module")
def first_call(tmp_path_factory, models, testdata):
    """`ptocr ocr IMAGE` with no model flags on an empty $PTOCR_HOME, then again with the
    mirror gone."""
    root = tmp_path_factory.mktemp("frontdoor")
    manifest = make_mirror(root / "mirror", models, V5)
    env = {"PTOCR_HOME": str(root / "home"), "PTOCR_MANIFEST": str(manifest)}
    image = testdata / "images" / "11.jpg"
    first = run_cli("ocr", image, env=env)
    for tar in (root / "mirror").glob("*.tar"):
        tar.unlink()  # the second call must not need the mirror
    second = run_cli("ocr", image, env=env)
    return {"env": env, "home": root / "home", "first": first, "second": second,
            "image": image}


def test_first_call_fetches_converts_verifies_and_caches(first_call):
    res = first_call["first"]
    assert res.returncode == 0, res.stderr
    lines = json.loads(res.stdout)["11.jpg"]
    assert lines[0]["text"] == "纯臻营养护发素" and len(lines) > 10
    for name in V5:
        assert f"fetched {name}" in res.stderr
        assert f"{name} verified against Paddle" in res.stderr  # paddle imports here
        meta = ptocr.load(first_call["home"] / "models" / f"{name}.pth").ptocr_meta
        assert meta["parity"]["verified"] and meta["parity"]["passed"]
        assert meta["processing"]["PostProcess"]  # the export's processing travels along
    # no temp files, partial downloads or unpack dirs left behind
    leftovers = [p for p in first_call["home"].rglob("*")
                 if p.name.endswith((".partial", ".unpacking", ".tmp"))]
    assert not leftovers


def test_second_call_reuses_the_cache_without_fetching(first_call):
    first, second = first_call["first"], first_call["second"]
    assert second.returncode == 0, second.stderr
    assert "fetched" not in second.stderr and "converting" not in second.stderr
    assert json.loads(second.stdout) == json.loads(first.stdout)
    res = run_cli("models", "path", env=first_call["env"])
    assert res.returncode == 0, res.stderr
    assert [Path(p).name for p in res.stdout.split()] == [f"{n}.pth" for n in V5]


def test_explicit_paths_override_the_defaults(first_call, models, tmp_path):
    """--det/--rec take a ptocr checkpoint or a Paddle folder; an unreachable manifest does
    not matter then."""
    env = dict(first_call["env"], PTOCR_MANIFEST=str(tmp_path / "missing.yaml"))
    det = first_call["home"] / "models" / "PP-OCRv5_mobile_det.pth"
    res = run_cli("ocr", first_call["image"], "--det", det, "--rec",
                  models("PP-OCRv5_mobile_rec"), env=env)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == json.loads(first_call["first"].stdout)


def test_unreachable_model_is_one_line_and_caches_nothing(tmp_path, testdata):
    manifest = tmp_path / "zoo.yaml"
    manifest.write_text(yaml.safe_dump({"models": [
        {"model": n, "arch": n, "sources": [{"url": (tmp_path / "gone.tar").as_uri(),
                                             "sha256": None}]} for n in V4]}))
    env = {"PTOCR_HOME": str(tmp_path / "home"), "PTOCR_MANIFEST": str(manifest)}
    res = run_cli("ocr", testdata / "images" / "11.jpg", "--ocr-version", "PP-OCRv4", env=env)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: PP-OCRv4_mobile_det: cannot be "
                                                   "fetched"), res.stderr
    assert "PTOCR_MANIFEST" in lines[0] and "Traceback" not in res.stderr
    assert not list((tmp_path / "home").rglob("*.pth"))
    assert not res.stdout


@pytest.fixture
def cls_mirror(tmp_path, models, monkeypatch):
    manifest = make_mirror(tmp_path / "mirror", models, ["ch_ppocr_mobile_v2.0_cls"])
    monkeypatch.setenv("PTOCR_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PTOCR_MANIFEST", str(manifest))
    return tmp_path / "home"


def test_interrupted_fetch_or_convert_leaves_nothing_taken_for_a_model(cls_mirror,
                                                                       monkeypatch):
    name = "ch_ppocr_mobile_v2.0_cls"
    out = models_cache.checkpoint_path(name)

    # 1. killed half way through copying the archive
    real_copy = shutil.copyfile

    def half_copy(src, dst):
        Path(dst).write_bytes(Path(src).read_bytes()[:5000])
        raise KeyboardInterrupt

    monkeypatch.setattr(zoo.shutil, "copyfile", half_copy)
    with pytest.raises(KeyboardInterrupt):
        models_cache.ensure(name, verify=False, progress=False)
    assert not out.exists()
    downloads = list((cls_mirror / "sources" / "downloads").iterdir())
    assert [p.name for p in downloads] == [f"{name}_infer.tar.partial"]  # never the archive
    monkeypatch.setattr(zoo.shutil, "copyfile", real_copy)

    # 2. killed while the checkpoint is being written
    import torch

    real_save = torch.save

    def half_save(obj, path, *a, **k):
        Path(path).write_bytes(b"PK\x03\x04 half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", half_save)
    with pytest.raises(KeyboardInterrupt):
        models_cache.ensure(name, verify=False, progress=False)
    assert not out.exists() and not list(out.parent.glob(f".{out.name}*"))
    monkeypatch.setattr(torch, "save", real_save)

    # 3. a stale unpack directory of a killed process is not a model either
    stale = cls_mirror / "sources" / "models" / f"{name}.unpacking"
    stale.mkdir(parents=True, exist_ok=True)
    (stale / "inference.pdiparams").write_bytes(b"junk")

    # a later call fetches again and gives a working model
    path = models_cache.ensure(name, verify=False, progress=False)
    model = ptocr.load(path)
    assert model.ptocr_meta["parity"] == {"verified": False, "reason": "not requested"}
    assert not list(cls_mirror.rglob("*.partial"))

    # 4. a cached file that is not a checkpoint (disk trouble) is replaced, not trusted
    path.write_bytes(b"garbage")
    notes = []
    again = models_cache.load(name, verify=False, note=notes.append)
    assert again.ptocr_meta["arch"] == name and "unusable" in notes[0]


def test_without_paddle_the_model_is_cached_unverified_with_a_note(cls_mirror, monkeypatch):
    from ptocr.converter import verify

    monkeypatch.setattr(verify, "paddle_unavailable_reason", lambda: "paddle is not installed")
    notes = []
    path = models_cache.ensure("ch_ppocr_mobile_v2.0_cls", note=notes.append, progress=False)
    assert any(n.startswith("note: ch_ppocr_mobile_v2.0_cls is used unverified "
                            "(paddle is not installed)") for n in notes)
    parity = ptocr.load(path).ptocr_meta["parity"]
    assert parity == {"verified": False, "reason": "paddle is not installed"}


def test_language_mapping_follows_paddleocr():
    d = models_cache.default_models
    assert d() == {"det": "PP-OCRv5_mobile_det", "rec": "PP-OCRv5_mobile_rec",
                   "cls": "ch_ppocr_mobile_v2.0_cls"}
    assert d(lang="en")["rec"] == "PP-OCRv5_mobile_rec"
    # PaddleOCR 3.0: languages without a v5 recogniser default to PP-OCRv3
    assert d(lang="korean") == {"det": "ml_PP-OCRv3_det", "rec": "korean_PP-OCRv3_rec",
                                "cls": "ch_ppocr_mobile_v2.0_cls"}
    # PaddleOCR 2.10: language groups and det languages
    assert d("PP-OCRv4", "en") == {"det": "en_PP-OCRv3_det", "rec": "en_PP-OCRv4_mobile_rec",
                                   "cls": "ch_ppocr_mobile_v2.0_cls"}
    assert d("PP-OCRv4", "ch")["det"] == "PP-OCRv4_mobile_det"
    assert d("PP-OCRv3", "french")["rec"] == "latin_PP-OCRv3_rec"
    assert d("PP-OCRv3", "french")["det"] == "en_PP-OCRv3_det"
    assert d("PP-OCRv3", "ru")["rec"] == "cyrillic_PP-OCRv3_rec"
    assert d("PP-OCRv3", "hi") == {"det": "ml_PP-OCRv3_det", "rec": "devanagari_PP-OCRv3_rec",
                                   "cls": "ch_ppocr_mobile_v2.0_cls"}
    with pytest.raises(PtocrError, match="no recogniser for language 'korean'"):
        d("PP-OCRv5", "korean")
    with pytest.raises(PtocrError, match="unknown language"):
        d(lang="klingon")
    # every model the mapping names for v5/v4-ch/v3 is in the manifest
    known = {e["model"] for e in zoo.load_manifest()}
    for version in ("PP-OCRv5", "PP-OCRv3"):
        for code in models_cache.languages():
            try:
                chosen = d(version, code)
            except PtocrError:
                continue
            assert set(chosen.values()) <= known, (version, code, chosen)


# ---------------------------------------------------------------- PDFs

def make_pdf(path, images):
    from PIL import Image

    pages = [Image.open(p).convert("RGB") for p in images]
    pages[0].save(path, save_all=True, append_images=pages[1:], resolution=72.0)
    return path


def test_pdf_pages_equal_ocr_of_the_rendered_pages(first_call, testdata, tmp_path, request):
    from ptocr.pipeline.documents import render_pdf

    sources = [testdata / "images" / "11.jpg", testdata / "images" / "ger_1.jpg"]
    pdf = make_pdf(tmp_path / "doc.pdf", sources)
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4\n1 0 obj <<>> trailer garbage")
    good = testdata / "words" / "ch_word_1.jpg"
    out = tmp_path / "out.json"
    # one torch thread on both sides: fp32 scores depend on the thread count (summation order)
    res = run_cli("ocr", tmp_path / "broken.pdf", pdf, good, "--json", out, "--threads", "1",
                  env=first_call["env"])
    assert res.returncode == 1, res.stderr
    warnings_ = [ln for ln in res.stderr.splitlines() if ln.startswith("warning:")]
    assert len(warnings_) == 1 and "broken.pdf" in warnings_[0]
    assert "1 of 3 inputs could not be read" in res.stderr
    got = json.loads(out.read_text(encoding="utf-8"))
    assert set(got) == {"doc.pdf", "ch_word_1.jpg"}

    home = first_call["home"] / "models"
    threads = torch.get_num_threads()
    system = ptocr.OCR(det=home / f"{V5[0]}.pth", rec=home / f"{V5[1]}.pth", threads=1)
    request.addfinalizer(lambda: torch.set_num_threads(threads))
    pages = dict(render_pdf(pdf))
    assert sorted(pages) == [1, 2]
    src = [cv2.imread(str(p)) for p in sources]
    for number, img in pages.items():  # rendered at 2x, as PaddleOCR renders PDFs
        assert img.shape[:2] == (src[number - 1].shape[0] * 2, src[number - 1].shape[1] * 2)
        expected = [{"page": number, **r} for r in system(img)]
        assert [r for r in got["doc.pdf"] if r["page"] == number] == expected
        assert expected
    assert got["ch_word_1.jpg"] == system(good) != []
    # the page is the picture: at 1x (pages wider than 1000 pt, as PaddleOCR falls back)
    wide = testdata / "images" / "img_12.jpg"
    (_, page), = render_pdf(make_pdf(tmp_path / "wide.pdf", [wide]))
    assert page.shape == cv2.imread(str(wide)).shape
    assert np.abs(page.astype(int) - cv2.imread(str(wide))).mean() < 3

    # --pages picks pages
    res = run_cli("ocr", pdf, "--pages", "2", env=first_call["env"])
    assert res.returncode == 0, res.stderr
    assert {r["page"] for r in json.loads(res.stdout)["doc.pdf"]} == {2}


# ---------------------------------------------------------------- each stage alone

def test_det_rec_cls_commands_equal_the_stages_inside_ocr(first_call, tmp_path):
    from ptocr.pipeline.boxes import get_rotate_crop_image, sorted_boxes

    env = first_call["env"]
    lines = json.loads(first_call["first"].stdout)["11.jpg"]
    home = first_call["home"] / "models"
    system = ptocr.OCR(det=home / f"{V5[0]}.pth", rec=home / f"{V5[1]}.pth")
    img = cv2.imread(str(first_call["image"]))
    boxes = sorted_boxes(system.detect(img))
    crops = tmp_path / "crops"
    crops.mkdir()
    for i, box in enumerate(boxes):
        cv2.imwrite(str(crops / f"crop_{i:03d}.png"), get_rotate_crop_image(img, box.copy()))

    res = run_cli("rec", crops, "--json", tmp_path / "rec.json", env=env)
    assert res.returncode == 0, res.stderr
    rec = json.loads((tmp_path / "rec.json").read_text(encoding="utf-8"))
    assert len(rec) == len(boxes)
    kept = [rec[f"crop_{i:03d}.png"] for i in range(len(boxes))
            if rec[f"crop_{i:03d}.png"]["score"] >= 0.5]
    assert [r["text"] for r in kept] == [r["text"] for r in lines]
    assert max(abs(a["score"] - b["score"]) for a, b in zip(kept, lines)) < 1e-6

    res = run_cli("det", first_call["image"], "--vis-dir", tmp_path / "vis", env=env)
    assert res.returncode == 0, res.stderr
    det = json.loads(res.stdout)["11.jpg"]
    assert sorted(map(str, (d["box"] for d in det))) == sorted(map(str, (b.tolist()
                                                                        for b in boxes)))
    assert all(0.6 <= d["score"] <= 1 for d in det)
    assert (tmp_path / "vis" / "11_det.jpg").is_file()


# ---------------------------------------------------------------- the drop-in API

def encode(value):
    if isinstance(value, tuple):
        return {"tuple": [encode(v) for v in value]}
    if isinstance(value, list):
        return [encode(v) for v in value]
    assert value is None or isinstance(value, (str, int, float)), type(value)
    return value


def make_input(desc, testdata):
    (kind, arg), = desc.items()

    def load(name):
        flip = name.startswith("flip:")
        img = cv2.imread(str(testdata / name.removeprefix("flip:")))
        return np.ascontiguousarray(img[::-1, ::-1]) if flip else img

    return {"path": lambda: str(testdata / arg), "array": lambda: load(arg),
            "bytes": lambda: (testdata / arg).read_bytes(),
            "flipped": lambda: load("flip:" + arg),
            "blank": lambda: np.full((*arg, 3), 255, np.uint8),
            "list": lambda: [load(n) for n in arg]}[kind]()


def same(got, ref, where):
    """Same nesting, lists vs tuples, None and strings exactly; numbers: box corners within
    1 px, scores within 1e-3 (paddle vs torch rounding)."""
    if isinstance(ref, dict):
        assert isinstance(got, dict) and set(got) == {"tuple"}, (where, got)
        return same(got["tuple"], ref["tuple"], where)
    if isinstance(ref, list):
        assert isinstance(got, list) and len(got) == len(ref), (where, got, ref)
        for i, (a, b) in enumerate(zip(got, ref)):
            same(a, b, f"{where}[{i}]")
        return
    if isinstance(ref, float):
        assert isinstance(got, float), (where, got)
        assert abs(got - ref) <= (1.0 if abs(ref) > 1.0 else 1e-3), (where, got, ref)
        return
    assert got == ref and type(got) is type(ref), (where, got, ref)


@pytest.fixture(scope="module")
def dropin(models):
    """ptocr.PaddleOCR built exactly as the reference built PaddleOCR 2.10 (Paddle model
    folders, converted on the fly)."""
    from ptocr import PaddleOCR

    common = dict(det_model_dir=str(models("PP-OCRv4_mobile_det")),
                  rec_model_dir=str(models("PP-OCRv4_mobile_rec")),
                  cls_model_dir=str(models("ch_ppocr_mobile_v2.0_cls")),
                  rec_char_dict_path=str(models("PP-OCRv4_mobile_rec") / "ppocr_keys_v1.txt"),
                  use_gpu=False, show_log=False)
    return {"cls": PaddleOCR(use_angle_cls=True, **common),
            "nocls": PaddleOCR(use_angle_cls=False, **common)}


def test_dropin_ocr_returns_paddleocr_2_10_structure_in_every_combination(dropin, testdata):
    ref = json.loads(REFERENCE.read_text(encoding="utf-8"))
    assert ref["paddleocr"] == "2.10.0"
    combos = set()
    for name, case in ref["cases"].items():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            got = dropin[case["instance"]].ocr(make_input(case["input"], testdata),
                                               **case["kwargs"])
        k = case["kwargs"]
        # PaddleOCR warns when cls is asked of an instance without a classifier
        warned = any("angle classifier is not initialized" in str(w.message) for w in caught)
        assert warned == (case["instance"] == "nocls" and k.get("cls", True)), name
        same(encode(got), case["result"], name)
        combos.add((k.get("det", True), k.get("rec", True), k.get("cls", True)))
    assert len(combos) >= 6  # det+rec±cls, det only, rec±cls, cls only


def test_dropin_reads_pdfs_page_by_page_and_refuses_what_it_does_not_take(dropin, testdata,
                                                                          tmp_path):
    from ptocr import PaddleOCR
    from ptocr.pipeline.documents import render_pdf

    pdf = make_pdf(tmp_path / "doc.pdf", [testdata / "images" / "11.jpg",
                                          testdata / "images" / "ger_1.jpg"])
    ocr = dropin["nocls"]
    result = ocr.ocr(str(pdf), cls=False)
    assert len(result) == 2
    for got, (_, page) in zip(result, render_pdf(pdf)):
        assert [got] == ocr.ocr(page, cls=False)
    assert ocr.ocr(pdf.read_bytes(), cls=False) == result  # PDF bytes too
    with pytest.raises(TypeError, match="use_onnx"):
        PaddleOCR(use_onnx=True)
    with pytest.raises(TypeError, match="det_algorithm"):
        PaddleOCR(det_algorithm="EAST")
    with pytest.raises(TypeError, match="unexpected arguments: bogus"):
        PaddleOCR(bogus=1)
    with pytest.raises(ValueError, match="det must be False"):
        ocr.ocr([np.zeros((10, 10, 3), np.uint8)])
