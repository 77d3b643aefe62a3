"""Pre/post-processing and the det -> cls -> rec OCR system, following PaddleOCR's
tools/infer and ppocr/postprocess behaviour."""
