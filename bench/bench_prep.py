"""Benchmark ``recli prep`` against an equivalent pandas script on a 20M-row interaction log.

    python bench/bench_prep.py                 # 20M rows, 1 repetition of each
    python bench/bench_prep.py --rows 2000000 --repeat 3

Generates the CSV with the package's seeded generator (to /tmp, never into the repo),
then runs, as separate processes and interleaved (recli, pandas, pandas, recli, ...):

    recli prep IN --k-core --min-user-interactions 5 --min-item-interactions 5 --split temporal --out DIR
    python bench/pandas_prep.py IN DIR       (same rules, pyarrow engine)

Wall time and peak RSS (``ru_maxrss`` of that child, from ``os.wait4``) are reported per
run, with medians and the pandas/recli ratio; the two test files are compared byte for
byte so the peer is known to do the same work. Timings are noisy on a shared machine:
compare the ratio, and rerun with ``--repeat``.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RECLI_ARGS = ["--k-core", "--min-user-interactions", "5", "--min-item-interactions", "5", "--split", "temporal"]


def generate(path: Path, rows: int, users: int, items: int, seed: int) -> None:
    sys.path.insert(0, str(REPO))
    from recli.data.synth import interactions

    t = time.perf_counter()
    interactions(users, items, rows, seed).write_csv(path)
    print(f"generated {path} ({rows:,} rows, {path.stat().st_size / 2**20:,.0f} MiB) in "
          f"{time.perf_counter() - t:.1f} s", file=sys.stderr)


def measure(cmd: list[str]) -> tuple[float, float, float]:
    """Run ``cmd``; return (wall seconds, peak RSS GiB, CPU seconds) of that process alone."""
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}")
    return wall, usage.ru_maxrss / 2**20, usage.ru_utime + usage.ru_stime  # ru_maxrss is KiB on Linux


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=20_000_000)
    ap.add_argument("--users", type=int, default=200_000)
    ap.add_argument("--items", type=int, default=50_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--workdir", default="/tmp/recli-bench-prep")
    ap.add_argument("--skip-pandas", action="store_true")
    args = ap.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    src = work / f"interactions-{args.rows}-{args.seed}.csv"
    if not src.exists():
        generate(src, args.rows, args.users, args.items, args.seed)
    tools = {
        "recli": lambda out: [sys.executable, "-m", "recli", "prep", str(src), *RECLI_ARGS, "--out", str(out), "-q"],
        "pandas": lambda out: [sys.executable, str(REPO / "bench" / "pandas_prep.py"), str(src), str(out)],
    }
    if args.skip_pandas:
        del tools["pandas"]
    results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in tools}
    for rep in range(args.repeat):
        order = list(tools) if rep % 2 == 0 else list(reversed(tools))
        for name in order:
            out = work / f"out-{name}"
            shutil.rmtree(out, ignore_errors=True)
            wall, rss, cpu = measure(tools[name](out))
            results[name].append((wall, rss, cpu))
            print(f"rep {rep + 1} {name:6s} {wall:7.1f} s wall  {cpu:7.1f} s CPU  {rss:5.2f} GiB", file=sys.stderr)
    if "pandas" in tools:
        same = filecmp.cmp(work / "out-recli" / "test.csv", work / "out-pandas" / "test.csv", shallow=False)
        print(f"test.csv identical between recli and pandas: {same}")
    print(f"\n{args.rows:,} rows, {args.repeat} repetition(s), {os.cpu_count()} cores, "
          f"load average at the end {os.getloadavg()[0]:.1f} (other jobs share the machine)")
    print(f"{'tool':8s} {'median wall s':>14s} {'median CPU s':>13s} {'median peak RSS GiB':>20s}")
    med = {n: tuple(statistics.median(x[k] for x in r) for k in range(3)) for n, r in results.items()}
    for name, (wall, rss, cpu) in med.items():
        print(f"{name:8s} {wall:14.1f} {cpu:13.1f} {rss:20.2f}")
    if "pandas" in med:
        print(f"pandas / recli: wall {med['pandas'][0] / med['recli'][0]:.2f}x, memory {med['pandas'][1] / med['recli'][1]:.2f}x")


if __name__ == "__main__":
    main()
