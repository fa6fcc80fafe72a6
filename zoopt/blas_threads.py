"""One BLAS thread for the host's small dense algebra.

numpy's BLAS (OpenBLAS) splits a product of a few hundred thousand flops across its threads:
the 66-term least squares of a quadratic metamodel at D = 10, pycma's updates of a 10 × 10
covariance and its model's pseudo-inverse. At these sizes the hand-offs between threads cost
more than the work, and far more when another process holds a core: on 2 cores beside two
busy processes, a D = 10 step of ``snes``, ``es`` or lq-CMA-ES took 1.6–2.1× as long as on
one thread (``benchmarks/bench_blas_threads.py``). :func:`one_blas_thread` limits numpy's
BLAS to one thread for a block and restores the user's setting after it. Each entry of a
product is summed by one thread either way, so the results are the same bits (tested).

The limit goes through ``threadpoolctl``; without it the block runs as it is.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

__all__ = ["one_blas_thread"]

_controller: list[Any] = []  # the threadpoolctl controller of the BLAS libraries, made once


def _blas() -> Any:
    """threadpoolctl's controller of the loaded BLAS libraries (None without threadpoolctl)."""
    if not _controller:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            _controller.append(None)
        else:
            _controller.append(ThreadpoolController().select(user_api="blas"))
    return _controller[0]


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """Run the block with numpy's BLAS on one thread (about 10 µs to enter and leave)."""
    blas = _blas()
    if blas is None or not blas.lib_controllers:
        yield
        return
    with blas.limit(limits=1):
        yield
