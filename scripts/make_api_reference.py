"""Regenerate tests/reference/paddleocr_api.json: what PaddleOCR 2.10's own `PaddleOCR.ocr()`
returns (the official `paddleocr==2.10.0` package from PyPI) for every det/rec/cls
combination and input kind, on the official PP-OCRv4 mobile det/rec and v2.0 cls models —
the structure `from ptocr import PaddleOCR` must return (tests/test_frontdoor.py).

Run it in a separate environment that has paddleocr and its dependencies, NOT the project's
.venv (which holds the paddleocr wheel with --no-deps):

    python -m venv /tmp/pocr && /tmp/pocr/bin/pip install paddlepaddle==3.3.1 paddleocr==2.10.0
    /tmp/pocr/bin/python scripts/make_api_reference.py [--models .cache/models] [--testdata DIR]

Tuples are written as {"tuple": [...]} so the test can check tuple-versus-list exactly; numpy
scalars as plain numbers (their type is recorded under "types").
"""

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def encode(value, types):
    if isinstance(value, tuple):
        return {"tuple": [encode(v, types) for v in value]}
    if isinstance(value, list):
        return [encode(v, types) for v in value]
    if isinstance(value, np.generic):
        types.add(type(value).__name__)
        return value.item()
    if isinstance(value, np.ndarray):
        raise TypeError("ndarray in a result")
    if value is None or isinstance(value, (str, int, float)):
        types.add(type(value).__name__)
        return value
    raise TypeError(type(value))


def cases(testdata):
    """(name, input description, ocr() kwargs, which instance) — the test rebuilds each
    input from the description."""
    return [
        ("path_det_rec_cls", {"path": "images/11.jpg"}, {}, "cls"),
        ("path_det_rec_nocls", {"path": "images/11.jpg"}, {"cls": False}, "cls"),
        ("array_det_rec", {"array": "images/00015504.jpg"}, {}, "cls"),
        ("bytes_det_rec", {"bytes": "images/ger_1.jpg"}, {}, "cls"),
        ("flipped_det_rec_cls", {"flipped": "images/11.jpg"}, {}, "cls"),
        ("blank_det_rec", {"blank": [200, 300]}, {}, "cls"),
        ("path_det_only", {"path": "images/11.jpg"}, {"rec": False}, "cls"),
        ("blank_det_only", {"blank": [200, 300]}, {"rec": False}, "cls"),
        ("path_rec_only", {"path": "words/ch_word_1.jpg"}, {"det": False}, "cls"),
        ("list_rec_only_cls", {"list": ["words/ch_word_2.jpg", "words/en_word_1.png",
                                        "flip:words/ch_word_3.jpg"]}, {"det": False}, "cls"),
        ("list_rec_only_nocls", {"list": ["words/ch_word_2.jpg", "flip:words/ch_word_3.jpg"]},
         {"det": False, "cls": False}, "cls"),
        ("list_cls_only", {"list": ["words/ch_word_4.jpg", "flip:words/ch_word_5.jpg",
                                    "words/en_word_2.png"]}, {"det": False, "rec": False}, "cls"),
        ("path_cls_only", {"path": "words/en_word_3.png"}, {"det": False, "rec": False}, "cls"),
        ("nocls_instance_det_rec", {"path": "images/ger_1.jpg"}, {}, "nocls"),
        ("nocls_instance_rec_cls_ignored", {"list": ["flip:words/ch_word_3.jpg"]},
         {"det": False}, "nocls"),
        ("nocls_instance_nothing", {"path": "words/ch_word_1.jpg"},
         {"det": False, "rec": False}, "nocls"),
        ("inv_det_rec", {"path": "images/ger_1.jpg"}, {"inv": True}, "cls"),
        ("bin_det_rec", {"path": "images/11.jpg"}, {"bin": True}, "cls"),
    ]


def make_input(desc, testdata):
    """The ocr() input a case describes (the test has the same function)."""
    (kind, arg), = desc.items()

    def load(name):
        flip = name.startswith("flip:")
        img = cv2.imread(str(testdata / name.removeprefix("flip:")))
        return np.ascontiguousarray(img[::-1, ::-1]) if flip else img

    if kind == "path":
        return str(testdata / arg)
    if kind == "array":
        return load(arg)
    if kind == "bytes":
        return (testdata / arg).read_bytes()
    if kind == "flipped":
        return load("flip:" + arg)
    if kind == "blank":
        return np.full((*arg, 3), 255, np.uint8)
    if kind == "list":
        return [load(n) for n in arg]
    raise ValueError(kind)


def main():
    from paddleocr import PaddleOCR

    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default=str(ROOT / ".cache" / "models"))
    parser.add_argument("--testdata", default=str(ROOT.parent / "shared" / "testdata"))
    args = parser.parse_args()
    models, testdata = Path(args.models), Path(args.testdata)
    common = dict(det_model_dir=str(models / "PP-OCRv4_mobile_det"),
                  rec_model_dir=str(models / "PP-OCRv4_mobile_rec"),
                  cls_model_dir=str(models / "ch_ppocr_mobile_v2.0_cls"),
                  rec_char_dict_path=str(models / "PP-OCRv4_mobile_rec" / "ppocr_keys_v1.txt"),
                  use_gpu=False, show_log=False)
    instances = {"cls": PaddleOCR(use_angle_cls=True, **common),
                 "nocls": PaddleOCR(use_angle_cls=False, **common)}
    out = {}
    for name, desc, kwargs, which in cases(testdata):
        types = set()
        result = instances[which].ocr(make_input(desc, testdata), **kwargs)
        out[name] = {"input": desc, "kwargs": kwargs, "instance": which,
                     "result": encode(result, types), "types": sorted(types)}
        print(name, json.dumps(out[name]["result"], ensure_ascii=False)[:120])
    path = ROOT / "tests" / "reference" / "paddleocr_api.json"
    path.write_text(json.dumps({"paddleocr": "2.10.0", "cases": out}, ensure_ascii=False,
                               indent=1) + "\n", encoding="utf-8")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
