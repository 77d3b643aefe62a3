"""Image preprocessing as PaddleOCR's inference tools do it (tools/infer/predict_*.py).

Images are BGR uint8 arrays as cv2 reads them; PaddleOCR normalises them in that channel
order with ImageNet statistics listed in RGB order, and so do we, to give the same tensors.
"""

import math

import numpy as np

DET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
DET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def read_image(path):
    """BGR uint8 image, or ValueError naming the file when it cannot be decoded."""
    import cv2

    data = np.fromfile(str(path), dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if img is None:
        raise ValueError(f"{path}: not a readable image")
    return img


def det_resize(img, limit_side_len=960, limit_type="max"):
    """DetResizeForTest (type 0): scale by the side limit, round each side to a multiple of 32.

    Returns (resized image, (src_h, src_w, ratio_h, ratio_w)).
    """
    import cv2

    h, w = img.shape[:2]
    if limit_type == "max":
        ratio = limit_side_len / max(h, w) if max(h, w) > limit_side_len else 1.0
    elif limit_type == "min":
        ratio = limit_side_len / min(h, w) if min(h, w) < limit_side_len else 1.0
    elif limit_type == "resize_long":
        ratio = limit_side_len / max(h, w)
    else:
        raise ValueError(f"unknown limit_type {limit_type!r}")
    resize_h = max(int(round(int(h * ratio) / 32) * 32), 32)
    resize_w = max(int(round(int(w * ratio) / 32) * 32), 32)
    img = cv2.resize(img, (resize_w, resize_h))
    return img, (h, w, resize_h / float(h), resize_w / float(w))


def det_normalize(img):
    """HWC uint8 -> CHW float32, (x / 255 - mean) / std."""
    x = (img.astype(np.float32) * (1.0 / 255.0) - DET_MEAN) / DET_STD
    return x.transpose(2, 0, 1)


def det_preprocess(img, limit_side_len=960, limit_type="max"):
    resized, shape = det_resize(img, limit_side_len, limit_type)
    return det_normalize(resized)[None], shape


def rec_resize_norm(img, image_shape=(3, 48, 320), max_wh_ratio=None):
    """PaddleOCR's resize_norm_img for CTC recognisers: keep aspect, pad right with zeros.

    ``max_wh_ratio`` widens the canvas to the widest crop of a batch, as predict_rec does.
    """
    import cv2

    c, h_target, w_target = image_shape
    if max_wh_ratio is not None:
        w_target = int(h_target * max_wh_ratio)
    h, w = img.shape[:2]
    ratio = w / float(h)
    resized_w = w_target if math.ceil(h_target * ratio) > w_target else int(math.ceil(h_target * ratio))
    resized = cv2.resize(img, (resized_w, h_target)).astype(np.float32)
    resized = resized.transpose(2, 0, 1) / 255.0
    resized = (resized - 0.5) / 0.5
    out = np.zeros((c, h_target, w_target), dtype=np.float32)
    out[:, :, :resized_w] = resized
    return out


def rec_preprocess(img, image_shape=(3, 48, 320)):
    """One crop as predict_rec batches it alone: canvas at least image_shape wide."""
    _, h, w = image_shape
    ratio = max(w / float(h), img.shape[1] / float(img.shape[0]))
    return rec_resize_norm(img, image_shape, ratio)[None]


def cls_preprocess(img, image_shape=(3, 48, 192)):
    return rec_resize_norm(img, image_shape)[None]
