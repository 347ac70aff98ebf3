"""``recli bench --check parity``: every model through every backend it has, from the
same initialisation, compared with its reference backend (``Model.gpu_reference``): the
Numba CPU backend, or for the SGD models (mini-batches on the GPU, Hogwild on the CPU:
different computations by design) the array-module path on NumPy.

Backends: ``cpu`` (Numba kernels), ``xp-numpy`` (the array-module path on NumPy, what
runs on a GPU) and ``gpu`` (CuPy) when one is usable; a model that declares only ``cpu``,
or an SGD model without a usable GPU, has nothing to compare and is reported as skipped.
Each backend fits the same config (same seed, so the same initial factors and, on the
mini-batch path, the same samples) on the same training matrix; the report gives the
largest difference of the learned arrays and of the scores of the first 256 users,
relative to the largest absolute value on the reference side, and the mean top-10 overlap
(training items excluded). The check fails (exit 3) beyond ``TOLERANCE``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from recli.console import log

# float32 kernels summing in different orders: relative differences, and the top-10 overlap
TOLERANCE = {"factors": 1e-3, "scores": 1e-3, "top10_overlap": 0.99}
SCORED_USERS = 256


def backends_of(cls: type) -> list[str]:
    """The reference backend first, then the backends compared with it."""
    from recli.backend import gpu_available

    if "gpu" not in cls.devices:
        return ["cpu"]
    gpu = ["gpu"] if gpu_available() else []
    return ["xp-numpy"] + gpu if cls.gpu_reference == "xp-numpy" else ["cpu", "xp-numpy"] + gpu


def _top10(scores: np.ndarray, seen: Any, users: np.ndarray) -> np.ndarray:
    s = np.array(scores, dtype=np.float64, copy=True)
    rows = seen[users]
    s[np.repeat(np.arange(rows.shape[0]), np.diff(rows.indptr)), rows.indices] = -np.inf
    k = min(10, s.shape[1])
    return np.argpartition(-s, k - 1, axis=1)[:, :k]


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:  # e.g. a similarity graph with other neighbours: not comparable cell by cell
        return float("inf")
    scale = max(float(np.abs(a).max(initial=0.0)), 1e-12)
    return float(np.abs(a - b).max(initial=0.0)) / scale


def parity_rows(model: str, config: Any, user_items: Any, threads: int = 0) -> list[dict]:
    """One row per non-CPU backend of ``model`` (or one skipped row)."""
    from recli.backend import get_backend, threads_context
    from recli.models import get_model_class

    cls = get_model_class(model)
    names = backends_of(cls)
    if len(names) == 1:
        note = (f"{model} has CPU kernels only: there is no second backend to compare" if names == ["cpu"] else
                f"{model} trains by mini-batches on the GPU and by Hogwild SGD on the CPU (different factors by "
                "design): its GPU is compared with the mini-batch path on NumPy, and no GPU is usable here")
        return [{"model": model, "backend": names[0], "status": "skipped", "note": note}]
    fitted = {}
    for name in names:
        with threads_context(threads):
            fitted[name] = cls(config, get_backend(name, threads)).fit(user_items)
    users = np.arange(min(SCORED_USERS, user_items.shape[0]), dtype=np.int64)
    ref = fitted[names[0]]
    ref_arrays, ref_scores = ref.to_arrays(), np.asarray(ref.score(users, None))
    ref_top = _top10(ref_scores, user_items, users)
    rows = []
    for name in names[1:]:
        other = fitted[name]
        arrays = other.to_arrays()
        factors = max(_rel(ref_arrays[k], arrays[k]) for k in ref_arrays if np.asarray(ref_arrays[k]).dtype.kind == "f")
        scores = np.asarray(other.backend.to_host(other.score(users, None)))
        top = _top10(scores, user_items, users)
        overlap = float(np.mean([len(set(a) & set(b)) / a.shape[0] for a, b in zip(ref_top, top)]))
        ok = (factors <= TOLERANCE["factors"] and _rel(ref_scores, scores) <= TOLERANCE["scores"]
              and overlap >= TOLERANCE["top10_overlap"])
        rows.append({"model": model, "backend": name, "factors_max_rel_diff": factors,
                     "scores_max_rel_diff": _rel(ref_scores, scores), "top10_overlap": overlap,
                     "status": "ok" if ok else "failed", "note": "" if ok else _beyond()})
        log.info(f"parity {model} {names[0]} vs {name}: factors {factors:.2e}, overlap {overlap:.3f}")
    return rows


def _beyond() -> str:
    return ("beyond tolerance (factors and scores ≤ {factors:g} relative, top-10 overlap ≥ {top10_overlap:g})"
            .format(**TOLERANCE))


def check_parity(models: list[str], configs: dict[str, Any], user_items: Any, threads: int = 0) -> list[dict]:
    """Parity rows of every model; raises :class:`recli.errors.ParityError` (exit 3) after
    computing them all when any backend is beyond tolerance (the rows ride on the error)."""
    from recli.errors import ParityError

    rows = [r for m in models for r in parity_rows(m, configs[m], user_items, threads)]
    failed = [f"{r['model']} on {r['backend']}" for r in rows if r["status"] == "failed"]
    if failed:
        raise ParityError(f"backend parity failed for {', '.join(failed)}: {_beyond()}",
                          hint="run recli bench --check parity -v for the differences; a kernel disagrees "
                               "with its reference backend", rows=rows)
    return rows


def parity(req: Any) -> list[dict]:
    """``recli bench --check parity`` for a :class:`~recli.stages.bench.spec.BenchRequest`:
    its models at its first factor and thread count, on its first data set's training
    matrix (the bench holdout). Raises :class:`recli.errors.ParityError` beyond tolerance."""
    import tempfile
    from pathlib import Path

    from recli.stages.bench.data import load, prepare
    from recli.stages.bench.spec import has_factors, model_config

    req.check_params()
    models = req.model_names
    configs = {m: model_config(m, req.factor_counts[0] if has_factors(m) else None, req.params, req.seed)[1]
               for m in models}
    with tempfile.TemporaryDirectory(prefix="recli-parity-") as tmp:
        prepare(req.datasets[0], Path(tmp), req.read, req.seed, req.test_size)
        user_items = load(tmp).user_items
    return check_parity(models, configs, user_items, req.thread_counts[0])
