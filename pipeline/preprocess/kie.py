"""KIE (LayoutXLM family) pre-processing, after PaddleOCR's ppocr/data/imaug/label_ops.py
(VQATokenLabelEncode) and ppocr/data/imaug/vqa/token/ (VQATokenPad, VQASerTokenChunk) as
ppstructure/kie/predict_kie_token_ser.py runs them (infer_mode), and tools/
infer_kie_token_ser_re.py's make_input for relation extraction.

The tokenizer is a folder the user gives, read by the tokenizer libraries:
  * ``sentencepiece.bpe.model`` (PaddleNLP's LayoutXLM folder, Hugging Face's XLM-R slow
    files): ``sentencepiece``, with XLM-R's id layout as PaddleNLP's LayoutXLMTokenizer has
    it (<s> 0, <pad> 1, </s> 2, <unk> 3, sentencepiece id + 1 for the rest);
  * ``tokenizer.json`` (a Hugging Face fast tokenizer): ``tokenizers``;
  * ``vocab.txt`` (WordPiece: LayoutLM, LayoutLMv2): ``tokenizers``' BertWordPieceTokenizer
    ([CLS] text [SEP], lower-cased unless tokenizer_config.json says do_lower_case false).
"""

import copy
import json
from pathlib import Path

import numpy as np

from ..registry import register


class KieTokenizer:
    """The few things PaddleOCR's KIE processing asks of PaddleNLP's tokenizers:
    ``encode(text)`` with special tokens, ``tokenize(word)``, and the padding parameters."""

    padding_side = "right"
    pad_token_type_id = 0

    def __init__(self, folder):
        folder = Path(folder)
        if not folder.is_dir():
            raise ValueError(f"{folder}: tokenizer folder not found")
        config = {}
        if (folder / "tokenizer_config.json").is_file():
            config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
        self.folder = folder
        if (folder / "sentencepiece.bpe.model").is_file():
            self._init_sentencepiece(folder / "sentencepiece.bpe.model")
        elif (folder / "tokenizer.json").is_file():
            from tokenizers import Tokenizer

            self.kind = "tokenizers"
            self._tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
            self.vocab_size = self._tok.get_vocab_size()
            pad = config.get("pad_token", "<pad>")
            self.pad_token_id = self._tok.token_to_id(pad if isinstance(pad, str) else "<pad>")
        elif (folder / "vocab.txt").is_file():
            from tokenizers import BertWordPieceTokenizer

            self.kind = "wordpiece"
            self._tok = BertWordPieceTokenizer(str(folder / "vocab.txt"),
                                               lowercase=config.get("do_lower_case", True))
            self.vocab_size = self._tok.get_vocab_size()
            self.pad_token_id = self._tok.token_to_id("[PAD]")
        else:
            raise ValueError(f"{folder}: no tokenizer files (sentencepiece.bpe.model, "
                             "tokenizer.json or vocab.txt)")
        if self.pad_token_id is None:
            raise ValueError(f"{folder}: the vocabulary has no padding token")

    def _init_sentencepiece(self, path):
        import sentencepiece as spm

        self.kind = "sentencepiece"
        self._sp = spm.SentencePieceProcessor()
        if not self._sp.Load(str(path)):
            raise ValueError(f"{path}: not a sentencepiece model")
        self.pad_token_id = 1
        # <s> <pad> </s> <unk>, the pieces shifted by one, and <mask>
        self.vocab_size = len(self._sp) + 2

    def tokenize(self, text):
        if self.kind == "sentencepiece":
            return self._sp.EncodeAsPieces(text)
        return self._tok.encode(text, add_special_tokens=False).tokens

    def _ids(self, text):
        if self.kind == "sentencepiece":
            # PaddleNLP's _convert_token_to_id: the piece's id + 1, unknown pieces -> <unk> 3
            return [0] + [i + 1 if i else 3 for i in self._sp.EncodeAsIds(text)] + [2]
        return self._tok.encode(text, add_special_tokens=True).ids

    def encode(self, text, **_):
        ids = self._ids(text)
        return {"input_ids": ids, "token_type_ids": [0] * len(ids),
                "attention_mask": [1] * len(ids)}


