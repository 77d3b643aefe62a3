"""Pre/post-processing and the det -> cls -> rec OCR system, following PaddleOCR's
tools/infer and ppocr/postprocess behaviour."""


def model_inputs(processing, image):
    """The model's input arrays (batch of one) for a BGR image under a checkpoint's
    ``processing`` (PaddleOCR's PreProcess schema): the plain function the verifier uses to
    feed real images exactly as the pipeline does."""
    import numpy as np

    from .registry import build_transforms, transform

    data = transform(build_transforms(processing["PreProcess"]), {"image": image})
    if data is None:
        raise ValueError("pre-processing rejected the image")
    return [np.asarray(data[k])[None] for k in data.get("model_inputs") or ["image"]]


def read_image(path):
    """BGR uint8 image, or ValueError naming the file when it cannot be decoded."""
    from .preprocess.image import read_image as read

    return read(path)
