"""The objective contract: a batch of K parameter vectors in, K losses out.

Lower is better. A maximised metric (accuracy, BLEU, return) is negated into a loss and
reported with its own sign through :attr:`Objective.metric_sign` and
:attr:`Objective.metric_name`.

Optional capabilities, each discovered by the estimators that need them:

* ``surrogate(x)`` — a differentiable scalar at one parameter vector ``x`` of shape ``(D,)``
  (cross-entropy for a classifier, the loss itself for torch code). Used by ``"gradient"``
  and by the guided proposal of ``"sampling"``.
* ``sample_outputs(x, num_samples, generator)`` — the output-sampling protocol of
  ``"reinforce"`` (see :class:`OutputSamples`).
* ``evaluate_with_behaviour(X, seed)`` — the losses and a behaviour characterisation
  ``(K, B)`` of each candidate, for novelty search (:mod:`zoopt.novelty`).
* Statistics hooks for objectives that learn from their own evaluations (an observation
  normaliser): ``pop_stats``/``absorb_stats`` move statistics from evaluation copies (Ray
  workers) to the driver, ``shared_state``/``load_shared_state`` move the frozen state the
  other way, ``state_dict``/``load_state_dict`` put it into checkpoints.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "Objective",
    "FunctionObjective",
    "ScalarObjective",
    "OutputSamples",
    "as_objective",
    "seeded_generator",
]

#: how a batched callable's failure is explained (it may have been written for one vector)
BATCHED_HINT = (
    "f receives a batch X of shape (K, D), one candidate per row, and must return K losses; "
    "for f(x) -> float on one vector (D,), pass batched=False"
)


@dataclass
class OutputSamples:
    """What an output-sampling objective returns for ``"reinforce"``.

    Attributes:
        log_probs: ``(N, M)`` log p_θ(y_nm | x_n), differentiable with respect to ``x``;
            N inputs (or episodes), M draws each.
        losses: ``(N, M)`` loss of each draw (no gradient).
        entropy: optional ``(N,)`` differentiable entropy of p_θ(·|x_n), for an entropy bonus.
    """

    log_probs: Tensor
    losses: Tensor
    entropy: Tensor | None = None


class Objective:
    """Base class of batched objectives.

    Subclasses implement :meth:`evaluate`. ``dim`` is the expected parameter count D
    (``None`` when any D is accepted).
    """

    dim: int | None = None
    metric_name: str = "loss"
    #: reported metric = metric_sign * loss (e.g. -1 for accuracy stored as -accuracy)
    metric_sign: float = 1.0

    def evaluate(self, X: Tensor, seed: int = 0) -> Tensor:
        """Losses of a population.

        Args:
            X: ``(K, D)`` candidate parameter vectors.
            seed: the step's seed for common random numbers (minibatch, episode seeds):
                every candidate of one step, on every backend, sees the same randomness.

        Returns:
            ``(K,)`` losses, lower is better; NaN/Inf mark failed candidates.
        """
        raise NotImplementedError

    # -- optional capabilities -------------------------------------------------------------
    @property
    def has_surrogate(self) -> bool:
        """Whether :meth:`surrogate` is available."""
        return type(self).surrogate is not Objective.surrogate

    def surrogate(self, x: Tensor, seed: int = 0) -> Tensor:
        """Differentiable scalar loss (or proxy) at ``x`` of shape ``(D,)``."""
        raise NotImplementedError(f"{type(self).__name__} offers no differentiable surrogate")

    @property
    def can_sample_outputs(self) -> bool:
        """Whether the objective implements the output-sampling protocol."""
        return type(self).sample_outputs is not Objective.sample_outputs

    def sample_outputs(
        self, x: Tensor, num_samples: int, generator: torch.Generator, seed: int = 0
    ) -> OutputSamples:
        """Draw ``num_samples`` outputs per input from p_θ(y|x) at parameters ``x`` ``(D,)``.

        The output-sampling protocol used by ``"reinforce"``. An objective whose model
        defines a distribution over its outputs (a stochastic policy's actions or episodes,
        a classifier's labels, a sequence model's tokens) implements it; overriding this
        method is all it takes (:attr:`can_sample_outputs` then reports True).

        Args:
            x: ``(D,)`` parameters with ``requires_grad=True``; build the log-probabilities
                from it with differentiable torch operations.
            num_samples: M ≥ 1, outputs drawn per input.
            generator: a seeded ``torch.Generator`` (CPU) for every random draw of the
                outputs, so that the same seed gives the same draws.
            seed: the step's seed, for everything else that is common to the step (which
                minibatch, which environment seeds), as in :meth:`evaluate`.

        Returns:
            :class:`OutputSamples`: ``log_probs (N, M)`` = log p_θ(y_nm|x_n) differentiable
            with respect to ``x``; ``losses (N, M)`` of the draws (lower is better, no
            gradient, NaN/Inf marks a failed draw); optionally ``entropy (N,)`` of
            p_θ(·|x_n), differentiable, for an entropy bonus. N is the number of inputs
            (states, examples, source sentences; 1 for a whole episode or a bandit).
            Example: :class:`zoopt.objectives.bandit.CategoricalBandit`.
        """
        raise NotImplementedError(
            f"{type(self).__name__} cannot sample outputs; 'reinforce' needs an objective "
            "implementing sample_outputs (a policy, a classifier or a sequence model)"
        )

    @property
    def has_behaviour(self) -> bool:
        """Whether :meth:`evaluate_with_behaviour` is available."""
        return type(self).evaluate_with_behaviour is not Objective.evaluate_with_behaviour

    def evaluate_with_behaviour(self, X: Tensor, seed: int = 0) -> tuple[Tensor, Tensor]:
        """Losses and behaviour characterisations of a population, from one evaluation.

        Used by novelty search (:class:`zoopt.novelty.Novelty`). A behaviour is what the
        candidate did, as a vector whose Euclidean distances mean "behaved differently"
        (where an episode ended, the cells it visited); overriding this method is all it
        takes (:attr:`has_behaviour` then reports True).

        Args:
            X: ``(K, D)`` candidate parameter vectors.
            seed: the step's seed, as in :meth:`evaluate`.

        Returns:
            ``(losses (K,), behaviours (K, B))``; the losses equal :meth:`evaluate`'s.
        """
        raise NotImplementedError(
            f"{type(self).__name__} returns no behaviours; novelty search needs an objective "
            "implementing evaluate_with_behaviour(X, seed) -> (losses (K,), behaviours (K, B)), "
            "as GymObjective does"
        )

    def metric(self, loss: float) -> float:
        """The reported metric for a loss value."""
        return self.metric_sign * loss

    # -- statistics hooks (no-ops by default) ----------------------------------------------
    def pop_stats(self) -> Any:
        """Statistics gathered since the last call (sent from workers to the driver)."""
        return None

    def absorb_stats(self, stats: Any) -> None:
        """Merge statistics returned by :meth:`pop_stats` of an evaluation copy."""

    def shared_state(self) -> Any:
        """State that evaluation copies must share this step (e.g. a frozen normaliser)."""
        return None

    def load_shared_state(self, state: Any) -> None:
        """Install the state produced by :meth:`shared_state`."""

    def state_dict(self) -> dict:
        """Checkpointable state (tensors and plain Python values only)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`."""


class FunctionObjective(Objective):
    """Wraps a plain batched callable ``f(X: Tensor[K, D]) -> Tensor[K]``.

    If ``f`` is written in differentiable torch code, it doubles as its own surrogate
    (``f(x[None])[0]``), which is what ``"gradient"`` uses. With low-rank draws (an
    estimator's ``rank``) ``f`` receives :class:`zoopt.lowrank.LowRankMembers` instead of
    rows: pass them to :func:`zoopt.batched_forward`, or call ``X.materialize()`` for rows.
    """

    #: low-rank members are handed to ``f`` as they are (see zoopt.evaluators.base)
    accepts_members = True

    def __init__(
        self, fn: Callable[[Tensor], Tensor], dim: int | None = None, name: str | None = None
    ):
        if not callable(fn):
            raise TypeError(f"objective must be callable f(X[K, D]) -> Tensor[K], got {fn!r}")
        self.fn = fn
        self.dim = dim
        self.name = name or getattr(fn, "__name__", type(fn).__name__)

    def evaluate(self, X: Tensor, seed: int = 0) -> Tensor:
        try:
            with torch.no_grad():
                out = self.fn(X)
        except Exception as e:
            if hasattr(X, "materialize") and not isinstance(X, Tensor):
                e.add_note(
                    f"objective {self.name!r}: with rank=, f receives low-rank members, not "
                    "rows: run them through zoopt.batched_forward(model)(X, inputs), or use "
                    "X.materialize() for (K, D) rows"
                )
            else:
                e.add_note(f"objective {self.name!r}: {BATCHED_HINT}")
            raise
        try:
            return check_losses(out, len(X), self.name)
        except (TypeError, ValueError) as e:
            raise type(e)(f"{e}. {BATCHED_HINT}") from None

    def surrogate(self, x: Tensor, seed: int = 0) -> Tensor:
        out = self.fn(x.unsqueeze(0))
        if not isinstance(out, Tensor) or out.numel() != 1:
            raise TypeError(f"objective {self.name!r} must return a Tensor[K]; got {out!r}")
        return out.reshape(())

    def __repr__(self) -> str:
        return f"FunctionObjective({self.name})"


class ScalarObjective(Objective):
    """Wraps ``f(x) -> float`` on one parameter vector; the rows of a batch are evaluated in turn.

    Args:
        fn: ``f(x) -> float`` (a Python number, a 0-d or one-element array or tensor).
        numpy: hand ``f`` each row as a float64 numpy array ``(D,)`` (for ``x0`` given as a
            numpy array or a list) instead of a tensor ``(D,)``.
        dim: the expected D, or None.

    The Ray evaluator ships this object (and ``fn`` with it) to its workers, where each
    chunk of rows is evaluated one row at a time.
    """

    def __init__(
        self, fn: Callable[[Any], float], numpy: bool = False, dim: int | None = None
    ) -> None:
        if not callable(fn):
            raise TypeError(f"objective must be callable f(x[D]) -> float, got {fn!r}")
        self.fn = fn
        self.numpy = bool(numpy)
        self.dim = dim
        self.name = getattr(fn, "__name__", type(fn).__name__)

    def evaluate(self, X: Tensor, seed: int = 0) -> Tensor:
        rows = X.detach().to("cpu", torch.float64).numpy() if self.numpy else X
        out = torch.empty(len(X), dtype=torch.float64)
        with torch.no_grad():
            for i, x in enumerate(rows):
                try:
                    value = self.fn(x)
                except Exception as e:
                    e.add_note(f"objective {self.name!r} raised at row {i} of {len(X)}")
                    raise
                out[i] = _scalar_loss(value, self.name)
        return out

    def __repr__(self) -> str:
        return f"ScalarObjective({self.name})"


def _scalar_loss(value: Any, name: str) -> float:
    """One loss from ``f(x)``: a real number, 0-d or one-element array/tensor."""
    size = value.numel() if isinstance(value, Tensor) else getattr(value, "size", None)
    if isinstance(value, (Tensor, np.ndarray)) and size == 1:
        value = value.item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise TypeError(
            f"objective {name!r} (batched=False) must return one real number for a vector x "
            f"(D,); got {type(value).__name__}"
            + (f" of shape {tuple(value.shape)}" if hasattr(value, "shape") else "")
        )
    return float(value)


def seeded_generator(seed: int) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded from a step's ``seed`` (any int, taken mod 2⁶³)."""
    return torch.Generator().manual_seed(int(seed) & (2**63 - 1))


def check_losses(out: Any, k: int, name: str = "objective") -> Tensor:
    """Validate an objective's output: a float tensor of shape ``(k,)``."""
    if isinstance(out, np.ndarray):
        with contextlib.suppress(TypeError):  # dtypes torch lacks (object, str): error below
            out = torch.from_numpy(out)
    if not isinstance(out, Tensor):
        raise TypeError(
            f"{name} must return a Tensor of shape ({k},) with one loss per candidate; "
            f"got {type(out).__name__}"
        )
    if out.shape != (k,):
        raise ValueError(
            f"{name} must return a Tensor of shape ({k},) with one loss per candidate; "
            f"got shape {tuple(out.shape)}"
        )
    if not (out.is_floating_point()):
        if out.dtype == torch.bool or out.is_complex():
            raise TypeError(f"{name} must return real floating-point losses; got dtype {out.dtype}")
        out = out.to(torch.get_default_dtype())
    return out.detach()


def as_objective(
    objective: Any, dim: int | None = None, batched: bool = True, numpy: bool = False
) -> Objective:
    """Turn a plain callable into an :class:`Objective` (objectives pass through).

    ``batched=True``: ``f(X: Tensor[K, D]) -> Tensor[K]``; ``batched=False``: ``f(x) -> float``
    on one vector, a numpy array ``(D,)`` when ``numpy`` else a tensor ``(D,)``.
    """
    if not isinstance(batched, bool):
        raise TypeError(f"batched must be True or False, got {batched!r}")
    if isinstance(objective, Objective):
        if not batched:
            raise ValueError(
                "batched=False applies to plain functions f(x) -> float; "
                f"{type(objective).__name__} is already a zoopt Objective"
            )
        return objective
    if callable(objective):
        if not batched:
            return ScalarObjective(objective, numpy=numpy, dim=dim)
        return FunctionObjective(objective, dim=dim)
    raise TypeError(
        "objective must be a zoopt Objective or a batched callable f(X: Tensor[K, D]) -> "
        f"Tensor[K]; got {type(objective).__name__}"
    )


def __getattr__(name: str) -> Any:
    # BoxObjective lives in zoopt.objectives.box (it wraps objectives and factories alike);
    # the old import path keeps working
    if name == "BoxObjective":
        from zoopt.objectives.box import BoxObjective

        return BoxObjective
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
