"""What travels to the workers, and the worker actor that evaluates it.

Everything a step's tasks share (the shared state, the seed and, for a Gaussian population,
θ, σ and the noise seed) is packed once per step into a :class:`StepPayload`, pickled once;
the first call of a step to each worker carries it (or, when large, its object-store
reference), the objective's reference only when that worker has not built it yet, and every
call carries a few row ranges. Each worker unpacks a payload once and regenerates its own
slice of noise; an explicit population's rows travel with their call. Each range's randomness
derives from (step seed, first row) alone, so a range re-run on another worker gives the same
numbers.
"""

from __future__ import annotations

import os
import traceback
from dataclasses import dataclass
from typing import Any

import numpy as np
import ray
import ray.exceptions
import torch
from torch import Tensor

from zoopt.evaluators.base import candidates
from zoopt.evaluators.chunks import (
    RemoteObjectiveError,
    chunk_seed,
    partial_sums,
    seed_global_rngs,
)
from zoopt.evaluators.factory import ObjectiveFactory
from zoopt.evaluators.processes import ProcessEvaluator, WorkerObjectiveError
from zoopt.objectives.base import Objective, check_losses
from zoopt.population import GaussianPopulation

__all__ = [
    "INLINE_PAYLOAD_BYTES",
    "ObjectiveError",
    "StepPayload",
    "pack_payload",
    "remote_worker_class",
]


# Ray failures that mean "the process running the call went away": its ranges are re-run.
# A RayTaskError (an exception raised inside the call) is deliberately not among them.
WORKER_LOST = (
    ray.exceptions.RayActorError,
    ray.exceptions.WorkerCrashedError,
    ray.exceptions.NodeDiedError,
    ray.exceptions.ObjectLostError,
    ray.exceptions.OutOfMemoryError,
)


class ObjectiveError(RemoteObjectiveError):
    """The objective raised an exception on a Ray worker (see
    :class:`zoopt.evaluators.chunks.RemoteObjectiveError` for its attributes)."""

    where = "on a Ray worker"


#: a step's payload up to this many pickled bytes travels inside the first call to each
#: worker; a larger one is put into the object store once and its reference travels instead
#: (a nested reference costs the driver about as much as a second call per worker and step)
INLINE_PAYLOAD_BYTES = 64 * 1024


@dataclass(frozen=True)
class StepPayload:
    """What every task of a step shares; pickled once per step.

    ``objective`` is the token of the step's objective (None for a reduction alone): the
    objective itself travels once per worker, in the box of the first call that needs it.
    ``population`` is a Gaussian population whose rows the worker regenerates, or ``None``
    when rows travel with their task.
    """

    objective: int | None
    population: GaussianPopulation | None
    shared_state: Any
    seed: int


def pack_payload(payload: StepPayload) -> bytes | list:
    """The payload as it travels: its pickled bytes, or ``[reference]`` to them when larger
    than :data:`INLINE_PAYLOAD_BYTES` (nested, so the worker fetches them itself, once)."""
    blob = ray.cloudpickle.dumps(payload)
    return blob if len(blob) <= INLINE_PAYLOAD_BYTES else [ray.put(blob)]


def to_wire(t: Tensor) -> Any:
    """A CPU tensor as a NumPy array where NumPy has its dtype: Ray moves arrays out of band,
    several times cheaper to receive than a pickled tensor."""
    return t if t.dtype == torch.bfloat16 else t.numpy()


def from_wire(x: Any) -> Tensor:
    """The tensor sent by :func:`to_wire`."""
    return torch.from_numpy(np.array(x)) if isinstance(x, np.ndarray) else x


