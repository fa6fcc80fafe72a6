"""The example configs that ship with the package, for ``zoopt init NAME``.

One source: the repository's ``examples/configs/*.toml``. A built wheel carries them as
package data ``zoopt/configs/``; a checkout (or an editable install) reads them where they
are.
"""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

__all__ = ["example_configs", "describe_examples", "write_example"]


def _config_dir() -> Traversable:
    packaged = files("zoopt") / "configs"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[1] / "examples" / "configs"


def example_configs() -> dict[str, Traversable]:
    """Example name (file name without ``.toml``) → its file, sorted by name."""
    root = _config_dir()
    if not root.is_dir():
        return {}
    found = {f.name.removesuffix(".toml"): f for f in root.iterdir() if f.name.endswith(".toml")}
    return dict(sorted(found.items()))


def _summary(text: str) -> str:
    """The first sentence of a config's first comment line, its one-line description."""
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("#") and line.lstrip("# ").strip():
            first, dot, _ = line.lstrip("# ").strip().partition(". ")
            return first + dot.strip()
        if line and not line.startswith("#"):
            break
    return ""


def describe_examples() -> dict[str, str]:
    """Example name → the first sentence of its file's first comment line."""
    return {name: _summary(f.read_text(encoding="utf-8")) for name, f in example_configs().items()}


def write_example(name: str, dest_dir: str | Path, force: bool = False) -> Path:
    """Write the example config ``name`` to ``dest_dir/NAME.toml``.

    Raises:
        KeyError: no example has that name (the message lists the names).
        FileExistsError: the file exists and ``force`` is False.
    """
    examples = example_configs()
    key = name.removesuffix(".toml")
    if key not in examples:
        raise KeyError(
            f"no example config named {name!r}; choose one of: {', '.join(examples) or 'none'}"
        )
    path = Path(dest_dir) / f"{key}.toml"
    if path.exists() and not force:
        raise FileExistsError(f"{path} exists; pass --force to replace it")
    path.write_text(examples[key].read_text(encoding="utf-8"), encoding="utf-8")
    return path
