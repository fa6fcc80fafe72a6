"""The result of :func:`zoopt.minimize`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

__all__ = ["Result", "HISTORY_KEYS", "evaluation_counts", "step_counts"]

#: per-step history columns
HISTORY_KEYS = (
    "step",  # 1-based step index
    "loss",  # loss at the parameters before the step (the step's seed; NaN when not evaluated)
    "best_loss",  # best loss seen so far (centres and candidates)
    "population_loss",  # mean finite loss of the step's population
    "metric",  # the objective's reported metric for `loss`, with its own sign
    "evaluations",  # cumulative objective evaluations
    "alpha",  # temperature used (NaN where none applies)
    "ess",  # effective sample size of the weights (NaN where none applies)
    "grad_norm",  # norm of the pseudo-gradient (before clipping)
    "update_norm",  # norm of the parameter change of the step
    "lr",  # learning rate used
    "seconds",  # wall time since the start of the run
)


@dataclass
class Result:
    """What a run produced.

    Attributes:
        x: ``(D,)`` final parameters (a numpy array when ``x0`` was a numpy array or a
            list, else a tensor); for an estimator that restarts (``cmaes`` with
            ``restarts``, the ``auto`` choice for small D) the best evaluated point when its
            loss is lower than the final parameters', as ``cma.fmin2`` returns.
        loss: loss at ``x``.
        best_x: ``(D,)`` best parameters evaluated during the run, in the same type.
        best_loss: their loss (under the seed of the step that found them).
        evaluations: objective evaluations used.
        center_evaluations: of them, evaluations of the centre θ (reporting, not
            training; the final one included).
        steps: steps taken.
        history: per-step columns, see :data:`HISTORY_KEYS`.
        metric_name: name of the objective's reported metric.
        metric / best_metric: ``loss`` / ``best_loss`` in the metric's own sign.
        stop_reason: why the run ended (``"steps"``, ``"max_evaluations"``, ``"callback"``,
            the estimator's own reasons, ``"interrupted"``).
        estimator: the estimator's name.
        seconds: wall time of the run.
        notes: what the run noticed and said (a stalled search), in order.
    """

    x: Tensor
    loss: float
    best_x: Tensor
    best_loss: float
    evaluations: int
    steps: int
    history: dict = field(default_factory=dict)
    metric_name: str = "loss"
    metric: float = float("nan")
    best_metric: float = float("nan")
    stop_reason: str = "steps"
    estimator: str = ""
    seconds: float = 0.0
    notes: list = field(default_factory=list)
    center_evaluations: int = 0

    def __repr__(self) -> str:
        metric = "" if self.metric_name == "loss" else f"{self.metric_name}={self.metric:.6g}, "
        return (
            f"Result(estimator={self.estimator!r}, steps={self.steps}, "
            f"evaluations={self.evaluations}, loss={self.loss:.6g}, "
            f"best_loss={self.best_loss:.6g}, {metric}stop_reason={self.stop_reason!r})"
        )


def evaluation_counts(objective: Any, evaluations: int, center_evaluations: int) -> dict:
    """Training and centre work apart (cumulative): ``training_evaluations``,
    ``center_evaluations`` and, for an episodic objective (an int ``episodes`` E per
    evaluation, as ``GymObjective``), ``training_episodes`` and ``center_episodes``."""
    out: dict = {
        "training_evaluations": evaluations - center_evaluations,
        "center_evaluations": center_evaluations,
    }
    per = getattr(objective, "episodes", None)
    if isinstance(per, int) and not isinstance(per, bool):
        out["training_episodes"] = (evaluations - center_evaluations) * per
        out["center_episodes"] = center_evaluations * per
    return out


def step_counts(objective: Any, evaluations: int, center_evaluations: int) -> dict:
    """The history's extra columns after a step: :func:`evaluation_counts` but
    ``training_evaluations`` (``evaluations`` minus ``center_evaluations``), and the
    objective's own per-step numbers (``history_info()``, e.g. the straggler cap)."""
    out = evaluation_counts(objective, evaluations, center_evaluations)
    del out["training_evaluations"]
    info = getattr(objective, "history_info", None)
    if callable(info):
        out.update(info())
    return out
