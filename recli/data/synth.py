"""A seeded generator of realistic interaction logs (the sample data and benchmark inputs).

Shape of the data:

- item popularity follows a Zipf law: item of popularity rank ``r`` is drawn with
  probability proportional to ``r ** -zipf_a`` (ranks are shuffled over the ids);
- user activity is lognormal: user ``u`` is drawn with probability proportional to
  ``exp(N(0, activity_sigma))``, so a few users are very active and most are not;
- users have tastes: each user favours one genre, and a share ``taste`` of their events
  is drawn from the items whose main genre that is (with the same Zipf popularity inside
  the genre); the rest come from the whole catalogue. Item ``i``'s main genre is the
  first genre of ``items()`` for the same ``n_items`` and seed, so models have a personal
  signal to learn and item features line up with it;
- each user is active over their own window inside ``[start, start + days)``, and
  events are uniform inside it (epoch seconds, int64);
- ratings 1-5 come from ``round(3.5 + item quality + user bias + noise)``, clipped;
- ids are strings with leading zeros (``u0000042``, ``i000042``), so any tool that casts
  them to numbers visibly breaks them. Duplicate (user, item) pairs occur, as in real logs.

Everything is vectorised NumPy/Polars: 20 million rows take a few seconds.
Regenerate the committed sample with ``python -m recli.data.synth --out sample_data``.
"""

from __future__ import annotations

import argparse
import datetime as dt

import numpy as np
import polars as pl

from recli.data.schema import ITEM, ITEM_GENRES, ITEM_ID, ITEM_TITLE, RATING, TIMESTAMP, USER

GENRES = ("action", "adventure", "animation", "children", "comedy", "crime", "documentary", "drama",
          "fantasy", "film-noir", "horror", "musical", "mystery", "romance", "sci-fi", "thriller", "war", "western")
_ADJ = ("Silent", "Red", "Last", "Hidden", "Golden", "Broken", "Wild", "Lost", "Dark", "Bright", "Frozen", "Electric")
_NOUN = ("River", "Empire", "Garden", "Signal", "Harbor", "Machine", "Summer", "Kingdom", "Letter", "Mountain",
         "Station", "Orchard", "Voyage", "Mirror")

# Sample-data defaults: a few thousand users, tens of thousands of rows.
SAMPLE = {"n_users": 3000, "n_items": 2000, "n_interactions": 60000, "seed": 42}

# Benchmark presets (``recli bench --synthetic NAME``): (users, items, interactions).
PRESETS = {"small": (10_000, 2_000, 200_000), "medium": (100_000, 20_000, 5_000_000),
           "large": (500_000, 100_000, 20_000_000)}


def _ids(prefix: str, n: int) -> pl.Series:
    width = max(6, len(str(n)))
    return pl.select(pl.lit(prefix) + pl.Series(np.arange(n)).cast(pl.String).str.zfill(width)).to_series()


def main_genres(n_items: int, seed: int = 42) -> np.ndarray:
    """Index into ``GENRES`` of each item's main genre (shared by ``interactions`` and ``items``)."""
    return np.random.default_rng([seed, 11]).integers(0, len(GENRES), n_items)


def _draw_items(rng: np.random.Generator, users: np.ndarray, pop: np.ndarray, n_items: int, seed: int,
                taste: float) -> np.ndarray:
    """One item per event: from the user's favourite genre with probability ``taste``,
    else from the catalogue, popularity-weighted either way (multinomial counts, O(rows))."""
    n = users.shape[0]
    items = np.repeat(np.arange(n_items, dtype=np.int32), rng.multinomial(n, pop / pop.sum()))
    items = items[rng.permutation(n)]
    if taste <= 0:
        return items
    genre_of_item = main_genres(n_items, seed)
    favourite = rng.integers(0, len(GENRES), int(users.max()) + 1)[users]
    tasteful = rng.random(n) < taste
    for g in range(len(GENRES)):
        rows = np.flatnonzero(tasteful & (favourite == g))
        members = np.flatnonzero(genre_of_item == g).astype(np.int32)
        if rows.size == 0 or members.size == 0:
            continue
        w = pop[members]
        picks = np.repeat(members, rng.multinomial(rows.size, w / w.sum()))
        items[rows] = picks[rng.permutation(rows.size)]
    return items


