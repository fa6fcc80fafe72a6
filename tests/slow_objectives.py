"""Objectives the evaluator tests share: slow enough that a worker can be killed mid-call.

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
