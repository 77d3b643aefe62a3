"""Corpus OCR in this process: the same rows and shards as the Ray engine, no cluster.

Images are read and decoded by DataLoader workers while the models run on the previous
ones (``workers``; 0 reads in this process). A few images at a time share classifier and
recogniser batches (``OCR.many``), whose results are bitwise those of ``ptocr.OCR`` one image
at a time (recognition batched within the image, as PaddleOCR's predict_system), so rows
stay identical to the Ray engine's."""

from .rows import ocr_row


class _Images:
    """path -> (path, BGR image or None, error or None), decoded in a worker."""

    def __init__(self, paths):
        self.paths = paths

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        from ..pipeline import read_image

        path = self.paths[i]
        try:
            return path, read_image(path), None
        except (ValueError, OSError) as exc:
            return path, None, str(exc)


def _as_is(item):
    return item


def decoded(paths, workers=1):
    """(path, image, error) in order, decoded ahead by ``workers`` processes."""
    if workers <= 0:
        yield from (_Images(paths)[i] for i in range(len(paths)))
        return
    from torch.utils.data import DataLoader

    loader = DataLoader(_Images(paths), batch_size=None, num_workers=workers,
                        collate_fn=_as_is, prefetch_factor=4)
    yield from loader


def run_local(paths, models, writer, shard_size, progress, workers=1, batch_images=8,
              **system_kwargs):
    """OCR each path with one system built here; rows flushed to ``writer`` every
    ``shard_size`` images; ``progress`` is called with the number of images done.
    ``batch_images`` images at a time share classifier and recogniser batches (OCR.many:
    the same rows, bitwise, as one image at a time)."""
    from ..pipeline.system import OCR

    system = OCR(**system_kwargs)
    rows, chunk = [], []

    def flush_chunk():
        readable = [(path, img) for path, img, error in chunk if error is None]
        found = dict(zip((p for p, _ in readable),
                         system.many([img for _, img in readable], errors="return")))
        for path, img, error in chunk:
            rows.append(ocr_row(system, path, models, img=img, error=error,
                                lines=found.get(path) if error is None else None))
        progress(len(chunk))
        chunk.clear()

    for item in decoded(paths, workers if len(paths) > 1 else 0):
        chunk.append(item)
        if len(chunk) >= max(1, batch_images):
            flush_chunk()
        if len(rows) >= shard_size:
            writer.write(rows)
            rows = []
    if chunk:
        flush_chunk()
    writer.write(rows)
