"""Population evaluation on a Ray cluster, with the same numbers as the local evaluator.

A pool of Ray actors (one process each) holds its own copy of the objective, built once per
worker: either the objective object itself, pickled once into the object store, or an
:class:`~zoopt.evaluators.factory.ObjectiveFactory` that builds environments, datasets and
models on the worker. Each step the population is split into indexed row ranges:

* a :class:`~zoopt.population.GaussianPopulation` travels as (θ reference, σ, seed,
  antithetic, K) plus a row range; θ is put into the object store once per step and every
  worker regenerates its own slice of noise with ``population.rows(start, stop)``, so the
  bytes sent per step do not grow with K×D;
* any other population travels as its row chunks.

Results come back with their row range and are placed by index, so the losses equal those
of :class:`~zoopt.evaluators.local.LocalEvaluator` for the same seed. Before evaluating,
each worker installs ``objective.shared_state()`` of the driver; afterwards it returns
``pop_stats()``, which the driver merges with ``absorb_stats`` in row order.

Faults: a worker that dies mid-step has its chunk re-run on a replacement actor; since each
chunk's randomness derives from (step seed, first row) alone, the result equals the
undisturbed run bit for bit. An exception raised by the objective is not retried: it
surfaces as :class:`ObjectiveError` naming the rows and carrying the worker's traceback.

This follows the design of EvoTorch's evaluation actors (Toklu et al., 2023, "EvoTorch:
Scalable Evolutionary Computation in Python"): deterministically seeded actors, work split
into indexed pieces, results put back by index; and the seed-sharing trick of Salimans et
al. (2017), "Evolution Strategies as a Scalable Alternative to Reinforcement Learning", that
lets workers regenerate noise instead of receiving it.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import random
import threading
import traceback
import warnings
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from zoopt.evaluators.base import candidate_rows, check_max_batch
from zoopt.evaluators.factory import ObjectiveFactory
from zoopt.objectives.base import Objective, check_losses
from zoopt.population import (
    CenteredPopulation,
    ExplicitPopulation,
    GaussianPopulation,
    Population,
)

try:
    import ray
    import ray.exceptions as ray_exceptions
except ImportError as _err:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "the 'ray' evaluator needs Ray; install it with: pip install 'zoopt-torch[ray]'"
    ) from _err

__all__ = ["RayEvaluator", "ObjectiveError", "start_local_ray"]

#: environment of every worker: one BLAS/OpenMP thread each, so K workers use K cores
WORKER_ENV_VARS = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "VECLIB_MAXIMUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
}

# Ray failures that mean "the process running the chunk went away": the chunk is re-run.
# A RayTaskError (an exception raised inside the task) is deliberately not among them.
_WORKER_LOST = (
    ray_exceptions.RayActorError,
    ray_exceptions.WorkerCrashedError,
    ray_exceptions.NodeDiedError,
    ray_exceptions.ObjectLostError,
    ray_exceptions.OutOfMemoryError,
)

_MASK63 = 2**63 - 1


class ObjectiveError(RuntimeError):
    """The objective raised an exception on a worker.

    Attributes:
        rows: ``(start, stop)``, the candidate rows being evaluated (``stop`` excluded).
        error_type: the class name of the original exception.
        message: the original exception's message.
        worker_traceback: the traceback text from the worker.
    """

    def __init__(self, rows: tuple[int, int], error_type: str, message: str, worker_traceback: str):
        self.rows = rows
        self.error_type = error_type
        self.message = message
        self.worker_traceback = worker_traceback
        super().__init__(
            f"the objective raised {error_type} while evaluating {candidate_rows(*rows)} "
            f"on a Ray worker: {message}\n\nWorker traceback:\n{worker_traceback}"
        )

    def __reduce__(self):
        return (type(self), (self.rows, self.error_type, self.message, self.worker_traceback))


# ---------------------------------------------------------------------------------------
# starting Ray quietly, on loopback, without weakening its security
# ---------------------------------------------------------------------------------------
class _DropTokenAuthNotice(logging.Filter):
    """Drops Ray's notice that token authentication was enabled by default.

    Only that notice: authentication itself is untouched, and the warning Ray prints when
    authentication is *disabled* still reaches the user.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Token authentication is enabled")


