"""The documented rule that turns a fraction into a row count: round half up,
``floor(f * n + 0.5)``, at most ``n - 1`` per user (banker's rounding, ``ceil`` or
``floor`` would each give another count for one of these cases)."""

from __future__ import annotations

import numpy as np
import pytest

from recli.data.split import Size, split_mask


@pytest.mark.parametrize("strategy", ["leave-random", "user-ratio", "leave-last"])
@pytest.mark.parametrize(("rows", "fraction", "expected"), [
    (7, 0.2, 1),   # 1.4 -> 1 (ceil would give 2)
    (5, 0.5, 3),   # 2.5 -> 3 (banker's rounding would give 2)
    (3, 0.5, 2),   # 1.5 -> 2 (banker's rounding would give 2 too; floor gives 1)
    (4, 0.5, 2),   # exact
    (2, 0.9, 1),   # 1.8 -> 2, capped at n - 1 = 1
    (1, 0.5, 0),   # a user with one row keeps it
])
def test_per_user_fraction_count(strategy, rows, fraction, expected):
    users = np.zeros(rows, dtype=np.int64)
    ts = np.arange(rows, dtype=np.int64)
    mask, _ = split_mask(strategy, Size(fraction=fraction), users, ts, np.random.default_rng(0))
    assert int(mask.sum()) == expected


@pytest.mark.parametrize(("rows", "fraction", "expected"), [(7, 0.2, 1), (5, 0.5, 3), (25, 0.1, 3)])
def test_global_fraction_count(rows, fraction, expected):
    users = np.arange(rows, dtype=np.int64)
    ts = np.arange(rows, dtype=np.int64)
    for strategy in ("random", "temporal"):
        mask, _ = split_mask(strategy, Size(fraction=fraction), users, ts, np.random.default_rng(0))
        assert int(mask.sum()) == expected, strategy


def test_leave_last_takes_the_latest_rows():
    users = np.array([0, 0, 0, 0, 0, 1, 1, 1])
    ts = np.array([5, 1, 4, 2, 3, 9, 7, 8])
    mask, _ = split_mask("leave-last", Size(fraction=0.5), users, ts, np.random.default_rng(0))
    assert mask.tolist() == [True, False, True, False, True, True, False, True]
