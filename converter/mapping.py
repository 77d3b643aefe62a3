"""The mapping engine: one code path that turns PaddleWeights into a torch state_dict.

Architecture knowledge lives in data (``mappings/<arch>.yaml``): the PaddleOCR Architecture
config, rename rules, parameters to ignore, hyperparameters to read from the weights, the
canonical inputs and the parity tolerance. The engine applies them with strict accounting:
every Paddle tensor is used once or explicitly ignored, every torch tensor is filled, every
shape checked; anything else is an error that lists the names on both sides.
"""

import os
import copy
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import MappingError, PtocrError

MAPPINGS_DIR = Path(__file__).resolve().parent.parent / "mappings"
RULES_FILE = "_rules.yaml"
PROCESSING_FILE = "_processing.yaml"

# Renames every architecture gets: Paddle's BatchNorm buffer names.
BASE_RENAMES = [(r"\._mean$", ".running_mean"), (r"\._variance$", ".running_var")]

# For models without structured names: the Paddle ops that may first consume each kind of
# torch module's tensors (checked when aligning by program order).
OP_TYPES = {
    nn.Conv2d: {"conv2d", "depthwise_conv2d", "elementwise_add", "add"},
    nn.ConvTranspose2d: {"conv2d_transpose", "depthwise_conv2d_transpose", "elementwise_add",
                         "add"},
    nn.BatchNorm2d: {"batch_norm", "batch_norm_"},
    nn.BatchNorm1d: {"batch_norm", "batch_norm_"},
    nn.Linear: {"matmul", "matmul_v2", "elementwise_add", "add", "fc"},
    nn.LayerNorm: {"layer_norm"},
    nn.Embedding: {"lookup_table_v2", "embedding"},
    nn.GRUCell: {"matmul", "matmul_v2", "elementwise_add", "add"},
    nn.LSTMCell: {"matmul", "matmul_v2", "elementwise_add", "add"},
}
# Order in which Paddle's ops consume a module's tensors, where it differs from torch's
# registration order (batch_norm takes mean and variance before scale and bias).
PADDLE_USE_ORDER = {
    nn.BatchNorm2d: ["running_mean", "running_var", "weight", "bias"],
    nn.BatchNorm1d: ["running_mean", "running_var", "weight", "bias"],
    # GRUCell: x @ weight_ih + bias_ih, then h @ weight_hh + bias_hh
    nn.GRUCell: ["weight_ih", "bias_ih", "weight_hh", "bias_hh"],
    nn.LSTMCell: ["weight_ih", "bias_ih", "weight_hh", "bias_hh"],  # as GRUCell (SPIN)
    # the rnn op takes every weight (layer by layer, forward then reverse), then every bias
    nn.LSTM: lambda names: ([n for n in names if n.startswith("weight")]
                            + [n for n in names if n.startswith("bias")]),
}


def _by_class(table, cls):
    """``table``'s entry for a module class or its nearest base (a BatchNorm2d with a fused
    activation is a BatchNorm2d to the program); None for a tensor held by a parent module."""
    for base in getattr(cls, "__mro__", ()):
        if base in table:
            return table[base]
    return None


@dataclass
class ArchSpec:
    name: str
    task: str
    architecture: dict
    aliases: list = field(default_factory=list)
    description: str = ""
    renames: list = field(default_factory=list)  # [(regex, replacement)]
    ignore: list = field(default_factory=list)  # regexes of Paddle names not used for inference
    infer: dict = field(default_factory=dict)
    inputs: dict = field(default_factory=dict)
    tolerance: dict = field(default_factory=lambda: {"max_abs": 1e-4})
    # what the table's parity rests on, in one vocabulary (tests/test_paddle_names.py): "real weights",
    # "paddle twin [(forms)]", "PaddleNLP code [(forms)]", "op-level", "names", joined by " + ";
    # forms of the Paddle side proven: 2.x, PIR (exports), pdparams, dygraph (no program)
    proof: str = "op-level + names"
    model_names: list = field(default_factory=list)  # inference.yml Global.model_name values
    dictionary: str = None  # rec: standard dictionary file (dicts/) or inference.yml
    use_space_char: bool = False
    dict_special_tokens: int = 1  # classes besides the dictionary (CTC: blank; see dictionary.py)
    processing: dict = None  # {PreProcess, PostProcess} in PaddleOCR's schema, or None
    # what weights must show before --arch auto / inspect build this table's (large) network:
    # {names: REGEX one Paddle name matches, ops: [program op types, one of them used]}
    requires: dict = field(default_factory=dict)
    no_program: str = None  # why no Paddle inference program exists (SEED), or None
    # why the program retyped to float64 is not the function it computes in float32 (the
    # verdict then falls back to the float32 rule), or None
    no_float64: str = None
    path: Path = None


