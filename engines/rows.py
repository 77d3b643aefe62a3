"""The output rows of corpus OCR and their shards.

One row per image: path, lines (box, text, score), width/height, error (for an unreadable
image; never a crash of the job) and the checksums of the models that produced it. Shards
are written whole (temp file + rename) so an interrupted run leaves only complete shards;
a re-run skips the paths already present with the same model checksums.
"""

import json
import os
import uuid
from pathlib import Path

from ..errors import PtocrError
from ..fileutil import file_sha256

SHARD_PREFIX = "part-"


def schema():
    import pyarrow as pa

    line = pa.struct([("box", pa.list_(pa.list_(pa.float64()))), ("text", pa.string()),
                      ("score", pa.float64())])
    return pa.schema([("path", pa.string()), ("lines", pa.list_(line)),
                      ("width", pa.int32()), ("height", pa.int32()), ("error", pa.string()),
                      ("models", pa.string())])


def models_key(paths):
    """{'det': sha256, 'rec': ..., 'cls': ...} as a canonical JSON string."""
    return json.dumps({k: file_sha256(v) for k, v in sorted(paths.items()) if v},
                      sort_keys=True)


def ocr_row(system, path, models, img=None, error=None, lines=None):
    """The row of one image (errors of reading become the row's error); ``img``/``error``:
    the image already decoded (engines.local's DataLoader workers) or why it could not be;
    ``lines``: the image's result already computed (``OCR.many``), or its error."""
    from ..pipeline import read_image

    if error is not None:
        return {"path": path, "lines": [], "width": None, "height": None,
                "error": error, "models": models}
    try:
        img = read_image(path) if img is None else img
    except (ValueError, OSError) as exc:
        return {"path": path, "lines": [], "width": None, "height": None,
                "error": str(exc), "models": models}
    try:
        if isinstance(lines, (ValueError, OSError)):
            raise lines
        lines = system(img) if lines is None else lines
    except (ValueError, OSError) as exc:  # an image the models' processing cannot take
        return {"path": path, "lines": [], "width": int(img.shape[1]),
                "height": int(img.shape[0]), "error": str(exc), "models": models}
    return {"path": path, "lines": lines, "width": int(img.shape[1]),
            "height": int(img.shape[0]), "error": None, "models": models}


class ShardWriter:
    """Writes rows to DIR as numbered shards, each whole or not at all."""

    def __init__(self, out_dir, fmt="parquet"):
        if fmt not in ("parquet", "jsonl"):
            raise PtocrError(f"unknown output format {fmt!r} (parquet or jsonl)")
        self.dir, self.fmt = Path(out_dir), fmt
        self.dir.mkdir(parents=True, exist_ok=True)
        self.run = uuid.uuid4().hex[:8]
        self.count = self.rows = self.errors = 0

    def write(self, rows):
        if not rows:
            return None
        final = self.dir / f"{SHARD_PREFIX}{self.run}-{self.count:05d}.{self.fmt}"
        tmp = self.dir / f".{final.name}.tmp"
        try:
            if self.fmt == "parquet":
                import pyarrow as pa
                import pyarrow.parquet as pq

                pq.write_table(pa.Table.from_pylist(rows, schema=schema()), tmp)
            else:
                with open(tmp, "w", encoding="utf-8") as fh:
                    for row in rows:
                        fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self.count += 1
        self.rows += len(rows)
        self.errors += sum(r.get("error") is not None for r in rows)
        return final


def read_rows(out_dir):
    """Every row of the complete shards in DIR (both formats)."""
    rows = []
    for shard in sorted(Path(out_dir).glob(f"{SHARD_PREFIX}*")):
        if shard.suffix == ".parquet":
            import pyarrow.parquet as pq

            rows += pq.read_table(shard).to_pylist()
        elif shard.suffix == ".jsonl":
            rows += [json.loads(ln) for ln in shard.read_text(encoding="utf-8").splitlines()
                     if ln.strip()]
    return rows


def done_paths(out_dir, models):
    """Paths already in DIR for these model checksums (what a re-run skips); reads only the
    two columns it needs."""
    done = set()
    for shard in sorted(Path(out_dir).glob(f"{SHARD_PREFIX}*")) if Path(out_dir).is_dir() else []:
        if shard.suffix == ".parquet":
            import pyarrow.parquet as pq

            t = pq.read_table(shard, columns=["path", "models"]).to_pydict()
            pairs = zip(t["path"], t["models"])
        elif shard.suffix == ".jsonl":
            rows = [json.loads(ln) for ln in shard.read_text(encoding="utf-8").splitlines()
                    if ln.strip()]
            pairs = ((r["path"], r.get("models")) for r in rows)
        else:
            continue
        done.update(path for path, key in pairs if key == models)
    return done
