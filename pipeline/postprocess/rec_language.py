"""Label decoding of the language-model recognisers (ppocr/postprocess/rec_postprocess.py
ABINetLabelDecode, VLLabelDecode), on the model outputs as numpy arrays."""

import numpy as np

from ..registry import register


def _characters(character_dict, use_space_char, name):
    if not character_dict:
        raise ValueError(f"{name} needs the recogniser's character_dict")
    return list(character_dict) + ([" "] if use_space_char else [])


def _softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


@register("PostProcess")
class ABINetLabelDecode:
    """Per-slot probabilities (N, slots, classes), class 0 the end token: characters up to
    the first end, score the mean probability of the kept ones (NaN when the first slot is
    the end: PaddleOCR's np.mean of nothing; such lines fall under any drop_score)."""

    def __init__(self, character_dict=None, use_space_char=False, **_training_only):
        self.character = ["</s>"] + _characters(character_dict, use_space_char, "ABINetLabelDecode")

    def __call__(self, preds):
        probs = np.asarray(preds[0] if isinstance(preds, (list, tuple)) else preds)
        results = []
        for seq, conf in zip(probs.argmax(axis=2), probs.max(axis=2)):
            chars, kept = [], []
            for idx, p in zip(seq, conf):
                if idx >= len(self.character):
                    continue  # a class the dictionary does not name (PaddleOCR skips it too)
                if idx == 0:
                    break
                chars.append(self.character[idx])
                kept.append(p)
            results.append(("".join(chars), float(np.mean(kept)) if kept else float("nan")))
        return results


@register("PostProcess")
class VLLabelDecode:
    """VisionLAN's slot logits (slots, N, classes), class 0 the end token: each line is read up
    to and including its first end within ``max_text_length`` slots; characters are class - 1,
    the score the geometric mean of the softmax maxima over the steps read (end included)."""

    def __init__(self, character_dict=None, use_space_char=False, max_text_length=25,
                 **_training_only):
        self.character = _characters(character_dict, use_space_char, "VLLabelDecode")
        self.max_text_length = int(max_text_length)

    def __call__(self, preds):
        text_pre = np.asarray(preds[0], dtype=np.float32)
        steps = min(self.max_text_length, text_pre.shape[0])
        results = []
        for i in range(text_pre.shape[1]):
            ends = np.flatnonzero(text_pre[:steps, i].argmax(axis=1) == 0)
            length = int(ends[0]) + 1 if len(ends) else self.max_text_length
            probs = _softmax(text_pre[:length, i], axis=1)
            idx, best = probs.argmax(axis=1), probs.max(axis=1)
            text = "".join(self.character[k - 1] for k in idx if 0 < k <= len(self.character))
            score = np.exp(np.log(best).sum() / (len(best) + 1e-6))
            results.append((text, float(score)))
        return results
