"""Label decoding of SAR and RobustScanner (ppocr/postprocess/rec_postprocess.py
SARLabelDecode): classes are the dictionary (+ " "), then <UKN>, <BOS/EOS>, <PAD>; the
networks predict every class but <PAD>. Per step the argmax is read up to the first
<BOS/EOS>; <PAD> is skipped, <UKN> is kept as the text "<UKN>", as PaddleOCR does. With
``rm_symbol`` (RobustScanner's predict_rec) the text is lower-cased and everything but ASCII
letters, digits and CJK ideographs is removed. The score is the mean probability of the
characters read (NaN when none is)."""

import re

import numpy as np

from ..registry import register

_SYMBOLS = re.compile("[^A-Z^a-z^0-9^\u4e00-\u9fa5]")


@register("PostProcess")
class SARLabelDecode:
    def __init__(self, character_dict=None, use_space_char=False, rm_symbol=False,
                 **_training_only):
        if not character_dict:
            raise ValueError("SARLabelDecode needs the recogniser's character_dict")
        self.character = (list(character_dict) + ([" "] if use_space_char else [])
                          + ["<UKN>", "<BOS/EOS>", "<PAD>"])
        self.end_idx, self.padding_idx = len(self.character) - 2, len(self.character) - 1
        self.rm_symbol = bool(rm_symbol)

    def __call__(self, preds):
        probs = np.asarray(preds[0] if isinstance(preds, (list, tuple)) else preds)
        results = []
        for seq, conf in zip(probs.argmax(axis=2), probs.max(axis=2)):
            chars, kept = [], []
            for i, p in zip(seq, conf):
                if i == self.padding_idx:
                    continue
                if i == self.end_idx:
                    break
                chars.append(self.character[int(i)])
                kept.append(p)
            text = "".join(chars)
            if self.rm_symbol:
                text = _SYMBOLS.sub("", text.lower())
            results.append((text, float(np.mean(kept)) if kept else float("nan")))
        return results
