"""Shared fixtures: every registered estimator, and one local Ray instance per session."""

from __future__ import annotations

import os

import pytest
import torch

import zoopt

# one BLAS thread per process keeps the suite fast and repeatable on small machines
torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")


# ---------------------------------------------------------------------------------------
# estimators
# ---------------------------------------------------------------------------------------
@pytest.fixture(params=zoopt.available_estimators())
def estimator_name(request) -> str:
    """Each registered estimator name in turn."""
    return request.param


# ---------------------------------------------------------------------------------------
# Ray (the section below belongs to the Ray evaluator's tests)
# ---------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def ray_address():
    """One local Ray instance for the whole test session, started on first use.

    2 CPUs, every process on 127.0.0.1, no start-up output, Ray's token authentication as
    Ray sets it; shut down (no processes left) when the session ends. Yields its address.
    """
    ray = pytest.importorskip("ray")
    from zoopt.evaluators.ray import start_local_ray

    if ray.is_initialized():  # someone else owns it: use it, leave it running
        yield ray.get_runtime_context().gcs_address
        return
    address = start_local_ray(num_cpus=2)
    try:
        yield address
    finally:
        ray.shutdown()
