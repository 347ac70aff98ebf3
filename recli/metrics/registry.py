"""The single registry of metric names: kind, requirements, formula and edge cases.

``recli eval --list-metrics``, ``--metrics`` validation and the ``--fail-under``
parser all derive from :data:`METRICS`. Notation: ``L`` is the user's
ranked list (best first, cut at ``k``), ``R`` the user's relevant test items, ``rel_j``
is 1 when the item at rank ``j`` (1-based) is in ``R``, ``hits@k = sum_{j<=k} rel_j``.
"""

from __future__ import annotations

from dataclasses import dataclass

from recli.errors import ConfigError


@dataclass(frozen=True)
class MetricSpec:
    """One metric: how it is computed and what it needs."""

    name: str
    kind: str                 # "ranking" | "beyond" | "rating"
    at_k: bool                # reported at every k asked
    per_user: bool            # a mean of per-user values (significance/bootstrap apply)
    higher_is_better: bool
    needs: tuple[str, ...]    # extra inputs: "train", "items", "predictions"
    summary: str
    formula: str
    edge_cases: str


_RANKING_EDGE = ("users with no recommendations score 0; a list shorter than k is scored as is "
                 "(missing ranks are not relevant)")

_SPECS = (
    MetricSpec("precision", "ranking", True, True, True, (),
               "fraction of the top k that is relevant",
               "hits@k / k",
               _RANKING_EDGE + "; the denominator stays k even when |R| < k or |L| < k "
               "(trec_eval/ranx). --compat implicit: hits@k / min(k, |R|), averaged as "
               "sum(hits) / sum(min(k, |R|)) over users, as implicit does"),
    MetricSpec("recall", "ranking", True, True, True, (),
               "fraction of the relevant items found in the top k",
               "hits@k / |R|",
               _RANKING_EDGE + "; can only reach 1 when |R| <= k"),
    MetricSpec("f1", "ranking", True, True, True, (),
               "harmonic mean of precision@k and recall@k per user",
               "2 P R / (P + R)",
               _RANKING_EDGE + "; 0 when P + R = 0; uses the precision of the active --compat mode"),
    MetricSpec("ndcg", "ranking", True, True, True, (),
               "normalised discounted cumulative gain (binary, or graded with --graded)",
               "DCG@k / IDCG@k, DCG@k = sum_{j<=k} g_j / log2(j + 1); g_j = rel_j, or the test "
               "rating with --graded; IDCG@k = DCG of the ideal list (R sorted by gain, first "
               "min(k, |R|))",
               _RANKING_EDGE + "; ties in gain do not change IDCG"),
    MetricSpec("map", "ranking", True, True, True, (),
               "mean average precision",
               "AP@k = sum_{j<=k, rel_j} (hits@j / j) / |R|",
               _RANKING_EDGE + "; divides by |R| even when |R| > k (trec_eval/ranx). "
               "--compat implicit: divides by min(k, |R|)"),
    MetricSpec("mrr", "ranking", True, True, True, (),
               "mean reciprocal rank of the first relevant item",
               "1 / (rank of the first relevant item within k), else 0",
               _RANKING_EDGE),
    MetricSpec("hit", "ranking", True, True, True, (),
               "hit rate: share of users with at least one relevant item in the top k",
               "1 if hits@k > 0 else 0",
               _RANKING_EDGE),
    MetricSpec("auc", "ranking", True, True, True, (),
               "per-user ROC AUC of the top-k list over all candidate items",
               "P(a relevant candidate is ranked above a non-relevant one); listed items rank "
               "by position, unlisted items tie below the list, ties count 1/2. Candidates: "
               "every catalogue item except the user's TRAIN items (relevant items seen in "
               "TRAIN are not candidates either)",
               "without --train nothing is excluded (every catalogue item is a candidate; a "
               "warning says so); users with no relevant or no non-relevant candidate are "
               "left out of the mean (the user count shows it); TRAIN items in the list are "
               "skipped. --compat implicit: candidates are the whole catalogue and padding "
               "of a short list counts as listed non-relevant items"),
    MetricSpec("coverage", "beyond", True, False, True, (),
               "catalogue coverage: share of catalogue items recommended to anyone in the top k",
               "|union of top-k lists| / |catalogue|; catalogue = every item id in RECS, TEST, "
               "TRAIN and ITEMS",
               "over the lists of the evaluated users; a single global value (no CI or p-value)"),
    MetricSpec("gini", "beyond", True, False, False, (),
               "Gini index of how often each catalogue item is recommended (0 equal, 1 concentrated)",
               "sum_i (2i - n - 1) c_(i) / (n sum_i c_i), c_(1) <= ... <= c_(n) the top-k "
               "counts of all n catalogue items (zeros included)",
               "null when nothing is recommended; a single global value (no CI or p-value)"),
    MetricSpec("novelty", "beyond", True, True, True, ("train",),
               "mean self-information of the recommended items",
               "mean over the list of -log2(pop_i), pop_i = (TRAIN users of i) / (TRAIN users)",
               "items never seen in TRAIN count as seen by one user; users with an empty list "
               "are left out of the mean"),
    MetricSpec("popularity", "beyond", True, True, False, ("train",),
               "average recommended-item popularity (ARP)",
               "mean over the list of the number of TRAIN users of each item",
               "users with an empty list are left out of the mean"),
    MetricSpec("ild", "beyond", True, True, True, ("items",),
               "intra-list diversity from item features (--items, genres like a|b|c)",
               "1 - mean over item pairs in the list of Jaccard(F_a, F_b) = |F_a & F_b| / |F_a | F_b|",
               "items without features have an empty set; Jaccard of two empty sets is 0; "
               "lists with fewer than 2 items are left out of the mean"),
    MetricSpec("rmse", "rating", False, False, False, ("predictions",),
               "root mean squared error of predicted ratings",
               "sqrt(mean over covered rated test pairs of (prediction - rating)^2)",
               "only test rows with a rating and a prediction count (coverage is reported); "
               "predictions from --predictions, else a 'prediction' column of RECS, else its 'score'"),
    MetricSpec("mae", "rating", False, False, False, ("predictions",),
               "mean absolute error of predicted ratings",
               "mean over covered rated test pairs of |prediction - rating|",
               "as rmse"),
)

