"""Direction labels (ppocr/postprocess/cls_postprocess.py)."""

import numpy as np

from ..registry import register


@register("PostProcess")
class ClsPostProcess:
    """Class probabilities -> (label, probability) per image."""

    def __init__(self, label_list=("0", "180"), **_training_only):
        self.label_list = [str(v) for v in label_list]

    def __call__(self, preds):
        probs = np.asarray(preds[0] if isinstance(preds, (list, tuple)) else preds)
        idx = probs.argmax(axis=1)
        return [(self.label_list[i], float(p[i])) for i, p in zip(idx, probs)]
