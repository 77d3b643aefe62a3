"""Table-structure decoding (ppocr/postprocess/table_postprocess.py TableLabelDecode): the
structure tokens up to the end token, and for every cell token its box in source-image pixels.

Convention: ``op(preds, shape_list) -> [{'structure': [tokens], 'bboxes': N×K array,
'score': float}]`` per image, ``preds`` = [loc_preds, structure_probs] (the program's order),
``shape_list`` rows [h, w, ratio_h, ratio_w, pad_h, pad_w] from ResizeTableImage and
PaddingTableImage.
"""

import numpy as np

from ..registry import register

TD_TOKENS = ("<td>", "<td", "<td></td>")


def table_tokens(character_dict, merge_no_span_structure=False):
    """The decoder's classes: 'sos', the dictionary (with '<td></td>' in place of '<td>' when
    merging no-span cells), 'eos' — AttnLabelDecode's special tokens."""
    chars = list(character_dict)
    if merge_no_span_structure:
        if "<td></td>" not in chars:
            chars.append("<td></td>")
        if "<td>" in chars:
            chars.remove("<td>")
    return ["sos"] + chars + ["eos"]


@register("PostProcess")
class TableLabelDecode:
    def __init__(self, character_dict=None, merge_no_span_structure=False, **_training_only):
        if not character_dict:
            raise ValueError("TableLabelDecode needs the structure dictionary (character_dict)")
        self.character = table_tokens(character_dict, merge_no_span_structure)
        self.end_idx = len(self.character) - 1
        self.ignored = {0, self.end_idx}

    def __call__(self, preds, shape_list):
        if isinstance(preds, dict):
            loc, probs = preds["loc_preds"], preds["structure_probs"]
        else:
            loc, probs = preds
        loc, probs = np.asarray(loc), np.asarray(probs)
        if probs.shape[-1] != len(self.character):
            raise ValueError(f"the model predicts {probs.shape[-1]} structure classes, the "
                             f"dictionary gives {len(self.character)}")
        idx, conf = probs.argmax(axis=2), probs.max(axis=2)
        results = []
        for b in range(len(idx)):
            tokens, boxes, scores = [], [], []
            for t, c in enumerate(idx[b]):
                c = int(c)
                if t > 0 and c == self.end_idx:
                    break
                if c in self.ignored:
                    continue
                token = self.character[c]
                if token in TD_TOKENS:
                    boxes.append(self._bbox_decode(loc[b, t].copy(), shape_list[b]))
                tokens.append(token)
                scores.append(conf[b, t])
            results.append({"structure": tokens, "bboxes": np.array(boxes),
                            "score": float(np.mean(scores)) if scores else 0.0})
        return results

    @staticmethod
    def _bbox_decode(bbox, shape):
        """Fractions of the padded canvas -> source pixels, in the box's own dtype (float32)
        as PaddleOCR computes it in place."""
        _, _, ratio_h, ratio_w, pad_h, pad_w = shape
        bbox[0::2] *= pad_w
        bbox[1::2] *= pad_h
        bbox[0::2] /= ratio_w
        bbox[1::2] /= ratio_h
        return bbox


@register("PostProcess")
class TableMasterLabelDecode(TableLabelDecode):
    """TableMaster's tokens: the dictionary (merged as above), then <UKN>, <SOS>, <EOS>, <PAD>,
    all four ignored; boxes are xywh fractions of the padded canvas (``box_shape: pad``) or
    of the source image (``ori``), returned as corners with PaddleOCR's half-size floor
    division (x - w // 2)."""

    def __init__(self, character_dict=None, box_shape="ori", merge_no_span_structure=True,
                 **_training_only):
        super().__init__(character_dict, merge_no_span_structure)
        if box_shape not in ("ori", "pad"):
            raise ValueError("TableMasterLabelDecode: box_shape must be 'ori' or 'pad'")
        self.box_shape = box_shape
        self.character = self.character[1:-1] + ["<UKN>", "<SOS>", "<EOS>", "<PAD>"]
        n = len(self.character)
        self.end_idx = n - 2
        self.ignored = {n - 4, n - 3, n - 2, n - 1}

    def _bbox_decode(self, bbox, shape):
        h, w, ratio_h, ratio_w, pad_h, pad_w = shape
        if self.box_shape == "pad":
            h, w = pad_h, pad_w
        bbox[0::2] *= w
        bbox[1::2] *= h
        bbox[0::2] /= ratio_w
        bbox[1::2] /= ratio_h
        x, y, w, h = bbox
        return np.array([x - w // 2, y - h // 2, x + w // 2, y + h // 2])
