"""Key information extraction on converted checkpoints, following PaddleOCR's
ppstructure/kie/predict_kie_token_ser.py and predict_kie_token_ser_re.py: OCR (no direction
classifier, as its SER predictor calls it) -> tokens with 0..1000 boxes -> SER labels per line
-> (optional) RE links between question and answer lines."""

from pathlib import Path

import numpy as np
import torch

from ..errors import PtocrError
from . import preprocess as pp
from .preprocess.kie import KieTokenizer, VQATokenLabelEncode, make_re_input
from .registry import build_postprocess, build_transforms, transform
from .system import OCR, _model, outputs_as_arrays


class NoTextError(ValueError):
    """The image holds no text the OCR found (nothing to label)."""


def _kie_model(path, role):
    """A converted SER or RE checkpoint; a checkpoint of another kind is refused by name."""
    model = _model(path, "kie")
    backbone = getattr(model, "backbone", None)
    kind = type(backbone).__name__
    is_re = kind.endswith("ForRe")
    if not kind.startswith("Layout") or is_re != (role == "re"):
        what = "relation-extraction (RE)" if is_re else (
            "semantic-entity (SER)" if kind.startswith("Layout") else kind)
        need = "an RE" if role == "re" else "a SER"
        raise PtocrError(f"{path}: a {what} model was given where {need} model is needed")
    return model


def _takes_image(model):
    """LayoutXLM / LayoutLMv2 with the visual backbone: the page image is their fifth input."""
    return bool(getattr(getattr(model, "backbone", None), "use_visual_backbone", False))


def _word_rows(model):
    for name, module in model.named_modules():
        if name.endswith("word_embeddings"):
            return module.num_embeddings
    return None


