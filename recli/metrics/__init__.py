"""Evaluation metrics over integer-encoded arrays (no Polars here).

Entry points
------------
:func:`evaluate_arrays`
    one call: top-k lists (int32 ``[n, k]``, -1 padded) + CSR truth -> ``{"ndcg@10": ...}``.
:class:`Evaluator`
    the same, fed in batches (``add`` per batch, then ``result()``), with per-user values
    kept on request.
:func:`rating_errors`, :func:`paired_tests`, :func:`bootstrap_ci`, :data:`METRICS`.
"""

from recli.metrics.ranking import EvalResult, Evaluator, evaluate_arrays
from recli.metrics.rating import rating_errors
from recli.metrics.registry import DEFAULT_METRICS, METRICS, parse_gates, parse_ks, parse_metrics
from recli.metrics.stats import bootstrap_ci, paired_tests

__all__ = ["EvalResult", "Evaluator", "evaluate_arrays", "rating_errors", "DEFAULT_METRICS", "METRICS",
           "parse_gates", "parse_ks", "parse_metrics", "bootstrap_ci", "paired_tests"]
