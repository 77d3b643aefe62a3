"""Regenerate tests/reference/*.json with PaddleOCR's own pipeline (the official `paddleocr`
package, release 2.10.0, whose PaddleOCR class runs tools/infer/predict_system's TextSystem)
on the same official inference models ptocr converts.

Run it in a separate environment that has paddleocr, NOT the project's .venv:

    python -m venv /tmp/pocr && /tmp/pocr/bin/pip install paddlepaddle==3.3.1 paddleocr==2.10.0
    /tmp/pocr/bin/python scripts/make_ocr_reference.py [--models .cache/models] [--images DIR]

Writes tests/reference/ppocrv4_paddleocr.json (PP-OCRv4 mobile det + rec + v2.0 cls) and
tests/reference/ppocrv5_paddleocr.json (PP-OCRv5 mobile det + rec, dictionary from the
model's inference.yml), each mapping image file name -> [{box, text, score}].
"""

import argparse
import json
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def run(ocr, images, use_cls):
    out = {}
    for path in sorted(images.glob("*.jpg")):
        result = ocr.ocr(str(path), cls=use_cls)[0] or []
        out[path.name] = [{"box": [[float(x), float(y)] for x, y in box], "text": text,
                           "score": float(score)} for box, (text, score) in result]
    return out


def main():
    from paddleocr import PaddleOCR

    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default=str(ROOT / ".cache" / "models"))
    parser.add_argument("--images", default=str(ROOT.parent / "shared" / "testdata" / "images"))
    args = parser.parse_args()
    models, images = Path(args.models), Path(args.images)
    common = dict(use_gpu=False, show_log=False, use_space_char=True, det_limit_side_len=960,
                  det_limit_type="max", det_db_thresh=0.3, det_db_box_thresh=0.6,
                  det_db_unclip_ratio=1.5, rec_image_shape="3, 48, 320", rec_batch_num=6,
                  cls_thresh=0.9, drop_score=0.5)
    v4 = PaddleOCR(det_model_dir=str(models / "PP-OCRv4_mobile_det"),
                   rec_model_dir=str(models / "PP-OCRv4_mobile_rec"),
                   cls_model_dir=str(models / "ch_ppocr_mobile_v2.0_cls"),
                   rec_char_dict_path=str(models / "PP-OCRv4_mobile_rec" / "ppocr_keys_v1.txt"),
                   use_angle_cls=True, **common)
    write("ppocrv4_paddleocr.json", run(v4, images, True))
    chars = yaml.safe_load((models / "PP-OCRv5_mobile_rec" / "inference.yml").read_text())[
        "PostProcess"]["character_dict"]
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8") as fh:
        fh.write("\n".join(chars) + "\n")
    v5 = PaddleOCR(det_model_dir=str(models / "PP-OCRv5_mobile_det"),
                   rec_model_dir=str(models / "PP-OCRv5_mobile_rec"), rec_char_dict_path=fh.name,
                   use_angle_cls=False, **common)
    write("ppocrv5_paddleocr.json", run(v5, images, False))


def write(name, data):
    path = ROOT / "tests" / "reference" / name
    path.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {path} ({sum(len(v) for v in data.values())} lines)")


if __name__ == "__main__":
    main()
