"""The worker pool and the retrying scheduler.

Tasks are row ranges, sent several to a call: each placed worker gets about ``depth`` calls
per step and keeps them in flight (it starts the next while the driver handles the previous
result), so the driver's per-call cost is paid per worker, not per range. Finished calls are
collected in batches (one blocking ``ray.wait`` then one non-blocking sweep), and results are
put back by row.

Lost capacity never hangs: a task whose worker died is re-run on a surviving worker while a
replacement is started; a replacement that is not placed within ``replace_timeout`` seconds
is given up and the pool goes on with fewer workers. With no worker left and none starting,
the step stops with :class:`WorkersLostError`; the caller's checkpoint logic then saves.
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from collections import deque
from collections.abc import Callable
from typing import Any

import ray
import ray.exceptions as ray_exceptions

from zoopt.evaluators.ray.worker import WORKER_LOST, ObjectiveError

__all__ = [
    "WorkerPool",
    "WorkersLostError",
    "calls_per_step",
    "relay_plan",
    "run_relayed",
    "run_tasks",
]

#: how long finished tasks may wait to be collected together
BATCH_WINDOW_S = 0.002

#: longest single wait, so that replacement deadlines are checked even when nothing returns
_POLL_S = 1.0


class WorkersLostError(RuntimeError):
    """Every worker of the pool was lost and no replacement could be placed in time."""


class WorkerPool:
    """Placed worker actors, and replacements being placed (each with a deadline).

    Args:
        new_actor: makes one (unplaced) worker actor.
        replace_timeout: seconds a replacement may take to be placed and answer.
    """

    def __init__(self, new_actor: Callable[[], Any], replace_timeout: float):
        self.new_actor = new_actor
        self.replace_timeout = replace_timeout
        self.ready: list[Any] = []
        self.nodes: dict[Any, str] = {}  # actor -> Ray node id
        self.starting: dict[Any, tuple[Any, float]] = {}  # placement() ref -> (actor, deadline)
        #: workers replaced after dying, and replacements given up (pool lifetime)
        self.restarts = 0
        self.given_up = 0

    def start(self, size: int, timeout: float) -> None:
        """Start ``size`` workers and wait until all answer, at most ``timeout`` seconds."""
        actors = [self.new_actor() for _ in range(size)]
        try:
            answers = ray.get([a.placement.remote() for a in actors], timeout=timeout)
        except ray_exceptions.GetTimeoutError:
            for a in actors:
                _kill(a)
            raise TimeoutError(
                f"RayEvaluator: {size} worker(s) did not start within "
                f"startup_timeout={timeout:g}s; available resources: "
                f"{ray.available_resources()}"
            ) from None
        except ray_exceptions.RayActorError as exc:  # a worker's constructor raised
            for a in actors:
                _kill(a)
            raise RuntimeError(f"RayEvaluator: a worker failed while starting: {exc}") from exc
        self.ready = actors
        self.nodes = {a: node for a, (_, node) in zip(actors, answers, strict=True)}

    def lose(self, actor: Any) -> None:
        """``actor`` died: drop it and start a replacement (once per dead actor)."""
        if actor not in self.nodes:
            return
        self.ready.remove(actor)
        del self.nodes[actor]
        _kill(actor)
        fresh = self.new_actor()
        self.starting[fresh.placement.remote()] = (fresh, time.monotonic() + self.replace_timeout)
        self.restarts += 1

    def settle(self, ref: Any) -> None:
        """A replacement answered: it joins the pool (or is dropped if it died)."""
        actor, _ = self.starting.pop(ref)
        try:
            _, node = ray.get(ref)
        except WORKER_LOST:
            _kill(actor)
            self.given_up += 1
            return
        self.ready.append(actor)
        self.nodes[actor] = node

    def expire(self) -> None:
        """Give up the replacements past their deadline (no free capacity to place them)."""
        now = time.monotonic()
        for ref, (actor, deadline) in list(self.starting.items()):
            if now >= deadline:
                del self.starting[ref]
                _kill(actor)
                self.given_up += 1
                warnings.warn(
                    f"RayEvaluator: a replacement worker was not placed within "
                    f"replace_timeout={self.replace_timeout:g}s; going on with "
                    f"{len(self.ready)} worker(s)",
                    RuntimeWarning,
                    stacklevel=2,
                )

    def poll(self) -> None:
        """Let the replacements that have answered join, and give up the late ones."""
        if self.starting:
            done, _ = ray.wait(list(self.starting), num_returns=len(self.starting), timeout=0)
            for ref in done:
                self.settle(ref)
            self.expire()

    def next_deadline(self) -> float | None:
        """The earliest start deadline of a replacement still starting, None if none is."""
        return min((d for _, d in self.starting.values()), default=None)

    def close(self) -> None:
        """Kill every worker, ready or starting."""
        for actor in [*self.ready, *(a for a, _ in self.starting.values())]:
            _kill(actor)
        self.ready, self.nodes, self.starting = [], {}, {}


def _kill(actor: Any) -> None:
    with contextlib.suppress(Exception):
        ray.kill(actor, no_restart=True)


def calls_per_step(tasks: int, workers: int, depth: int = 2) -> int:
    """Ranges per call so that each worker gets about ``depth`` calls a step (at least 1)."""
    return max(1, -(-tasks // (max(1, workers) * depth)))


def run_tasks(
    pool: WorkerPool,
    tasks: list[tuple[int, int]],
    submit: Callable[[Any, list[tuple[int, int]]], Any],
    max_retries: int,
    depth: int = 2,
    failures: dict[int, int] | None = None,
) -> dict[int, Any]:
    """Run every ``(start, stop)`` row range; ``{start: result}`` per range.

    Ranges travel in batches: one call carries ``calls_per_step(len(tasks), workers,
    depth)`` of them, so each worker gets about ``depth`` calls per step whatever the number
    of ranges, and the driver pays its per-call cost (submit, wait, get) that many times, not
    once per range. ``submit(actor, ranges)`` returns the call's reference; the call returns
    ``("ok", [(start, *result), ...])`` with one entry per range, in order, or
    ``("error", start, stop, type, message, traceback)`` for the range that raised.

    A call whose worker died puts all its ranges back at the front of the queue (each range
    counts one failure); they are re-run elsewhere, with the same numbers, since a range's
    randomness depends on its rows alone.

    Raises:
        ObjectiveError: a task raised (not retried).
        RuntimeError: a range's worker died more than ``max_retries`` times.
        WorkersLostError: no worker left and none could be placed in time.
    """
    pending = deque(tasks)
    per_call = calls_per_step(len(tasks), len(pool.ready), depth)
    load = {a: 0 for a in pool.ready}  # calls in flight per worker
    running: dict[Any, tuple[list[tuple[int, int]], Any]] = {}
    failures = dict(failures or {})  # deaths so far per range start (a relayed step's)
    results: dict[int, Any] = {}
    while pending or running:
        # fill the pool level by level, so that the first round gives each worker one call
        for level in range(depth):
            for actor in pool.ready:
                if not pending:
                    break
                if load.setdefault(actor, 0) == level:
                    batch = [pending.popleft() for _ in range(min(per_call, len(pending)))]
                    running[submit(actor, batch)] = (batch, actor)
                    load[actor] += 1
        pool.expire()
        if not running and not pool.ready and not pool.starting:
            raise WorkersLostError(
                f"RayEvaluator: every worker was lost and no replacement was placed within "
                f"replace_timeout={pool.replace_timeout:g}s; {len(pending)} task(s) of this "
                f"step not evaluated"
            )
        refs = [*running, *pool.starting]
        deadline = pool.next_deadline()
        timeout = _POLL_S
        if deadline is not None:
            timeout = max(0.0, min(_POLL_S, deadline - time.monotonic()))
        # collect in batches. With nothing left to send, wait for every call at once (a
        # dead worker's call is ready too, with its error): one wait instead of one per
        # result. Otherwise whatever finishes within a short window, else the first to
        # finish and whatever else has by then (each worker has its next call queued, so
        # the window costs no idle time)
        window = timeout if not pending else min(BATCH_WINDOW_S, timeout)
        done, rest = ray.wait(refs, num_returns=len(running) or 1, timeout=window)
        if not done:
            done, rest = ray.wait(refs, num_returns=1, timeout=timeout)
            if done and rest:
                more, _ = ray.wait(rest, num_returns=len(rest), timeout=0)
                done += more
        finished = [ref for ref in done if ref in running]
        for ref in done:
            if ref in pool.starting:
                pool.settle(ref)
        outs = _get_all(finished)
        for ref, out in zip(finished, outs, strict=True):
            batch, actor = running.pop(ref)
            load[actor] = load.get(actor, 1) - 1
            if isinstance(out, WORKER_LOST):
                for start, stop in batch:
                    failures[start] = failures.get(start, 0) + 1
                    if failures[start] > max_retries:
                        raise RuntimeError(
                            f"RayEvaluator: the worker evaluating rows {start}:{stop} died "
                            f"{failures[start]} times (max_retries={max_retries}); last "
                            f"error: {out}"
                        ) from out
                pool.lose(actor)  # same rows, same seed elsewhere: the same numbers
                load.pop(actor, None)
                pending.extendleft(reversed(batch))
                continue
            if isinstance(out, ray_exceptions.RayTaskError):  # failed outside our guard
                first, last = batch[0][0], batch[-1][1]
                raise ObjectiveError(
                    (first, last), type(out.cause).__name__, str(out.cause), str(out)
                )
            if out[0] == "error":
                _, start, stop, etype, message, tb = out
                raise ObjectiveError((start, stop), etype, message, tb)
            for item in out[1]:
                results[item[0]] = item[1:]
    return results


def relay_plan(
    workers: list[Any], tasks: list[tuple[int, int]]
) -> list[tuple[Any, list, list[tuple[Any, list]]]]:
    """A two-level tree for one step: ``[(head, ranges, [(child, ranges), ...]), ...]``.

    The ranges are dealt to n = min(workers, ranges) workers in row order, one call each;
    the n workers form G = ⌊√n⌋ groups of about n/G, and the first of each group is its head.
    The driver then makes G calls and each head about n/G − 1: the serial dispatch on any
    one process falls from n calls to about 2√n.
    """
    n = min(len(workers), len(tasks))
    cut = [round(i * len(tasks) / n) for i in range(n + 1)]
    shares = [(workers[i], tasks[cut[i] : cut[i + 1]]) for i in range(n)]
    g = max(1, math.isqrt(n))
    edges = [round(j * n / g) for j in range(g + 1)]
    plan = []
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        (head, own), children = shares[a], shares[a + 1 : b]
        plan.append((head, own, children))
    return plan


def run_relayed(
    pool: WorkerPool,
    plan: list[tuple[Any, list, list[tuple[Any, list]]]],
    submit: Callable[[Any, list, list], Any],
) -> tuple[dict[int, Any], list[tuple[int, int]], list[Any]]:
    """Run one step through a :func:`relay_plan`: ``(results, redo, touched)``.

    ``submit(head, ranges, children)`` returns the head's call reference (see
    :meth:`~zoopt.evaluators.ray.worker.EvaluationWorker.relay`). ``results`` is
    ``{start: result}`` for the ranges that came back; ``redo`` the ranges whose worker (a
    child, or a head with its whole group) died, for :func:`run_tasks` to re-run with the same
    numbers; ``touched`` the workers of the groups that lost something, whose copy of the
    step's payload the driver can no longer count on. Dead workers are replaced.

    Raises:
        ObjectiveError: a range raised, on a head or a child (not retried).
    """
    running = {submit(head, own, children): (head, own, children) for head, own, children in plan}
    results: dict[int, Any] = {}
    redo: list[tuple[int, int]] = []
    touched: list[Any] = []
    while running:
        done, _ = ray.wait(list(running), num_returns=len(running), timeout=_POLL_S)
        for ref, out in zip(done, _get_all(done), strict=True):
            head, own, children = running.pop(ref)
            if isinstance(out, WORKER_LOST):  # the head died: its group's results with it
                pool.lose(head)
                redo += own + [r for _, ranges in children for r in ranges]
                touched += [head, *(child for child, _ in children)]
                continue
            if isinstance(out, ray_exceptions.RayTaskError):
                rows = (own[0][0], own[-1][1])
                raise ObjectiveError(rows, type(out.cause).__name__, str(out.cause), str(out))
            if out[0] == "error":
                _, start, stop, etype, message, tb = out
                raise ObjectiveError((start, stop), etype, message, tb)
            _, items, lost = out
            for item in items:
                results[item[0]] = item[1:]
            for i in lost:
                child, ranges = children[i]
                pool.lose(child)
                redo += ranges
                touched.append(child)
    return results, sorted(redo), touched


def _get_all(refs: list) -> list:
    """The values of finished ``refs``; a worker loss or task error in place of its value."""
    if not refs:
        return []
    try:
        return ray.get(refs)
    except (*WORKER_LOST, ray_exceptions.RayTaskError):
        pass
    outs = []
    for ref in refs:
        try:
            outs.append(ray.get(ref))
        except (*WORKER_LOST, ray_exceptions.RayTaskError) as exc:
            outs.append(exc)
    return outs
