"""``recli tune``: a hyper-parameter study on Optuna, trials run in this process.

:func:`plan_study` checks every option before anything is written (space, metrics,
sampler, pruner, storage URL); :func:`load_folds` loads TRAIN once and holds out the
validation data (``--valid FILE``, or ``--valid-split STRATEGY:SIZE`` carved from TRAIN's
cells with prep's :func:`recli.data.split.split_mask`, ``--cv K`` seeded splits);
:func:`run_trials` runs trials until the study holds ``--trials`` finished ones
(:mod:`recli.stages.tune_storage` says what counts). Each trial's value is the mean over
folds of each ``--metric`` on the validation data; ``fit_time`` (seconds) can be an
objective too. Optuna is imported here only, never by ``recli --help``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recli.console import log
from recli.data.matrix import Interactions
from recli.errors import ConfigError, RecliError
from recli.stages import tune_cache as tc
from recli.stages import tune_space as ts
from recli.stages import tune_storage as st

SAMPLERS = ("tpe", "random", "grid", "cmaes", "nsga2")
PRUNERS = ("median", "hyperband", "none")
FIT_TIME = "fit_time"
DEFAULT_TRIALS = 20


@dataclass
class TuneOptions:
    """Every ``recli tune`` setting (the CLI fills it; workers receive a copy)."""

    train_file: str
    model: str
    out: str
    metrics: list[str] = field(default_factory=lambda: ["ndcg@10"])
    trials: int | None = None
    timeout: float | None = None
    seed: int = 42
    threads: int = 0
    sampler: str | None = None
    pruner: str | None = None
    storage: str | None = None
    study_name: str = "recli"
    workers: int = 1
    pick: str | None = None
    valid: str | None = None
    valid_split: str = "leave-random:0.2"
    cv: int = 1
    space_file: str | None = None
    space_params: list[str] = field(default_factory=list)
    params: list[str] = field(default_factory=list)
    params_file: str | None = None
    device: str = "cpu"
    read: Any = None
    item_features: str | None = None
    user_features: str | None = None
    _tables: list[Any] | None = field(default=None, repr=False, compare=False)

    def feature_tables(self) -> list[Any]:
        """The ``--item-features`` / ``--user-features`` tables (none when not given), read
        once: the folds, the trial runner and ``--final-train`` share them."""
        from recli.stages.train import load_features

        if self._tables is None:
            self._tables = load_features(None, item=self.item_features, user=self.user_features)
        return self._tables


@dataclass(frozen=True)
class Objective:
    """One ``--metric``: registry name and cutoff, its column key, and whether to maximise."""

    name: str
    k: int | None
    key: str
    maximize: bool


@dataclass
class Plan:
    """The checked study: model class, fixed values, space, objectives, sampler, pruner, N."""

    cls: type
    base: dict[str, Any]
    space: dict[str, ts.Dim]
    objectives: list[Objective]
    sampler: str
    pruner: str
    trials: int
    grid: dict[str, list[Any]] | None
    db_path: Any

    def identity(self) -> dict[str, Any]:
        """What a resumed study must share (compared as JSON)."""
        import json

        ident = {"model": self.cls.name, "space": ts.space_to_dict(self.space), "fixed": self.base,
                 "metrics": [o.key for o in self.objectives], "sampler": self.sampler}
        return json.loads(json.dumps(ident, default=str))


def metric_of(text: str, option: str) -> tuple[str, int | None, str]:
    """``ndcg@10`` → ``("ndcg", 10, "ndcg@10")``; ``fit_time`` (or ``fit-time``, ``time``) is
    the fit's seconds."""
    from recli.metrics.registry import metric_key, parse_metric

    if text.strip().lower().replace("-", "_") in (FIT_TIME, "time"):
        return FIT_TIME, None, FIT_TIME
    name, k = parse_metric(text, option)
    return name, k, metric_key(name, k)


def parse_objectives(texts: list[str], cls: type, config: Any = None) -> list[Objective]:
    """``--metric`` values → objectives; the metric registry gives each direction."""
    from recli.metrics.registry import METRICS

    out = []
    for text in texts or ["ndcg@10"]:
        name, k, key = metric_of(text, "--metric")
        if name == FIT_TIME:
            out.append(Objective(FIT_TIME, None, FIT_TIME, False))
            continue
        spec = METRICS[name]
        if spec.kind == "rating" and not (cls.rates(config) if config is not None else cls.predicts_ratings):
            raise ConfigError(f"--metric {name} needs predicted ratings, and {cls.name!r} ranks items without them",
                              hint="use a ranking metric such as ndcg@10")
        # a rating metric's predictions are the model's own pair scores (validation_score)
        if set(spec.needs) - {"train"} - ({"predictions"} if spec.kind == "rating" else set()):
            raise ConfigError(f"--metric {name} needs {', '.join(spec.needs)}, which a validation set does not give",
                              hint="use ranking metrics (ndcg@10, recall@20), coverage@10, novelty@10 or fit_time")
        out.append(Objective(name, k, key, spec.higher_is_better))
    if len({o.key for o in out}) != len(out):
        raise ConfigError("the same --metric is given twice", hint="give each metric once")
    return out


