"""Every core of one machine without Ray: populations evaluated by worker processes.

The design is the Ray evaluator's (seeds on the wire, Salimans et al. 2017, "Evolution
Strategies as a Scalable Alternative to Reinforcement Learning"): per step each worker that
gets work receives θ, σ and the noise seed once (a few hundred bytes plus D floats), then
row ranges; it regenerates its rows, evaluates them and sends back their losses and the
objective's statistics (normaliser increments), which the driver merges in row order. An
explicit population's rows travel with their task.

Chunks are handed out from a queue to whichever worker is free, so a slow chunk does not
hold the others back. A worker that dies (killed, out of memory) is replaced and its chunk
re-run on another worker with the same seeds (:mod:`zoopt.evaluators.chunks`), so the
result equals the undisturbed run. An exception raised by the objective is not retried: it
surfaces as :class:`WorkerObjectiveError` naming the rows. Workers ignore SIGINT: on Ctrl-C
(or any error inside :meth:`ProcessEvaluator.evaluate` other than the objective's) the
driver stops them all; they also exit when the driver's end of their pipe closes, so no
process outlives the run.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import pickle
import selectors
import signal
import time
import traceback
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import numpy as np
import torch
from torch import Tensor

from zoopt.evaluators.base import candidate_rows, candidates, check_max_batch
from zoopt.evaluators.chunks import (
    RemoteObjectiveError,
    chunk_bounds,
    chunk_seed,
    partial_sums,
    seed_global_rngs,
    shippable,
)
from zoopt.evaluators.factory import ObjectiveFactory
from zoopt.objectives.base import Objective, check_losses
from zoopt.population import Population

__all__ = ["ProcessEvaluator", "WorkerObjectiveError"]

#: seconds a worker may take to stop before it is terminated, then killed
_STOP_GRACE_S = 5.0


class WorkerObjectiveError(RemoteObjectiveError):
    """The objective raised an exception in a worker process (see
    :class:`zoopt.evaluators.chunks.RemoteObjectiveError` for its attributes)."""

    where = "in a worker process"


# -- the worker process ----------------------------------------------------------------------
def _worker_main(conn: Connection, seed: int) -> None:
    """A worker's loop: messages ``("objective", blob)``, ``("task", start, stop, rows,
    step)``, ``("reduce", start, stop, coeffs, square, step)`` and ``("stop",)``; ``step``,
    the pickled ``(population, shared_state, seed)``, comes with a worker's first task of a
    step, else None."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver decides when to stop
    torch.set_num_threads(1)
    seed_global_rngs(seed)
    objective: Any = None
    population: Any = None
    step_seed = 0
    failure: tuple | None = None  # an objective that failed to load
    step_failure: tuple | None = None  # the current step's payload that failed to load
    conn.send(("ready", os.getpid()))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):  # the driver is gone
            return
        kind = message[0]
        if kind == "stop":
            return
        try:
            if kind == "objective":
                failure = None
                objective = pickle.loads(message[1])
                # every worker builds its copy from the same RNG state
                seed_global_rngs(seed)
                if isinstance(objective, ObjectiveFactory):
                    objective.build()
                continue
        except Exception as exc:  # reported with the next task's rows
            failure = (type(exc).__name__, str(exc), traceback.format_exc())
            continue
        start, stop, step = message[1], message[2], message[-1]
        if step is not None:  # the first task of a step carries the step's payload
            step_failure = None
            try:
                population, shared, step_seed = pickle.loads(step)
                if shared is not None and failure is None:
                    objective.load_shared_state(shared)
            except Exception as exc:  # reported for every range of this step, then cleared
                population = None
                step_failure = (type(exc).__name__, str(exc), traceback.format_exc())
        if kind == "reduce":  # partial sums of the step's population: no objective needed
            if step_failure is not None:
                conn.send(("error", start, stop, *step_failure))
                continue
            try:
                coeffs, square = message[3], message[4]
                first, second = partial_sums(population, start, stop, _from_wire(coeffs), square)
                conn.send(("ok", start, first.numpy(), None if second is None else second.numpy()))
            except Exception as exc:
                conn.send(
                    ("error", start, stop, type(exc).__name__, str(exc), traceback.format_exc())
                )
            continue
        rows = message[3]
        try:
            if failure is not None or step_failure is not None:
                conn.send(("error", start, stop, *(failure or step_failure)))
                continue
            # regenerated here: rows, or a low-rank population's members
            X = candidates(objective, population, start, stop) if rows is None else _from_wire(rows)
            seed_global_rngs(chunk_seed(step_seed, start))
            name = getattr(objective, "name", type(objective).__name__)
            losses = check_losses(objective.evaluate(X, step_seed), len(X), name).to("cpu")
            out = losses if losses.dtype == torch.bfloat16 else losses.numpy()
            conn.send(("ok", start, out, objective.pop_stats()))
        except Exception as exc:
            conn.send(("error", start, stop, type(exc).__name__, str(exc), traceback.format_exc()))


