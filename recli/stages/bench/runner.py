"""The bench run: data sets prepared once, then every cell measured in child processes,
recli and its peers interleaved, and the results reduced to one row per cell × measure."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recli.console import log
from recli.stages.bench import machine
from recli.stages.bench.data import Prepared, prepare
from recli.stages.bench.spec import PEER_INSTALL, BenchRequest, Cell, cells, dtype_skip, model_config, safe_name

MODEL_MEASURES = ("fit", "recommend_all", "recommend_one", "eval")


@dataclass
class BenchResult:
    """``rows``: one dict per cell × measure (:data:`recli.stages.bench.report.COLUMNS`);
    ``environment``: the machine; ``notes``: lines for people (skips, boundaries)."""

    rows: list[dict]
    environment: dict
    notes: list[str] = field(default_factory=list)


@dataclass
class _Runs:
    """Per-repeat child results of one cell and library: measure -> list of results."""

    results: dict[str, list[dict]] = field(default_factory=dict)
    loads: list[machine.PairLoad] = field(default_factory=list)
    error: str | None = None
    warmed: set[str] = field(default_factory=set)


def _child(job: dict, work: Path) -> dict:
    """Run one job in a fresh interpreter; the error text on failure."""
    import recli

    work.mkdir(parents=True, exist_ok=True)
    jfile, ofile = work / "job.json", work / "out.json"
    ofile.unlink(missing_ok=True)
    jfile.write_text(json.dumps(job))
    root = str(Path(recli.__file__).resolve().parent.parent)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p))
    proc = subprocess.run([sys.executable, "-m", "recli.stages.bench.child", str(jfile), str(ofile)],
                          env=env, capture_output=True, text=True)
    if proc.returncode != 0 or not ofile.exists():
        tail = (proc.stderr or "").strip().splitlines()[-1:] or [f"exit {proc.returncode}"]
        return {"error": f"the measuring process failed: {tail[0]}"}
    return json.loads(ofile.read_text())


class _Progress:
    def __init__(self, progress: Any, total: int):
        self.p = progress
        self.task = progress.add_task("bench", total=total) if progress is not None else None

    def step(self, text: str) -> None:
        if self.p is not None:
            self.p.update(self.task, description=text)

    def done(self) -> None:
        if self.p is not None:
            self.p.advance(self.task)


def bench(req: BenchRequest, progress: Any = None, workdir: str | None = None) -> BenchResult:
    """Measure every cell of ``req`` (see :mod:`recli.stages.bench`)."""
    from recli.stages.bench.peers import installed

    matrix = cells(req)  # parses and checks every list option first
    peers = req.peers
    _check_devices(req)
    versions = {p: installed(p) for p in ("implicit", "lightfm")}
    for p in peers:
        if versions[p] is None:
            log.warning(f"--against {p}: {p} is not installed, so its cells are skipped (install it with: {PEER_INSTALL[p]})")
    roofs = {t: machine.roofs(t) for t in req.thread_counts} if req.machine else None
    env = machine.environment(req.thread_counts, versions, roofs)
    guard = machine.LoadGuard(req.wait_quiet, threads=max(req.thread_counts))
    per_rep = len(MODEL_MEASURES) * sum(len(_libraries(cell, peers)) for cell in matrix)
    bar = _Progress(progress, req.repeat * (len(req.datasets) + per_rep))
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="recli-bench-", dir=workdir) as tmp:
        prepared: dict[str, Prepared] = {}
        for ds in req.datasets:
            bar.step(f"preparing {ds.label}")
            prepared[ds.label] = prepare(ds, Path(tmp) / "data" / safe_name(ds.label), req.read, req.seed, req.test_size)
            rows += _prep_rows(req, prepared[ds.label], ds.label, guard, bar, Path(tmp))
        for cell in matrix:
            rows += _cell_rows(req, cell, prepared[cell.dataset.label], peers, guard, bar, Path(tmp), roofs)
    env["load_end"] = round(guard.last, 2)
    env["probe_fastest_gflops"] = round(guard.fastest, 1)
    for row in rows:  # the CPU's speed is judged against the whole run's fastest probe
        if guard.slow(row.get("probe_gflops")):
            row["noisy"] = True
    _attach_ndcg_delta(rows)
    return BenchResult(rows, env, _notes(rows))


def _libraries(cell: Cell, peers: list[str]) -> list[str]:
    """recli, then the peers: they store float32, so they are paired with float32 cells only."""
    return ["recli"] + (peers if cell.dtype == "float32" else [])


def _check_devices(req: BenchRequest) -> None:
    from recli.backend import gpu_available, gpu_unavailable

    if "gpu" in req.devices and not gpu_available():
        raise gpu_unavailable("bench with --device cpu")


def _job(req: BenchRequest, cell: Cell, library: str, measure: str, prep: Prepared, tmp: Path) -> dict:
    folder = tmp / cell.key
    folder.mkdir(parents=True, exist_ok=True)
    return {"library": library, "measure": measure, "model": cell.model, "params": req.params, "factors": cell.factors,
            "dtype": cell.dtype,
            "threads": cell.threads, "device": cell.device, "seed": req.seed, "k": req.k, "calls": req.one_user_calls,
            "folder": str(prep.folder), "model_dir": str(folder / f"model-{library}"),
            # one user's rows go to the child's stdout (a pipe), as a served request would;
            # a file would add the file system's atomic rename to every call
            "output": "-" if measure == "recommend_one" else str(folder / f"recs-{library}.csv")}


def _prep_rows(req: BenchRequest, prep: Prepared, label: str, guard: machine.LoadGuard, bar: _Progress,
               tmp: Path) -> list[dict]:
    runs = _Runs()
    job = {"library": "recli", "measure": "prep", "source": str(prep.folder / "log.parquet"),
           "has_time": prep.has_time, "test_size": req.test_size, "seed": req.seed}
    for _ in range(req.repeat):
        bar.step(f"{label}: prep")
        pair, marks = guard.start()
        out = _child(job, tmp / "prep")
        runs.loads.append(guard.end(pair, marks))
        bar.done()
        if "error" in out:
            runs.error = out["error"]
            break
        runs.results.setdefault("prep", []).append(out)
    base = {"dataset": label, "users": prep.users, "items": prep.items, "interactions": prep.nnz, "library": "recli",
            "model": "", "threads": None, "factors": None, "device": "cpu"}
    note = "k-core (5, 5) + " + ("temporal" if prep.has_time else "random (no timestamps)") + " split of the whole log"
    row = _row(base, "prep", runs, None, None)
    row["note"] = row["note"] or note
    return [row]


def _cell_rows(req, cell: Cell, prep: Prepared, peers: list[str], guard, bar, tmp: Path, roofs) -> list[dict]:
    from recli.models.base import config_to_dict
    from recli.stages.bench.peers import skip_reason

    dtype_skipped = dtype_skip(cell.model, cell.dtype)
    cls, config = model_config(cell.model, cell.factors, req.params, req.seed, None if dtype_skipped else cell.dtype)
    libraries = _libraries(cell, peers)
    skips: dict[str, str | None] = {"recli": dtype_skipped or _recli_skip(cls, cell.device)}
    for p in peers:
        skips[p] = skips["recli"] or skip_reason(p, cell.model, config, cell.device)
    runs = {lib: _Runs() for lib in libraries}
    active = [lib for lib in libraries if skips[lib] is None]
    for rep in range(req.repeat if active else 0):
        order = active if rep % 2 == 0 else active[::-1]  # alternate who goes first
        pair, marks = guard.start()
        for lib in order:
            _measure(req, cell, lib, prep, tmp, runs[lib], bar)
        load = guard.end(pair, marks)
        for lib in order:
            runs[lib].loads.append(load)
    bar_skipped = req.repeat * len(MODEL_MEASURES) * (len(libraries) - len(active))
    for _ in range(bar_skipped):
        bar.done()
    sizes = {"users": prep.users, "items": prep.items, "nnz": prep.nnz}
    base = {"dataset": cell.dataset.label, "users": prep.users, "items": prep.items, "interactions": prep.nnz,
            "model": cell.model, "threads": cell.threads, "factors": cell.factors, "device": cell.device,
            "dtype": cell.dtype}
    rows = []
    for lib in libraries:
        for measure in MODEL_MEASURES:
            work = machine.work_of(cell.model, measure, sizes, config_to_dict(config))
            rows.append(_row({**base, "library": lib}, measure, runs[lib], runs["recli"] if lib != "recli" else None,
                             skips[lib], work=work, roof=(roofs or {}).get(cell.threads)))
        _attach_quality(rows[-len(MODEL_MEASURES):])
    return rows


def _recli_skip(cls, device: str) -> str | None:
    if device in ("cpu", "auto") or device in cls.devices:
        return None
    refusal = cls.device_refusal(device)
    return f"{refusal.message} ({refusal.hint})"


def _measure(req, cell: Cell, lib: str, prep: Prepared, tmp: Path, runs: _Runs, bar: _Progress) -> None:
    """One repeat of every model measure of ``lib`` (each a fresh child); a failure stops
    this library's remaining measures in this repeat (they need the fitted model)."""
    failed = runs.error is not None
    for measure in MODEL_MEASURES:
        bar.step(f"{cell.dataset.label} {cell.model} t={cell.threads} f={cell.factors} {cell.dtype}: {lib} {measure}")
        if not failed:
            job = _job(req, cell, lib, measure, prep, tmp)
            if lib == "recli" and measure not in runs.warmed:
                # a first, unmeasured child compiles the kernels into Numba's cache: memory a
                # compile takes stays resident, and would count in the measured child's peak
                runs.warmed.add(measure)
                _child({**job, "warm_only": True}, tmp / cell.key / lib)
            out = _child(job, tmp / cell.key / lib)
            if "error" in out:
                runs.error, failed = f"{measure}: {out['error']}", True
            else:
                runs.results.setdefault(measure, []).append(out)
        bar.done()