def pick_index(objectives: list[Objective], pick: str | None) -> int:
    """Which objective ``--pick`` names (default: the first)."""
    if pick is None:
        return 0
    key = metric_of(pick, "--pick")[2]
    keys = [o.key for o in objectives]
    if key not in keys:
        raise ConfigError(f"--pick {pick} is not one of the study's metrics", hint=f"use one of: {', '.join(keys)}")
    return keys.index(key)


def plan_study(opts: TuneOptions) -> Plan:
    """Check every option (no side effects): the errors of a bad command come from here."""
    from recli.stages.train import check_feature_options, resolve_config

    cls, config = resolve_config(opts.model, params=opts.params, config_file=opts.params_file)
    check_feature_options(cls, item=opts.item_features, user=opts.user_features)
    base = {k: v for k, v in vars(config).items() if k in _given(opts, cls)}
    file_space = ts.load_space_file(opts.space_file) if opts.space_file else None
    space = ts.build_space(cls, base, file_space, opts.space_params)
    objectives = parse_objectives(opts.metrics, cls, config)
    pick_index(objectives, opts.pick)
    multi = len(objectives) > 1
    sampler = (opts.sampler or ("nsga2" if multi else "tpe")).lower()
    if sampler not in SAMPLERS:
        raise ConfigError(f"unknown sampler {opts.sampler!r}", hint=f"use one of: {', '.join(SAMPLERS)}")
    if sampler == "cmaes" and multi:
        raise ConfigError("--sampler cmaes optimises one metric", hint="use --sampler nsga2 (the default) with several")
    pruner = _pruner_choice(opts.pruner, cls, objectives)
    if opts.trials is not None and opts.trials < 1:
        raise ConfigError(f"--trials {opts.trials} must be at least 1", hint="e.g. --trials 30")
    if opts.workers < 1:
        raise ConfigError("--workers must be at least 1", hint="e.g. --workers 2")
    db_path = st.check_storage_url(opts.storage)
    if opts.workers > 1 and db_path is None:
        raise ConfigError("--workers needs a database storage (a journal folder runs in one process)",
                          hint="add --storage sqlite:///study.db")
    if opts.cv < 1 or (opts.cv > 1 and opts.valid):
        raise ConfigError("--cv K needs K >= 1 and no --valid file (folds are carved from TRAIN)",
                          hint="drop --valid, or drop --cv")
    strategy, _ = parse_valid_split(opts.valid_split)
    if opts.cv > 1 and strategy in ("temporal", "leave-last"):
        raise ConfigError(f"--cv {opts.cv} with --valid-split {strategy} would give {opts.cv} identical folds",
                          hint="use a random strategy (leave-random, user-ratio, random) with --cv")
    grid = ts.grid_of(space) if sampler == "grid" else None
    trials = opts.trials or (ts.grid_size(grid) if grid else DEFAULT_TRIALS)
    if grid and trials > ts.grid_size(grid):
        log.info(f"the grid has {ts.grid_size(grid)} points: running {ts.grid_size(grid)} trials, not {trials}")
        trials = ts.grid_size(grid)
    return Plan(cls, base, space, objectives, sampler, pruner, trials, grid, db_path)


def _given(opts: TuneOptions, cls: type) -> set[str]:
    """The parameters fixed by ``--param``/``--params`` (they are part of the study's identity)."""
    from recli.stages.train import load_params_file, parse_param

    names = {parse_param(p)[0].replace("-", "_") for p in opts.params}
    if opts.params_file:
        names |= {k.replace("-", "_") for k in load_params_file(opts.params_file, opts.model)[1]}
    return {ts.field_name(cls, n) for n in names}


