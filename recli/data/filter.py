"""Minimum-interaction filters and the k-core, over integer user/item codes.

``--min-user-interactions U`` and ``--min-item-interactions I`` drop users with fewer
than U interactions and items with fewer than I, both judged on the same counts (one
pass). Dropping users lowers item counts and vice versa, so one pass can leave
violators behind; ``--k-core`` repeats the pass until both thresholds hold for every
remaining user and item. The result is the maximal sub-table where they hold (the
(U, I)-core), which is unique, so the order of removal does not matter.

Each pass is two ``np.bincount`` calls and a gather: O(rows), no Python loop over
users or rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class FilterResult:
    """Which rows survive, and why the others went."""

    keep: np.ndarray          # bool per input row
    dropped_user: int         # rows dropped because their user had too few interactions
    dropped_item: int         # rows dropped because their item had too few (and the user was fine)
    passes: int               # passes made (1 without --k-core)


def core_mask(users: np.ndarray, items: np.ndarray, min_user: int = 0, min_item: int = 0,
              iterate: bool = False) -> FilterResult:
    """Rows to keep so that users have >= ``min_user`` and items >= ``min_item`` rows.

    Parameters
    ----------
    users, items : non-negative integer codes, one per interaction.
    min_user, min_item : thresholds (0 or 1 means no constraint).
    iterate : repeat until both hold (the k-core); otherwise one pass on the input counts.

    Returns
    -------
    FilterResult with the boolean mask and per-reason drop counts. A row failing both
    tests in the same pass is counted under the user threshold.
    """
    users = np.asarray(users)
    items = np.asarray(items)
    n = users.shape[0]
    keep = np.ones(n, dtype=bool)
    if n == 0 or (min_user <= 1 and min_item <= 1):
        return FilterResult(keep, 0, 0, 0)
    n_users = int(users.max()) + 1
    n_items = int(items.max()) + 1
    dropped_user = dropped_item = passes = 0
    while True:
        passes += 1
        live_users, live_items = (users, items) if passes == 1 else (users[keep], items[keep])
        u_count = np.bincount(live_users, minlength=n_users)
        i_count = np.bincount(live_items, minlength=n_items)
        bad_user = keep & (u_count[users] < min_user)
        bad_item = keep & ~bad_user & (i_count[items] < min_item)
        n_bad_user = int(bad_user.sum())
        n_bad_item = int(bad_item.sum())
        if n_bad_user + n_bad_item == 0:
            break
        dropped_user += n_bad_user
        dropped_item += n_bad_item
        keep &= ~(bad_user | bad_item)
        if not iterate:
            break
    return FilterResult(keep, dropped_user, dropped_item, passes)
