"""Benchmark: corpus OCR throughput (images/s), in-process engine against Ray Data with 2
workers, on the same corpus in one run: the nine test images repeated to 72 rows, PP-OCRv4
mobile det + rec. A figure, not a test: on this 2-core machine Ray's two single-threaded
workers compete with torch's intra-op threads of the in-process run."""

import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / ".cache" / "models"
IMAGES = ROOT.parent / "shared" / "testdata" / "images"


def main(copies=8):
    from ptocr.engines.corpus import run_corpus

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ckpt = {}
        for task, arch in (("det", "PP-OCRv4_mobile_det"), ("rec", "PP-OCRv4_mobile_rec")):
            ckpt[task] = tmp / f"{arch}.pth"
            subprocess.run([sys.executable, "-m", "ptocr", "convert", "--arch", arch,
                            "--paddle-dir", str(MODELS / arch), "--out", str(ckpt[task]),
                            "--no-verify"], check=True, capture_output=True)
        corpus = tmp / "corpus"
        corpus.mkdir()
        for i in range(copies):
            for img in sorted(IMAGES.glob("*.jpg")):
                (corpus / f"{i}_{img.name}").symlink_to(img)
        figures = {}
        for engine, extra in (("local", {}), ("ray", {"num_workers": 2})):
            s = run_corpus([corpus], tmp / f"out-{engine}", ckpt["det"], ckpt["rec"],
                           engine=engine, progress_bar=False, **extra)
            figures[engine] = s["done"] / s["seconds"]
            print(f"corpus OCR, {engine:5}: {s['done']} images in {s['seconds']:.1f}s, "
                  f"{figures[engine]:.2f} images/s")
    print(f"corpus OCR: Ray (2 workers) / in-process throughput ratio "
          f"{figures['ray'] / figures['local']:.2f}")


if __name__ == "__main__":
    main()
