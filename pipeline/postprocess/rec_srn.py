"""SRN's label decoding (ppocr/postprocess/rec_postprocess.py SRNLabelDecode): the program's
``predict`` output (N*max_text_length x classes softmax; the third of its outputs) is read
per reading position; classes are the dictionary (+ " "), then sos and eos, both skipped
wherever they occur (there is no early stop). The score is the mean probability of the
characters kept (NaN when none is, as PaddleOCR's np.mean of nothing)."""

import numpy as np

from ..registry import register

OUTPUTS = ["decoded_out", "gsrm_out", "predict", "pvam_feature", "word_out"]


@register("PostProcess")
class SRNLabelDecode:
    def __init__(self, character_dict=None, use_space_char=False, max_text_length=25,
                 **_training_only):
        if not character_dict:
            raise ValueError("SRNLabelDecode needs the recogniser's character_dict")
        self.character = list(character_dict) + ([" "] if use_space_char else []) + ["sos",
                                                                                     "eos"]
        self.max_text_length = int(max_text_length)

    def __call__(self, preds):
        if isinstance(preds, dict):
            pred = preds["predict"]
        elif isinstance(preds, (list, tuple)) and len(preds) == len(OUTPUTS):
            pred = preds[OUTPUTS.index("predict")]
        else:
            pred = preds[0] if isinstance(preds, (list, tuple)) else preds
        pred = np.asarray(pred).reshape(-1, len(self.character))
        idx = pred.argmax(axis=1).reshape(-1, self.max_text_length)
        prob = pred.max(axis=1).reshape(-1, self.max_text_length)
        special = (len(self.character) - 2, len(self.character) - 1)
        results = []
        for seq, conf in zip(idx, prob):
            keep = ~np.isin(seq, special)
            kept = conf[keep]
            results.append(("".join(self.character[i] for i in seq[keep]),
                            float(np.mean(kept)) if len(kept) else float("nan")))
        return results
