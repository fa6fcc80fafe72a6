"""The README's first example runs as printed and prints what its comment says."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_first_screen_example_prints_what_the_readme_says():
    text = README.read_text(encoding="utf-8")
    start = text.index("## Start here")
    code = re.search(r"```python\n(.*?)```", text[start:], re.S).group(1)
    assert len(code.strip().splitlines()) == 3
    expected = code.strip().splitlines()[-1].split("#", 1)[1].strip()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})
    assert out.getvalue().strip() == expected


def test_the_novelty_example_prints_what_the_readme_says():
    text = README.read_text(encoding="utf-8")
    start = text.index("## Sparse rewards")
    code = re.search(r"```python\n(.*?)```", text[start:], re.S).group(1)
    expected = code.strip().splitlines()[-1].split("#", 1)[1].split(":")[0].strip()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})
    assert out.getvalue().strip() == expected  # "1.0 300.0": the goal was reached
