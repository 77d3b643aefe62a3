"""No code runs from input files: hostile pickles in every pickled format are refused
before anything they name is called, and ptocr.load unpickles nothing arbitrary."""

import builtins
import os
import pickle
import subprocess

import numpy as np
import pytest
import torch

import ptocr
from ptocr.converter import checkpoint, formats
from ptocr.errors import FormatError, PtocrError
from ptocr.converter.formats.safe_pickle import safe_load


def payloads(marker):
    """Pickles that would create `marker` if anything in them were executed."""
    cmd = f"touch {marker}"

    class System:
        def __reduce__(self):
            return (os.system, (cmd,))

    class Eval:
        def __reduce__(self):
            return (builtins.eval, (f"open({str(marker)!r}, 'w')",))

    class Exec:
        def __reduce__(self):
            return (builtins.exec, (f"open({str(marker)!r}, 'w')",))

    class Import:
        def __reduce__(self):
            return (builtins.__import__, ("os",))

    class Subprocess:
        def __reduce__(self):
            return (subprocess.call, (["touch", str(marker)],))

    class Nested:  # a code-running object hidden inside an array-looking structure
        def __reduce__(self):
            return (np.ndarray, ((2,),), System())

    yield from ({"w": cls()} for cls in (System, Eval, Exec, Import, Subprocess))
    yield {"layer": {"weight": np.zeros(2), "extra": [Nested()]}}
    yield {"w": np.array([System()], dtype=object)}  # object arrays unpickle their items


# raw opcodes: globals named directly, and a getattr chain to os.system
RAW = [
    b"cbuiltins\ngetattr\n(cbuiltins\n__import__\n(S'os'\ntRS'system'\ntR(S'touch {m}'\ntR.",
    b"cos\nsystem\n(S'touch {m}'\ntR.",
    b"c__builtin__\neval\n(S'open(\"{m}\",\"w\")'\ntR.",
    b"\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x8c\x06system\x93\x8c\x0ctouch {m}\x85R.",
]


def test_every_hostile_pickle_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "PWNED"
    blobs = [pickle.dumps(p, protocol=proto) for p in payloads(marker) for proto in (2, 4)]
    blobs += [r.replace(b"{m}", str(marker).encode()) for r in RAW]
    for blob in blobs:
        with pytest.raises(FormatError):
            safe_load(blob)
    assert not marker.exists()


@pytest.mark.parametrize("suffix", ["pdparams", "pdiparams.info", "states"])
def test_hostile_files_through_the_readers_and_cli(suffix, tmp_path, models, cli):
    marker = tmp_path / "PWNED"
    blob = pickle.dumps(next(payloads(marker)))
    model = tmp_path / "m"
    if suffix == "pdparams":
        model.mkdir()
        (model / "model.pdparams").write_bytes(blob)
    elif suffix == "pdiparams.info":
        import shutil

        shutil.copytree(models("PP-OCRv4_mobile_det"), model)
        (model / "inference.pdiparams.info").write_bytes(blob)
    else:  # training state beside a checkpoint: never read at all
        model.mkdir()
        (model / "model.pdparams").write_bytes(pickle.dumps({"backbone.w": np.zeros(2)}))
        (model / "model.states").write_bytes(blob)
        (model / "model.pdopt").write_bytes(blob)
    res = cli("inspect", model)
    assert not marker.exists()
    if suffix == "states":
        assert res.returncode == 0  # .states/.pdopt are ignored, not unpickled
    else:
        assert res.returncode == 2 and "refused" in res.stderr


def test_ptocr_load_refuses_arbitrary_objects(tmp_path):
    marker = tmp_path / "PWNED"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {}, "config": {"x": Evil()}}, path)
    with pytest.raises(PtocrError, match="not a readable ptocr checkpoint"):
        ptocr.load(path)
    assert not marker.exists()


@pytest.mark.parametrize("fmt", ["pth", "safetensors"])
def test_round_trip_is_bit_identical(fmt, models, tmp_path, cli):
    first = tmp_path / f"a.{fmt}"
    res = cli("convert", "--arch", "PP-OCRv4_mobile_det", "--paddle-dir",
              models("PP-OCRv4_mobile_det"), "--out", first, "--no-verify")
    assert res.returncode == 0, res.stderr
    if fmt == "pth":
        assert torch.load(first, weights_only=True)["state_dict"]
    state, meta = checkpoint.read(first)
    second = tmp_path / f"b.{fmt}"
    checkpoint.save(second, state, meta)
    again, meta2 = checkpoint.read(second)
    assert meta2 == meta and state.keys() == again.keys()
    for k in state:
        assert state[k].dtype == again[k].dtype and torch.equal(state[k], again[k])
    weights = formats.read(models("PP-OCRv4_mobile_det"))
    name = "backbone.conv1.conv.weight"
    assert np.array_equal(again[name].numpy(), weights.tensors[name])
