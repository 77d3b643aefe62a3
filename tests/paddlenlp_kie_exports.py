"""Run as a subprocess (dy2static reads sources from files; paddle's state stays out of the
test process): VI-LayoutXLM SER and RE at a small configuration built with PaddleNLP 2.8.1's
own classes (tests/paddlenlp_ref.py) inside transcriptions of PaddleOCR's wrappers
(ppocr/modeling/backbones/vqa_layoutlm.py: LayoutXLMForSer / LayoutXLMForRe hold the PaddleNLP
model as ``.model``; BaseModel holds them as ``backbone``), every parameter random.

    python paddlenlp_kie_exports.py OUT CONFIG_JSON

writes OUT/ser_pir/inference.* (PIR export with PaddleOCR's input spec, image dropped as for
vi models), OUT/ser_train/model_state.pdparams and OUT/re_train/model_state.pdparams (the
PaddleNLP names PaddleOCR's save_pretrained writes), OUT/re_reference.npz (the RE model run
in dygraph, float32 and float64, on seeded inputs) and OUT/re_export.txt (why paddle 3.3 cannot
export the RE decoder)."""

import json
import os
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import paddle  # noqa: E402

from paddlenlp_ref import layoutxlm  # noqa: E402


class NLPBaseModel(paddle.nn.Layer):
    """PaddleOCR's NLPBaseModel with the PaddleNLP model built from a config instead of
    from_pretrained (which downloads)."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.out_channels = 1
        self.use_visual_backbone = False


class LayoutXLMForSer(NLPBaseModel):
    def forward(self, x):
        image = x[4] if self.use_visual_backbone is True else None
        x = self.model(input_ids=x[0], bbox=x[1], attention_mask=x[2], token_type_ids=x[3],
                       image=image, position_ids=None, head_mask=None, labels=None)
        return x


class LayoutXLMForRe(NLPBaseModel):
    def forward(self, x):
        if self.use_visual_backbone is True:
            image, entities, relations = x[4], x[5], x[6]
        else:
            image, entities, relations = None, x[4], x[5]
        return self.model(input_ids=x[0], bbox=x[1], attention_mask=x[2], token_type_ids=x[3],
                          image=image, position_ids=None, head_mask=None, labels=None,
                          entities=entities, relations=relations)


class BaseModel(paddle.nn.Layer):
    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone

    def forward(self, x):
        return self.backbone(x)


def randomize(layer, seed):
    rng = np.random.RandomState(seed)
    for _, t in layer.state_dict().items():
        if t.dtype == paddle.float32:
            t.set_value(rng.uniform(-0.5, 0.5, t.shape).astype("float32"))
    layer.eval()
    return layer


def spec(re=False, image=False):
    """PaddleOCR's export_model input spec for the LayoutLM family (the image, declared int64
    there, only for models with the visual backbone)."""
    s = [paddle.static.InputSpec([None, 512], "int64"),        # input_ids
         paddle.static.InputSpec([None, 512, 4], "int64"),     # bbox
         paddle.static.InputSpec([None, 512], "int64"),        # attention_mask
         paddle.static.InputSpec([None, 512], "int64")]        # token_type_ids
    if image:
        s.append(paddle.static.InputSpec([None, 3, 224, 224], "int64"))
    if re:
        s += [paddle.static.InputSpec([None, 512, 3], "int64"),   # entities
              paddle.static.InputSpec([None, None, 2], "int64")]  # relations
    return s


def re_inputs(vocab, seed, known):
    """Token inputs as the verifier makes them; with ``known`` two relations given as known
    pairs (exercises build_relation's positive-first ordering)."""
    import torch.nn as tnn

    from ptocr.converter.kie_inputs import kie_inputs

    probe = tnn.ModuleDict({"word_embeddings": tnn.Embedding(vocab, 1)})
    x = kie_inputs({"seq_len": 512, "tokens": 150, "entities": 8}, probe, seed)
    if known:
        ent = x[4][0]
        q = [i for i in range(int(ent[0, 2])) if ent[i + 1, 2] == 1]
        a = [i for i in range(int(ent[0, 2])) if ent[i + 1, 2] == 2]
        x[5][0, 0] = 2
        x[5][0, 1], x[5][0, 2] = (q[0], a[0]), (q[-1], a[-1])
    return x


def main(out, overrides):
    out = Path(out)
    modeling, config = layoutxlm(**overrides)
    vocab = config.vocab_size

    ser = randomize(BaseModel(LayoutXLMForSer(modeling.LayoutXLMForTokenClassification(config))), 1)
    paddle.jit.save(paddle.jit.to_static(ser, input_spec=[spec()], full_graph=True),
                    str(out / "ser_pir" / "inference"))
    os.makedirs(out / "ser_train", exist_ok=True)
    paddle.save(ser.backbone.model.state_dict(), str(out / "ser_train" / "model_state.pdparams"))

    re_model = randomize(BaseModel(LayoutXLMForRe(
        modeling.LayoutXLMForRelationExtraction(config))), 2)
    os.makedirs(out / "re_train", exist_ok=True)
    paddle.save(re_model.backbone.model.state_dict(),
                str(out / "re_train" / "model_state.pdparams"))
    ref = {}
    cases = [(0, False), (1, True)]
    for dtype in ("float32", "float64"):
        if dtype == "float64":
            re_model._to_impl(dtype="float64", floating_only=True)
        for seed, known in cases:
            x = re_inputs(vocab, seed, known)
            with paddle.no_grad():
                res = re_model([paddle.to_tensor(a) for a in x])
            key = f"{seed}_{dtype}"
            for i, a in enumerate(x):
                ref[f"input{i}_{seed}"] = a
            for name in ("hidden_states", "loss", "pred_relations"):
                ref[f"{name}_{key}"] = res[name].numpy()
    np.savez(out / "re_reference.npz", **ref)

    # to_static converts the layer in place: the export attempt gets a fresh copy
    fresh = randomize(BaseModel(LayoutXLMForRe(modeling.LayoutXLMForRelationExtraction(config))), 2)
    try:
        paddle.jit.save(paddle.jit.to_static(fresh, input_spec=[spec(True)], full_graph=True),
                        str(out / "re_pir" / "inference"))
        (out / "re_export.txt").write_text("exported")
    except Exception as exc:  # noqa: BLE001 - the reason is the record
        (out / "re_export.txt").write_text(f"{type(exc).__name__}: {exc}")



if __name__ == "__main__":
    main(sys.argv[1], json.loads(sys.argv[2]))
