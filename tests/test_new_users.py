"""New users and id lists: headerless id files (one header rule everywhere), ``--history``
alone, with ``--all-users`` and for known users, and new users whose items are all
unknown to the model."""

from __future__ import annotations

import io

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp

from recli.data.ids import read_ids
from recli.data.vocab import Vocab
from recli.errors import InputError
from recli.stages import recommend as stage
from tests.test_recommend_stage import linear_model_file


def _ids(tmp_path, text, column="user", known=None, name="ids.csv"):
    path = tmp_path / name
    path.write_text(text)
    return read_ids(str(path), column, "--users", known=known)


@pytest.mark.parametrize("text, expected", [
    ("42\n", ["42"]),                        # one id, no header: not "a header but no rows"
    ("42\n7\n42\n", ["42", "7"]),            # headerless, deduplicated in order
    ("user\n42\n", ["42"]),                  # the column's name is a header
    ("User_Id\n42\n", ["42"]),               # an alias, any case
    ("id\n42\n", ["id", "42"]),              # another name is an id: the header rule is the column name
    ("name,user\nx,42\ny,7\n", ["42", "7"]),  # a table: the named column
    (" 42 \n\n7\n", ["42", "7"]),            # whitespace stripped, blank lines dropped
])
def test_header_rule_for_id_lists(tmp_path, text, expected):
    assert _ids(tmp_path, text) == expected


def test_items_lists_use_the_same_rule(tmp_path):
    assert _ids(tmp_path, "movieId\n50\n", column="item") == ["50"]
    assert _ids(tmp_path, "50\n", column="item") == ["50"]
    assert _ids(tmp_path, "user\n50\n", column="item") == ["user", "50"]  # 'user' does not name items


def test_a_known_id_is_never_eaten_as_a_header(tmp_path):
    known = {"user", "42"}.__contains__
    assert _ids(tmp_path, "user\n42\n", known=known) == ["user", "42"]
    assert _ids(tmp_path, "user\n42\n", known={"42"}.__contains__) == ["42"]


def test_parquet_id_list_by_name_or_single_column(tmp_path):
    path = tmp_path / "ids.parquet"
    pl.DataFrame({"userId": ["3", "4"], "x": ["a", "b"]}).write_parquet(path)
    assert read_ids(str(path), "user", "--users") == ["3", "4"]
    pl.DataFrame({"anything": ["5"]}).write_parquet(path)
    assert read_ids(str(path), "user", "--users") == ["5"]


@pytest.mark.parametrize("text, needle", [("id,name\nu1,x\n", "no 'user' column"), ("user\n", "holds no ids")])
def test_bad_id_lists(tmp_path, text, needle):
    with pytest.raises(InputError, match=needle):
        _ids(tmp_path, text)


# -- planning: --history alone, with --all-users, for known users, without known items --

@pytest.fixture
def mf():
    """The recommend stage tests' small linear model (6 users x 8 items)."""
    return linear_model_file()


def _history(rows: dict[str, list[int]], n_items: int = 8, order: list[str] | None = None) -> stage.History:
    """``{user: [item indices]}`` (value 1 each; an empty list = only unknown items)."""
    users = Vocab(pl.Series(sorted(rows)))
    m = sp.lil_matrix((len(rows), n_items), dtype=np.float32)
    for r, u in enumerate(sorted(rows)):
        for i in rows[u]:
            m[r, i] += 1
    return stage.History(users, sp.csr_matrix(m), order or list(rows))


def _recs(mf, plan, k=8):
    frames = [stage.to_frame(plan.ids, mf.items, *b) for b in stage.recommend_batches(mf, plan, k, batch_size=2)]
    return pl.concat(frames) if frames else pl.DataFrame(schema=stage.RECS_SCHEMA)


def test_history_alone_serves_its_users_in_file_order(mf):
    plan = stage.plan_users(mf, None, history=_history({"zed": [1], "amy": [2]}))
    assert plan.ids == ["zed", "amy"] and plan.uidx.tolist() == [-1, -1]


def test_history_with_all_users_adds_the_new_users(mf):
    hist = _history({"new": [2], "u3": [5]})
    plan = stage.plan_users(mf, None, all_users=True, history=hist)
    assert plan.ids == [f"u{i}" for i in range(6)] + ["new"]
    assert plan.uidx[-1] == -1 and plan.uidx[3] == -1  # u3 has history: folded in (merged)
    assert (plan.uidx[[0, 1, 2, 4, 5]] == [0, 1, 2, 4, 5]).all()


@pytest.fixture
def stderr(capsys):
    """What recli logs, as the CLI writes it to stderr (the console set up as for a run)."""
    from recli import console

    console.reset()
    return lambda: capsys.readouterr().err


