"""The estimator contract.

An estimator turns evaluations around the current parameters θ ``(D,)`` into one step of
p(Δθ|θ) ∝ π(Δθ)·exp(−ΔL/α). Configuration lives in the object's constructor arguments;
dynamic state is explicit (:meth:`Estimator.state_dict`) so that checkpoints are exact.

Two kinds of result, both in an :class:`Estimate`:

* a pseudo-gradient ``grad`` with the scale of a true gradient, consumed by any
  ``torch.optim`` optimizer (sampling, es, reinforce, gradient);
* new parameters ``x`` when the estimator owns its mean (CMA-ES).

Population-based estimators follow ask/tell: :meth:`PopulationEstimator.ask` returns a
population (see :mod:`zoopt.population`), :meth:`PopulationEstimator.tell` its losses.
:meth:`Estimator.estimate` runs one ask → evaluate → tell.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from zoopt.objectives.base import Objective
from zoopt.population import Population
from zoopt.weights import NonFiniteLossError

__all__ = [
    "CENTER_EVERY",
    "Estimate",
    "Estimator",
    "PopulationEstimator",
    "check_population",
    "check_positive",
    "sanitize_losses",
]


#: the default centre schedule of the population estimators, whose step never reads θ's
#: own loss: θ is evaluated every n-th step, for the history, and at the end. Every step
#: would spend 1/(K + 1) of the budget on reporting: a third of the episodes at K = 2
#: (Mania et al. 2018 count training episodes only), a ninth for SNES on CartPole (K = 8).
#: pycma, Nevergrad and EvoTorch never evaluate their mean.
CENTER_EVERY = 10


@dataclass
class Estimate:
    """One step's estimate.

    Attributes:
        grad: ``(D,)`` pseudo-gradient (None when ``x`` is given).
        x: ``(D,)`` new parameters, for estimators that own their mean (CMA-ES).
        losses: ``(K,)`` losses of the evaluated population (may be empty).
        population: the evaluated population (K candidates of D parameters) or None; the
            caller tracks its best candidate.
        evaluations: objective evaluations spent (candidates, episodes × candidates, …).
        alpha: temperature used, where one applies.
        ess: effective sample size of the weights, where one applies.
        stop: reasons to stop reported by the estimator (pycma's termination criteria).
        extra: further per-step numbers for the history.
    """

    grad: Tensor | None = None
    x: Tensor | None = None
    losses: Tensor | None = None
    population: Population | None = None
    evaluations: int = 0
    alpha: float | None = None
    ess: float | None = None
    stop: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)


def check_positive(
    name: str, value: Any, *, integer: bool = False, minimum: float = 0.0, inclusive: bool = False
) -> Any:
    """Validate a numeric option: a clear error naming ``name`` and the expected form."""
    kind = "an int" if integer else "a number"
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok:
        raise TypeError(f"{name} must be {kind}, got {value!r}")
    rel = ">=" if inclusive else ">"
    if isinstance(value, float) and math.isnan(value):
        raise ValueError(f"{name} must be {kind} {rel} {minimum}, got nan")
    if (value < minimum) if inclusive else (value <= minimum):
        raise ValueError(f"{name} must be {kind} {rel} {minimum}, got {value!r}")
    return value


def check_population(population: Any, antithetic: bool) -> int:
    """Validate a population size K: an int ≥ 2, even when draws come in antithetic pairs."""
    check_positive("population", population, integer=True, minimum=2, inclusive=True)
    if antithetic and population % 2:
        raise ValueError(f"population must be even when antithetic=True, got {population}")
    return population


class Estimator:
    """Base class. Subclasses set ``name`` and implement :meth:`estimate`."""

    name: str = ""
    #: True when the estimator returns new parameters instead of a pseudo-gradient
    owns_mean: bool = False
    #: the loop's default ``evaluate_center``: True (every step) or every n-th step
    center_every: bool | int = True
    #: True when the result is the best evaluated point if it beats the final parameters
    #: (restarted ``cmaes``: the final parameters are only the last run's)
    reports_best: bool = False

    def bind_module(self, module: Any) -> None:
        """The ``nn.Module`` that x0 came as (None for a tensor), given before :meth:`setup`:
        estimators with low-rank draws (``rank``) read its layers."""
        self._module = module

    def setup(self, objective: Objective, x0: Tensor) -> None:
        """Called once before the first step with the objective and the start ``(D,)``."""
        self._nonfinite_warned = False

    def reuse(self, points: Tensor, losses: Tensor) -> None:
        """Points ``(n, D)`` evaluated before the first step and their losses ``(n,)``
        (``auto``'s noise probe), given after :meth:`setup`; the default ignores them.
        ``cmaes`` with a surrogate adds them to its model's archive."""

    def estimate(self, objective: Objective, x: Tensor, evaluator: Any, seed: int) -> Estimate:
        """One step at parameters ``x`` ``(D,)`` with the step's ``seed``."""
        raise NotImplementedError

    def state_dict(self) -> dict:
        """Dynamic state (tensors and plain values) for exact checkpoints."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`."""

    def match_checkpoint(self, state: dict) -> None:
        """Called with a checkpoint's estimator state before it is checked and loaded: an
        estimator whose defaults depend on the problem takes back the choice the checkpoint
        was written with (``sampling``/``es``: a state without an adapted shape)."""

    def config(self) -> dict:
        """Constructor options, for logs and run directories."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({opts})"

    # shared bookkeeping -------------------------------------------------------------------
    def _warn_nonfinite(self, losses: Tensor) -> None:
        bad = int((~torch.isfinite(losses)).sum())
        if 0 < bad < losses.numel() and not getattr(self, "_nonfinite_warned", False):
            self._nonfinite_warned = True
            warnings.warn(
                f"{self.name}: {bad} of {losses.numel()} losses are NaN/Inf; they are treated "
                "as failed candidates (dropped from the tilt, worst in ranks). "
                "This warning is shown once per run.",
                RuntimeWarning,
                stacklevel=3,
            )


def sanitize_losses(losses: Tensor, who: str) -> Tensor:
    """Raise :class:`NonFiniteLossError` naming ``who`` if no loss is finite."""
    if not bool(torch.isfinite(losses).any()):
        raise NonFiniteLossError(
            f"{who}: all {losses.numel()} losses of the population are NaN/Inf; "
            "the objective fails everywhere around the current parameters"
        )
    return losses


class PopulationEstimator(Estimator):
    """Ask/tell estimators: ask → population, evaluator → losses, tell → estimate."""

    center_every = CENTER_EVERY

    def ask(self, x: Tensor, seed: int) -> Population:
        """The population to evaluate around ``x`` ``(D,)``."""
        raise NotImplementedError

    def tell(self, x: Tensor, population: Population, losses: Tensor) -> Estimate:
        """Turn the population's ``(K,)`` losses into an :class:`Estimate`."""
        raise NotImplementedError

    def estimate(self, objective: Objective, x: Tensor, evaluator: Any, seed: int) -> Estimate:
        population = self.ask(x, seed)
        losses = evaluator.evaluate(objective, population, seed)
        losses = losses.to(dtype=x.dtype)
        if not bool(torch.isfinite(losses).all()):
            self._warn_nonfinite(losses)
            sanitize_losses(losses, self.name)
        est = self.tell(x, population, losses)
        est.losses = losses
        est.population = population
        if not est.evaluations:
            est.evaluations = len(population)
        return est
