"""The Ray evaluator: populations evaluated (and reduced) on a pool of Ray actors."""

from __future__ import annotations

import math
from typing import Any

import ray
import torch
from torch import Tensor

from zoopt.evaluators.chunks import chunk_bounds, shippable
from zoopt.evaluators.ray.options import OPTIONS, check_options
from zoopt.evaluators.ray.resources import resolve_resources
from zoopt.evaluators.ray.scheduler import WorkerPool, relay_plan, run_relayed, run_tasks
from zoopt.evaluators.ray.session import (
    WORKER_ENV_VARS,
    acquire_ray,
    release_ray,
    workers_inherit_thread_env,
)
from zoopt.evaluators.ray.worker import StepPayload, from_wire, pack_payload, remote_worker_class
from zoopt.objectives.base import Objective
from zoopt.population import (
    CenteredPopulation,
    ExplicitPopulation,
    GaussianPopulation,
    Population,
)

__all__ = ["RayEvaluator", "REDUCE_THRESHOLD", "RELAY_FROM"]

#: K·D from which the estimator's sums over the population run on the workers instead of
#: regenerating the K×D noise on the driver; below it the extra round trip (~2 ms) costs
#: more. ``benchmarks/bench_ray_scale.py`` measured the break-even at 0.36 M with many
#: workers and 0.83 M with two.
REDUCE_THRESHOLD = 1_000_000