@contextlib.contextmanager
def _loopback_node(worker_env: bool = False):
    """Make Ray use 127.0.0.1 as this machine's node address.

    Ray binds its servers to the node IP, which on Linux is the machine's routable address,
    and rewrites "127.0.0.1" given by the user into that address.
    ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` is Ray's own switch for single-machine operation
    (its default on macOS and Windows): the node IP becomes the loopback address, so the GCS,
    raylet, workers, agents and metrics endpoints of an instance started inside this block
    listen on 127.0.0.1 only, and a driver connecting inside it reaches such an instance.
    With ``worker_env`` the one-BLAS-thread variables are set too, so that every worker of
    the instance inherits them. Processes started inside the block inherit the settings;
    the driver's own are restored afterwards.
    """
    from ray._private import ray_constants

    env = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", **(WORKER_ENV_VARS if worker_env else {})}
    old_env = {key: os.environ.get(key) for key in env}
    old_const = getattr(ray_constants, "ENABLE_RAY_CLUSTER", None)
    os.environ.update(env)
    if old_const is not None:  # read at import time; the driver is past that
        ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        if old_const is not None:
            ray_constants.ENABLE_RAY_CLUSTER = old_const
        for key, value in old_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _is_loopback(address: str) -> bool:
    host = address.rsplit(":", 1)[0].strip("[]") if ":" in address else address
    return host == "localhost" or host == "::1" or host.startswith("127.")


def start_local_ray(
    num_cpus: int | None = None,
    num_gpus: int | None = None,
    *,
    include_dashboard: bool = False,
    log_to_driver: bool = False,
    logging_level: int = logging.WARNING,
    **ray_init_options: Any,
) -> str:
    """Start a private single-machine Ray instance, quiet and on loopback only.

    * Every Ray process listens on 127.0.0.1; the dashboard, when included, too.
    * Ray's token authentication keeps its default: Ray 2.60 turns it on for a new local
      instance unless ``RAY_AUTH_MODE`` says otherwise, creating ``~/.ray/auth_token`` if
      missing. Only the notice announcing this is hidden; ``RAY_AUTH_MODE=disabled`` set by
      the user is respected (and Ray's warning about it is kept).
    * No start-up banner, worker output is not forwarded (``log_to_driver=False``), and the
      ``ray`` logger is set to ``logging_level``.
    * Every worker process of the instance runs with one OpenMP/MKL/OpenBLAS thread.

    Args:
        num_cpus, num_gpus: resources of the instance (default: detected).
        include_dashboard: start the dashboard (on 127.0.0.1).
        log_to_driver: forward the workers' stdout/stderr to this process.
        logging_level: level of Ray's ``ray`` logger in this process.
        **ray_init_options: further ``ray.init`` keyword arguments.

    Returns:
        the instance's GCS address ``"127.0.0.1:port"``, which another process can join.
    """
    if ray.is_initialized():
        raise RuntimeError("start_local_ray: Ray is already initialised in this process")
    options = dict(
        address="local",  # never join a cluster found on the machine by accident
        num_cpus=num_cpus,
        num_gpus=num_gpus,
        include_dashboard=include_dashboard,
        log_to_driver=log_to_driver,
        logging_level=logging_level,
    )
    if include_dashboard:
        options["dashboard_host"] = "127.0.0.1"
    options.update(ray_init_options)
    notice = logging.getLogger("ray._private.authentication.authentication_token_setup")
    quiet = _DropTokenAuthNotice()
    notice.addFilter(quiet)
    try:
        with _loopback_node(worker_env=True):
            context = ray.init(**options)
    finally:
        notice.removeFilter(quiet)
    address = context.address_info["gcs_address"]
    _LOCAL_INSTANCES.add(address)
    return address


#: GCS addresses of the instances started by :func:`start_local_ray` in this process: their
#: workers inherited the one-thread environment, so no runtime_env (which would keep them
#: from using Ray's pre-started worker processes and slow the start) is needed
_LOCAL_INSTANCES: set[str] = set()


def _workers_inherit_thread_env() -> bool:
    try:
        return ray.get_runtime_context().gcs_address in _LOCAL_INSTANCES
    except Exception:
        return False


