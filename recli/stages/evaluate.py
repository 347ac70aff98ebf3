"""``recli eval`` as a plain function: recommendation / truth frames in, results frame out.

:func:`run_eval` is the command's entry point: an :class:`EvalRequest` (its options and
file paths) in, an :class:`EvalReport` out, from RECS files (:func:`evaluate`) or a model
directory (:func:`recli.stages.evaluate_model.evaluate_model`). Ids are mapped to
integers once (:mod:`recli.stages.eval_inputs`); every metric is then computed by
:class:`recli.metrics.Evaluator` over arrays, exactly as a model scored in batches would be.
Nothing here prints or exits: notes for people come back in the report.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from recli.backend import numba_warmup, threads_context
from recli.data.io import ReadOptions, read_interactions
from recli.data.schema import ITEM, RATING, USER
from recli.errors import ConfigError, InputError
from recli.metrics import METRICS, Evaluator, bootstrap_ci, paired_tests, rating_errors
from recli.metrics.registry import COMPAT_MODES, DEFAULT_METRICS, metric_key, parse_gates, parse_ks, parse_metrics
from recli.stages import eval_inputs as ei

RESULT_SCHEMA = {"model": pl.Utf8, "metric": pl.Utf8, "k": pl.Int64, "value": pl.Float64, "users": pl.Int64,
                 "ci_low": pl.Float64, "ci_high": pl.Float64, "p_ttest": pl.Float64, "p_wilcoxon": pl.Float64}


@dataclass
class EvalReport:
    """``results``: one row per model x metric x k (``RESULT_SCHEMA``); ``per_user``: one
    row per model x user (when asked); ``notes`` / ``warnings``: lines for people;
    ``failures``: one line per failed ``--fail-under`` gate (filled by :func:`run_eval`);
    ``cold``: with ``--cold-report``, the results per segment (a ``segment`` column added,
    see :mod:`recli.stages.eval_cold`)."""

    results: pl.DataFrame
    per_user: pl.DataFrame | None
    users_rule: str
    labels: list[str]
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    cold: pl.DataFrame | None = None


@dataclass
class EvalRequest:
    """The options of one ``recli eval`` run (see ``recli eval --help``): table paths
    (``-`` = stdin) and option values as given on the command line."""

    recs: list[str] = field(default_factory=list)
    test: str | None = None
    model: str | None = None  # a model directory, scored instead of RECS files
    batch_size: int = 1024
    train: str | None = None
    items: str | None = None
    feature_col: str | None = None  # None: the genres column, or every feature of a long item_features table
    cold_report: bool = False
    predictions: list[str] = field(default_factory=list)
    k: str = "10"
    metrics: str | None = None
    relevance_threshold: float | None = None
    graded: bool = False
    only_recommended: bool = False
    exclude_train: bool = False
    compat: str = "none"
    labels: list[str] | None = None
    bootstrap: int = 0
    seed: int = 0
    per_user: bool = False
    fail_under: str | None = None
    input_format: str | None = None
    threads: int = 0
    device: str = "cpu"
    # --sep/--quote/--encoding/--*-col: how the data tables (--test, --train, --items) read
    read: ReadOptions | None = None


def run_eval(req: EvalRequest) -> EvalReport:
    """Check ``req``, read its tables and score them: the RECS files with :func:`evaluate`,
    or the model directory ``req.model`` through the backend for ``req.device``. Gates are
    computed too; the report's ``failures`` lists those that failed."""
    recs = _check_request(req)
    ks, names, gates = parse_ks(req.k), (parse_metrics(req.metrics) if req.metrics else None), parse_gates(req.fail_under)
    labels = _labels(recs, req.labels) if req.model is None else []
    _check_stdin(recs + [req.test, req.train, req.items] + req.predictions)
    if req.model is not None:
        with threads_context(req.threads):
            report = _evaluate_model(req, ks, names, gates)
    else:
        with numba_warmup():  # Numba starts up while Polars reads the files and maps ids (GIL released)
            tables = _read_tables(req, list(zip(labels, recs, strict=True)))
            with threads_context(req.threads):
                report = _evaluate_files(req, tables, ks, names, gates)
    report.failures = failed_gates(report.results, gates)
    return report


