"""Name -> class registries for the block families, filled by the modules that define them."""

REGISTRIES = {"Transform": {}, "Backbone": {}, "Neck": {}, "Head": {}}


def register(kind, name=None):
    def deco(cls):
        REGISTRIES[kind][name or cls.__name__] = cls
        return cls

    return deco


def lookup(kind, name, model_type=None):
    """The class for ``name``; PaddleOCR reuses some names per task (rec MobileNetV3 is not det
    MobileNetV3), so ``name@model_type`` registrations take precedence."""
    registry = REGISTRIES[kind]
    if model_type and f"{name}@{model_type}" in registry:
        return registry[f"{name}@{model_type}"]
    try:
        return registry[name]
    except KeyError:
        known = ", ".join(sorted(REGISTRIES[kind])) or "none"
        raise KeyError(f"unknown {kind} {name!r} (known: {known})") from None