# The Ray session opened by evaluators of this process, if any: it is shut down (a local
# instance stops; a joined cluster only loses this driver) when the last evaluator using
# it closes. A session opened by someone else is never shut down by an evaluator.
_SESSION_LOCK = threading.Lock()
_session = {"opened_by_zoopt": False, "users": 0}


def _acquire_ray(address: str | None, log_to_driver: bool, ray_init_options: dict) -> bool:
    """Connect (or start) Ray; True when the caller shares a session opened by zoopt."""
    with _SESSION_LOCK:
        if ray.is_initialized():
            if not _session["opened_by_zoopt"]:
                return False  # a test fixture's or the user's session: used, never closed
            _session["users"] += 1
            return True
        if address is None:
            start_local_ray(log_to_driver=log_to_driver, **ray_init_options)
        else:
            options = dict(
                address=address, log_to_driver=log_to_driver, logging_level=logging.WARNING
            )
            options.update(ray_init_options)
            # joining: Ray decides about authentication from RAY_AUTH_MODE / the token files
            if _is_loopback(address):  # a loopback-only instance on this machine
                with _loopback_node():
                    ray.init(**options)
            else:
                ray.init(**options)
        _session["opened_by_zoopt"] = True
        _session["users"] = 1
        return True


def _release_ray() -> None:
    """Undo one successful :func:`_acquire_ray` that returned True."""
    with _SESSION_LOCK:
        _session["users"] = max(0, _session["users"] - 1)
        if _session["users"] == 0 and _session["opened_by_zoopt"]:
            _session["opened_by_zoopt"] = False
            if ray.is_initialized():
                ray.shutdown()


# ---------------------------------------------------------------------------------------
# what travels to the workers
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _GaussianChunk:
    """Rows ``start:stop`` of θ + σ·ε, regenerated on the worker from the seed."""

    center: list  # [ObjectRef] — nested, so the worker fetches it once and caches it
    sigma: float
    noise_seed: int
    size: int
    antithetic: bool
    start: int
    stop: int


@dataclass(frozen=True)
class _RowChunk:
    """Rows ``start:stop`` sent as a tensor ``(stop - start, D)``."""

    rows: Tensor
    start: int
    stop: int


def _chunk_seed(seed: int, start: int) -> int:
    """The seed of the global RNGs while evaluating rows from ``start`` in a step."""
    ss = np.random.SeedSequence([int(seed) & _MASK63, int(start), 0x2A7])
    return int(ss.generate_state(1, np.uint64)[0] & np.uint64(_MASK63))


def _seed_global_rngs(seed: int) -> None:
    seed = int(seed) & _MASK63
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


class _EvaluationWorker:
    """A Ray actor holding one copy of the objective (one process, one BLAS thread)."""

    def __init__(self, seed: int, device: str | None):
        torch.set_num_threads(1)
        self.seed = seed
        self.device = torch.device(device) if device else None
        self.token: int | None = None
        self.objective: Objective | None = None
        self.center_cache: tuple[Any, Tensor] | None = None
        _seed_global_rngs(seed)

    def ready(self) -> int:
        return os.getpid()

    def _load_objective(self, token: int, ref: Any) -> None:
        if token == self.token:
            return
        objective = ray.get(ref)
        # every worker builds its copy from the same RNG state, so factories that draw
        # random data or initial weights build identical objectives everywhere
        _seed_global_rngs(self.seed)
        if isinstance(objective, ObjectiveFactory):
            objective.build()
        self.objective, self.token = objective, token
        self.center_cache = None

    def _rows(self, chunk: _GaussianChunk | _RowChunk) -> Tensor:
        if isinstance(chunk, _RowChunk):
            return chunk.rows
        ref = chunk.center[0]
        if self.center_cache is None or self.center_cache[0] != ref.hex():
            self.center_cache = (ref.hex(), ray.get(ref))
        population = GaussianPopulation(
            self.center_cache[1], chunk.sigma, chunk.noise_seed, chunk.size, chunk.antithetic
        )
        return population.rows(chunk.start, chunk.stop)

    def evaluate(self, objective: list, chunk: Any, shared_state: Any, seed: int) -> tuple:
        """Losses of the chunk's rows: ``("ok", start, losses, stats)`` or an error tuple."""
        try:
            self._load_objective(objective[0], objective[1])
            if shared_state is not None:
                self.objective.load_shared_state(shared_state)
            X = self._rows(chunk)
            if self.device is not None:
                X = X.to(self.device)
            # the chunk's randomness depends on (step seed, rows) only, not on which worker
            # runs it or what it ran before: a re-run chunk gives the same numbers
            _seed_global_rngs(_chunk_seed(seed, chunk.start))
            name = getattr(self.objective, "name", type(self.objective).__name__)
            losses = check_losses(self.objective.evaluate(X, seed), len(X), name)
            return ("ok", chunk.start, losses.to("cpu"), self.objective.pop_stats())
        except Exception as exc:  # surfaced on the driver as ObjectiveError, not retried
            return (
                "error",
                chunk.start,
                chunk.stop,
                type(exc).__name__,
                str(exc),
                traceback.format_exc(),
            )


