"""Corpus OCR in this process: the same rows and shards as the Ray engine, no cluster.

Images are read and decoded by DataLoader workers while the models run on the previous
ones (``workers``; 0 reads in this process). Each image is then recognised exactly as
``ptocr.OCR`` does (recognition batched within the image, as PaddleOCR's predict_system),
so rows stay identical to the Ray engine's."""

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


def run_local(paths, models, writer, shard_size, progress, workers=1, **system_kwargs):
    """OCR each path with one system built here; rows flushed to ``writer`` every
    ``shard_size`` images; ``progress`` is called with the number of images done."""
    from ..pipeline.system import OCR

    system = OCR(**system_kwargs)
    rows = []
    for path, img, error in decoded(paths, workers if len(paths) > 1 else 0):
        rows.append(ocr_row(system, path, models, img=img, error=error))
        progress(1)
        if len(rows) >= shard_size:
            writer.write(rows)
            rows = []
    writer.write(rows)
