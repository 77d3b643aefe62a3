"""Corpus OCR in this process: the same rows and shards as the Ray engine, no cluster."""

from .rows import ocr_row


def run_local(paths, models, writer, shard_size, progress, **system_kwargs):
    """OCR each path with one system built here; rows flushed to ``writer`` every
    ``shard_size`` images; ``progress`` is called with the number of images done."""
    from ..pipeline.system import OCR

    system = OCR(**system_kwargs)
    rows = []
    for path in paths:
        rows.append(ocr_row(system, path, models))
        progress(1)
        if len(rows) >= shard_size:
            writer.write(rows)
            rows = []
    writer.write(rows)
