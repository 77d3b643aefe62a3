"""Small file helpers shared by the converter, the engines and the exporter (which must not
import each other's internals)."""

import hashlib


def file_sha256(path):
    """Hex sha256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
