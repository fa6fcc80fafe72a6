"""Novelty search as part of the loss: NS-ES, NSR-ES and NSRA-ES in the sampling view.

Every parameter-space estimator weights its K draws by their losses; when a sparse reward
makes every loss equal, every weighting is flat and the step is zero. Novelty gives the
draws something to differ in (Lehman & Stanley, 2011, "Abandoning Objectives: Evolution
through the Search for Novelty Alone"; Conti et al., 2018, "Improving Exploration in
Evolution Strategies for Deep Reinforcement Learning via a Population of Novelty-Seeking
Agents").

Each candidate i returns a behaviour bᵢ ``(B,)`` next to its loss Lᵢ
(:meth:`zoopt.Objective.evaluate_with_behaviour`: where an episode ended, the cells it
visited). Its novelty is the mean distance to its k nearest behaviours in the archive A::

    N(bᵢ) = (1/k) Σ_{a ∈ kNN(bᵢ, A)} ‖bᵢ − a‖₂

and the estimator weights the combined loss::

    L̃ᵢ = (1 − λ)·u(L)ᵢ − λ·u(N)ᵢ,     u = centred ranks in [−½, ½]

Ranks make the two terms commensurable whatever their scales (NSR-ES averages the
rank-normalised return and novelty: λ = ½); λ = 1 is pure novelty search (NS-ES), λ = 0 the
plain estimator. With ``weight="adaptive"`` (NSRA-ES) λ starts at ``initial_weight`` and
moves by ``weight_step``: down when a step's best loss improves on the best so far, up after
``patience`` steps without improvement. Because L̃ is just another loss, the same weights
of every estimator (tilt, centred ranks, CMA's recombination) carry it.

The archive holds the behaviour of θ at each step (the centre's row when it is evaluated,
else the candidate with the lowest combined loss), at most ``archive_size`` of them, oldest
out first; before it holds any, novelty is measured against the step's own behaviours.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from zoopt.estimators.base import PopulationEstimator
from zoopt.objectives.base import Objective
from zoopt.weights import centered_ranks

__all__ = ["Novelty", "BehaviourTap", "make_novelty", "novelty_tap", "knn_novelty"]


def knn_novelty(behaviours: Tensor, archive: Tensor, k: int, exclude_self: bool = False) -> Tensor:
    """Mean Euclidean distance of each behaviour to its ``k`` nearest in ``archive``.

    Args:
        behaviours: ``(K, B)``.
        archive: ``(A, B)``; with ``exclude_self`` it is ``behaviours`` itself and each row
            skips its own (zero) distance.
        k: neighbours (at most the archive's size is used).

    Returns:
        ``(K,)`` float64 novelties; zeros for an empty archive.
    """
    b = behaviours.to(torch.float64)
    a = archive.to(torch.float64)
    others = a.shape[0] - int(exclude_self)
    if others <= 0 or b.shape[0] == 0:
        return torch.zeros(b.shape[0], dtype=torch.float64)
    d = torch.cdist(b, a)
    if exclude_self:
        d.fill_diagonal_(math.inf)
    kk = min(int(k), others)
    return d.topk(kk, dim=1, largest=False).values.mean(1)


def _number(name: str, value: Any, low: float, high: float, closed_low: bool = True) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok:
        ok = (low <= value if closed_low else low < value) and value <= high
    if not ok:
        bracket = "[" if closed_low else "("
        raise ValueError(
            f"novelty {name} must be a number in {bracket}{low}, {high}], got {value!r}"
        )
    return float(value)


def _count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"novelty {name} must be a positive int, got {value!r}")
    return value


class Novelty:
    """The archive, the novelty of a population and its combination with the losses.

    Args:
        weight: λ in (0, 1] (fixed) or ``"adaptive"`` (NSRA-ES).
        k: nearest neighbours averaged (Conti et al. use 10).
        archive_size: behaviours kept, the oldest dropped first.
        initial_weight: λ at the start with ``"adaptive"``.
        weight_step: how far ``"adaptive"`` moves λ at a time.
        patience: steps without improvement before ``"adaptive"`` raises λ.

    Attributes:
        archive: ``(A, B)`` float64 behaviours, or None before the first step.
        lam: the current λ.
    """

    def __init__(
        self,
        weight: float | str = 0.5,
        *,
        k: int = 10,
        archive_size: int = 10_000,
        initial_weight: float = 0.5,
        weight_step: float = 0.05,
        patience: int = 10,
    ) -> None:
        self.adaptive = weight == "adaptive"
        if not self.adaptive:
            if isinstance(weight, str):
                raise ValueError(
                    f"novelty weight must be a number in (0, 1] or 'adaptive', got {weight!r}"
                )
            _number("weight", weight, 0.0, 1.0, closed_low=False)
        self.k = _count("k", k)
        self.archive_size = _count("archive_size", archive_size)
        self.initial_weight = _number("initial_weight", initial_weight, 0.0, 1.0)
        self.weight_step = _number("weight_step", weight_step, 0.0, 1.0)
        self.patience = _count("patience", patience)
        self.lam = self.initial_weight if self.adaptive else float(weight)
        self.archive: Tensor | None = None
        self.best = math.inf
        self.stalled = 0

    def __repr__(self) -> str:
        weight = "'adaptive'" if self.adaptive else f"{self.lam:g}"
        return f"Novelty(weight={weight}, k={self.k}, archive_size={self.archive_size})"

    # -- the step ---------------------------------------------------------------------------
    def add(self, behaviour: Tensor) -> None:
        """Append one behaviour ``(B,)`` to the archive (dropping the oldest beyond the cap)."""
        b = behaviour.detach().to("cpu", torch.float64).reshape(1, -1)
        if self.archive is not None and self.archive.shape[1] != b.shape[1]:
            raise ValueError(
                f"behaviours must keep one size B: the archive holds B = "
                f"{self.archive.shape[1]}, got {b.shape[1]}"
            )
        archive = b if self.archive is None else torch.cat([self.archive, b])
        self.archive = archive[-self.archive_size :]

    def novelty(self, behaviours: Tensor) -> Tensor:
        """``(K,)`` novelty of ``(K, B)`` behaviours against the archive (against each
        other while the archive is empty)."""
        if self.archive is None or self.archive.shape[0] == 0:
            return knn_novelty(behaviours, behaviours, self.k, exclude_self=True)
        return knn_novelty(behaviours, self.archive, self.k)

    def combine(
        self, losses: Tensor, behaviours: Tensor, center: Tensor | None = None
    ) -> tuple[Tensor, dict[str, float]]:
        """The combined losses of one step, and the step's diagnostics.

        Args:
            losses: ``(K,)`` the population's losses.
            behaviours: ``(K, B)`` their behaviours.
            center: ``(B,)`` the behaviour of θ this step, or None when θ was not evaluated.

        Returns:
            ``(L̃ (K,), {"novelty_weight", "mean_novelty", "archive_size"})``; L̃ has the
            dtype and device of ``losses``.
        """
        if behaviours.ndim != 2 or behaviours.shape[0] != losses.shape[0]:
            raise ValueError(
                f"behaviours must have shape (K, B) with K = {losses.shape[0]} rows, got "
                f"{tuple(behaviours.shape)}"
            )
        behaviours = torch.nan_to_num(behaviours.detach().to("cpu", torch.float64))
        if center is not None:
            self.add(torch.nan_to_num(center.detach().to("cpu", torch.float64)))
        nov = self.novelty(behaviours)
        lam = self.lam
        u_loss = centered_ranks(losses.detach().to("cpu", torch.float64))
        combined = (1.0 - lam) * u_loss - lam * centered_ranks(nov)
        if center is None:  # θ's behaviour unknown: keep the step's leading candidate's
            self.add(behaviours[int(torch.argmin(combined))])
        self._adapt(losses)
        info = {
            "novelty_weight": lam,
            "mean_novelty": float(nov.mean()) if nov.numel() else math.nan,
            "archive_size": float(self.archive.shape[0]),
        }
        return combined.to(dtype=losses.dtype, device=losses.device), info

    def _adapt(self, losses: Tensor) -> None:
        """NSRA-ES: lower λ on improvement, raise it after ``patience`` steps without."""
        finite = losses[torch.isfinite(losses)]
        step_best = float(finite.min()) if finite.numel() else math.inf
        if step_best < self.best:
            self.best = step_best
            self.stalled = 0
            if self.adaptive:
                self.lam = max(0.0, self.lam - self.weight_step)
            return
        self.stalled += 1
        if self.adaptive and self.stalled >= self.patience:
            self.lam = min(1.0, self.lam + self.weight_step)
            self.stalled = 0

    # -- checkpoints ------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """The archive, λ and the adaptation counters (tensors and plain values)."""
        return {
            "archive": None if self.archive is None else self.archive.clone(),
            "lam": self.lam,
            "best": self.best,
            "stalled": self.stalled,
        }

    def load_state_dict(self, state: Any) -> None:
        """Restore :meth:`state_dict`, checking every entry.

        Raises:
            ValueError: naming the entry (``novelty.archive``, ``novelty.lam``, ...).
        """
        if not isinstance(state, dict) or set(state) != {"archive", "lam", "best", "stalled"}:
            raise ValueError(
                "novelty: expected a table with entries archive, lam, best and stalled, got "
                + (f"entries {sorted(state)}" if isinstance(state, dict) else type(state).__name__)
            )
        archive = state["archive"]
        if archive is not None:
            if (
                not isinstance(archive, Tensor)
                or archive.ndim != 2
                or archive.dtype != torch.float64
                or not bool(torch.isfinite(archive).all())
            ):
                raise ValueError("novelty.archive: expected a finite float64 tensor (A, B)")
            if archive.shape[0] > self.archive_size:
                raise ValueError(
                    f"novelty.archive: {archive.shape[0]} behaviours exceed archive_size "
                    f"{self.archive_size}"
                )
            archive = archive.clone()
        lam = _number("lam", state["lam"], 0.0, 1.0)
        best = state["best"]
        if isinstance(best, bool) or not isinstance(best, (int, float)) or math.isnan(best):
            raise ValueError(f"novelty.best: expected a number, got {best!r}")
        stalled = state["stalled"]
        if isinstance(stalled, bool) or not isinstance(stalled, int) or stalled < 0:
            raise ValueError(f"novelty.stalled: expected an int >= 0, got {stalled!r}")
        self.archive, self.lam, self.best, self.stalled = archive, lam, float(best), stalled


def make_novelty(novelty: Any) -> Novelty | None:
    """The ``novelty`` option: None/False (off), True (defaults), λ, ``"adaptive"``, a dict
    of :class:`Novelty`'s arguments, or a :class:`Novelty`."""
    if novelty is None or novelty is False:
        return None
    if isinstance(novelty, Novelty):
        return novelty
    if novelty is True:
        return Novelty()
    if isinstance(novelty, dict):
        return Novelty(**novelty)
    if novelty == "adaptive" or (
        isinstance(novelty, (int, float)) and not isinstance(novelty, bool)
    ):
        return Novelty(novelty)
    raise ValueError(
        "novelty must be None, True, a weight in (0, 1], 'adaptive', a dict of Novelty's "
        f"arguments or a zoopt.Novelty, got {novelty!r}"
    )


class BehaviourTap(Objective):
    """Evaluates ``objective`` with its behaviours, which travel back as statistics.

    ``evaluate`` returns the losses and keeps the ``(K, B)`` behaviours; ``pop_stats``
    hands them over with the objective's own statistics. Evaluators merge statistics in row
    order (a Ray worker's chunk by chunk, see :mod:`zoopt.evaluators.ray`), so after a
    population's evaluation :meth:`take` returns its behaviours in row order, wherever the
    rows were evaluated.
    """

    def __init__(self, objective: Objective) -> None:
        if not objective.has_behaviour:
            raise TypeError(
                f"{getattr(objective, 'name', type(objective).__name__)} returns no behaviours "
                "(evaluate_with_behaviour); novelty search needs them"
            )
        self.objective = objective
        self.dim = objective.dim
        self.name = getattr(objective, "name", type(objective).__name__)
        self._pending: list[Tensor] = []

    def evaluate(self, X: Tensor, seed: int = 0) -> Tensor:
        losses, behaviours = self.objective.evaluate_with_behaviour(X, seed)
        if not isinstance(behaviours, Tensor) or behaviours.ndim != 2 or len(behaviours) != len(X):
            raise ValueError(
                f"{self.name}: evaluate_with_behaviour must return behaviours of shape "
                f"({len(X)}, B), got {getattr(behaviours, 'shape', type(behaviours).__name__)}"
            )
        self._pending.append(behaviours.detach().to("cpu", torch.float64))
        return losses

    def take(self, rows: int) -> Tensor:
        """The ``(rows, B)`` behaviours of the last evaluation, in row order."""
        pending, self._pending = self._pending, []
        out = torch.cat(pending) if pending else torch.zeros(0, 0, dtype=torch.float64)
        if out.shape[0] != rows:
            raise RuntimeError(
                f"novelty: {out.shape[0]} behaviours came back for {rows} rows; the evaluator "
                "must merge each chunk's statistics (absorb_stats) in row order"
            )
        return out

    def pop_stats(self) -> Any:
        pending, self._pending = self._pending, []
        return {"objective": self.objective.pop_stats(), "behaviours": pending}

    def absorb_stats(self, stats: Any) -> None:
        if stats.get("objective") is not None:
            self.objective.absorb_stats(stats["objective"])
        self._pending.extend(stats["behaviours"])

    def shared_state(self) -> Any:
        return self.objective.shared_state()

    def load_shared_state(self, state: Any) -> None:
        self.objective.load_shared_state(state)

    def __reduce_ex__(self, protocol: Any) -> Any:
        from zoopt.evaluators.factory import ObjectiveFactory

        # travel as a factory: a Ray worker builds what it wraps after seeding, as any factory
        return (ObjectiveFactory, (_built_tap, self.objective))

    def __repr__(self) -> str:
        return f"BehaviourTap({self.objective!r})"


def novelty_tap(estimator: Any, objective: Objective, has_objective: bool) -> BehaviourTap | None:
    """Check that novelty search applies to ``estimator`` and ``objective``; the objective
    seen through a tap, or None for ask/tell (behaviours come with ``tell``)."""
    if not isinstance(estimator, PopulationEstimator):
        raise ValueError(
            f"novelty: estimator {estimator.name!r} does not weight a population's "
            "draws; novelty search works through population estimators (snes, es, "
            "sampling, cmaes, ...)"
        )
    if not has_objective:
        return None
    if not objective.has_behaviour:
        raise ValueError(
            f"novelty: {getattr(objective, 'name', type(objective).__name__)} "
            "returns no behaviours; novelty search needs an objective implementing "
            "evaluate_with_behaviour(X, seed) -> (losses (K,), behaviours (K, B)), as "
            "GymObjective does"
        )
    return BehaviourTap(objective)


def _built_tap(objective: Any) -> BehaviourTap:
    """A :class:`BehaviourTap` around ``objective``, built now if it is a factory."""
    if hasattr(objective, "build"):
        objective = objective.build()
    return BehaviourTap(objective)
