"""The pandas equivalent of ``recli prep IN --k-core --min-user-interactions 5
--min-item-interactions 5 --split temporal --test-size 0.2 --out DIR`` (the peer in bench_prep.py).

Same rules as recli: ids stay strings, timestamps epoch seconds, duplicate (user, item)
pairs keep the latest row, the (5, 5)-core, and the latest 20% of rows by time (file
order breaking ties) go to test. Written the way a careful pandas user would: the
pyarrow CSV engine and Arrow-backed strings (object strings need several times the memory).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd


def main(src: str, out: str, min_user: int = 5, min_item: int = 5, test_size: float = 0.2) -> None:
    df = pd.read_csv(src, engine="pyarrow", dtype={"user": "string[pyarrow]", "item": "string[pyarrow]",
                                                   "rating": "float64", "timestamp": "int64"})
    n_read = len(df)
    df = df.dropna(subset=["user", "item"])
    df = df.sort_values("timestamp", kind="stable")
    df = df.drop_duplicates(subset=["user", "item"], keep="last").sort_index()
    while True:  # k-core: repeat both filters until they hold
        u_count = df["user"].map(df["user"].value_counts())
        i_count = df["item"].map(df["item"].value_counts())
        keep = (u_count >= min_user) & (i_count >= min_item)
        if keep.all():
            break
        df = df[keep.to_numpy()]
    order = np.argsort(df["timestamp"].to_numpy(), kind="stable")
    n_test = int(np.floor(len(df) * test_size + 0.5))
    is_test = np.zeros(len(df), dtype=bool)
    is_test[order[len(df) - n_test:]] = True
    Path(out).mkdir(parents=True, exist_ok=True)
    df[~is_test].to_csv(Path(out) / "train.csv", index=False)
    df[is_test].to_csv(Path(out) / "test.csv", index=False)
    print(f"read {n_read} train {int((~is_test).sum())} test {int(is_test.sum())}", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
