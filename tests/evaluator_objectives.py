"""Objectives the evaluator tests share: one slow enough that a worker can be killed
mid-call, one that raises for some candidates.

Not a test module: imported by test_processes.py (spawned workers import it from the tests
directory on their path) and test_ray.py (which ships it to Ray workers by value).
"""

from __future__ import annotations

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