# -- the driver ------------------------------------------------------------------------------
@dataclass(eq=False)
class _Worker:
    process: Any
    conn: Connection
    ready: bool = False
    token: int = 0  # the objective version it holds
    step: int = -1  # the step whose payload it holds
    task: int | None = None  # the index of the chunk it is evaluating


def _stop_workers(workers: list[_Worker]) -> None:
    """Ask, then terminate, then kill; join every worker (no process left behind)."""
    for w in workers:
        with contextlib.suppress(OSError, ValueError):
            w.conn.send(("stop",))
    deadline = time.monotonic() + _STOP_GRACE_S
    for w in workers:
        w.process.join(max(0.0, deadline - time.monotonic()))
    for w in workers:
        if w.process.is_alive():
            w.process.terminate()
            w.process.join(1.0)
        if w.process.is_alive():
            w.process.kill()
            w.process.join()
        with contextlib.suppress(OSError):
            w.conn.close()


class ProcessEvaluator:
    """Evaluates populations on worker processes of this machine (no Ray needed).

    Args:
        num_workers: worker processes (default: the CPUs this process may use).
        chunks_per_worker: pieces per worker per population (1: the least overhead; more
            balance uneven chunks, e.g. episodes of mixed lengths).
        max_batch: at most this many candidates per chunk (a memory bound).
        max_retries: how many times a chunk whose worker died is re-run before giving up.
        seed: seed of the workers' global RNGs while they build their objective (the same
            in every worker, so copies are identical); during evaluation each chunk is
            seeded from (step seed, first row).
        start_method: ``"spawn"`` (default: safe with threads in the driver) or
            ``"forkserver"``. Objectives defined in a script need the script's
            ``if __name__ == "__main__":`` guard, as for any ``multiprocessing`` use.
        startup_timeout: seconds the workers may take to start.
        dumps: how the objective is pickled for the workers (default ``pickle.dumps``;
            e.g. ``cloudpickle.dumps`` for objectives defined interactively). Python only.

    Per step the driver pickles the objective once (when it changed) and the step's payload
    (θ, σ, noise seed, the objective's shared state) once; each busy worker gets one small
    message per chunk, its first of the step carrying the payload's bytes; losses come back
    as arrays.

    Example::

        with ProcessEvaluator() as ev:
            result = zoopt.minimize(objective, x0, estimator="ars", evaluator=ev)
    """

    def __init__(
        self,
        num_workers: int | None = None,
        *,
        chunks_per_worker: int = 1,
        max_batch: int | None = None,
        max_retries: int = 3,
        seed: int = 0,
        start_method: str = "spawn",
        startup_timeout: float = 120.0,
        dumps: Callable[[Any], bytes] = pickle.dumps,
    ):
        if num_workers is None:
            num_workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
        for name, value in (
            ("num_workers", num_workers),
            ("chunks_per_worker", chunks_per_worker),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"max_retries must be an int >= 0, got {max_retries!r}")
        if start_method not in ("spawn", "forkserver"):
            raise ValueError(f"start_method must be 'spawn' or 'forkserver', got {start_method!r}")
        if not (isinstance(startup_timeout, (int, float)) and startup_timeout > 0):
            raise ValueError(f"startup_timeout must be a positive number, got {startup_timeout!r}")
        if not callable(dumps):
            raise TypeError(f"dumps must be a callable object -> bytes, got {dumps!r}")
        self.num_workers = num_workers
        self.chunks_per_worker = chunks_per_worker
        self.max_batch = check_max_batch(max_batch)
        self.max_retries = max_retries
        self.seed = int(seed)
        self.start_method = start_method
        self.startup_timeout = float(startup_timeout)
        self.dumps = dumps
        #: workers replaced after dying, over the evaluator's lifetime
        self.restarts = 0
        self._workers: list[_Worker] = []
        self._selector = selectors.DefaultSelector()  # every worker's pipe and sentinel
        self._ctx = mp.get_context(start_method)
        self._started = self._closed = False
        self._objective: Any = None
        self._blob = b""
        self._token = 0
        self._steps = 0
        self._population: Any = None  # a weak reference to the last step's population
        self._step_blob = b""
        self._finalizer: Any = None

    # -- life cycle -----------------------------------------------------------------------
    @property
    def pids(self) -> list[int]:
        """Process ids of the live workers (starts them if needed)."""
        self.start()
        return [w.process.pid for w in self._workers]

    def start(self) -> ProcessEvaluator:
        """Start the workers and wait until each answers; idempotent."""
        if self._closed:
            raise RuntimeError("this ProcessEvaluator is closed; create a new one")
        if self._started:
            return self
        self._started = True
        # a driver that forgets close() still stops its workers at exit
        self._finalizer = weakref.finalize(self, _stop_workers, self._workers)
        try:
            for _ in range(self.num_workers):
                self._workers.append(self._spawn())
            deadline = time.monotonic() + self.startup_timeout
            for w in self._workers:
                self._await_ready(w, deadline)
        except BaseException:
            self.close()
            raise
        return self

    def _spawn(self) -> _Worker:
        parent, child = self._ctx.Pipe(duplex=True)
        process = self._ctx.Process(target=_worker_main, args=(child, self.seed), daemon=True)
        process.start()
        child.close()
        w = _Worker(process, parent)
        self._selector.register(parent, selectors.EVENT_READ, w)
        self._selector.register(process.sentinel, selectors.EVENT_READ, w)
        return w

    def _await_ready(self, w: _Worker, deadline: float) -> None:
        if not w.conn.poll(max(0.0, deadline - time.monotonic())):
            raise TimeoutError(
                f"ProcessEvaluator: a worker did not start within "
                f"startup_timeout={self.startup_timeout:g}s"
            )
        w.conn.recv()
        w.ready = True

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` ran (also after Ctrl-C or a lost pool during a step)."""
        return self._closed

    def close(self) -> None:
        """Stop and join every worker; idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._finalizer is not None:
            self._finalizer()  # runs _stop_workers once
        self._selector.close()
        self._objective = None

    def __enter__(self) -> ProcessEvaluator:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"ProcessEvaluator(num_workers={self.num_workers}, "
            f"chunks_per_worker={self.chunks_per_worker}, start_method={self.start_method!r})"
        )

    # -- evaluation -----------------------------------------------------------------------
    def _pickled(self, objective: Objective) -> None:
        if objective is self._objective:
            return
        try:
            self._blob = self.dumps(objective)
        except Exception as e:
            raise TypeError(
                f"ProcessEvaluator: the objective {type(objective).__name__} cannot be pickled "
                f"for the worker processes ({e}); define it at module level, or pass an "
                "ObjectiveFactory(fn, *args) that builds it in each worker"
            ) from e
        self._objective = objective
        self._token += 1

    def evaluate(self, objective: Objective, population: Population, seed: int) -> Tensor:
        """Losses ``(K,)`` of ``population`` under ``objective`` with the step's ``seed``.

        Equal, number for number, to the local evaluator for objectives whose
        per-candidate losses depend neither on the batch they are in nor on global RNG
        state (randomness should come from ``seed``).

        Raises:
            WorkerObjectiveError: the objective raised in a worker (names the rows).
            RuntimeError: a chunk's worker died more than ``max_retries`` times.
        """
        k = len(population)
        if k == 0:
            raise ValueError("population must hold at least one candidate, got 0 rows")
        bounds = chunk_bounds(k, self.num_workers * self.chunks_per_worker, self.max_batch)
        results = self.evaluate_ranges(
            objective, population, seed, bounds, shared_state=objective.shared_state()
        )
        losses = torch.cat([losses for losses, _ in results])
        for _, stats in results:  # merged in row order: deterministic statistics
            if stats is not None:
                objective.absorb_stats(stats)
        return losses

    def evaluate_ranges(
        self,
        objective: Objective,
        population: Population | None,
        seed: int,
        bounds: list[tuple[int, int]],
        *,
        shared_state: Any = None,
        rows: list[Tensor] | None = None,
    ) -> list[tuple[Tensor, Any]]:
        """Each range's ``(losses, statistics)``, in the order of ``bounds``, not merged.

        For a caller that merges the objective's statistics itself (the Ray evaluator's
        workers with ``processes_per_worker``). ``bounds`` are ``(start, stop)`` row ranges
        of ``population``, each one task seeded from (``seed``, start); ``shared_state``
        is loaded into every worker's objective before its first task of the step; with
        ``rows`` (one tensor per range) the rows travel instead of being regenerated from
        ``population``, which may then be None. ``objective`` is pickled once, when it
        changes, and never built here.

        Raises:
            WorkerObjectiveError: the objective raised in a worker (names the rows).
            RuntimeError: a chunk's worker died more than ``max_retries`` times.
        """
        self.start()
        self._pickled(objective)
        shipped = None if rows is not None else shippable(population)
        if rows is None and shipped is None:
            rows = [population.rows(a, b).detach().to("cpu") for a, b in bounds]
        # pickled once, whatever the number of workers
        self._new_step(population, (shipped, shared_state, int(seed)))

        def request(i: int, step: bytes | None) -> tuple:
            X = None if rows is None else _to_wire(rows[i].detach().to("cpu"))
            return ("task", *bounds[i], X, step)

        results = self._run_guarded(bounds, request)
        return [(_from_wire(results[i][0]), results[i][1]) for i in range(len(bounds))]

    def reduce_ranges(
        self,
        population: Population,
        bounds: list[tuple[int, int]],
        coeffs: list[Any],
        square: bool,
    ) -> list[tuple[Tensor, Tensor | None]]:
        """Each range's float64 partial sums of a Gaussian population, in the order of
        ``bounds``: Σ cᵢ zᵢ and, with ``square``, the second moment, as
        :func:`~zoopt.evaluators.chunks.partial_sums` computes them (``coeffs``: one
        array per range). Workers that received ``population`` in the last
        :meth:`evaluate_ranges` regenerate its noise without receiving it again.

        Raises:
            WorkerObjectiveError: a range failed in a worker (names the rows).
            RuntimeError: a range's worker died more than ``max_retries`` times.
        """
        self.start()
        if self._population is None or self._population() is not population:
            self._new_step(population, (shippable(population), None, 0))

        def request(i: int, step: bytes | None) -> tuple:
            return ("reduce", *bounds[i], np.asarray(coeffs[i]), bool(square), step)

        results = self._run_guarded(bounds, request)
        return [
            (
                _from_wire(results[i][0]),
                None if results[i][1] is None else _from_wire(results[i][1]),
            )
            for i in range(len(bounds))
        ]

    def _new_step(self, population: Any, payload: tuple) -> None:
        """A new step: its payload pickled once, sent with each worker's first task."""
        self._steps += 1
        try:  # weak: a population (and its noise cache) is freed with its step
            self._population = weakref.ref(population)
        except TypeError:
            self._population = None
        self._step_blob = pickle.dumps(payload, pickle.HIGHEST_PROTOCOL)

    def _run_guarded(self, bounds: list[tuple[int, int]], request: Any) -> dict[int, tuple]:
        try:
            return self._run(bounds, request)
        except WorkerObjectiveError:
            raise
        except BaseException:
            # Ctrl-C or a lost pool: the workers may be mid-chunk; stop them all
            self.close()
            raise

    def _run(self, bounds: list[tuple[int, int]], request: Any) -> dict[int, tuple]:
        """Every range, handed out from a queue: ``request(index, step)`` is what a worker
        is sent for range ``index`` (``step``: the step's payload for its first range)."""
        pending = deque(range(len(bounds)))
        tries = [0] * len(bounds)
        results: dict[int, tuple] = {}
        error: tuple | None = None
        while len(results) < len(bounds):
            if error is None:
                for w in list(self._workers):
                    if pending and w.ready and w.task is None:
                        if not w.process.is_alive():  # died between steps
                            self._replace(w)
                            continue
                        self._send(w, pending.popleft(), request)
            busy = [w for w in self._workers if w.task is not None or not w.ready]
            if error is not None and not any(w.task is not None for w in busy):
                break
            if not busy:
                raise RuntimeError("ProcessEvaluator: no worker left to evaluate on")
            # one selector for the pool's lifetime: registering every pipe and sentinel for
            # each wait would cost O(workers) per message
            woken: dict[_Worker, bool] = {}  # worker -> whether its pipe is readable
            for key, _ in self._selector.select():
                woken[key.data] = woken.get(key.data, False) or key.fileobj is key.data.conn
            for w, readable in woken.items():
                if w not in self._workers:
                    continue  # already replaced in this sweep
                try:
                    # a readable pipe holds a message (or its end): no poll, which would
                    # build a selector of its own; woken by the sentinel alone, the process
                    # ended and a last message may still be buffered
                    message = w.conn.recv() if readable or w.conn.poll() else None
                except (EOFError, OSError):
                    message = None
                if message is None:
                    if w.process.is_alive():
                        continue  # the pipe woke us without a message yet
                    lost = w.task
                    self._replace(w)
                    if lost is not None:
                        tries[lost] += 1
                        if tries[lost] > self.max_retries:
                            raise RuntimeError(
                                f"ProcessEvaluator: {candidate_rows(*bounds[lost])} lost its "
                                f"worker {tries[lost]} times (max_retries={self.max_retries})"
                            )
                        pending.appendleft(lost)
                    continue
                if message[0] == "ready":
                    w.ready = True
                    continue
                index, w.task = w.task, None
                if message[0] == "error":
                    error = error or message
                    continue
                results[index] = (message[2], message[3])
        if error is not None:  # the other chunks have finished: the pool is clean
            _, start, stop, etype, text, tb = error
            raise WorkerObjectiveError((start, stop), etype, text, tb)
        return results

    def _send(self, w: _Worker, index: int, request: Any) -> None:
        w.task = index
        # a worker that dies meanwhile breaks the pipe: its sentinel then reports the loss
        with contextlib.suppress(OSError):
            if w.token != self._token:
                w.conn.send(("objective", self._blob))
                w.token = self._token
            first = w.step != self._steps
            w.step = self._steps
            w.conn.send(request(index, self._step_blob if first else None))

    def _replace(self, w: _Worker) -> None:
        """A worker died: join it and start a replacement (it joins when it answers)."""
        for handle in (w.conn, w.process.sentinel):
            with contextlib.suppress(KeyError, ValueError, OSError):
                self._selector.unregister(handle)
        _stop_workers([w])
        self._workers[self._workers.index(w)] = self._spawn()
        self.restarts += 1


def _to_wire(x: Tensor) -> Any:
    """An array's bytes travel in the message; a tensor would go through torch's shared-
    memory handover (a file descriptor per tensor), which costs more than copying a chunk's
    rows or losses."""
    return x if x.dtype == torch.bfloat16 else x.numpy().copy()


def _from_wire(x: Any) -> Tensor:
    return torch.from_numpy(np.array(x)) if isinstance(x, np.ndarray) else x
