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


def image_ops(processing):
    """The table's page-image operators (the PreProcess ops after the token ones), as a
    processing of their own: what `ptocr kie` does to the page before the visual backbone."""
    ops = [op for op in (processing or {}).get("PreProcess", {}).get("transform_ops", [])
           if next(iter(op)) in ("DecodeImage", "Resize", "NormalizeImage", "ToCHWImage")]
    return {"PreProcess": {"transform_ops": ops}}


def page_image(processing, seed, page=None):
    """[1, 3, H, W] float32: ``page`` (a BGR image), or seeded noise of the table's
    ``image`` size, through the table's own image operators."""
    from ..pipeline import model_inputs

    if page is None:
        h, w = processing["kie"]["image"]
        page = np.random.RandomState(1000 + seed).randint(0, 256, (h, w, 3)).astype(np.uint8)
    return model_inputs(image_ops(processing), page)[0].astype(np.float32)


def kie_pages(spec, model, testdata=None):
    """Per verifier case, (label, page image or None): None for models without the visual
    backbone; else a real page of the test data for the first case (when there is test data)
    and seeded noise for the others, each through the table's image operators."""
    cases = int(spec.inputs["kie"].get("cases", 2))
    size = spec.inputs["kie"].get("image")
    visual = (bool(size) if model is None  # (program-order alignment's example input)
              else getattr(getattr(model, "backbone", model), "use_visual_backbone", False))
    if not visual:
        return [("", None)] * cases
    if not size:
        raise ValueError(f"{spec.name}: the model takes the page image; its table's "
                         "inputs.kie needs image: [H, W]")
    processing = {**(spec.processing or {}), "kie": {"image": size}}
    pages = []
    for seed in range(cases):
        if seed == 0 and testdata is not None and (testdata / "images" / "1.jpg").is_file():
            from ..pipeline import read_image

            page = read_image(testdata / "images" / "1.jpg")
            pages.append((" + page images/1.jpg", page_image(processing, seed, page)))
        else:
            pages.append((f" + noise page {size[0]}x{size[1]}", page_image(processing, seed)))
    return pages


def kie_inputs(params, model, seed=0, image=None):
    """[input_ids, bbox, attention_mask, token_type_ids(, image)(, entities, relations)] as
    int64 arrays of batch 1: ``tokens`` real tokens (random ids, random 0..1000 boxes with x0 <=
    x1, y0 <= y1) then padding to ``seq_len`` (attention mask 0, as VQATokenPad pads); for
    models with the visual backbone, ``image`` (the page as page_image prepares it) after the
    token inputs; with ``entities: K`` also K entities over the tokens (labels 0/1/2, at least
    one question and one answer) and an empty relation list, as PaddleOCR's RE inference
    feeds them."""
    rng = np.random.RandomState(seed)
    seq, n = int(params.get("seq_len", 512)), int(params.get("tokens", 100))
    # padding id: <pad> 1 of the sentencepiece vocabulary (XLM-R); WordPiece's [PAD] is 0
    pad = int(params.get("pad_id", 1))
    ids = np.full((1, seq), pad, np.int64)
    ids[0, :n] = rng.randint(3, vocab_size(model), n)
    ids[0, 0], ids[0, n - 1] = (0, 2) if pad == 1 else (101 % vocab_size(model),
                                                        102 % vocab_size(model))
    xs, ys = np.sort(rng.randint(0, 1001, (2, n, 2)), axis=-1)
    bbox = np.zeros((1, seq, 4), np.int64)
    bbox[0, :n] = np.stack([xs[:, 0], ys[:, 0], xs[:, 1], ys[:, 1]], -1)
    mask = np.zeros((1, seq), np.int64)
    mask[0, :n] = 1
    inputs = [ids, bbox, mask, np.zeros((1, seq), np.int64)]
    if image is not None:
        inputs.append(image)
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
