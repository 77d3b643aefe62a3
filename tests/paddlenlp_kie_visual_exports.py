"""Run as a subprocess (dy2static reads sources from files; paddle's state stays out of the
test process): LayoutXLM and LayoutLMv2 WITH the visual backbone, SER and RE, at a small
configuration (small encoder, and a ResNeXt-50-FPN of few channels: tests/paddlenlp_ref.py
SMALL_VISUAL) built with PaddleNLP 2.8.1's own classes inside transcriptions of PaddleOCR's
wrappers (ppocr/modeling/backbones/vqa_layoutlm.py; the VI wrappers of
tests/paddlenlp_kie_exports.py with ``use_visual_backbone`` left True, as PaddleOCR's
NLPBaseModel sets it), every parameter and batch-norm statistic random.

    python paddlenlp_kie_visual_exports.py OUT FAMILIES CONFIG_JSON   (layoutxlm,layoutlmv2)

writes, per family, OUT/FAMILY/ser_pir/inference.* (PIR export with PaddleOCR's input spec, the image declared
int64 [N, 3, 224, 224] as PaddleOCR's export_model declares it), OUT/ser_train and
OUT/re_train/model_state.pdparams (PaddleNLP's names), OUT/inputs.npz (the inputs the
references ran on) and OUT/re_reference.npz (the RE model in dygraph, float32 and float64)."""

import json
import os
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import paddle  # noqa: E402

from paddlenlp_kie_exports import (BaseModel, LayoutXLMForRe, LayoutXLMForSer, re_inputs,  # noqa: E402
                                   spec)
from paddlenlp_ref import SMALL_VISUAL, layoutlmv2, layoutxlm, use_visual_config  # noqa: E402


class LayoutLMv2ForRe(LayoutXLMForRe):
    """PaddleOCR's LayoutLMv2ForRe: the image is always x[4]. PaddleNLP 2.8.1's LayoutLMv2 RE
    decoder takes entities/relations as lists of dicts (its older form), so they are given
    that way (``as_dicts``), converted from the tensors the other models take."""

    def forward(self, x):
        return self.model(input_ids=x[0], bbox=x[1], attention_mask=x[2], token_type_ids=x[3],
                          image=x[4], position_ids=None, head_mask=None, labels=None,
                          entities=as_dicts(x[5], "entities"),
                          relations=as_dicts(x[6], "relations"))


def as_dicts(t, kind):
    """PaddleOCR's tensor form (row 0 counts, rows 1.. the items) -> PaddleNLP's dict form."""
    out = []
    for doc in t.numpy():
        if kind == "entities":
            n = int(doc[0, 0])
            out.append({"start": doc[1:n + 1, 0].tolist(), "end": doc[1:n + 1, 1].tolist(),
                        "label": doc[1:n + 1, 2].tolist()})
        else:
            n = int(doc[0, 0])
            out.append({"head": doc[1:n + 1, 0].tolist(), "tail": doc[1:n + 1, 1].tolist()})
    return out


def randomize(layer, seed):
    """Every float tensor random: weights, biases, batch-norm means; variances positive."""
    rng = np.random.RandomState(seed)
    for name, t in layer.state_dict().items():
        if t.dtype != paddle.float32 or name.endswith(("pixel_mean", "pixel_std")):
            continue
        if name.endswith("_variance"):
            t.set_value(rng.uniform(0.5, 1.5, t.shape).astype("float32"))
        elif ".visual." in name:  # conv weights scaled so activations neither vanish nor blow up
            fan_in = int(np.prod(t.shape[1:])) if len(t.shape) > 1 else 1
            t.set_value((rng.uniform(-1, 1, t.shape) * np.sqrt(3.0 / fan_in)).astype("float32"))
        else:
            t.set_value(rng.uniform(-0.5, 0.5, t.shape).astype("float32"))
    layer.eval()
    return layer


def image_input(seed):
    """A page image as PaddleOCR's KIE feeds it: RGB noise resized to 224x224, NormalizeImage
    (scale 1, ImageNet mean/std), CHW, float32."""
    rng = np.random.RandomState(100 + seed)
    img = rng.randint(0, 256, (224, 224, 3)).astype("float32")
    mean, std = np.array([123.675, 116.28, 103.53]), np.array([58.395, 57.12, 57.375])
    return ((img - mean) / std).astype("float32").transpose(2, 0, 1)[None]


