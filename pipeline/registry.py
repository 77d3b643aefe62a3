"""Processing operators by PaddleOCR's class names, as models/registry.py does for blocks.

A table (and the checkpoint made from it) names its processing in PaddleOCR's own schema:

    PreProcess:  {transform_ops: [{DetResizeForTest: {limit_side_len: 960}}, {NormalizeImage: ...}]}
    PostProcess: {name: DBPostProcess, thresh: 0.3, box_thresh: 0.6}

``build_transforms`` and ``build_postprocess`` turn those sections into callables; a module
under pipeline/preprocess/ or pipeline/postprocess/ registers each class with
``@register("PreProcess")`` or ``@register("PostProcess")`` and nothing else needs to change.
"""

import copy
import inspect

REGISTRIES = {"PreProcess": {}, "PostProcess": {}, "Match": {}}


def register(kind, name=None):
    def deco(cls):
        REGISTRIES[kind][name or cls.__name__] = cls
        return cls

    return deco


def lookup(kind, name):
    _fill()
    try:
        return REGISTRIES[kind][name]
    except KeyError:
        known = ", ".join(sorted(REGISTRIES[kind])) or "none"
        raise KeyError(f"unknown {kind} operator {name!r} (known: {known})") from None


_PLUGINS_LOADED = []


def _fill():
    """Import ptocr's operator modules, then the user's: modules named in $PTOCR_PLUGINS
    (comma-separated) and ``ptocr.plugins`` entry points of installed packages, so a team's
    own operator needs no change to ptocr."""
    from . import postprocess, preprocess  # noqa: F401  (importing them registers the classes)

    if _PLUGINS_LOADED:
        return
    _PLUGINS_LOADED.append(True)
    import importlib
    import os
    from importlib.metadata import entry_points

    for name in filter(None, (n.strip() for n in os.environ.get("PTOCR_PLUGINS", "").split(","))):
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ValueError(f"PTOCR_PLUGINS: cannot import {name} ({exc})") from None
    for ep in entry_points(group="ptocr.plugins"):
        ep.load()


def _instantiate(kind, name, params, overrides):
    """``cls(**params)`` with the user's overrides applied; keys the class does not take are
    refused with a one-line error naming the operator."""
    cls = lookup(kind, name)
    params = {**(params or {}), **{k: v for k, v in (overrides or {}).items() if v is not None}}
    accepted = inspect.signature(cls.__init__).parameters
    takes_any = any(p.kind is p.VAR_KEYWORD for p in accepted.values())
    unknown = [k for k in params if k not in accepted and not takes_any]
    if unknown:
        raise ValueError(f"{name} does not take {', '.join(sorted(unknown))}")
    return cls(**params)


def op_name(op):
    """(name, params) of one ``transform_ops`` entry: ``{Name: params}`` or ``Name``."""
    if isinstance(op, str):
        return op, {}
    (name, params), = op.items()
    return name, dict(params or {})


def build_transforms(pre, overrides=None):
    """Callables for a ``PreProcess`` section; ``overrides``: {OpName: {param: value}}."""
    overrides = overrides or {}
    ops = []
    for entry in (pre or {}).get("transform_ops", []):
        name, params = op_name(entry)
        ops.append(_instantiate("PreProcess", name, params, overrides.get(name)))
    return ops


def build_postprocess(post, overrides=None, **context):
    """The callable for a ``PostProcess`` section. ``overrides``: {OpName: {param: value}}
    (applied when the section names that class); ``context``: values the pipeline knows
    (``character_dict``, ``use_space_char``) given to classes that take them."""
    if not post:
        return None
    post = copy.deepcopy(post)
    name = post.pop("name")
    cls = lookup("PostProcess", name)
    accepted = inspect.signature(cls.__init__).parameters
    for key, value in context.items():
        if key in accepted and key not in post:
            post[key] = value
    return _instantiate("PostProcess", name, post, (overrides or {}).get(name))


def build_match(section, overrides=None):
    """The cell-matching rule of a table model (``Match: {name: TableMasterMatcher}``; the
    ``Match`` registry holds ppstructure/table's matchers)."""
    section = dict(section)
    name = section.pop("name")
    return _instantiate("Match", name, section, (overrides or {}).get(name))


def transform(ops, data):
    """Run the operators on a data dict (PaddleOCR's convention: {'image': ..., ...})."""
    for op in ops:
        data = op(data)
        if data is None:
            return None
    return data