def _pruner_choice(text: str | None, cls: type, objectives: list[Objective]) -> str:
    if text is not None and text.lower() not in PRUNERS:
        raise ConfigError(f"unknown pruner {text!r}", hint=f"use one of: {', '.join(PRUNERS)}")
    chosen = text.lower() if text else None
    if len(objectives) > 1:
        if chosen not in (None, "none"):
            raise ConfigError("--pruner cannot be used with several --metric values: Optuna cannot prune "
                              "a multi-objective study", hint="drop --pruner, or tune one metric")
        return "none"
    from recli.metrics.registry import METRICS

    prunable = cls.trains_in_epochs and objectives[0].name != FIT_TIME and METRICS[objectives[0].name].kind != "beyond"
    if chosen not in (None, "none") and not prunable:
        raise ConfigError(f"--pruner {chosen} needs per-epoch scores, which {cls.name!r} with "
                          f"--metric {objectives[0].key} does not give", hint="drop --pruner")
    return chosen or ("median" if prunable else "none")


def parse_valid_split(text: str) -> tuple[str, Any]:
    """``leave-random:0.2`` → ``("leave-random", Size)`` (prep's strategies and sizes)."""
    from recli.data.split import STRATEGIES, parse_size

    strategy, sep, size = text.partition(":")
    if strategy not in STRATEGIES or not sep:
        raise ConfigError(f"--valid-split {text!r} is not STRATEGY:SIZE",
                          hint=f"e.g. leave-random:0.2 or leave-last:1; strategies: {', '.join(STRATEGIES)}")
    return strategy, parse_size(size, "--valid-split")


def load_folds(opts: TuneOptions) -> tuple[Interactions, list[tuple[Interactions, Interactions]]]:
    """TRAIN, and one ``(train, validation)`` pair per fold."""
    from recli.stages.train import load_interactions, load_validation

    strategy, size = parse_valid_split(opts.valid_split)
    data = load_interactions(opts.train_file, read=opts.read, features=opts.feature_tables())
    if opts.valid:
        return data, [(data, load_validation(opts.valid, data, read=opts.read))]
    seeds = [opts.seed] if opts.cv == 1 else [[opts.seed, fold] for fold in range(opts.cv)]
    return data, [carve(data, strategy, size, np.random.default_rng(s)) for s in seeds]


def carve(data: Interactions, strategy: str, size: Any, rng: np.random.Generator) -> tuple[Interactions, Interactions]:
    """Split TRAIN's cells (one per user-item pair) with prep's split rule; both parts
    keep TRAIN's vocabularies."""
    import scipy.sparse as sp

    from recli.data.split import split_mask
    from recli.errors import InputError

    ui = data.user_items
    users = np.repeat(np.arange(ui.shape[0], dtype=np.int64), np.diff(ui.indptr))
    stamps = None if data.timestamps is None else np.asarray(data.timestamps).astype(np.int64)
    mask, _ = split_mask(strategy, size, users, stamps, rng, what="validation")
    if not mask.any():
        raise InputError(f"--valid-split {strategy}:{size} leaves the validation set empty",
                         hint="use a larger size, or give --valid FILE")

    def part(keep: np.ndarray) -> sp.csr_matrix:
        return sp.csr_matrix((ui.data[keep], (users[keep], ui.indices[keep])), shape=ui.shape)

    ts_train = None if data.timestamps is None else np.asarray(data.timestamps)[~mask]
    return (Interactions(data.users, data.items, part(~mask), ts_train, int((~mask).sum())),
            Interactions(data.users, data.items, part(mask), None, int(mask.sum())))


def make_sampler(plan: Plan, seed: int) -> Any:
    import optuna

    if plan.sampler == "grid":
        return optuna.samplers.GridSampler(plan.grid, seed=seed)
    if plan.sampler == "cmaes":
        try:
            import cmaes  # noqa: F401  (Optuna's CMA-ES sampler needs it)
        except ImportError:
            raise ConfigError("--sampler cmaes needs the 'cmaes' package",
                              hint="pip install cmaes, or use --sampler tpe") from None
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    return {"tpe": optuna.samplers.TPESampler, "random": optuna.samplers.RandomSampler,
            "nsga2": optuna.samplers.NSGAIISampler}[plan.sampler](seed=seed)


def planned_epochs(plan: Plan) -> int:
    """The fewest epochs a trial trains: ``iterations`` fixed, searched (its low end) or default."""
    dim = plan.space.get("iterations")
    if dim is not None:
        return int(min(dim.values) if dim.values is not None else dim.low)
    return int(plan.base.get("iterations", getattr(plan.cls.Config(), "iterations", 1)))


def make_pruner(plan: Plan) -> Any:
    """``median``: after 5 finished trials, stop a trial whose score is below the median of
    earlier trials at the same epoch, but not in its first quarter of epochs (early scores
    say little: a BPR run is near popularity for many epochs whatever its learning rate)."""
    import optuna

    if plan.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=max(1, planned_epochs(plan) // 4))
    if plan.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource="auto")
    return optuna.pruners.NopPruner()


