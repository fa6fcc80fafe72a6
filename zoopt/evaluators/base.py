"""The evaluator contract: ``evaluate(objective, population, seed) -> losses``.

Every backend returns the same numbers in the same order for the same seed.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from torch import Tensor

from zoopt.objectives.base import Objective
from zoopt.population import Population

__all__ = ["Evaluator", "check_max_batch", "candidate_rows", "candidates"]


@runtime_checkable
class Evaluator(Protocol):
    """Evaluates whole populations."""

    def evaluate(self, objective: Objective, population: Population, seed: int) -> Tensor:
        """Losses ``(K,)`` of ``population`` under ``objective`` with the step's ``seed``."""
        ...

    def close(self) -> None:
        """Release workers or devices held by the evaluator."""
        ...


def check_max_batch(max_batch: object) -> int | None:
    """``max_batch`` of an evaluator: a positive int or None, else a ValueError naming it."""
    if max_batch is not None and (
        not isinstance(max_batch, int) or isinstance(max_batch, bool) or max_batch < 1
    ):
        raise ValueError(f"max_batch must be a positive int or None, got {max_batch!r}")
    return max_batch


def candidate_rows(start: int, stop: int) -> str:
    """``"candidate 3 (rows 3:4)"`` or ``"candidates 0..7 (rows 0:8)"``, for error messages."""
    which = f"candidate {start}" if stop - start == 1 else f"candidates {start}..{stop - 1}"
    return f"{which} (rows {start}:{stop})"


def candidates(objective: Objective, population: Population, start: int, stop: int) -> Any:
    """What ``objective`` is handed for rows ``start:stop``: the structured members of a
    low-rank population when the objective runs a population forward on them
    (``accepts_members``), else the rows ``(stop - start, D)``."""
    if getattr(population, "structured", False) and getattr(objective, "accepts_members", False):
        return population.members(start, stop)
    return population.rows(start, stop)
