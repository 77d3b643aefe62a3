"""SDMGR's post-processing. PaddleOCR has no operator for it (its config says
``PostProcess: name: None``); tools/infer_kie.py does it inline: softmax over each box's class
logits, the max probability and its index, named through the class list file
(read_class_list: class i is line i of the file; an index past its end stays a number). The edge
logits, which infer_kie computes and drops, give per ordered box pair the probability that
the two belong together (softmax, class 1); pairs above ``edge_thresh`` are reported."""

import numpy as np

from ..registry import register


def read_class_list(class_path):
    """tools/infer_kie.py's read_class_list: line index -> the line (one class per line, as
    KieLabelEncode's class_path numbers them)."""
    with open(class_path, encoding="utf-8") as fh:
        return {i: line.strip("\n") for i, line in enumerate(fh.readlines())}


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@register("PostProcess")
class SDMGRPostProcess:
    def __init__(self, class_path=None, edge_thresh=0.5, **_):
        self.classes = read_class_list(class_path) if class_path else {}
        self.edge_thresh = edge_thresh

    def __call__(self, preds):
        """preds: [node logits N×classes, edge logits N²×2] of one image ->
        {'boxes': [{class_id, label, score}], 'edges': [[i, j, probability]]}."""
        node, edge = (np.asarray(p, dtype=np.float32) for p in preds[:2])
        probs = _softmax(node)
        ids, scores = probs.argmax(-1), probs.max(-1)
        boxes = [{"class_id": int(i), "label": self.classes.get(int(i), str(int(i))),
                  "score": float(s)} for i, s in zip(ids, scores)]
        n = len(node)
        link = _softmax(edge)[:, 1].reshape(n, n)
        edges = [[int(i), int(j), float(link[i, j])]
                 for i, j in zip(*np.nonzero(link > self.edge_thresh)) if i != j]
        return {"boxes": boxes, "edges": edges}
