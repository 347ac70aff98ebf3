"""ALS kernels against the dense NumPy reference, and the ``als`` model's behaviour."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import recli.kernels  # noqa: F401  (sets NUMBA_CACHE_DIR before numba loads)
from recli.backend import get_backend
from recli.data.matrix import csr_arrays
from recli.errors import ConfigError, InputError
from recli.kernels import als as als_kernels
from recli.kernels.als import als_loss, als_sweep, row_regularization
from recli.kernels.als_xp import xp_als_loss, xp_als_sweep
from recli.models.als import ALS, ALSConfig
from recli.models.base import build_config
from tests import reference_als as ref

REG, ALPHA = 0.1, 3.0


def random_csr(n_rows=30, n_cols=20, density=0.25, seed=0, signed=False):
    rng = np.random.default_rng(seed)
    m = sp.random(n_rows, n_cols, density=density, format="csr", random_state=seed, dtype=np.float32)
    m.data = rng.integers(1, 5, m.nnz).astype(np.float32)
    if signed:  # a confident "no" and a stored zero must follow the p = [r > 0] rule
        m.data[::7] *= -1
        m.data[3::11] = 0
    m = m.tolil()
    m[2, :] = 0  # an empty row
    m = m.tocsr()
    m.eliminate_zeros() if not signed else None
    m.sort_indices()
    return m


def factors(n, k, seed):
    return np.random.default_rng(seed).standard_normal((n, k)).astype(np.float32) * 0.3


@pytest.mark.parametrize("signed", [False, True])
def test_cholesky_sweep_equals_reference(signed):
    m = random_csr(signed=signed)
    Y = factors(m.shape[1], 6, 1)
    X = factors(m.shape[0], 6, 2)
    als_sweep(*csr_arrays(m), X, Y, REG, ALPHA, solver="cholesky")
    np.testing.assert_allclose(X, ref.exact_sweep(m, Y, REG, ALPHA), rtol=1e-4, atol=1e-5)
    assert np.all(X[2] == 0)


@pytest.mark.parametrize("buffered", [None, 0, 3])
def test_cg_steps_equal_reference_cg(buffered, monkeypatch):
    """``buffered``: non-zeros per row the CG copies into its buffer (None: the default,
    0: none, every pass reads ``Y``; 3: rows longer than 3 read their tail from ``Y``)."""
    m = random_csr(seed=3, signed=True)
    Y = factors(m.shape[1], 8, 4)
    X0 = factors(m.shape[0], 8, 5)
    X = X0.copy()
    if buffered is not None:
        monkeypatch.setattr(als_kernels, "BUFFER_BYTES", buffered * 4 * 8)
    als_sweep(*csr_arrays(m), X, Y, REG, ALPHA, solver="cg", cg_steps=3)
    np.testing.assert_allclose(X, ref.cg_sweep(m, X0, Y, REG, ALPHA, 3), rtol=2e-3, atol=2e-4)


def long_row_csr(seed):
    """Rows of 0 to 300 non-zeros, signed values, and one row with every column."""
    rng = np.random.default_rng(seed)
    m = sp.random(120, 300, density=0.05, format="lil", random_state=seed, dtype=np.float32)
    m[1, :] = 1.0
    m[7, :40] = 2.0
    m = m.tocsr()
    m.data = rng.integers(-2, 5, m.nnz).astype(np.float32)  # stored zeros and negatives too
    m.sort_indices()
    return m


@pytest.mark.parametrize("k", [8, 13, 64])
@pytest.mark.parametrize("scaled", [False, True])
def test_cg_buffer_does_not_change_a_bit(k, scaled, monkeypatch):
    """The CG copies each row's factor rows into a buffer for its steps, up to BUFFER_BYTES
    (rounded down to a multiple of 4 non-zeros); a longer row gathers the rest on every
    pass, TAIL non-zeros at a time. Both paths do the same float operations in the same
    order, so the factors and the loss are bit-identical whatever the buffer holds:
    nothing (every pass gathers, in segments of 4 or 256), 5 or 50 non-zeros (longer rows
    split between buffer and segments), or every row whole."""
    m = long_row_csr(seed=k)
    Y, X0 = factors(m.shape[1], k, 1), factors(m.shape[0], k, 2)
    reg = row_regularization(REG, m.indptr) if scaled else REG
    results = []
    for buffered, tail in ((0, 256), (0, 4), (5, 8), (50, 256), (m.shape[1], 256)):
        monkeypatch.setattr(als_kernels, "BUFFER_BYTES", buffered * 4 * k)
        monkeypatch.setattr(als_kernels, "TAIL", tail)
        X = X0.copy()
        loss = als_sweep(*csr_arrays(m), X, Y, reg, ALPHA, solver="cg", cg_steps=3)
        results.append((X, loss))
    X_direct, loss_direct = results[0]
    assert np.abs(X_direct - X0).max() > 1e-2  # the sweep moved the factors
    for X, loss in results[1:]:
        assert np.array_equal(X, X_direct) and loss == loss_direct


def test_cg_converges_to_exact_solution():
    m = random_csr(seed=6)
    Y = factors(m.shape[1], 8, 7)
    X = factors(m.shape[0], 8, 8)
    exact = ref.exact_sweep(m, Y, REG, ALPHA)
    errors = []
    for _ in range(4):  # warm-started sweeps keep refining the same rows
        als_sweep(*csr_arrays(m), X, Y, REG, ALPHA, solver="cg", cg_steps=3)
        errors.append(np.abs(X - exact).max())
    assert errors[-1] < errors[0]
    als_sweep(*csr_arrays(m), X, Y, REG, ALPHA, solver="cg", cg_steps=16)
    np.testing.assert_allclose(X, exact, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("solver", ["cg", "cholesky"])
def test_xp_numpy_sweep_equals_numba(solver):
    m = random_csr(seed=9, signed=True)
    Y = factors(m.shape[1], 8, 10)
    X0 = factors(m.shape[0], 8, 11)
    a, b = X0.copy(), X0.copy()
    als_sweep(*csr_arrays(m), a, Y, REG, ALPHA, solver=solver, cg_steps=3)
    # a tiny non-zero budget forces several batches, exercising the batching
    xp_als_sweep(np, *csr_arrays(m), b, Y, REG, ALPHA, solver=solver, cg_steps=3, nnz_budget=17)
    np.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-4)


def test_loss_equals_dense_reference():
    m = random_csr(seed=12, signed=True)
    X, Y = factors(m.shape[0], 5, 13), factors(m.shape[1], 5, 14)
    expected = ref.loss(m, X, Y, REG, ALPHA)
    assert als_loss(*csr_arrays(m), X, Y, REG, ALPHA) == pytest.approx(expected, rel=1e-5)
    assert xp_als_loss(np, *csr_arrays(m), X, Y, REG, ALPHA, nnz_budget=13) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("solver", ["cg", "cholesky"])
def test_scaled_regularization_sweeps_equal_reference(solver):
    """ALS-WR: λ·nᵤ per row, on the Numba and the array-module kernels."""
    m = random_csr(seed=15, signed=True)
    Y, X0 = factors(m.shape[1], 6, 16), factors(m.shape[0], 6, 17)
    lam = row_regularization(REG, m.indptr)
    assert lam[2] == 0 and lam[0] == pytest.approx(REG * (m.indptr[1] - m.indptr[0]))
    if solver == "cg":
        expected = ref.cg_sweep(m, X0, Y, REG, ALPHA, 3, scale=True)
        unscaled = ref.cg_sweep(m, X0, Y, REG, ALPHA, 3)
        tol = {"rtol": 2e-3, "atol": 2e-4}
    else:
        expected = ref.exact_sweep(m, Y, REG, ALPHA, scale=True)
        unscaled = ref.exact_sweep(m, Y, REG, ALPHA)
        tol = {"rtol": 1e-4, "atol": 1e-5}
    assert np.abs(expected - unscaled).max() > 1e-3  # the scaling changes the solution
    a, b = X0.copy(), X0.copy()
    als_sweep(*csr_arrays(m), a, Y, lam, ALPHA, solver=solver, cg_steps=3)
    xp_als_sweep(np, *csr_arrays(m), b, Y, lam, ALPHA, solver=solver, cg_steps=3, nnz_budget=17)
    np.testing.assert_allclose(a, expected, **tol)
    np.testing.assert_allclose(b, expected, **tol)


def test_scaled_regularization_loss_equals_reference():
    m = random_csr(seed=18, signed=True)
    X, Y = factors(m.shape[0], 5, 19), factors(m.shape[1], 5, 20)
    expected = ref.loss(m, X, Y, REG, ALPHA, scale=True)
    assert expected != pytest.approx(ref.loss(m, X, Y, REG, ALPHA), rel=1e-3)
    pair = (row_regularization(REG, m.indptr), row_regularization(REG, m.T.tocsr().indptr))
    assert als_loss(*csr_arrays(m), X, Y, pair, ALPHA) == pytest.approx(expected, rel=1e-5)
    assert xp_als_loss(np, *csr_arrays(m), X, Y, pair, ALPHA, nnz_budget=13) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("scale", [False, True])
@pytest.mark.parametrize("device", ["numba", "xp"])
def test_loss_from_the_item_sweeps_quadratic_term_equals_reference(scale, device, monkeypatch):
    """The model's loss: the item sweep also returns Σᵢ yᵢᵀ(XᵀX + λᵢI)yᵢ (the all-pairs term
    plus the items' penalty), and the loss adds only the users' penalty to it: the same
    value as from both Gram matrices (built a few rows at a time here), and as the dense
    reference, with scalar and per-row λ."""
    from recli.kernels.als import loss_from_observed
    from recli.kernels.als_xp import xp_loss_from_observed

    monkeypatch.setattr(als_kernels, "GRAM_ROWS", 3)
    m = random_csr(seed=21, signed=True)
    mt = m.T.tocsr()
    X, Y0 = factors(m.shape[0], 5, 22), factors(m.shape[1], 5, 23)
    pair = (row_regularization(REG, m.indptr), row_regularization(REG, mt.indptr))
    reg_items, reg = (pair[1], pair) if scale else (REG, REG)
    Y, Y_plain = Y0.copy(), Y0.copy()
    if device == "numba":
        observed, quadratic = als_sweep(*csr_arrays(mt), Y, X, reg_items, ALPHA, quadratic=True)
        plain = als_sweep(*csr_arrays(mt), Y_plain, X, reg_items, ALPHA)
        loss = loss_from_observed(observed, X, Y, m.data, reg, ALPHA, quadratic)
        by_grams = loss_from_observed(observed, X, Y, m.data, reg, ALPHA)
    else:
        observed, quadratic = xp_als_sweep(np, *csr_arrays(mt), Y, X, reg_items, ALPHA, quadratic=True, nnz_budget=13)
        plain = xp_als_sweep(np, *csr_arrays(mt), Y_plain, X, reg_items, ALPHA, nnz_budget=13)
        loss = xp_loss_from_observed(np, observed, X, Y, m.data, reg, ALPHA, quadratic)
        by_grams = xp_loss_from_observed(np, observed, X, Y, m.data, reg, ALPHA)
    assert np.array_equal(Y, Y_plain) and observed == plain  # the flag changes nothing else
    X64, Y64 = X.astype(np.float64), Y.astype(np.float64)
    lam_items = pair[1].astype(np.float64) if scale else np.full(Y.shape[0], REG)
    want = float(((Y64 @ (X64.T @ X64)) * Y64).sum() + (lam_items * (Y64 ** 2).sum(axis=1)).sum())
    assert quadratic == pytest.approx(want, rel=1e-6)
    assert loss == pytest.approx(by_grams, rel=1e-6)
    assert loss == pytest.approx(ref.loss(m, X, Y, REG, ALPHA, scale=scale), rel=1e-5)


def block_matrix(n_users=40, n_items=30, seed=0):
    """Two communities: users 0..19 like items 0..14, the rest items 15..29; each user
    sees a random 60% of its block, so the unseen in-block items are the right answer."""
    rng = np.random.default_rng(seed)
    dense = np.zeros((n_users, n_items), np.float32)
    for u in range(n_users):
        block = np.arange(15) if u < n_users // 2 else np.arange(15, 30)
        dense[u, rng.choice(block, 9, replace=False)] = 1.0
    return sp.csr_matrix(dense)


def fit(params=None, device="cpu", threads=1, matrix=None):
    config = build_config(ALSConfig, {**ALS.test_params, **(params or {})}, "als")
    return ALS(config, get_backend(device, threads)).fit(block_matrix() if matrix is None else matrix)


@pytest.mark.parametrize("solver", ["cg", "cholesky"])
def test_fit_learns_blocks_and_loss_decreases(solver):
    m = block_matrix()
    model = fit({"solver": solver})
    losses = model.epoch_losses
    assert len(losses) == ALS.test_params["iterations"]
    assert losses[-1] < losses[0] and all(b <= a + 1e-6 for a, b in zip(losses, losses[1:]))
    # the loss fused into the item sweep is the loss of the final factors
    c = model.config
    final = ref.loss(m, model.user_factors, model.item_factors, c.regularization, c.alpha)
    assert losses[-1] == pytest.approx(final, rel=1e-4)
    scores = model.score(np.arange(40), None)
    scores[m.nonzero()] = -np.inf
    top = np.argsort(-scores, axis=1)[:, :3]
    assert np.all(top[:20] < 15) and np.all(top[20:] >= 15)


def test_same_seed_same_factors_and_threads_do_not_matter():
    a, b, c = fit(threads=1), fit(threads=1), fit(threads=2)
    assert np.array_equal(a.user_factors, b.user_factors) and np.array_equal(a.item_factors, b.item_factors)
    # rows are solved independently, so the thread count cannot change the result
    assert np.array_equal(a.item_factors, c.item_factors)
    assert not np.array_equal(a.item_factors, fit({"seed": 7}).item_factors)


@pytest.mark.parametrize("solver", ["cg", "cholesky"])
def test_xp_numpy_model_matches_cpu_model(solver):
    a, b = fit({"solver": solver}), fit({"solver": solver}, device="xp-numpy")
    np.testing.assert_allclose(a.item_factors, b.item_factors, rtol=1e-2, atol=1e-3)
    np.testing.assert_allclose(a.epoch_losses, b.epoch_losses, rtol=1e-4)


def test_fold_in_matches_per_user_solve_and_explain_sums_to_score():
    model = fit()
    hist = sp.csr_matrix(([1.0, 2.0, 1.0], ([0, 0, 0], [1, 4, 22])), shape=(1, 30), dtype=np.float32)
    cfg = model.config
    expected = ref.solve_row(model.item_factors, hist.indices, hist.data, cfg.regularization, cfg.alpha)
    np.testing.assert_allclose(model.fold_in(hist)[0], expected, rtol=1e-4, atol=1e-5)
    scores = model.score(np.array([-1, 3]), sp.vstack([hist, sp.csr_matrix((1, 30), dtype=np.float32)]).tocsr())
    np.testing.assert_allclose(scores[0], model.item_factors @ expected, rtol=1e-4, atol=1e-5)
    # BLAS blocks batches differently, so batch and single scores agree to float32 rounding
    np.testing.assert_allclose(scores[1], model.score(np.array([3]), None)[0], rtol=1e-5, atol=1e-6)
    items = np.array([0, 5, 29])
    contrib = model.explain(-1, hist.indices, hist.data, items)
    assert contrib.shape == (3, 3)
    np.testing.assert_allclose(contrib.sum(axis=1), scores[0, items], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("device", ["cpu", "xp-numpy"])
def test_scale_regularization_model_follows_the_reference(device):
    """The model's first user sweep is ALS-WR's exact solve (λ·nᵤ); fold-in and explain use
    the history's own λ·n; the reported loss is the scaled one."""
    params = {"solver": "cholesky", "iterations": 1, "scale_regularization": True}
    model = fit(params, device=device)
    m, c = block_matrix(), model.config
    _, Y0 = model.init_factors(*m.shape)
    X1 = ref.exact_sweep(m, Y0, c.regularization, c.alpha, scale=True)
    Y1 = ref.exact_sweep(m.T.tocsr(), X1, c.regularization, c.alpha, scale=True)
    np.testing.assert_allclose(model.item_factors, Y1, rtol=2e-3, atol=2e-4)
    expected_loss = ref.loss(m, model.user_factors, model.item_factors, c.regularization, c.alpha, scale=True)
    assert model.epoch_losses[-1] == pytest.approx(expected_loss, rel=1e-4)
    hist = sp.csr_matrix(([1.0, 2.0, 1.0], ([0, 0, 0], [1, 4, 22])), shape=(1, 30), dtype=np.float32)
    expected = ref.solve_row(model.item_factors, hist.indices, hist.data, 3 * c.regularization, c.alpha)
    np.testing.assert_allclose(model.fold_in(hist)[0], expected, rtol=1e-4, atol=1e-5)
    contrib = model.explain(-1, hist.indices, hist.data, np.arange(30))
    np.testing.assert_allclose(contrib.sum(axis=1), model.item_factors @ expected, rtol=1e-4, atol=1e-5)


