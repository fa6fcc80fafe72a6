"""The schema machinery of configs: fields, checks, and tables checked key by key.

A :class:`Field` is one key: the accepted types, the default, a check returning what is
allowed, and a line of docs. :func:`_validate_table` checks a table against a dict of
fields (nested dicts are sub-tables) and fills in the defaults. Every problem is one
:class:`ConfigError` naming the dotted key and what is allowed, with a "did you mean"
suggestion for a misspelt key (:func:`_unknown`).
"""

from __future__ import annotations

import copy
import difflib
import inspect
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


class ConfigError(ValueError):
    """A config problem, naming the dotted key and what is allowed."""


_REQUIRED = object()


@dataclass(frozen=True)
class Field:
    """One config key.

    Attributes:
        types: accepted Python types after TOML parsing (``int`` is accepted where ``float``
            is, ``bool`` never counts as a number).
        default: the value filled in when the key is absent (``None``: stays unset).
        check: returns None when the value is allowed, else a description of what is.
        doc: one line for the reference in docs/configs.md and ``zoopt list``.
    """

    types: tuple
    default: Any = None
    check: Callable[[Any], str | None] | None = None
    doc: str = ""

    @property
    def required(self) -> bool:
        """Whether the key must be given."""
        return self.default is _REQUIRED


# -- checks -----------------------------------------------------------------------------------
def _positive(v: Any) -> str | None:
    return None if v > 0 and not (isinstance(v, float) and math.isinf(v)) else "a number > 0"


def _at_least(lo: int) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        return None if v >= lo else f"an int >= {lo}"

    return check


def _one_of(*choices: str) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        return None if v in choices else "one of " + ", ".join(repr(c) for c in choices)

    return check


def _positive_int_list(v: Any) -> str | None:
    if all(isinstance(i, int) and not isinstance(i, bool) and i > 0 for i in v):
        return None
    return "a list of ints > 0"


def _finite_number_or_list(v: Any) -> str | None:
    items = v if isinstance(v, list) else [v]
    ok = items and all(
        isinstance(i, (int, float)) and not isinstance(i, bool) and math.isfinite(i) for i in items
    )
    return None if ok else "a finite number or a list of finite numbers"


def _device(v: Any) -> str | None:
    import torch

    try:
        kind = torch.device(v).type
    except (RuntimeError, TypeError, ValueError):
        kind = None
    return None if kind in ("cpu", "cuda", "mps") else "a device such as 'cpu', 'cuda' or 'cuda:1'"


def _finite_or_learned(v: Any) -> str | None:
    if isinstance(v, str):
        return None if v == "learned" else "a finite number or 'learned'"
    return None if math.isfinite(v) else "a finite number or 'learned'"


INT, FLOAT, STR, BOOL, LIST, TABLE = (int,), (int, float), (str,), (bool,), (list,), (dict,)


#: the checks builders put in ``Annotated[...]``: each returns None or what is allowed
positive = _positive


at_least = _at_least


device_name = _device


finite_or_learned = _finite_or_learned


positive_int_list = _positive_int_list


finite_number_or_list = _finite_number_or_list


def fraction(v: Any) -> str | None:
    """A number strictly between 0 and 1."""
    return None if 0 < v < 1 else "a fraction in (0, 1)"


# -- nesting -----------------------------------------------------------------------------------
#: tables and lists nest at most this deep in a config (the schema needs 4)
MAX_DEPTH = 16


def _check_depth(raw: Any, source: str) -> None:
    """Refuse nesting deeper than :data:`MAX_DEPTH` (iteratively: no recursion limit)."""
    stack = [(raw, 0, "")]
    while stack:
        node, depth, path = stack.pop()
        if depth > MAX_DEPTH:
            where = f"{source}: {path}" if source else path
            raise ConfigError(f"{where}: tables or arrays nested deeper than {MAX_DEPTH} levels")
        if isinstance(node, dict):
            stack += [(v, depth + 1, f"{path}.{k}" if path else str(k)) for k, v in node.items()]
        elif isinstance(node, list):
            stack += [(v, depth + 1, f"{path}[{i}]") for i, v in enumerate(node)]


# -- validation -------------------------------------------------------------------------------
def _type_name(types: tuple) -> str:
    names = {
        int: "an int",
        float: "a number",
        str: "a string",
        bool: "true or false",
        list: "a list",
        dict: "a table",
    }
    if types == FLOAT:
        return "a number"
    return " or ".join(names.get(t, t.__name__) for t in types)


def _check_value(path: str, value: Any, f: Field) -> Any:
    ok = isinstance(value, f.types) and not (isinstance(value, bool) and bool not in f.types)
    if not ok:
        raise ConfigError(f"{path}: must be {_type_name(f.types)}, got {value!r}")
    if f.check is not None:
        what = f.check(value)
        if what is not None:
            raise ConfigError(f"{path}: must be {what}, got {value!r}")
    if float in f.types and isinstance(value, int):
        value = float(value)
    return copy.deepcopy(value)


def _unknown(path: str, key: str, allowed: list[str]) -> ConfigError:
    where = f"{path}.{key}" if path else key
    close = difflib.get_close_matches(key, allowed, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return ConfigError(f"{where}: unknown key.{hint} Allowed: {', '.join(sorted(allowed))}")


def _validate_table(raw: Mapping, schema: dict, path: str) -> dict:
    out: dict = {}
    for key in raw:
        if key not in schema:
            raise _unknown(path, key, list(schema))
    for key, spec in schema.items():
        where = f"{path}.{key}" if path else key
        if isinstance(spec, dict):
            value = raw.get(key, {})
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: must be a table ([{where}]), got {value!r}")
            out[key] = _validate_table(value, spec, where)
        elif key in raw:
            out[key] = _check_value(where, raw[key], spec)
        elif spec.required:
            raise ConfigError(f"{where}: required key is missing")
        elif spec.default is not None:
            out[key] = copy.deepcopy(spec.default)
    return out


def _constructor_params(factory: Callable) -> dict[str, inspect.Parameter]:
    sig = inspect.signature(factory)
    return {
        n: p
        for n, p in sig.parameters.items()
        if n != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }


def _check_against(
    path: str,
    options: Mapping,
    params: Mapping[str, inspect.Parameter],
    reserved: tuple[str, ...] = (),
) -> None:
    for key, value in options.items():
        if key in reserved:
            continue
        if key not in params:
            raise _unknown(path, key, list(params) + list(reserved))
        default = params[key].default
        # a light type check against the default: the constructor checks the rest
        takes_str = "str" in str(params[key].annotation)  # e.g. surrogate: bool | str
        if isinstance(default, bool) and not isinstance(value, bool):
            if not (isinstance(value, str) and takes_str):
                raise ConfigError(f"{path}.{key}: must be true or false, got {value!r}")
        if isinstance(default, (int, float)) and not isinstance(default, bool):
            if isinstance(value, (bool, list, dict)) or (isinstance(value, str) and not takes_str):
                raise ConfigError(f"{path}.{key}: must be a number, got {value!r}")


def _check_json_like(path: str, value: Any) -> None:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"{path}: must hold plain values (numbers, strings, lists, tables), got {value!r}"
        ) from None
