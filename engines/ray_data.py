"""Corpus OCR on Ray Data: the models are loaded once per worker (a callable class in
``map_batches``, an actor pool of ``num_workers``), images are decoded, preprocessed and
recognised inside the same pipeline, and a worker that dies mid-batch is restarted by Ray
and its batch retried, so every image ends up exactly once in the output.

``ocr_dataset(ds, det=..., rec=...)`` plugs into a user's own Ray pipeline; ``run_ray`` is
what ``ptocr ocr SOURCE --out DIR --engine ray`` runs. The checkpoints must be readable at
the same paths on every node of the cluster (a shared file system or the same image)."""

import os

from .rows import models_key, ocr_row, schema

# Fault injection for tests: when set to a path that does not exist yet, the first worker to
# take a batch creates it and dies in the middle of that batch.
FAULT_ONCE_ENV = "PTOCR_RAY_FAULT_ONCE"


class OCRWorker:
    """One OCR system per Ray actor."""

    def __init__(self, system_kwargs, models, path_column="path", threads=1):
        import torch

        from ..pipeline.system import OCR

        torch.set_num_threads(max(1, int(threads)))
        self.system = OCR(**system_kwargs)
        self.models, self.path_column = models, path_column

    def __call__(self, batch):
        import pyarrow as pa

        rows = []
        for i, path in enumerate(batch[self.path_column]):
            if i == 1:
                _maybe_fail_once()
            rows.append(ocr_row(self.system, str(path), self.models))
        return pa.Table.from_pylist(rows, schema=schema())


def _maybe_fail_once():
    flag = os.environ.get(FAULT_ONCE_ENV)
    if flag and not os.path.exists(flag):
        with open(flag, "w") as fh:
            fh.write(str(os.getpid()))
        os._exit(1)  # a crash, as a killed worker: no cleanup, no exception to catch


def ocr_dataset(ds, det, rec, cls=None, num_workers=1, batch_size=8, path_column="path",
                threads_per_worker=1, models=None, **options):
    """A Ray Dataset of OCR rows (engines/rows.py schema) for a dataset with a path column;
    ``options`` are the OCR system's settings (pipeline/options.py)."""
    models = models or models_key({"det": det, "rec": rec, "cls": cls})
    system_kwargs = {"det": str(det), "rec": str(rec), "cls": str(cls) if cls else None,
                     **options}
    from ray.data import ActorPoolStrategy

    return ds.map_batches(
        OCRWorker, fn_constructor_kwargs={"system_kwargs": system_kwargs, "models": models,
                                          "path_column": path_column,
                                          "threads": threads_per_worker},
        batch_size=batch_size, batch_format="numpy",
        compute=ActorPoolStrategy(size=max(1, int(num_workers))), num_cpus=threads_per_worker,
        max_restarts=-1, max_task_retries=-1)  # a dead worker is restarted, its batch retried


def init(address=None, num_cpus=None):
    """Connect to a cluster (``auto`` or ``ray://host:port``) or start a local one."""
    import ray

    if ray.is_initialized():
        return
    env = {k: v for k, v in os.environ.items()
           if k in (FAULT_ONCE_ENV, "PTOCR_PLUGINS", "PYTHONPATH", "PTOCR_HOME")}
    kwargs = {"include_dashboard": False, "log_to_driver": False,
              "runtime_env": {"env_vars": env} if env else None}
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(num_cpus=num_cpus or os.cpu_count(), **kwargs)


def run_ray(paths, models, writer, shard_size, progress, address=None, num_workers=None,
            batch_size=8, **system_kwargs):
    """OCR ``paths`` on Ray; results stream back to this driver, which writes whole shards
    as they fill (so an interrupted run keeps every complete shard)."""
    import ray

    init(address)
    workers = num_workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
    ds = ray.data.from_items([{"path": p} for p in paths],
                             override_num_blocks=max(1, min(len(paths) // batch_size, 1000)))
    out = ocr_dataset(ds, num_workers=workers, batch_size=batch_size, models=models,
                      **system_kwargs)
    rows = []
    for batch in out.iter_batches(batch_size=None, batch_format="pyarrow"):
        got = batch.to_pylist()
        rows += got
        progress(len(got))
        if len(rows) >= shard_size:
            writer.write(rows)
            rows = []
    writer.write(rows)