def test_similar_items_is_cosine_and_round_trip():
    model = fit()
    sims = model.similar_items(np.array([0, 20]))
    Y = model.item_factors.astype(np.float64)
    unit = Y / np.linalg.norm(Y, axis=1, keepdims=True)
    np.testing.assert_allclose(sims, unit[[0, 20]] @ unit.T, rtol=1e-5, atol=1e-6)
    assert np.argmax(sims[0]) == 0
    back = ALS.from_arrays(model.config, model.to_arrays())
    assert np.array_equal(back.score(np.arange(40), None), model.score(np.arange(40), None))


def test_errors():
    with pytest.raises(InputError):
        fit(matrix=sp.csr_matrix((5, 4), dtype=np.float32))
    with pytest.raises(ConfigError, match="factors"):
        build_config(ALSConfig, {"factors": 0}, "als")
    with pytest.raises(ConfigError, match="alpha"):
        build_config(ALSConfig, {"alpha": 0}, "als")
    with pytest.raises(ConfigError, match="solver"):
        build_config(ALSConfig, {"solver": "lu"}, "als")
    with pytest.raises(InputError, match="history"):
        fit().score(np.array([-1]), None)


@pytest.mark.slow
def test_ml100k_ndcg_floor(ml100k):
    """Leave-random 20% per user (seed 42): NDCG@10 well above popularity (~0.2)."""
    raw = np.loadtxt(ml100k, dtype=np.int64)
    users = np.unique(raw[:, 0], return_inverse=True)[1]
    items = np.unique(raw[:, 1], return_inverse=True)[1]
    rng = np.random.default_rng(42)
    test = np.zeros(users.shape[0], bool)
    for u in range(users.max() + 1):
        rows = np.flatnonzero(users == u)
        test[rng.permutation(rows)[:int(round(0.2 * rows.size))]] = True
    shape = (users.max() + 1, items.max() + 1)
    train = sp.csr_matrix((np.ones((~test).sum(), np.float32), (users[~test], items[~test])), shape=shape)
    truth = sp.csr_matrix((np.ones(test.sum()), (users[test], items[test])), shape=shape)
    model = ALS(ALSConfig(iterations=10), get_backend("cpu", 2)).fit(train)
    scores = model.score(np.arange(shape[0]), None)
    scores[train.nonzero()] = -np.inf
    top = np.argsort(-scores, axis=1)[:, :10]
    hits = np.asarray(truth[np.arange(shape[0])[:, None], top].todense())
    dcg = (hits / np.log2(np.arange(2, 12))).sum(axis=1)
    n_rel = np.minimum(np.diff(truth.indptr), 10)
    idcg = np.array([(1 / np.log2(np.arange(2, n + 2))).sum() for n in n_rel])
    assert np.mean(dcg[n_rel > 0] / idcg[n_rel > 0]) > 0.33


