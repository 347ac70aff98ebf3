"""New users and id lists: headerless id files (one header rule everywhere), ``--history``
alone, with ``--all-users`` and for known users, and new users whose items are all
unknown to the model."""

from __future__ import annotations

import io

import polars as pl
import pytest

from recli.data.ids import read_ids
from recli.errors import InputError


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
