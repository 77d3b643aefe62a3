"""Processing is data: a post-processor added through the registry (a plugin module named in
$PTOCR_PLUGINS) and a table that names it are used by `ptocr ocr` with no change to
pipeline code; the checkpoint carries its processing in PaddleOCR's schema."""

import json

import torch

ARCH = "PP-OCRv4_mobile_det"

TOY = '''
import numpy as np
from ptocr.pipeline.registry import register


@register("PostProcess")
class WholeTextBox:
    """Toy detector post-processing: one box around every pixel above `thresh`."""

    def __init__(self, thresh=0.3, margin=4):
        self.thresh, self.margin = thresh, margin

    def __call__(self, preds, shape_list):
        out = []
        for pred, (src_h, src_w, ratio_h, ratio_w) in zip(preds[0][:, 0], shape_list):
            ys, xs = np.nonzero(pred > self.thresh)
            if len(xs) == 0:
                out.append({"points": np.zeros((0, 4, 2), np.int32), "scores": []})
                continue
            x0, x1 = xs.min() / ratio_w - self.margin, xs.max() / ratio_w + self.margin
            y0, y1 = ys.min() / ratio_h - self.margin, ys.max() / ratio_h + self.margin
            box = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
            box[:, 0] = box[:, 0].clip(0, src_w - 1)
            box[:, 1] = box[:, 1].clip(0, src_h - 1)
            out.append({"points": box[None].astype(np.int32), "scores": [1.0]})
        return out
'''


def test_toy_postprocess_from_a_table_runs_in_ptocr_ocr(models, testdata, tmp_path, cli):
    import yaml

    from ptocr.converter.mapping import MAPPINGS_DIR

    (tmp_path / "toy_plugin.py").write_text(TOY)
    env = {"PYTHONPATH": str(tmp_path), "PTOCR_PLUGINS": "toy_plugin"}
    table = yaml.safe_load((MAPPINGS_DIR / f"{ARCH}.yaml").read_text())
    table.update(name="toy_det", aliases=[], model_names=[])
    del table["processing"]
    table["PreProcess"] = {"transform_ops": [
        {"DetResizeForTest": {"limit_side_len": 960, "limit_type": "max"}},
        {"NormalizeImage": {"scale": "1./255.", "mean": [0.485, 0.456, 0.406],
                            "std": [0.229, 0.224, 0.225], "order": "hwc"}},
        {"ToCHWImage": None}]}
    table["PostProcess"] = {"name": "WholeTextBox", "thresh": 0.3, "margin": 2}
    table_path = tmp_path / "toy_det.yaml"
    table_path.write_text(yaml.safe_dump(table))

    det, rec = tmp_path / "toy_det.pth", tmp_path / "rec.pth"
    res = cli("convert", "--arch", table_path, "--paddle-dir", models(ARCH), "--out", det,
              "--no-verify", env=env)
    assert res.returncode == 0, res.stderr
    meta = torch.load(det, weights_only=True)
    assert meta["processing"]["PostProcess"] == table["PostProcess"]
    assert meta["processing"]["PreProcess"] == table["PreProcess"]
    res = cli("convert", "--arch", "PP-OCRv4_mobile_rec", "--paddle-dir",
              models("PP-OCRv4_mobile_rec"), "--out", rec, "--no-verify")
    assert res.returncode == 0, res.stderr

    out = tmp_path / "ocr.json"
    image = testdata / "words" / "en_word_1.png"  # one word: one box around all text
    res = cli("ocr", image, "--det", det, "--rec", rec, "--json", out, env=env)
    assert res.returncode == 0, res.stderr
    lines = json.loads(out.read_text())[image.name]
    assert len(lines) == 1 and lines[0]["text"] and lines[0]["score"] > 0.5
    # without the plugin the operator is unknown: one line naming it, no output
    out2 = tmp_path / "ocr2.json"
    res = cli("ocr", image, "--det", det, "--rec", rec, "--json", out2)
    assert res.returncode == 2 and not out2.exists()
    assert res.stderr.count("\n") == 1 and "WholeTextBox" in res.stderr, res.stderr
    # the DB settings mean nothing to this detector and change nothing
    res = cli("ocr", image, "--det", det, "--rec", rec, "--det-db-thresh", "0.9", env=env)
    assert res.returncode == 0 and json.loads(res.stdout)[image.name] == lines
