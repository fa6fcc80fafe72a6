"""Experiments from configs: build the objective, run it in a run directory, compare estimators.

One job per module:

* :mod:`zoopt.experiment.build` — the objective, evaluator and minimizer of a config
  (:func:`build_objective`, :func:`build_evaluator`, :func:`make_minimizer`).
* :mod:`zoopt.experiment.run` — a run directory's life: :func:`run_experiment` writes it,
  logs, checkpoints, handles Ctrl-C (a checkpoint is saved and the run stops cleanly).
* :mod:`zoopt.experiment.resume` — :func:`resume_experiment` continues a run from its
  checkpoint, checked entry by entry first.
* :mod:`zoopt.experiment.comparison` — :func:`compare` runs several estimators and seeds on
  one config under the same budget; :func:`format_table` is its table.

Everything is importable from ``zoopt.experiment`` as before.
"""

from __future__ import annotations

from zoopt.experiment.build import (  # noqa: F401  (importable from here as before)
    NotApplicable,
    build_evaluator,
    build_objective,
    make_minimizer,
    novelty_option,
    objective_kinds,
)
from zoopt.experiment.comparison import (  # noqa: F401
    CompareRow,
    _describe_objective,
    compare,
    format_table,
)
from zoopt.experiment.resume import resume_experiment
from zoopt.experiment.run import (  # noqa: F401
    CHECKPOINT,
    RunSummary,
    _default_dir,
    describe,
    run_experiment,
)
from zoopt.objectives.recipes import BuiltObjective

__all__ = [
    "BuiltObjective",
    "RunSummary",
    "CompareRow",
    "NotApplicable",
    "build_objective",
    "build_evaluator",
    "make_minimizer",
    "run_experiment",
    "resume_experiment",
    "compare",
    "format_table",
    "objective_kinds",
]
