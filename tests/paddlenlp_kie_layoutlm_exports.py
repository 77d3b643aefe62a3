"""Run as a subprocess: LayoutLM SER at a small configuration built with PaddleNLP 2.8.1's own
LayoutLMForTokenClassification (tests/paddlenlp_ref.py) inside a transcription of PaddleOCR's
LayoutLMForSer wrapper (ppocr/modeling/backbones/vqa_layoutlm.py: no image; BaseModel holds it
as ``backbone``), every parameter random.

    python paddlenlp_kie_layoutlm_exports.py OUT CONFIG_JSON

writes OUT/ser_pir/inference.* (PIR export with PaddleOCR's input spec, image dropped as for
models without the visual backbone), OUT/ser_train/model_state.pdparams (PaddleNLP's names),
OUT/inputs.npz and OUT/ser_dygraph.npy (the model's logits in dygraph on them)."""

import json
import os
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import paddle  # noqa: E402

from paddlenlp_kie_exports import BaseModel, NLPBaseModel, randomize, re_inputs, spec  # noqa: E402
from paddlenlp_ref import layoutlm  # noqa: E402


class LayoutLMForSer(NLPBaseModel):
    def forward(self, x):
        return self.model(input_ids=x[0], bbox=x[1], attention_mask=x[2], token_type_ids=x[3],
                          position_ids=None, output_hidden_states=False)


def main(out, overrides):
    out = Path(out)
    modeling, config = layoutlm(**overrides)
    ser = randomize(BaseModel(LayoutLMForSer(modeling.LayoutLMForTokenClassification(config))), 1)
    eps = {float(m._epsilon) for m in ser.sublayers() if isinstance(m, paddle.nn.LayerNorm)}
    assert eps == {1e-12}, eps  # PaddleNLP's _init_weights hook (tests/paddlenlp_ref.py)
    ins = {}
    for seed in (0, 1):
        x = re_inputs(config.vocab_size, seed, known=False)[:4]
        x[0][x[0] == 1] = 0  # padding: BERT's [PAD] is 0 (the XLM-R layout pads with 1)
        for i, a in enumerate(x):
            ins[f"input{i}_{seed}"] = a
    np.savez(out / "inputs.npz", **ins)
    with paddle.no_grad():
        logits = ser([paddle.to_tensor(ins[f"input{i}_0"]) for i in range(4)])
    np.save(out / "ser_dygraph.npy", logits.numpy())
    paddle.jit.save(paddle.jit.to_static(ser, input_spec=[spec()], full_graph=True),
                    str(out / "ser_pir" / "inference"))
    os.makedirs(out / "ser_train", exist_ok=True)
    paddle.save(ser.backbone.model.state_dict(), str(out / "ser_train" / "model_state.pdparams"))


if __name__ == "__main__":
    main(sys.argv[1], json.loads(sys.argv[2]))
