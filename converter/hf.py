"""The bridge to Hugging Face transformers' own PaddleOCR classes (``ptocr[hf]``).

transformers ships PaddlePaddle's torch ports (``PPOCRV5MobileDetForObjectDetection``, ...).
Their parameter names are one more rename table: a table's ``transformers:`` section names
the class and config, and lists rule sets of ``_rules.yaml`` (ptocr name -> HF name) that the
mapping engine applies with its usual strict accounting. The same rules read both ways:

* ptocr -> transformers (``to_transformers``): the HF config is written from the ptocr
  Architecture and the weights (``params``, ``shapes``; ``deploy`` overrides for fused
  models), the state_dict renamed, HF tensors ptocr does not hold set by ``fill`` rules;
  blocks transformers holds multiplied out (``compose``: PP-OCRv6 medium's DilatedReparamConv
  as one dense conv) are computed, and factored back on the way in;
* transformers -> ptocr (``load_folder``): the ptocr Architecture is read back from the HF
  config, the ptocr model built in the training form, and each of its names renamed forward
  to find its HF tensor.
"""

import copy
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from ..errors import MappingError, PtocrError
from .mapping import (_paddle_unused, _rename, _set_path, _shared_rules, list_archs,
                      map_named)

PTOCR_FILE = "ptocr.json"  # ptocr's own record in a folder it wrote (arch, dictionary, parity)
PREPROCESSOR_FILE = "preprocessor_config.json"
# tensors of the ptocr model that transformers' class does not hold (a table's `ptocr_only`:
# SLANet's cell-location branch), kept beside model.safetensors so the folder loads back whole
PTOCR_ONLY_FILE = "ptocr_only.safetensors"


def _transformers():
    try:
        import transformers
    except ImportError:
        raise PtocrError("transformers is not installed (pip install 'ptocr[hf]')") from None
    return transformers


def section(spec):
    """A table's ``transformers:`` section, or an error naming the architecture."""
    from .mapping import _load_yaml

    data = _load_yaml(spec.path) if spec.path else {}
    hf = data.get("transformers")
    if isinstance(hf, dict) and "use" in hf:  # a table of the same network (v4 = v5 mobile)
        from .mapping import find_arch

        hf = {**section(find_arch(hf["use"])), "shared_from": hf["use"]}
    if not hf:
        raise PtocrError(f"{spec.name}: transformers has no class for this architecture "
                         "(`ptocr archs` marks the ones that have)")
    return hf


def has_transformers(spec):
    try:
        section(spec)
    except PtocrError:
        return False
    return True


def _rules(hf, key):
    shared = _shared_rules()
    out = []
    for ref in hf.get(key, []):
        if ref not in shared:
            raise PtocrError(f"transformers section: unknown rule set {ref!r}")
        out += [tuple(r) for r in shared[ref]]
    return out


def _get(node, dotted):
    """A value at a dotted path whose parts may index lists (``head_list.0.CTCHead``)."""
    for key in dotted.split("."):
        if isinstance(node, list) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        elif isinstance(node, dict) and key in node:
            node = node[key]
        else:
            return None
    return node


def _set(node, dotted, value):
    keys = dotted.split(".")
    for key in keys[:-1]:
        node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
    if isinstance(node, list):
        node[int(keys[-1])] = value
    else:
        node[keys[-1]] = value


def hf_config(spec, arch, state):
    """The HF config dict for a ptocr model (its Architecture and state_dict)."""
    hf = section(spec)
    cfg = copy.deepcopy(hf.get("config") or {})
    cfg["model_type"] = hf["model_type"]
    for hf_key, ptocr_key in (hf.get("params") or {}).items():
        value = _get(arch, ptocr_key)
        if value is not None:
            _set_path(cfg, hf_key, value)
    for hf_key, (pattern, dim) in (hf.get("shapes") or {}).items():
        rx = re.compile(pattern)
        _set_path(cfg, hf_key, [int(t.shape[dim]) for n, t in state.items() if rx.search(n)])
    labels = cfg.get("id2label")
    if labels is not None and cfg.get("num_labels", len(labels)) != len(labels):
        del cfg["id2label"]  # a fine-tuned classifier with other classes: generic labels
    if (arch.get("Backbone") or {}).get("deploy"):
        for hf_key, value in (hf.get("deploy") or {}).items():
            _set_path(cfg, hf_key, value)
    cfg["architectures"] = [hf["class"]]
    return cfg


