"""Mini-batch SGD of ``bpr``, ``warp`` and ``mf`` on the GPU path (issue 15).

* The NumPy mini-batch (:mod:`recli.kernels.sgd_xp`) equals the per-sample reference
  steps of tests/reference_{bpr,warp,mf}.py taken from the batch's starting parameters
  and summed; with one sample it is the CPU kernel's step.
* The CUDA kernels (:mod:`recli.kernels.cuda.sgd`), on Numba's simulator (marker
  ``cudasim``, tiny shapes), draw the same negatives and give the same batch as NumPy.
* ``recli train/recommend --device gpu`` runs them end to end through the CLI on the
  stand-in CuPy; on MovieLens 100K the NumPy path ranks as well as the CPU (slow).
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import scipy.sparse as sp

from recli.kernels import sgd_xp
from recli.kernels.counter_random import DRAWS, POSITIVES, below, counter_bits, epoch_key
from tests import contracts as C
from tests.conftest import FAKE_CUPY, forget_cupy
from tests.reference_bpr import bpr_step_reference
from tests.reference_mf import sgd_step
from tests.reference_warp import warp_step_reference

N_USERS, N_ITEMS, K = 12, 30, 4


@pytest.fixture
def toy():
    """A CSR with sorted rows (one user owning every item), its plan, and random factors."""
    m = sp.random(N_USERS, N_ITEMS, density=0.25, format="csr", random_state=3, dtype=np.float32)
    m = (m + sp.csr_matrix((np.full(N_ITEMS, 0.5, np.float32), (np.zeros(N_ITEMS, int), np.arange(N_ITEMS))),
                           shape=m.shape)).tocsr()
    m.sort_indices()
    m.data = np.round(m.data * 4 + 1).astype(np.float32)  # ratings 1..5
    rng = np.random.default_rng(7)
    U, V = (rng.standard_normal((n, K)).astype(np.float32) * 0.5 for n in (N_USERS, N_ITEMS))
    b = rng.standard_normal(N_ITEMS).astype(np.float32) * 0.1
    return m, sgd_xp.make_plan(np, m.indptr, m.indices, m.data, batch=64), U, V, b


def _cells(plan, n=60, lo=5):
    cells = sgd_xp.epoch_order(np, plan.nnz, 1, 2)[:n]
    return plan.rows[cells], plan.indices[cells].astype(np.int64), plan.values[cells], sgd_xp._samples(np, lo, n)


def _summed(step, arrays, samples):
    """The mini-batch reference: each sample's reference step from ``arrays`` (unchanged),
    the changes summed."""
    out = [a.astype(np.float64) for a in arrays]
    for s in samples:
        new = step([a.astype(np.float64) for a in arrays], *s)
        for o, a, n in zip(out, arrays, new):
            o += n - a
    return out


def _draws(key, sample, first, count):
    """Draws of one sample, one at a time (the scalar form of the counter stream)."""
    with np.errstate(over="ignore"):
        return [int(below(counter_bits(key, np.uint64(sample), np.uint64(d)), np.uint64(N_ITEMS)))
                for d in range(first, first + count)]


# -- the NumPy mini-batch against the references --------------------------------------

def test_negatives_are_the_first_unowned_draw_of_each_sample(toy):
    m, plan, *_ = toy
    users, _, _, samples = _cells(plan)
    key = epoch_key(5, 1, DRAWS)
    got = sgd_xp.first_negative(np, plan, users, key, samples, 0, 4, N_ITEMS)
    for u, s, j in zip(users, samples, got):
        owned = set(m.indices[m.indptr[u]:m.indptr[u + 1]].tolist())
        want = next((d for d in _draws(key, s, 0, 4) if d not in owned), -1)
        assert j == want
    assert (got[users == 0] == -1).all() and (got[users != 0] >= 0).all()


def test_bpr_batch_is_the_sum_of_reference_steps_from_the_batch_start(toy):
    _, plan, U, V, b = toy
    users, pos, _, samples = _cells(plan)
    neg = sgd_xp.first_negative(np, plan, users, epoch_key(1, 0, DRAWS), samples, 0, 8, N_ITEMS)
    ok = neg >= 0

    def step(arrays, u, i, j):
        return bpr_step_reference(*arrays, u, i, j, 0.1, 0.02)[:3]

    want = _summed(step, (U, V, b), zip(users[ok], pos[ok], neg[ok]))
    got = [U.copy(), V.copy(), b.copy()]
    loss, correct, n = sgd_xp.bpr_numpy_batch(*got, users, pos, neg, 0.1, 0.02)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
    assert n == ok.sum() and 0 < correct < n
    assert loss == pytest.approx(sum(bpr_step_reference(U, V, b, *t, 0.1, 0.02)[3]
                                     for t in zip(users[ok], pos[ok], neg[ok])), rel=1e-5)


@pytest.mark.parametrize("adagrad", [True, False])
def test_warp_batch_is_the_sum_of_reference_steps_from_the_batch_start(toy, adagrad):
    _, plan, U, V, b = toy
    users, pos, _, samples = _cells(plan)
    G = [np.ones_like(a) + np.float32(0.5) for a in (U, V, b)]
    neg, n_sampled, _, _ = sgd_xp.warp_violators(np, plan, U, V, b, users, pos, samples, epoch_key(1, 0, DRAWS), 3)
    ok = neg >= 0
    assert 0 < ok.sum() < len(ok)

    def step(arrays, u, i, j, n):
        return warp_step_reference(*arrays, u, i, j, n, 0.1, 0.01, adagrad)[:6]

    want = _summed(step, (U, V, b, *G), zip(users[ok], pos[ok], neg[ok], n_sampled[ok]))
    got = [a.copy() for a in (U, V, b, *G)]
    sgd_xp.warp_numpy_batch(*got, users, pos, neg, n_sampled, 0.1, 0.01, adagrad)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


def test_warp_violator_search_follows_the_cpu_rules(toy):
    m, plan, U, V, b = toy
    users, pos, _, samples = _cells(plan)
    key = epoch_key(1, 0, DRAWS)
    neg, n_sampled, _, _ = sgd_xp.warp_violators(np, plan, U, V, b, users, pos, samples, key, 3)
    for u, i, s, j, n in zip(users, pos, samples, neg, n_sampled):
        owned = set(m.indices[m.indptr[u]:m.indptr[u + 1]].tolist())
        x_ui = float(U[u] @ V[i] + b[i])
        counted, want = 0, -1
        for d in _draws(key, s, 0, 30):
            if d in owned:
                continue
            counted += 1
            if float(U[u] @ V[d] + b[d]) > x_ui - 1:
                want = d
                break
            if counted == 3:
                break
        assert (j, n) == (want, counted)


def test_k_os_picks_the_kth_best_of_the_drawn_positives(toy):
    m, plan, U, V, b = toy
    users, _, _, samples = _cells(plan)
    key = epoch_key(1, 0, POSITIVES)
    got = sgd_xp.kos_positives(np, plan, U, V, b, users, samples, key, 2, 5)
    for u, s, i in zip(users, samples, got):
        row = m.indices[m.indptr[u]:m.indptr[u + 1]]
        with np.errstate(over="ignore"):
            drawn = [int(row[below(counter_bits(key, np.uint64(s), np.uint64(q)), np.uint64(len(row)))])
                     for q in range(min(5, len(row)))]
        ranked = sorted(range(len(drawn)), key=lambda q: (-float(U[u] @ V[drawn[q]] + b[drawn[q]]), q))
        assert i == drawn[ranked[min(2, len(drawn)) - 1]]


def test_mf_batch_is_the_sum_of_reference_steps_from_the_batch_start(toy):
    _, plan, U, V, _ = toy
    users, items, ratings, _ = _cells(plan)
    bu, bi = np.full(N_USERS, 0.1, np.float32), np.full(N_ITEMS, -0.2, np.float32)

    def step(arrays, u, i, r):
        P, Q, bu_, bi_ = arrays
        sgd_step(u, i, r, 3.0, P, Q, bu_, bi_, 0.05, 0.02, 0.01)
        return arrays

    want = _summed(step, (U, V, bu, bi), zip(users, items, ratings))
    got = [a.copy() for a in (U, V, bu, bi)]
    e = sgd_xp.mf_numpy_batch(*got, users, items, ratings, 3.0, 0.05, 0.02, 0.01)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(e, ratings - (3.0 + bu[users] + bi[items] + (U[users] * V[items]).sum(1)), rtol=1e-5)


def test_a_batch_of_one_is_the_cpu_kernels_step(toy):
    from recli.kernels.bpr import bpr_apply
    from recli.kernels.mf import sgd_steps

    _, _, U, V, b = toy
    one = [np.array([3]), np.array([5]), np.array([9])]
    cpu, mini = [a.copy() for a in (U, V, b)], [a.copy() for a in (U, V, b)]
    bpr_apply(*cpu, *one, np.float32(0.1), np.float32(0.02))
    sgd_xp.bpr_numpy_batch(*mini, *one, 0.1, 0.02)
    for c, g in zip(cpu, mini):
        np.testing.assert_allclose(g, c, rtol=1e-6, atol=1e-7)
    bu, bi = np.zeros(N_USERS, np.float32), np.zeros(N_ITEMS, np.float32)
    cpu, mini = [a.copy() for a in (U, V, bu, bi)], [a.copy() for a in (U, V, bu, bi)]
    sgd_steps(np.array([3], np.int32), np.array([5], np.int32), np.array([4.0], np.float32), np.array([0]),
              np.float32(3.0), *cpu, np.float32(0.05), np.float32(0.02), np.float32(0.01))
    sgd_xp.mf_numpy_batch(*mini, one[0], one[1], np.array([4.0], np.float32), 3.0, 0.05, 0.02, 0.01)
    for c, g in zip(cpu, mini):
        np.testing.assert_allclose(g, c, rtol=1e-6, atol=1e-7)


def test_fold_in_and_pair_predictions_agree_on_every_namespace(toy):
    from recli.backend import get_backend
    from tests.reference_bpr import bpr_fold_in_reference

    m, _, U, V, b = toy
    cpu, xp = get_backend("cpu").kernels, get_backend("xp-numpy").kernels
    args = (m.indptr, m.indices, V, b, 3, 0.05, 0.01, 7)
    want = bpr_fold_in_reference(*args, 32)
    for ns in (cpu, xp):
        np.testing.assert_allclose(ns.bpr_fold_in(*args, 32), want, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(xp.warp_fold_in(*args[:7], True, 5, 7), cpu.warp_fold_in(*args[:7], True, 5, 7))
    users, items = np.array([0, 3, 3, 11]), np.array([5, 0, 29, 7])
    bu = np.linspace(-1, 1, N_USERS).astype(np.float32)
    want = np.array([3.0 + bu[u] + b[i] + U[u].astype(np.float64) @ V[i] for u, i in zip(users, items)])
    for ns in (cpu, xp):
        got = ns.mf_predict(users, items, 3.0, U, V, bu, b)
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=1e-5)


def test_an_epoch_visits_every_interaction_once_in_a_seeded_order():
    a, b2, c = (sgd_xp.epoch_order(np, 500, seed, epoch) for seed, epoch in ((1, 0), (1, 0), (1, 1)))
    np.testing.assert_array_equal(np.sort(a), np.arange(500))
    np.testing.assert_array_equal(a, b2)
    assert (a != c).mean() > 0.9


def test_the_batch_size_bounds_the_samples_of_the_busiest_row():
    def batch(row_len, n_items, nnz=10**6):
        return sgd_xp.auto_batch(np.arange(0, nnz + 1, row_len), (np.arange(nnz) % n_items).astype(np.int32))

    assert batch(10**4, 10**5) == sgd_xp.STALE_SAMPLES * 10**6 // 10**4  # the busiest row is a user
    assert batch(10, 10**3) == sgd_xp.STALE_SAMPLES * 10**6 // 10**3  # ... an item
    assert batch(10**5, 10**5) == sgd_xp.SGD_BATCH_MIN
    assert batch(10, 10**5) == sgd_xp.SGD_BATCH_MAX


def test_the_device_memory_estimate_covers_what_a_fit_holds(toy):
    m, _, U, V, b = toy
    plan = sgd_xp.make_plan(np, m.indptr, m.indices, m.data)
    held = sum(a.nbytes for a in (plan.indptr, plan.indices, plan.values, plan.rows, plan.keys))
    held += 2 * plan.nnz * 8  # an epoch's order and its sort keys
    held += 2 * 2 * sum(a.nbytes for a in (U, V, b))  # parameters, deltas, accumulators and theirs
    est = sgd_xp.device_bytes(N_USERS, N_ITEMS, plan.nnz, K, plan.batch, accumulators=True)
    assert held <= est <= held + 64 * plan.batch * (1 + K)


# -- the CUDA kernels on the simulator --------------------------------------------------

@pytest.fixture
def cuda_sgd():
    from numba import config, cuda

    if not config.ENABLE_CUDASIM and not cuda.is_available():
        pytest.skip("NUMBA_ENABLE_CUDASIM=0 and no CUDA GPU is usable here")
    from recli.kernels.cuda import sgd

    return sgd


def _apply(params, deltas, rows):
    for p, d, r in zip(params, deltas, rows):
        sgd_xp._apply(p, d, r)


@pytest.mark.cudasim
def test_cuda_bpr_batch_draws_and_steps_as_the_numpy_batch(toy, cuda_sgd):
    _, plan, U, V, b = toy
    users, pos, _, samples = _cells(plan, lo=11)
    key = epoch_key(4, 3, DRAWS)
    want_neg = sgd_xp.first_negative(np, plan, users, key, samples, 0, 6, N_ITEMS)
    want = [U.copy(), V.copy(), b.copy()]
    want_loss, want_correct, _ = sgd_xp.bpr_numpy_batch(*want, users, pos, want_neg, 0.1, 0.02)
    got, deltas = [U.copy(), V.copy(), b.copy()], [np.zeros_like(a) for a in (U, V, b)]
    neg, loss, correct = np.empty(len(users), np.int64), np.zeros(len(users)), np.zeros(len(users), np.int32)
    cuda_sgd.bpr_batch(plan.indptr, plan.indices, users, pos, 11, *got, *deltas, 0.1, 0.02, key, 6, neg, loss, correct)
    np.testing.assert_array_equal(neg, want_neg)
    _apply(got, deltas, (users, np.r_[pos, neg], np.r_[pos, neg]))
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
    assert not any(d.any() for d in deltas)  # cleared for the next batch
    assert loss.sum() == pytest.approx(want_loss, rel=1e-5) and correct.sum() == want_correct


@pytest.mark.cudasim
@pytest.mark.parametrize("adagrad", [True, False])
def test_cuda_warp_batch_draws_and_steps_as_the_numpy_batch(toy, cuda_sgd, adagrad):
    _, plan, U, V, b = toy
    users, pos, _, samples = _cells(plan)
    key = epoch_key(4, 3, DRAWS)
    G = [np.ones_like(a) for a in (U, V, b)] if adagrad else [np.ones((1, 1), np.float32)] * 2 + [np.ones(1, np.float32)]
    want_neg, want_n, _, _ = sgd_xp.warp_violators(np, plan, U, V, b, users, pos, samples, key, 3)
    want = [a.copy() for a in (U, V, b, *G)]
    sgd_xp.warp_numpy_batch(*want, users, pos, want_neg, want_n, 0.1, 0.01, adagrad)
    got = [a.copy() for a in (U, V, b, *G)]
    deltas = [np.zeros_like(a) for a in got]
    neg, n_sampled, loss = np.empty(len(users), np.int64), np.empty(len(users), np.int64), np.zeros(len(users))
    cuda_sgd.warp_batch(plan.indptr, plan.indices, users, pos, 5, *got, *deltas, 0.1, 0.01, adagrad, 3, key, neg,
                        n_sampled, loss)
    np.testing.assert_array_equal(neg, want_neg)
    np.testing.assert_array_equal(n_sampled, want_n)
    items = np.r_[pos, neg]
    _apply(got[:6 if adagrad else 3], deltas, (users, items, items) * 2)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


@pytest.mark.cudasim
def test_cuda_k_os_warp_batch_picks_and_steps_as_the_numpy_batch(toy, cuda_sgd):
    _, plan, U, V, b = toy
    users, pos, _, samples = _cells(plan, n=30)
    key, kos_key = epoch_key(4, 3, DRAWS), epoch_key(4, 3, POSITIVES)
    G = [np.ones_like(a) for a in (U, V, b)]
    want_pos = sgd_xp.kos_positives(np, plan, U, V, b, users, samples, kos_key, 2, 4)
    assert (want_pos != pos).any()
    want_neg, want_n, _, _ = sgd_xp.warp_violators(np, plan, U, V, b, users, want_pos, samples, key, 3)
    want = [a.copy() for a in (U, V, b, *G)]
    sgd_xp.warp_numpy_batch(*want, users, want_pos, want_neg, want_n, 0.1, 0.0, True)
    got = [a.copy() for a in (U, V, b, *G)]
    deltas = [np.zeros_like(a) for a in got]
    neg, n_sampled, loss = np.empty(len(users), np.int64), np.empty(len(users), np.int64), np.zeros(len(users))
    cuda_sgd.warp_batch(plan.indptr, plan.indices, users, pos, 5, *got, *deltas, 0.1, 0.0, True, 3, key, neg,
                        n_sampled, loss, 2, 4, kos_key)
    np.testing.assert_array_equal(pos, want_pos)  # the pick is written back
    np.testing.assert_array_equal(neg, want_neg)
    items = np.r_[pos, neg]
    _apply(got, deltas, (users, items, items) * 2)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


@pytest.mark.cudasim
def test_cuda_mf_batch_draws_and_steps_as_the_numpy_batch(toy, cuda_sgd):
    _, plan, P, Q, _ = toy
    users, items, ratings, samples = _cells(plan, n=40, lo=3)
    bu, bi = np.full(N_USERS, 0.1, np.float32), np.full(N_ITEMS, -0.2, np.float32)
    key = epoch_key(2, 1, DRAWS)
    want_neg = sgd_xp.mf_negatives(np, plan, users, samples, key, 2, N_ITEMS)
    ok = want_neg >= 0
    want = [a.copy() for a in (P, Q, bu, bi)]
    e = sgd_xp.mf_numpy_batch(*want, np.r_[users, np.repeat(users, 2)[ok.ravel()]], np.r_[items, want_neg[ok]],
                              np.r_[ratings, np.zeros(ok.sum(), np.float32)], 3.0, 0.05, 0.02, 0.01)
    got = [a.copy() for a in (P, Q, bu, bi)]
    deltas = [np.zeros_like(a) for a in got]
    neg, loss = np.empty((len(users), 2), np.int64), np.zeros(len(users))
    cuda_sgd.mf_batch(plan.indptr, plan.indices, users, items, ratings, 3, 3.0, *got, *deltas, 0.05, 0.02, 0.01, 2,
                      key, neg, loss)
    np.testing.assert_array_equal(neg, want_neg)
    touched = np.r_[items, neg.ravel()]
    _apply(got, deltas, (users, touched) * 2)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(loss, e[:len(users)].astype(np.float64) ** 2, rtol=1e-5)


# -- end to end -------------------------------------------------------------------------

@pytest.fixture
def gpu_cli(cli, monkeypatch, tmp_path, cuda_sgd):
    """The CLI with the stand-in CuPy (kernels on the simulator) and a block-matrix CSV."""
    forget_cupy()
    monkeypatch.syspath_prepend(str(FAKE_CUPY))
    matrix, _, _ = C.block_matrix()
    coo = matrix.tocoo()
    path = tmp_path / "train.csv"
    path.write_text("user,item\n" + "".join(f"u{u:03d},i{i:03d}\n" for u, i in zip(coo.row, coo.col)))
    yield cli, path
    forget_cupy()
    assert "cupy" not in sys.modules


@pytest.mark.cudasim
@pytest.mark.parametrize("name, params", [("bpr", []), ("warp", []), ("warp", ["-p", "kos_k=2", "-p", "kos_n=3"]),
                                          ("mf", ["-p", "negatives=1"])])
def test_train_and_recommend_on_the_gpu_through_the_cli(gpu_cli, tmp_path, name, params):
    cli, train_csv = gpu_cli
    out = tmp_path / name
    res = cli(["train", train_csv, "--model", name, "-o", out, "--device", "gpu", "-p", "iterations=3",
               "-p", "factors=4", *params])
    assert res.exit_code == 0, res.stderr
    assert json.loads((out / "meta.json").read_text())["device"] == "gpu"
    recs = cli(["recommend", out, "--user", "u001", "-k", "2", "--device", "gpu"])
    assert recs.exit_code == 0, recs.stderr
    assert len(recs.stdout.strip().splitlines()) == 3
    on_cpu = cli(["recommend", out, "--user", "u001", "-k", "2", "--device", "cpu"])
    assert on_cpu.stdout == recs.stdout  # a GPU-trained model serves alike on the CPU


@pytest.mark.parametrize("name, params", [("bpr", {}), ("warp", {}), ("warp", {"kos_k": 2}), ("mf", {})])
def test_known_answer_on_blocks_on_the_array_module_path(name, params):
    """The contract's known answer (tests/test_contracts.py) with the mini-batch epochs."""
    from recli.backend import get_backend
    from recli.models import registry

    matrix, blocks, held = C.block_matrix()
    cls = registry()[name]
    model = cls(C.config_for(cls, **params), get_backend("xp-numpy"))
    model.fit(matrix)
    items, _ = C.recommend_all(C.model_file(model, matrix), k=3)
    assert (items[:, 0] == held).mean() >= 0.8
    assert (C.item_block(items[:, 0]) == blocks).mean() >= 0.8


