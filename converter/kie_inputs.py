"""Seeded inputs for the KIE (LayoutXLM family) models, whose programs take token ids, token
boxes and masks rather than an image: the verifier's random inputs and the example input of
program-order alignment. A table asks for them with ``inputs: {kie: {...}}``."""

import numpy as np


def vocab_size(model):
    """Rows of the model's word embedding table (token ids must stay below it)."""
    for name, module in model.named_modules():
        if name.endswith("word_embeddings"):
            return int(module.num_embeddings)
    return 2


def kie_inputs(params, model, seed=0):
    """[input_ids, bbox, attention_mask, token_type_ids(, entities, relations)] as int64
    arrays of batch 1: ``tokens`` real tokens (random ids, random 0..1000 boxes with x0 <= x1,
    y0 <= y1) then padding to ``seq_len`` (attention mask 0, as VQATokenPad pads); with
    ``entities: K`` also K entities over the tokens (labels 0/1/2, at least one question and
    one answer) and an empty relation list, as PaddleOCR's RE inference feeds them."""
    rng = np.random.RandomState(seed)
    seq, n = int(params.get("seq_len", 512)), int(params.get("tokens", 100))
    ids = np.ones((1, seq), np.int64)  # <pad> of the sentencepiece vocabulary (XLM-R)
    ids[0, :n] = rng.randint(3, vocab_size(model), n)
    ids[0, 0], ids[0, n - 1] = 0, 2
    xs, ys = np.sort(rng.randint(0, 1001, (2, n, 2)), axis=-1)
    bbox = np.zeros((1, seq, 4), np.int64)
    bbox[0, :n] = np.stack([xs[:, 0], ys[:, 0], xs[:, 1], ys[:, 1]], -1)
    mask = np.zeros((1, seq), np.int64)
    mask[0, :n] = 1
    inputs = [ids, bbox, mask, np.zeros((1, seq), np.int64)]
    k = params.get("entities")
    if k:
        k = int(k)
        cuts = np.sort(rng.choice(np.arange(1, n - 1), 2 * k, replace=False))
        ent = np.full((1, seq, 3), -1, np.int64)
        ent[0, 0] = k
        ent[0, 1:k + 1, 0], ent[0, 1:k + 1, 1] = cuts[0::2], cuts[1::2]
        labels = rng.randint(0, 3, k)
        labels[:2] = 1, 2
        ent[0, 1:k + 1, 2] = labels
        rel = np.full((1, k * k + 1, 2), -1, np.int64)
        rel[0, 0] = 0
        inputs += [ent, rel]
    return inputs
