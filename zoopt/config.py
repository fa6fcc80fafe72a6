"""Experiment configs: TOML files parsed (never evaluated) and checked against a schema.

A config describes one experiment: the objective, the estimator and its options, the
optimizer and schedule, the evaluator, the budget, the seed and where results go. It is
read with :mod:`tomllib`, overridden with ``--set key=value`` pairs (values parsed as TOML
scalars), then validated by :func:`validate`, which fills in defaults and returns the
*resolved* config. Every problem is reported as one :class:`ConfigError` naming the dotted
key and what is allowed, with a "did you mean" suggestion for misspelt keys.

The schema is written in code below (:data:`SCHEMA`). Three parts are open-ended and checked
against the code they configure: ``[estimators.NAME]`` tables against the constructor of the
registered estimator ``NAME``; the ``[objective]`` and ``[evaluator]`` tables against the
signature of the builder registered for their ``kind`` (:func:`register_objective`,
:func:`register_evaluator`; the built-in ones are in :mod:`zoopt.objectives.recipes` and
:mod:`zoopt.evaluators.recipes`), so a kind's types, choices, defaults and docs have one
source. ``[evaluator.options]`` is the explicit allow-list :data:`RAY_OPTIONS_SCHEMA`.
"""

from __future__ import annotations

import copy
import difflib
import importlib
import inspect
import json
import math
import re
import sys
import types
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = [
    "ConfigError",
    "Field",
    "SCHEMA",
    "OBJECTIVE_SCHEMAS",
    "OBJECTIVE_KINDS",
    "OBJECTIVE_RECIPES",
    "EVALUATOR_RECIPES",
    "Recipe",
    "register_objective",
    "register_evaluator",
    "objective_recipes",
    "evaluator_recipes",
    "signature_schema",
    "load_config",
    "parse_config",
    "apply_overrides",
    "parse_override",
    "validate",
    "dumps_toml",
    "estimator_settings",
]


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
        doc: one line for the reference in the README and ``zoopt list``.
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


def _seed_list(v: Any) -> str | None:
    if all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in v) and v:
        return None
    return "a non-empty list of ints >= 0"


def _positive_int_list(v: Any) -> str | None:
    if all(isinstance(i, int) and not isinstance(i, bool) and i > 0 for i in v):
        return None
    return "a list of ints > 0"


def _str_list(v: Any) -> str | None:
    return None if v and all(isinstance(i, str) for i in v) else "a non-empty list of names"


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


def _novelty_weight(v: Any) -> str | None:
    allowed = "a number in [0, 1] (0: off) or 'adaptive'"
    if isinstance(v, str):
        return None if v == "adaptive" else allowed
    return None if 0 <= v <= 1 else allowed


def _unit(v: Any) -> str | None:
    return None if 0 <= v <= 1 else "a number in [0, 1]"


def _schedule(v: Any) -> str | None:
    from zoopt.optim import SCHEDULES

    return None if v in SCHEDULES else "one of " + ", ".join(repr(s) for s in SCHEDULES)


def _optimizer_name(v: Any) -> str | None:
    from zoopt.optim import available_optimizers

    if v.lower() in available_optimizers():
        return None
    return "a torch.optim optimizer: " + ", ".join(available_optimizers())


INT, FLOAT, STR, BOOL, LIST, TABLE = (int,), (int, float), (str,), (bool,), (list,), (dict,)

OPTIMIZER_SCHEMA: dict[str, Field] = {
    "name": Field(STR, "adam", _optimizer_name, "a torch.optim optimizer by name"),
    "lr": Field(FLOAT, 0.02, _positive, "learning rate applied to the pseudo-gradient"),
    "options": Field(TABLE, {}, None, "further keyword arguments of the optimizer"),
    "schedule": Field(STR, "constant", _schedule, "learning-rate schedule after warm-up"),
    "warmup_steps": Field(INT, 0, _at_least(0), "linear warm-up steps"),
    "max_grad_norm": Field(FLOAT, None, _positive, "clip the pseudo-gradient's norm"),
    "max_step_norm": Field(FLOAT, None, _positive, "clip the norm of each update"),
}

