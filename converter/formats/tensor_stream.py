"""Paddle's combined tensor file (``.pdiparams``): tensors serialized one after another.

Each tensor, as Paddle's SerializeToStream writes it (little-endian):
  uint32 version (0) | uint64 lod levels, each: uint64 byte size + offsets |
  uint32 tensor version (0) | int32 desc size | TensorDesc protobuf | raw data.
Every declared size is checked against the bytes left before anything is allocated.
"""

import struct

import numpy as np

from ...errors import FormatError
from .framework_proto import TensorDesc

# framework.proto VarType.Type -> numpy dtype (bf16 is widened to float32 on read).
DTYPES = {
    0: np.bool_, 1: np.int16, 2: np.int32, 3: np.int64, 4: np.float16, 5: np.float32,
    6: np.float64, 20: np.uint8, 21: np.int8, 22: "bfloat16", 23: np.complex64,
    24: np.complex128,
}
DTYPE_CODES = {np.dtype(v): k for k, v in DTYPES.items() if v != "bfloat16"}


class _Cursor:
    def __init__(self, data, what):
        self.data = memoryview(data)
        self.pos = 0
        self.what = what

    def take(self, n, field):
        if n < 0 or self.pos + n > len(self.data):
            raise FormatError(
                f"{self.what}: truncated or corrupt ({field} needs {n} bytes at offset "
                f"{self.pos}, {len(self.data) - self.pos} left)"
            )
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, fmt, field):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt), field))[0]


def _read_one(cur, index):
    field = f"tensor #{index}"
    version = cur.unpack("<I", field + " version")
    if version != 0:
        raise FormatError(f"{cur.what}: {field} has unknown version {version} (not a .pdiparams?)")
    lod_levels = cur.unpack("<Q", field + " lod levels")
    if lod_levels > 64:
        raise FormatError(f"{cur.what}: {field} declares {lod_levels} lod levels; corrupt")
    for _ in range(lod_levels):
        cur.take(cur.unpack("<Q", field + " lod size"), field + " lod")
    tversion = cur.unpack("<I", field + " tensor version")
    if tversion != 0:
        raise FormatError(f"{cur.what}: {field} has unknown tensor version {tversion}")
    desc_size = cur.unpack("<i", field + " desc size")
    desc = TensorDesc()
    try:
        desc.ParseFromString(bytes(cur.take(desc_size, field + " desc")))
    except FormatError:
        raise
    except Exception:
        raise FormatError(f"{cur.what}: {field} has a corrupt tensor description") from None
    dtype = DTYPES.get(desc.data_type)
    if dtype is None:
        raise FormatError(f"{cur.what}: {field} has unsupported data type {desc.data_type}")
    dims = list(desc.dims)
    if any(d < 0 for d in dims) or len(dims) > 32:
        raise FormatError(f"{cur.what}: {field} has impossible dimensions {dims[:8]}")
    numel = 1
    for d in dims:
        numel *= d
    itemsize = 2 if dtype == "bfloat16" else np.dtype(dtype).itemsize
    raw = cur.take(numel * itemsize, field + " data")
    try:
        if dtype == "bfloat16":
            bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            return bits.view(np.float32).reshape(dims)
        return np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<")).reshape(dims).copy()
    except ValueError:  # e.g. a zero dimension beside dimensions numpy cannot index
        raise FormatError(f"{cur.what}: {field} has impossible dimensions {dims[:8]}") from None


def read_tensors(data, count=None, what="pdiparams"):
    """Parse all tensors in ``data``; with ``count``, exactly that many must be there."""
    cur = _Cursor(data, what)
    tensors = []
    while cur.pos < len(cur.data) and (count is None or len(tensors) < count):
        tensors.append(_read_one(cur, len(tensors)))
    if count is not None and len(tensors) != count:
        raise FormatError(f"{what}: holds {len(tensors)} tensors, the program declares {count}")
    if cur.pos != len(cur.data):
        raise FormatError(
            f"{what}: {len(cur.data) - cur.pos} unexpected bytes after the last tensor"
        )
    return tensors


def write_tensors(arrays):
    """Serialize arrays the way Paddle's save_combine does (used by tests and fixtures)."""
    out = bytearray()
    for arr in arrays:
        arr = np.ascontiguousarray(arr)
        desc = TensorDesc(data_type=DTYPE_CODES[arr.dtype], dims=list(arr.shape))
        blob = desc.SerializeToString()
        out += struct.pack("<IQIi", 0, 0, 0, len(blob)) + blob
        out += arr.astype(arr.dtype.newbyteorder("<")).tobytes()
    return bytes(out)
