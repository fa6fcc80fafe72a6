"""Objectives built where they are evaluated.

An objective that owns heavy or unpicklable state (a Gymnasium environment, a dataset, a
model on a GPU) should not be pickled and shipped to every worker. :class:`ObjectiveFactory`
is a picklable recipe ``fn(*args, **kwargs) -> Objective`` that is itself an
:class:`~zoopt.objectives.base.Objective`: it builds the real objective on first use, in
whichever process uses it (each Ray worker, and the driver when the driver needs it), and
pickles as the recipe alone. It works unchanged with the local evaluator.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from zoopt.objectives.base import Objective, OutputSamples, as_objective

__all__ = ["ObjectiveFactory"]


class ObjectiveFactory(Objective):
    """A picklable recipe ``fn(*args, **kwargs)`` for an objective, built lazily.

    Args:
        fn: a picklable callable (a class, a module-level function) returning an
            :class:`~zoopt.objectives.base.Objective` or a batched callable
            ``f(X: Tensor[K, D]) -> Tensor[K]``.
        *args, **kwargs: its arguments; they must be picklable.

    Every process builds its own copy the first time it needs one. The copy is never
    pickled: pickling the factory sends ``(fn, args, kwargs)`` only, so environments,
    datasets and models are created on the worker that evaluates them.

    Example::

        objective = ObjectiveFactory(CartPoleReturn, episodes=8)
        zoopt.minimize(objective, torch.zeros(4), estimator="es", evaluator="ray")
    """

    def __init__(self, fn: Callable[..., Any], *args: Any, **kwargs: Any):
        if not callable(fn):
            raise TypeError(
                f"ObjectiveFactory: fn must be a callable returning an Objective or a batched "
                f"callable f(X[K, D]) -> Tensor[K], got {type(fn).__name__}"
            )
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self._built: Objective | None = None

    # -- the built objective --------------------------------------------------------------
    def build(self) -> Objective:
        """The objective of this process, built on the first call."""
        if self._built is None:
            built = self.fn(*self.args, **self.kwargs)
            if isinstance(built, ObjectiveFactory):
                built = built.build()
            self._built = as_objective(built)
        return self._built

    @property
    def is_built(self) -> bool:
        """Whether this process has built its objective."""
        return self._built is not None

    def __getstate__(self) -> dict:
        # the recipe travels, the built objective (environments, data) stays where it is
        return {"fn": self.fn, "args": self.args, "kwargs": self.kwargs}

    def __setstate__(self, state: dict) -> None:
        self.fn, self.args, self.kwargs = state["fn"], state["args"], state["kwargs"]
        self._built = None

    def __getattr__(self, name: str) -> Any:
        # anything else the built objective offers (initial_parameters, counters, ...);
        # private names are never delegated, so pickling and copying see the recipe only
        if name.startswith("_") or name in ("fn", "args", "kwargs"):
            raise AttributeError(name)
        return getattr(self.build(), name)

    def close(self) -> None:
        """Close the built objective (environments, files) if it was built and can close."""
        close = getattr(self._built, "close", None)
        if callable(close):
            close()

    def __repr__(self) -> str:
        name = getattr(self.fn, "__qualname__", type(self.fn).__name__)
        parts = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs.items()]
        return f"ObjectiveFactory({name}{', ' if parts else ''}{', '.join(parts)})"

    # -- the Objective interface, delegated -----------------------------------------------
    @property
    def dim(self) -> int | None:  # type: ignore[override]
        """The built objective's parameter count D (``None``: any D)."""
        return getattr(self.build(), "dim", None)

    @property
    def name(self) -> str:
        """The built objective's name."""
        built = self.build()
        return getattr(built, "name", type(built).__name__)

    @property
    def metric_name(self) -> str:  # type: ignore[override]
        """The built objective's metric name."""
        return self.build().metric_name

    @property
    def metric_sign(self) -> float:  # type: ignore[override]
        """The built objective's metric sign."""
        return self.build().metric_sign

    def evaluate(self, X: Tensor, seed: int = 0) -> Tensor:
        """Losses ``(K,)`` of ``X`` ``(K, D)`` under the built objective."""
        return self.build().evaluate(X, seed)

    @property
    def has_surrogate(self) -> bool:
        """Whether the built objective offers a differentiable surrogate."""
        return self.build().has_surrogate

    def surrogate(self, x: Tensor, seed: int = 0) -> Tensor:
        """The built objective's differentiable surrogate at ``x`` ``(D,)``."""
        return self.build().surrogate(x, seed)

    @property
    def can_sample_outputs(self) -> bool:
        """Whether the built objective implements the output-sampling protocol."""
        return self.build().can_sample_outputs

    def sample_outputs(
        self, x: Tensor, num_samples: int, generator: torch.Generator, seed: int = 0
    ) -> OutputSamples:
        """The built objective's output samples at ``x`` ``(D,)``."""
        return self.build().sample_outputs(x, num_samples, generator, seed)

    @property
    def has_behaviour(self) -> bool:
        """Whether the built objective returns behaviours (novelty search)."""
        return self.build().has_behaviour

    def evaluate_with_behaviour(self, X: Tensor, seed: int = 0) -> tuple[Tensor, Tensor]:
        """Losses ``(K,)`` and behaviours ``(K, B)`` under the built objective."""
        return self.build().evaluate_with_behaviour(X, seed)

    def metric(self, loss: float) -> float:
        """The reported metric for a loss value."""
        return self.build().metric(loss)

    def pop_stats(self) -> Any:
        """Statistics gathered by the built objective since the last call."""
        return self.build().pop_stats() if self.is_built else None

    def absorb_stats(self, stats: Any) -> None:
        """Merge statistics from an evaluation copy into the built objective."""
        self.build().absorb_stats(stats)

    def shared_state(self) -> Any:
        """State evaluation copies must share this step."""
        return self.build().shared_state()

    def load_shared_state(self, state: Any) -> None:
        """Install :meth:`shared_state` into the built objective."""
        self.build().load_shared_state(state)

    def state_dict(self) -> dict:
        """The built objective's checkpointable state."""
        return self.build().state_dict()

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict` into the built objective."""
        self.build().load_state_dict(state)
