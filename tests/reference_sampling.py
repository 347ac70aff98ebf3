"""The kernels' random draws, replayed one at a time from Python, for the fold-in
references: a reference must make exactly the draws the kernel makes to be comparable.
The draws come from the kernel's own generator (:mod:`recli.kernels.random_streams`);
what is done with them (redraw a positive, count negatives) is written out plainly here."""

from __future__ import annotations

import numpy as np

from recli.kernels.random_streams import history_seed, next_below, stream_state


class RowStream:
    """The random stream of one fold-in row: seeded by the seed and the row's items."""

    def __init__(self, seed: int, row: np.ndarray):
        row = np.asarray(row, dtype=np.int32)
        self.state = np.uint64(stream_state(np.uint64(history_seed(np.uint64(seed), row, 0, len(row))), 0, 0))

    def below(self, n: int) -> int:
        # np.uint64 each time: Numba would type a plain Python int as int64
        state, r = next_below(self.state, n)
        self.state = np.uint64(state)
        return int(r)

    def negative(self, row: np.ndarray, n_items: int, max_draws: int) -> int | None:
        """Draw until an item outside ``row``; ``None`` after ``max_draws`` positives."""
        owned = set(np.asarray(row).tolist())
        for _ in range(max_draws):
            j = self.below(n_items)
            if j not in owned:
                return j
        return None
