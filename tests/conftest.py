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
