"""Architectures without real weights here: PaddleOCR's own parameter names and shapes,
recorded as data (tests/paddle_names/<arch>.txt, one `name<TAB>d0,d1,...` per line, dumped
from PaddleOCR's modules built with paddle), must be consumed completely by the mapping."""

from pathlib import Path

import numpy as np
import pytest

from ptocr.converter.convert import convert
from ptocr.converter.formats import PaddleWeights, select_submodel
from ptocr.converter.mapping import find_arch

NAMES_DIR = Path(__file__).parent / "paddle_names"
FILES = sorted(NAMES_DIR.glob("*.txt"))


def synthetic_weights(path):
    tensors = {}
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, dims = line.split("\t")
        shape = [int(d) for d in dims.split(",") if d]
        tensors[name] = np.random.RandomState(len(tensors)).rand(*shape).astype(np.float32)
    tensors, _ = select_submodel(tensors, None, str(path))
    return PaddleWeights("pdparams", tensors, True, files=[path])


@pytest.mark.parametrize("names_file", FILES, ids=[f.stem for f in FILES])
def test_mapping_consumes_paddleocr_names(names_file):
    weights = synthetic_weights(names_file)
    spec = find_arch(names_file.stem)
    conv = convert(None, weights=weights, spec=spec)
    assert conv.report.mapped + len(conv.report.ignored) >= len(weights.tensors)
    state = conv.model.state_dict()
    # every Paddle tensor that was mapped landed with its values (layout aside)
    for name, array in weights.tensors.items():
        if name.endswith("._mean"):
            target = name[: -len("._mean")] + ".running_mean"
            if target in state:
                assert np.allclose(state[target].numpy(), array)


def test_names_files_exist_for_every_names_only_arch():
    from ptocr.converter.mapping import list_archs

    names_only = [s.name for s in list_archs().values() if s.proof != "real weights"]
    missing = [n for n in names_only if not (NAMES_DIR / f"{n}.txt").is_file()]
    assert not missing, f"architectures with neither real weights nor recorded names: {missing}"


@pytest.mark.parametrize("arch", ["korean_PP-OCRv3_rec", "en_PP-OCRv3_rec", "ch_PP-OCRv3_rec"])
def test_arch_auto_tells_languages_apart_by_dictionary(arch):
    """Multilingual recognisers share one network; the class count picks the language."""
    from ptocr.converter.convert import detect_arch

    assert detect_arch(synthetic_weights(NAMES_DIR / f"{arch}.txt")).name == arch


def test_proof_labels_use_one_vocabulary():
    """`ptocr archs`'s proof column: terms joined by " + ", a reference naming the Paddle forms
    it was proven on from a fixed list (converter/mapping.py ArchSpec.proof)."""
    import re

    from ptocr.converter.mapping import list_archs

    forms = r"(2\.x|PIR|pdparams|dygraph)"
    term = (rf"(real weights|op-level|names|(paddle twin|PaddleNLP code)"
            rf"( \({forms}(, {forms})*\))?)")
    rule = re.compile(rf"^{term}( \+ {term})*$")
    bad = {s.name: s.proof for s in list_archs().values() if not rule.match(s.proof)}
    assert not bad, bad
