"""Torch modules for PaddleOCR architectures and the builder that assembles them.

``build(arch)`` takes PaddleOCR's ``Architecture`` dict (model_type, algorithm, Transform,
Backbone, Neck, Head) and returns a ``BaseModel`` whose submodules are named ``transform``,
``backbone``, ``neck`` and ``head`` like Paddle's, so structured parameter names carry over.
"""

import copy

from torch import nn

from .registry import REGISTRIES, lookup  # noqa: F401
from . import backbones, necks, heads, transforms  # noqa: F401  (fill the registries)


class BaseModel(nn.Module):
    def __init__(self, arch):
        super().__init__()
        arch = copy.deepcopy(arch)
        self.model_type = arch.get("model_type")
        in_channels = arch.get("in_channels", 3)
        for kind, attr in (("Transform", "transform"), ("Backbone", "backbone"),
                           ("Neck", "neck"), ("Head", "head")):
            cfg = arch.get(kind)
            if not cfg:
                setattr(self, attr, None)
                continue
            cfg = dict(cfg)
            cls = lookup(kind, cfg.pop("name"), self.model_type)
            if kind != "Backbone" or "in_channels" not in cfg:
                cfg["in_channels"] = in_channels
            module = cls(**cfg)
            setattr(self, attr, module)
            in_channels = getattr(module, "out_channels", in_channels)

    def forward(self, x, *extra):
        """``extra``: the program's further inputs after the image, in its order (SAR's
        valid_ratio, SRN's word positions and attention biases, ...); PaddleOCR's BaseModel
        hands them to the head as ``targets``. A network without a head (KIE: the backbone
        is the whole network), or whose backbone reads every input (SDMGR's Kie_backbone:
        image, relations, texts, boxes, ...), takes every input in its backbone."""
        if extra and (self.head is None or getattr(self.backbone, "takes_all_inputs", False)):
            x, extra = [x, *extra], ()
        for part in (self.transform, self.backbone, self.neck):
            if part is not None:
                x = part(x)
        if self.head is None:
            return x
        return self.head(x, list(extra)) if extra else self.head(x)

    def reparameterize(self):
        """Fuse every re-parameterizable block into its deploy form (in place)."""
        for module in list(self.modules()):
            if module is not self and hasattr(module, "reparameterize"):
                module.reparameterize()
        return self


def build(arch):
    """Build the torch model for a PaddleOCR ``Architecture`` config dict (PaddleDetection's
    DETR assembly for ``algorithm: DETR``: models/detr.py)."""
    if arch.get("algorithm") == "DETR":
        from .detr import DETR

        return DETR(arch)
    return BaseModel(arch)
