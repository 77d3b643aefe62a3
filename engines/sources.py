"""A SOURCE of images: a folder, a glob, a text file listing paths, or a Parquet/JSONL
manifest with a path column. Paths come back as strings, in a stable order."""

import glob
import json
from pathlib import Path

from ..errors import PtocrError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


def list_source(source, path_column="path"):
    """Image paths named by ``source`` (see the module doc)."""
    text = str(source)
    p = Path(text)
    if p.is_dir():
        return sorted(str(q) for q in p.rglob("*") if q.suffix.lower() in IMAGE_SUFFIXES)
    if any(ch in text for ch in "*?["):
        found = sorted(q for q in glob.glob(text, recursive=True) if Path(q).is_file())
        if not found:
            raise PtocrError(f"{source}: the pattern matches no file")
        return found
    if not p.is_file():
        raise PtocrError(f"{source}: no such file or directory")
    if p.suffix.lower() in IMAGE_SUFFIXES:
        return [text]
    if p.suffix.lower() == ".parquet":
        return _manifest_column(_read_parquet_column(p, path_column), p, path_column)
    if p.suffix.lower() in (".jsonl", ".ndjson"):
        return _manifest_column(_read_jsonl_column(p, path_column), p, path_column)
    if p.suffix.lower() in (".txt", ".lst", ".list"):
        base = p.parent
        lines = [ln.strip() for ln in p.read_text(encoding="utf-8").splitlines()]
        return [str(base / ln) if not Path(ln).is_absolute() else ln
                for ln in lines if ln and not ln.startswith("#")]
    raise PtocrError(f"{source}: not an image, folder, glob, .txt list or "
                     ".parquet/.jsonl manifest")


def _read_parquet_column(path, column):
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for a bad file
        raise PtocrError(f"{path}: not a readable Parquet file ({exc})") from None
    if column not in table.column_names:
        raise PtocrError(f"{path}: no {column!r} column (has {', '.join(table.column_names)})")
    return table.column(column).to_pylist()


def _read_jsonl_column(path, column):
    values = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise PtocrError(f"{path}:{i}: not JSON ({exc.msg})") from None
        if not isinstance(row, dict) or column not in row:
            raise PtocrError(f"{path}:{i}: no {column!r} field")
        values.append(row[column])
    return values


def _manifest_column(values, path, column):
    if any(not isinstance(v, str) or not v for v in values):
        raise PtocrError(f"{path}: the {column!r} column must hold non-empty strings")
    base = path.parent
    return [v if Path(v).is_absolute() else str(base / v) for v in values]