def load_bio_labels(class_list):
    """PaddleOCR's load_vqa_bio_label_maps on a list of class names (the lines of its
    class_path file): O, then B-/I- per class (OTHER/OTHERS/IGNORE are O)."""
    lines = ["O"] + [c.strip() for c in class_list
                     if c.strip() and c.strip().upper() not in ("OTHER", "OTHERS", "IGNORE")]
    labels = ["O"]
    for line in lines[1:]:
        labels += ["B-" + line, "I-" + line]
    return ({label.upper(): i for i, label in enumerate(labels)},
            {i: label.upper() for i, label in enumerate(labels)})


def read_class_list(class_path=None, class_list=None):
    if class_list is not None:
        return list(class_list)
    if class_path is None:
        raise ValueError("the SER classes are needed (class_path or class_list)")
    return Path(class_path).read_text(encoding="utf-8").splitlines()


def trans_poly_to_bbox(poly):
    xs, ys = [p[0] for p in poly], [p[1] for p in poly]
    return [int(np.min(xs)), int(np.min(ys)), int(np.max(xs)), int(np.max(ys))]


def order_by_tbyx(ocr_info):
    """PaddleOCR's order_by_tbyx (vqa/augment.py): top-to-bottom, then left-to-right within
    20 px rows (its inner loop stops before the first line, kept as it is)."""
    res = sorted(ocr_info, key=lambda r: (r["bbox"][1], r["bbox"][0]))
    for i in range(len(res) - 1):
        for j in range(i, 0, -1):
            if abs(res[j + 1]["bbox"][1] - res[j]["bbox"][1]) < 20 and \
                    res[j + 1]["bbox"][0] < res[j]["bbox"][0]:
                res[j], res[j + 1] = res[j + 1], res[j]
            else:
                break
    return res


@register("PreProcess")
class VQATokenLabelEncode:
    """OCR lines -> token ids, 0..1000 token boxes (the line's box, or split per word), the
    token offset where each line ends, and one entity per line. Inference only: the lines
    come in ``data['ocr_info']`` ([{transcription, points}], as PaddleOCR's OCR engine gives
    them) and the tokenizer as a loaded KieTokenizer."""

    def __init__(self, class_path=None, contains_re=False, add_special_ids=False,
                 algorithm="LayoutXLM", use_textline_bbox_info=True, order_method=None,
                 infer_mode=True, tokenizer=None, class_list=None, **_training_only):
        if order_method not in (None, "tb-yx"):
            raise ValueError(f"order_method must be None or 'tb-yx', not {order_method!r}")
        self.tokenizer = tokenizer
        self.add_special_ids = add_special_ids
        self.use_textline_bbox_info = use_textline_bbox_info
        self.order_method = order_method

    def split_bbox(self, bbox, text):
        x1, y1, x2, y2 = bbox
        unit_w = (x2 - x1) / len(text)
        boxes = []
        for word in text.split():
            boxes += [[x1, y1, x1 + len(word) * unit_w, y2]] * len(self.tokenizer.tokenize(word))
            x1 += (len(word) + 1) * unit_w
        return boxes

    @staticmethod
    def smooth_box(bboxes, height, width):
        b = np.array(bboxes)
        b[:, 0] = b[:, 0] * 1000 / width
        b[:, 2] = b[:, 2] * 1000 / width
        b[:, 1] = b[:, 1] * 1000 / height
        b[:, 3] = b[:, 3] * 1000 / height
        return b.astype("int64").tolist()

    def __call__(self, data):
        if self.tokenizer is None:
            raise ValueError("VQATokenLabelEncode needs a tokenizer")
        ocr_info = [dict(info) for info in data["ocr_info"]]
        for info in ocr_info:
            info.setdefault("bbox", trans_poly_to_bbox(info["points"]))
        if self.order_method == "tb-yx":
            ocr_info = order_by_tbyx(ocr_info)
        height, width = data["image"].shape[:2]
        ids, types, boxes, offsets, entities = [], [], [], [], []
        data["ocr_info"] = copy.deepcopy(ocr_info)
        for info in ocr_info:
            text = info["transcription"]
            if len(text) <= 0:
                continue
            info["bbox"] = trans_poly_to_bbox(info["points"])
            enc = self.tokenizer.encode(text)
            if not self.add_special_ids:
                enc = {k: v[1:-1] for k, v in enc.items()}
            if self.use_textline_bbox_info:
                bbox = [info["bbox"]] * len(enc["input_ids"])
            else:
                bbox = self.split_bbox(info["bbox"], text)
            if len(bbox) <= 0:
                continue
            bbox = self.smooth_box(bbox, height, width)
            if self.add_special_ids:
                bbox = [[0, 0, 0, 0]] + bbox + [[0, 0, 0, 0]]
            entities.append({"start": len(ids), "end": len(ids) + len(enc["input_ids"]),
                             "label": "O"})
            ids += enc["input_ids"]
            types += enc["token_type_ids"]
            boxes += bbox
            offsets.append(len(ids))
        data.update(input_ids=ids, token_type_ids=types, bbox=boxes,
                    attention_mask=[1] * len(ids), labels=[], segment_offset_id=offsets,
                    entities=entities,
                    tokenizer_params=dict(padding_side=self.tokenizer.padding_side,
                                          pad_token_type_id=self.tokenizer.pad_token_type_id,
                                          pad_token_id=self.tokenizer.pad_token_id))
        return data


