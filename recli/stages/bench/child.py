"""One measurement in a fresh process: ``python -m recli.stages.bench.child JOB.json OUT.json``.

The job names the library (recli or a peer), the measure, the configuration and the work
folder. The child reads the data first (not timed: every library starts from the same
arrays in memory), runs a small warm-up call that pays any JIT compile or cache load
(``compile_s``), then the timed call, and writes a JSON result with its wall and CPU
seconds and its peak resident memory (``VmHWM``: the whole process, data included; not
``ru_maxrss``, which Linux carries over from the parent through fork and exec).

A ``warm_only`` job stops after the warm-up: the runner's first recli child of each
measure fills Numba's cache that way, so the measured children load the kernels from it
and their peak memory holds no compiler (a compile's memory stays resident).
"""

from __future__ import annotations

import json
import resource
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

WARM_ROWS = 256  # users in the warm-up fit / recommend call


def clock(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """(wall seconds, CPU seconds of every thread of this process, result) of ``fn()``."""
    t, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - t, time.process_time() - cpu, out


def job_config(job: dict):
    from recli.stages.bench.spec import model_config

    return model_config(job["model"], job.get("factors"), job.get("params") or [], job.get("seed"), job.get("dtype"))


# -- recli ------------------------------------------------------------------------------
def recli_fit(job: dict, data) -> dict:
    """``recli train``'s stage on the training matrix; per-epoch seconds from the epoch
    callback. The warm-up fits one epoch on the first rows (JIT compile or cache load)."""
    from recli.artifacts import save_model
    from recli.data.matrix import Interactions
    from recli.models.base import config_to_dict
    from recli.stages.train import train

    cls, config = job_config(job)
    warm_cfg = replace(config, iterations=1) if hasattr(config, "iterations") else config
    ui = data.user_items
    small = Interactions(data.users, data.items, ui[: min(WARM_ROWS, ui.shape[0])], None, 0)
    kw = dict(device=job["device"], threads=job["threads"])
    compile_s, _, _ = clock(lambda: train(small, cls, warm_cfg, **kw))
    if job.get("warm_only"):
        return {"compile_s": compile_s}
    epochs: list[float] = []
    full = Interactions(data.users, data.items, ui, None, int(ui.nnz))
    wall, cpu, result = clock(lambda: train(full, cls, config, on_epoch=lambda i: epochs.append(i.elapsed), **kw))
    save_model(job["model_dir"], result.model, data.users, data.items, ui, {"config": config_to_dict(config)}, force=True)
    return fit_result(epochs if cls.trains_in_epochs else [], wall, cpu, compile_s)


def fit_result(epochs: list[float], wall: float, cpu: float, compile_s: float | None) -> dict:
    if epochs:  # steady state: the median epoch (the warm-up already paid the compile)
        return {"value": statistics.median(epochs), "unit": "s/iteration", "total_s": wall, "cpu_s": cpu,
                "compile_s": compile_s, "epochs": epochs}
    return {"value": wall, "unit": "s", "total_s": wall, "cpu_s": cpu, "compile_s": compile_s}


def _load(job: dict):
    from recli.artifacts import load_model
    from recli.backend import get_backend

    return load_model(job["model_dir"], get_backend(job["device"], job["threads"]))


def recli_recommend_all(job: dict, data) -> dict:
    """``recli recommend MODEL --all-users -k K -o FILE.csv``: scored, top-k, ids written."""
    from recli.backend import threads_context
    from recli.stages.recommend import RecommendRequest, UserPlan, recommend, recommend_batches

    mf = _load(job)
    n = len(mf.users)
    warm = UserPlan([], np.arange(min(WARM_ROWS, n), dtype=np.int64), None)
    warm.ids = range(warm.uidx.shape[0])
    with threads_context(job["threads"]):
        compile_s, _, _ = clock(lambda: list(recommend_batches(mf, warm, job["k"])))
    if job.get("warm_only"):
        return {"compile_s": compile_s}
    req = RecommendRequest(all_users=True, k=job["k"], output=job["output"], threads=job["threads"])
    wall, cpu, _ = clock(lambda: recommend(mf, req))
    return {"value": n / wall, "unit": "users/s", "total_s": wall, "cpu_s": cpu, "compile_s": compile_s}


def recli_recommend_one(job: dict, data) -> dict:
    """``recli recommend MODEL --user ID -k K``, the model loaded: the median of
    ``calls`` calls after a first one (reported as ``compile_s``)."""
    from recli.stages.recommend import RecommendRequest, recommend

    mf = _load(job)
    user = mf.users.ids[len(mf.users) // 2]

    def once():
        return recommend(mf, RecommendRequest(user=[user], k=job["k"], output=job["output"], threads=job["threads"]))

    if job.get("warm_only"):
        return {"compile_s": clock(once)[0]}
    return latency(once, job["calls"])


def latency(once: Callable[[], Any], calls: int) -> dict:
    compile_s, _, _ = clock(once)
    times, cpus = [], []
    for _ in range(calls):
        wall, cpu, _ = clock(once)
        times.append(wall)
        cpus.append(cpu)
    return {"value": 1000 * statistics.median(times), "unit": "ms", "total_s": sum(times),
            "cpu_s": statistics.median(cpus), "compile_s": compile_s}


def recli_eval(job: dict, data) -> dict:
    """``recli eval --model MODEL --test TEST -k 10 -m ndcg,recall`` on the held-out rows."""
    from recli.stages.evaluate_model import evaluate_model

    mf = _load(job)
    test = data.test

    def run(frame):
        return evaluate_model(mf, frame, label=job["model"], ks=(10,), metrics=["ndcg", "recall"])

    first = test["user"].unique(maintain_order=True).head(50)
    compile_s, _, _ = clock(lambda: run(test.filter(test["user"].is_in(first.implode()))))
    if job.get("warm_only"):
        return {"compile_s": compile_s}
    wall, cpu, report = clock(lambda: run(test))
    values = {row["metric"]: row["value"] for row in report.results.iter_rows(named=True)}
    return {"value": wall, "unit": "s", "total_s": wall, "cpu_s": cpu, "compile_s": compile_s,
            "ndcg_at_10": values.get("ndcg"), "recall_at_10": values.get("recall")}


def recli_prep(job: dict, data) -> dict:
    """``recli prep LOG --k-core --min-user-interactions 5 --min-item-interactions 5 --split
    temporal`` (``random`` without timestamps) on the Parquet copy of the log."""
    from recli.stages.prep import PrepOptions, prep

    opts = PrepOptions(min_user_interactions=5, min_item_interactions=5, k_core=True,
                       split="temporal" if job["has_time"] else "random", test_size=job["test_size"], seed=job["seed"])
    wall, cpu, _ = clock(lambda: prep(job["source"], opts))
    return {"value": wall, "unit": "s", "total_s": wall, "cpu_s": cpu, "compile_s": None}


RECLI = {"fit": recli_fit, "recommend_all": recli_recommend_all, "recommend_one": recli_recommend_one,
         "eval": recli_eval, "prep": recli_prep}


def run(job: dict) -> dict:
    """Run ``job`` in this process; the result adds ``peak_rss_mb``."""
    from recli.stages.bench.data import load

    data = None if job["measure"] == "prep" else load(job["folder"])
    if job["library"] == "recli":
        out = RECLI[job["measure"]](job, data)
    else:
        from recli.stages.bench.peers import run_peer

        out = run_peer(job, data)
    out["peak_rss_mb"] = peak_rss_mib()
    return out


def peak_rss_mib() -> float:
    """This process's peak resident memory in MiB: ``VmHWM`` of /proc/self/status (this
    address space only), else ``ru_maxrss`` (KiB on Linux, bytes on macOS)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024.0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    job = json.loads(Path(args[0]).read_text())
    try:
        out = run(job)
    except Exception as exc:  # reported as the cell's note; the parent decides what to do
        from recli.errors import RecliError

        msg = exc.message if isinstance(exc, RecliError) else f"{type(exc).__name__}: {exc}"
        out = {"error": msg}
    Path(args[1]).write_text(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