class EvaluationWorker:
    """A Ray actor holding one copy of the objective (one process, one BLAS thread), or,
    with ``processes`` > 1, a pool of that many local processes that evaluate its ranges
    (:class:`~zoopt.evaluators.processes.ProcessEvaluator`): one actor per machine then
    serves all its cores, and the driver makes one call per machine, not one per core."""

    def __init__(
        self, seed: int, device: str | None, processes: int = 1, startup_timeout: float = 300.0
    ):
        torch.set_num_threads(1)
        self.seed = seed
        self.device = torch.device(device) if device else None
        self.token: int | None = None
        self.objective: Objective | None = None
        self.payload: tuple[int, StepPayload] | None = None
        self.processes, self.startup_timeout = processes, startup_timeout
        self.pool: ProcessEvaluator | None = self._new_pool() if processes > 1 else None
        seed_global_rngs(seed)

    def _new_pool(self) -> ProcessEvaluator:
        # cloudpickle: the objective arrived through Ray's object store, which accepts
        # objectives defined interactively; the processes build it (the actor never does)
        pool = ProcessEvaluator(
            self.processes,
            seed=self.seed,
            dumps=ray.cloudpickle.dumps,
            startup_timeout=self.startup_timeout,
        )
        return pool.start()

    def pids(self) -> list[int]:
        """Process ids of the actor's local processes (empty without ``processes``)."""
        return [] if self.pool is None else self.pool.pids

    def ready(self) -> int:
        """The worker's process id: it is placed and running."""
        return os.getpid()

    def placement(self) -> tuple[int, str]:
        """``(process id, Ray node id)``."""
        return os.getpid(), ray.get_runtime_context().get_node_id()

    def _load(self, box: tuple | None) -> StepPayload:
        # the first call of a step on this worker carries ``box = (step, packed payload,
        # objective)``, objective being ``(token, [ref])`` if this worker lacks it, else
        # None; the next calls carry None (calls of one caller run in submission order)
        if box is not None:
            step, packed, objective_box = box
            if self.payload is None or self.payload[0] != step:
                blob = packed if isinstance(packed, bytes) else ray.get(packed[0])
                self.payload = (step, ray.cloudpickle.loads(blob))
            if objective_box is not None and objective_box[0] != self.token:
                token, (objective_ref,) = objective_box
                objective = ray.get(objective_ref)
                # every worker builds its copy from the same RNG state, so factories that
                # draw random data or initial weights build identical objectives everywhere
                seed_global_rngs(self.seed)
                if isinstance(objective, ObjectiveFactory) and self.pool is None:
                    objective.build()
                self.objective, self.token = objective, token
        if self.payload is None:
            raise RuntimeError("a task arrived before its step's payload")
        payload = self.payload[1]
        if payload.objective is not None and payload.objective != self.token:
            raise RuntimeError("a task arrived before its step's objective")
        return payload

    def evaluate(self, task: tuple) -> tuple:
        """Losses of ``task = (box, ranges, rows)``: for each ``(start, stop)`` of ``ranges``
        in turn, the rows ``start:stop`` (regenerated, or ``rows``' tensor for that range).

        Returns ``("ok", [(start, losses, stats), ...])`` or the error tuple of the range
        that raised. One argument: Ray's per-call cost grows with the number of arguments.
        """
        box, ranges, rows = task
        start = stop = 0
        try:
            payload = self._load(box)
            if self.pool is not None:
                return self._evaluate_on_pool(payload, ranges, rows)
            if payload.shared_state is not None:
                self.objective.load_shared_state(payload.shared_state)
            name = getattr(self.objective, "name", type(self.objective).__name__)
            out = []
            for i, (start, stop) in enumerate(ranges):
                # regenerated here: rows, or a low-rank population's members
                X = (
                    candidates(self.objective, payload.population, start, stop)
                    if rows is None
                    else rows[i]
                )
                if self.device is not None:
                    X = X.to(self.device)
                # the range's randomness depends on (step seed, rows) only, not on which
                # worker runs it, what it ran before or which call carried it: a re-run
                # range gives the same numbers
                seed_global_rngs(chunk_seed(payload.seed, start))
                losses = check_losses(self.objective.evaluate(X, payload.seed), len(X), name)
                out.append((start, to_wire(losses.to("cpu")), self.objective.pop_stats()))
            return ("ok", out)
        except Exception as exc:  # surfaced on the driver as ObjectiveError, not retried
            return ("error", start, stop, type(exc).__name__, str(exc), traceback.format_exc())

    def _on_pool(self, ranges: list, work: Any) -> tuple:
        """``work(pool)`` on the actor's processes, one task per range; its per-range
        results as ``("ok", [(start, *result), ...])``, or the error tuple of the range
        that raised (or of the call, for a range that lost its process too often)."""
        if self.pool.closed:  # a step interrupted on this actor stopped it
            self.pool = self._new_pool()
        try:
            out = work(self.pool)
        except WorkerObjectiveError as exc:
            start, stop = exc.rows
            return ("error", start, stop, exc.error_type, exc.message, exc.worker_traceback)
        except RuntimeError as exc:  # a range lost its process more than max_retries times
            first, last = ranges[0][0], ranges[-1][1]
            return ("error", first, last, type(exc).__name__, str(exc), traceback.format_exc())
        # losses (or first sums) as arrays, then the range's statistics (or second sums)
        return ("ok", [(a, to_wire(r[0]), r[1]) for (a, _), r in zip(ranges, out, strict=True)])

    def _evaluate_on_pool(self, payload: StepPayload, ranges: list, rows: list | None) -> tuple:
        """Losses and statistics of one call's ranges on the actor's processes (each range
        seeded from the step seed and its first row, as on a single-process worker)."""
        return self._on_pool(
            ranges,
            lambda pool: pool.evaluate_ranges(
                self.objective,
                payload.population,
                payload.seed,
                list(ranges),
                shared_state=payload.shared_state,
                rows=rows,
            ),
        )

    def _reduce_on_pool(
        self, payload: StepPayload, ranges: list, coeffs: list, square: bool
    ) -> tuple:
        """The partial sums of one call's ranges on the actor's processes."""

        def work(pool: ProcessEvaluator) -> list:
            parts = pool.reduce_ranges(payload.population, list(ranges), coeffs, square)
            return [(first, None if second is None else to_wire(second)) for first, second in parts]

        return self._on_pool(ranges, work)

    def relay(self, task: tuple) -> tuple:
        """Pass on each child's part of a step, then evaluate this worker's own.

        ``task = (box, ranges, children)`` with ``children`` a list of ``(actor, box,
        ranges)``. Each child's :meth:`evaluate` call is submitted first (from here, not from
        the driver), then this worker's ``ranges`` are evaluated, then the children's results
        collected. Returns ``("ok", items, lost)``: every range's ``(start, losses, stats)``
        and the indices of the children that died (the driver re-runs their ranges), or the
        error tuple of a range that raised, here or on a child.
        """
        box, ranges, children = task
        refs = [actor.evaluate.remote((b, r, None)) for actor, b, r in children]
        own = self.evaluate((box, ranges, None))
        if own[0] != "ok":
            return own
        items, lost = list(own[1]), []
        if refs:  # block once for all children (each blocking get would notify the raylet)
            ray.wait(refs, num_returns=len(refs))
        for i, ref in enumerate(refs):
            try:
                out = ray.get(ref)
            except WORKER_LOST:
                lost.append(i)
                continue
            except ray.exceptions.RayTaskError as exc:  # failed outside the child's guard
                rows = children[i][2]
                cause = exc.cause
                return (
                    "error",
                    rows[0][0],
                    rows[-1][1],
                    type(cause).__name__,
                    str(cause),
                    str(exc),
                )
            if out[0] != "ok":
                return out
            items += out[1]
        return ("ok", items, lost)

    def reduce(self, task: tuple) -> tuple:
        """Partial sums for ``task = (box, ranges, coeffs, square)``, ``coeffs`` one array per
        range: ``("ok", [(start, first, second), ...])`` or an error tuple."""
        box, ranges, coeffs, square = task
        start = stop = 0
        try:
            payload = self._load(box)
            if self.pool is not None:
                return self._reduce_on_pool(payload, ranges, coeffs, square)
            out = []
            for (start, stop), c in zip(ranges, coeffs, strict=True):
                first, second = partial_sums(payload.population, start, stop, from_wire(c), square)
                out.append((start, to_wire(first), None if second is None else to_wire(second)))
            return ("ok", out)
        except Exception as exc:
            return ("error", start, stop, type(exc).__name__, str(exc), traceback.format_exc())


_REMOTE_WORKER: Any = None


def remote_worker_class() -> Any:
    """The Ray actor class, made once per process (Ray exports each new class)."""
    global _REMOTE_WORKER
    if _REMOTE_WORKER is None:
        _REMOTE_WORKER = ray.remote(EvaluationWorker)
    return _REMOTE_WORKER
