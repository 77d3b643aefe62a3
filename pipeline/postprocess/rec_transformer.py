"""Label decoders of the transformer recognisers (ppocr/postprocess/rec_postprocess.py):
NRTR (token ids + probabilities from greedy decoding), ViTSTR (per-position probabilities,
position 0 is the start token) and ParseQ (per-position probabilities, [E] first in the
class list). Each reads up to its end token; the score is the mean probability of the
characters read (NaN for an empty read, as PaddleOCR's np.mean of nothing gives)."""

import numpy as np

from ..registry import register


def _chars(character_dict, use_space_char, name):
    if not character_dict:
        raise ValueError(f"{name} needs the recogniser's character_dict")
    return list(character_dict) + ([" "] if use_space_char else [])


def _mean(values):
    return float(np.mean(values)) if len(values) else float("nan")


class _EndTokenDecode:
    """Shared reading loop: characters until the end token; ids outside the class list are
    skipped (NRTR's projection has one class more than its label list)."""

    END = "</s>"

    def decode(self, ids, probs):
        results = []
        for row, conf in zip(ids, probs):
            text, kept = [], []
            for i, p in zip(row, conf):
                i = int(i)
                if not 0 <= i < len(self.character):
                    continue
                if self.character[i] == self.END:
                    break
                text.append(self.character[i])
                kept.append(p)
            results.append(("".join(text), _mean(kept)))
        return results


@register("PostProcess")
class NRTRLabelDecode(_EndTokenDecode):
    """Classes: blank, <unk>, <s>, </s>, then the dictionary. preds = [ids, probs] from the
    greedy decoder (a leading <s> column is dropped), or per-step probabilities."""

    def __init__(self, character_dict=None, use_space_char=True, **_training_only):
        self.character = ["blank", "<unk>", "<s>", "</s>"] + _chars(
            character_dict, use_space_char, "NRTRLabelDecode")

    def __call__(self, preds):
        preds = list(preds) if isinstance(preds, (list, tuple)) else [preds]
        if len(preds) == 2:
            ids, probs = np.asarray(preds[0]), np.asarray(preds[1])
            if ids[0][0] == 2:  # PaddleOCR looks at the first row only
                ids, probs = ids[:, 1:], probs[:, 1:]
        else:
            probs = np.asarray(preds[0])
            ids, probs = probs.argmax(axis=2), probs.max(axis=2)
        return self.decode(ids, probs)


@register("PostProcess")
class ViTSTRLabelDecode(_EndTokenDecode):
    """Classes: <s>, </s>, then the dictionary; position 0 (the class token) is skipped."""

    def __init__(self, character_dict=None, use_space_char=False, **_training_only):
        self.character = ["<s>", "</s>"] + _chars(character_dict, use_space_char,
                                                  "ViTSTRLabelDecode")

    def __call__(self, preds):
        probs = np.asarray(preds[0] if isinstance(preds, (list, tuple)) else preds)[:, 1:]
        return self.decode(probs.argmax(axis=2), probs.max(axis=2))


@register("PostProcess")
class ParseQLabelDecode(_EndTokenDecode):
    """Classes: [E] (0), the dictionary, [B], [P]; the network predicts [E] and the
    dictionary only. preds = the head's logits (no softmax): PaddleOCR's score is the mean of
    the per-step maximum *logit* of the characters read, kept as it is."""

    END = "[E]"

    def __init__(self, character_dict=None, use_space_char=False, max_text_length=25,
                 **_training_only):
        self.character = ["[E]"] + _chars(character_dict, use_space_char,
                                          "ParseQLabelDecode") + ["[B]", "[P]"]

    def __call__(self, preds):
        logits = np.asarray(preds[0] if isinstance(preds, (list, tuple)) else preds)
        if logits.shape[-1] != len(self.character) - 2:
            raise ValueError(f"ParseQLabelDecode: the network predicts {logits.shape[-1]} "
                             f"classes, the dictionary has {len(self.character) - 3} (+ [E])")
        return self.decode(logits.argmax(axis=2), logits.max(axis=2))