_YAML_CACHE = {}


def _load_yaml(path):
    """Parsed YAML (libyaml when present); tables are read many times per process (--arch
    auto builds every table), so the parse is kept per (path, mtime, size) and copied out."""
    import copy

    import yaml

    stat = os.stat(path)
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    if key not in _YAML_CACHE:
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        with open(path, encoding="utf-8") as fh:
            _YAML_CACHE[key] = yaml.load(fh, Loader=loader) or {}
    return copy.deepcopy(_YAML_CACHE[key])


def _shared_rules():
    path = MAPPINGS_DIR / RULES_FILE
    return _load_yaml(path) if path.is_file() else {}


def _processing_presets():
    path = MAPPINGS_DIR / PROCESSING_FILE
    return _load_yaml(path) if path.is_file() else {}


def apply_processing_params(processing, params):
    """A copy of ``processing`` with {OpName: {param: value}} set on the operators (pre- or
    post-processing) of those class names; unknown operator names are an error."""
    processing = copy.deepcopy(processing)
    ops = {}
    for entry in (processing.get("PreProcess") or {}).get("transform_ops", []):
        if isinstance(entry, dict):
            (name, op_params), = entry.items()
            if op_params is None:
                entry[name] = op_params = {}
            ops[name] = op_params
    post = processing.get("PostProcess")
    if post:
        ops[post["name"]] = post
    for name, values in (params or {}).items():
        if name not in ops:
            raise PtocrError(f"processing has no operator {name} (it has {', '.join(ops)})")
        ops[name].update(values)
    return processing


def resolve_processing(data, path=None):
    """A table's processing: its own PreProcess/PostProcess sections, else the preset it names
    (``processing: {use: NAME, params: {...}}``); None when it declares none."""
    if "PreProcess" in data or "PostProcess" in data:
        return {k: copy.deepcopy(data[k]) for k in ("PreProcess", "PostProcess", "Match")
                if k in data}
    ref = data.get("processing")
    if not ref:
        return None
    presets = _processing_presets()
    if ref.get("use") not in presets:
        raise PtocrError(f"{path}: unknown processing preset {ref.get('use')!r}")
    return apply_processing_params(presets[ref["use"]], ref.get("params"))


def spec_from_dict(data, path=None):
    shared = _shared_rules()
    rules = data.get("rules") or {}
    renames = []
    for ref in rules.get("use", []):
        if ref not in shared:
            raise PtocrError(f"{path}: unknown rule set {ref!r}")
        renames += [tuple(r) for r in shared[ref]]
    renames += [tuple(r) for r in rules.get("rename", [])]
    return ArchSpec(
        name=data["name"], task=data["task"], architecture=data["Architecture"],
        aliases=data.get("aliases", []), description=data.get("description", ""),
        renames=renames, ignore=rules.get("ignore", []), infer=data.get("infer", {}),
        inputs=data.get("inputs", {}), tolerance=data.get("tolerance", {"max_abs": 1e-4}),
        proof=data.get("proof", "op-level + names"), model_names=data.get("model_names", []),
        dictionary=data.get("dict"), use_space_char=data.get("use_space_char", False),
        dict_special_tokens=data.get("dict_special_tokens", 1),
        processing=resolve_processing(data, path), requires=data.get("requires") or {},
        no_program=data.get("no_program"), no_float64=data.get("no_float64"), path=path)


