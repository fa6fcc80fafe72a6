"""The package's seams: which module may import which, and one list of estimator names."""

from __future__ import annotations

import ast
from pathlib import Path

import zoopt
from zoopt.estimators import BUILTIN_ESTIMATORS, ESTIMATORS

PACKAGE = Path(zoopt.__file__).resolve().parent


def imported_modules(path: Path) -> set[str]:
    """Every ``zoopt`` module ``path`` imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("zoopt"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("zoopt")}
    return found


def test_objectives_do_not_import_evaluators():
    """An objective is evaluated by an evaluator, never the other way round."""
    base = imported_modules(PACKAGE / "objectives" / "base.py")
    assert not any(m.startswith("zoopt.evaluators") for m in base)
    assert "zoopt.objectives.box" not in imported_modules(PACKAGE / "evaluators" / "factory.py")


def test_the_builtin_estimator_names_are_the_registered_ones():
    assert set(BUILTIN_ESTIMATORS) == set(ESTIMATORS)
    for name in BUILTIN_ESTIMATORS:
        assert (PACKAGE / "estimators" / f"{name}.py").is_file()  # one file each


def test_the_wheel_lists_every_package():
    import tomllib

    pyproject = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text(encoding="utf-8"))
    listed = set(pyproject["tool"]["setuptools"]["packages"])
    for init in PACKAGE.rglob("__init__.py"):
        name = ".".join(init.parent.relative_to(PACKAGE.parent).parts)
        assert name in listed, f"pyproject.toml [tool.setuptools] packages lacks {name}"
