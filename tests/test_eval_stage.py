"""The frame path (ids mapped once with Polars) against the references, implicit's own
evaluation (``--compat implicit``) and ranx on MovieLens 100K."""

from __future__ import annotations

import json
import math

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recli.metrics import evaluate_arrays
from recli.metrics.stats import bootstrap_ci, paired_tests
from recli.stages.evaluate import evaluate
from tests import reference_metrics as ref

NAMES = ["precision", "recall", "f1", "ndcg", "map", "mrr", "hit"]


@st.composite
def frames(draw):
    n_users, n_items = draw(st.integers(1, 6)), draw(st.integers(1, 15))
    recs, test = [], []
    for u in range(n_users):
        items = draw(st.lists(st.integers(0, n_items - 1), unique=True, max_size=8))
        recs += [(f"u{u}", f"i{i:02d}", float(draw(st.integers(0, 3)))) for i in items]  # score ties
        test += [(f"u{u}", f"i{i:02d}") for i in draw(st.lists(st.integers(0, n_items - 1), unique=True, max_size=5))]
    order = draw(st.permutations(range(len(recs))))
    recs = [recs[j] for j in order]  # rows of a user are not contiguous
    if not test:
        test = [("u0", "i00")]
    return recs, test, sorted(set(draw(st.lists(st.integers(1, 6), min_size=1, max_size=3))))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames())
def test_frame_path_matches_reference_with_score_ties(case):
    recs, test, ks = case
    recs_df = pl.DataFrame(recs, schema=["user", "item", "score"], orient="row")
    test_df = pl.DataFrame(test, schema=["user", "item"], orient="row")
    report = evaluate([("m", recs_df)], test_df, ks=ks, metrics=NAMES, per_user=True)
    rel = {}
    for u, i in test:
        rel.setdefault(u, {})[i] = 1.0
    lists = {}
    for _pos, (u, i, _s) in sorted(enumerate(recs), key=lambda t: (t[1][0], -t[1][2], t[0])):
        lists.setdefault(u, []).append(i)  # score descending, file order on ties
    pu = report.per_user.sort("user")
    assert pu["user"].to_list() == sorted(rel)
    for name in NAMES:
        for k in ks:
            want = [ref.per_user(name, lists.get(u, []), rel[u], k, n_items=0) for u in sorted(rel)]
            assert np.allclose(pu[f"{name}@{k}"].to_numpy(), want, atol=1e-12, rtol=0)
            row = report.results.filter((pl.col("metric") == name) & (pl.col("k") == k))
            assert row["value"][0] == pytest.approx(sum(want) / len(want), abs=1e-12)
            assert row["users"][0] == len(rel)


def test_integer_ids_from_parquet_match_string_ids(tmp_path):
    recs = pl.DataFrame({"user": [1, 1, 2], "item": [10, 20, 10], "rank": [1, 2, 1]})
    test = pl.DataFrame({"user": [1, 2], "item": [20, 30]})
    a = evaluate([("m", recs)], test, ks=[2]).results
    b = evaluate([("m", recs.cast(pl.Utf8))], test.cast(pl.Utf8), ks=[2]).results
    mixed = evaluate([("m", recs)], test.cast(pl.Utf8), ks=[2]).results  # one side strings: compared as strings
    assert a["value"].to_list() == b["value"].to_list() == mixed["value"].to_list()
    assert a.filter(pl.col("metric") == "recall")["value"][0] == pytest.approx(0.5)


def test_decimal_string_ids_map_like_the_join_in_string_order():
    """Decimal strings take the lookup-table path: same sorted-string vocabulary and codes
    as the join path; a non-canonical spelling ("07", "+7", "-0", " 7") falls back."""
    from recli.stages.eval_inputs import Vocab, decimal_ids, unique_sorted

    a = pl.Series(["10", "9", "0", "100", "9", "23"])
    b = pl.Series(["5", "10", "77", "1000000"])
    vocab = Vocab.of([a, b])
    assert vocab.lut is not None
    assert vocab.ids.to_list() == unique_sorted([a, b]).to_list() == sorted({*a.to_list(), *b.to_list()})
    join = Vocab(unique_sorted([a, b]))
    assert join.lut is None
    probe = pl.Series(["9", "1000000", "8", "0", "100"])
    assert vocab.codes(probe).tolist() == join.codes(probe).tolist() == [7, 3, -1, 0, 2]
    assert vocab.codes(pl.Series(["09", "x"])).tolist() == [-1, -1]  # not decimal: the join
    for odd in (["07", "1"], ["+7"], ["-0"], [" 7"], ["7", "x"], ["-3"], ["00"], ["7 "]):
        assert decimal_ids(pl.Series(odd)) is None, odd
        assert Vocab.of([pl.Series(odd)]).lut is None
    assert decimal_ids(pl.Series(["0", "42"])).tolist() == [0, 42]


