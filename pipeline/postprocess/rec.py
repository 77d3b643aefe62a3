"""Recognition label decoding (ppocr/postprocess/rec_postprocess.py)."""

import numpy as np

from ..registry import register


@register("PostProcess")
class CTCLabelDecode:
    """Per-step class probabilities -> (text, mean probability of the kept characters)."""

    def __init__(self, character_dict=None, use_space_char=False, **_training_only):
        if not character_dict:
            raise ValueError("CTCLabelDecode needs the recogniser's character_dict")
        self.character = ["blank"] + list(character_dict) + ([" "] if use_space_char else [])

    def __call__(self, preds):
        probs = np.asarray(preds[0] if isinstance(preds, (list, tuple)) else preds)
        idx, prob = probs.argmax(axis=2), probs.max(axis=2)
        results = []
        for seq, conf in zip(idx, prob):
            keep = np.ones(len(seq), dtype=bool)
            keep[1:] = seq[1:] != seq[:-1]  # merge repeats
            keep &= seq != 0  # drop blanks
            text = "".join(self.character[i] for i in seq[keep])
            kept = conf[keep]
            results.append((text, float(np.mean(kept)) if len(kept) else 0.0))
        return results


@register("PostProcess")
class AttnLabelDecode:
    """Attention decoders (RARE): classes are [sos] + dictionary (+ " ") + [eos]; per step the
    argmax is read. As PaddleOCR 2.10 decodes it, both sos and eos are skipped wherever they
    occur (its end-of-sequence break is unreachable after the skip), and the score is the mean
    probability of the kept characters (NaN when none is kept)."""

    def __init__(self, character_dict=None, use_space_char=False, **_training_only):
        if not character_dict:
            raise ValueError("AttnLabelDecode needs the recogniser's character_dict")
        self.character = (["sos"] + list(character_dict) + ([" "] if use_space_char else [])
                          + ["eos"])
        self.special = (0, len(self.character) - 1)

    def __call__(self, preds):
        probs = np.asarray(preds[0] if isinstance(preds, (list, tuple)) else preds)
        idx, prob = probs.argmax(axis=2), probs.max(axis=2)
        special = self.special
        results = []
        for seq, conf in zip(idx, prob):
            keep = ~np.isin(seq, special)
            text = "".join(self.character[i] for i in seq[keep])
            kept = conf[keep]
            results.append((text, float(np.mean(kept)) if len(kept) else float("nan")))
        return results


@register("PostProcess")
class SPINLabelDecode(AttnLabelDecode):
    """SPIN: AttnLabelDecode with the classes [sos, eos] + dictionary (+ " "); both special
    tokens skipped wherever they occur, as PaddleOCR 2.10 decodes."""

    def __init__(self, character_dict=None, use_space_char=False, **_training_only):
        if not character_dict:
            raise ValueError("SPINLabelDecode needs the recogniser's character_dict")
        self.character = ["sos", "eos"] + list(character_dict) + (
            [" "] if use_space_char else [])
        self.special = (0, 1)


@register("PostProcess")
class SEEDLabelDecode:
    """SEED (AsterHead's beam search): preds = [ids (N×T), scores (N×T, ones), ...]; classes
    are dictionary (+ " ") + [eos, padding, unknown]. Reads up to the first eos; padding and
    unknown ids read as the words "padding" / "unknown", as PaddleOCR 2.10 decodes them; the
    score is the mean of the scores read (NaN when nothing is read)."""

    def __init__(self, character_dict=None, use_space_char=False, **_training_only):
        if not character_dict:
            raise ValueError("SEEDLabelDecode needs the recogniser's character_dict")
        self.character = list(character_dict) + ([" "] if use_space_char else []) + [
            "eos", "padding", "unknown"]
        self.end = len(self.character) - 3

    def __call__(self, preds):
        ids, probs = np.asarray(preds[0]), np.asarray(preds[1])
        results = []
        for row, conf in zip(ids, probs):
            text, kept = [], []
            for i, p in zip(row, conf):
                if int(i) == self.end:
                    break
                text.append(self.character[int(i)])
                kept.append(p)
            results.append(("".join(text), float(np.mean(kept)) if kept else float("nan")))
        return results
