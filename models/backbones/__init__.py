from . import pplcnetv3  # noqa: F401