def build_hf(hf, cfg):
    """The transformers model (eval mode, random init) of a config dict."""
    config = _config_object(hf, cfg)
    try:
        return getattr(_transformers(), hf["class"])(config).eval()
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PtocrError(f"transformers cannot build {hf['class']} from this config: "
                         f"{first}") from None


def _config_object(hf, cfg):
    transformers = _transformers()
    cfg = copy.deepcopy(cfg)
    cfg.pop("architectures", None)
    model_type = cfg.pop("model_type", hf["model_type"])
    if model_type != hf["model_type"]:
        raise PtocrError(f"config model_type {model_type!r} is not {hf['model_type']!r}")
    for key in ("transformers_version", "torch_dtype", "dtype"):
        cfg.pop(key, None)
    try:
        return transformers.AutoConfig.for_model(model_type, **cfg)
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PtocrError(f"transformers cannot read this {model_type} config: {first}") from None


def to_transformers(model, arch, spec, user_config=None):
    """(HF model with the ptocr model's weights, its config dict); ``arch`` is the ptocr
    model's Architecture. ``user_config`` (a
    config.json dict, e.g. from the Hub) replaces the one written from the weights; one that
    does not fit them is a MappingError naming the tensors, raised before anything is
    written. The tensors the table's ``ptocr_only`` patterns name (transformers' class has no
    place for them) are set aside as ``hf_model.ptocr_only_state`` for ``write_folder``."""
    hf = section(spec)
    model = _fused(model, hf, copy_first=True)
    model, _composed_blocks = _composed(model, hf, copy_first=not hf.get("fuse"))
    drop = [re.compile(p) for p in hf.get("drop") or ()]  # training-only branches
    state = {k: v for k, v in model.state_dict().items()
             if not k.endswith("num_batches_tracked") and not any(p.search(k) for p in drop)}
    state = _padding_rows_zeroed(model, state)
    cfg = hf_config(spec, arch, state)
    if user_config is not None:
        cfg = {**copy.deepcopy(user_config), "architectures": [hf["class"]]}
    hf_model = build_hf(hf, cfg)
    renames = _rules(hf, "rules")
    tensors = {k: v.detach().cpu().numpy() for k, v in state.items()}
    only = [re.compile(p) for p in hf.get("ptocr_only") or ()]
    try:
        new_state, _report = map_named(tensors, hf_model, f"{hf['class']}",
                                       lambda n: _rename(n, renames), _rules(hf, "fill"),
                                       ignore=[p.pattern for p in only])
    except MappingError as exc:
        raise MappingError(f"the transformers config does not fit the weights: {exc}") from None
    hf_model.load_state_dict(new_state, strict=True)
    hf_model.ptocr_only_state = {k: v.detach().clone() for k, v in state.items()
                                 if any(p.search(k) for p in only)}
    return hf_model.eval(), cfg


def _padding_rows_zeroed(model, state):
    """Paddle's embedding lookup of its padding_idx gives zeros whatever the row holds;
    torch's (transformers') reads the row: the row is written as zeros, so both agree."""
    from ..models.layers import PaddleEmbedding

    state = dict(state)
    for name, module in model.named_modules():
        if isinstance(module, PaddleEmbedding) and module.padding_idx is not None:
            weight = state[f"{name}.weight"].clone()
            weight[module.padding_idx] = 0
            state[f"{name}.weight"] = weight
    return state


def _fused(model, hf, copy_first=False):
    """The model with the blocks the section's ``fuse`` names re-parameterized (transformers
    holds some rep blocks fused, e.g. PPLCNetV4's RepDWConv, and the rest unfused)."""
    kinds = set(hf.get("fuse") or ())
    if not kinds:
        return model
    if copy_first:
        model = copy.deepcopy(model)
    for module in list(model.modules()):
        if type(module).__name__ in kinds:
            module.reparameterize()
    return model


# ---- computed transforms (a table's ``compose``): blocks transformers holds multiplied out

def _dense_dilated_reparam_conv(block):
    """A deploy-form DilatedReparamConv (depthwise kxk conv with bias, then 1x1 conv with
    bias; no activation between them) as the one dense kxk conv it equals:
    W[o, i] = P[o, i] * D[i], b = P @ b_dw + b_pw. Exact at the borders too: the zero
    padding is the depthwise conv's and the 1x1 conv is pointwise."""
    dw, pw = block.dw.lk_origin, block.pw
    depth, point = dw.weight.detach().double(), pw.weight.detach().double()[:, :, 0, 0]
    weight = point[:, :, None, None] * depth[:, 0][None]
    bias = point @ dw.bias.detach().double() + pw.bias.detach().double()
    conv = torch.nn.Conv2d(dw.in_channels, pw.out_channels, dw.kernel_size,
                           padding=dw.padding, bias=True, dtype=dw.weight.dtype)
    with torch.no_grad():
        conv.weight.copy_(weight.to(dw.weight.dtype))
        conv.bias.copy_(bias.to(dw.weight.dtype))
    return conv


