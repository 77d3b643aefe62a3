"""ptocr checkpoints: written atomically, loadable with ``torch.load(weights_only=True)``.

A ``.pth`` holds {state_dict, arch, config, source, ptocr_version, parity, extra,
processing}; a ``.safetensors`` holds the same state_dict with the rest as JSON strings in its metadata.
"""

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import torch

from ..errors import PtocrError

META_KEYS = ("arch", "config", "source", "ptocr_version", "parity", "extra", "processing")


@contextmanager
def atomic_path(path, overwrite=False):
    """Yield a temp path beside ``path``; on success it replaces ``path`` in one rename.

    On any failure (including Ctrl-C) the temp file is removed and ``path`` is untouched.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise PtocrError(f"{path}: already exists (pass --overwrite to replace it)")
    if not path.parent.is_dir():
        raise PtocrError(f"{path.parent}: output directory does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; outputs get the usual permissions
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_bytes_atomic(path, data, overwrite=False):
    with atomic_path(path, overwrite=overwrite) as tmp:
        Path(tmp).write_bytes(data)


def save(path, state_dict, meta, fmt=None, overwrite=False):
    """Write a checkpoint; ``fmt`` is 'pth' or 'safetensors' (default: from the suffix)."""
    fmt = fmt or ("safetensors" if str(path).endswith(".safetensors") else "pth")
    state = {k: v.detach().contiguous().cpu() for k, v in state_dict.items()}
    with atomic_path(path, overwrite) as tmp:
        if fmt == "safetensors":
            from safetensors.torch import save_file

            save_file(state, str(tmp), metadata={k: json.dumps(meta.get(k)) for k in META_KEYS})
        elif fmt == "pth":
            torch.save({"state_dict": state, **{k: meta.get(k) for k in META_KEYS}}, tmp)
        else:
            raise PtocrError(f"unknown output format {fmt!r} (pth or safetensors)")


def read(path):
    """(state_dict, meta) of a ptocr checkpoint, without unpickling arbitrary objects."""
    path = Path(path)
    if not path.is_file():
        raise PtocrError(f"{path}: no such checkpoint")
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as fh:
                state = {k: fh.get_tensor(k) for k in fh.keys()}
                raw = fh.metadata() or {}
        except Exception as exc:
            raise PtocrError(f"{path}: not a readable safetensors file ({exc})") from None
        meta = {k: json.loads(raw[k]) for k in META_KEYS if k in raw}
    else:
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise PtocrError(f"{path}: not a readable ptocr checkpoint ({first})") from None
        if not isinstance(payload, dict) or "state_dict" not in payload:
            raise PtocrError(f"{path}: not a ptocr checkpoint (no state_dict)")
        state = payload["state_dict"]
        meta = {k: payload.get(k) for k in META_KEYS}
    if not meta.get("config"):
        raise PtocrError(f"{path}: not a ptocr checkpoint (no architecture config)")
    return state, meta


def load_model(path, map_location="cpu", fuse=True):
    """The ready model (eval mode) of a ptocr checkpoint, or of a Hugging Face transformers
    folder of a class ptocr maps (converter/hf.py); meta is kept as ``model.ptocr_meta``.

    ``fuse`` (default): the fast eval form (models/fuse.py: rep blocks in deploy form, conv+BN
    pairs folded, found on an example input at the table's smallest shape); ``fuse=False``:
    the exact training form the checkpoint holds, for fine-tuning."""
    from ..models import build
    from . import hf

    if hf.is_folder(path):
        return hf.load_folder(path).to(map_location).eval()
    state, meta = read(path)
    model = build(meta["config"])
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise PtocrError(f"{path}: weights do not fit the recorded architecture ({exc})") from None
    if meta.get("processing") is None and meta.get("arch"):
        meta["processing"] = _table_processing(meta["arch"])
    model.ptocr_meta = meta
    model = model.to(map_location).eval()
    if fuse:
        from ..models.fuse import fuse as fuse_model

        fuse_model(model, example_inputs(meta, map_location),
                   channels_last=channels_last(model))
    return model


def channels_last(model):
    """Whether ptocr.load's fast form holds channels_last weights: where its backbone class
    says that layout was measured faster on CPU (``prefers_channels_last``, README
    Benchmarks). The verifier judges the same form (verify.fused_form_report)."""
    return bool(getattr(getattr(model, "backbone", None), "prefers_channels_last", False))


def example_inputs(meta, device="cpu"):
    """A tuple of inputs the model accepts: the smallest shape of its table's verifier inputs,
    batch 1 (None when the table names none)."""
    from .mapping import find_arch

    try:
        spec = find_arch(meta.get("arch") or "")
    except PtocrError:
        return None
    shapes = [list(s) for s in spec.inputs.get("shapes") or []]
    if not shapes:
        return None
    shape = min(shapes, key=lambda s: torch.Size(s[1:]).numel())
    return (torch.zeros([1] + shape[1:], device=device),)


def _table_processing(arch):
    """Processing for checkpoints written before they carried it: their table's."""
    from .mapping import find_arch

    try:
        return find_arch(arch).processing
    except PtocrError:
        return None
