"""What travels to the workers, and the worker actor that evaluates it.

Everything a step's tasks share (the objective's reference, the shared state, the seed and,
for a Gaussian population, θ, σ and the noise seed) is packed once per step into a
:class:`StepPayload` and put into the object store; a task carries that reference and a row
range. Each worker fetches a payload once and regenerates its own slice of noise; an explicit
population's rows travel with their task. Each chunk's randomness derives from (step seed,
first row) alone, so a chunk re-run on another worker gives the same numbers.
"""

from __future__ import annotations

import os
import random
import traceback
from dataclasses import dataclass
from typing import Any

import numpy as np
import ray
import torch
from torch import Tensor

from zoopt.evaluators.base import candidate_rows, candidates
from zoopt.evaluators.factory import ObjectiveFactory
from zoopt.objectives.base import Objective, check_losses
from zoopt.population import GaussianPopulation

__all__ = ["ObjectiveError", "StepPayload", "remote_worker_class"]

_MASK63 = 2**63 - 1


class ObjectiveError(RuntimeError):
    """The objective raised an exception on a worker.

    Attributes:
        rows: ``(start, stop)``, the candidate rows being evaluated (``stop`` excluded).
        error_type: the class name of the original exception.
        message: the original exception's message.
        worker_traceback: the traceback text from the worker.
    """

    def __init__(self, rows: tuple[int, int], error_type: str, message: str, worker_traceback: str):
        self.rows = rows
        self.error_type = error_type
        self.message = message
        self.worker_traceback = worker_traceback
        super().__init__(
            f"the objective raised {error_type} while evaluating {candidate_rows(*rows)} "
            f"on a Ray worker: {message}\n\nWorker traceback:\n{worker_traceback}"
        )

    def __reduce__(self):
        return (type(self), (self.rows, self.error_type, self.message, self.worker_traceback))


@dataclass(frozen=True)
class StepPayload:
    """What every task of a step shares; put into the object store once per step.

    ``objective`` is ``[token, ref]``, nested so that each worker fetches (and builds) the
    objective once, not once per task. ``population`` is a Gaussian population whose rows
    the worker regenerates, or ``None`` when rows travel with their task.
    """

    objective: list
    population: GaussianPopulation | None
    shared_state: Any
    seed: int


def to_wire(t: Tensor) -> Any:
    """A CPU tensor as a NumPy array where NumPy has its dtype: Ray moves arrays out of band,
    several times cheaper to receive than a pickled tensor."""
    return t if t.dtype == torch.bfloat16 else t.numpy()


def from_wire(x: Any) -> Tensor:
    """The tensor sent by :func:`to_wire`."""
    return torch.from_numpy(np.array(x)) if isinstance(x, np.ndarray) else x


def chunk_seed(seed: int, start: int) -> int:
    """The seed of the global RNGs while evaluating rows from ``start`` in a step."""
    ss = np.random.SeedSequence([int(seed) & _MASK63, int(start), 0x2A7])
    return int(ss.generate_state(1, np.uint64)[0] & np.uint64(_MASK63))


def seed_global_rngs(seed: int) -> None:
    """Seed torch, NumPy and ``random`` from one 63-bit seed."""
    seed = int(seed) & _MASK63
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def partial_sums(
    population: GaussianPopulation, start: int, stop: int, coeffs: Tensor, square: bool
) -> tuple[Tensor, Tensor | None]:
    """The part of ``population.reduce(coeffs, square)`` from rows ``start:stop`` (float64).

    ``coeffs`` holds the rows' ``(stop - start,)`` coefficients. Returns Σ cᵢ zᵢ ``(D,)`` and,
    with ``square``, Σ cᵢ (zᵢ² − 1) ``(D,)`` or, for a full factor, Σ cᵢ (zᵢzᵢᵀ − I)
    ``(D, D)``. Accumulated in float64, so that adding the parts in row order on the driver
    loses nothing measurable against one float32 sum over all K rows.
    """
    population = getattr(population, "population", population)  # a centred one: its rows 0:K
    z = population.perturbations(start, stop).to(torch.float64)
    c = coeffs.to(torch.float64)
    first = c @ z
    if not square:
        return first, None
    total = c.sum()
    scale = population.scale
    if scale is not None and scale.ndim == 2:
        return first, (z.T * c) @ z - total * torch.eye(z.shape[1], dtype=torch.float64)
    return first, c @ (z * z) - total


