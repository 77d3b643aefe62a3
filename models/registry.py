"""Name -> class registries for the block families, filled by the modules that define them."""

REGISTRIES = {"Transform": {}, "Backbone": {}, "Neck": {}, "Head": {}}


def register(kind, name=None):
    def deco(cls):
        REGISTRIES[kind][name or cls.__name__] = cls
        return cls

    return deco


def lookup(kind, name):
    try:
        return REGISTRIES[kind][name]
    except KeyError:
        known = ", ".join(sorted(REGISTRIES[kind])) or "none"
        raise KeyError(f"unknown {kind} {name!r} (known: {known})") from None
