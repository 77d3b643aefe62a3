"""SRN's inputs, as PaddleOCR prepares them (tools/infer/predict_rec.py process_image_srn;
ppocr/data/imaug/rec_img_aug.py SRNRecResizeImg): the crop in grayscale on a black canvas
of image_shape (resized to 1, 2 or 3 times the height when it is that narrow, else
stretched to the full width), values 0..255 unnormalised; and four constant inputs the
program takes after the image: feature positions (H/8 * W/8), reading positions
(max_text_length), and the forward / backward self-attention biases of GSRM (-1e9 above /
below the diagonal, one copy per head)."""

import numpy as np

from ..registry import register


def resize_norm_img_srn(img, image_shape):
    import cv2

    if img is None or img.ndim < 2 or img.shape[0] < 1 or img.shape[1] < 1:
        raise ValueError("empty image")
    _, h_target, w_target = image_shape
    h, w = img.shape[:2]
    for k in (1, 2, 3):
        if w <= h * k:
            resized = cv2.resize(img, (h_target * k, h_target))
            break
    else:
        resized = cv2.resize(img, (w_target, h_target))
    gray = cv2.cvtColor(np.asarray(resized), cv2.COLOR_BGR2GRAY)
    canvas = np.zeros((h_target, w_target))
    canvas[:, : gray.shape[1]] = gray
    return canvas[None].astype(np.float32)


def srn_other_inputs(image_shape, num_heads, max_text_length):
    _, h, w = image_shape
    feature_dim = int((h / 8) * (w / 8))
    ones = np.ones((1, max_text_length, max_text_length))
    bias1 = np.tile(np.triu(ones, 1), [num_heads, 1, 1]) * -1e9
    bias2 = np.tile(np.tril(ones, -1), [num_heads, 1, 1]) * -1e9
    return {"encoder_word_pos": np.arange(feature_dim).reshape(feature_dim, 1).astype(np.int64),
            "gsrm_word_pos": np.arange(max_text_length).reshape(-1, 1).astype(np.int64),
            # predict_rec feeds the biases as float32
            "gsrm_slf_attn_bias1": bias1.astype(np.float32),
            "gsrm_slf_attn_bias2": bias2.astype(np.float32)}


@register("PreProcess")
class SRNRecResizeImg:
    """image_shape (1, 64, 256); sets the program's inputs [image, encoder_word_pos,
    gsrm_word_pos, gsrm_slf_attn_bias1, gsrm_slf_attn_bias2]."""

    def __init__(self, image_shape=(1, 64, 256), num_heads=8, max_text_length=25,
                 **_training_only):
        self.image_shape = tuple(int(v) for v in image_shape)
        if len(self.image_shape) != 3:
            raise ValueError(f"SRNRecResizeImg image_shape is (C, H, W), not {image_shape}")
        self.others = srn_other_inputs(self.image_shape, int(num_heads), int(max_text_length))

    def __call__(self, data):
        data["image"] = resize_norm_img_srn(data["image"], self.image_shape)
        data.update({k: v.copy() for k, v in self.others.items()})
        data["model_inputs"] = ["image", *self.others]
        return data
