"""The evaluator contract: ``evaluate(objective, population, seed) -> losses``.

Every backend returns the same numbers in the same order for the same seed.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from torch import Tensor

from zoopt.objectives.base import Objective
from zoopt.population import Population

__all__ = ["Evaluator"]


@runtime_checkable
class Evaluator(Protocol):
    """Evaluates whole populations."""

    def evaluate(self, objective: Objective, population: Population, seed: int) -> Tensor:
        """Losses ``(K,)`` of ``population`` under ``objective`` with the step's ``seed``."""
        ...

    def close(self) -> None:
        """Release workers or devices held by the evaluator."""
        ...
