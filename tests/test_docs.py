"""The documentation: generated tables are current, relative links resolve, and the README
keeps the commands CI runs."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from recli import docs
from tests.conftest import REPO_ROOT

PAGES = sorted([REPO_ROOT / "README.md", REPO_ROOT / "CONTRIBUTING.md", REPO_ROOT / "CHANGELOG.md",
                *(REPO_ROOT / "docs").glob("*.md")])
_FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)


def _prose(path: Path) -> str:
    """The page without its fenced code blocks (a '#' there is a shell comment, not a heading)."""
    return _FENCE.sub("", path.read_text(encoding="utf-8"))


def _anchors(path: Path) -> set[str]:
    """GitHub's heading ids: lower case, punctuation dropped, spaces to hyphens, -1/-2 on repeats."""
    seen: dict[str, int] = {}
    out = set()
    for heading in _HEADING.findall(_prose(path)):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def test_committed_docs_match_the_generator():
    stale = [str(p.relative_to(REPO_ROOT)) for p, (old, new) in docs.expected_files(REPO_ROOT).items() if old != new]
    assert not stale, f"generated tables out of date in {stale}: run 'python -m recli.docs' and commit"


def test_generated_tables_list_every_model_and_metric():
    from recli.metrics import METRICS
    from recli.models import registry

    models_page = (REPO_ROOT / "docs" / "models.md").read_text(encoding="utf-8")
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    for name, cls in registry().items():
        assert f"| `{name}` | {cls.summary} |" in readme
        assert f"### `{name}`" in models_page
    eval_page = (REPO_ROOT / "docs" / "eval.md").read_text(encoding="utf-8")
    section = eval_page[eval_page.index("## Metrics"):]
    for name in METRICS:
        assert f"`{name}`" in section


def test_devices_column_reads_the_model_declaration(monkeypatch):
    from recli.models import registry

    cls = registry()["als"]
    monkeypatch.setattr(cls, "devices", ("cpu", "gpu"), raising=False)
    assert "| `als` | " + cls.summary + " | cpu, gpu |" in docs.models_table()


def test_param_range_notation():
    row = {"choices": None, "min": 0.0, "max": 1.0, "exclusive_min": True}
    assert docs.param_range(row) == "(0.0, 1.0]"
    assert docs.param_range({**row, "max": None}) == "> 0.0"
    assert docs.param_range({**row, "max": None, "exclusive_min": False}) == "≥ 0.0"
    assert docs.param_range({**row, "min": None, "max": None}) == "any"
    assert docs.param_range({**row, "choices": ("cg", "cholesky")}) == "`cg`, `cholesky`"


@pytest.fixture
def copy_of_docs(tmp_path):
    for rel in docs.TARGETS:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO_ROOT / rel, tmp_path / rel)
    return tmp_path


def test_check_exits_1_on_a_stale_table_and_a_rewrite_fixes_it(copy_of_docs, capsys):
    page = copy_of_docs / "docs" / "eval.md"
    page.write_text(page.read_text(encoding="utf-8").replace("| `ndcg`", "| `ndcg-edited`"), encoding="utf-8")
    assert docs.main(["--check", "--root", str(copy_of_docs)]) == 1
    assert "docs/eval.md" in capsys.readouterr().err
    assert "ndcg-edited" in page.read_text(encoding="utf-8")  # --check writes nothing
    assert docs.main(["--root", str(copy_of_docs)]) == 0
    assert page.read_text(encoding="utf-8") == (REPO_ROOT / "docs" / "eval.md").read_text(encoding="utf-8")
    assert docs.main(["--check", "--root", str(copy_of_docs)]) == 0


def test_a_missing_marker_is_an_error(copy_of_docs, capsys):
    page = copy_of_docs / "docs" / "models.md"
    page.write_text(page.read_text(encoding="utf-8").replace("<!-- END GENERATED: model-params -->", ""),
                    encoding="utf-8")
    assert docs.main(["--check", "--root", str(copy_of_docs)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: docs/models.md") and "model-params" in err and "hint: " in err


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_relative_links_point_to_existing_files_and_headings(page):
    broken = []
    for target in _LINK.findall(_prose(page)):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        rel, _, anchor = target.partition("#")
        dest = (page.parent / rel).resolve() if rel else page
        if not dest.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            broken.append(f"{target} (no such heading)")
    assert not broken, f"{page.name}: broken links: {broken}"


def test_readme_keeps_the_setup_commands_ci_runs():
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert '\npip install -e ".[test]" && python -m pytest -q\n' in readme
    assert "\npip install . && Q=/tmp/recli-quickstart && recli prep sample_data/interactions.csv " in readme
    assert len(readme.splitlines()) <= 250


def test_internal_device_names_stay_out_of_user_docs():
    for page in PAGES:
        assert "xp-numpy" not in page.read_text(encoding="utf-8"), page.name