def interactions(n_users: int = 3000, n_items: int = 2000, n_interactions: int = 60000, seed: int = 42,
                 zipf_a: float = 0.8, activity_sigma: float = 1.2, start: str = "2019-01-01", days: int = 730,
                 taste: float = 0.8) -> pl.DataFrame:
    """Generate an interaction log: columns user, item (strings), rating (int 1-5), timestamp (int64).

    Parameters
    ----------
    n_users, n_items, n_interactions : sizes (rows include duplicate pairs).
    seed : the same seed gives the same frame.
    zipf_a : Zipf exponent of item popularity (larger = more skewed).
    activity_sigma : sigma of the lognormal user activity (larger = more skewed).
    start, days : the time window of the events (``start`` is an ISO date, UTC).
    taste : share of each user's events drawn from their favourite genre (0 = none).

    Returns
    -------
    polars.DataFrame sorted by timestamp (as a log would be).
    """
    if min(n_users, n_items, n_interactions) < 1:
        raise ValueError("n_users, n_items and n_interactions must be >= 1")
    rng = np.random.default_rng(seed)
    pop = np.arange(1, n_items + 1, dtype=np.float64) ** -zipf_a
    pop = pop[rng.permutation(n_items)]
    activity = rng.lognormal(0.0, activity_sigma, n_users)
    # Multinomial counts + repeat is O(rows) (rng.choice with p is a binary search per row);
    # shuffling the items makes them independent of the (grouped) users.
    users = np.repeat(np.arange(n_users, dtype=np.int32), rng.multinomial(n_interactions, activity / activity.sum()))
    items = _draw_items(rng, users, pop, n_items, seed, taste)

    t0 = int(dt.datetime.fromisoformat(start).replace(tzinfo=dt.timezone.utc).timestamp())
    span = days * 86400
    window = rng.uniform(0.05, 1.0, n_users) * span
    offset = rng.uniform(0.0, 1.0, n_users) * (span - window)
    ts = t0 + (offset[users] + rng.random(n_interactions) * window[users]).astype(np.int64)

    quality = rng.normal(0.0, 0.7, n_items)
    bias = rng.normal(0.0, 0.4, n_users)
    noise = rng.normal(0.0, 0.8, n_interactions)
    rating = np.clip(np.rint(3.5 + quality[items] + bias[users] + noise), 1, 5).astype(np.int8)

    # Sort by (time, row) through one unique int64 key: Polars' multi-threaded sort, and
    # deterministic because no two keys tie (times < 2**27 s after t0, rows < 2**36).
    if span < 2**27 and n_interactions < 2**36:
        key = ((ts - t0) << 36) | np.arange(n_interactions, dtype=np.int64)
        order = pl.Series(key).arg_sort().to_numpy()
    else:
        order = np.argsort(ts, kind="stable")
    user_ids, item_ids = _ids("u", n_users), _ids("i", n_items)
    return pl.DataFrame({
        USER: user_ids.gather(users[order]),
        ITEM: item_ids.gather(items[order]),
        RATING: rating[order],
        TIMESTAMP: ts[order],
    })


def items(n_items: int = 2000, seed: int = 42) -> pl.DataFrame:
    """Item side information: item id, a made-up title with a year, and 1-3 genres as ``a|b|c``."""
    rng = np.random.default_rng([seed, 7])
    adj = np.array(_ADJ)[rng.integers(0, len(_ADJ), n_items)]
    noun = np.array(_NOUN)[rng.integers(0, len(_NOUN), n_items)]
    year = rng.integers(1950, 2024, n_items)
    n_genres = rng.integers(1, 4, n_items)
    # the main genre first (it drives user tastes in interactions()), then up to 2 others
    main = main_genres(n_items, seed)
    noise = rng.random((n_items, len(GENRES)))
    noise[np.arange(n_items), main] = -1.0
    picks = np.argsort(noise, axis=1)[:, :3]
    genre_names = np.array(GENRES)
    genres = ["|".join(genre_names[picks[i, : n_genres[i]]]) for i in range(n_items)]
    titles = [f"The {a} {b} ({y})" for a, b, y in zip(adj, noun, year)]
    return pl.DataFrame({ITEM_ID: _ids("i", n_items), ITEM_TITLE: titles, ITEM_GENRES: genres})


def main(argv: list[str] | None = None) -> None:
    """``python -m recli.data.synth --out DIR``: write interactions.csv and items.csv."""
    from pathlib import Path

    from recli.data.io import write_table

    ap = argparse.ArgumentParser(prog="python -m recli.data.synth", description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="sample_data", help="directory for interactions.csv and items.csv")
    ap.add_argument("--users", type=int, default=SAMPLE["n_users"])
    ap.add_argument("--items", type=int, default=SAMPLE["n_items"])
    ap.add_argument("--rows", type=int, default=SAMPLE["n_interactions"])
    ap.add_argument("--seed", type=int, default=SAMPLE["seed"])
    ap.add_argument("--interactions-only", action="store_true", help="skip items.csv")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_table(interactions(args.users, args.items, args.rows, args.seed), str(out / "interactions.csv"))
    if not args.interactions_only:
        write_table(items(args.items, args.seed), str(out / "items.csv"))


if __name__ == "__main__":
    main()
