from . import det_db_head  # noqa: F401