METRICS: dict[str, MetricSpec] = {m.name: m for m in _SPECS}
DEFAULT_METRICS: tuple[str, ...] = ("precision", "recall", "ndcg", "map", "mrr", "hit")
ALIASES = {"hit_rate": "hit", "hitrate": "hit", "diversity": "ild", "arp": "popularity",
           "p": "precision", "r": "recall", "ap": "map", "rr": "mrr"}
COMPAT_MODES = ("none", "implicit")


def parse_metrics(text: str | None) -> list[str]:
    """``"ndcg,recall"`` -> canonical names in registry order; ``None`` -> the default set."""
    if text is None or not text.strip():
        return list(DEFAULT_METRICS)
    asked = []
    for raw in text.split(","):
        name = raw.strip().lower()
        if not name:
            continue
        name = ALIASES.get(name, name)
        if name not in METRICS:
            raise ConfigError(f"unknown metric {raw.strip()!r}",
                              hint=f"valid metrics: {', '.join(METRICS)} (see 'recli eval --list-metrics')")
        asked.append(name)
    if not asked:
        raise ConfigError("--metrics is empty", hint=f"name at least one of: {', '.join(METRICS)}")
    return [m for m in METRICS if m in asked]


def parse_ks(text: str | int | list[int]) -> list[int]:
    """``"5,10,20"`` -> ``[5, 10, 20]``, sorted and unique; each k a positive integer."""
    parts = [str(p) for p in text] if isinstance(text, (list, tuple)) else str(text).split(",")
    ks = []
    for raw in parts:
        raw = raw.strip()
        try:
            k = int(raw)
        except ValueError:
            raise ConfigError(f"-k {raw!r} is not an integer",
                              hint="give positive integers separated by commas, e.g. -k 5,10,20") from None
        if k <= 0:
            raise ConfigError(f"-k must be positive, got {k}", hint="give positive integers, e.g. -k 5,10,20")
        ks.append(k)
    if not ks:
        raise ConfigError("-k is empty", hint="give positive integers, e.g. -k 10")
    return sorted(set(ks))


