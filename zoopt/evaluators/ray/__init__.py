"""Population evaluation on a Ray cluster, with the same numbers as the local evaluator.

A pool of Ray actors (one process each) holds its own copy of the objective, built once per
worker: either the objective object itself, pickled once into the object store, or an
:class:`~zoopt.evaluators.factory.ObjectiveFactory` that builds environments, datasets and
models on the worker. Each step the population is split into about ``num_workers ×
chunks_per_worker`` indexed row ranges, whatever K:

* a :class:`~zoopt.population.GaussianPopulation` travels as (θ, σ, seed, antithetic, K),
  put into the object store once per step, plus a row range per task; every worker
  regenerates its own slice of noise with ``population.rows(start, stop)``, so the bytes
  sent per step do not grow with K×D;
* any other population travels as its row chunks.

Results come back with their row range and are placed by index, so the losses equal those
of :class:`~zoopt.evaluators.local.LocalEvaluator` for the same seed. Before evaluating,
each worker installs ``objective.shared_state()`` of the driver; afterwards it returns
``pop_stats()``, which the driver merges with ``absorb_stats`` in row order. For large
Gaussian populations the estimator's sums over the population (Σ cᵢ zᵢ and the like) are
computed on the workers too, each returning D floats, so the driver's work per step does
not grow with K×D.

Faults: a worker that dies mid-step has its chunk re-run, on a surviving worker or a
replacement; since each chunk's randomness derives from (step seed, first row) alone, the
result equals the undisturbed run bit for bit. A replacement that cannot be placed in time
is given up (the pool shrinks); with no worker left the step raises :class:`WorkersLostError`.
An exception raised by the objective is not retried: it surfaces as :class:`ObjectiveError`
naming the rows and carrying the worker's traceback.

Modules: ``session`` (starting or joining Ray, loopback and authentication), ``worker``
(what travels to the workers, and the actor), ``options`` (option names and checks),
``resources`` (workers, CPUs and GPUs against the cluster), ``scheduler`` (the pool and the
retrying scheduler), ``evaluator`` (:class:`RayEvaluator`).

This follows the design of EvoTorch's evaluation actors (Toklu et al., 2023, "EvoTorch:
Scalable Evolutionary Computation in Python"): deterministically seeded actors, work split
into indexed pieces, results put back by index; and the seed-sharing trick of Salimans et
al. (2017), "Evolution Strategies as a Scalable Alternative to Reinforcement Learning", that
lets workers regenerate noise instead of receiving it and reduce it where it lives.
"""

from __future__ import annotations

try:
    import ray  # noqa: F401
except ImportError as _err:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "the 'ray' evaluator needs Ray; install it with: pip install 'zoopt-torch[ray]'"
    ) from _err

from zoopt.evaluators.ray.evaluator import REDUCE_THRESHOLD, RELAY_FROM, RayEvaluator
from zoopt.evaluators.ray.options import FILE_SAFE_OPTIONS, OPTIONS
from zoopt.evaluators.ray.scheduler import WorkersLostError
from zoopt.evaluators.ray.session import (
    TASK_EVENT_LIMITS,
    WORKER_ENV_VARS,
    _DropTokenAuthNotice,
    start_local_ray,
)
from zoopt.evaluators.ray.worker import ObjectiveError

__all__ = [
    "FILE_SAFE_OPTIONS",
    "OPTIONS",
    "REDUCE_THRESHOLD",
    "RELAY_FROM",
    "TASK_EVENT_LIMITS",
    "WORKER_ENV_VARS",
    "ObjectiveError",
    "RayEvaluator",
    "WorkersLostError",
    "start_local_ray",
    "_DropTokenAuthNotice",
]
