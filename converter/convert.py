"""Conversion: Paddle weights + architecture table -> torch model with the same numbers."""

from dataclasses import dataclass

import torch

from . import formats
from ..errors import PtocrError
from .mapping import _may_fit, find_arch, map_weights, match_archs, resolve_config


@dataclass
class Conversion:
    model: torch.nn.Module
    spec: object
    config: dict
    weights: object
    report: object
    processing: dict = None


def resolve_processing(spec, weights):
    """The processing the checkpoint carries: the table's (PaddleOCR's inference-tool
    behaviour for the algorithm) with the parameters of the export's inference.yml
    PostProcess merged in when it names the same class. The export's sections are kept
    verbatim under ``export`` (its PreProcess is a training config's eval pipeline, e.g.
    DetResizeForTest resize_long, which PaddleOCR's inference tools do not run)."""
    import copy

    processing = copy.deepcopy(spec.processing) or {}
    yml = (weights.inference_yml or {}) if weights is not None else {}
    export = {k: copy.deepcopy(yml[k]) for k in ("PreProcess", "PostProcess")
              if isinstance(yml.get(k), dict)}
    post = export.get("PostProcess")
    if post:
        post.pop("character_dict", None)  # carried in the checkpoint's dictionary instead
        if processing.get("PostProcess", {}).get("name") == post.get("name"):
            processing["PostProcess"].update(post)
        elif not processing.get("PostProcess"):
            processing["PostProcess"] = dict(post)
    if export:
        processing["export"] = export
    return processing or None


def load_user_config(path):
    """The Architecture section of a PaddleOCR training yml."""
    import yaml

    try:
        with open(path, encoding="utf-8") as fh:
            doc = yaml.safe_load(fh)
    except OSError as exc:
        raise PtocrError(f"{path}: cannot read config ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise PtocrError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    arch = doc.get("Architecture") if isinstance(doc, dict) else None
    if not isinstance(arch, dict):
        raise PtocrError(f"{path}: no Architecture section (a PaddleOCR config is expected)")
    if arch.get("algorithm") == "Distillation" or "Models" in arch:
        raise PtocrError(f"{path}: distillation config; pass the Architecture of one sub-model")
    return arch


def detect_arch(weights, task=None):
    """The architecture these weights fit (``--arch auto``), or an error naming the
    candidates. Tables that fit with the very same network (PP-OCRv4 and v5 mobile det
    share one) are one answer: the first is taken."""
    matches = match_archs(weights, task)
    if not matches:
        raise PtocrError("--arch auto: no known architecture fits these weights; "
                         "`ptocr archs` lists them")
    configs = list(matches.values())
    if any(c != configs[0] for c in configs[1:]):
        raise PtocrError(f"--arch auto: several architectures fit ({', '.join(matches)}); "
                         "pass one with --arch")
    specs = [find_arch(name) for name in matches]
    # recognisers of many languages share one network: prefer the one whose dictionary
    # fits the class count
    fitting = [s for s in specs if _dictionary_fits(s, weights, configs[0])]
    return (fitting or specs)[0]


def _dictionary_fits(spec, weights, config):
    from ..models import build
    from . import dictionary

    if spec.task != "rec":
        return False
    try:
        dictionary.resolve(spec, weights, getattr(build(config).head, "out_channels", None))
    except PtocrError:
        return False
    return True


def example_input(spec, batch=1, model=None):
    """Input for tracing the torch model's parameter use: zeros at the table's first shape;
    for programs with further inputs (tables with ``random_images``), the inputs the table's
    processing makes of a blank crop (a list, in the program's order); KIE tables: token ids,
    boxes and masks (converter/kie_inputs.py)."""
    if "kie" in spec.inputs:
        from .kie_inputs import kie_inputs, kie_pages

        page = kie_pages(spec, model)[-1][1]  # seeded noise (the first case may be a real page)
        return [torch.from_numpy(a) for a in kie_inputs(spec.inputs["kie"], model, image=page)]
    sizes = (spec.inputs.get("random_images") or [None])[0]
    if sizes and (spec.processing or {}).get("PreProcess"):
        import numpy as np

        from ..pipeline import model_inputs

        h, w = sizes[0]
        xs = model_inputs(spec.processing, np.zeros((int(h), int(w), 3), np.uint8))
        if len(xs) > 1:
            return [torch.from_numpy(np.concatenate([x] * batch)) for x in xs]
    shapes = spec.inputs.get("shapes") or [[1, 3, 64, 64]]
    shape = list(shapes[0])
    shape[0] = batch
    return torch.zeros(shape)


def convert(paddle_path, arch=None, config_path=None, submodel=None, weights=None, spec=None,
            full_head=False, task=None):
    """Read, build, map and load; raises PtocrError subclasses with a one-line message.

    ``full_head`` keeps the training-only sequence branch of MultiHead recognisers (only
    training checkpoints carry it)."""
    weights = weights or formats.read(paddle_path, submodel=submodel)
    spec = spec or (detect_arch(weights, task) if arch.lower() == "auto" else find_arch(arch))
    if not _may_fit(spec, weights):
        # (before building: tables that say what they require are large networks, e.g. KIE)
        from ..errors import MappingError

        what = (f"no tensor is named like {spec.requires.get('names')!r}" if weights.structured
                else f"the program uses none of the ops {spec.requires.get('ops')}")
        raise MappingError(f"weights do not fit {spec.name}: {what} (`ptocr inspect` names "
                           "the architecture they match)")
    user_arch = load_user_config(config_path) if config_path else None
    config = resolve_config(spec, weights, user_arch)
    if full_head:
        if (config.get("Head") or {}).get("name") != "MultiHead":
            raise PtocrError(f"--full-head applies to MultiHead recognisers, not {spec.name}")
        if weights.program is not None:
            raise PtocrError("--full-head needs a training checkpoint (.pdparams): inference "
                             "exports do not carry the training-only head")
        config["Head"]["full_head"] = True
    from ..models import build

    try:
        model = build(config)
    except (KeyError, TypeError, ValueError, NotImplementedError) as exc:
        raise PtocrError(f"cannot build {spec.name}: {exc}") from None
    state, report = map_weights(weights, model, spec, example_input(spec, model=model))
    model.load_state_dict(state, strict=True)
    model.eval()
    return Conversion(model, spec, config, weights, report, resolve_processing(spec, weights))