class EvaluationWorker:
    """A Ray actor holding one copy of the objective (one process, one BLAS thread)."""

    def __init__(self, seed: int, device: str | None):
        torch.set_num_threads(1)
        self.seed = seed
        self.device = torch.device(device) if device else None
        self.token: int | None = None
        self.objective: Objective | None = None
        self.payload: tuple[str, StepPayload] | None = None
        seed_global_rngs(seed)

    def ready(self) -> int:
        """The worker's process id: it is placed and running."""
        return os.getpid()

    def placement(self) -> tuple[int, str]:
        """``(process id, Ray node id)``."""
        return os.getpid(), ray.get_runtime_context().get_node_id()

    def _load(self, box: list | None) -> StepPayload:
        # the first task of a step on this worker carries the payload's reference; the
        # next ones carry None (tasks of one caller run in submission order)
        if box is not None and (self.payload is None or self.payload[0] != box[0].hex()):
            self.payload = (box[0].hex(), ray.get(box[0]))
        if self.payload is None:
            raise RuntimeError("a task arrived before its step's payload")
        payload = self.payload[1]
        token, objective_ref = payload.objective
        if objective_ref is not None and token != self.token:  # None: a reduction alone
            objective = ray.get(objective_ref)
            # every worker builds its copy from the same RNG state, so factories that draw
            # random data or initial weights build identical objectives everywhere
            seed_global_rngs(self.seed)
            if isinstance(objective, ObjectiveFactory):
                objective.build()
            self.objective, self.token = objective, token
        return payload

    def evaluate(self, task: tuple) -> tuple:
        """Losses of ``task = (box, start, stop, rows)``'s rows ``start:stop``:
        ``("ok", start, losses, stats)`` or an error tuple. One argument: Ray's per-call cost
        grows with the number of arguments."""
        box, start, stop, rows = task
        try:
            payload = self._load(box)
            if payload.shared_state is not None:
                self.objective.load_shared_state(payload.shared_state)
            if rows is None:  # regenerated here: rows, or a low-rank population's members
                X = candidates(self.objective, payload.population, start, stop)
            else:
                X = rows
            if self.device is not None:
                X = X.to(self.device)
            # the chunk's randomness depends on (step seed, rows) only, not on which worker
            # runs it or what it ran before: a re-run chunk gives the same numbers
            seed_global_rngs(chunk_seed(payload.seed, start))
            name = getattr(self.objective, "name", type(self.objective).__name__)
            losses = check_losses(self.objective.evaluate(X, payload.seed), len(X), name)
            return ("ok", start, to_wire(losses.to("cpu")), self.objective.pop_stats())
        except Exception as exc:  # surfaced on the driver as ObjectiveError, not retried
            return ("error", start, stop, type(exc).__name__, str(exc), traceback.format_exc())

    def reduce(self, task: tuple) -> tuple:
        """Partial sums for ``task = (box, start, stop, coeffs, square)``:
        ``("ok", start, first, second)`` or an error tuple."""
        box, start, stop, coeffs, square = task
        try:
            payload = self._load(box)
            c = from_wire(coeffs)
            first, second = partial_sums(payload.population, start, stop, c, square)
            return ("ok", start, to_wire(first), None if second is None else to_wire(second))
        except Exception as exc:
            return ("error", start, stop, type(exc).__name__, str(exc), traceback.format_exc())


_REMOTE_WORKER: Any = None


def remote_worker_class() -> Any:
    """The Ray actor class, made once per process (Ray exports each new class)."""
    global _REMOTE_WORKER
    if _REMOTE_WORKER is None:
        _REMOTE_WORKER = ray.remote(EvaluationWorker)
    return _REMOTE_WORKER