def _implicit_model(lists):
    from implicit.recommender_base import RecommenderBase

    class Fixed(RecommenderBase):
        """Returns precomputed lists, so implicit's evaluation scores exactly them."""

        def recommend(self, userid, user_items, N=10, **_):
            rows = [lists[u][:N] + [-1] * (N - len(lists[u][:N])) for u in np.atleast_1d(userid)]
            ids = np.array(rows, dtype=np.int32)
            return ids, np.zeros(ids.shape, dtype=np.float32)

        fit = recalculate_user = recalculate_item = similar_items = similar_users = None
        save = load = to_cpu = to_gpu = None

    return Fixed()


def test_compat_implicit_reproduces_implicit_ranking_metrics():
    import scipy.sparse as sp
    from implicit.evaluation import ranking_metrics_at_k

    rng = np.random.default_rng(11)
    n_users, n_items, k = 80, 60, 10
    train = sp.random(n_users, n_items, density=0.15, format="csr", random_state=1, dtype=np.float32)
    test = sp.random(n_users, n_items, density=0.08, format="csr", random_state=2, dtype=np.float32)
    test = (test - test.multiply(train > 0)).tocsr()  # held-out items are not in TRAIN
    test.eliminate_zeros()
    train.data[:] = 1
    test.data[:] = 1
    lists = []
    for u in range(n_users):
        seen = set(train.indices[train.indptr[u]:train.indptr[u + 1]])
        cand = [i for i in rng.permutation(n_items) if i not in seen]
        lists.append([int(i) for i in cand[: rng.integers(3, k + 3)]])  # some lists shorter than k
    theirs = ranking_metrics_at_k(_implicit_model(lists), train, test, K=k, show_progress=False)
    rec = np.full((n_users, k), -1, dtype=np.int32)
    for u, items in enumerate(lists):
        rec[u, : min(k, len(items))] = items[:k]
    ours = evaluate_arrays(rec, test.indptr, test.indices, [k], ["precision", "map", "ndcg", "auc"], n_items=n_items,
                           train_indptr=train.indptr, train_indices=train.indices, compat="implicit")
    for name in ("precision", "map", "ndcg", "auc"):
        assert ours[f"{name}@{k}"] == pytest.approx(theirs[name], abs=1e-12), name
    standard = evaluate_arrays(rec, test.indptr, test.indices, [k], ["precision", "map"], n_items=n_items)
    assert standard["precision@10"] != pytest.approx(theirs["precision"])  # the modes really differ


def test_paired_tests_against_scipy_and_the_t_formula():
    a = np.array([0.1, 0.4, 0.35, 0.8, 0.0, 0.55, 0.2, 0.9])
    b = np.array([0.2, 0.5, 0.30, 0.9, 0.1, 0.75, 0.2, 0.95])
    p_t, p_w = paired_tests(a, b)
    import scipy.stats

    assert p_t == pytest.approx(scipy.stats.ttest_rel(b, a).pvalue, rel=1e-12)
    assert p_w == pytest.approx(scipy.stats.wilcoxon(b, a).pvalue, rel=1e-12)
    d = b - a
    t = d.mean() / (d.std(ddof=1) / math.sqrt(d.size))
    assert p_t == pytest.approx(2 * scipy.stats.t.sf(abs(t), d.size - 1), rel=1e-9)
    assert paired_tests(a, a) == (1.0, 1.0)
    with_nan = np.append(a, np.nan), np.append(b, 0.3)
    assert paired_tests(*with_nan) == (p_t, p_w)  # NaN pairs are dropped


