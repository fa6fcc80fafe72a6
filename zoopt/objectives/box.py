"""Bounds and integer coordinates: the box an objective is seen through.

``minimize(..., bounds=(lower, upper), integer=[...])`` wraps the objective in a
:class:`BoxObjective`, which repairs every point before evaluating it (projection onto the
box, rounding of the integer coordinates); :func:`box_from_options` turns those two options
into the box's tensors and names what is wrong with them.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from zoopt.evaluators.factory import ObjectiveFactory
from zoopt.objectives.base import Objective, OutputSamples

__all__ = ["BoxObjective", "box_from_options"]


def box_from_options(bounds: Any, integer: Any, x0: Tensor) -> tuple[Tensor, Tensor, Tensor] | None:
    """``(lower, upper, integer indices)`` from the ``bounds``/``integer`` options, or None."""
    d = x0.numel()
    if bounds is None and integer is None:
        return None
    form = "bounds must be (lower, upper), each a number or a (D,) array (±inf for open sides)"
    if bounds is None:
        bounds = (-math.inf, math.inf)
    if not isinstance(bounds, (tuple, list)) or len(bounds) != 2:
        raise ValueError(f"{form}; got {bounds!r}")
    sides = []
    for side in bounds:
        try:
            t = torch.as_tensor(np.asarray(side, dtype=np.float64)).to(x0.dtype)
        except (TypeError, ValueError):
            raise ValueError(f"{form}; got {bounds!r}") from None
        if t.ndim == 0:
            t = t.expand(d).clone()
        if t.shape != (d,):
            raise ValueError(f"{form} with D = {d}; got a side of shape {tuple(t.shape)}")
        if bool(torch.isnan(t).any()):
            raise ValueError(f"{form}; got NaN")
        sides.append(t.to(x0.device))
    lo, hi = sides
    bad = torch.nonzero(lo > hi).flatten().tolist()
    if bad:
        raise ValueError(f"bounds: lower > upper at coordinates {bad[:10]}")
    outside = torch.nonzero((x0 < lo) | (x0 > hi)).flatten().tolist()
    if outside:
        raise ValueError(f"x0 lies outside bounds at coordinates {outside[:10]}")
    if integer is None:
        integer = []
    try:
        idx = [int(i) for i in integer if not isinstance(i, bool) and int(i) == i]
    except (TypeError, ValueError):
        idx = None
    if idx is None or len(idx) != len(list(integer)) or any(not 0 <= i < d for i in idx):
        raise ValueError(
            f"integer must be a list of coordinate indices in [0, {d}), got {integer!r}"
        )
    return lo, hi, torch.tensor(sorted(set(idx)), dtype=torch.long)


class BoxObjective(Objective):
    """An objective seen through a box ``[lower, upper]`` and integer coordinates.

    Every point is repaired before the wrapped objective sees it (:meth:`repair`): projected
    onto the box (each coordinate clipped) and, for the ``integer`` coordinates, rounded to
    the nearest integer inside the box. For a Gaussian estimator the step therefore
    estimates the gradient of the smoothed composite E[L(repair(θ + σε))]: outside the box
    the loss is that of the nearest point of the box, so the estimate pushes θ back along
    the box's faces; the loop projects θ itself onto the box after each update.

    Args:
        objective: the wrapped :class:`Objective`.
        lower, upper: ``(D,)`` bounds (``-inf``/``inf`` for an open side), ``lower <= upper``.
        integer: indices of coordinates that take integer values only.
    """

    def __init__(
        self,
        objective: Objective,
        lower: Tensor,
        upper: Tensor,
        integer: Tensor | None = None,
    ) -> None:
        self.objective = objective
        self.lower, self.upper = lower, upper
        self.integer = integer if integer is not None else torch.zeros(0, dtype=torch.long)
        self.dim = objective.dim
        self.metric_name = objective.metric_name
        self.metric_sign = objective.metric_sign
        self.name = getattr(objective, "name", type(objective).__name__)

    def repair(self, X: Tensor) -> Tensor:
        """``X`` ``(..., D)`` projected onto the box, integer coordinates rounded."""
        lo, hi = self.lower.to(X), self.upper.to(X)
        X = torch.clamp(X, lo, hi)
        if self.integer.numel():
            cols = self.integer.to(X.device)
            r = torch.round(X[..., cols])
            # rounding may leave a box with fractional bounds: take the integer inside it
            r = torch.where(r < lo[cols], torch.ceil(lo[cols]), r)
            r = torch.where(r > hi[cols], torch.floor(hi[cols]), r)
            X = X.clone()
            X[..., cols] = r
        return X

    @property
    def bounds(self) -> tuple[Tensor, Tensor]:
        """``(lower, upper)``, each ``(D,)``."""
        return self.lower, self.upper

    def evaluate(self, X: Tensor, seed: int = 0) -> Tensor:
        return self.objective.evaluate(self.repair(X), seed)

    @property
    def has_surrogate(self) -> bool:
        return self.objective.has_surrogate

    def surrogate(self, x: Tensor, seed: int = 0) -> Tensor:
        return self.objective.surrogate(self.repair(x), seed)

    @property
    def can_sample_outputs(self) -> bool:
        return self.objective.can_sample_outputs

    def sample_outputs(self, x, num_samples, generator, seed=0) -> OutputSamples:
        return self.objective.sample_outputs(self.repair(x), num_samples, generator, seed)

    @property
    def has_behaviour(self) -> bool:
        return self.objective.has_behaviour

    def evaluate_with_behaviour(self, X: Tensor, seed: int = 0) -> tuple[Tensor, Tensor]:
        return self.objective.evaluate_with_behaviour(self.repair(X), seed)

    def metric(self, loss: float) -> float:
        return self.objective.metric(loss)

    def pop_stats(self) -> Any:
        return self.objective.pop_stats()

    def absorb_stats(self, stats: Any) -> None:
        self.objective.absorb_stats(stats)

    def shared_state(self) -> Any:
        return self.objective.shared_state()

    def load_shared_state(self, state: Any) -> None:
        self.objective.load_shared_state(state)

    def state_dict(self) -> dict:
        return self.objective.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.objective.load_state_dict(state)

    def __reduce_ex__(self, protocol: Any) -> Any:
        if isinstance(self.objective, ObjectiveFactory):
            # travel as a factory too, so that a Ray worker builds the wrapped objective the
            # way it builds any factory: after seeding its global RNGs
            args = (self.objective, self.lower, self.upper, self.integer)
            return (ObjectiveFactory, (_built_box, *args))
        return super().__reduce_ex__(protocol)

    def __repr__(self) -> str:
        return f"BoxObjective({self.objective!r})"


def _built_box(objective: Any, lower: Tensor, upper: Tensor, integer: Tensor) -> BoxObjective:
    """A :class:`BoxObjective` around ``objective``, built now if it is a factory."""
    if hasattr(objective, "build"):
        objective = objective.build()
    return BoxObjective(objective, lower, upper, integer)