class TrialRunner:
    """The objective: suggest, fit on each fold, score; errors are recorded on the trial."""

    def __init__(self, plan: Plan, folds: list, threads: int, device: str, turn: st.TurnLock, worker: int = 0):
        self.plan, self.folds, self.threads, self.device, self.turn = plan, folds, threads, device, turn
        self.worker = worker
        self.storage: Any = None  # set by open_study: refreshed before each trial
        self.features: list[Any] = []  # the feature tables of a model that learns from features
        self.fit_total = 0.0  # seconds spent in fits by this process (the rest is overhead)
        self.overheads: list[float] = []  # per trial: its seconds in run_trials minus its fits

    def __call__(self, trial: Any) -> Any:
        import optuna

        self.turn.release()  # the trial is RUNNING: other workers may count it and start theirs
        try:
            values = self._evaluate(trial)
        except optuna.TrialPruned:
            raise
        except Exception as exc:  # a diverged or crashing fit is a FAIL; the study goes on
            msg = exc.message if isinstance(exc, RecliError) else f"{type(exc).__name__}: {exc}"
            trial.set_user_attr("run", {"worker": self.worker})
            trial.set_user_attr("error", msg)
            log.warning(f"trial {trial.number} failed: {msg}")
            raise
        return values[0] if len(values) == 1 else values

    def _evaluate(self, trial: Any) -> list[float]:
        from recli.models.base import build_config

        plan = self.plan
        params = ts.suggest(trial, plan.space, grid=plan.grid is not None)
        tc.flush(self.storage)  # the sampled parameters in one transaction: a retried trial gets them back
        config = build_config(plan.cls.Config, {**plan.base, **params}, plan.cls.name)
        per_fold, fit_seconds, epochs = [], 0.0, 0
        for fold, (train_data, valid_data) in enumerate(self.folds):
            result = self._fit(trial, config, train_data, valid_data, prune=fold == 0 and plan.pruner != "none")
            fit_seconds += result.meta["fit_seconds"]
            epochs = epochs or result.meta["epochs"]
            per_fold.append(self._scores(result, train_data, valid_data))
        values = [float(np.mean(v)) for v in zip(*per_fold)]
        # one attribute, one storage write: each write is a transaction on SQLite
        trial.set_user_attr("run", {"worker": self.worker, "fit_seconds": round(fit_seconds, 4), "epochs": int(epochs)})
        return values

    def _fit(self, trial: Any, config: Any, train_data: Interactions, valid_data: Interactions, prune: bool) -> Any:
        import optuna

        from recli.stages.train import train

        pruned: list[int] = []
        last = getattr(config, "iterations", None)

        def report(info: Any) -> bool:
            trial.report(info.metrics[self.plan.objectives[0].key], info.epoch)
            if info.epoch != last and trial.should_prune():  # a trial at its last epoch has finished
                pruned.append(info.epoch)
                return True
            return False

        obj = self.plan.objectives[0]
        result = train(train_data, self.plan.cls, config, device=self.device, threads=self.threads,
                       features=self.features, valid=valid_data if prune else None, on_epoch=report if prune else None,
                       valid_metric=obj.key if prune else None)
        self.fit_total += result.meta["fit_seconds"]
        if pruned:
            trial.set_user_attr("run", {"worker": self.worker, "fit_seconds": result.meta["fit_seconds"],
                                        "epochs": pruned[0], "pruned_at": pruned[0]})
            raise optuna.TrialPruned(f"pruned at epoch {pruned[0]}")
        return result

    def _scores(self, result: Any, train_data: Interactions, valid_data: Interactions) -> list[float]:
        from recli.backend import threads_context
        from recli.stages.validation import validation_score

        out = []
        with threads_context(self.threads):
            for o in self.plan.objectives:
                if o.name == FIT_TIME:
                    out.append(float(result.meta["fit_seconds"]))
                elif result.valid_scores and o is self.plan.objectives[0]:
                    out.append(float(result.valid_scores[-1]))  # scored after the last epoch already
                else:
                    # a measured ranking, never served: BLAS scores (exact=False) save most of its time
                    out.append(validation_score(result.model, valid_data.user_items, train_data.user_items, o.name, o.k,
                                                exact=False))
        return out


