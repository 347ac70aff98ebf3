"""Slow, obviously-correct metric references: plain Python over lists, sets and dicts.

Each function scores ONE user's ranked list ``recs`` (distinct items, best first) at
cutoff ``k`` against ``rel`` (``{item: gain}``, the relevant items). AUC is brute force
over every (positive, negative) pair of candidate items.
"""

from __future__ import annotations

import math


def precision(recs, rel, k, compat=False):
    hits = sum(1 for i in recs[:k] if i in rel)
    return hits / (min(k, len(rel)) if compat else k)


def recall(recs, rel, k):
    return sum(1 for i in recs[:k] if i in rel) / len(rel)


def f1(recs, rel, k, compat=False):
    p, r = precision(recs, rel, k, compat), recall(recs, rel, k)
    return 0.0 if p + r == 0 else 2 * p * r / (p + r)


def ndcg(recs, rel, k, graded=False):
    gain = (lambda i: rel[i]) if graded else (lambda i: 1.0)
    dcg = sum(gain(i) / math.log2(j + 2) for j, i in enumerate(recs[:k]) if i in rel)
    ideal = sorted((gain(i) for i in rel), reverse=True)[:k]
    idcg = sum(g / math.log2(j + 2) for j, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def average_precision(recs, rel, k, compat=False):
    total = 0.0
    for j in range(len(recs[:k])):
        if recs[j] in rel:
            total += precision(recs, rel, j + 1)
    return total / (min(k, len(rel)) if compat else len(rel))


def reciprocal_rank(recs, rel, k):
    for j, i in enumerate(recs[:k]):
        if i in rel:
            return 1.0 / (j + 1)
    return 0.0


def hit(recs, rel, k):
    return 1.0 if any(i in rel for i in recs[:k]) else 0.0


def auc(recs, rel, k, n_items, train=None, compat=False):
    """Pairs (p, n): p ranked above n scores 1, a tie (both unlisted) 1/2."""
    train = set() if (train is None or compat) else set(train)
    top = list(recs[:k])
    position = {i: j for j, i in enumerate(top)}
    candidates = [i for i in range(n_items) if i not in train]
    positives = [i for i in candidates if i in rel]
    negatives = [i for i in candidates if i not in rel]
    if compat:
        # implicit counts the padding of a short list as listed misses: equivalent to
        # listing that many otherwise unlisted negatives right after the list.
        filler = [i for i in negatives if i not in position][: k - len(top)]
        for j, i in enumerate(filler):
            position[i] = len(top) + j
    else:
        position = {i: j for j, i in enumerate(x for x in top if x not in train)}
    if not positives or not negatives:
        return float("nan")
    inf = float("inf")
    won = 0.0
    for p in positives:
        for n in negatives:
            rp, rn = position.get(p, inf), position.get(n, inf)
            won += 1.0 if rp < rn else (0.5 if rp == rn else 0.0)
    return won / (len(positives) * len(negatives))


def list_mean(recs, k, values):
    top = recs[:k]
    return sum(values[i] for i in top) / len(top) if top else float("nan")


def novelty_values(item_counts, n_train_users):
    return [-math.log2(max(c, 1) / max(n_train_users, 1)) for c in item_counts]


def ild(recs, k, features):
    top = recs[:k]
    if len(top) < 2:
        return float("nan")
    sims = []
    for a in range(len(top)):
        for b in range(a + 1, len(top)):
            fa, fb = set(features[top[a]]), set(features[top[b]])
            sims.append(len(fa & fb) / len(fa | fb) if fa | fb else 0.0)
    return 1.0 - sum(sims) / len(sims)


def coverage(lists, k, n_items):
    return len({i for recs in lists for i in recs[:k]}) / n_items


def gini(counts):
    """Mean-absolute-difference form: sum_ij |c_i - c_j| / (2 n^2 mean)."""
    n = len(counts)
    total = sum(counts)
    if n == 0 or total == 0:
        return float("nan")
    mad = sum(abs(a - b) for a in counts for b in counts)
    return mad / (2 * n * total)


def per_user(name, recs, rel, k, *, n_items, train=None, graded=False, compat=False, item_values=None,
             features=None):
    """Dispatch by metric name (names as in recli's registry)."""
    return {
        "precision": lambda: precision(recs, rel, k, compat),
        "recall": lambda: recall(recs, rel, k),
        "f1": lambda: f1(recs, rel, k, compat),
        "ndcg": lambda: ndcg(recs, rel, k, graded),
        "map": lambda: average_precision(recs, rel, k, compat),
        "mrr": lambda: reciprocal_rank(recs, rel, k),
        "hit": lambda: hit(recs, rel, k),
        "auc": lambda: auc(recs, rel, k, n_items, train, compat),
        "novelty": lambda: list_mean(recs, k, item_values["novelty"]),
        "popularity": lambda: list_mean(recs, k, item_values["popularity"]),
        "ild": lambda: ild(recs, k, features),
    }[name]()