_TOKEN_KEYS = ("input_ids", "labels", "token_type_ids", "bbox", "attention_mask")


@register("PreProcess")
class VQATokenPad:
    """Pad to max_seq_len (right or left, as the tokenizer says) and, at inference, cut to
    it; int64 arrays."""

    def __init__(self, max_seq_len=512, pad_to_max_seq_len=True, return_attention_mask=True,
                 return_token_type_ids=True, infer_mode=True, **_training_only):
        self.max_seq_len = max_seq_len
        self.pad = pad_to_max_seq_len
        self.return_attention_mask = return_attention_mask
        self.return_token_type_ids = return_token_type_ids

    def __call__(self, data):
        n = len(data["input_ids"])
        if self.pad and n < self.max_seq_len:
            params = data.pop("tokenizer_params", None) or dict(
                padding_side="right", pad_token_type_id=0, pad_token_id=1)
            d = self.max_seq_len - n
            right = params["padding_side"] == "right"

            def pad(seq, value):
                return seq + [value] * d if right else [value] * d + seq
            if self.return_attention_mask:
                data["attention_mask"] = pad([1] * n, 0)
            if self.return_token_type_ids:
                data["token_type_ids"] = pad(data["token_type_ids"], params["pad_token_type_id"])
            data["input_ids"] = pad(data["input_ids"], params["pad_token_id"])
            data["bbox"] = pad(data["bbox"], [0, 0, 0, 0])
        elif self.return_attention_mask:
            data["attention_mask"] = [1] * n
        for key in _TOKEN_KEYS:
            if key in data and key != "labels":
                data[key] = np.array(data[key][:min(len(data[key]), self.max_seq_len)],
                                     dtype="int64")
        return data


@register("PreProcess")
class VQASerTokenChunk:
    """The first max_seq_len tokens (PaddleOCR's SER predictor takes the first chunk only);
    None when there are no tokens. Sets the model's inputs."""

    def __init__(self, max_seq_len=512, infer_mode=True, **_training_only):
        self.max_seq_len = max_seq_len

    def __call__(self, data):
        if len(data["input_ids"]) == 0:
            return None
        out = {k: (v[:self.max_seq_len] if k in _TOKEN_KEYS and k != "labels" else v)
               for k, v in data.items()}
        out["model_inputs"] = ["input_ids", "bbox", "attention_mask", "token_type_ids"]
        return out


def make_re_input(ser_inputs, ser_lines, max_seq_len):
    """tools/infer_kie_token_ser_re.py make_input for one document: entities (the lines SER
    labelled QUESTION/ANSWER/HEADER: start, end, label) and every question x answer pair as
    candidate relations; and which line each entity came from."""
    labels_map = {"HEADER": 0, "QUESTION": 1, "ANSWER": 2}
    start, end, label, entity_line = [], [], [], {}
    for i, (res, ent) in enumerate(zip(ser_lines, ser_inputs["entities"])):
        if res["pred"] == "O":
            continue
        entity_line[len(start)] = i
        start.append(ent["start"])
        end.append(ent["end"])
        label.append(labels_map[res["pred"]])
    entities = np.full([max_seq_len + 1, 3], -1, dtype=np.int64)
    entities[0] = len(start)
    entities[1:len(start) + 1, 0] = start
    entities[1:len(end) + 1, 1] = end
    entities[1:len(label) + 1, 2] = label
    pairs = [(i, j) for i in range(len(label)) for j in range(len(label))
             if label[i] == 1 and label[j] == 2]
    relations = np.full([len(pairs) + 1, 2], -1, dtype=np.int64)
    relations[0] = len(pairs)
    if pairs:
        relations[1:] = pairs
    return entities, relations, entity_line