def main(out, family, overrides):
    out = Path(out)
    use_visual_config(SMALL_VISUAL)
    pool = [7, 7, SMALL_VISUAL["MODEL.FPN.OUT_CHANNELS"]]
    build = layoutxlm if family == "layoutxlm" else layoutlmv2
    modeling, config = build(**overrides, image_feature_pool_shape=pool,
                             use_visual_backbone=True)
    prefix = "LayoutXLM" if family == "layoutxlm" else "LayoutLMv2"
    token_cls = getattr(modeling, f"{prefix}ForTokenClassification")
    re_cls = getattr(modeling, f"{prefix}ForRelationExtraction")
    re_wrapper = LayoutXLMForRe if family == "layoutxlm" else LayoutLMv2ForRe

    def wrap(cls, model):
        w = cls(model)
        w.use_visual_backbone = True  # PaddleOCR's NLPBaseModel default, kept for these models
        return BaseModel(w)

    ser = randomize(wrap(LayoutXLMForSer, token_cls(config)), 1)
    ins = {}
    for seed in (0, 1):
        x = re_inputs(config.vocab_size, seed, known=bool(seed))
        x.insert(4, image_input(seed))
        for i, a in enumerate(x):
            ins[f"input{i}_{seed}"] = a
    np.savez(out / "inputs.npz", **ins)
    # PaddleOCR's page reaches PaddleNLP's backbone normalised twice (NormalizeImage, then the
    # backbone's pixel mean/std), so pages differ only slightly there; the un-normalised page
    # (0..255, what the backbone's own statistics expect) shows the visual branch plainly
    raw = (ins["input4_0"] * np.array([58.395, 57.12, 57.375]).reshape(1, 3, 1, 1)
           + np.array([123.675, 116.28, 103.53]).reshape(1, 3, 1, 1)).astype("float32")
    np.save(out / "raw_page.npy", raw)
    with paddle.no_grad():
        x = [paddle.to_tensor(ins[f"input{i}_0"]) for i in range(5)]
        np.save(out / "ser_dygraph.npy", ser(x)[0].numpy())
        np.save(out / "ser_dygraph_raw.npy", ser(x[:4] + [paddle.to_tensor(raw)])[0].numpy())
    paddle.jit.save(paddle.jit.to_static(ser, input_spec=[spec(image=True)], full_graph=True),
                    str(out / "ser_pir" / "inference"))
    os.makedirs(out / "ser_train", exist_ok=True)
    paddle.save(ser.backbone.model.state_dict(), str(out / "ser_train" / "model_state.pdparams"))

    def links(model, seed):
        x = [paddle.to_tensor(ins[f"input{i}_{seed}"]) for i in range(7)]
        with paddle.no_grad():
            pred = model(x)["pred_relations"]
        return len(pred[0]) if isinstance(pred, list) else int(pred[0, 0, 0, 0])

    # the first random weights (seeds 2, 3, ...) that link some pairs on both inputs, so the
    # comparison covers the decoder's output rows too
    for weight_seed in range(2, 12):
        re_model = randomize(wrap(re_wrapper, re_cls(config)), weight_seed)
        if all(links(re_model, seed) > 0 for seed in (0, 1)):
            break
    os.makedirs(out / "re_train", exist_ok=True)
    paddle.save(re_model.backbone.model.state_dict(),
                str(out / "re_train" / "model_state.pdparams"))
    ref = {}
    for dtype in ("float32", "float64"):
        if dtype == "float64":
            re_model._to_impl(dtype="float64", floating_only=True)
        for seed in (0, 1):
            x = [paddle.to_tensor(ins[f"input{i}_{seed}"]) for i in range(7)]
            with paddle.no_grad():
                res = re_model(x)
            key = f"{seed}_{dtype}"
            ref[f"loss_{key}"] = res["loss"].numpy()
            if family == "layoutxlm":
                ref[f"hidden_states_{key}"] = res["hidden_states"].numpy()
                pred = res["pred_relations"].numpy()  # [B, N*N, 7, 2]: rows past the count
                ref[f"pred_relations_{key}"] = pred[:, :int(pred[0, 0, 0, 0]) + 2]  # are -1
            else:  # the final layer's states; the linked pairs as (head, tail) ids
                ref[f"hidden_states_{key}"] = res["hidden_states"].numpy()
                pairs = [(r["head_id"], r["tail_id"]) for r in res["pred_relations"][0]]
                ref[f"pairs_{key}"] = np.array(sorted(pairs), np.int64).reshape(-1, 2)
    np.savez(out / "re_reference.npz", **ref)


if __name__ == "__main__":
    for fam in sys.argv[2].split(","):  # one process for both families (paddle imports once)
        os.makedirs(Path(sys.argv[1]) / fam, exist_ok=True)
        main(Path(sys.argv[1]) / fam, fam, json.loads(sys.argv[3]))
