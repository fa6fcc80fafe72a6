"""Row chunks of a population evaluated in another process: bounds, seeds, what travels.

A remote evaluator sends θ, σ and the noise seed once per step and then row ranges; the
worker regenerates its own rows (:class:`zoopt.population.GaussianPopulation`). Each
chunk's global randomness derives from (step seed, first row) alone, so a chunk re-run in
another process after a fault gives the same numbers (Moritz et al. 2018, "Ray: A
Distributed Framework for Emerging AI Applications", on lineage re-execution).
"""

from __future__ import annotations

import copy
import functools
import math
import random

import numpy as np
import torch
from torch import Tensor

from zoopt.evaluators.base import candidate_rows
from zoopt.population import CenteredPopulation, GaussianPopulation, Population

__all__ = [
    "RemoteObjectiveError",
    "chunk_bounds",
    "chunk_seed",
    "partial_sums",
    "seed_global_rngs",
    "shippable",
]

_MASK63 = 2**63 - 1


class RemoteObjectiveError(RuntimeError):
    """The objective raised an exception in another process (not retried).

    Attributes:
        rows: ``(start, stop)``, the candidate rows being evaluated (``stop`` excluded).
        error_type: the class name of the original exception.
        message: the original exception's message.
        worker_traceback: the traceback text from the worker.
    """

    #: where the rows were evaluated, for the message
    where = "in another process"

    def __init__(self, rows: tuple[int, int], error_type: str, message: str, worker_traceback: str):
        self.rows, self.error_type = rows, error_type
        self.message, self.worker_traceback = message, worker_traceback
        super().__init__(
            f"the objective raised {error_type} while evaluating {candidate_rows(*rows)} "
            f"{self.where}: {message}\n\nWorker traceback:\n{worker_traceback}"
        )

    def __reduce__(self):
        return (type(self), (self.rows, self.error_type, self.message, self.worker_traceback))


def chunk_bounds(k: int, pieces: int, max_batch: int | None = None) -> list[tuple[int, int]]:
    """About ``pieces`` equal row ranges ``[(start, stop), …]`` covering ``0:k`` in order,
    none larger than ``max_batch`` rows."""
    if max_batch is not None:
        pieces = max(pieces, math.ceil(k / max_batch))
    pieces = max(1, min(k, pieces))
    cuts = [round(i * k / pieces) for i in range(pieces + 1)]
    return [(a, b) for a, b in zip(cuts[:-1], cuts[1:], strict=True) if b > a]


def chunk_seed(seed: int, start: int) -> int:
    """The seed of the global RNGs while evaluating rows from ``start`` in a step."""
    ss = np.random.SeedSequence([int(seed) & _MASK63, int(start), 0x2A7])
    return int(ss.generate_state(1, np.uint64)[0] & np.uint64(_MASK63))


@functools.cache
def _accelerators() -> bool:
    """Whether this process has a device besides the CPU that ``torch.manual_seed`` seeds
    (CUDA, MPS, XPU, MTIA or a custom backend)."""
    return (
        torch.cuda.is_available()
        or torch.backends.mps.is_available()
        or torch.xpu.is_available()
        or torch.mtia.is_available()
        or torch._C._get_privateuse1_backend_name() != "privateuseone"
    )


def seed_global_rngs(seed: int) -> None:
    """Seed torch, NumPy and ``random`` from one 63-bit seed.

    Without an accelerator only the CPU generator is seeded: ``torch.manual_seed`` would also
    queue seeds for devices that cannot be initialised here, at about 90 µs a call (a stack
    trace kept per device) against 1 µs, and a worker seeds once per chunk.
    """
    seed = int(seed) & _MASK63
    if _accelerators():
        torch.manual_seed(seed)
    else:
        torch.default_generator.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def shippable(population: Population) -> Population | None:
    """What a worker needs to rebuild ``population``'s rows itself: a Gaussian population
    (or one followed by its centre) without the driver's noise cache or reducer hook, its
    tensors on the CPU; None when the rows must travel (an explicit population)."""
    if isinstance(population, CenteredPopulation):
        inner = shippable(population.population)
        if inner is None:
            return None
        return CenteredPopulation(inner, population.center.detach().to("cpu"))
    if not isinstance(population, GaussianPopulation):
        return None
    shipped = copy.copy(population)
    for name, value in vars(shipped).items():
        if isinstance(value, Tensor):
            setattr(shipped, name, value.detach().to("cpu"))
    shipped.reducer = None
    shipped._cache = None
    return shipped


def partial_sums(
    population: GaussianPopulation, start: int, stop: int, coeffs: Tensor, square: bool
) -> tuple[Tensor, Tensor | None]:
    """The part of ``population.reduce(coeffs, square)`` from rows ``start:stop`` (float64).

    ``coeffs`` holds the rows' ``(stop - start,)`` coefficients. Returns Σ cᵢ zᵢ ``(D,)`` and,
    with ``square``, Σ cᵢ (zᵢ² − 1) ``(D,)`` or, for a full factor, Σ cᵢ (zᵢzᵢᵀ − I)
    ``(D, D)``: :meth:`GaussianPopulation.partial_reduce`, which folds antithetic pairs and
    works one noise block at a time. Accumulated in float64, so that adding the parts in row
    order on the driver loses nothing measurable against one float32 sum over all K rows.
    """
    population = getattr(population, "population", population)  # a centred one: its rows 0:K
    return population.partial_reduce(coeffs, start, stop, square)
