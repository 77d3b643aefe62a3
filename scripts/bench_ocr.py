"""Benchmark: end-to-end OCR time per image, ptocr (torch) against Paddle Inference running
the same three official models inside the same pre/post-processing, in one run.

(PaddleOCR's own package cannot share the project's environment, so the baseline is Paddle
Inference with our pipeline code: the ratio isolates the model runtime.)
"""

import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / ".cache" / "models"
IMAGES = ROOT.parent / "shared" / "testdata" / "images"
ARCHS = {"det": "PP-OCRv4_mobile_det", "rec": "PP-OCRv4_mobile_rec",
         "cls": "ch_ppocr_mobile_v2.0_cls"}


def per_image(ocr, images, rounds):
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for img in images:
            ocr(img)
        best = min(best, (time.perf_counter() - start) / len(images))
    return best


def main(rounds=2):
    import ptocr
    from ptocr.converter.verify import PaddleModule
    from ptocr.pipeline import read_image

    images = [read_image(p) for p in sorted(IMAGES.glob("*.jpg"))]
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = {}
        for task, arch in ARCHS.items():
            ckpt[task] = Path(tmp) / f"{arch}.pth"
            subprocess.run([sys.executable, "-m", "ptocr", "convert", "--arch", arch,
                            "--paddle-dir", str(MODELS / arch), "--out", str(ckpt[task]),
                            "--no-verify"], check=True, capture_output=True)
        ours = ptocr.OCR(**{k: str(v) for k, v in ckpt.items()})
        # the same processing and dictionary as ours, from the checkpoints
        paddle = ptocr.OCR(**{task: PaddleModule(MODELS / ARCHS[task], task,
                                                 ptocr.load(ckpt[task]).ptocr_meta)
                              for task in ckpt})
        ours(images[0]), paddle(images[0])  # warm up
        t_ours, t_paddle = per_image(ours, images, rounds), per_image(paddle, images, rounds)
    print(f"OCR per image over {len(images)} images: ptocr {t_ours:.3f}s, Paddle Inference "
          f"{t_paddle:.3f}s, ratio {t_ours / t_paddle:.2f} (lower is faster)")


if __name__ == "__main__":
    main()