def list_archs():
    """All architecture specs shipped in mappings/, by name."""
    specs = {}
    for path in sorted(MAPPINGS_DIR.glob("*.yaml")):
        if not path.name.startswith("_"):  # _rules, _zoo, _processing are not architectures
            spec = spec_from_dict(_load_yaml(path), path)
            specs[spec.name] = spec
    return specs


def find_arch(name):
    """A shipped table by name or alias, or a user's own table given as a .yaml path."""
    if str(name).endswith((".yaml", ".yml")):
        path = Path(name)
        if not path.is_file():
            raise PtocrError(f"{path}: no such file or directory")
        try:
            return spec_from_dict(_load_yaml(path), path)
        except (KeyError, TypeError, AttributeError) as exc:
            raise PtocrError(f"{path}: not an architecture table ({exc})") from None
    wanted = name.lower()
    specs = list_archs()
    for spec in specs.values():
        if wanted == spec.name.lower() or wanted in (a.lower() for a in spec.aliases):
            return spec
    raise PtocrError(f"unknown architecture {name!r}; `ptocr archs` lists the known ones")


def _set_path(cfg, dotted, value):
    node = cfg
    keys = dotted.split(".")
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node[keys[-1]] = value


def _get_path(cfg, dotted):
    node = cfg
    for key in dotted.split("."):
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def resolve_config(spec, weights, architecture=None):
    """The Architecture config with hyperparameters the config leaves open read from weights.

    ``infer`` entries: ``{present: REGEX}`` (true when a Paddle name matches),
    ``{shape: NAME, dim: D[, offset: K]}`` (a dimension of a named tensor, plus K),
    ``{count: REGEX}`` (how many distinct values REGEX's first group takes: layers), each with an
    ``unstructured``
    value used for program models that carry no structured names (see _unstructured_value).
    """
    arch = copy.deepcopy(architecture or spec.architecture)
    names = _renamed_names(spec, weights) if weights.structured else None
    for dotted, rule in spec.infer.items():
        if _get_path(arch, dotted) is not None and architecture is None and "present" not in rule:
            continue
        if names is None:
            if "unstructured" in rule:
                _set_path(arch, dotted, _unstructured_value(rule["unstructured"], weights))
            continue
        if "present" in rule:
            pattern = re.compile(rule["present"])
            _set_path(arch, dotted, any(pattern.search(n) for n in names))
        elif "count" in rule:
            pattern = re.compile(rule["count"])
            found = {m.group(1) for m in map(pattern.search, names) if m}
            if found:
                _set_path(arch, dotted, len(found))
        elif "shape" in rule:
            if rule["shape"] in names:
                value = int(names[rule["shape"]].shape[rule.get("dim", 0)]) + rule.get("offset", 0)
                _set_path(arch, dotted, value)
    return arch


def _unstructured_value(rule, weights):
    """A hyperparameter for weights without structured names: a literal, or
    ``{last_param_dim: D[, offset: K][, skip: S]}``, dimension D of the parameter the program
    uses last (the classifier of rec/cls heads; with ``skip``, the one S parameters before the
    last), plus K."""
    if isinstance(rule, dict) and "last_param_dim" in rule:
        if weights.program is None:
            raise MappingError("cannot read the class count: no program")
        last = list(weights.program.first_use())[-1 - rule.get("skip", 0)]
        shape = weights.tensors[last].shape
        if rule["last_param_dim"] >= len(shape):  # another family's classifier layout
            raise MappingError(f"the program's last parameter {last} {list(shape)} has no "
                               f"dimension {rule['last_param_dim']}")
        return int(shape[rule["last_param_dim"]]) + rule.get("offset", 0)
    return rule


def _rename(name, renames):
    for pattern, repl in BASE_RENAMES + renames:
        name = re.sub(pattern, repl, name)
    return name


def _renamed_names(spec, weights):
    return {_rename(n, spec.renames): a for n, a in weights.tensors.items()}


