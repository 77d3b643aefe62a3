"""``ptocr ocr SOURCE --out DIR``: OCR over a corpus, resumable, with either engine."""

import time

from ..errors import PtocrError
from .rows import ShardWriter, done_paths, models_key
from .sources import list_source


def run_corpus(sources, out_dir, det, rec, cls=None, engine="local", fmt="parquet",
               path_column="path", shard_size=1000, address=None, num_workers=None,
               batch_size=8, threads=None, progress_bar=True, model_engine="eager", **options):
    """Rows for every image of the SOURCES not already in OUT_DIR with the same model
    checksums. ``threads``: torch threads of the in-process system, or of each Ray worker
    (default there: 1); rows are bitwise identical across engines at equal thread counts
    (other counts change fp32 summation order, so scores may differ in the last digits).
    Returns {'total', 'skipped', 'done', 'errors', 'seconds'}."""
    from tqdm import tqdm

    paths = list(dict.fromkeys(p for source in sources  # each path once
                               for p in list_source(source, path_column)))
    if not paths:
        raise PtocrError(f"{', '.join(map(str, sources))}: no images")
    if engine not in ("local", "ray"):
        raise PtocrError(f"unknown engine {engine!r} (local or ray)")
    if engine == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            raise PtocrError("--engine ray needs Ray Data: pip install 'ptocr[ray]'") from None
    models = models_key({"det": det, "rec": rec, "cls": cls})
    done = done_paths(out_dir, models)
    todo = [p for p in paths if p not in done]
    writer = ShardWriter(out_dir, fmt)
    started = time.perf_counter()
    bar = tqdm(total=len(paths), initial=len(paths) - len(todo), unit="img", desc="ocr",
               disable=not progress_bar or None, dynamic_ncols=True)
    kwargs = dict(det=str(det), rec=str(rec), cls=str(cls) if cls else None, **options)
    if model_engine != "eager":  # compiled/aoti forms in this process (Ray workers: eager)
        if engine == "ray":
            raise PtocrError("Ray workers run the eager models; compiled/aoti run in-process")
        kwargs["engine"] = model_engine
    try:
        if todo and engine == "local":
            from .local import run_local

            run_local(todo, models, writer, shard_size, bar.update, threads=threads,
                      batch_images=batch_size, **kwargs)
        elif todo and engine == "ray":
            from .ray_data import run_ray

            run_ray(todo, models, writer, shard_size, bar.update, address=address,
                    num_workers=num_workers, batch_size=batch_size,
                    threads_per_worker=threads or 1, **kwargs)
    finally:
        bar.close()
    return {"total": len(paths), "skipped": len(paths) - len(todo), "done": writer.rows,
            "errors": writer.errors, "shards": writer.count,
            "seconds": round(time.perf_counter() - started, 3)}