#: ``[evaluator] options`` a config file may set (Ray evaluator settings that run no code).
#: Ray's ``runtime_env`` (``py_executable``, ``pip``, ``conda``, set-up hooks, working
#: directories) and ``ray.init`` arguments start processes or import code on the workers, so
#: they are accepted from Python only (``RayEvaluator(runtime_env=...)``).
RAY_OPTIONS_SCHEMA: dict[str, Field] = {
    "num_cpus_per_worker": Field(FLOAT, None, _positive, "CPUs reserved by each worker"),
    "num_gpus_per_worker": Field(
        FLOAT,
        None,
        lambda v: None if 0 <= v < math.inf else "a number >= 0",
        "GPUs reserved by each worker (fractions share a GPU)",
    ),
    "chunks_per_worker": Field(INT, None, _at_least(1), "pieces per worker per population"),
    "max_retries": Field(INT, None, _at_least(0), "re-runs of a chunk whose worker died"),
    "startup_timeout": Field(FLOAT, None, _positive, "seconds to wait for the workers to start"),
    "log_to_driver": Field(BOOL, None, None, "forward the workers' output to this process"),
    "replace_timeout": Field(
        FLOAT, None, _positive, "seconds to wait for a lost worker's replacement"
    ),
    "reduce_threshold": Field(
        INT, None, _at_least(1), "K·D from which the estimator's sums run on the workers"
    ),
}

#: evaluator options refused from files because they run code; each with where to set it
CODE_OPTIONS = {
    "runtime_env": "RayEvaluator(runtime_env=...)",
    "ray_init_options": "RayEvaluator(ray_init_options=...)",
    "py_executable": "RayEvaluator(runtime_env={'py_executable': ...})",
    "worker_process_setup_hook": "RayEvaluator(runtime_env={'worker_process_setup_hook': ...})",
    "setup_hook": "RayEvaluator(runtime_env={'worker_process_setup_hook': ...})",
    "pip": "RayEvaluator(runtime_env={'pip': ...})",
    "conda": "RayEvaluator(runtime_env={'conda': ...})",
    "uv": "RayEvaluator(runtime_env={'uv': ...})",
    "container": "RayEvaluator(runtime_env={'container': ...})",
    "image_uri": "RayEvaluator(runtime_env={'image_uri': ...})",
    "working_dir": "RayEvaluator(runtime_env={'working_dir': ...})",
    "py_modules": "RayEvaluator(runtime_env={'py_modules': ...})",
    "env_vars": "RayEvaluator(runtime_env={'env_vars': ...})",
}

#: the schema of a config; nested dicts are tables. ``objective`` and ``estimators`` are
#: checked by :data:`OBJECTIVE_SCHEMAS` and the estimator registry.
SCHEMA: dict[str, Any] = {
    "name": Field(STR, "", None, "a name for the experiment (labels, default run directory)"),
    "seed": Field(INT, 0, _at_least(0), "everything random derives from it"),
    "estimator": Field(STR, "auto", None, "the estimator `zoopt run` uses (auto: chosen)"),
    "objective": Field(TABLE, _REQUIRED, None, "what to optimise; see the objective kinds"),
    "estimators": Field(TABLE, {}, None, "[estimators.NAME]: options of estimator NAME"),
    "optimizer": OPTIMIZER_SCHEMA,
    "budget": {
        "steps": Field(INT, 100, _at_least(1), "number of steps"),
        "max_evaluations": Field(INT, None, _at_least(1), "stop once this many evaluations"),
    },
    "evaluator": Field(
        TABLE, {}, None, "where populations are evaluated: kind and the keys of that kind"
    ),
    "output": {
        "dir": Field(STR, "", None, "run directory (default runs/NAME)"),
        "checkpoint_every": Field(INT, 0, _at_least(0), "steps between checkpoints (0: end)"),
        "tensorboard": Field(BOOL, True, None, "write TensorBoard events when installed"),
        "plot": Field(BOOL, True, None, "write a learning-curve PNG at the end"),
        "progress": Field(
            STR,
            "auto",
            _one_of("auto", "bar", "lines", "none"),
            "progress display: a bar on a terminal, plain lines otherwise",
        ),
        "progress_every": Field(
            FLOAT,
            10.0,
            lambda v: None if 0 <= v < math.inf else "a number >= 0",
            "seconds between progress lines",
        ),
    },
    "novelty": {
        "weight": Field(
            (int, float, str),
            0.0,
            _novelty_weight,
            "novelty search: λ of (1−λ)·loss − λ·novelty (ranks); 0 off, 'adaptive' NSRA-ES",
        ),
        "k": Field(INT, 10, _at_least(1), "nearest archived behaviours averaged"),
        "archive_size": Field(INT, 10_000, _at_least(1), "behaviours the archive keeps"),
        "initial_weight": Field(FLOAT, 0.5, _unit, "λ at the start with 'adaptive'"),
        "weight_step": Field(FLOAT, 0.05, _unit, "how far 'adaptive' moves λ at a time"),
        "patience": Field(INT, 10, _at_least(1), "steps without improvement before λ rises"),
    },
    "compare": {
        "estimators": Field(LIST, None, _str_list, "estimators that `zoopt compare` runs"),
        "seeds": Field(LIST, [0], _seed_list, "seeds that `zoopt compare` runs"),
    },
}

