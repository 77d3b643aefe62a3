"""A restricted unpickler for Paddle's pickles (.pdparams, .pdiparams.info, .states).

Only numpy array reconstruction and plain containers are admitted; every other global a
pickle names is refused before it can be called, so a hostile file cannot run code.
"""

import collections
import io
import pickle
import pickletools

import numpy as np

from ...errors import FormatError


def _dtype(spec, align=False, copy=False):
    dt = np.dtype(spec, align)
    if dt.hasobject:
        raise FormatError("pickle holds an object array, which could run code; refused")
    return dt


def _reconstruct(cls, shape, dtype):
    if cls is not np.ndarray:
        raise FormatError("pickle reconstructs a non-ndarray class; refused")
    # numpy pickles pass shape (0,) here and the real shape with the data to __setstate__,
    # which checks the two agree; never allocate what the stream merely declares.
    return np.ndarray.__new__(np.ndarray, (0,), _dtype(dtype))


def _scalar(dtype, data=None):
    dt = _dtype(dtype)
    if not isinstance(data, (bytes, bytearray)) or len(data) != dt.itemsize:
        raise FormatError("pickle holds a malformed numpy scalar")
    return np.frombuffer(bytes(data), dtype=dt)[0]


def _encode(text, encoding="latin1"):
    if not isinstance(text, str) or encoding != "latin1":
        raise FormatError("pickle uses an unsupported bytes encoding")
    return text.encode("latin1")


# (module, name) -> the callable a pickle may use under that name. numpy moved multiarray to
# numpy._core in 2.0; files written by either are accepted.
_ALLOWED = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _dtype,
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.multiarray", "scalar"): _scalar,
    ("numpy._core.multiarray", "scalar"): _scalar,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "dict"): dict,
    ("builtins", "list"): list,
    ("builtins", "tuple"): tuple,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("_codecs", "encode"): _encode,  # bytes written by pickle protocol < 3
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise FormatError(
                f"pickle refers to {module}.{name}, which is not an array or a plain container; "
                "refused (the file may try to run code)"
            ) from None

    def persistent_load(self, pid):
        raise FormatError("pickle uses persistent ids (not a Paddle file); refused")


def _check_declared_sizes(data, what):
    """Walk the opcodes first: every length a pickle declares must fit in the bytes that are
    there, so the unpickler never allocates what a corrupt or hostile file merely claims."""
    try:
        for op, arg, pos in pickletools.genops(data):
            if op.name == "FRAME" and arg > len(data) - pos:
                raise FormatError(f"{what}: pickle declares a {arg}-byte frame in a "
                                  f"{len(data)}-byte file")
    except FormatError:
        raise
    except Exception as exc:  # genops checks every other declared length against the data
        raise FormatError(f"{what}: not a readable pickle ({type(exc).__name__}: {exc})") from None


def safe_load(data, what="file"):
    """Unpickle bytes admitting only numpy arrays and plain containers."""
    _check_declared_sizes(data, what)
    try:
        return _RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()
    except FormatError:
        raise
    except RecursionError:
        raise FormatError(f"{what}: pickle is nested too deeply") from None
    except MemoryError:
        raise FormatError(f"{what}: pickle declares more memory than it can hold") from None
    except Exception as exc:  # any parse failure of untrusted bytes is a format error
        raise FormatError(f"{what}: not a readable pickle ({type(exc).__name__}: {exc})") from None
