"""Readers for every form PaddleOCR weights come in; numpy and the standard library only
(plus the protobuf runtime), so converting never needs paddle.

``read(path)`` accepts a directory or a file prefix and detects the format:
  * training checkpoint  ``*.pdparams`` (restricted unpickling; ``.pdopt``/``.states`` ignored)
  * 2.x inference model  ``*.pdmodel`` + ``*.pdiparams`` [+ ``*.pdiparams.info``]
  * 3.x PIR model        ``*.json`` + ``*.pdiparams``
"""

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...errors import FormatError
from .program import parse_pdmodel, parse_pir
from .safe_pickle import safe_load
from .tensor_stream import read_tensors

DISTILL_PREFIXES = ("Student", "Student2", "Teacher")
TOP_LEVEL = ("backbone", "neck", "head", "transform")


@dataclass
class PaddleWeights:
    format: str  # "pdparams" | "pdmodel" | "pir"
    tensors: dict  # name -> np.ndarray; structured names where known, else program var names
    structured: bool  # tensors are keyed by layer paths (backbone.conv1.conv.weight)
    program: object = None  # program.Program for inference models
    var_names: dict = field(default_factory=dict)  # structured name -> program variable name
    files: list = field(default_factory=list)  # Paths read
    submodel: str = None
    inference_yml: dict = None

    def sources(self):
        """[{file, sha256}] of the files read (recorded in checkpoints)."""
        out = []
        for path in self.files:
            digest = hashlib.sha256()
            with open(path, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(chunk)
            out.append({"file": Path(path).name, "sha256": digest.hexdigest()})
        return out

    def total_bytes(self):
        return sum(a.nbytes for a in self.tensors.values())


def _read_bytes(path):
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise FormatError(f"cannot read {path}: {exc.strerror}") from None


def locate(path):
    """(format, {role: Path}) for a directory or file prefix, or a clear error."""
    p = Path(path)
    if not p.exists() and not p.parent.is_dir():
        raise FormatError(f"{path}: no such file or directory")
    if p.is_dir():
        for stem in ("inference", "model", None):
            files = sorted(p.glob(f"{stem}.*" if stem else "*"))
            if files:
                found = _by_prefix(files)
                if found:
                    return found
        if not any(p.iterdir()):
            raise FormatError(f"{path}: directory is empty (expected Paddle weights)")
        raise FormatError(
            f"{path}: no Paddle weights found (expected *.pdparams, *.pdmodel + *.pdiparams "
            "or *.json + *.pdiparams)")
    if p.is_file():
        if p.suffix in (".pdparams", ".pdmodel", ".json", ".pdiparams"):
            prefix = p.with_suffix("")
        elif p.name.endswith(".pdiparams.info"):
            prefix = p.with_name(p.name[: -len(".pdiparams.info")])
        else:
            raise FormatError(f"{path}: not a Paddle weights file (unknown extension {p.suffix!r})")
    else:
        prefix = p
    files = sorted(prefix.parent.glob(prefix.name + ".*"))
    found = _by_prefix([f for f in files if f.with_suffix("") == prefix
                        or f.name.startswith(prefix.name + ".pdiparams")])
    if not found and not files:
        raise FormatError(f"{path}: no such file or directory")
    if not found:
        raise FormatError(f"{path}: no Paddle weights found with this prefix")
    return found


def _by_prefix(files):
    by_suffix = {}
    for f in files:
        name = f.name
        if name.endswith(".pdiparams.info"):
            by_suffix.setdefault(name[: -len(".pdiparams.info")], {})["info"] = f
        else:
            by_suffix.setdefault(f.stem, {})[f.suffix] = f
    for prefix, group in sorted(by_suffix.items()):
        if ".pdmodel" in group and ".pdiparams" in group:
            return "pdmodel", {"program": group[".pdmodel"], "params": group[".pdiparams"],
                               "info": group.get("info")}
        if ".json" in group and ".pdiparams" in group:
            return "pir", {"program": group[".json"], "params": group[".pdiparams"]}
    for prefix, group in sorted(by_suffix.items()):
        if ".pdparams" in group:
            return "pdparams", {"params": group[".pdparams"]}
    for prefix, group in sorted(by_suffix.items()):
        if ".pdiparams" in group:
            raise FormatError(f"{group['.pdiparams']}: found without its program "
                              f"({prefix}.pdmodel or {prefix}.json)")
    return None


def read(path, submodel=None):
    """Read Paddle weights from ``path`` (directory or file prefix) into PaddleWeights."""
    fmt, files = locate(path)
    if fmt == "pdparams":
        weights = _read_pdparams(files["params"], submodel)
    else:
        weights = _read_inference(fmt, files)
    yml = Path(files["params"]).parent / "inference.yml"
    if yml.is_file():
        weights.inference_yml = _read_yaml(yml)
    return weights


def _read_yaml(path):
    import yaml

    try:
        return yaml.safe_load(_read_bytes(path)) or {}
    except yaml.YAMLError as exc:
        raise FormatError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None


def _read_pdparams(path, submodel):
    tensors = parse_pdparams(_read_bytes(path), str(path))
    tensors, chosen = select_submodel(tensors, submodel, str(path))
    return PaddleWeights("pdparams", tensors, True, files=[Path(path)], submodel=chosen)


def parse_pdparams(data, what="pdparams"):
    """name -> array of a training checkpoint's bytes (restricted unpickling)."""
    obj = safe_load(data, what=what)
    if not isinstance(obj, dict):
        raise FormatError(f"{what}: expected a dict of name -> array, found {type(obj).__name__}")
    # Non-array entries are Paddle's own bookkeeping (StructuredToParameterName@@).
    tensors = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, np.ndarray)}
    if not tensors:
        raise FormatError(f"{what}: holds no arrays (not a Paddle state dict)")
    return tensors