# -- kinds declared by their builders ----------------------------------------------------------
# An objective or evaluator kind is a builder registered under its name. The builder's
# keyword parameters ARE the schema of its table: the type hint gives the accepted types,
# ``Literal[...]`` the choices, ``Annotated[T, check]`` further checks, the default the value
# filled in (no default: required) and the docstring's ``Args:`` the one-line docs. Parameters
# before ``/`` are supplied by the runner (the seed), never by a file.

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
        check: cross-key checks of the resolved table, raising :class:`ConfigError`.
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


# -- reading ----------------------------------------------------------------------------------
#: tables and lists nest at most this deep in a config (the schema needs 4)
MAX_DEPTH = 16


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
        if isinstance(default, bool) and not isinstance(value, bool):
            raise ConfigError(f"{path}.{key}: must be true or false, got {value!r}")
        if isinstance(default, (int, float)) and not isinstance(default, bool):
            takes_str = "str" in str(params[key].annotation)
            if isinstance(value, (bool, list, dict)) or (isinstance(value, str) and not takes_str):
                raise ConfigError(f"{path}.{key}: must be a number, got {value!r}")


def _validate_objective(raw: Any) -> dict:
    if not isinstance(raw, dict):
        raise ConfigError(f"objective: must be a table ([objective]), got {raw!r}")
    recipes = objective_recipes()
    kind = raw.get("kind")
    if kind is None:
        raise ConfigError(
            "objective.kind: required key is missing; one of " + ", ".join(repr(k) for k in recipes)
        )
    if not isinstance(kind, str) or kind not in recipes:
        close = difflib.get_close_matches(str(kind), recipes, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(
            f"objective.kind: must be one of "
            f"{', '.join(repr(k) for k in recipes)}, got {kind!r}.{hint}"
        )
    # bounds apply to every kind (the loop enforces them), so they are checked here
    rest = {k: v for k, v in raw.items() if k != "bounds"}
    recipe = recipes[kind]
    out = _validate_table(rest, _objective_schema(recipe), "objective")
    if recipe.check is not None:
        recipe.check(out)
    if "bounds" in raw:
        out["bounds"] = _check_bounds(raw["bounds"])
    return out


def _check_bounds(bounds: Any) -> list:
    """``objective.bounds``: ``[lower, upper]``, each a number or a list of numbers."""
    form = (
        "objective.bounds: must be [lower, upper], each a number or a list of D numbers "
        "(inf/-inf for an open side)"
    )

    def number(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and not math.isnan(v)

    if not isinstance(bounds, list) or len(bounds) != 2:
        raise ConfigError(f"{form}, got {bounds!r}")
    for side in bounds:
        if not (number(side) or (isinstance(side, list) and side and all(map(number, side)))):
            raise ConfigError(f"{form}, got {bounds!r}")
    return [list(map(float, s)) if isinstance(s, list) else float(s) for s in bounds]


#: keys of an ``[estimators.NAME]`` table that configure the loop, not the estimator
ESTIMATOR_RESERVED = ("optimizer",)


def _validate_estimators(raw: Any) -> dict:
    from zoopt.estimators import ESTIMATORS, get_estimator

    if not isinstance(raw, dict):
        raise ConfigError(f"estimators: must be a table of [estimators.NAME] tables, got {raw!r}")
    out = {}
    for name, options in raw.items():
        path = f"estimators.{name}"
        if name not in ESTIMATORS and name not in BUILTIN_ESTIMATORS:
            raise _unknown("estimators", name, list(ESTIMATORS))
        if not isinstance(options, dict):
            raise ConfigError(f"{path}: must be a table of {name}'s options, got {options!r}")
        est_opts = {k: v for k, v in options.items() if k not in ESTIMATOR_RESERVED}
        if isinstance(est_opts.get("options"), dict):
            _check_no_expressions(f"{path}.options", est_opts["options"])
        # a built-in estimator missing from this installation cannot be checked; running
        # it reports that it is not available
        if name in ESTIMATORS:
            params = _constructor_params(ESTIMATORS[name])
            _check_against(path, options, params, ESTIMATOR_RESERVED)
            try:
                get_estimator(name, **est_opts)
            except (TypeError, ValueError) as e:
                raise ConfigError(f"{path}: {e}") from None
        entry = copy.deepcopy(est_opts)
        if "optimizer" in options:
            opt = options["optimizer"]
            if not isinstance(opt, dict):
                raise ConfigError(f"{path}.optimizer: must be a table, got {opt!r}")
            entry["optimizer"] = _validate_table(
                opt,
                {k: Field(f.types, None, f.check, f.doc) for k, f in OPTIMIZER_SCHEMA.items()},
                f"{path}.optimizer",
            )
        out[name] = entry
    return out


def _check_no_expressions(path: str, options: Mapping) -> None:
    """Refuse strings in options a library evaluates as expressions (pycma's ``"3 * N"``)."""
    for key, value in options.items():
        items = value if isinstance(value, list) else [value]
        if any(isinstance(v, (str, dict, list)) for v in items):
            raise ConfigError(
                f"{path}.{key}: must be a number, true/false or a list of numbers (strings are "
                f"evaluated as expressions by the library, which a config file may not do), "
                f"got {value!r}"
            )


def _check_optimizer(path: str, opt: Mapping) -> None:
    """Build the optimizer of ``opt`` on a dummy parameter: its own checks, named by key."""
    import torch

    name, options = opt.get("name"), opt.get("options") or {}
    classes = {
        n.lower(): c
        for n, c in vars(torch.optim).items()
        if inspect.isclass(c) and issubclass(c, torch.optim.Optimizer)
    }
    if name is None or name.lower() not in classes:
        return
    cls = classes[name.lower()]
    params = _constructor_params(cls)
    params = {k: v for k, v in params.items() if k not in ("params", "lr")}
    _check_against(f"{path}.options", options, params)
    try:
        cls([torch.zeros(1, requires_grad=True)], lr=opt.get("lr", 1e-3), **options)
    except (TypeError, ValueError, RuntimeError) as e:
        raise ConfigError(f"{path}.options: {cls.__name__} refuses them: {e}") from None


#: the estimators zoopt ships; a comparison may name one its installation lacks (reported)
BUILTIN_ESTIMATORS = ("sampling", "es", "cmaes", "reinforce", "gradient")


def _check_estimator_name(path: str, name: str, allow_builtin: bool = False) -> None:
    from zoopt.estimators import ESTIMATORS

    if allow_builtin and name in BUILTIN_ESTIMATORS:
        return
    if name not in ESTIMATORS and name != "auto":
        close = difflib.get_close_matches(name, ESTIMATORS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(
            f"{path}: must be a registered estimator "
            f"({', '.join(sorted(ESTIMATORS))}), got {name!r}.{hint}"
        )


def validate(raw: Mapping, source: str = "config") -> dict:
    """Check ``raw`` against :data:`SCHEMA`; return the resolved config with defaults filled.

    Raises:
        ConfigError: naming the dotted key and what is allowed (prefixed by ``source``).
    """
    try:
        if not isinstance(raw, Mapping):
            raise ConfigError(f"must be a table of keys, got {type(raw).__name__}")
        _check_depth(raw, "")
        kinds = ("objective", "estimators", "evaluator")  # checked against the code below
        schema = {k: v for k, v in SCHEMA.items() if k not in kinds}
        rest = {k: v for k, v in raw.items() if k not in kinds}
        for key in rest:
            if key not in SCHEMA:
                raise _unknown("", key, list(SCHEMA))
        cfg = _validate_table(rest, schema, "")
        cfg["evaluator"] = _validate_evaluator(raw.get("evaluator", {}))
        if "objective" not in raw:
            raise ConfigError("objective: required table [objective] is missing")
        cfg["objective"] = _validate_objective(raw["objective"])
        cfg["estimators"] = _validate_estimators(raw.get("estimators", {}))
        _check_estimator_name("estimator", cfg["estimator"])
        for i, name in enumerate(cfg["compare"].get("estimators") or []):
            _check_estimator_name(f"compare.estimators[{i}]", name, allow_builtin=True)
        _check_json_like("optimizer.options", cfg["optimizer"]["options"])
        _check_optimizer("optimizer", cfg["optimizer"])
        for name in cfg["estimators"]:
            _, opt = estimator_settings(cfg, name)
            _check_optimizer(f"estimators.{name}.optimizer", opt)
        _check_json_like("evaluator.options", cfg["evaluator"]["options"])
        return {k: cfg[k] for k in SCHEMA}
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None


def _validate_evaluator(raw: Any) -> dict:
    """``[evaluator]``: ``kind``, the keys of that kind's builder, its ``options`` allow-list."""
    if not isinstance(raw, dict):
        raise ConfigError(f"evaluator: must be a table ([evaluator]), got {raw!r}")
    recipes = evaluator_recipes()
    keys = [k for r in recipes.values() for k in r.schema]
    allowed = list(dict.fromkeys(["kind", *keys, "options"]))
    for key in raw:
        if key not in allowed:
            raise _unknown("evaluator", key, allowed)
    kind = _check_value(
        "evaluator.kind", raw.get("kind", "local"), Field(STR, "local", _one_of(*recipes))
    )
    recipe = recipes[kind]
    for key, value in raw.items():
        if key not in ("kind", "options") and key not in recipe.schema:
            owners = " or ".join(repr(k) for k, r in recipes.items() if key in r.schema)
            raise ConfigError(
                f"evaluator.{key}: only for evaluator.kind = {owners} "
                f"(evaluator.kind is {kind!r}), got {value!r}"
            )
    own = {k: v for k, v in raw.items() if k in recipe.schema}
    ev = {"kind": kind, **_validate_table(own, recipe.schema, "evaluator")}
    options = _check_value("evaluator.options", raw.get("options", {}), Field(TABLE))
    for key in options:
        if key in CODE_OPTIONS:
            raise ConfigError(
                f"evaluator.options.{key}: refused in a config file, because it makes Ray run "
                f"code or start processes on the workers; set it from Python with "
                f"{CODE_OPTIONS[key]}"
            )
    if options and recipe.options is None:
        takes = " and ".join(recipe.schema) or "no keys"
        owners = " or ".join(repr(k) for k, r in recipes.items() if r.options is not None)
        raise ConfigError(
            f"evaluator.options: only for evaluator.kind = {owners} (evaluator.kind is "
            f"{kind!r}; the {kind} evaluator takes {takes}), got {options!r}"
        )
    ev["options"] = _validate_table(options, recipe.options or {}, "evaluator.options")
    return ev


def _check_json_like(path: str, value: Any) -> None:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"{path}: must hold plain values (numbers, strings, lists, tables), got {value!r}"
        ) from None


def estimator_settings(cfg: dict, name: str) -> tuple[dict, dict]:
    """(estimator options, optimizer settings) for estimator ``name`` under ``cfg``.

    The optimizer settings are ``[optimizer]`` with the keys of ``[estimators.NAME.optimizer]``
    overriding them.
    """
    entry = dict(cfg.get("estimators", {}).get(name, {}))
    opt = dict(cfg["optimizer"])
    opt.update({k: v for k, v in (entry.pop("optimizer", None) or {}).items() if v is not None})
    return entry, opt


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
