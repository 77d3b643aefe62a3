from . import db_fpn  # noqa: F401
