"""ptocr: PaddleOCR models converted to PyTorch, proven equal, and run."""

__version__ = "0.1.0"


def load(path, map_location="cpu", fuse=True, engine="eager"):
    """Load a ptocr checkpoint (.pth or .safetensors), or a Hugging Face transformers folder of
    a class ptocr maps (`ptocr convert --to transformers`, PaddlePaddle's Hub repositories), as
    a ready model in eval mode: by default
    the fast eval form (conv+BN folded, rep blocks fused); ``fuse=False`` gives the exact
    training form. An artifact of ``ptocr export`` (torchscript, exported, aoti, onnx) loads
    too, after its sidecar's checks (not stale, not tampered).

    ``engine``: ``eager`` (the module), ``compiled`` (``torch.compile(dynamic=True)``, checked
    against eager on the table's input before it is returned) or ``aoti`` (the checkpoint's
    AOTInductor package with dynamic shapes, exported and verified once, then cached under
    $PTOCR_HOME/compiled)."""
    from .converter.export import engine_form, is_artifact, load_artifact

    if is_artifact(path):
        return load_artifact(path)
    if engine not in (None, "eager"):
        return engine_form(path, engine, map_location)
    from .converter.checkpoint import load_model

    return load_model(path, map_location=map_location, fuse=fuse)


def __getattr__(name):
    # The OCR system pulls in opencv & co; import it only when asked for.
    if name == "OCR":
        from .pipeline.system import OCR

        return OCR
    if name == "ray":  # ptocr.ray.ocr_dataset(ds, det=..., rec=...); needs ptocr[ray]
        from .engines import ray_data

        return ray_data
    if name == "TableRecognizer":
        from .pipeline.table import TableRecognizer

        return TableRecognizer
    if name == "Structure":  # layout regions + OCR + tables in reading order
        from .pipeline.structure import Structure

        return Structure

    if name == "KIE":  # ptocr.KIE(det=..., rec=..., ser=..., tokenizer=DIR[, re=...])
        from .pipeline.kie import KIE

        return KIE
    if name == "PaddleOCR":  # PaddleOCR 2.x's class on ptocr models (compat.py)
        from .compat import PaddleOCR

        return PaddleOCR
    raise AttributeError(name)
