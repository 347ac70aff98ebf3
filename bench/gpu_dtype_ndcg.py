"""NDCG@10 on MovieLens 100K of GPU training at each ``--dtype`` (docs/gpu.md), on the
array-module path with NumPy: the GPU code of ``als`` and ``bpr`` (factors held in the
storage type during training, float32 arithmetic) run without a GPU. It uses recli's
internal device ``xp-numpy`` (``recli.backend``: the ``--device gpu`` code with NumPy as
the array module; the SGD batches run as vectorised NumPy instead of CUDA threads).

Run: ``python bench/gpu_dtype_ndcg.py [ML100K_DIR] [--models als,bpr]``; prints a
Markdown table. The split is ``recli prep --split leave-random --test-size 0.2 --seed 42``,
the models keep their defaults (seed 42), evaluation is ``recli eval --model -k 10``.
"""

from __future__ import annotations

import argparse
import csv
import io
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DTYPES = ("float32", "float16", "bfloat16")


def recli(*args: str) -> str:
    """``python -m recli ARGS`` from this checkout; its stdout."""
    res = subprocess.run([sys.executable, "-m", "recli", *args], cwd=ROOT, capture_output=True, text=True)
    if res.returncode:
        sys.exit(f"recli {' '.join(args)} failed:\n{res.stderr}")
    return res.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ml100k", nargs="?", default=str(ROOT.parent / "shared" / "data" / "ml-100k"))
    parser.add_argument("--models", default="als,bpr")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        rows = (Path(args.ml100k) / "u.data").read_text().split("\n")
        (work / "u.csv").write_text("user,item,rating,timestamp\n" + "\n".join(r.replace("\t", ",") for r in rows))
        recli("prep", str(work / "u.csv"), "--out", str(work / "split"), "--split", "leave-random",
              "--test-size", "0.2", "--seed", "42")
        print("| model | `--dtype` | NDCG@10 |\n|---|---|---|")
        for model in args.models.split(","):
            for dtype in DTYPES:
                out = work / f"{model}-{dtype}"
                recli("train", str(work / "split" / "train.csv"), "-m", model, "--dtype", dtype, "--device", "xp-numpy",
                      "--seed", "42", "-o", str(out))
                table = recli("eval", "--model", str(out), "-t", str(work / "split" / "test.csv"), "-k", "10",
                              "--format", "csv")
                ndcg = next(r["value"] for r in csv.DictReader(io.StringIO(table)) if r["metric"] == "ndcg")
                print(f"| {model} | {dtype} | {float(ndcg):.4f} |", flush=True)


if __name__ == "__main__":
    main()
