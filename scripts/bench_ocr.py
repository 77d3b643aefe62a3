"""Benchmark: end-to-end OCR (det -> cls -> rec) time per image on the test images, one run,
--threads CPU threads everywhere:

  * ptocr.OCR with each --engines form (eager = ptocr.load's fused form; compiled; aoti);
  * RapidOCR (rapidocr-onnxruntime==1.4.4: ONNX Runtime on its ONNX files of the same official
    PP-OCRv4 det/rec and v2.0 cls), set to PaddleOCR's predict_system values ptocr uses (det
    limit side 960 'max', box thresh 0.6, unclip 1.5, no dilation, cls on);
  * Paddle Inference with MKLDNN on, running the same three official models inside ptocr's
    pipeline code (so the ratio isolates the model runtime), in a child process: in one
    process paddle's OpenMP threads and torch's fight over the cores.

ptocr and RapidOCR are timed in alternating passes over the images (--rounds each, median
per image), so load from other processes falls on both alike; ptocr also runs the folder as
one call of ``OCR.many`` (classifier and recogniser batches shared across images, the same
results). Paddle runs in its child process before them.
"""

import argparse
import json
import statistics
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
    ocr(images[0])  # warm up
    passes = []
    for _ in range(rounds):
        start = time.perf_counter()
        for img in images:
            ocr(img)
        passes.append((time.perf_counter() - start) / len(images))
    return statistics.median(passes)


def alternating(systems, images, rounds):
    """{name: median seconds per image}: one pass over the images per system in turn."""
    for run in systems.values():
        run([images[0]])  # warm up
    passes = {name: [] for name in systems}
    for _ in range(rounds):
        for name, run in systems.items():
            start = time.perf_counter()
            run(images)
            passes[name].append((time.perf_counter() - start) / len(images))
    return {name: statistics.median(p) for name, p in passes.items()}


def load_images():
    from ptocr.pipeline import read_image

    return [read_image(p) for p in sorted(IMAGES.iterdir())
            if p.suffix.lower() in (".jpg", ".jpeg", ".png")]


def rapidocr(threads):
    from rapidocr_onnxruntime import RapidOCR

    engine = RapidOCR(intra_op_num_threads=threads, inter_op_num_threads=1,
                      det_limit_side_len=960, det_limit_type="max", det_box_thresh=0.6,
                      det_unclip_ratio=1.5, det_use_dilation=False, use_cls=True)
    return lambda img: engine(img)


def paddle_worker(ckpt_dir, threads, rounds, out):
    import torch

    import ptocr
    from ptocr.converter.verify import PaddleModule

    torch.set_num_threads(threads)
    models = {task: PaddleModule(MODELS / arch, task,
                                 ptocr.load(Path(ckpt_dir) / f"{arch}.pth").ptocr_meta,
                                 mkldnn=True)
              for task, arch in ARCHS.items()}
    for m in models.values():  # paddle's CPU threads
        m.program.predictor  # noqa: B018
    ocr = ptocr.OCR(**models)
    Path(out).write_text(json.dumps({"seconds": per_image(ocr, load_images(), rounds)}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--engines", default="eager", help="ptocr engines, comma list of "
                    "eager,compiled,aoti (aoti compiles each model once into $PTOCR_HOME)")
    ap.add_argument("--paddle-worker", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.paddle_worker:
        ckpt_dir, out = args.paddle_worker
        return paddle_worker(ckpt_dir, args.threads, args.rounds, out)
    import torch

    import ptocr

    torch.set_num_threads(args.threads)
    images = load_images()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = {}
        for task, arch in ARCHS.items():
            ckpt[task] = Path(tmp) / f"{arch}.pth"
            subprocess.run([sys.executable, "-m", "ptocr", "convert", "--arch", arch,
                            "--paddle-dir", str(MODELS / arch), "--out", str(ckpt[task]),
                            "--no-verify"], check=True, capture_output=True)
        out = Path(tmp) / "paddle.json"
        subprocess.run([sys.executable, __file__, "--paddle-worker", tmp, str(out),
                        "--threads", str(args.threads), "--rounds", str(args.rounds)],
                       check=True, capture_output=True)
        paddle = json.loads(out.read_text())["seconds"]
        systems, ready = {}, {}
        for engine in args.engines.split(","):
            started = time.perf_counter()
            ocr = ptocr.OCR(**{k: str(v) for k, v in ckpt.items()}, engine=engine)
            ready[f"ptocr ({engine})"] = time.perf_counter() - started
            systems[f"ptocr ({engine})"] = lambda imgs, ocr=ocr: [ocr(i) for i in imgs]
            systems[f"ptocr ({engine}, OCR.many over the folder)"] = \
                lambda imgs, ocr=ocr: ocr.many(imgs)
        rapid_run = rapidocr(args.threads)
        systems["RapidOCR (ONNX Runtime)"] = lambda imgs: [rapid_run(i) for i in imgs]
        for name, sec in alternating(systems, images, args.rounds).items():
            results[name] = (sec, ready.get(name))
        results["Paddle Inference MKLDNN (same pipeline)"] = (paddle, None)
    rapid = results["RapidOCR (ONNX Runtime)"][0]
    print(f"OCR per image over {len(images)} images (det+cls+rec), {args.threads} threads, "
          f"median of {args.rounds} alternating passes:")
    for name, (sec, ready) in results.items():
        extra = f", ready in {ready:.1f}s" if ready is not None else ""
        print(f"  {name:42} {sec:.3f}s  x RapidOCR {sec / rapid:.2f}{extra}")


if __name__ == "__main__":
    main()