def test_known_user_with_history_is_folded_in_from_train_plus_history(mf, stderr):
    """u1 with extra history scores exactly as a new user whose history is u1's training
    row plus the extra rows (repeated cells add up), and all of those items count as seen."""
    train_row = mf.user_items[1]
    extra = [i for i in range(8) if i not in train_row.indices][:2] + [int(train_row.indices[0])]
    merged_plan = stage.plan_users(mf, ["u1"], history=_history({"u1": extra}))
    union = train_row.toarray()[0]
    union[extra] += 1
    as_new = stage.UserPlan(["u1"], np.array([-1]), sp.csr_matrix(union[None, :]))
    assert merged_plan.uidx.tolist() == [-1]
    assert "1 users known to the model folded in from their training rows plus their --history rows" in stderr()
    np.testing.assert_array_equal(merged_plan.history.toarray(), union[None, :])
    got, want = _recs(mf, merged_plan), _recs(mf, as_new)
    assert got.equals(want)
    assert not set(got["item"].to_list()) & {f"i{i}" for i in np.flatnonzero(union)}
    trained = _recs(mf, stage.plan_users(mf, ["u1"]))
    assert not got.equals(trained)  # the history did change the list


def test_user_whose_history_items_are_all_unknown(mf, stderr):
    hist = _history({"lost": [], "new": [2]})
    plan = stage.plan_users(mf, ["lost", "new"], history=hist)
    assert plan.ids == ["new"] and plan.skipped == 1
    assert "warning: 1 users in --history have no item known to the model: they are skipped" in stderr()
    plan = stage.plan_users(mf, ["lost", "new"], history=hist, fallback="popular")
    assert plan.uidx.tolist() == [stage.FALLBACK, -1]
    lost = _recs(mf, plan).filter(pl.col("user") == "lost")
    counts = np.bincount(mf.train[1], minlength=8)
    assert lost["score"].to_list() == sorted(counts.tolist(), reverse=True)  # popular, not score-0 id order
    assert "1 users in --history have no item known to the model: they get popular items" in stderr()
    with pytest.raises(InputError, match="no item known to the model"):
        stage.plan_users(mf, ["lost"], history=hist, strict=True)


# -- through the CLI --------------------------------------------------------------


@pytest.fixture(scope="module")
def knn_model(tmp_path_factory):
    from typer.testing import CliRunner

    from recli.cli import app

    root = tmp_path_factory.mktemp("newusers")
    rng = np.random.default_rng(5)
    rows = [(f"{u}", f"{i}") for u in range(1, 30) for i in rng.choice(np.arange(1, 40), 6, replace=False)]
    train = root / "train.csv"
    pl.DataFrame({"user": [r[0] for r in rows], "item": [r[1] for r in rows]}).write_csv(train)
    res = CliRunner().invoke(app, ["train", str(train), "--model", "itemknn", "-o", str(root / "knn"), "-q"])
    assert res.exit_code == 0, res.stderr
    return root / "knn"


def _table(text: str) -> pl.DataFrame:
    return pl.read_csv(io.StringIO(text), schema_overrides={"user": pl.Utf8, "item": pl.Utf8})


def test_headerless_single_id_lists_through_the_cli(cli, knn_model, tmp_path):
    res = cli(["recommend", knn_model, "--users", "-", "-k", "3"], input="7\n")
    assert res.exit_code == 0, res.stderr
    first = _table(res.stdout)
    assert first["user"].to_list() == ["7"] * 3
    deny = tmp_path / "deny.txt"
    deny.write_text(first["item"][0] + "\n")
    res = cli(["recommend", knn_model, "--user", "7", "-k", "3", "--exclude-items", deny])
    assert res.exit_code == 0, res.stderr
    assert first["item"][0] not in _table(res.stdout)["item"].to_list()
    res = cli(["recommend", knn_model, "--similar-items", "3", "--items-file", deny, "-k", "2"])
    assert res.exit_code == 0 and set(_table(res.stdout)["item"].cast(pl.Utf8)) == {"3", first["item"][0]}


def test_history_alone_and_with_all_users_through_the_cli(cli, knn_model, tmp_path):
    hist = tmp_path / "new_users.csv"
    hist.write_text("user,item\nnew_b,1\nnew_b,2\nnew_a,3\n")
    res = cli(["recommend", knn_model, "--history", hist, "-k", "4"])
    assert res.exit_code == 0, res.stderr
    df = _table(res.stdout)
    assert df["user"].unique(maintain_order=True).to_list() == ["new_b", "new_a"]
    assert not {"1", "2"} & set(df.filter(pl.col("user") == "new_b")["item"].to_list())
    res = cli(["recommend", knn_model, "--history", hist, "--all-users", "-k", "2"])
    assert res.exit_code == 0, res.stderr
    users = _table(res.stdout)["user"].unique(maintain_order=True).to_list()
    assert users[-2:] == ["new_b", "new_a"] and len(users) == 29 + 2


def test_history_columns_are_found_like_every_interaction_table(cli, knn_model, tmp_path):
    hist = tmp_path / "h.tsv"
    hist.write_text("userId\tmovieId\nnew_c\t1\n")
    res = cli(["recommend", knn_model, "--history", hist, "-k", "2"])
    assert res.exit_code == 0, res.stderr
    assert _table(res.stdout)["user"].to_list() == ["new_c", "new_c"]
    hist.write_text("who;what\nnew_c;1\n")
    res = cli(["recommend", knn_model, "--history", hist, "-k", "2", "--sep", ";", "--user-col", "who",
               "--item-col", "what"])
    assert res.exit_code == 0, res.stderr
    assert _table(res.stdout)["user"].to_list() == ["new_c", "new_c"]