def _torch_targets(model):
    """name -> (tensor, owning module class) for every parameter and persistent buffer."""
    owners = {}
    for mod_name, module in model.named_modules():
        for t_name, _ in list(module.named_parameters(recurse=False)) + list(
                module.named_buffers(recurse=False)):
            full = f"{mod_name}.{t_name}" if mod_name else t_name
            owners[full] = type(module)
    state = model.state_dict()
    return {n: (t, owners.get(n)) for n, t in state.items() if not n.endswith("num_batches_tracked")}


def _paddle_unused(model):
    """Full names of Paddle parameters the torch blocks deliberately do not hold."""
    out = set()
    for mod_name, module in model.named_modules():
        if hasattr(module, "paddle_unused"):
            prefix = f"{mod_name}." if mod_name else ""
            out.update(prefix + n for n in module.paddle_unused())
    return out


def to_torch_layout(array, owner, torch_name):
    """Paddle layout -> torch layout for one tensor (Linear weights are [in, out] in Paddle)."""
    if owner is nn.Linear and torch_name.endswith("weight") and array.ndim == 2:
        return array.T
    return array


@dataclass
class MappingReport:
    mapped: int = 0
    ignored: list = field(default_factory=list)
    method: str = "names"
    filled: list = field(default_factory=list)


def map_weights(weights, model, spec, example_input=None):
    """A torch state_dict for ``model`` from ``weights``, or MappingError listing every problem."""
    targets = _torch_targets(model)
    if weights.structured:
        state, report = _map_by_name(weights, targets, model, spec)
    else:
        state, report = _map_by_program(weights, targets, model, spec, example_input)
    for name, tensor in model.state_dict().items():
        if name.endswith("num_batches_tracked"):
            state[name] = torch.zeros_like(tensor)
    return state, report


def _map_by_name(weights, targets, model, spec, rename=None, fill=(), paddle_layout=True):
    """``rename`` (default: the table's rules) turns a source name into a target name;
    ``fill`` [(regex, value)] gives target tensors no source holds a constant value (tensors
    a target network keeps that the source never had, e.g. a transformers model's branches
    of a fused layer); what they fill is listed in the report."""
    unused = _paddle_unused(model)
    ignore = [re.compile(p) for p in spec.ignore]
    state, report = {}, MappingReport(method="names")
    unmatched, conflicts = [], []
    for paddle_name, array in weights.tensors.items():
        name = rename(paddle_name) if rename else _rename(paddle_name, spec.renames)
        if name in targets and name not in state:
            tensor, owner = targets[name]
            if paddle_layout:
                array = to_torch_layout(array, owner, name)
            if tuple(array.shape) != tuple(tensor.shape):
                conflicts.append(f"{paddle_name} {list(array.shape)} -> {name} "
                                 f"{list(tensor.shape)}")
                continue
            state[name] = torch.from_numpy(np.ascontiguousarray(array))
        elif name in unused or any(p.search(paddle_name) or p.search(name) for p in ignore):
            report.ignored.append(paddle_name)
        else:
            unmatched.append(paddle_name if name == paddle_name else f"{paddle_name} (as {name})")
    fill = [(re.compile(p), v) for p, v in fill]
    for name, (tensor, _owner) in targets.items():
        value = next((v for p, v in fill if name not in state and p.search(name)), None)
        if value is not None:
            state[name] = torch.full_like(tensor, float(value))
            report.filled.append(name)

    for name in _paddle_computed(model):  # exports hold them, training checkpoints do not
        if name in targets and name not in state:
            state[name] = targets[name][0].detach().clone()
    missing = [n for n in targets if n not in state]
    _raise_if_problems(unmatched, missing, conflicts, spec.name)
    report.mapped = len(state) - len(report.filled)
    return state, report


def map_named(tensors, model, name, rename, fill=(), ignore=()):
    """A state_dict for ``model`` from named tensors (name -> array) of another framework's
    naming, with the same strict accounting as a Paddle conversion: ``rename`` maps each
    source name to a target name, ``fill`` [(regex, value)] sets target tensors no source
    holds, ``ignore`` [regex] source tensors the target does not hold. Both sides are in
    torch's layout (no Paddle Linear transpose)."""
    from types import SimpleNamespace

    spec = ArchSpec(name=name, task="", architecture={}, ignore=list(ignore))
    source = SimpleNamespace(tensors=tensors, structured=True)
    state, report = _map_by_name(source, _torch_targets(model), model, spec, rename, fill,
                                 paddle_layout=False)
    for key, tensor in model.state_dict().items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.zeros_like(tensor)
    return state, report