def test_bootstrap_is_seeded_and_covers_the_mean():
    v = np.random.default_rng(0).random((500, 2))
    lo1, hi1 = bootstrap_ci(v, n_resamples=300, seed=5)
    lo2, hi2 = bootstrap_ci(v, n_resamples=300, seed=5)
    lo3, _ = bootstrap_ci(v, n_resamples=300, seed=6)
    assert np.array_equal(lo1, lo2) and np.array_equal(hi1, hi2) and not np.array_equal(lo1, lo3)
    assert np.all(lo1 < v.mean(axis=0)) and np.all(v.mean(axis=0) < hi1)
    assert np.all(hi1 - lo1 < 0.1)


def _ml100k_split(path, tmp_path):
    """Seeded leave-random 20% per user; popularity top-20 excluding each user's TRAIN."""
    df = pl.read_csv(path, separator="\t", has_header=False, new_columns=["user", "item", "rating", "ts"])
    rng = np.random.default_rng(42)
    df = df.with_columns(pl.Series("r", rng.random(df.height))).sort("user", "r")
    df = df.with_columns(pl.int_range(pl.len()).over("user").alias("pos"), pl.len().over("user").alias("n"))
    is_test = pl.col("pos") < (pl.col("n") * 0.2).ceil()
    train, test = df.filter(~is_test), df.filter(is_test)
    pop = train.group_by("item").len().sort(["len", "item"], descending=[True, False])["item"].to_list()
    seen = {u: set(g["item"].to_list()) for (u,), g in train.group_by("user")}
    rows = []
    for u in sorted(seen):
        top = [i for i in pop if i not in seen[u]][:20]
        rows += [(u, i, r + 1) for r, i in enumerate(top)]
    recs = pl.DataFrame(rows, schema=["user", "item", "rank"], orient="row")
    paths = {}
    for name, frame in (("train", train.select("user", "item")), ("test", test.select("user", "item", "rating")),
                        ("recs", recs)):
        paths[name] = tmp_path / f"{name}.csv"
        frame.write_csv(paths[name])
    return paths, recs, test


@pytest.mark.slow
def test_ranx_agrees_on_movielens_100k(cli, ml100k, tmp_path):
    from ranx import Qrels, Run
    from ranx import evaluate as ranx_evaluate

    paths, recs, test = _ml100k_split(ml100k, tmp_path)
    res = cli(["eval", paths["recs"], "--test", paths["test"], "--train", paths["train"], "-k", "5,10,20",
               "-m", "precision,recall,ndcg,map,mrr,hit", "--format", "json"])
    assert res.exit_code == 0, res.stderr
    ours = {f"{r['metric']}@{r['k']}": r["value"] for r in json.loads(res.stdout)}
    assert all(r["users"] == 943 for r in json.loads(res.stdout))
    qrels = {}
    for u, i in test.select("user", "item").iter_rows():
        qrels.setdefault(str(u), {})[str(i)] = 1
    run = {}
    for u, i, r in recs.iter_rows():
        run.setdefault(str(u), {})[str(i)] = 100.0 - r  # distinct scores: ranx keeps our order
    names = {"precision": "precision", "recall": "recall", "ndcg": "ndcg", "map": "map", "mrr": "mrr", "hit": "hit_rate"}
    wanted = [f"{theirs}@{k}" for theirs in names.values() for k in (5, 10, 20)]
    theirs = ranx_evaluate(Qrels(qrels), Run(run), wanted, make_comparable=True)
    for ours_name, ranx_name in names.items():
        for k in (5, 10, 20):
            assert ours[f"{ours_name}@{k}"] == pytest.approx(theirs[f"{ranx_name}@{k}"], abs=1e-9)
    assert 0.05 < ours["ndcg@10"] < 0.5  # popularity is a real, non-trivial baseline here