def finished_count(study: Any) -> tuple[int, int]:
    """``(finished trials, running trials)`` of ``study`` (see :mod:`tune_storage`)."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    return sum(st.counts_as_finished(t) for t in trials), sum(t.state == TrialState.RUNNING for t in trials)


def run_trials(study: Any, runner: TrialRunner, plan: Plan, timeout: float | None, on_trial: Any = None) -> int:
    """Run trials until ``plan.trials`` are finished (counting other workers'), or
    ``timeout`` seconds have passed. ``on_trial(study, finished)`` follows each trial.
    Returns how many this process ran."""
    import optuna

    start, ran = time.monotonic(), 0
    while timeout is None or time.monotonic() - start < timeout:
        began, fits_before = time.monotonic(), runner.fit_total
        runner.turn.acquire()
        try:
            tc.refresh(runner.storage)
            done, running = finished_count(study)
            if done + running >= plan.trials and running and plan.db_path is not None:
                # a RUNNING trial may be a dead worker's: fail it (it is queued again) and recount
                tc.expire_stale_check(runner.storage)
                optuna.storages.fail_stale_trials(study)
                tc.refresh(runner.storage)
                done, running = finished_count(study)
            if done + running >= plan.trials:
                break
            study.optimize(runner, n_trials=1, catch=(Exception,))
        finally:
            runner.turn.release()
        runner.overheads.append(time.monotonic() - began - (runner.fit_total - fits_before))
        ran += 1
        if on_trial is not None:
            on_trial(study, done + 1)  # counted before this trial: no second read of the storage
    return ran


@dataclass
class Study:
    """A study ready to run: the Optuna study, its plan and this process's trial runner."""

    study: Any
    plan: Plan
    runner: TrialRunner
    resumed: int
    ran: int = 0          # trials this process ran, in
    wall: float = 0.0     # this many seconds


def open_study(opts: TuneOptions, plan: Plan, folds: list, worker: int = 0) -> Study:
    """Load (checking that it is the same study) or create the study in its storage.
    ``worker`` offsets the sampler seed so parallel workers do not draw the same points."""
    import optuna

    storage = st.open_storage(opts.storage, opts.out)
    names = {s.study_name for s in optuna.study.get_all_study_summaries(storage, include_best_trial=False)}
    if opts.study_name in names:
        attrs = optuna.load_study(study_name=opts.study_name, storage=storage).user_attrs
        st.check_resume(attrs, plan.identity())
    directions = ["maximize" if o.maximize else "minimize" for o in plan.objectives]
    study = optuna.create_study(storage=storage, study_name=opts.study_name, directions=directions,
                                sampler=make_sampler(plan, opts.seed + worker), pruner=make_pruner(plan),
                                load_if_exists=True)
    if opts.study_name not in names:
        study.set_user_attr("recli", plan.identity())
    reclaimed = st.reclaim_dead_trials(study) if plan.db_path is None else 0
    if reclaimed:
        log.info(f"{reclaimed} trial(s) left running by a stopped process marked failed; they run again")
    threads = st.worker_threads(opts.threads, opts.workers)
    runner = TrialRunner(plan, folds, threads, opts.device, st.TurnLock(plan.db_path), worker)
    runner.storage, runner.features = storage, opts.feature_tables()
    return Study(study, plan, runner, finished_count(study)[0])


def existing_study_check(opts: TuneOptions, plan: Plan) -> None:
    """Before DIR is touched: the storage opens, and a study already in it (the journal in
    DIR, or the database) must be this study."""
    if plan.db_path is None and not st.journal_path(opts.out).is_file():
        return
    import optuna

    storage = st.open_storage(opts.storage, opts.out)
    if opts.study_name in {s.study_name for s in optuna.study.get_all_study_summaries(storage, False)}:
        st.check_resume(optuna.load_study(study_name=opts.study_name, storage=storage).user_attrs,
                        plan.identity())


def worker_main(opts: TuneOptions, worker: int) -> None:
    """A ``--workers`` process: its own data, the shared database study, the same count."""
    from recli import console

    console.configure(quiet=True)
    plan = plan_study(opts)
    _, folds = load_folds(opts)
    s = open_study(opts, plan, folds, worker)
    run_trials(s.study, s.runner, plan, opts.timeout)


def start_workers(opts: TuneOptions) -> list[Any]:
    """Spawn ``--workers - 1`` processes (this one is the first worker)."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")  # fork would copy Numba's and Polars' thread pools
    procs = [ctx.Process(target=worker_main, args=(opts, w), daemon=True) for w in range(1, opts.workers)]
    for p in procs:
        p.start()
    return procs


def join_workers(procs: list[Any]) -> None:
    for p in procs:
        p.join()
        if p.exitcode:
            log.warning(f"a worker process stopped with exit code {p.exitcode}")