def _check_request(req: EvalRequest) -> list[str]:
    """Option clashes are errors; returns the RECS paths (stdin when none is given)."""
    if req.test is None:
        raise ConfigError("--test is required", hint="pass the truth table: recli eval RECS --test TEST")
    if req.compat not in COMPAT_MODES:
        raise ConfigError(f"unknown --compat {req.compat!r}", hint=f"use one of: {', '.join(COMPAT_MODES)}")
    if req.cold_report and (req.train is None or req.model is not None):
        raise ConfigError("--cold-report needs RECS files and --train (cold = in TEST, never in TRAIN)",
                          hint="write the recommendations with recli recommend, then recli eval RECS --test TEST "
                               "--train TRAIN --cold-report")
    if req.model is not None:
        clashes = [name for name, given in (("RECS files", bool(req.recs)), ("--train", req.train is not None),
                                            ("--items", req.items is not None), ("--predictions", bool(req.predictions)),
                                            ("--exclude-train", req.exclude_train),
                                            ("--only-recommended", req.only_recommended),
                                            ("--compat", req.compat != "none")) if given]
        if clashes:
            raise ConfigError(f"--model cannot be combined with {', '.join(clashes)}",
                              hint="--model scores every test user and excludes the model's own training items; "
                                   "to use those options, write recommendations with recli recommend and evaluate "
                                   "the file")
        return []
    if not req.recs and sys.stdin.isatty():
        raise ConfigError("no RECS file given and nothing piped in",
                          hint="pass recommendation files, e.g. recli eval recs.csv --test test.csv, or pipe them in")
    return list(req.recs) or ["-"]


def _labels(recs: list[str], given: list[str] | None) -> list[str]:
    """One name per RECS file: ``given`` (one each), else the file names without their
    extensions (the paths when two names clash; ``stdin`` for ``-``)."""
    if given:
        if len(given) != len(recs):
            raise ConfigError(f"{len(given)} --label for {len(recs)} RECS files", hint="give one --label per RECS file, in order")
        return list(given)
    names = []
    for p in recs:
        name = Path(p).name
        for ext in (".gz", ".csv", ".tsv", ".parquet", ".jsonl", ".json", ".ndjson"):
            name = name[: -len(ext)] if name.lower().endswith(ext) else name
        names.append("stdin" if p == "-" else name)
    return names if len(set(names)) == len(names) else ["stdin" if p == "-" else p for p in recs]


def _check_stdin(paths: list[str | None]) -> None:
    if sum(1 for p in paths if p == "-") > 1:
        raise ConfigError("only one input can be read from stdin ('-')", hint="write the others to files")


def _read(path: str | None, req: EvalRequest, roles=(USER, ITEM, RATING), required=(USER, ITEM)) -> pl.DataFrame | None:
    """The data table at ``path`` (``-`` = stdin) read with ``req.read``, its columns
    renamed to the standard names; no path, no table."""
    return None if path is None else read_interactions(path, _options(req), roles=roles, required=required)


def _read_output(path: str, req: EvalRequest) -> pl.DataFrame:
    """A RECS or --predictions file: recli's own output, its columns found by the usual
    names whatever the data tables' --*-col say."""
    return read_interactions(path, ReadOptions(fmt=_options(req).fmt), roles=(USER, ITEM))


def _options(req: EvalRequest) -> ReadOptions:
    return req.read if req.read is not None else ReadOptions(fmt=req.input_format)


@dataclass
class _Tables:
    """The tables a RECS-files evaluation reads: ``recs`` = ``[(label, frame)]``."""

    recs: list[tuple[str, pl.DataFrame]]
    test: pl.DataFrame
    train: pl.DataFrame | None
    items: pl.DataFrame | None
    predictions: list[pl.DataFrame]


def _read_tables(req: EvalRequest, recs: list[tuple[str, str]]) -> _Tables:
    """The ``(label, path)`` RECS files, TEST, TRAIN, --items and --predictions, read in that order."""
    recs_frames = [(label, _read_output(p, req)) for label, p in recs]
    test, train = _read(req.test, req), _read(req.train, req)
    items = _read(req.items, req, roles=(ITEM,), required=(ITEM,))
    return _Tables(recs_frames, test, train, items, [_read_output(p, req) for p in req.predictions])


