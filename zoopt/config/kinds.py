"""Objective and evaluator kinds, declared by the signatures of their builders.

An objective or evaluator kind is a builder registered under its name
(:func:`register_objective`, :func:`register_evaluator`; the built-in ones are in
:mod:`zoopt.objectives.recipes` and :mod:`zoopt.evaluators.recipes`). The builder's keyword
parameters ARE the schema of its table (:func:`signature_schema`): the type hint gives the
accepted types, ``Literal[...]`` the choices, ``Annotated[T, check]`` further checks, the
default the value filled in (no default: required) and the docstring's ``Args:`` the
one-line docs. Parameters before ``/`` are supplied by the runner (the seed), never by a file.
"""

from __future__ import annotations

import importlib
import inspect
import re
import sys
import types
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from zoopt.config.schema import _REQUIRED, BOOL, FLOAT, INT, LIST, STR, TABLE, Field, _one_of


@dataclass(frozen=True)
class Recipe:
    """A registered kind: the builder, its schema and how to present it.

    Attributes:
        kind: the name a config gives as ``kind = ...``.
        build: the builder; called as ``build(*context, **table)``.
        schema: key → :class:`Field`, read from ``build``'s signature.
        doc: the first line of ``build``'s docstring (``zoopt list``).
        needs: a module the kind cannot run without ("" for none).
        label: ``str.format`` template over the resolved table naming a run ("" for the kind).
        check: cross-key checks of the resolved table, raising :class:`zoopt.config.ConfigError`.
        options: for evaluators: the allow-list of ``[evaluator.options]`` (None: none taken).
    """

    kind: str
    build: Callable
    schema: dict[str, Field]
    doc: str = ""
    needs: str = ""
    label: str = ""
    check: Callable[[dict], None] | None = None
    options: dict[str, Field] | None = None

    def describe(self, table: Mapping) -> str:
        """A short title of a resolved table (``rosenbrock (D=10)``)."""
        if not self.label:
            return self.kind
        return self.label.format_map({k: table.get(k) for k in self.schema})


OBJECTIVE_RECIPES: dict[str, Recipe] = {}


EVALUATOR_RECIPES: dict[str, Recipe] = {}


def _arg_docs(doc: str) -> dict[str, str]:
    """``name → text`` of a Google-style ``Args:`` section (continuation lines joined)."""
    out: dict[str, str] = {}
    lines = inspect.cleandoc(doc).splitlines()
    if "Args:" not in [line.strip() for line in lines]:
        return out
    indent, name = None, None
    for line in lines[[line.strip() for line in lines].index("Args:") + 1 :]:
        if line and not line[0].isspace():
            break  # the next section
        depth = len(line) - len(line.lstrip())
        match = re.match(r"(\w+)(?: \(.*?\))?:\s*(.*)", line.strip())
        if match and (indent is None or depth <= indent):
            indent, name = depth, match.group(1)
            out[name] = match.group(2)
        elif name and line.strip():
            out[name] += " " + line.strip()
    return out


_TYPES = {bool: BOOL, int: INT, float: FLOAT, str: STR, list: LIST, tuple: LIST, dict: TABLE}


def _members(hint: Any, checks: list) -> list:
    """The types of a hint, ``Annotated`` and unions unwrapped (their checks into ``checks``)."""
    if typing.get_origin(hint) is typing.Annotated:
        hint, *meta = typing.get_args(hint)
        checks += [m for m in meta if callable(m)]
        return _members(hint, checks)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return [m for h in typing.get_args(hint) for m in _members(h, checks)]
    return [] if hint is type(None) else [hint]


def _field_of(hint: Any, where: str) -> tuple[tuple, Callable[[Any], str | None] | None]:
    """(accepted types, check) of a parameter's type hint."""
    checks: list[Callable[[Any], str | None]] = []
    accepted: list[type] = []
    for member in _members(hint, checks):
        origin = typing.get_origin(member) or member
        if origin is typing.Literal:
            choices = typing.get_args(member)
            kinds = tuple({type(c) for c in choices})
            accepted += [t for k in kinds for t in _TYPES[k]]
            checks.append(_choice(choices, kinds))
        elif origin in _TYPES or origin in (Sequence, Mapping):
            origin = {Sequence: list, Mapping: dict}.get(origin, origin)
            accepted += _TYPES[origin]
        else:
            raise TypeError(f"{where}: the type hint {member!r} is not a config type")
    return tuple(dict.fromkeys(accepted)), _all_of(checks)


def _choice(choices: tuple, kinds: tuple) -> Callable[[Any], str | None]:
    one_of = _one_of(*choices)

    def check(v: Any) -> str | None:
        return one_of(v) if isinstance(v, kinds) else None

    return check


