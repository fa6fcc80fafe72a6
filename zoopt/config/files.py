"""Config files: TOML read (never evaluated), ``--set key=value`` overrides, TOML written.

:func:`load_config` reads a file with :mod:`tomllib`, applies the overrides (values parsed
as TOML scalars, :func:`parse_override`) and validates the result
(:func:`zoopt.config.sections.validate`); :func:`dumps_toml` writes a resolved config back,
as every run directory's ``config.toml``.
"""

from __future__ import annotations

import copy
import json
import math
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from zoopt.config.schema import MAX_DEPTH, ConfigError, _check_depth
from zoopt.config.sections import validate

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def parse_config(text: str, source: str = "<config>") -> dict:
    """Parse TOML text into a raw (unvalidated) config dict."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{source}: not valid TOML: {e}") from None
    except RecursionError:
        raise ConfigError(f"{source}: tables or arrays nested too deeply") from None
    _check_depth(raw, source)
    return raw


def load_config(path: str | Path, overrides: list[str] | None = None) -> dict:
    """Read ``path``, apply ``--set`` overrides and return the validated, resolved config."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the config ({e.strerror or e})") from None
    except UnicodeDecodeError as e:
        raise ConfigError(
            f"{path}: not a UTF-8 text file (byte {e.start}); a config is TOML text"
        ) from None
    raw = parse_config(text, str(path))
    raw = apply_overrides(raw, overrides or [])
    cfg = validate(raw, source=str(path))
    if not cfg["name"]:
        cfg["name"] = path.stem
    return cfg


def parse_override(item: str) -> tuple[list[str], Any]:
    """``"a.b=value"`` → (["a", "b"], value), the value parsed as a TOML scalar or array.

    A value that is not valid TOML is taken as a plain string, so ``--set
    objective.env=CartPole-v1`` needs no quotes.
    """
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected KEY=VALUE (e.g. budget.steps=200)")
    key, _, text = item.partition("=")
    key, text = key.strip(), text.strip()
    parts = key.split(".")
    shown = item if len(item) <= 80 else item[:77] + "..."
    if not key or any(not p for p in parts):
        raise ConfigError(f"--set {shown!r}: the key must be a dotted name such as budget.steps")
    if len(parts) > MAX_DEPTH:
        raise ConfigError(
            f"--set {shown!r}: the key has {len(parts)} parts; config keys nest at most "
            f"{MAX_DEPTH} deep"
        )
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        value = text
    except RecursionError:
        raise ConfigError(f"--set {shown!r}: the value is nested too deeply") from None
    _check_depth(value, f"--set {key}")
    return parts, value


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """A copy of ``raw`` with each ``key=value`` of ``overrides`` set."""
    out = copy.deepcopy(raw)
    for item in overrides:
        parts, value = parse_override(item)
        node = out
        for i, p in enumerate(parts[:-1]):
            nxt = node.setdefault(p, {})
            if not isinstance(nxt, dict):
                raise ConfigError(
                    f"--set {item!r}: {'.'.join(parts[: i + 1])} is a value, not a table"
                )
            node = nxt
        node[parts[-1]] = value
    return out


# -- writing ----------------------------------------------------------------------------------
def _toml_key(key: str) -> str:
    bare = key and all(c.isalnum() or c in "_-" for c in key) and key.isascii()
    return key if bare else json.dumps(key)


def _toml_value(value: Any, path: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v, path) for v in value) + "]"
    if isinstance(value, dict):
        items = [
            f"{_toml_key(k)} = {_toml_value(v, path)}" for k, v in value.items() if v is not None
        ]
        return "{" + ", ".join(items) + "}"
    raise ConfigError(f"{path}: cannot write {type(value).__name__} to TOML")


def dumps_toml(cfg: Mapping, header: str = "") -> str:
    """Write a config (nested dicts of plain values) as TOML; ``None`` values are left out."""
    lines: list[str] = [f"# {line}" for line in header.splitlines()]

    def table(d: Mapping, prefix: str) -> None:
        scalars = [(k, v) for k, v in d.items() if v is not None and not isinstance(v, dict)]
        tables = [(k, v) for k, v in d.items() if isinstance(v, dict) and (v or not prefix)]
        if prefix and (scalars or not tables):
            if lines:
                lines.append("")
            lines.append(f"[{prefix}]")
        for k, v in scalars:
            lines.append(f"{_toml_key(k)} = {_toml_value(v, prefix + '.' + k)}")
        for k, v in tables:
            table(v, f"{prefix}.{_toml_key(k)}" if prefix else _toml_key(k))

    table(cfg, "")
    return "\n".join(lines) + "\n"
