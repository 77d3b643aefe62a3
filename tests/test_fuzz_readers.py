"""Short fuzzing of every reader (the long run is `make fuzz`, scripts/fuzz.py): truncation
at every tensor boundary and at random points, bit flips, huge declared sizes, negative dims,
wrong dtypes, deep nesting. Allowed: a parsed result or ptocr's own error with a message."""

import struct
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
import fuzz  # noqa: E402

from ptocr.errors import FormatError  # noqa: E402
from ptocr.converter.formats.tensor_stream import read_tensors, write_tensors  # noqa: E402

READERS = fuzz.readers()


@pytest.fixture(scope="module")
def seeds(models):
    models("ch_ppocr_mobile_v2.0_cls"), models("PP-OCRv5_mobile_det")  # fail clearly if missing
    return fuzz.seeds()


@pytest.mark.parametrize("name", sorted(READERS))
def test_mutated_real_files_fail_only_with_our_error(name, seeds):
    rng = np.random.RandomState(sorted(READERS).index(name))
    for i in range(150):
        data = fuzz.mutate(seeds[name][i % len(seeds[name])], rng)
        err = fuzz.run_case(READERS[name], data)
        assert err is None, f"{name} case {i}: {type(err).__name__}: {err}"


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.binary(max_size=2048), name=st.sampled_from(sorted(READERS)))
def test_arbitrary_bytes(data, name):
    assert fuzz.run_case(READERS[name], data) is None


def test_truncation_at_every_tensor_boundary():
    arrays = [np.arange(n, dtype=np.float32) for n in (3, 5, 1, 8)]
    blob = write_tensors(arrays)
    assert [a.tolist() for a in read_tensors(blob)] == [a.tolist() for a in arrays]
    for cut in range(len(blob)):
        with pytest.raises(FormatError):
            read_tensors(blob[:cut], count=len(arrays))


def _tensor(dims, dtype_code=5, data=b""):
    from ptocr.converter.formats.framework_proto import TensorDesc

    desc = TensorDesc(data_type=dtype_code, dims=dims).SerializeToString()
    return struct.pack("<IQIi", 0, 0, 0, len(desc)) + desc + data


@pytest.mark.parametrize("blob,words", [
    (_tensor([2**40, 2**20]), "truncated"),  # huge declared size: checked, never allocated
    (_tensor([-4, 3]), "impossible dimensions"),
    (_tensor([3], dtype_code=99, data=b"\0" * 12), "unsupported data type"),
    (_tensor([0, 2**62, 2**62]), "impossible dimensions"),
    (struct.pack("<IQ", 0, 2**60), "lod"),
    (struct.pack("<IQIi", 0, 0, 0, -5), "desc"),
])
def test_hostile_tensor_headers(blob, words):
    with pytest.raises(FormatError, match=words):
        read_tensors(blob)


@pytest.mark.parametrize("data", [b"(" * 200000, b"\x80\x04]" + b"]" * 300000,
                                  b"\x80\x04\x95" + (2**60).to_bytes(8, "little"),
                                  b"\x80\x04\x8e" + (2**60).to_bytes(8, "little")])
def test_pickles_that_nest_deep_or_declare_huge_sizes(data):
    with pytest.raises(FormatError):
        READERS["pdparams"](data)


def test_json_nesting_and_wrong_shapes():
    with pytest.raises(FormatError):
        READERS["json"](b"[" * 100000)
    with pytest.raises(FormatError):
        READERS["json"](b'{"base_code": {"magic": "pir"}, "program": {"regions": [{"blocks": '
                        b'[{"ops": [{"#": "p", "A": [0, 1, 1, "w"], "O": {"%": 1, "TT": '
                        b'{"#": "0.t_dtensor", "D": [{"#": "0.t_what"}, [2], "NCHW", [], 0]}}}]}]}]}}')
