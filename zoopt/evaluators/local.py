"""In-process evaluation: one batched call per population (or per ``max_batch`` chunk)."""

from __future__ import annotations

import torch
from torch import Tensor

from zoopt.evaluators.base import candidate_rows, candidates, check_max_batch
from zoopt.objectives.base import Objective, check_losses
from zoopt.population import Population

__all__ = ["LocalEvaluator"]


class LocalEvaluator:
    """Evaluates the population in this process.

    Args:
        device: where candidates are materialised and evaluated (``"cpu"``, ``"cuda"``);
            ``None`` keeps the population's device. ``"cuda"`` falls back to the CPU with a
            warning when no GPU is present.
        max_batch: evaluate at most this many candidates per objective call (memory bound).
    """

    def __init__(self, device: str | torch.device | None = None, max_batch: int | None = None):
        check_max_batch(max_batch)
        if device is not None and str(device).startswith("cuda") and not torch.cuda.is_available():
            import warnings

            warnings.warn(
                "device='cuda' requested but CUDA is not available; using the CPU", stacklevel=2
            )
            device = "cpu"
        self.device = torch.device(device) if device is not None else None
        self.max_batch = max_batch

    def evaluate(self, objective: Objective, population: Population, seed: int) -> Tensor:
        """Losses ``(K,)`` of ``population`` under ``objective`` with the step's ``seed``.

        An exception raised by the objective propagates unchanged, with a note naming the
        candidate rows it was evaluating.
        """
        k = len(population)
        if k == 0:
            raise ValueError("population must hold at least one candidate, got 0 rows")
        step = self.max_batch or k
        out = []
        for start in range(0, k, step):  # chunks, one batched call each
            stop = min(k, start + step)
            X = candidates(objective, population, start, stop)
            if self.device is not None:
                X = X.to(self.device)
            try:
                losses = objective.evaluate(X, seed)
            except Exception as e:
                e.add_note(f"raised while evaluating {candidate_rows(start, stop)}")
                raise
            name = getattr(objective, "name", type(objective).__name__)
            out.append(check_losses(losses, len(X), name))
        losses = out[0] if len(out) == 1 else torch.cat(out)
        return losses.to("cpu")

    def close(self) -> None:
        """Nothing to release."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
