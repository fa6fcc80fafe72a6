"""Objectives and helpers the evaluator tests share: one objective slow enough that a
worker can be killed mid-call, one that raises for some candidates, one that learns
statistics from its evaluations; whether a process is alive, whether a set of them is gone.

Not a test module: imported by test_processes.py (spawned workers import it from the tests
directory on their path) and test_ray.py (which ships it to Ray workers by value).
"""

from __future__ import annotations

import os
import time

from zoopt import Objective
from zoopt.objectives.functions import rastrigin


class SlowRastrigin(Objective):
    """Rastrigin that takes ``delay`` seconds per call, so a worker can be killed mid-call."""

    def __init__(self, delay: float):
        self.delay = delay

    def evaluate(self, X, seed=0):
        time.sleep(self.delay)
        return rastrigin(X)


def simulate(X):
    """‖x‖² per row ``X (K, D)``; raises ValueError("simulator diverged") when any |x| > 1e3
    (the function a worker's traceback names)."""
    if bool((X.abs() > 1e3).any()):
        raise ValueError("simulator diverged")
    return (X * X).sum(-1)


class Diverging(Objective):
    """:func:`simulate` as an objective; with ``log_path``, each call appends its batch size
    and largest |x| to that file (which rows reached which call)."""

    def __init__(self, log_path: str | None = None):
        self.log_path = log_path

    def evaluate(self, X, seed=0):
        if self.log_path is not None:
            with open(self.log_path, "a") as f:
                f.write(f"{len(X)} {float(X.abs().max()):.0f}\n")
        return simulate(X)


class RunningMeanObjective(Objective):
    """An objective that learns statistics from its evaluations, like an obs. normaliser.

    Losses are ‖x‖² + offset, where ``offset`` is frozen state shared from the driver;
    every evaluation copy counts the rows it saw and sums them (``pop_stats``).
    """

    def __init__(self, offset: float = 0.0):
        self.offset = offset
        self.count, self.total = 0, None

    def evaluate(self, X, seed=0):
        self.count += len(X)
        s = X.sum(0)
        self.total = s if self.total is None else self.total + s
        return (X * X).sum(-1) + self.offset

    def pop_stats(self):
        out = (self.count, self.total)
        self.count, self.total = 0, None
        return out

    def absorb_stats(self, stats):
        count, total = stats
        self.count += count
        self.total = total if self.total is None else self.total + total

    def shared_state(self):
        return {"offset": self.offset}

    def load_shared_state(self, state):
        self.offset = state["offset"]


def _load_in(pid: int) -> float:
    if os.getpid() != pid:
        raise RuntimeError("this state loads only where it was made")
    return 0.0


class LoadsOnlyHere:
    """A value that unpickles in the process that made it and raises anywhere else: a
    step's payload that a worker cannot load."""

    def __reduce__(self):
        return (_load_in, (os.getpid(),))


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie does not, where /proc tells)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        pass
    if not os.path.isdir("/proc"):
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:  # it ended meanwhile
        return False


def all_gone(pids: list[int], timeout: float = 10.0) -> bool:
    """Whether every process of ``pids`` has exited within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while any(alive(p) for p in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


#: float32 unit roundoff. A remote reduction's float64 partial sums, added in row order,
#: differ from the local float32 sum over all K rows by the local sum's rounding: a few
#: units relative to Σ|cᵢ||zᵢ| (and Σ|cᵢ|(zᵢ² + 1) for the second moment)
U32 = 2.0**-24


def reduce_case(scale: str, antithetic: bool = True) -> tuple:
    """``(population, coeffs)``: K = 42, D = 30, no, a diagonal or a full ``scale``."""
    import torch

    from zoopt import GaussianPopulation

    d, k = 30, 42
    g = torch.Generator().manual_seed(4)
    shape = {
        "none": None,
        "diagonal": torch.rand(d, generator=g) + 0.5,
        "full": torch.eye(d) + 0.05 * torch.randn(d, d, generator=g),
    }[scale]
    pop = GaussianPopulation(torch.randn(d, generator=g), 0.3, 17, k, antithetic, scale=shape)
    return pop, torch.randn(k, generator=g)


def assert_reduced_like_local(pop, c, remote: tuple) -> None:
    """``remote`` = (Σ cᵢ zᵢ, second moment) agrees with ``pop.reduce(c, square=True)``
    within 16 units of float32 roundoff of the bound above."""
    first, second = pop.reduce(c, square=True)
    r_first, r_second = remote
    z = pop.perturbations()
    assert r_first.shape == first.shape and r_second.shape == second.shape
    assert r_first.dtype == first.dtype
    assert bool(((r_first - first).abs() <= 16 * U32 * (c.abs() @ z.abs())).all())
    if pop.scale is not None and pop.scale.ndim == 2:
        bound = (z.T * c.abs()) @ z.abs() + c.abs().sum()
    else:
        bound = c.abs() @ (z * z + 1)
    assert bool(((r_second - second).abs() <= 16 * U32 * bound).all())