def _evaluate_files(req: EvalRequest, tables: _Tables, ks, names, gates) -> EvalReport:
    """The RECS files of ``tables`` scored against its other tables, with :func:`evaluate`
    (and per cold/warm segment with ``--cold-report``)."""
    options = dict(ks=ks, relevance_threshold=req.relevance_threshold, graded=req.graded,
                   only_recommended=req.only_recommended, exclude_train=req.exclude_train, compat=req.compat,
                   feature_col=req.feature_col, seed=req.seed)
    report = evaluate(tables.recs, tables.test, train=tables.train, items=tables.items, predictions=tables.predictions,
                      metrics=names, bootstrap=req.bootstrap, per_user=req.per_user, gates=gates, **options)
    if req.cold_report:
        from recli.stages.eval_cold import cold_report

        report.cold, notes = cold_report(tables.recs, tables.test, tables.train, report.results, items=tables.items,
                                         **options)
        report.notes.extend(notes)
    return report


def _evaluate_model(req: EvalRequest, ks, names, gates) -> EvalReport:
    """``--model``: the model loaded on ``req.device``, its test users scored in batches."""
    from recli.artifacts import load_model
    from recli.backend import get_backend
    from recli.stages.evaluate_model import evaluate_model  # it imports this module

    test = _read(req.test, req)
    label = (req.labels or [Path(req.model).name])[0]
    return evaluate_model(load_model(req.model, get_backend(req.device, req.threads)), test, label=label, ks=ks,
                          metrics=names, relevance_threshold=req.relevance_threshold, graded=req.graded,
                          bootstrap=req.bootstrap, seed=req.seed, per_user=req.per_user, gates=gates,
                          batch_size=req.batch_size)


@dataclass
class _Model:
    label: str
    recs: pl.DataFrame
    predictions: pl.DataFrame | None = None
    rows: list[dict] = field(default_factory=list)
    per_user: np.ndarray | None = None        # [n_users, n_keys], NaN = not scored
    scored: np.ndarray | None = None          # [n_users] bool: user evaluated for this model
    keys: list[str] = field(default_factory=list)


def choose_metrics(metrics: list[str] | None, gates, has_predictions: bool) -> list[str]:
    """The asked metrics (default set when ``None``, plus rmse/mae when predictions exist)
    and every metric a ``--fail-under`` gate names."""
    names = list(metrics) if metrics else list(DEFAULT_METRICS) + (["rmse", "mae"] if has_predictions else [])
    names += [g[0] for g in gates if g[0] not in names]
    return [m for m in METRICS if m in names]


def evaluate(recs: list[tuple[str, pl.DataFrame]], test: pl.DataFrame, *, train: pl.DataFrame | None = None,
             items: pl.DataFrame | None = None, predictions: list[pl.DataFrame | None] | None = None,
             ks=(10,), metrics: list[str] | None = None, relevance_threshold: float | None = None,
             graded: bool = False, only_recommended: bool = False, exclude_train: bool = False,
             compat: str | None = None, feature_col: str | None = None, bootstrap: int = 0, seed: int = 0,
             per_user: bool = False, gates=()) -> EvalReport:
    """Score each ``(label, recs frame)`` against ``test``; see ``recli eval --help``.

    Parameters
    ----------
    recs : ``[(label, frame)]`` with ``user, item`` and ``rank`` or ``score`` (else file order).
    test : ``user, item[, rating]``.
    train, items, predictions : optional TRAIN pairs, item features (the ``feature_col``
        column, ``a|b|c``, or prep's long ``item, feature, value`` form: see
        :func:`recli.stages.eval_inputs.prepare_items`), and one ``user,item,prediction``
        frame (or None) per RECS.
    ks, metrics, relevance_threshold, graded, only_recommended, exclude_train, compat :
        as the CLI options of the same name. ``gates`` = ``parse_gates`` output (their
        metrics and ks are computed too).
    bootstrap, seed : resamples for 95% CIs (0 = none) and their seed.
    per_user : also return per-user values.

    Returns
    -------
    EvalReport
    """
    if test.height == 0:
        raise InputError("the test set is empty", hint="pass a TEST file with user,item rows")
    models = _prepare_models(recs, list(predictions or []))
    rated, relevant = ei.prepare_test(test, "TEST", relevance_threshold, graded)
    notes: list[str] = []
    has_pred = any(m.predictions is not None or "prediction" in m.recs.columns for m in models)
    names = choose_metrics(metrics, gates, has_pred)
    ks = sorted(set(ks) | {g[1] for g in gates if g[1] is not None})
    train_pairs = ei.prepare_pairs(train, "TRAIN", (), "") if train is not None else None
    item_feats = ei.prepare_items(items, "ITEMS", feature_col) if items is not None else None
    relevant, rated, train_pairs, item_feats = _harmonize(models, relevant, rated, train_pairs, item_feats)
    warnings = _check_requirements(names, train_pairs, item_feats, rated, exclude_train, models)
    enc = ei.encode(relevant, [m.recs for m in models], train_pairs, item_feats, graded)
    if enc.n_merged:
        notes.append(f"TEST: {enc.n_merged} repeated relevant (user, item) rows merged (highest rating kept)")
    ranked = [m for m in names if METRICS[m].kind != "rating"]
    counts = {}
    for model in models:
        if ranked:
            keep = per_user or bootstrap > 0 or len(models) > 1
            counts[model.label] = _score_ranking(model, enc, ranked, ks, graded, only_recommended, exclude_train,
                                                 compat, bootstrap, seed, notes, keep, warnings)
        _score_rating(model, [m for m in names if METRICS[m].kind == "rating"], rated, notes, bootstrap, seed)
    if ranked and len(models) > 1:
        _significance(models)
    results = pl.DataFrame([r for m in models for r in m.rows], schema=RESULT_SCHEMA)
    users_rule = (_users_rule(counts, only_recommended) if counts
                  else f"rating metrics over rated TEST pairs ({rated.height} rows)")
    return EvalReport(results, _per_user_frame(models, enc, ranked, ks) if per_user and ranked else None,
                      users_rule, [m.label for m in models], notes, warnings)