#: workers from which a Gaussian population's calls are relayed through ⌊√W⌋ head workers
#: (:func:`~zoopt.evaluators.ray.scheduler.relay_plan`): the driver's serial dispatch falls
#: from W calls to about 2√W. ``benchmarks/bench_ray_scale.py`` models the gain.
RELAY_FROM = 16


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
        num_cpus_per_worker: CPUs reserved by each worker (default:
            ``processes_per_worker``).
        num_gpus_per_worker: GPUs reserved by each worker (fractions share a GPU).
            Default: 0, or 1 when ``device="cuda"`` and the cluster has GPUs.
        device: where workers evaluate candidates (``"cpu"``, ``"cuda"``); ``None``: CPU,
            or ``"cuda"`` when GPUs are reserved.
        chunks_per_worker: pieces per worker per population (1: the least overhead; more
            balance uneven workers and make a lost worker cheaper to replay); per process
            with ``processes_per_worker``.
        processes_per_worker: local processes each worker actor evaluates on (default 1:
            the actor itself). With one actor per machine and ``processes_per_worker`` its
            cores (e.g. ``num_workers=nodes, processes_per_worker=32``) the driver makes one
            Ray call per machine and step instead of one per core; the actor hands its
            ranges to its processes through pipes, several times cheaper per task than a Ray
            call. Same numbers as one actor per core (the estimator's sums, from
            ``reduce_threshold``, also run on the processes). CPU only.
        max_batch: at most this many candidates per task (a memory bound, as for the local
            evaluator); more tasks are made when needed.
        max_retries: how many times a chunk whose worker died is re-run before giving up.
        seed: seed of the workers' global RNGs while they build their objective (the same
            on every worker, so copies are identical); during evaluation each chunk is
            seeded from (step seed, first row).
        startup_timeout: seconds to wait for the workers to start.
        replace_timeout: seconds a replacement for a dead worker may take to be placed;
            after that the pool goes on with the surviving workers (the dead worker's rows
            are re-run there, with the same result), or, with none left, the step raises
            :class:`~zoopt.evaluators.ray.WorkersLostError`.
        reduce_threshold: K·D from which the estimator's sums over a Gaussian population
            (Σ cᵢ zᵢ, Σ cᵢ (zᵢ² − 1)) are computed on the workers, each returning D floats
            for its rows; ``None``: never. Default :data:`REDUCE_THRESHOLD`.
        relay_from: number of workers from which a Gaussian population's step is relayed:
            the driver calls ⌊√W⌋ head workers, each of which passes the calls of its group
            on, so that no process makes more than about 2√W calls a step instead of the
            driver making W; ``None``: never. Default :data:`RELAY_FROM`. Same numbers either
            way; a dead head's group is re-run like any dead worker's rows.
        log_to_driver: forward the workers' stdout/stderr to this process (when this
            evaluator initialises Ray; off by default, so local runs print nothing).
        runtime_env: a Ray runtime environment for the workers; its ``env_vars`` are merged
            over the one-BLAS-thread defaults. Python only: never taken from files.
        ray_init_options: extra ``ray.init`` keyword arguments (used only if this evaluator
            initialises Ray). Python only: never taken from files.

    Per step the driver pickles one payload (θ, σ, seeds, the shared state; D floats and a
    few hundred bytes), splits the rows into about ``num_workers × chunks_per_worker``
    ranges and sends them in about two calls per worker, the first of which carries the
    payload (inline up to 64 KiB, else its object-store reference); for explicit populations
    the K×D candidates travel with their ranges.

    Example::

        with RayEvaluator(num_workers=4) as ev:
            result = zoopt.minimize(objective, x0, estimator="es", evaluator=ev)
    """

    def __init__(
        self,
        num_workers: int | None = None,
        address: str | None = None,
        *,
        num_cpus_per_worker: float | None = None,
        num_gpus_per_worker: float | None = None,
        device: str | torch.device | None = None,
        chunks_per_worker: int = 1,
        processes_per_worker: int = 1,
        max_batch: int | None = None,
        max_retries: int = 3,
        seed: int = 0,
        startup_timeout: float = 300.0,
        replace_timeout: float = 60.0,
        reduce_threshold: float | None = REDUCE_THRESHOLD,
        relay_from: int | None = RELAY_FROM,
        log_to_driver: bool = False,
        runtime_env: dict | None = None,
        ray_init_options: dict | None = None,
        **unknown: Any,
    ):
        if unknown:
            raise TypeError(
                f"RayEvaluator got unknown option(s) {sorted(unknown)}; "
                f"valid options are {list(OPTIONS)}"
            )
        given = dict(locals())
        options = check_options({name: given[name] for name in OPTIONS})
        self.num_workers = num_workers
        self.address = address
        self.processes_per_worker = processes_per_worker
        if processes_per_worker > 1 and (
            (options["device"] or "cpu").startswith("cuda") or num_gpus_per_worker
        ):
            raise ValueError(
                f"processes_per_worker={processes_per_worker} evaluates on the CPU; use "
                "processes_per_worker=1 with device='cuda' or num_gpus_per_worker"
            )
        if num_cpus_per_worker is None:
            num_cpus_per_worker = processes_per_worker
        self.num_cpus_per_worker = num_cpus_per_worker
        self.num_gpus_per_worker = num_gpus_per_worker
        self.device = options["device"]
        self.chunks_per_worker = chunks_per_worker
        self.max_batch = max_batch
        self.max_retries = max_retries
        self.seed = seed
        self.startup_timeout = startup_timeout
        self.replace_timeout = replace_timeout
        self.reduce_threshold = reduce_threshold
        self.relay_from = relay_from
        self.log_to_driver = log_to_driver
        self.runtime_env = runtime_env
        self.ray_init_options = dict(ray_init_options or {})
        self._pool: WorkerPool | None = None
        self._started = False
        self._closed = False
        self._holds_session = False
        self._objective: Any = None
        self._objective_ref: Any = None
        self._token = 0
        self._step: tuple[Any, Any] | None = None  # (population, payload) of the last step
        self._steps = 0  # payloads packed so far
        self._sent: dict[Any, int] = {}  # actor -> the step whose payload it last received
        self._built: dict[Any, int] = {}  # actor -> the objective token it last received

    # -- life cycle -----------------------------------------------------------------------
    @property
    def workers(self) -> list:
        """The placed worker actor handles (starts the pool if needed)."""
        self.start()
        return list(self._pool.ready)

    @property
    def nodes(self) -> dict:
        """``{actor: Ray node id}`` of the placed workers (starts the pool if needed)."""
        self.start()
        return dict(self._pool.nodes)

    @property
    def restarts(self) -> int:
        """Workers replaced after dying, over the evaluator's lifetime."""
        return 0 if self._pool is None else self._pool.restarts

    def start(self) -> RayEvaluator:
        """Connect to (or start) Ray and start the workers; idempotent."""
        if self._closed:
            raise RuntimeError("this RayEvaluator is closed; create a new one")
        if self._started:
            return self
        self._holds_session = acquire_ray(self.address, self.log_to_driver, self.ray_init_options)
        try:
            res = resolve_resources(
                ray.cluster_resources(),
                self.num_workers,
                self.num_cpus_per_worker,
                self.num_gpus_per_worker,
                self.device,
            )
            self.num_workers, self.num_gpus_per_worker = res.num_workers, res.num_gpus_per_worker
            self.device = res.device
            self._pool = WorkerPool(self._new_worker, self.replace_timeout)
            self._pool.start(self.num_workers, self.startup_timeout)
        except BaseException:
            if self._pool is not None:
                self._pool.close()
            if self._holds_session:
                self._holds_session = False
                release_ray()
            raise
        self._started = True
        return self

    def _new_worker(self) -> Any:
        options: dict[str, Any] = {}
        if self.runtime_env is not None or not workers_inherit_thread_env():
            env = dict(self.runtime_env or {})
            env["env_vars"] = {**WORKER_ENV_VARS, **env.get("env_vars", {})}
            options["runtime_env"] = env
        return (
            remote_worker_class()
            .options(
                num_cpus=self.num_cpus_per_worker,
                num_gpus=self.num_gpus_per_worker,
                max_restarts=0,  # a dead worker is replaced explicitly, see WorkerPool.lose
                max_concurrency=1,
                **options,
            )
            .remote(self.seed, self.device, self.processes_per_worker, self.startup_timeout)
        )

    def close(self) -> None:
        """Stop the workers; shut down the Ray instance if this evaluator started it."""
        if self._closed:
            return
        self._closed = True
        if self._started:
            self._pool.close()
            self._objective = self._objective_ref = self._step = None
            if self._holds_session:
                self._holds_session = False
                release_ray()

    def __enter__(self) -> RayEvaluator:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"RayEvaluator(num_workers={self.num_workers}, address={self.address!r}, "
            f"processes_per_worker={self.processes_per_worker}, "
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

    def _bounds(self, population: Population, pieces: int | None = None) -> list[tuple[int, int]]:
        """About ``pieces`` (default ``num_workers × chunks_per_worker``) equal row ranges,
        whatever K; none larger than ``max_batch``.

        Ranges may split an antithetic pair (the worker regenerates its noise row for
        either half): with K/W small, whole pairs would leave some workers a pair more than
        others, up to 15% of the step at K = 10,000 rows on 1,440 workers.
        """
        if pieces is None:
            pieces = self.num_workers * self.processes_per_worker * self.chunks_per_worker
        return chunk_bounds(len(population), pieces, self.max_batch)

    def _reduce_bounds(self, population: GaussianPopulation) -> list[tuple[int, int]]:
        """Row ranges of the reduction: about √K of them, at most one per evaluation task.

        Each task costs (K/R)·D noise regenerations on a worker and sends D floats to the
        driver; R ≈ √K balances the two on a 10 Gb/s network (see
        ``benchmarks/bench_ray_scale.py``), e.g. 100 tasks for K = 10,000.
        """
        pieces = self.num_workers * self.processes_per_worker * self.chunks_per_worker
        return self._bounds(population, min(pieces, math.ceil(math.sqrt(len(population)))))

    def _payload(self, objective: Objective | None, population: Population, seed: int) -> Any:
        """``(step number, packed payload, objective token)``: the step's shared payload,
        pickled once (see :func:`~zoopt.evaluators.ray.worker.pack_payload`)."""
        shipped = None
        if isinstance(population, CenteredPopulation):
            # θ as row K after a Gaussian population's rows: the workers build both
            inner = shippable(population.population)
            if inner is not None:
                shipped = CenteredPopulation(inner, population.center.detach().to("cpu"))
        else:
            shipped = shippable(population)
        token = None if objective is None else self._objective_box(objective)[0]
        shared = None if objective is None else objective.shared_state()
        self._steps += 1
        return self._steps, pack_payload(StepPayload(token, shipped, shared, int(seed))), token

    def _box(self, actor: Any, payload: Any) -> tuple | None:
        """What the first call of a step to ``actor`` carries besides its ranges: the packed
        payload and, if ``actor`` has not built the step's objective, its reference; ``None``
        for the next calls of the step (the worker keeps the payload)."""
        step, packed, token = payload
        if self._sent.get(actor) == step:
            return None
        self._sent[actor] = step
        objective_box = None
        if token is not None and self._built.get(actor) != token:
            self._built[actor] = token
            objective_box = (token, [self._objective_ref])  # nested: fetched by the worker
        return step, packed, objective_box

    def evaluate(self, objective: Objective, population: Population, seed: int) -> Tensor:
        """Losses ``(K,)`` of ``population`` under ``objective`` with the step's ``seed``.

        Equal, number for number, to :class:`~zoopt.evaluators.local.LocalEvaluator` for
        objectives whose per-candidate losses depend neither on the batch they are in nor
        on global RNG state (randomness should come from ``seed``). For a large Gaussian
        population (K·D ≥ ``reduce_threshold``) the population's ``reducer`` is set to
        :meth:`reduce`, so that the estimator's sums run on the workers.

        Raises:
            ObjectiveError: the objective raised on a worker (names the rows).
            RuntimeError: a chunk's worker died more than ``max_retries`` times.
            WorkersLostError: every worker was lost and none could be placed in time.
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
        payload = self._payload(objective, population, seed)
        self._sent = {a: p for a, p in self._sent.items() if a in self._pool.nodes}
        self._built = {a: t for a, t in self._built.items() if a in self._pool.nodes}
        inner = population.population if isinstance(population, CenteredPopulation) else population
        gaussian = isinstance(inner, GaussianPopulation)
        if gaussian:
            self._step = (inner, payload)

        def submit(actor: Any, ranges: list[tuple[int, int]]) -> Any:
            # clone: pickling a view would ship the whole underlying storage
            rows = None
            if not gaussian:
                rows = [population.rows(a, b).detach().to("cpu").clone() for a, b in ranges]
            return actor.evaluate.remote((self._box(actor, payload), ranges, rows))

        bounds = self._bounds(population)
        if gaussian and self.relay_from is not None and len(self._pool.ready) >= self.relay_from:
            results, redo = self._relayed(bounds, payload)
            if redo:  # the ranges of workers that died, re-run with the same numbers
                failures = {a: 1 for a, _ in redo}
                results |= run_tasks(self._pool, redo, submit, self.max_retries, failures=failures)
        else:
            # a worker with processes gets all its ranges in one call, for its processes
            depth = 2 if self.processes_per_worker == 1 else 1
            results = run_tasks(self._pool, bounds, submit, self.max_retries, depth=depth)
        losses = torch.cat([from_wire(results[a][0]) for a, _ in bounds])
        for a, _ in bounds:  # merged in row order, so the driver's statistics are deterministic
            stats = results[a][1]
            if stats is not None:
                objective.absorb_stats(stats)
        if gaussian and self._reduces(inner):
            inner.reducer = self.reduce
        return losses

    def _relayed(self, bounds: list[tuple[int, int]], payload: Any) -> tuple[dict, list]:
        """One step through head workers: ``({start: result}, ranges to re-run)``."""
        self._pool.poll()  # replacements placed since the last step join the tree

        def submit(head: Any, own: list, children: list) -> Any:
            sub = [(child, self._box(child, payload), ranges) for child, ranges in children]
            return head.relay.remote((self._box(head, payload), own, sub))

        plan = relay_plan(list(self._pool.ready), bounds)
        results, redo, touched = run_relayed(self._pool, plan, submit)
        for actor in touched:  # whether they received the payload (or objective) is unknown
            self._sent.pop(actor, None)
            self._built.pop(actor, None)
        return results, redo

    def _reduces(self, population: GaussianPopulation) -> bool:
        return (
            self.reduce_threshold is not None
            and hasattr(population, "reducer")
            and len(population) * population.dim >= self.reduce_threshold
        )

    def reduce(
        self, population: GaussianPopulation, coeffs: Tensor, square: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        """:meth:`GaussianPopulation.reduce` computed on the workers.

        ``(Σ cᵢ zᵢ (D,), M)`` with M None unless ``square``, then Σ cᵢ (zᵢ² − 1) ``(D,)``,
        or Σ cᵢ (zᵢzᵢᵀ − I) ``(D, D)`` for a full factor. Each task regenerates its rows' z
        and returns float64 partial sums; the driver adds them in row order (the same order
        whichever worker ran which rows, so the result does not depend on placement or
        faults) and casts to the population's dtype. Against the local float32 sum over all
        K rows it differs by summation order only (see ``tests/test_ray.py`` for the bound).
        """
        if not isinstance(population, GaussianPopulation):
            raise TypeError(f"reduce needs a GaussianPopulation, got {type(population).__name__}")
        coeffs = torch.as_tensor(coeffs).detach().to("cpu")
        if coeffs.shape != (len(population),):
            raise ValueError(
                f"coeffs must have shape ({len(population)},), got {tuple(coeffs.shape)}"
            )
        self.start()
        if self._step is not None and self._step[0] is population:
            payload = self._step[1]  # θ and the seeds are already on the workers
        else:
            payload = self._payload(None, population, 0)
            self._step = (population, payload)

        def submit(actor: Any, ranges: list[tuple[int, int]]) -> Any:
            parts = [coeffs[a:b].numpy().copy() for a, b in ranges]
            return actor.reduce.remote((self._box(actor, payload), ranges, parts, square))

        bounds = self._reduce_bounds(population)
        depth = 2 if self.processes_per_worker == 1 else 1  # see evaluate
        results = run_tasks(self._pool, bounds, submit, self.max_retries, depth=depth)
        first, second = torch.zeros(population.dim, dtype=torch.float64), None
        for a, _ in bounds:
            part, part2 = results[a]
            first += from_wire(part)
            if square:
                part2 = from_wire(part2)
                second = part2 if second is None else second + part2
        dtype, device = population.center.dtype, population.center.device
        return first.to(dtype).to(device), (None if second is None else second.to(dtype).to(device))