@pytest.mark.cudasim
def test_bench_parity_compares_the_gpu_with_the_mini_batch_path(gpu_cli):
    cli, _ = gpu_cli
    res = cli(["bench", "--synthetic", "40x30x300", "--models", "bpr,warp,mf", "--factors", "4", "--threads", "1",
               "--param", "iterations=2", "--check", "parity", "--format", "json"])
    assert res.exit_code == 0, res.stderr
    rows = json.loads(res.stdout)["rows"]
    assert [(r["model"], r["backend"], r["status"]) for r in rows] == [(m, "gpu", "ok") for m in ("bpr", "warp", "mf")]
    assert all(r["factors_max_rel_diff"] < 1e-5 and r["top10_overlap"] == 1 for r in rows)


@pytest.mark.slow
@pytest.mark.parametrize("name, params", [("bpr", {"factors": 32, "iterations": 40}),
                                          ("warp", {"factors": 32, "iterations": 10}),
                                          ("mf", {"factors": 32, "iterations": 20, "negatives": 3,
                                                  "learning_rate": 0.02})])
def test_ml100k_ndcg_of_the_mini_batch_path_is_within_2_percent_of_the_cpu(ml100k, name, params):
    """Mean NDCG@10 over two seeds: the array-module path on NumPy against the CPU."""
    from recli.backend import get_backend
    from recli.models import registry
    from recli.models.base import build_config
    from tests.test_pairwise_ml100k import ndcg_precision_at_10, split

    train, test = split(ml100k)
    cls = registry()[name]

    def ndcg(device, seed):
        model = cls(build_config(cls.Config, dict(params, seed=seed), name), get_backend(device, 1)).fit(train)
        return ndcg_precision_at_10(model.score(np.arange(train.shape[0]), None), train, test)[0]

    cpu, mini = (np.mean([ndcg(device, seed) for seed in (0, 1)]) for device in ("cpu", "xp-numpy"))
    assert mini >= 0.98 * cpu, (mini, cpu)