def _prepare_models(recs: list[tuple[str, pl.DataFrame]], predictions: list[pl.DataFrame | None]) -> list[_Model]:
    """One :class:`_Model` per distinct label, with its ``--predictions`` frame (in order)."""
    labels = [label for label, _ in recs]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"two RECS share the label {labels!r}", hint="give distinct names with --label")
    if len(predictions) > len(recs):
        raise ConfigError("more --predictions files than RECS files", hint="give at most one --predictions per RECS")
    predictions = predictions + [None] * (len(recs) - len(predictions))
    return [_Model(label, ei.prepare_recs(df, f"RECS {label!r}"),
                   None if p is None else ei.prepare_pairs(p, "--predictions", ei.PREDICTION_COLUMNS, "prediction"))
            for (label, df), p in zip(recs, predictions, strict=True)]


def _harmonize(models, relevant, rated, train, items):
    """One id dtype per column across every frame (see :func:`eval_inputs.harmonize`)."""
    frames = [relevant, rated] + [m.recs for m in models] + [m.predictions for m in models if m.predictions is not None]
    frames += [f for f in (train, items) if f is not None]
    for col in ("user", "item"):
        present = [f for f in frames if col in f.columns]
        fixed = dict(zip(map(id, present), ei.harmonize(present, col)))
        frames = [fixed.get(id(f), f) for f in frames]
    it = iter(frames)
    relevant, rated = next(it), next(it)
    for m in models:
        m.recs = next(it)
    for m in models:
        if m.predictions is not None:
            m.predictions = next(it)
    train = next(it) if train is not None else None
    items = next(it) if items is not None else None
    return relevant, rated, train, items


def _check_requirements(names, train, items, rated, exclude_train, models) -> list[str]:
    warnings = []
    for m in names:
        needs = METRICS[m].needs
        if "train" in needs and train is None:
            raise ConfigError(f"{m} is computed from TRAIN popularity", hint=f"pass --train TRAIN, or drop {m} from --metrics")
        if "items" in needs and items is None:
            raise ConfigError(f"{m} needs item features",
                              hint="pass --items ITEMS with a genres column (a|b|c), or prep's item_features.parquet")
        if "predictions" in needs and "rating" not in rated.columns:
            raise InputError(f"{m} needs ratings, but TEST has no rating column", hint=f"drop {m}, or add a 'rating' column")
        if "predictions" in needs:
            for model in models:
                if model.predictions is None and not {"prediction", "score"} & set(model.recs.columns):
                    raise InputError(f"{m}: RECS {model.label!r} has no prediction or score column",
                                     hint="pass --predictions FILE (user,item,prediction) or add a 'prediction' column")
    if exclude_train and train is None:
        raise ConfigError("--exclude-train needs --train", hint="pass --train TRAIN")
    if "auc" in names and train is None:
        warnings.append("auc without --train: every catalogue item is a candidate (TRAIN items are not excluded)")
    return warnings