@pytest.mark.parametrize("only_recommended", [False, True])
def test_users_rule_names_every_model(only_recommended):
    """With several RECS the "evaluated ..." line counts the users without recommendations
    of each model, not only of the last one."""
    test = pl.DataFrame({"user": ["u0", "u1", "u2"], "item": ["i0", "i1", "i2"]})
    full = pl.DataFrame({"user": ["u0", "u1", "u2"], "item": ["i0", "i1", "i9"], "rank": [1, 1, 1]})
    part = full.head(1)
    rule = evaluate([("a", full), ("b", part)], test, ks=[1], only_recommended=only_recommended).users_rule
    assert "0 for a" in rule and "2 for b" in rule
    if only_recommended:
        assert rule.startswith("users (3 for a, 1 for b): ")
    else:
        assert rule.startswith("3 users")


def test_prefixed_decimal_ids_map_like_the_join_in_string_order():
    """``u17``-style ids (one shared prefix, then a canonical decimal) take the lookup-table
    path with the join's sorted-string vocabulary and codes; any other spelling falls back."""
    from recli.stages.eval_inputs import Vocab, decimal_ids, unique_sorted

    a = pl.Series(["u10", "u9", "u0", "u100", "u9", "u23"])
    b = pl.Series(["u5", "u10", "u77", "u1000000"])
    vocab = Vocab.of([a, b])
    assert vocab.lut is not None and vocab.prefix == "u"
    assert vocab.ids.to_list() == unique_sorted([a, b]).to_list() == sorted({*a.to_list(), *b.to_list()})
    join = Vocab(unique_sorted([a, b]))
    probe = pl.Series(["u9", "u1000000", "u8", "u0", "u100"])
    assert vocab.codes(probe).tolist() == join.codes(probe).tolist() == [7, 3, -1, 0, 2]
    assert vocab.codes(pl.Series(["u09", "9", "v9", "u"])).tolist() == [-1, -1, -1, -1]  # the join
    for odd in (["u07", "u1"], ["u1", "v2"], ["u1", "u"], ["u+7"], ["u-0"], ["u 7"]):
        assert Vocab.of([pl.Series(odd)]).lut is None, odd
    assert decimal_ids(pl.Series(["item_0", "item_42"]), "item_").tolist() == [0, 42]


def test_decimal_id_codes_kept_from_the_vocabulary_match_a_fresh_lookup():
    """encode keeps the parsed codes of the test, RECS and TRAIN columns; they are the ones
    a fresh lookup gives, and the RECS lists built from them are the same."""
    from recli.stages.eval_inputs import encode, rec_matrix

    test = pl.DataFrame({"user": ["u3", "u1", "u3"], "item": ["i10", "i2", "i7"]})
    recs = pl.DataFrame({"user": ["u1", "u1", "u3", "u9"], "item": ["i2", "i10", "i99", "i2"], "_ord": [1, 2, 1, 1]})
    train = pl.DataFrame({"user": ["u1", "u5"], "item": ["i7", "i8"]})
    enc = encode(test, [recs], train, None)
    assert enc.items.source_codes is not None and enc.rec_items[0][0] is recs
    assert enc.rec_items[0][1].tolist() == enc.items.codes(recs["item"]).tolist()
    for k, col in enumerate([test["item"], recs["item"], train["item"]]):
        assert enc.items.source(k, col).tolist() == enc.items.codes(col).tolist()
    got = rec_matrix(recs, enc, None, "RECS")
    fresh = rec_matrix(recs.clone(), enc, None, "RECS")  # another frame: looked up again
    assert all(np.array_equal(a, b) for a, b in zip(got, fresh))
    assert enc.items.ids.to_list() == ["i10", "i2", "i7", "i8", "i99"]


@pytest.mark.parametrize("ids", [["u1", "u3", "u10"], ["a", "b", "c"]])  # the lookup table, the join
def test_codes_of_runs_match_the_codes_of_each_row(ids):
    """Ids in runs (each user's rows together) are looked up once per run, with the same
    codes as row by row: absent ids and nulls give -1, runs may repeat later."""
    from recli.stages.eval_inputs import Vocab

    vocab = Vocab.of([pl.Series(ids)])
    pattern = [ids[0]] * 5 + [ids[2]] * 4 + ["zz"] * 3 + [None] * 2 + [ids[0]] * 6 + [ids[1]]
    values = pl.Series(pattern, dtype=pl.Utf8)
    want = [-1 if v is None or v == "zz" else sorted(ids).index(v) for v in pattern]
    assert vocab.codes(values).tolist() == want
    assert vocab._codes(values).tolist() == want
