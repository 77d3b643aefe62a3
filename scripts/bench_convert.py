"""Benchmark: `ptocr convert --no-verify` of PP-OCRv4_mobile_det against a bare
`python -c "import torch"`, best of N each, measured in one run; prints the ratio.

Target (issue 2): ratio <= 1.5.
"""

import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / ".cache" / "models" / "PP-OCRv4_mobile_det"


def best_of(cmd, n):
    times = []
    for _ in range(n):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return min(times)


def main(n=3):
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "det.pth"
        convert = [sys.executable, "-m", "ptocr", "convert", "--arch", "PP-OCRv4_mobile_det",
                   "--paddle-dir", str(MODEL), "--out", str(out), "--no-verify", "--overwrite"]
        baseline = best_of([sys.executable, "-c", "import torch"], n)
        conv = best_of(convert, n)
    ratio = conv / baseline
    print(f"import torch: {baseline:.3f}s  ptocr convert --no-verify: {conv:.3f}s  "
          f"ratio {ratio:.2f} (target <= 1.5)")
    return ratio


if __name__ == "__main__":
    main()