def _rec_items(model: _Model, enc: ei.Encoded, kmax: int, exclude_train: bool):
    """The model's lists (first ``kmax`` after optional TRAIN filtering), which users have
    recommendations, and a note about TRAIN items found in the lists."""
    from recli.kernels import metrics as km

    mat, present, n_outside = ei.rec_matrix(model.recs, enc, None if exclude_train else kmax, f"RECS {model.label!r}")
    note = f"{model.label}: {n_outside} RECS rows for users not evaluated were ignored" if n_outside else None
    if enc.train is None:
        return mat, present, [note] if note else []
    rows = np.arange(enc.n_users, dtype=np.int64)
    top = np.ascontiguousarray(mat[:, :kmax])
    seen = np.zeros(enc.n_users, dtype=np.int64)
    km.count_seen(top, rows, enc.train[0], enc.train[1], seen)
    notes = [note] if note else []
    action = "dropped before scoring (--exclude-train)" if exclude_train else "kept; --exclude-train drops them"
    notes.append(f"{model.label}: {int(seen.sum())} recommended items in the top {kmax} were seen in TRAIN "
                 f"({int(np.count_nonzero(seen))} users); {action}")
    if exclude_train:
        out = np.empty((enc.n_users, kmax), dtype=np.int32)
        km.drop_seen(mat, rows, enc.train[0], enc.train[1], out)
        mat = out
    return mat, present, notes


def _score_ranking(model, enc, names, ks, graded, only_recommended, exclude_train, compat, bootstrap, seed, notes,
                   keep_per_user, warnings):
    """Run the Evaluator for one model; fill ``model.rows`` / ``per_user``; return (users
    evaluated, TEST users without recommendations)."""
    mat, present, extra = _rec_items(model, enc, ks[-1], exclude_train)
    notes.extend(extra)
    if not present.any():
        warnings.append(f"no user of RECS {model.label!r} is a TEST user with a relevant item: every score is 0; "
                        "check that both files use the same ids (e.g. '007' vs '7')")
    indptr, indices, gain = enc.truth
    ev = Evaluator(indptr, indices, ks, names, n_items=enc.n_items, truth_gain=gain if graded else None,
                   train_indptr=enc.train[0] if enc.train else None, train_indices=enc.train[1] if enc.train else None,
                   item_counts=enc.item_counts, n_train_users=enc.n_train_users, item_features=enc.features,
                   compat=compat, keep_per_user=keep_per_user)
    if only_recommended:
        rows = np.flatnonzero(present)
        ev.add(mat[rows], rows, validate=False)  # rec_matrix checked repeats; ids are in range
    else:
        ev.add(mat, validate=False)
    res = ev.result()
    if keep_per_user:
        model.per_user = np.full((enc.n_users, len(res.per_user_keys)), np.nan)
        model.per_user[res.user_rows] = res.per_user
        model.scored = np.zeros(enc.n_users, dtype=bool)
        model.scored[res.user_rows] = True
    model.rows.extend(ranking_rows(model.label, res, bootstrap, seed))
    model.keys = res.per_user_keys
    return res.n_evaluated, int(enc.n_users - np.count_nonzero(present))


def _users_rule(counts: dict[str, tuple[int, int]], only_recommended: bool) -> str:
    """Which users were evaluated, naming every model: ``counts`` maps each label to
    (users evaluated, TEST users without recommendations)."""
    missing = ", ".join(f"{n_missing} for {label}" for label, (_, n_missing) in counts.items())
    if only_recommended:
        sizes = {n for n, _ in counts.values()}
        evaluated = (f"{sizes.pop()} users" if len(sizes) == 1
                     else "users (" + ", ".join(f"{n} for {label}" for label, (n, _) in counts.items()) + ")")
        return (f"{evaluated}: TEST users with a relevant item who appear in RECS (--only-recommended; "
                f"left out without recommendations: {missing})")
    n_evaluated = next(iter(counts.values()))[0]
    return (f"{n_evaluated} users: every TEST user with a relevant item "
            f"(users without recommendations score 0: {missing})")


def ranking_rows(label: str, res, bootstrap: int = 0, seed: int = 0) -> list[dict]:
    """``RESULT_SCHEMA`` rows of one model's :class:`~recli.metrics.Evaluator` result, one
    per metric@k, with percentile-bootstrap 95% CIs over users when ``bootstrap > 0``
    (metrics without per-user values, such as coverage, get none)."""
    low = high = None
    if bootstrap > 0:
        low, high = bootstrap_ci(res.per_user, res.per_user_weights, bootstrap, seed)
    col = {key: j for j, key in enumerate(res.per_user_keys)}
    rows = []
    for key, value in res.values.items():
        name, _, k = key.partition("@")
        j = col.get(key)
        rows.append({"model": label, "metric": name, "k": int(k), "value": value, "users": res.users[key],
                     "ci_low": None if j is None or low is None else float(low[j]),
                     "ci_high": None if j is None or high is None else float(high[j]),
                     "p_ttest": None, "p_wilcoxon": None})
    return rows