def _factor_dilated_reparam_conv(block, conv, name):
    """The dense conv back into ``block``'s depthwise and 1x1 convs: each input channel's
    [out, k*k] slice of the kernel must be rank one (P[:, i] times D[i]); one that is not
    (a kernel trained as a dense conv) is refused. D[i] is the slice's largest row, the dw
    bias zero, the 1x1 bias the dense bias."""
    w = conv.weight.detach().double()
    out_c, in_c = w.shape[:2]
    m = w.reshape(out_c, in_c, -1)
    norms = m.norm(dim=2)  # [out, in]
    top = norms.argmax(dim=0)  # per input channel, the row with the largest norm
    depth = m[top, torch.arange(in_c)]  # [in, k*k]
    sq = (depth * depth).sum(dim=1)
    point = torch.einsum("oik,ik->oi", m, depth) / torch.where(sq > 0, sq, torch.ones_like(sq))
    residual = (point[:, :, None] * depth[None] - m).abs().max().item()
    scale = max(m.abs().max().item(), 1e-30)
    if residual > 1e-5 * scale:
        raise PtocrError(f"{name}: this dense {tuple(w.shape[2:])} conv is not a depthwise conv "
                         f"times a 1x1 conv (relative residual {residual / scale:.1e}), so "
                         "ptocr's DilatedReparamConv cannot hold it")
    dtype = block.pw.weight.dtype
    with torch.no_grad():
        block.dw.lk_origin.weight.copy_(depth.reshape(block.dw.lk_origin.weight.shape).to(dtype))
        block.dw.lk_origin.bias.zero_()
        block.pw.weight.copy_(point[:, :, None, None].to(dtype))
        block.pw.bias.copy_(conv.bias.detach().to(dtype))


# module class -> (its dense conv, the dense conv written back into it)
COMPOSE = {"DilatedReparamConv": (_dense_dilated_reparam_conv, _factor_dilated_reparam_conv)}


def _composed(model, hf, copy_first=False):
    """(the model with the (fused) blocks the section's ``compose`` names replaced by the one
    dense conv each equals, [(parent, attribute, block, dense conv)])."""
    kinds = [k for k in hf.get("compose") or ()]
    for kind in kinds:
        if kind not in COMPOSE:
            raise PtocrError(f"transformers section: unknown compose transform {kind!r}")
    if not kinds:
        return model, []
    if copy_first:
        model = copy.deepcopy(model)
    done = []
    for parent in list(model.modules()):
        for attr, child in list(parent.named_children()):
            if type(child).__name__ in kinds:
                dense = COMPOSE[type(child).__name__][0](child)
                setattr(parent, attr, dense)
                done.append((parent, attr, child, dense))
    return model, done


def _decomposed(done, names):
    """Each dense conv of ``_composed`` written back into its block, the block put back."""
    for parent, attr, block, dense in done:
        COMPOSE[type(block).__name__][1](block, dense, names.get(id(dense), attr))
        setattr(parent, attr, block)


def verify_spec(spec):
    """The table as the verifier judges a transformers model: transformers' ports differ
    from Paddle in a few constants (LayerNorm epsilon 1e-6 in the SVTR blocks where
    PaddleOCR uses 1e-5; hardsigmoid slope 1/6 where Paddle's is 0.1666667), a difference of
    ~1e-5 at most on the real models, so the float64 comparison is held to the table's own
    tolerance rather than the 1e-6 of a ptocr model that reproduces Paddle's constants."""
    out = copy.copy(spec)
    out.tolerance = {**spec.tolerance,
                     "float64_max_abs": spec.tolerance.get("max_abs", 1e-4)}
    hf = section(spec)
    out.paddle_outputs = hf.get("paddle_outputs")  # the program outputs the class returns
    out.stops_early = hf.get("stops_early")  # it stops decoding at the end token
    return out


