"""Experiment configs: TOML files parsed (never evaluated) and checked against a schema.

A config describes one experiment: the objective, the estimator and its options, the
optimizer and schedule, the evaluator, the budget, the seed and where results go. It is
read with :mod:`tomllib`, overridden with ``--set key=value`` pairs (values parsed as TOML
scalars), then validated by :func:`validate`, which fills in defaults and returns the
*resolved* config. Every problem is reported as one :class:`ConfigError` naming the dotted
key and what is allowed, with a "did you mean" suggestion for misspelt keys.

One job per module:

* :mod:`zoopt.config.schema` — the machinery: :class:`Field`, the checks, tables checked
  key by key with the dotted key, the expected form and "did you mean".
* :mod:`zoopt.config.kinds` — objective and evaluator kinds declared by their builders'
  signatures (:func:`register_objective`, :func:`register_evaluator`).
* :mod:`zoopt.config.sections` — the sections of a config (:data:`SCHEMA`) and
  :func:`validate`.
* :mod:`zoopt.config.files` — TOML reading, ``--set`` overrides and writing.

Everything is importable from ``zoopt.config`` as before.
"""

from zoopt.config.files import (  # noqa: F401  (importable from here as before)
    apply_overrides,
    dumps_toml,
    load_config,
    parse_config,
    parse_override,
)
from zoopt.config.kinds import (  # noqa: F401
    EVALUATOR_RECIPES,
    OBJECTIVE_KINDS,
    OBJECTIVE_RECIPES,
    OBJECTIVE_SCHEMAS,
    Recipe,
    evaluator_recipes,
    objective_recipes,
    register_evaluator,
    register_objective,
    signature_schema,
)
from zoopt.config.schema import (  # noqa: F401
    BOOL,
    FLOAT,
    INT,
    LIST,
    MAX_DEPTH,
    STR,
    TABLE,
    ConfigError,
    Field,
    at_least,
    device_name,
    finite_number_or_list,
    finite_or_learned,
    fraction,
    positive,
    positive_int_list,
)
from zoopt.config.sections import (  # noqa: F401
    CODE_OPTIONS,
    ESTIMATOR_RESERVED,
    OPTIMIZER_SCHEMA,
    RAY_OPTIONS_SCHEMA,
    SCHEMA,
    _check_estimator_name,
    estimator_settings,
    validate,
)
from zoopt.estimators import BUILTIN_ESTIMATORS  # noqa: F401

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