def _score_rating(model: _Model, names, rated: pl.DataFrame, notes, bootstrap: int = 0, seed: int = 0) -> None:
    if not names:
        return
    if model.predictions is not None:
        pred = model.predictions
    else:
        col = "prediction" if "prediction" in model.recs.columns else "score"
        pred = model.recs.select("user", "item", pl.col(col).alias("value"))
    rated = rated.drop_nulls("rating").group_by("user", "item").agg(pl.col("rating").max())
    pairs = rated.join(pred, on=["user", "item"], how="inner")
    notes.append(f"{model.label}: rmse/mae over {pairs.height} of {rated.height} rated TEST pairs that have a prediction")
    model.rows.extend(rating_rows(model.label, pairs, names, bootstrap, seed))


def rating_rows(label: str, pairs: pl.DataFrame, names, bootstrap: int = 0, seed: int = 0) -> list[dict]:
    """``RESULT_SCHEMA`` rows of the rating metrics ``names`` over ``pairs`` (``user``,
    ``value`` predicted, ``rating`` true), with user-resampled bootstrap CIs when asked."""
    errors = rating_errors(pairs["value"].to_numpy(), pairs["rating"].to_numpy())
    n_users = pairs["user"].n_unique()
    ci = _rating_cis(pairs, bootstrap, seed) if bootstrap > 0 and pairs.height else {}
    rows = []
    for m in names:
        low, high = ci.get(m, (None, None))
        rows.append({"model": label, "metric": m, "k": None, "value": errors[m], "users": n_users,
                     "ci_low": low, "ci_high": high, "p_ttest": None, "p_wilcoxon": None})
    return rows


def _rating_cis(pairs: pl.DataFrame, bootstrap: int, seed: int) -> dict[str, tuple[float, float]]:
    """Bootstrap CIs of rmse and mae with users resampled (their pairs travel together):
    mae and the mean squared error are pair-weighted means of per-user means, so
    :func:`bootstrap_ci` gives their intervals; rmse's are the square roots of the MSE's
    (a percentile interval follows a monotone transform)."""
    per_user = (pairs.with_columns(d=(pl.col("value").cast(pl.Float64) - pl.col("rating").cast(pl.Float64)))
                .group_by("user").agg(n=pl.len(), mse=(pl.col("d") ** 2).mean(), mae=pl.col("d").abs().mean())
                .sort("user"))
    values = per_user.select("mse", "mae").to_numpy()
    n = per_user["n"].to_numpy().astype(np.float64)
    low, high = bootstrap_ci(values, np.column_stack([n, n]), bootstrap, seed)
    return {"rmse": (float(np.sqrt(low[0])), float(np.sqrt(high[0]))), "mae": (float(low[1]), float(high[1]))}


def _significance(models: list[_Model]) -> None:
    """Paired t-test and Wilcoxon of each model against the first, per metric@k, over the
    users both models are scored on."""
    base = models[0]
    for model in models[1:]:
        col = {key: j for j, key in enumerate(model.keys)}
        for row in model.rows:
            key = metric_key(row["metric"], row["k"])
            if key in col:
                j = col[key]
                row["p_ttest"], row["p_wilcoxon"] = paired_tests(base.per_user[:, j], model.per_user[:, j])


def _per_user_frame(models, enc, names, ks) -> pl.DataFrame:
    frames = []
    for model in models:
        scored = model.scored
        data = {"model": [model.label] * int(scored.sum()), "user": enc.user_ids.gather(np.flatnonzero(scored))}
        for j, key in enumerate(model.keys):
            data[key] = model.per_user[scored, j]
        frames.append(pl.DataFrame(data))
    return pl.concat(frames, how="diagonal")


def failed_gates(results: pl.DataFrame, gates) -> list[str]:
    """One message per (model, gate) whose value is below its threshold (or missing)."""
    failures = []
    for name, k, threshold in gates:
        sel = results.filter((pl.col("metric") == name) & (pl.col("k").is_null() if k is None else pl.col("k") == k))
        for row in sel.iter_rows(named=True):
            value = row["value"]
            if value is None or np.isnan(value) or value < threshold:
                failures.append(f"{row['model']}: {metric_key(name, k)} = {value:.4f} < {threshold:g}")
    return failures