class HFOutputs(torch.nn.Module):
    """A transformers model returning what the Paddle program returns (its
    ``last_hidden_state``: det probability map, rec per-step softmax), for the verifier and
    the pipeline."""

    def __init__(self, hf_model, output=None, inputs=None):
        super().__init__()
        self.hf = hf_model
        self.output = output  # the table's `output`: softmax for classifiers returning logits
        self.inputs = inputs  # the table's `inputs`: keywords of the program's inputs (KIE)

    def forward(self, x, *more):
        if self.inputs:  # token models (LayoutLM): logits
            xs = list(x) + list(more) if isinstance(x, (list, tuple)) else [x, *more]
            return getattr(self.hf(**dict(zip(self.inputs, xs))), self.output or "logits")
        out = self.hf(pixel_values=x).last_hidden_state
        return torch.softmax(out, dim=-1) if self.output == "softmax" else out


def image_processor_config(spec, extra):
    hf = section(spec)
    out = copy.deepcopy(hf.get("image_processor") or {})
    chars = (extra or {}).get("character_dict")
    if chars is not None:  # class 0 is CTC's blank; the space class comes last
        out["character_list"] = ["blank"] + list(chars) + (
            [" "] if extra.get("use_space_char") else [])
    return out


def write_folder(out, hf_model, spec, meta, overwrite=False):
    """config.json + model.safetensors (save_pretrained) + preprocessor_config.json +
    ptocr.json, written in a temporary folder beside ``out`` and renamed into place."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise PtocrError(f"{out}: already exists (pass --overwrite to replace it)")
    if not out.parent.is_dir():
        raise PtocrError(f"{out.parent}: output directory does not exist")
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_model.save_pretrained(tmp, safe_serialization=True)
        only = getattr(hf_model, "ptocr_only_state", None)
        if only:
            from safetensors.torch import save_file

            save_file({k: v.contiguous() for k, v in only.items()}, str(tmp / PTOCR_ONLY_FILE))
        (tmp / PREPROCESSOR_FILE).write_text(json.dumps(
            image_processor_config(spec, meta.get("extra")), indent=2, ensure_ascii=False) + "\n",
            encoding="utf-8")
        (tmp / PTOCR_FILE).write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n",
                                      encoding="utf-8")
        for f in tmp.iterdir():  # mkstemp/mkdtemp make 0600/0700; outputs get the usual
            os.chmod(f, 0o666 & ~_umask())
        os.chmod(tmp, 0o777 & ~_umask())
        if out.exists():
            old = out.with_name(f".{out.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ---- transformers folder -> ptocr ----

def is_folder(path):
    """A folder transformers wrote (config.json naming a model_type, model.safetensors)."""
    path = Path(path)
    if not path.is_dir() or not (path / "model.safetensors").is_file():
        return False
    try:
        cfg = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(cfg, dict) and "model_type" in cfg


def _fits(spec, cfg):
    """Whether a folder's config has the backbone a table writes (one transformers class can
    serve several tables: PPOCRV6SmallDet is PP-OCRv6 small and tiny det)."""
    want = (section(spec).get("config") or {}).get("backbone_config") or {}
    have = (cfg or {}).get("backbone_config") or {}
    same = lambda a, b: json.loads(json.dumps(a)) == json.loads(json.dumps(b))  # tuples/lists
    return all(same(v, have[k]) for k, v in want.items() if k in have)


def _spec_for(model_type, arch=None, cfg=None):
    """The table of a transformers model_type: the one ptocr's own record names, else one
    whose backbone the config has, the table that defines the section (not one that shares
    it) first."""
    found = [s for s in list_archs().values()
             if has_transformers(s) and section(s)["model_type"] == model_type]
    for spec in sorted(found, key=lambda s: (s.name != arch, not _fits(s, cfg),
                                             "shared_from" in section(s))):
        return spec
    raise PtocrError(f"transformers model_type {model_type!r}: no ptocr architecture has "
                     "this transformers class (`ptocr archs` marks the ones that have)")


def ptocr_arch(spec, cfg):
    """The ptocr Architecture of an HF config: the table's, with ``params`` read back, in
    the training form (transformers' rep layers are the training form)."""
    hf = section(spec)
    arch = copy.deepcopy(spec.architecture)
    full = _config_object(hf, cfg)  # the config with transformers' defaults
    for hf_key, ptocr_key in (hf.get("params") or {}).items():
        value = full
        for part in hf_key.split("."):  # attributes: derived ones too (num_labels)
            value = value.get(part) if isinstance(value, dict) else getattr(value, part, None)
        if value is not None:
            _set(arch, ptocr_key, value)
    if isinstance(arch.get("Backbone"), dict) and hf.get("training_form", True):
        arch["Backbone"]["deploy"] = False
    return arch


def _read_json(path):
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise PtocrError(f"{path}: cannot read ({exc.strerror})") from None
    except ValueError as exc:
        raise PtocrError(f"{path}: not valid JSON ({exc})") from None


def _dictionary(path, spec, n_classes):
    """The recogniser's dictionary of a transformers folder: the image processor's
    ``character_list`` (blank first), else none (the caller names --rec-dict)."""
    if spec.task != "rec":
        return {}
    pre = path / PREPROCESSOR_FILE
    chars = _read_json(pre).get("character_list") if pre.is_file() else None
    if not chars:
        return {}
    chars = [str(c) for c in chars[1:]]
    space = bool(chars) and chars[-1] == " " and len(chars) == n_classes - 1
    if space:
        chars = chars[:-1]
    if len(chars) + 1 + space != n_classes:
        raise PtocrError(f"{pre}: character_list has {len(chars) + 1 + space} classes, the "
                         f"model {n_classes}")
    return {"character_dict": chars, "use_space_char": space, "dict_source": PREPROCESSOR_FILE}


def _ptocr_only(path, hf):
    """The tensors transformers' class does not hold, from the folder's ptocr_only file (named
    as ptocr names them, which the backward renaming leaves as they are)."""
    if not hf.get("ptocr_only"):
        return {}
    extra = path / PTOCR_ONLY_FILE
    if not extra.is_file():
        raise PtocrError(f"{path}: transformers' {hf['class']} holds no {hf['ptocr_only_what']}, "
                         f"which ptocr needs ({PTOCR_ONLY_FILE} is written by `ptocr convert "
                         "--to transformers`; or convert the Paddle model itself)")
    from safetensors.numpy import load_file

    try:
        return load_file(str(extra))
    except Exception as exc:
        raise PtocrError(f"{extra}: not readable ({exc})") from None


def load_folder(path, spec=None):
    """A ptocr model (eval mode, ``ptocr_meta`` set) from a transformers folder; ``spec``:
    the table to read it with (default: the one its model_type and ptocr record name)."""
    from safetensors.numpy import load_file

    from ..models import build

    path = Path(path)
    cfg = _read_json(path / "config.json")
    own = _read_json(path / PTOCR_FILE) if (path / PTOCR_FILE).is_file() else {}
    spec = spec or _spec_for(cfg.get("model_type"), own.get("arch"), cfg)
    hf = section(spec)
    arch = ptocr_arch(spec, cfg)
    try:
        model = build(arch)
    except (KeyError, TypeError, ValueError) as exc:
        raise PtocrError(f"{path}: cannot build {spec.name} from its config ({exc})") from None
    model = _fused(model, hf)
    model, composed = _composed(model, hf)
    renames = _rules(hf, "rules")
    # every ptocr name renamed forward gives its HF name; read the other way round
    # (and the tensors ptocr's blocks deliberately do not hold, e.g. the activation of
    # stride-2 rep layers, which transformers keeps: found, then ignored by the engine)
    names = list(model.state_dict()) + sorted(_paddle_unused(model))
    backward = {_rename(n, renames): n for n in names}
    try:
        tensors = load_file(str(path / "model.safetensors"))
    except Exception as exc:
        raise PtocrError(f"{path / 'model.safetensors'}: not readable ({exc})") from None
    tensors = {k: v for k, v in tensors.items() if not k.endswith("num_batches_tracked")}
    tensors.update(_ptocr_only(path, hf))
    try:
        state, _report = map_named(tensors, model, f"{spec.name} (from transformers)",
                                   lambda n: backward.get(n, n))
    except MappingError as exc:
        raise MappingError(f"{path}: model.safetensors does not fit its config.json: "
                           f"{exc}") from None
    model.load_state_dict(state, strict=True)
    names = {id(m): f"{path / 'model.safetensors'}: {_rename(n + '.weight', renames)}"
             for n, m in model.named_modules()}
    _decomposed(composed, names)
    extra = {"task": spec.task, **_dictionary(path, spec, getattr(model.head, "out_channels",
                                                                 None))}
    if own.get("extra"):
        extra = {**own["extra"], **extra}
    model.ptocr_meta = {
        "arch": spec.name, "config": arch, "source": [str(path)],
        "parity": own.get("parity") or {"verified": False, "reason": "transformers folder"},
        "extra": extra, "processing": own.get("processing") or spec.processing,
        "ptocr_version": own.get("ptocr_version")}
    return model.eval()
