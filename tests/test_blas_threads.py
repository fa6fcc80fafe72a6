"""One BLAS thread for small dense algebra: the limit holds inside, the user's setting comes
back after, and the results are the same bits as on the user's threads."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from threadpoolctl import ThreadpoolController

import zoopt
from zoopt.blas_threads import one_blas_thread
from zoopt.objectives import rosenbrock

BLAS = ThreadpoolController().select(user_api="blas")


def _threads() -> list[int]:
    return [lib.num_threads for lib in BLAS.lib_controllers]


def test_one_thread_inside_and_the_setting_restored_after() -> None:
    if not BLAS.lib_controllers:
        pytest.skip("numpy's BLAS is not one threadpoolctl controls")
    with BLAS.limit(limits=2):  # the user's setting, whatever this machine's default
        before = _threads()
        with one_blas_thread():
            assert _threads() == [1] * len(before)
            np.linalg.eigh(np.eye(50))  # BLAS work inside the block
        assert _threads() == before
        with pytest.raises(RuntimeError), one_blas_thread():
            raise RuntimeError("the setting comes back on an error too")
        assert _threads() == before


@pytest.mark.parametrize("estimator", ["snes", "cmaes"])
def test_the_same_points_on_one_thread_as_on_two(estimator: str, monkeypatch) -> None:
    """The metamodel's least squares (snes) and pycma's arithmetic with lq-CMA-ES's model
    (cmaes) give the same evaluated points whether the limit is applied or not."""
    import zoopt.blas_threads as blas_threads

    def points() -> str:
        digest = hashlib.sha256()

        def f(X: torch.Tensor) -> torch.Tensor:
            digest.update(X.numpy().tobytes())
            return rosenbrock(X)

        opts = {"surrogate": True} if estimator == "cmaes" else {}
        x0 = torch.zeros(10, dtype=torch.float64)
        with BLAS.limit(limits=2):
            zoopt.minimize(f, x0, estimator=estimator, seed=0, max_evaluations=1500, **opts)
        return digest.hexdigest()

    limited = points()
    monkeypatch.setattr(blas_threads, "_blas", lambda: None)  # the block as it is
    assert points() == limited
