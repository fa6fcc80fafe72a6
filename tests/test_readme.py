"""The README's and the guide's code runs as printed, and prints what its comments say.

Every ```python block of README.md and docs/*.md runs, the blocks of one page in order in
one namespace (a page reads top to bottom; pages other than the checked ones run with a
budget of 2 steps); a block fenced ```python notest is shown only (it needs a cluster, or an
object the text around it defines).
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python( notest)?\n(.*?)^```", re.S | re.M)


def blocks(path: Path) -> list[str]:
    """The runnable python blocks of ``path``, in order."""
    return [code for notest, code in BLOCK.findall(path.read_text(encoding="utf-8")) if not notest]


def run(code: str, namespace: dict, name: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, name, "exec"), namespace)
    return out.getvalue()


def first_block_after(path: Path, heading: str) -> str:
    text = path.read_text(encoding="utf-8")
    return BLOCK.search(text, text.index(heading)).group(2)


def test_the_first_screen_example_prints_what_the_readme_says():
    code = first_block_after(README, "## Start here")
    assert len(code.strip().splitlines()) == 3
    expected = code.strip().splitlines()[-1].split("#", 1)[1].strip()
    assert run(code, {}, "README.md").strip() == expected


def test_the_api_tour_prints_what_the_readme_says():
    code = first_block_after(README, "## The API in brief")
    expected = code.strip().splitlines()[-1].split("#", 1)[1].strip()
    assert run(code, {}, "README.md").strip() == expected


def test_the_novelty_example_prints_what_its_page_says():
    page = ROOT / "docs" / "novelty.md"
    code = first_block_after(page, "# Sparse rewards")
    expected = code.strip().splitlines()[-1].split("#", 1)[1].split(":")[0].strip()
    assert run(code, {}, str(page)).strip() == expected  # "1.0 300.0": the goal was reached


def test_the_guide_lists_every_page():
    index = (ROOT / "docs" / "index.md").read_text(encoding="utf-8")
    readme = README.read_text(encoding="utf-8")
    for page in PAGES[1:]:
        if page.name != "index.md":
            assert f"({page.name})" in index, f"docs/index.md does not link {page.name}"
            assert f"(docs/{page.name})" in readme, f"README.md does not link {page.name}"


#: pages whose every block the tests above run and check (a new block there needs a test)
CHECKED = {"README.md": 2, "novelty.md": 1}


def test_the_checked_pages_have_no_unchecked_block():
    for page in PAGES:
        if page.name in CHECKED:
            assert len(blocks(page)) == CHECKED[page.name], page.name


@pytest.mark.parametrize(
    "page", [p for p in PAGES if blocks(p) and p.name not in CHECKED], ids=lambda p: p.name
)
def test_every_code_block_of_the_page_runs(page, tmp_path, monkeypatch):
    """A smoke run, as printed but with a budget of 2 steps (the numbers are not checked)."""
    monkeypatch.chdir(tmp_path)  # what a block writes stays in the test's directory
    namespace: dict = {}
    for i, code in enumerate(blocks(page)):
        code = re.sub(r"\bsteps=\d+", "steps=2", code)
        try:
            run(code, namespace, f"{page.name}, python block {i + 1}")
        except Exception as e:
            raise AssertionError(f"{page.name}: python block {i + 1} fails: {e!r}") from e