def metric_key(name: str, k: int | None) -> str:
    """The display/key form: ``ndcg@10``, or ``rmse`` for metrics without a cutoff."""
    return name if k is None else f"{name}@{k}"


def parse_gates(text: str | None) -> list[tuple[str, int | None, float]]:
    """``"ndcg@10=0.3,recall@20=0.2"`` -> ``[("ndcg", 10, 0.3), ("recall", 20, 0.2)]``."""
    if not text:
        return []
    gates = []
    for raw in text.split(","):
        raw = raw.strip()
        if not raw:
            continue
        hint = "write metric@k=value pairs, e.g. --fail-under ndcg@10=0.30,recall@20=0.2"
        if "=" not in raw:
            raise ConfigError(f"--fail-under entry {raw!r} has no '=value'", hint=hint)
        key, value = raw.split("=", 1)
        name, k = parse_metric(key, "--fail-under", hint)
        spec = METRICS[name]
        if not spec.higher_is_better:
            raise ConfigError(f"--fail-under {name}: lower {name} is better, a floor makes no sense",
                              hint="gate on a higher-is-better metric such as ndcg@10 or recall@20")
        try:
            threshold = float(value)
        except ValueError:
            raise ConfigError(f"--fail-under threshold {value!r} is not a number", hint=hint) from None
        gates.append((name, k, threshold))
    return gates


def parse_metric(text: str, option: str, hint: str | None = None) -> tuple[str, int | None]:
    """``"ndcg@10"`` -> ``("ndcg", 10)``, ``"rmse"`` -> ``("rmse", None)``: one metric with
    its cutoff (required for metrics at k, ignored for the others)."""
    name, _, k_text = text.strip().partition("@")
    name = ALIASES.get(name.lower(), name.lower())
    if name not in METRICS:
        raise ConfigError(f"unknown metric {name!r} in {option}", hint=f"valid metrics: {', '.join(METRICS)}")
    spec = METRICS[name]
    if spec.at_k and not k_text:
        raise ConfigError(f"{option} {name} needs a cutoff, e.g. {name}@10",
                          hint=hint or f"write metric@k, e.g. {option} {name}@10")
    return name, (parse_ks(k_text)[0] if spec.at_k else None)


def describe_metrics() -> list[dict[str, str]]:
    """One dict per metric (for ``--list-metrics --format json``)."""
    return [{"name": m.name, "kind": m.kind, "at_k": m.at_k, "needs": ",".join(m.needs),
             "higher_is_better": m.higher_is_better, "summary": m.summary,
             "formula": m.formula, "edge_cases": m.edge_cases} for m in METRICS.values()]


def metrics_text() -> str:
    """Plain-text listing for ``recli eval --list-metrics``."""
    lines = []
    for m in METRICS.values():
        tag = f"{m.kind}{', at k' if m.at_k else ''}{', needs --' + ', --'.join(m.needs) if m.needs else ''}"
        default = " [default]" if m.name in DEFAULT_METRICS else ""
        lines.append(f"{m.name}{default}  ({tag}; {'higher' if m.higher_is_better else 'lower'} is better)")
        lines.append(f"    {m.summary}")
        lines.append(f"    formula: {m.formula}")
        lines.append(f"    edge cases: {m.edge_cases}")
    return "\n".join(lines) + "\n"