@pytest.mark.parametrize("device", ["cpu", "xp-numpy"])
def test_epoch_callback_sees_current_factors_and_can_stop(device):
    seen = []

    def on_epoch(info):
        seen.append((info.epoch, info.loss, model.score(np.array([0]), None)[0].copy()))
        return info.epoch == 3

    model = ALS(build_config(ALSConfig, ALS.test_params, "als"), get_backend(device, 1))
    model.fit(block_matrix(), on_epoch=on_epoch)
    assert [e for e, _, _ in seen] == [1, 2, 3] and len(model.epoch_losses) == 3
    assert seen[0][1] == model.epoch_losses[0] and seen[-1][1] <= seen[0][1]
    assert not np.allclose(seen[0][2], seen[-1][2])
    np.testing.assert_array_equal(seen[-1][2], model.score(np.array([0]), None)[0])


@pytest.mark.parametrize("per_row", [False, True])
def test_gram64_by_blocks_equals_the_float64_products(per_row, monkeypatch):
    """The loss's Gram matrix and penalty, converted a block of rows at a time (blocks of 3
    rows here, with a ragged last one), equal the products of whole float64 copies."""
    from recli.kernels import als

    monkeypatch.setattr(als, "GRAM_ROWS", 3)
    rng = np.random.default_rng(5)
    A = rng.standard_normal((11, 6)).astype(np.float32)
    lam = rng.random(11).astype(np.float32) if per_row else None
    G, weighted = als.gram64(A, lam)
    A64 = A.astype(np.float64)
    want = (lam.astype(np.float64) * (A64 ** 2).sum(axis=1)).sum() if per_row else (A64 ** 2).sum()
    assert np.allclose(G, A64.T @ A64, rtol=1e-12, atol=1e-12) and weighted == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("k", [8, 13])
def test_cg_sweep_gives_the_same_bits_run_after_run(k, monkeypatch):
    """The same sweep, repeated (scratch arrays land at other addresses each time), with one
    and two threads, and with rows four at a time or one at a time: the same bits. A sum
    in a loop that also stores could take LLVM's vector or scalar version by the arrays'
    addresses, and the two sum in different orders."""
    import numba

    m = long_row_csr(seed=k)
    Y, X0 = factors(m.shape[1], k, 1), factors(m.shape[0], k, 2)
    before = numba.get_num_threads()
    results = []
    try:
        for threads in (1, 2):
            numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
            for quad in (als_kernels.QUAD_NNZ, 0):
                monkeypatch.setattr(als_kernels, "QUAD_NNZ", quad)
                for _ in range(3):
                    X = X0.copy()
                    loss = als_sweep(*csr_arrays(m), X, Y, REG, ALPHA, solver="cg", cg_steps=3)
                    results.append((X, loss))
    finally:
        numba.set_num_threads(before)
    X_first, loss_first = results[0]
    for X, loss in results[1:]:
        assert np.array_equal(X, X_first) and loss == loss_first