def _median(values: list[float | None]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _row(base: dict, measure: str, runs: _Runs, recli_runs: _Runs | None, skip: str | None,
         work: tuple[float, float] | None = None, roof: dict | None = None) -> dict:
    results = runs.results.get(measure, [])
    row = {**base, "measure": measure, "status": "ok", "note": ""}
    if skip is not None or not results:
        row.update(status="skipped" if skip is not None else "failed", note=skip or runs.error or "no result")
        return row
    values = [r["value"] for r in results]
    row.update(unit=results[0]["unit"], value=statistics.median(values), values=values, repeats=len(values),
               compile_s=_median([r.get("compile_s") for r in results]),
               total_s=_median([r.get("total_s") for r in results]), cpu_s=_median([r.get("cpu_s") for r in results]),
               peak_rss_mb=max(r["peak_rss_mb"] for r in results),
               ndcg_at_10=_median([r.get("ndcg_at_10") for r in results]),
               recall_at_10=_median([r.get("recall_at_10") for r in results]))
    if runs.loads:
        row.update(load_start=max(p.load_start for p in runs.loads), load_end=max(p.load_end for p in runs.loads),
                   other_cpu_s=max(p.other_cpu_s for p in runs.loads), noisy=any(p.noisy for p in runs.loads),
                   probe_gflops=min(p.speed for p in runs.loads))
    if recli_runs is not None:
        ours = [r["value"] for r in recli_runs.results.get(measure, [])]
        pairs = [a / b for a, b in zip(ours, values) if b]
        row["ratio"] = statistics.median(pairs) if pairs else None
    if work is not None:
        seconds = row["value"] if row["unit"] == "s/iteration" else row["total_s"]
        _achieved(row, work, seconds, roof)
    if runs.error:
        row["note"] = f"some repeats failed: {runs.error}"
    return row


def _achieved(row: dict, work: tuple[float, float], seconds: float | None, roof: dict | None) -> None:
    if not seconds:
        return
    flops, bytes_ = work
    row["gflops"], row["gbps"] = flops / seconds / 1e9, bytes_ / seconds / 1e9
    if roof:
        row["gemm_roof"] = row["gflops"] / roof["gemm_gflops"]
        row["copy_roof"] = row["gbps"] / roof["copy_gbps"]


def _attach_quality(rows: list[dict]) -> None:
    """Every measure of a cell shows the quality its model reached (from the eval measure)."""
    evals = [r for r in rows if r["measure"] == "eval" and r.get("ndcg_at_10") is not None]
    if evals:
        for r in rows:
            if r["status"] == "ok":
                r["ndcg_at_10"], r["recall_at_10"] = evals[0]["ndcg_at_10"], evals[0]["recall_at_10"]


def _attach_ndcg_delta(rows: list[dict]) -> None:
    """``ndcg_delta`` of each measured recli row at a dtype other than float32: its
    NDCG@10 minus that of the same configuration and measure at float32."""
    config = ("dataset", "model", "threads", "factors", "device", "measure")
    base = {tuple(r[c] for c in config): r["ndcg_at_10"] for r in rows
            if r["library"] == "recli" and r.get("dtype") == "float32" and r.get("ndcg_at_10") is not None}
    for r in rows:
        ref = base.get(tuple(r[c] for c in config))
        if r["library"] != "recli" or r.get("dtype") == "float32" or ref is None or r.get("ndcg_at_10") is None:
            continue
        r["ndcg_delta"] = r["ndcg_at_10"] - ref


def _notes(rows: list[dict]) -> list[str]:
    seen, notes = set(), []
    for r in rows:
        if r["status"] != "ok" and r["note"] not in seen:
            seen.add(r["note"])
            notes.append(f"{r['library']} {r['model'] or 'prep'}: {r['status']}: {r['note']}")
    return notes
