"""The sections of a config and their validation: :data:`SCHEMA` and :func:`validate`.

:func:`validate` checks a raw config against :data:`SCHEMA`, fills in defaults and returns
the *resolved* config. Three parts are open-ended and checked against the code they
configure: ``[estimators.NAME]`` tables against the constructor of the registered estimator
``NAME``; the ``[objective]`` and ``[evaluator]`` tables against the signature of the
builder registered for their ``kind`` (:mod:`zoopt.config.kinds`). ``[evaluator.options]``
is the explicit allow-list :data:`RAY_OPTIONS_SCHEMA`.
"""

from __future__ import annotations

import copy
import difflib
import inspect
import math
from collections.abc import Mapping
from typing import Any

from zoopt.config.kinds import _objective_schema, evaluator_recipes, objective_recipes
from zoopt.config.schema import (
    _REQUIRED,
    BOOL,
    FLOAT,
    INT,
    LIST,
    STR,
    TABLE,
    ConfigError,
    Field,
    _at_least,
    _check_against,
    _check_depth,
    _check_json_like,
    _check_value,
    _constructor_params,
    _one_of,
    _positive,
    _unknown,
    _validate_table,
)


def _seed_list(v: Any) -> str | None:
    if all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in v) and v:
        return None
    return "a non-empty list of ints >= 0"


def _str_list(v: Any) -> str | None:
    return None if v and all(isinstance(i, str) for i in v) else "a non-empty list of names"


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
    "processes_per_worker": Field(
        INT, None, _at_least(1), "local processes each worker evaluates on (one actor per node)"
    ),
    "max_retries": Field(INT, None, _at_least(0), "re-runs of a chunk whose worker died"),
    "startup_timeout": Field(FLOAT, None, _positive, "seconds to wait for the workers to start"),
    "log_to_driver": Field(BOOL, None, None, "forward the workers' output to this process"),
    "replace_timeout": Field(
        FLOAT, None, _positive, "seconds to wait for a lost worker's replacement"
    ),
    "reduce_threshold": Field(
        INT, None, _at_least(1), "K·D from which the estimator's sums run on the workers"
    ),
    "relay_from": Field(
        INT, None, _at_least(2), "workers from which a step is relayed through head workers"
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
#: checked by :data:`zoopt.config.kinds.OBJECTIVE_SCHEMAS` and the estimator registry.
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
        "estimators": Field(
            LIST, None, _str_list, "estimators that `zoopt compare` runs (default: auto and all)"
        ),
        "seeds": Field(LIST, [0], _seed_list, "seeds that `zoopt compare` runs"),
    },
}


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
    from zoopt.estimators import BUILTIN_ESTIMATORS, ESTIMATORS, get_estimator

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


def _check_estimator_name(path: str, name: str, allow_builtin: bool = False) -> None:
    from zoopt.estimators import BUILTIN_ESTIMATORS, ESTIMATORS

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


def estimator_settings(cfg: dict, name: str) -> tuple[dict, dict]:
    """(estimator options, optimizer settings) for estimator ``name`` under ``cfg``.

    The optimizer settings are ``[optimizer]`` with the keys of ``[estimators.NAME.optimizer]``
    overriding them.
    """
    entry = dict(cfg.get("estimators", {}).get(name, {}))
    opt = dict(cfg["optimizer"])
    opt.update({k: v for k, v in (entry.pop("optimizer", None) or {}).items() if v is not None})
    return entry, opt
