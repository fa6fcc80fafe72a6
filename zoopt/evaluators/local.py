"""In-process evaluation: one batched call per population (or per ``max_batch`` chunk)."""

from __future__ import annotations

import torch
from torch import Tensor

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
        if max_batch is not None and (not isinstance(max_batch, int) or max_batch < 1):
            raise ValueError(f"max_batch must be a positive int or None, got {max_batch!r}")
        if device is not None and str(device).startswith("cuda") and not torch.cuda.is_available():
            import warnings

            warnings.warn(
                "device='cuda' requested but CUDA is not available; using the CPU", stacklevel=2
            )
            device = "cpu"
        self.device = torch.device(device) if device is not None else None
        self.max_batch = max_batch

    def evaluate(self, objective: Objective, population: Population, seed: int) -> Tensor:
        k = len(population)
        step = self.max_batch or k
        out = []
        for start in range(0, k, step):  # chunks, one batched call each
            X = population.rows(start, min(k, start + step))
            if self.device is not None:
                X = X.to(self.device)
            out.append(
                check_losses(
                    objective.evaluate(X, seed),
                    len(X),
                    getattr(objective, "name", type(objective).__name__),
                )
            )
        losses = out[0] if len(out) == 1 else torch.cat(out)
        return losses.to("cpu")

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
