"""KIE (LayoutXLM family) post-processing, after PaddleOCR's ppocr/postprocess/
vqa_token_ser_layoutlm_postprocess.py and vqa_token_re_layoutlm_postprocess.py.

  SER: op(preds, segment_offset_ids, ocr_infos) -> per image, the OCR lines with ``pred_id``
       and ``pred`` (the class by majority over the line's tokens, B-/I- merged)
  RE:  op(preds, ser_results, entity_idx_dict_batch) -> per image, [(head line, tail line)]
"""

import numpy as np

from ..preprocess.kie import load_bio_labels, read_class_list
from ..registry import register


@register("PostProcess")
class VQASerTokenLayoutLMPostProcess:
    """``class_path`` (PaddleOCR's class list file) or ``class_list`` (the same lines inline,
    as a checkpoint carries them)."""

    def __init__(self, class_path=None, class_list=None, **_unused):
        self.classes = read_class_list(class_path, class_list)
        label2id, self.id2label_map = load_bio_labels(self.classes)
        self.num_classes = len(label2id)
        # I-X counts as B-X when voting; shown without the prefix
        self.label2id_map_for_draw = {k: label2id["B" + k[1:]] if k.startswith("I-") else v
                                      for k, v in label2id.items()}
        self.id2label_map_for_show = {}
        for key, val in self.label2id_map_for_draw.items():
            self.id2label_map_for_show[val] = key[2:] if key[:2] in ("B-", "I-") else key

    def __call__(self, preds, segment_offset_ids, ocr_infos):
        preds = preds[0] if isinstance(preds, (list, tuple)) else preds
        results = []
        for pred, offsets, ocr_info in zip(preds, segment_offset_ids, ocr_infos):
            pred = [self.id2label_map[i] for i in np.argmax(pred, axis=1)]
            for idx in range(len(offsets)):
                start = 0 if idx == 0 else offsets[idx - 1]
                votes = [self.label2id_map_for_draw[p] for p in pred[start:offsets[idx]]]
                pred_id = int(np.argmax(np.bincount(votes))) if votes else 0
                ocr_info[idx]["pred_id"] = pred_id
                ocr_info[idx]["pred"] = self.id2label_map_for_show[pred_id]
            results.append(ocr_info)
        return results


@register("PostProcess")
class VQAReTokenLayoutLMPostProcess:
    def __init__(self, **_unused):
        pass

    @staticmethod
    def decode_pred(pred_relations):
        out = []
        for doc in pred_relations:
            rels = []
            for rel in doc[1:doc[0, 0, 0] + 1]:
                rels.append({"head_id": rel[0, 0], "head": tuple(rel[1]), "head_type": rel[2, 0],
                             "tail_id": rel[3, 0], "tail": tuple(rel[4]),
                             "tail_type": rel[5, 0], "type": rel[6, 0]})
            out.append(rels)
        return out

    def __call__(self, preds, ser_results, entity_idx_dict_batch):
        """``preds``: {'pred_relations': ...} or the RE model's outputs in program order
        (hidden_states, loss, pred_relations). Each tail is linked once (the first head
        predicted for it)."""
        rels = preds["pred_relations"] if isinstance(preds, dict) else preds[2]
        results = []
        for doc, ser_result, entity_idx in zip(self.decode_pred(np.asarray(rels)), ser_results,
                                               entity_idx_dict_batch):
            used, result = [], []
            for rel in doc:
                if rel["tail_id"] in used:
                    continue
                used.append(rel["tail_id"])
                result.append((ser_result[entity_idx[rel["head_id"]]],
                               ser_result[entity_idx[rel["tail_id"]]]))
            results.append(result)
        return results