_REMOTE_WORKER: Any = None


def _remote_worker_class() -> Any:
    """The Ray actor class, made once per process (Ray exports each new class)."""
    global _REMOTE_WORKER
    if _REMOTE_WORKER is None:
        _REMOTE_WORKER = ray.remote(_EvaluationWorker)
    return _REMOTE_WORKER


# ---------------------------------------------------------------------------------------
# the evaluator
# ---------------------------------------------------------------------------------------
_OPTIONS = (
    "num_workers",
    "address",
    "num_cpus_per_worker",
    "num_gpus_per_worker",
    "device",
    "chunks_per_worker",
    "max_batch",
    "max_retries",
    "seed",
    "startup_timeout",
    "log_to_driver",
    "runtime_env",
    "ray_init_options",
)


class RayEvaluator:
    """Evaluates populations on a pool of Ray actors.

    Args:
        num_workers: number of worker actors (default: the cluster's CPUs divided by
            ``num_cpus_per_worker``).
        address: ``None`` starts a private Ray instance on this machine, listening on
            127.0.0.1, and shuts it down on :meth:`close`; ``"auto"`` or ``"host:port"``
            joins a running cluster, which :meth:`close` leaves running (``RAY_ADDRESS`` is
            not consulted: joining needs an explicit address). If Ray is already
            initialised in this process, that session is reused and left running.
        num_cpus_per_worker: CPUs reserved by each worker.
        num_gpus_per_worker: GPUs reserved by each worker (fractions share a GPU).
            Default: 0, or 1 when ``device="cuda"`` and the cluster has GPUs.
        device: where workers evaluate candidates (``"cpu"``, ``"cuda"``); ``None``: CPU,
            or ``"cuda"`` when GPUs are reserved.
        chunks_per_worker: pieces per worker per population (1: the least overhead; more
            balance uneven workers and make a lost worker cheaper to replay).
        max_batch: at most this many candidates per task (a memory bound, as for the local
            evaluator); more tasks are made when needed.
        max_retries: how many times a chunk whose worker died is re-run before giving up.
        seed: seed of the workers' global RNGs while they build their objective (the same
            on every worker, so copies are identical); during evaluation each chunk is
            seeded from (step seed, first row).
        startup_timeout: seconds to wait for the workers to start.
        log_to_driver: forward the workers' stdout/stderr to this process (when this
            evaluator initialises Ray; off by default, so local runs print nothing).
        runtime_env: a Ray runtime environment for the workers; its ``env_vars`` are merged
            over the one-BLAS-thread defaults.
        ray_init_options: extra ``ray.init`` keyword arguments (used only if this evaluator
            initialises Ray).

    Bytes sent per step: for Gaussian populations θ once (``ray.put``) plus a few hundred
    bytes per chunk, independent of K; for explicit populations, the K×D candidates.

    Example::

        with RayEvaluator(num_workers=4) as ev:
            result = zoopt.minimize(objective, x0, estimator="es", evaluator=ev)
    """

    def __init__(
        self,
        num_workers: int | None = None,
        address: str | None = None,
        *,
        num_cpus_per_worker: float = 1,
        num_gpus_per_worker: float | None = None,
        device: str | torch.device | None = None,
        chunks_per_worker: int = 1,
        max_batch: int | None = None,
        max_retries: int = 3,
        seed: int = 0,
        startup_timeout: float = 300.0,
        log_to_driver: bool = False,
        runtime_env: dict | None = None,
        ray_init_options: dict | None = None,
        **unknown: Any,
    ):
        if unknown:
            raise TypeError(
                f"RayEvaluator got unknown option(s) {sorted(unknown)}; "
                f"valid options are {list(_OPTIONS)}"
            )
        if num_workers is not None and (
            not isinstance(num_workers, int) or isinstance(num_workers, bool) or num_workers < 1
        ):
            raise ValueError(f"num_workers must be a positive int or None, got {num_workers!r}")
        if address is not None and (not isinstance(address, str) or not address.strip()):
            raise ValueError(
                f"address must be None (start a local instance), 'auto' or "
                f"'host:port', got {address!r}"
            )
        _check_number("num_cpus_per_worker", num_cpus_per_worker, positive=True)
        if num_gpus_per_worker is not None:
            _check_number("num_gpus_per_worker", num_gpus_per_worker, positive=False)
        for name, val, low in (
            ("chunks_per_worker", chunks_per_worker, 1),
            ("max_retries", max_retries, 0),
        ):
            if not isinstance(val, int) or isinstance(val, bool) or val < low:
                raise ValueError(f"{name} must be an int >= {low}, got {val!r}")
        check_max_batch(max_batch)
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise TypeError(f"seed must be an int, got {seed!r}")
        _check_number("startup_timeout", startup_timeout, positive=True)
        if runtime_env is not None and not isinstance(runtime_env, dict):
            raise TypeError(f"runtime_env must be a dict or None, got {type(runtime_env).__name__}")
        if ray_init_options is not None and not isinstance(ray_init_options, dict):
            raise TypeError(
                f"ray_init_options must be a dict or None, got {type(ray_init_options).__name__}"
            )
        if device is not None:
            try:
                device = str(torch.device(device))
            except (RuntimeError, TypeError):
                raise ValueError(
                    f"device must be a torch device such as 'cpu' or 'cuda', got {device!r}"
                ) from None
        self.num_workers = num_workers
        self.address = address
        self.num_cpus_per_worker = num_cpus_per_worker
        self.num_gpus_per_worker = num_gpus_per_worker
        self.device = device
        self.chunks_per_worker = chunks_per_worker
        self.max_batch = max_batch
        self.max_retries = max_retries
        self.seed = seed
        self.startup_timeout = startup_timeout
        self.log_to_driver = log_to_driver
        self.runtime_env = runtime_env
        self.ray_init_options = dict(ray_init_options or {})
        #: workers replaced after dying (over the evaluator's lifetime)
        self.restarts = 0
        self._workers: list[Any] = []
        self._started = False
        self._closed = False
        self._holds_session = False
        self._objective: Any = None
        self._objective_ref: Any = None
        self._token = 0

    # -- life cycle -----------------------------------------------------------------------
    @property
    def workers(self) -> list:
        """The worker actor handles (starts the pool if needed)."""
        self.start()
        return list(self._workers)

    def start(self) -> RayEvaluator:
        """Connect to (or start) Ray and start the workers; idempotent."""
        if self._closed:
            raise RuntimeError("this RayEvaluator is closed; create a new one")
        if self._started:
            return self
        self._holds_session = _acquire_ray(self.address, self.log_to_driver, self.ray_init_options)
        try:
            self._resolve_resources()
            self._workers = [self._new_worker() for _ in range(self.num_workers)]
            self._wait_ready(self._workers)
        except BaseException:
            self._kill_workers()
            if self._holds_session:
                self._holds_session = False
                _release_ray()
            raise
        self._started = True
        return self

    def _resolve_resources(self) -> None:
        total = ray.cluster_resources()
        cpus, gpus = total.get("CPU", 0.0), total.get("GPU", 0.0)
        if self.num_gpus_per_worker is None:
            wants_cuda = self.device is not None and self.device.startswith("cuda")
            if wants_cuda and gpus < 1:
                warnings.warn(
                    "device='cuda' requested but the Ray cluster has no GPUs; "
                    "workers evaluate on the CPU",
                    stacklevel=4,
                )
                self.device = "cpu"
            self.num_gpus_per_worker = 1 if wants_cuda and gpus >= 1 else 0
        if self.device is None and self.num_gpus_per_worker > 0:
            self.device = "cuda"
        if self.num_workers is None:
            self.num_workers = max(1, int(cpus // self.num_cpus_per_worker))
        need_cpu = self.num_workers * self.num_cpus_per_worker
        need_gpu = self.num_workers * self.num_gpus_per_worker
        if need_cpu > cpus + 1e-9:
            raise ValueError(
                f"num_workers={self.num_workers} × num_cpus_per_worker="
                f"{self.num_cpus_per_worker} needs {need_cpu:g} CPUs but the Ray cluster has "
                f"{cpus:g}; lower num_workers or num_cpus_per_worker"
            )
        if need_gpu > gpus + 1e-9:
            raise ValueError(
                f"num_workers={self.num_workers} × num_gpus_per_worker="
                f"{self.num_gpus_per_worker} needs {need_gpu:g} GPUs but the Ray cluster has "
                f"{gpus:g}; lower num_gpus_per_worker or use device='cpu'"
            )

    def _new_worker(self) -> Any:
        options: dict[str, Any] = {}
        if self.runtime_env is not None or not _workers_inherit_thread_env():
            env = dict(self.runtime_env or {})
            env["env_vars"] = {**WORKER_ENV_VARS, **env.get("env_vars", {})}
            options["runtime_env"] = env
        return (
            _remote_worker_class()
            .options(
                num_cpus=self.num_cpus_per_worker,
                num_gpus=self.num_gpus_per_worker,
                max_restarts=0,  # a dead worker is replaced explicitly, see _replace
                max_concurrency=1,
                **options,
            )
            .remote(self.seed, self.device)
        )

    def _wait_ready(self, workers: list) -> None:
        try:
            ray.get([w.ready.remote() for w in workers], timeout=self.startup_timeout)
        except ray_exceptions.GetTimeoutError:
            raise TimeoutError(
                f"RayEvaluator: {len(workers)} worker(s) did not start within "
                f"startup_timeout={self.startup_timeout:g}s; available resources: "
                f"{ray.available_resources()}"
            ) from None

    def _replace(self, i: int) -> None:
        with contextlib.suppress(Exception):
            ray.kill(self._workers[i], no_restart=True)
        self._workers[i] = self._new_worker()
        self.restarts += 1

    def _kill_workers(self) -> None:
        for w in self._workers:
            with contextlib.suppress(Exception):
                ray.kill(w, no_restart=True)
        self._workers = []

    def close(self) -> None:
        """Stop the workers; shut down the Ray instance if this evaluator started it."""
        if self._closed:
            return
        self._closed = True
        if self._started:
            self._kill_workers()
            self._objective = self._objective_ref = None
            if self._holds_session:
                self._holds_session = False
                _release_ray()

    def __enter__(self) -> RayEvaluator:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"RayEvaluator(num_workers={self.num_workers}, address={self.address!r}, "
            f"num_cpus_per_worker={self.num_cpus_per_worker}, "
            f"num_gpus_per_worker={self.num_gpus_per_worker}, device={self.device!r})"
        )

    # -- evaluation -----------------------------------------------------------------------
    def _objective_box(self, objective: Objective) -> list:
        """``[token, ref]``: the objective is pickled once and fetched once per worker."""
        if objective is not self._objective:
            self._objective_ref = ray.put(objective)
            self._objective = objective
            self._token += 1
        return [self._token, self._objective_ref]

    def _bounds(self, population: Population) -> list[tuple[int, int]]:
        """Row ranges; whole antithetic pairs stay together."""
        k = len(population)
        unit = 2 if isinstance(population, GaussianPopulation) and population.antithetic else 1
        units = math.ceil(k / unit)
        pieces = self.num_workers * self.chunks_per_worker
        if self.max_batch is not None:  # no task larger than max_batch rows
            pieces = max(pieces, math.ceil(units / max(1, self.max_batch // unit)))
        pieces = max(1, min(units, pieces))
        cuts = [round(i * units / pieces) * unit for i in range(pieces + 1)]
        cuts[-1] = k
        return [(a, b) for a, b in zip(cuts[:-1], cuts[1:], strict=True) if b > a]

    def _chunks(self, population: Population) -> list:
        if isinstance(population, CenteredPopulation):  # the population's chunks, then θ
            k = len(population.population)
            theta = population.center[None].detach().to("cpu").clone()
            return [*self._chunks(population.population), _RowChunk(theta, k, k + 1)]
        bounds = self._bounds(population)
        if isinstance(population, GaussianPopulation):
            # θ goes into the object store once per step; chunks carry its reference only
            center = [ray.put(population.center.detach().to("cpu"))]
            return [
                _GaussianChunk(
                    center,
                    float(population.sigma),
                    int(population.seed),
                    int(population.size),
                    bool(population.antithetic),
                    a,
                    b,
                )
                for a, b in bounds
            ]
        # clone: pickling a view would ship the whole underlying storage
        return [
            _RowChunk(population.rows(a, b).detach().to("cpu").clone(), a, b) for a, b in bounds
        ]

    def evaluate(self, objective: Objective, population: Population, seed: int) -> Tensor:
        """Losses ``(K,)`` of ``population`` under ``objective`` with the step's ``seed``.

        Equal, number for number, to :class:`~zoopt.evaluators.local.LocalEvaluator` for
        objectives whose per-candidate losses depend neither on the batch they are in nor
        on global RNG state (randomness should come from ``seed``).

        Raises:
            ObjectiveError: the objective raised on a worker (names the rows).
            RuntimeError: a chunk's worker died more than ``max_retries`` times.
        """
        if not isinstance(population, (GaussianPopulation, ExplicitPopulation)) and not (
            hasattr(population, "rows") and hasattr(population, "__len__")
        ):
            raise TypeError(
                f"population must be a zoopt population with rows(start, stop), "
                f"got {type(population).__name__}"
            )
        self.start()
        k = len(population)
        if k == 0:
            return torch.empty(0)
        box = self._objective_box(objective)
        shared = objective.shared_state()
        shared_ref = None if shared is None else ray.put(shared)
        chunks = self._chunks(population)
        results = self._run(chunks, box, shared_ref, int(seed))
        losses = torch.cat([results[c.start][0] for c in chunks])
        for c in chunks:  # merged in row order, so the driver's statistics are deterministic
            stats = results[c.start][1]
            if stats is not None:
                objective.absorb_stats(stats)
        return losses

    def _run(self, chunks: list, box: list, shared_ref: Any, seed: int) -> dict:
        pending = deque(chunks)
        idle = deque(range(len(self._workers)))
        running: dict[Any, tuple[Any, int]] = {}
        failures: dict[int, int] = {}
        results: dict[int, tuple[Tensor, Any]] = {}
        while pending or running:
            while pending and idle:
                i, chunk = idle.popleft(), pending.popleft()
                ref = self._workers[i].evaluate.remote(box, chunk, shared_ref, seed)
                running[ref] = (chunk, i)
            done, _ = ray.wait(list(running), num_returns=1)
            for ref in done:
                chunk, i = running.pop(ref)
                try:
                    out = ray.get(ref)
                except _WORKER_LOST as exc:
                    failures[chunk.start] = failures.get(chunk.start, 0) + 1
                    if failures[chunk.start] > self.max_retries:
                        raise RuntimeError(
                            f"RayEvaluator: the worker evaluating rows {chunk.start}:"
                            f"{chunk.stop} died {failures[chunk.start]} times "
                            f"(max_retries={self.max_retries}); last error: {exc}"
                        ) from exc
                    self._replace(i)  # same chunk, same seed: the same numbers
                    pending.appendleft(chunk)
                    idle.append(i)
                    continue
                except ray_exceptions.RayTaskError as exc:  # the task failed outside our guard
                    raise ObjectiveError(
                        (chunk.start, chunk.stop),
                        type(exc.cause).__name__,
                        str(exc.cause),
                        str(exc),
                    ) from exc
                if out[0] == "error":
                    _, start, stop, etype, message, tb = out
                    raise ObjectiveError((start, stop), etype, message, tb)
                results[chunk.start] = (out[2], out[3])
                idle.append(i)
        return results


def _check_number(name: str, value: Any, *, positive: bool) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or math.isnan(value) or (value <= 0 if positive else value < 0):
        rel = "> 0" if positive else ">= 0"
        raise ValueError(f"{name} must be a number {rel}, got {value!r}")
