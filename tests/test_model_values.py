"""Values a model cannot use (issue 10 §6): each model declares the values it accepts, the
train stage refuses or transforms with a log line, and no library warning reaches the user."""

from __future__ import annotations

import warnings

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp

from recli.models import registry
from recli.models._weighting import apply_weighting, fit_weighting
from recli.models.base import VALUE_KINDS
from tests import contracts as C
from tests.conftest import REPO_ROOT

MODELS = registry()


def _signed(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """The block data with every third cell a dislike (-2) and every seventh a 0."""
    m = matrix.copy()
    m.data[::3] = -2.0
    m.data[1::7] = 0.0
    return m


def _positives(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """The same shape, keeping only the cells with a value > 0."""
    m = matrix.copy()
    m.data[m.data < 0] = 0.0
    m.eliminate_zeros()
    return m


@pytest.fixture
def signed_csv(tmp_path):
    """Block data as user,item,rating with negative and zero ratings."""
    coo = _signed(C.block_matrix()[0]).tocoo()
    path = tmp_path / "signed.csv"
    pl.DataFrame({"user": [f"u{u:03d}" for u in coo.row], "item": [f"i{i:03d}" for i in coo.col],
                  "rating": coo.data}).write_csv(path)
    return path


@pytest.fixture
def plain_csv(tmp_path):
    """Block data as user,item rows: no rating column."""
    coo = C.block_matrix()[0].tocoo()
    path = tmp_path / "plain.csv"
    pl.DataFrame({"user": [f"u{u:03d}" for u in coo.row], "item": [f"i{i:03d}" for i in coo.col]}).write_csv(path)
    return path


def _clean_error(res, *needles):
    assert res.exit_code == 2, (res.exit_code, res.stderr)
    assert res.stderr.startswith("error: ") and "hint: " in res.stderr and "Traceback" not in res.stderr
    for needle in needles:
        assert needle in res.stderr, res.stderr


# -- the registry declares what each model accepts --------------------------------------

def test_every_model_declares_a_known_value_kind():
    for name, cls in MODELS.items():
        assert cls.accepts in VALUE_KINDS, name
        assert cls.accepted_values(C.config_for(cls)) in VALUE_KINDS, name
    kinds = {name: cls.accepts for name, cls in MODELS.items()}
    assert kinds["bpr"] == kinds["warp"] == "binary" and kinds["mf"] == "ratings"
    assert kinds["als"] == kinds["itemknn"] == kinds["userknn"] == kinds["ease"] == kinds["popular"] == "real"


@pytest.mark.parametrize("name", ["itemknn", "userknn"])
def test_knn_weightings_of_counts_need_nonnegative_values(name):
    cls = MODELS[name]
    assert cls.accepted_values(C.config_for(cls, weighting="none")) == "real"
    assert cls.accepted_values(C.config_for(cls, weighting="tfidf")) == "nonnegative"
    assert cls.accepted_values(C.config_for(cls, weighting="bm25")) == "nonnegative"


def test_mf_with_sampled_negatives_accepts_implicit_data():
    cls = MODELS["mf"]
    assert cls.accepted_values(C.config_for(cls, negatives=0)) == "ratings"
    assert cls.accepted_values(C.config_for(cls, negatives=3)) == "real"


def test_model_table_shows_the_values_column():
    from recli import docs

    table = docs.models_table()
    assert table.splitlines()[0].endswith("| values |")
    assert "| binary |" in table and "real (nonnegative with weighting=tfidf or bm25)" in table
    page = (REPO_ROOT / "docs" / "models.md").read_text(encoding="utf-8")
    rules = page[page.index("## Values"):]
    for kind in VALUE_KINDS:
        assert f"`{kind}`" in rules


# -- bpr / warp: values > 0 are positives; cells <= 0 left out, counted -------------------

@pytest.mark.parametrize("name", ["bpr", "warp"])
def test_pairwise_models_leave_non_positive_cells_out(name):
    cls = MODELS[name]
    m = _signed(C.block_matrix()[0])
    signed, positive = C.fit(cls, m), C.fit(cls, _positives(m))
    np.testing.assert_array_equal(signed.item_factors, positive.item_factors)
    np.testing.assert_array_equal(signed.user_factors, positive.user_factors)
    # fold-in reads a history the same way
    hist = sp.csr_matrix(np.array([[3.0, -2.0, 0.0, 1.0] + [0.0] * (m.shape[1] - 4)], np.float32))
    np.testing.assert_array_equal(signed.score(np.array([-1]), hist),
                                  signed.score(np.array([-1]), _positives(hist)))


def test_bpr_through_the_cli_warns_with_a_count(cli, signed_csv, tmp_path):
    res = cli(["train", signed_csv, "--model", "bpr", "--iterations", "2", "-o", tmp_path / "m"])
    assert res.exit_code == 0, res.stderr
    values = _signed(C.block_matrix()[0]).data
    n_out = int((values <= 0).sum())
    assert f"warning: bpr reads values > 0 as positive interactions: {n_out} of the {values.size}" in res.stderr


def test_bpr_refuses_data_without_a_positive_value(cli, tmp_path):
    res = cli(["train", "-", "--model", "bpr", "-o", tmp_path / "m"], input="user,item,rating\na,x,-1\nb,y,0\n")
    _clean_error(res, "no training value is > 0")
    assert not (tmp_path / "m").exists()


# -- als keeps negatives as documented dislikes --------------------------------------------

def test_als_says_negatives_are_dislikes(cli, signed_csv, tmp_path):
    res = cli(["train", signed_csv, "--model", "als", "--iterations", "2", "-o", tmp_path / "m"])
    assert res.exit_code == 0, res.stderr
    n_neg = int((_signed(C.block_matrix()[0]).data < 0).sum())
    assert f"als: the {n_neg} negative values" in res.stderr and "dislikes" in res.stderr
    assert "warning" not in res.stderr.lower()


# -- itemknn / userknn with tfidf or bm25 refuse negatives ---------------------------------

@pytest.mark.parametrize("name", ["itemknn", "userknn"])
@pytest.mark.parametrize("weighting", ["tfidf", "bm25"])
def test_knn_count_weightings_refuse_negative_values(cli, signed_csv, tmp_path, name, weighting):
    res = cli(["train", signed_csv, "--model", name, "-p", f"weighting={weighting}", "-o", tmp_path / "m"])
    _clean_error(res, "needs values >= 0", "negative", "--implicit --min-rating")
    assert not (tmp_path / "m").exists()


def test_userknn_tfidf_refuses_a_negative_history():
    from recli.errors import InputError

    m = C.block_matrix()[0]
    model = C.fit(MODELS["userknn"], m, weighting="tfidf")
    hist = sp.csr_matrix(np.array([[1.0, -2.0] + [0.0] * (m.shape[1] - 2)], np.float32))
    with pytest.raises(InputError, match="history has 1 negative value, but userknn"):
        model.score(np.array([-1]), hist)


def test_bm25_weighs_zero_over_zero_as_zero():
    rows = sp.csr_matrix((np.array([0.0, 2.0, 0.0], np.float32), np.array([0, 1, 1]), np.array([0, 2, 3])),
                         shape=(2, 2))
    state = fit_weighting(rows, "bm25")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = apply_weighting(rows, "bm25", state, k1=0.0, b=1.0)
    # k1 = 0: bm25 = x / x · idf for x > 0, and a stored 0 weighs 0
    np.testing.assert_allclose(out.data, [0.0, state["idf"][1], 0.0])


# -- mf needs ratings ------------------------------------------------------------------------

def test_mf_refuses_data_without_a_rating_column(cli, plain_csv, tmp_path):
    res = cli(["train", plain_csv, "--model", "mf", "-o", tmp_path / "m"])
    _clean_error(res, "mf learns explicit ratings", "no rating column", "negatives=")
    assert not (tmp_path / "m").exists()
    res = cli(["train", "-", "--model", "mf", "-o", tmp_path / "m"], input="user,item,rating\na,x,4\nb,y,4\n")
    _clean_error(res, "every rating is 4")
    res = cli(["train", plain_csv, "--model", "mf", "-p", "negatives=2", "--iterations", "2", "-o", tmp_path / "m"])
    assert res.exit_code == 0, res.stderr


# -- no library warning reaches the user raw -----------------------------------------------

_CASES = [(name, []) for name in MODELS] + [
    (name, ["-p", f"weighting={w}", "-p", "bm25_k1=0", "-p", "bm25_b=1"]) for name in ("itemknn", "userknn")
    for w in ("tfidf", "bm25")]


@pytest.mark.parametrize("name, params", _CASES, ids=[f"{n}-{p[1] if p else 'default'}" for n, p in _CASES])
@pytest.mark.parametrize("signed", [True, False], ids=["negative", "zero"])
def test_fit_and_fold_in_raise_no_library_warning(cli, tmp_path, name, params, signed):
    m = C.block_matrix()[0].copy()
    if signed:
        m = _signed(m)
    else:
        m.data[1::7] = 0.0
        m.data[2::5] = 3.0
    coo = m.tocoo()
    train = tmp_path / "train.csv"
    pl.DataFrame({"user": [f"u{u:03d}" for u in coo.row], "item": [f"i{i:03d}" for i in coo.col],
                  "rating": coo.data}).write_csv(train)
    refused = signed and any(p.startswith("weighting=") for p in params)
    out = tmp_path / "m"
    for side in MODELS[name].required_features:  # a feature model gets the contract's block features
        path = tmp_path / f"{side}_features.csv"
        C.features_frame(side, m.shape[1] if side == "item" else m.shape[0]).write_csv(path)
        params = [*params, f"--{side}-features", str(path)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a library warning becomes an exception: exit 1
        res = cli(["train", train, "--model", name, *params, "--iterations", "2", "-o", out]
                  if "iterations" in MODELS[name].Config.__dataclass_fields__ else
                  ["train", train, "--model", name, *params, "-o", out])
        assert res.exit_code == (2 if refused else 0), res.stderr
        assert "Warning" not in res.stderr
        if refused:
            return
        history = "user,item,rating\nnew,i000,-2\nnew,i001,0\nnew,i002,3\n" if signed else \
            "user,item,rating\nnew,i000,0\nnew,i001,2\n"
        res = cli(["recommend", out, "--user", "new", "--history", "-", "-k", "3"], input=history)
        expected = 2 if signed and name == "userknn" and params else 0
        assert res.exit_code == expected, res.stderr
        assert "Warning" not in res.stderr


def test_a_warning_that_escapes_becomes_one_log_line(capsys):
    from recli import console

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        console.configure()
        warnings.warn("something odd", RuntimeWarning, stacklevel=1)
    err = capsys.readouterr().err
    assert err == "warning: something odd (RuntimeWarning from tests)\n"
