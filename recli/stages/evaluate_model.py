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
from recli.errors import ConfigError
from recli.metrics import METRICS, Evaluator
from recli.stages import eval_inputs as ei
from recli.stages.evaluate import RESULT_SCHEMA, EvalReport, choose_metrics, ranking_rows
from recli.stages.validation import add_model_lists


def _truth(mf: ModelFile, relevant: pl.DataFrame, graded: bool):
    """Truth CSR over test users (sorted ids) and items = model items, then unknown items."""
    users = ei.Vocab(ei.unique_sorted([relevant["user"]]))
    n_model_items = len(mf.items)
    iidx = mf.items.index(relevant["item"]).astype(np.int64)
    unknown = iidx < 0
    if unknown.any():
        extra = ei.Vocab(ei.unique_sorted([relevant["item"].filter(pl.Series(unknown))]))
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
    """Score model ``mf`` against ``test``; options as in :func:`recli.stages.evaluate.evaluate`."""
    _, relevant = ei.prepare_test(test, "TEST", relevance_threshold, graded)
    names = choose_metrics(metrics, gates, False)
    rating = [m for m in names if METRICS[m].kind == "rating"]
    if rating:
        raise ConfigError(f"{', '.join(rating)} need predicted ratings, which --model does not produce",
                          hint="write predictions to a file and pass them with --predictions RECS")
    if "ild" in names:
        raise ConfigError("ild needs item features (--items), which --model does not read",
                          hint="write recommendations with recli recommend and evaluate the file with --items")
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