class KIE:
    """``KIE(det=..., rec=..., ser=..., re=None, tokenizer=DIR)(image)`` ->
    ``{"lines": [{box, text, score, label}], "relations": [[question line, answer line]]}``.
    """

    def __init__(self, det, rec, ser, tokenizer, re=None, threads=None, ser_dict_path=None,
                 **options):
        self.ocr = OCR(det, rec, None, threads=threads, **options)
        self.ser = _kie_model(ser, "ser")
        self.re = _kie_model(re, "re") if re is not None else None
        try:
            self.tokenizer = KieTokenizer(tokenizer)
        except (ValueError, OSError, RuntimeError) as exc:
            raise PtocrError(f"tokenizer: {exc}") from None
        for model in filter(None, (self.ser, self.re)):
            rows = _word_rows(model)
            if rows is not None and self.tokenizer.vocab_size > rows:
                raise PtocrError(f"tokenizer {tokenizer}: its vocabulary ({self.tokenizer.vocab_size}"
                                 f" tokens) does not fit the model's word embeddings ({rows})")
        meta = getattr(self.ser, "ptocr_meta", {}) or {}
        processing = meta.get("processing") or {}
        try:
            self.pre = build_transforms(processing["PreProcess"])
            post = dict(processing["PostProcess"])
            if ser_dict_path:  # PaddleOCR's --ser_dict_path: the classes of the user's model
                post.pop("class_list", None)
                post["class_path"] = ser_dict_path
            self.post = build_postprocess(post)
            self.re_post = build_postprocess({"name": "VQAReTokenLayoutLMPostProcess"})
        except (KeyError, ValueError, TypeError, OSError) as exc:
            raise PtocrError(f"SER processing of {meta.get('arch', 'the checkpoint')}: "
                             f"{exc}") from None
        for op in self.pre:
            if isinstance(op, VQATokenLabelEncode):
                op.tokenizer = self.tokenizer
        classes = self.ser.backbone.model.classifier.out_features
        if self.post.num_classes != classes:
            raise PtocrError(f"the SER classes ({', '.join(self.post.classes)}: "
                             f"{self.post.num_classes} labels) do not fit the model's "
                             f"{classes} outputs")

    def __call__(self, image):
        img = pp.read_image(image) if isinstance(image, (str, Path)) else image
        if img is None or getattr(img, "ndim", 0) != 3:
            raise ValueError("expected a BGR image (H×W×3 array) or an image path")
        lines = self.ocr(img, cls=False)
        ocr_info = [{"transcription": ln["text"], "points": ln["box"], "line": i}
                    for i, ln in enumerate(lines)]
        data = transform(self.pre, {"image": img, "ocr_info": ocr_info}) if lines else None
        if data is None:
            raise NoTextError("no text found")
        inputs = [torch.from_numpy(np.asarray(data[k])[None]) for k in data["model_inputs"]]
        page = None
        if _takes_image(self.ser) or _takes_image(self.re):
            # LayoutXLM / LayoutLMv2: the page as the SER table's image operators made it
            if getattr(data.get("image"), "ndim", 0) != 3 or data["image"].shape[0] != 3:
                raise PtocrError("the KIE model takes the page image, but the SER model's "
                                 "processing does not prepare it (use SER and RE models of "
                                 "the same family)")
            page = torch.from_numpy(np.ascontiguousarray(data["image"], np.float32)[None])
        with torch.inference_mode():
            logits = outputs_as_arrays(self.ser(*inputs, *([page] if _takes_image(self.ser)
                                                           else [])))
        ser_lines = self.post(logits, segment_offset_ids=[data["segment_offset_id"]],
                              ocr_infos=[data["ocr_info"]])[0]
        if self.re is not None and _takes_image(self.re):
            inputs = inputs + [page]
        relations = self.relations(data, inputs, ser_lines) if self.re is not None else []
        out = []
        for info in ser_lines:
            match = lines[info["line"]]
            out.append({"box": match["box"], "text": match["text"], "score": match["score"],
                        "label": info["pred"]})
        return {"lines": out, "relations": relations}

    def relations(self, data, inputs, ser_lines):
        """[[head line, tail line]] (indices into the lines) as predict_kie_token_ser_re."""
        entities, relations, entity_line = make_re_input(data, ser_lines,
                                                         inputs[0].shape[1])
        # nothing to link without a question/answer pair; and PaddleNLP's RE decoder swaps the
        # entities of a document with at most two for a placeholder that links nothing
        # (where PaddleOCR's predictor fails)
        if relations[0, 0] == 0 or entities[0, 0] <= 2:
            return []
        re_inputs = inputs + [torch.from_numpy(entities[None]), torch.from_numpy(relations[None])]
        with torch.inference_mode():
            preds = outputs_as_arrays(self.re(*re_inputs))
        pairs = self.re_post(preds, ser_results=[ser_lines],
                             entity_idx_dict_batch=[entity_line])[0]
        index = {id(line): i for i, line in enumerate(ser_lines)}
        return [[index[id(h)], index[id(t)]] for h, t in pairs]


LABEL_COLORS = {"QUESTION": (0, 0, 255), "ANSWER": (0, 160, 0), "HEADER": (255, 128, 0)}


def draw_kie(image, result, font_path=None):
    """BGR image with each line boxed in its label's colour and named, and a line from each
    question to its answer."""
    from PIL import Image, ImageDraw, ImageFont

    from .visualize import find_font

    font = ImageFont.truetype(find_font(font_path), 14, encoding="utf-8")
    canvas = Image.fromarray(np.ascontiguousarray(image[:, :, ::-1]))
    draw = ImageDraw.Draw(canvas)
    for line in result["lines"]:
        color = LABEL_COLORS.get(line["label"], (128, 128, 128))
        box = [tuple(p) for p in line["box"]]
        draw.polygon(box, outline=color, width=2)
        draw.text((box[0][0], max(0, box[0][1] - 15)), f"{line['label']}: {line['text']}",
                  fill=color, font=font)
    for head, tail in result["relations"]:
        h = np.mean(result["lines"][head]["box"], axis=0)
        t = np.mean(result["lines"][tail]["box"], axis=0)
        draw.line([tuple(h), tuple(t)], fill=(255, 0, 255), width=2)
    return np.asarray(canvas)[:, :, ::-1].copy()
