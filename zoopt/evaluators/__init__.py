"""Population evaluation backends: ``local`` (in-process, batched), ``processes`` (worker
processes of this machine) and ``ray``."""

from __future__ import annotations

from typing import Any

from zoopt.evaluators.base import Evaluator
from zoopt.evaluators.factory import ObjectiveFactory
from zoopt.evaluators.local import LocalEvaluator
from zoopt.evaluators.processes import ProcessEvaluator

__all__ = [
    "Evaluator",
    "LocalEvaluator",
    "ObjectiveFactory",
    "ProcessEvaluator",
    "RayEvaluator",
    "make_evaluator",
    "EVALUATORS",
]

EVALUATORS = ("local", "processes", "ray")


def __getattr__(name: str) -> Any:
    # RayEvaluator is imported on first use: Ray is an optional extra and slow to import
    if name == "RayEvaluator":
        from zoopt.evaluators.ray import RayEvaluator

        return RayEvaluator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def make_evaluator(evaluator: Any = None, **options: Any) -> Any:
    """``"local"`` (default), ``"processes"``, ``"ray"`` or an evaluator object (returned
    as is).

    ``options`` go to :class:`LocalEvaluator`, :class:`ProcessEvaluator` or
    :class:`~zoopt.evaluators.ray.RayEvaluator`.
    """
    if evaluator is None or evaluator == "local":
        return LocalEvaluator(**options)
    if evaluator == "processes":
        return ProcessEvaluator(**options)
    if evaluator == "ray":
        from zoopt.evaluators.ray import RayEvaluator

        return RayEvaluator(**options)
    if isinstance(evaluator, str):
        raise ValueError(
            f"evaluator must be one of {EVALUATORS} or an evaluator object, got {evaluator!r}"
        )
    if not hasattr(evaluator, "evaluate"):
        raise TypeError(
            f"evaluator must have an evaluate(objective, population, seed) method, "
            f"got {type(evaluator).__name__}"
        )
    return evaluator