def parse_info(data, what="pdiparams.info"):
    """variable name -> structured name of an inference model's .pdiparams.info bytes."""
    info = safe_load(data, what=what)
    if not isinstance(info, dict):
        raise FormatError(f"{what}: expected a dict of variable -> structured name")
    names = {}
    for var, meta in info.items():
        name = meta.get("structured_name") if isinstance(meta, dict) else None
        if isinstance(var, str) and isinstance(name, str):
            names[var] = name
    return names


def select_submodel(tensors, submodel, what):
    """Distillation checkpoints prefix each model's names (Student., Teacher., ...)."""
    firsts = {name.split(".", 1)[0] for name in tensors}
    # PaddleClas networks (PP-LCNet) name their layers at the top level (conv1., blocks2., fc.):
    # prefixed only when every name sits under a sub-model that holds a whole network.
    nested = all(len(p) > 2 and (p[0] in DISTILL_PREFIXES or p[1] in TOP_LEVEL)
                 for p in (name.split(".", 2) for name in tensors))
    if firsts & set(TOP_LEVEL) or len(firsts) == len(tensors) or not nested:
        if submodel:
            raise FormatError(f"{what}: not a distillation checkpoint; --submodel {submodel} "
                              "does not apply")
        return tensors, None
    available = sorted(firsts)
    chosen = submodel or ("Student" if "Student" in firsts else None)
    if chosen is None or chosen not in firsts:
        raise FormatError(f"{what}: distillation checkpoint; choose --submodel from "
                          f"{', '.join(available)}")
    prefix = chosen + "."
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}, chosen


def _read_inference(fmt, files):
    program_bytes = _read_bytes(files["program"])
    if fmt == "pdmodel":
        program = parse_pdmodel(program_bytes, what=str(files["program"]))
    else:
        program = parse_pir(program_bytes, what=str(files["program"]))
    arrays = read_tensors(_read_bytes(files["params"]), count=len(program.params),
                          what=str(files["params"]))
    tensors = {}
    for (name, (shape, _)), array in zip(program.params.items(), arrays):
        if tuple(array.shape) != tuple(shape):
            raise FormatError(f"{files['params']}: tensor {name} has shape {list(array.shape)}, "
                              f"the program declares {list(shape)}")
        tensors[name] = array
    read_files = [Path(files["program"]), Path(files["params"])]
    var_names = {}
    if files.get("info"):
        info = parse_info(_read_bytes(files["info"]), what=str(files["info"]))
        var_names = {name: var for var, name in info.items() if var in tensors}
        read_files.append(Path(files["info"]))
    if var_names and len(var_names) == len(tensors):
        structured = {s: tensors[v] for s, v in var_names.items()}
        # keep program (file) order
        order = {v: i for i, v in enumerate(tensors)}
        structured = dict(sorted(structured.items(), key=lambda kv: order[var_names[kv[0]]]))
        return PaddleWeights(fmt, structured, True, program, var_names, read_files)
    return PaddleWeights(fmt, tensors, False, program, {}, read_files)