def _all_of(checks: list) -> Callable[[Any], str | None] | None:
    if not checks:
        return None
    if len(checks) == 1:
        return checks[0]

    def check(v: Any) -> str | None:
        return next((w for c in checks if (w := c(v)) is not None), None)

    return check


def signature_schema(build: Callable) -> dict[str, Field]:
    """The table schema of a builder: one :class:`Field` per parameter after ``/``."""
    # the return hint may name a type imported for type checkers only: it is not resolved
    params = {k: v for k, v in getattr(build, "__annotations__", {}).items() if k != "return"}
    hints = typing.get_type_hints(
        types.SimpleNamespace(__annotations__=params),
        globalns=getattr(inspect.unwrap(build), "__globals__", {}),
        include_extras=True,
    )
    docs = _arg_docs(build.__doc__ or "")
    schema: dict[str, Field] = {}
    for name, p in inspect.signature(build).parameters.items():
        if p.kind in (p.POSITIONAL_ONLY, p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        where = f"{build.__module__}.{build.__qualname__}({name})"
        accepted, check = _field_of(hints.get(name, Any), where)
        default = _REQUIRED if p.default is p.empty else p.default
        if isinstance(default, tuple):  # tuples keep signatures immutable; TOML has lists
            default = list(default)
        schema[name] = Field(accepted, default, check, docs.get(name, ""))
    return schema


def _register(
    registry: dict[str, Recipe],
    kind: str,
    needs: str,
    label: str,
    check: Callable[[dict], None] | None,
    options: dict[str, Field] | None,
) -> Callable[[Callable], Callable]:
    def decorate(build: Callable) -> Callable:
        doc = (build.__doc__ or "").strip().splitlines()
        schema = signature_schema(build)
        if "kind" in schema:
            raise TypeError(f"{build.__qualname__}: 'kind' is the table's selector, not a key")
        registry[kind] = Recipe(
            kind, build, schema, doc[0] if doc else "", needs, label, check, options
        )
        return build

    return decorate


def register_objective(
    kind: str,
    *,
    needs: str = "",
    label: str = "",
    check: Callable[[dict], None] | None = None,
) -> Callable[[Callable], Callable]:
    """Register ``build(seed, /, **table)`` as ``[objective] kind = KIND`` (a decorator).

    The builder returns a :class:`zoopt.objectives.recipes.BuiltObjective`; its keyword
    parameters are the table's keys (see :func:`signature_schema`). Keep heavy imports inside
    its body: validating a config only reads the signature.
    """
    return _register(OBJECTIVE_RECIPES, kind, needs, label, check, None)


def register_evaluator(
    kind: str, *, needs: str = "", options: dict[str, Field] | None = None
) -> Callable[[Callable], Callable]:
    """Register ``build(seed, /, **table)`` as ``[evaluator] kind = KIND`` (a decorator).

    ``options``: the allow-list of ``[evaluator.options]`` keys a file may set for this kind;
    they reach the builder as further keyword arguments.
    """
    return _register(EVALUATOR_RECIPES, kind, needs, "", None, options)


_BUILTIN_KINDS = ("zoopt.objectives.recipes", "zoopt.evaluators.recipes")


def objective_recipes() -> dict[str, Recipe]:
    """The registered objective kinds (the built-in ones loaded on first use)."""
    for module in _BUILTIN_KINDS:
        if module not in sys.modules:
            importlib.import_module(module)
    return OBJECTIVE_RECIPES


def evaluator_recipes() -> dict[str, Recipe]:
    """The registered evaluator kinds (the built-in ones loaded on first use)."""
    objective_recipes()
    return EVALUATOR_RECIPES


class _KindsView(Mapping):
    """A live read-only view of the registry (kinds registered later appear)."""

    def __init__(self, value: Callable[[Recipe], Any]) -> None:
        self._value = value

    def __getitem__(self, kind: str) -> Any:
        return self._value(objective_recipes()[kind])

    def __iter__(self) -> Iterator[str]:
        return iter(objective_recipes())

    def __len__(self) -> int:
        return len(objective_recipes())


def _objective_schema(recipe: Recipe) -> dict[str, Field]:
    return {"kind": Field(STR, _REQUIRED), **recipe.schema}


#: objective kind → schema of its table (read from the registered builders)
OBJECTIVE_SCHEMAS: Mapping[str, dict[str, Field]] = _KindsView(_objective_schema)


#: objective kind → (module it needs, schema of its table)
OBJECTIVE_KINDS: Mapping[str, tuple[str, dict[str, Field]]] = _KindsView(
    lambda r: (r.needs or r.build.__module__, _objective_schema(r))
)