def _paddle_computed(model):
    """Persistent buffers a module computes from its configuration that Paddle keeps as plain
    tensors (STN's TPS matrices): an export stores Paddle's values (taken from there), a
    training checkpoint does not (the module's own values stay): ``paddle_computed``."""
    return {f"{mod_name}.{n}" if mod_name else n
            for mod_name, module in model.named_modules()
            for n in getattr(module, "paddle_computed", ())}


def _raise_if_problems(unmatched, missing, conflicts, arch, extra=""):
    if not (unmatched or missing or conflicts):
        return
    parts = []
    for label, items in (("Paddle tensors with no torch counterpart", unmatched),
                         ("torch tensors not filled", missing), ("shape conflicts", conflicts)):
        if items:
            shown = ", ".join(items[:8]) + (f", ... ({len(items) - 8} more)" if len(items) > 8 else "")
            parts.append(f"{label} ({len(items)}): {shown}")
    raise MappingError(f"weights do not fit {arch}{extra} (`ptocr inspect` names the "
                       "architecture they match) — " + "; ".join(parts))


def torch_use_order(model, example_input):
    """Torch tensor names in the order the forward pass first uses them: a leaf module's
    tensors when the module is first called (in PaddleOCR's order within the module), and the
    tensors a module holds beside its children (SVTRNet's pos_embed, ViTSTR's cls_token) at
    the first op that reads them, which may come after a child ran."""
    from torch.overrides import TorchFunctionMode

    order, hooks = [], []
    seen = set()

    def hook(module, _inputs):
        if id(module) not in seen:
            seen.add(id(module))
            order.append(("module", module))

    names, watched = {}, {}
    for mod_name, module in model.named_modules():
        direct = [n for n, _ in module.named_parameters(recurse=False)] + [
            n for n, _ in module.named_buffers(recurse=False) if n != "num_batches_tracked"]
        if not direct:
            continue
        has_children = any(True for _ in module.children())
        if has_children:  # ordered by the ops that read them
            for n in direct:
                watched[id(getattr(module, n))] = f"{mod_name}.{n}" if mod_name else n
                hooks.append(None)
            continue
        names[id(module)] = (mod_name, direct)
        hooks.append(module.register_forward_pre_hook(hook))

    class Watch(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            for a in list(args) + list((kwargs or {}).values()):
                key = id(a)
                if key in watched and key not in seen:
                    seen.add(key)
                    order.append(("tensor", watched[key]))
            return func(*args, **(kwargs or {}))

    was_training = model.training
    try:
        model.eval()
        with torch.no_grad(), Watch():
            # a list: the program's inputs (image first), as positional arguments
            model(*(example_input if isinstance(example_input, (list, tuple))
                    else [example_input]))
    finally:
        for h in hooks:
            if h is not None:
                h.remove()
        model.train(was_training)
    out = []
    for kind, item in order:
        if kind == "tensor":
            out.append((item, None))
            continue
        mod_name, direct = names[id(item)]
        preferred = _by_class(PADDLE_USE_ORDER, type(item))
        if callable(preferred):
            preferred = preferred(direct)
        if preferred:
            direct = [n for n in preferred if n in direct] + [n for n in direct if n not in preferred]
        out += [(f"{mod_name}.{n}" if mod_name else n, type(item)) for n in direct]
    return out


def _program_constants(model):
    """Non-persistent buffers that Paddle programs nevertheless store as persistable tensors
    (tensors a layer builds in __init__ and keeps as a plain attribute, e.g. SVTR's Local
    attention mask): a module lists them in ``paddle_constants``."""
    out = {}
    for mod_name, module in model.named_modules():
        for n in getattr(module, "paddle_constants", ()):
            if getattr(module, n, None) is not None:
                out[f"{mod_name}.{n}" if mod_name else n] = getattr(module, n)
    return out


def _map_by_program(weights, targets, model, spec, example_input):
    if weights.program is None:
        raise MappingError("weights carry neither structured names nor a program to align by")
    if example_input is None:
        raise MappingError("aligning by program order needs an example input")
    paddle_order = list(weights.program.first_use().items())
    constants = _program_constants(model)
    torch_order = [(n, owner) for n, owner in torch_use_order(model, example_input)
                   if n in targets or n in constants]
    state, report = {}, MappingReport(method="program order")
    conflicts = []
    for i, ((pname, (op_type, _slot)), (tname, owner)) in enumerate(zip(paddle_order, torch_order)):
        if tname in constants:  # a tensor the program stores, fixed by the config: must agree
            if not np.array_equal(weights.tensors[pname], constants[tname].numpy()):
                conflicts.append(f"#{i} {pname} ({op_type}) differs from the constant {tname}")
            continue
        array = to_torch_layout(weights.tensors[pname], owner, tname)
        tensor = targets[tname][0]
        allowed = _by_class(OP_TYPES, owner)
        if tuple(array.shape) != tuple(tensor.shape) or (allowed and op_type not in allowed):
            conflicts.append(f"#{i} {pname} ({op_type}, {list(array.shape)}) -> {tname} "
                             f"({getattr(owner, '__name__', 'held by a parent module')}, "
                             f"{list(tensor.shape)})")
            if len(conflicts) >= 3:
                break  # after the first misalignment everything after it is off too
            continue
        state[tname] = torch.from_numpy(np.ascontiguousarray(array))
    unmatched = [p for p, _ in paddle_order[len(torch_order):]]
    missing = [t for t, _ in torch_order[len(paddle_order):]] + [
        t for t in targets if t not in dict(torch_order)]
    unused_by_program = [n for n in weights.tensors if n not in dict(paddle_order)]
    _raise_if_problems(unmatched + unused_by_program, missing, conflicts, spec.name,
                       extra=" (aligned by program order)")
    report.mapped = len(state)
    return state, report


def program_alignment(weights, model, example_input):
    """{torch tensor name: program variable} as program-order alignment pairs them (the
    verifier's localiser uses it on programs without structured names)."""
    targets, constants = _torch_targets(model), _program_constants(model)
    paddle_order = list(weights.program.first_use())
    torch_order = [n for n, _ in torch_use_order(model, example_input)
                   if n in targets or n in constants]
    return dict(zip(torch_order, paddle_order))

def _may_fit(spec, weights):
    """False when the weights lack what the table ``requires`` (cheap, before building)."""
    req = spec.requires
    if not req:
        return True
    if weights.structured and req.get("names"):
        pattern = re.compile(req["names"])
        return any(pattern.search(n) for n in _renamed_names(spec, weights))
    if not weights.structured and req.get("ops") and weights.program is not None:
        used = {op for op, _slot in weights.program.first_use().values()}
        return bool(used & set(req["ops"]))
    return True


def match_archs(weights, task=None):
    """{name: resolved Architecture config} of the tables these weights convert to without a
    mapping error (only tables of ``task`` when given). A model name in the export's
    inference.yml is taken at its word when a table claims it."""
    from ..models import build

    yml = weights.inference_yml or {}
    model_name = (yml.get("Global") or {}).get("model_name")
    specs = {n: s for n, s in list_archs().items() if task is None or s.task == task}
    if model_name:
        named = {s.name: resolve_config(s, weights) for s in specs.values()
                 if model_name in s.model_names}
        if named:
            return named
    matches = {}
    for spec in specs.values():
        if not _may_fit(spec, weights):
            continue
        try:
            config = resolve_config(spec, weights)
            model = build(config)
            from .convert import example_input

            map_weights(weights, model, spec, example_input(spec))
        except (PtocrError, KeyError, TypeError, ValueError, RuntimeError,
                NotImplementedError):
            continue  # does not fit this table
        matches[spec.name] = config
    return matches
