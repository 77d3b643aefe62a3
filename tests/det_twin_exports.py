"""Module fixtures' helper: export a paddle twin (tests/paddle_det_twins.py) as a 2.x program
and as PIR (+ the same weights as a training .pdparams), each in its own process, both
running at once."""

import subprocess
import sys
from pathlib import Path

TWINS = Path(__file__).with_name("paddle_det_twins.py")


def export_twin(arch, root):
    """{'pdmodel': dir, 'pir': dir, 'pdparams': file} for the twin ``arch``."""
    procs = {}
    for fmt in ("pdmodel", "pir"):
        (root / fmt).mkdir(parents=True, exist_ok=True)
        procs[fmt] = subprocess.Popen(
            [sys.executable, str(TWINS), arch, str(root / fmt / "inference"), fmt],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for fmt, proc in procs.items():
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, f"{arch} {fmt} export failed: {err[-3000:]}"
    return {"pdmodel": root / "pdmodel", "pir": root / "pir",
            "pdparams": root / "train" / "best_accuracy.pdparams"}


def names_file_lines(weights):
    """`name<TAB>d0,d1,...` lines of a training checkpoint, as tests/paddle_names/ holds."""
    return [f"{k}\t{','.join(str(d) for d in v.shape)}" for k, v in weights.tensors.items()]
