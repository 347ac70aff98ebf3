"""``recli eval --model MODEL --test TEST``: score a trained model directly, no CSV round trip.

Test users are scored in batches (:func:`recli.stages.validation.add_model_lists`), with
the items each user saw in training excluded as ``recli recommend`` does, and every list
goes straight into the same :class:`recli.metrics.Evaluator` the CSV path uses.

Edge cases, chosen to match the CSV path: test users unknown to the model score 0 (like
users without recommendations); test items unknown to the model stay relevant but can
never be recommended (they count in recall's and NDCG's denominators). AUC candidates and
novelty use the model's own training interactions.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from recli.artifacts import ModelFile
from recli.data.csr import item_counts, rows_of
from recli.errors import ConfigError, InputError
from recli.metrics import METRICS, Evaluator
from recli.stages import eval_inputs as ei
from recli.stages.evaluate import RESULT_SCHEMA, EvalReport, choose_metrics, ranking_rows, rating_rows
from recli.stages.validation import add_model_lists


def _truth(mf: ModelFile, relevant: pl.DataFrame, graded: bool):
    """Truth CSR over test users (sorted ids) and items = model items, then unknown items."""
    users = ei.Vocab.of([relevant["user"]])
    n_model_items = len(mf.items)
    iidx = mf.items.index(relevant["item"]).astype(np.int64)
    unknown = iidx < 0
    if unknown.any():
        extra = ei.Vocab.of([relevant["item"].filter(pl.Series(unknown))])
        iidx[unknown] = n_model_items + extra.codes(relevant["item"].filter(pl.Series(unknown)))
        n_items = n_model_items + len(extra)
    else:
        n_items = n_model_items
    gain = relevant["gain"].to_numpy().astype(np.float64) if graded else None
    indptr, indices, gains, _ = ei.build_csr(users.codes(relevant["user"]), iidx, len(users), n_items, gain)
    return users, (indptr, indices, gains), n_items, int(unknown.sum())


def evaluate_model(mf: ModelFile, test: pl.DataFrame, *, label: str, ks=(10,), metrics: list[str] | None = None,
                   relevance_threshold: float | None = None, graded: bool = False, bootstrap: int = 0,
                   seed: int = 0, per_user: bool = False, gates=(), batch_size: int = 1024) -> EvalReport:
    """Score model ``mf`` against ``test``; options as in :func:`recli.stages.evaluate.evaluate`.

    Ranking metrics come from the model's top-k lists; rmse/mae (by default too for models
    that predict ratings) from its prediction for every rated test pair, as
    ``recli recommend --pairs`` writes it (clipped to the training range)."""
    rated, relevant = ei.prepare_test(test, "TEST", relevance_threshold, graded)
    names = choose_metrics(metrics, gates, mf.model.predicts_ratings and "rating" in rated.columns)
    rating = [m for m in names if METRICS[m].kind == "rating"]
    if rating and not mf.model.predicts_ratings:
        raise ConfigError(f"{', '.join(rating)} need predicted ratings, and model {mf.model.name!r} ranks items "
                          "without predicting ratings", hint="use ranking metrics, or a rating model such as mf")
    if "ild" in names:
        raise ConfigError("ild needs item features (--items), which --model does not read",
                          hint="write recommendations with recli recommend and evaluate the file with --items")
    ranking = [m for m in names if m not in rating]
    report = EvalReport(pl.DataFrame(schema=RESULT_SCHEMA), None, "", [label], [], [])
    if ranking:
        report = _ranking_report(mf, relevant, label=label, ks=ks, names=ranking, graded=graded, bootstrap=bootstrap,
                                 seed=seed, per_user=per_user, gates=gates, batch_size=batch_size)
    if rating:
        rows, note = _rating_rows(mf, rated, label, rating, bootstrap, seed, batch_size)
        report.results = pl.concat([report.results, pl.DataFrame(rows, schema=RESULT_SCHEMA)])
        report.notes.append(note)
        report.users_rule = report.users_rule or note
    return report


def _rating_rows(mf: ModelFile, rated: pl.DataFrame, label: str, names: list[str], bootstrap: int, seed: int,
                 batch_size: int) -> tuple[list[dict], str]:
    """rmse/mae rows over every rated test pair (repeated pairs: the highest rating)."""
    from recli.stages.predict import score_pairs

    if "rating" not in rated.columns:
        raise InputError(f"{', '.join(names)} need the test ratings, but TEST has no rating column",
                         hint="add a rating column to the test file, or ask for ranking metrics only")
    rated = rated.drop_nulls("rating").group_by("user", "item").agg(pl.col("rating").max()).sort("user", "item")
    result = score_pairs(mf, rated["user"], rated["item"], batch_size=batch_size, what="TEST")
    pairs = rated.with_columns(value=pl.Series(result.scores, dtype=pl.Float64))
    note = (f"{label}: rmse/mae over all {pairs.height} rated TEST pairs, predicted by the model "
            f"({int(result.unknown.sum())} with an unknown user or item get its fallback)")
    return rating_rows(label, pairs, names, bootstrap, seed), note


def _ranking_report(mf: ModelFile, relevant: pl.DataFrame, *, label: str, ks, names: list[str], graded: bool,
                    bootstrap: int, seed: int, per_user: bool, gates, batch_size: int) -> EvalReport:
    """Ranking and beyond-accuracy metrics of the model's top-k lists for every test user."""
    ks = sorted(set(ks) | {g[1] for g in gates if g[1] is not None})
    users, truth, n_items, n_unknown_items = _truth(mf, relevant, graded)
    uidx = mf.users.index(users.ids).astype(np.int64)
    train_ptr, train_idx = rows_of(mf.train[0], mf.train[1], uidx)
    counts = item_counts(mf.train[1], n_items)
    ev = Evaluator(truth[0], truth[1], ks, names, n_items=n_items, truth_gain=truth[2] if graded else None,
                   train_indptr=train_ptr, train_indices=train_idx, item_counts=counts,
                   n_train_users=len(mf.users), keep_per_user=per_user or bootstrap > 0)
    known = np.flatnonzero(uidx >= 0)
    add_model_lists(ev, mf.model, uidx[known], known, ks[-1], (mf.train[0], mf.train[1]), batch_size)
    cold = np.flatnonzero(uidx < 0)
    if cold.size:
        ev.add(np.full((cold.size, ks[-1]), -1, dtype=np.int32), cold, validate=False)
    res = ev.result()
    notes = [f"{label}: recommendations computed from the model in batches of {batch_size}, training items excluded"]
    if n_unknown_items:
        notes.append(f"{n_unknown_items} relevant TEST rows name items unknown to the model (they cannot be recommended)")
    rows = ranking_rows(label, res, bootstrap, seed)
    rule = (f"{res.n_evaluated} users: every TEST user with a relevant item "
            f"({cold.size} unknown to the model score 0)")
    per_user_frame = None
    if per_user:
        data = {"model": [label] * res.user_rows.shape[0], "user": users.ids.gather(res.user_rows)}
        data.update({key: res.per_user[:, j] for j, key in enumerate(res.per_user_keys)})
        per_user_frame = pl.DataFrame(data)
    return EvalReport(pl.DataFrame(rows, schema=RESULT_SCHEMA), per_user_frame, rule, [label], notes, [])
