"""Ray at cluster scale: the driver's constants measured here, and a model of the step time.

Measured on this machine, with a private Ray instance and a near-free objective (so that what
is timed is the evaluator, not the objective):

* ``c_call``   driver CPU per call, from steps of one and of ``--workers`` calls (one per
  worker, all sent at once, as in a real step): submit, collect and place;
* ``c_bare``   Ray's bare actor call (submit and get, no arguments), in the same pool;
* ``c_step``   driver CPU per step besides its calls (payload pickled, results put together);
* per range:  driver CPU per row range when a step has 64 ranges per worker (they travel
  several to a call: the old cost per task, before ranges were batched, was about 2.5 c_bare);
* bytes per step: the payload (θ, σ, seeds; pickled once, carried by each worker's first
  call), per call and per result; ``ray.put`` throughput;
* the reduction's constants, per element of the K×D population: ``c_red`` a worker's
  partial sums (antithetic pairs folded, one noise block at a time), against the previous
  dense algorithm written out here (regenerate the signed rows, float64 copy, weighted
  sum) and the driver's own float32 ``reduce`` (regenerate + sum), ``c_gen`` to regenerate
  the rows, ``c_add`` to add a part on the driver; the reduction's round trip, and from it
  the K·D above which it pays (``REDUCE_THRESHOLD`` in the evaluator);
* the target case: one ``es`` step (ask, evaluate, tell) at K = 16,384, D = 10⁴, wall time
  on 2 Ray workers (the reduction on the workers) against the local evaluator, interleaved,
  this process at the Ray workers' niceness (15) so that both compete on equal terms.

* one actor per machine (``processes_per_worker``): ``c_pipe``, such an actor's CPU per
  process and step (a :class:`ProcessEvaluator` in this process, pools of 2 and 8), and
  ``c_pool``, its CPU per step besides; a step on this machine through one actor with 2
  processes against 2 actors.

The model: one core per worker, 32 workers per machine, a 10 Gb/s network; n = min(W, K)
calls, one per worker that has rows (K/W rows each, balanced to the row); θ sent once to
each machine involved; the driver's dispatch serial (n·c_call + c_step); the reduction in
R = min(n, ⌈√K⌉) tasks, each regenerating K/R rows and sending D float64 to the driver,
added there. Occupancy = the workers' time spent on episodes over W × the predicted step =
(K·t_episode/W) / step. Workloads: Humanoid-like (K = 10,000, D = 170,000, t_episode chosen
so that the ideal step on 1,440 workers is 6.9 s) and CartPole-like (K = 256, D = 1,000, 5 ms
episodes). The "per machine" columns model one actor per machine with 32 processes: the
driver calls ⌈n/32⌉ actors (relayed from 16), each actor adds ``c_pool`` + 32·``c_pipe``
(and for the reduction ``c_pool`` + its share of the min(n, ⌈√K⌉) ranges × ``c_pipe``).

``--compiled`` also measures Ray's compiled graphs (``ray.dag.InputNode``,
``MultiOutputNode``, ``experimental_compile``: channels that stay open between executions)
on pools of the same size, against ordinary actor calls, interleaved (:func:`compiled_graph`):
the driver's CPU per actor for dispatch alone (execute, then read results that are already
there), its CPU per step while the workers run (channel reads poll), the workers' CPU while
they wait for the next step, a step's wall time on this machine with CPU-bound work, and the
time until an actor killed mid-execution surfaces; then the model with ``c_call`` replaced by
the compiled graph's cost per actor (a flat graph: one channel per worker, no relay).

``--gcs-seconds S`` also runs S seconds of small steps twice, with the task-event cap of a
private instance and with a cap of 100,000 tasks, and prints the GCS server's memory after
warm-up and at the end of each (flat means within ±10%).

Run: ``python benchmarks/bench_ray_scale.py [--repeats 3] [--workers 8] [--compiled]
[--gcs-seconds 60]``
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time

import numpy as np
import ray
import torch

from zoopt import GaussianPopulation, Objective
from zoopt.estimators import get_estimator
from zoopt.evaluators import LocalEvaluator, ProcessEvaluator
from zoopt.evaluators.ray import RayEvaluator, start_local_ray
from zoopt.evaluators.ray.evaluator import REDUCE_THRESHOLD, RELAY_FROM
from zoopt.evaluators.ray.scheduler import relay_plan
from zoopt.evaluators.ray.worker import StepPayload, pack_payload

torch.set_num_threads(1)

#: Ray's default niceness of worker processes (RAY_worker_niceness)
RAY_WORKER_NICENESS = int(os.environ.get("RAY_worker_niceness", "15"))

#: model assumptions
CORES_PER_MACHINE = 32
NETWORK_BYTES_PER_S = 10e9 / 8
WORKLOADS = {
    # name: (K, D, seconds per episode)
    "humanoid": (10_000, 170_000, 6.9 * 1440 / 10_000),
    "cartpole": (256, 1_000, 0.005),
}
WORKERS = (8, 16, 32, 48, 64, 128, 256, 512, 1024, 1440, 2048, 4096)


class Free(Objective):
    """A near-free objective: the first coordinate."""

    def evaluate(self, X, seed=0):
        return X[:, 0].clone()


class CpuReporter(Free):
    """:class:`Free` whose statistics are (process id, CPU seconds of that process so far):
    consecutive steps give each worker's CPU per step, a head's relaying included."""

    def __init__(self):
        self.seen: list[tuple[int, float]] = []

    def pop_stats(self):
        return os.getpid(), time.process_time()

    def absorb_stats(self, stats):
        self.seen.append(stats)


def _cpu(fn) -> float:
    t0 = time.process_time()
    fn()
    return time.process_time() - t0


def _wall(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _nbytes(value) -> int:
    ctx = ray._private.worker.global_worker.get_serialization_context()
    return ctx.serialize(value).total_bytes


def dense_partial_sums(pop: GaussianPopulation, start: int, stop: int, c: torch.Tensor):
    """The reference: the previous worker-side reduction (the signed rows regenerated, stacked
    and copied to float64, then the weighted sum)."""
    z = pop._perturbations(start, stop).to(torch.float64)
    return c.to(torch.float64) @ z


def measure(repeats: int, workers: int) -> dict:
    c: dict = {}
    obj = Free()
    share = 2 / workers  # every worker on the instance's 2 CPUs
    with RayEvaluator(
        num_workers=workers, num_cpus_per_worker=share, reduce_threshold=None, relay_from=None
    ) as ev:
        one = GaussianPopulation(torch.zeros(8), 0.1, 0, 1)
        full = GaussianPopulation(torch.zeros(8), 0.1, 0, workers)
        many = GaussianPopulation(torch.zeros(8), 0.1, 0, 64 * workers)
        for pop in (one, full, many):
            ev.evaluate(obj, pop, 0)
        handles = ev.workers
        calls, bare, per_range, steps = [], [], [], []
        for _ in range(repeats):  # interleaved
            t1 = statistics.median(_cpu(lambda: ev.evaluate(obj, one, 1)) for _ in range(20))
            tw = statistics.median(_cpu(lambda: ev.evaluate(obj, full, 1)) for _ in range(20))
            calls.append((tw - t1) / (workers - 1))
            steps.append(t1)
            bare.append(
                statistics.median(
                    _cpu(lambda: ray.get([h.ready.remote() for h in handles])) for _ in range(20)
                )
                / workers
            )
            ev.chunks_per_worker = 64
            per_range.append(
                statistics.median(_cpu(lambda: ev.evaluate(obj, many, 1)) for _ in range(5))
                / len(ev._bounds(many))
            )
            ev.chunks_per_worker = 1
        # relayed: ⌊√W⌋ heads pass the calls of their groups on. The driver's CPU per step,
        # and each head's CPU per child call (its CPU per step beyond a child's)
        ev.relay_from = 2
        reporter = CpuReporter()
        ev.evaluate(reporter, full, 0)
        relayed = []
        for _ in range(repeats):
            relayed.append(
                statistics.median(_cpu(lambda: ev.evaluate(reporter, full, 1)) for _ in range(20))
            )
        plan = relay_plan(ev.workers, ev._bounds(full))
        heads = {ray.get(h.ready.remote()) for h, _, _ in plan}
        per_pid: dict[int, list[float]] = {}
        for pid, t in reporter.seen:
            per_pid.setdefault(pid, []).append(t)
        cost = {pid: statistics.median(np.diff(ts)) for pid, ts in per_pid.items()}
        head_cost = statistics.median(v for pid, v in cost.items() if pid in heads)
        child_cost = statistics.median(v for pid, v in cost.items() if pid not in heads)
        children = statistics.median(len(ch) for _, _, ch in plan)
        c["c_head"] = max(0.0, (head_cost - child_cost) / children)
        c["relayed_step"] = statistics.median(relayed)
        c["relay_groups"] = len(plan)
        ev.relay_from = None
        c["c_call"], c["c_bare"] = statistics.median(calls), statistics.median(bare)
        c["c_step"] = max(0.0, statistics.median(steps) - c["c_call"])
        c["c_range_64"] = statistics.median(per_range)
        c["calls"], c["bares"] = calls, bare
        # the reduction's round trip on a tiny population: what it costs beyond the work
        small = GaussianPopulation(torch.zeros(8), 0.1, 0, 2)
        tiny_c = torch.randn(2)
        ev.evaluate(obj, small, 0)
        ev.reduce(small, tiny_c)
        c["t_reduce_trip"] = statistics.median(
            _wall(lambda: ev.reduce(small, tiny_c)) for _ in range(20)
        )
    d = 10_000
    pop = GaussianPopulation(torch.zeros(d), 0.1, 3, 512)
    c["payload_bytes"] = len(pack_payload(StepPayload(1, pop, None, 3)))
    c["call_bytes"] = _nbytes((None, [(0, 256)], None))
    c["reduce_result_bytes"] = _nbytes(np.zeros(d))
    big = torch.randn(10_000_000)
    ray.put(big)
    c["put_bytes_per_s"] = (
        big.numel() * 4 / statistics.median(_wall(lambda: ray.put(big)) for _ in range(repeats))
    )
    # the reduction's constants per element of a K×D antithetic population, interleaved,
    # each on a fresh population (nothing cached)
    k = 256
    n = k * d
    coeffs = torch.randn(k)
    fresh = [GaussianPopulation(torch.zeros(d), 0.1, s, k) for s in range(100, 100 + 4 * repeats)]
    gen, red, dense, driver, rand = [], [], [], [], []
    for i in range(repeats):
        p1, p2, p3, p4 = fresh[4 * i : 4 * i + 4]
        rand.append(_cpu(lambda p=p1: p.noise()) / n)  # the K/2 noise rows alone
        gen.append(_cpu(lambda p=p1: p.perturbations()) / n)
        red.append(_cpu(lambda p=p2: p.partial_reduce(coeffs, 0, k)) / n)
        dense.append(_cpu(lambda p=p3: dense_partial_sums(p, 0, k, coeffs)) / n)
        driver.append(_cpu(lambda p=p4: p.reduce(coeffs)) / n)
    c["c_gen"], c["c_red"] = statistics.median(gen), statistics.median(red)
    c["c_dense"], c["c_sum32"] = statistics.median(dense), statistics.median(driver)
    c["c_rand"] = statistics.median(rand)
    c["reds"], c["denses"] = red, dense
    acc, part = torch.zeros(1_000_000, dtype=torch.float64), torch.ones(1_000_000).double()
    c["c_add"] = statistics.median(_cpu(lambda: acc.add_(part)) for _ in range(20)) / part.numel()
    # the reduction pays once the driver's own sum (K·D·c_sum32) costs more than the round
    # trip plus the workers' share of the work (K·D·c_red/W): with many workers and with 2
    c["threshold"] = c["t_reduce_trip"] / c["c_sum32"]
    c["threshold_2"] = c["t_reduce_trip"] / max(1e-12, c["c_sum32"] - c["c_red"] / 2)
    return c


def measure_machines(repeats: int, processes: int = 8) -> dict:
    """The constants of one actor per machine (``processes_per_worker``), interleaved.

    ``c_pipe``, ``c_pool``: a :class:`ProcessEvaluator` in this process, as such an actor runs
    it, on a CartPole-sized population (K = 256, D = 1,000): its CPU per process and step
    (the payload with the first task, the losses back), from pools of 2 and ``processes``
    processes, and its CPU per step besides. Then steps through Ray on this machine: one
    actor with 2 processes against 2 actors of one process (driver CPU and wall per step).
    """
    c: dict = {}
    obj = Free()

    def pop(s: int) -> GaussianPopulation:
        return GaussianPopulation(torch.zeros(1_000), 0.1, s, 256)

    pools = {2: ProcessEvaluator(2), processes: ProcessEvaluator(processes)}
    per: dict[int, list[float]] = {p: [] for p in pools}
    try:
        for ev in pools.values():
            ev.evaluate(obj, pop(0), 0)  # started, the objective built
        for _ in range(repeats):
            for p, ev in pools.items():
                per[p].append(
                    statistics.median(
                        _cpu(lambda e=ev: e.evaluate(obj, pop(1), 1)) for _ in range(30)
                    )
                )
    finally:
        for ev in pools.values():
            ev.close()
    small, large = statistics.median(per[2]), statistics.median(per[processes])
    c["c_pipe"] = max(0.0, (large - small) / (processes - 2))
    c["c_pool"] = max(0.0, small - 2 * c["c_pipe"])
    c["pool_steps"], c["pool_processes"] = per, processes
    machine = RayEvaluator(num_workers=1, processes_per_worker=2, num_cpus_per_worker=1)
    cores = RayEvaluator(num_workers=2, num_cpus_per_worker=0.5)
    runs: dict[str, dict[str, list[float]]] = {
        "machine": {"cpu": [], "wall": []},
        "cores": {"cpu": [], "wall": []},
    }
    try:
        for ev in (machine, cores):
            ev.evaluate(obj, pop(0), 0)
        for _ in range(repeats):
            for name, ev in (("machine", machine), ("cores", cores)):
                t0, c0 = time.perf_counter(), time.process_time()
                for s in range(30):
                    ev.evaluate(obj, pop(s), s)
                runs[name]["cpu"].append((time.process_time() - c0) / 30)
                runs[name]["wall"].append((time.perf_counter() - t0) / 30)
    finally:
        machine.close()
        cores.close()
    c["ray_machine"] = runs
    return c


def target_case(repeats: int) -> dict[str, list[float]]:
    """One ``es`` step (ask, evaluate, tell) at K = 16,384, D = 10⁴: wall and driver CPU
    seconds with 2 Ray workers (the reduction on the workers) and with the local evaluator,
    interleaved."""
    obj, x = Free(), torch.zeros(10_000)
    es = get_estimator("es", sigma=0.1, population=16_384)
    out: dict[str, list[float]] = {"ray": [], "local": [], "ray_cpu": [], "local_cpu": []}
    local = LocalEvaluator()
    with RayEvaluator(num_workers=2) as ev:
        step0 = es.ask(x, 0)
        es.tell(x, step0, ev.evaluate(obj, step0, 0))  # warm-up: workers build the objective
        for s in range(1, repeats + 1):
            for name, e in (("ray", ev), ("local", local)):
                pop = es.ask(x, s)

                def step(e=e, pop=pop, s=s):
                    es.tell(x, pop, e.evaluate(obj, pop, s))

                t0, c0 = time.perf_counter(), time.process_time()
                step()
                out[name].append(time.perf_counter() - t0)
                out[f"{name}_cpu"].append(time.process_time() - c0)
                del pop
    return out


def _spin(seconds: float) -> None:
    """Burn ``seconds`` of this thread's CPU (a CPU-bound episode)."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        sum(range(1000))


class GraphWorker:
    """A bare actor for :func:`compiled_graph`: returns a small array, as a worker's losses."""

    def step(self, task):
        theta, seed, sleep, busy = task
        if sleep:
            time.sleep(sleep)
        if busy:
            _spin(busy)
        return np.full(4, float(seed), dtype=np.float32)

    def cpu(self) -> float:
        """This process's CPU seconds so far (an ordinary call)."""
        return time.process_time()


def _graph(actors: list):
    from ray.dag import InputNode, MultiOutputNode

    with InputNode() as inp:
        dag = MultiOutputNode([a.step.bind(inp) for a in actors])
    return dag.experimental_compile()


#: seconds an execution of a compiled graph may take before it counts as stalled
GRAPH_TIMEOUT_S = 10.0


def compiled_graph(repeats: int, workers: int, d: int = 1_000) -> dict:
    """Ray's compiled graphs against ordinary actor calls, on this instance, interleaved.

    One graph exists at a time (an actor serves one compiled graph at a time: a second graph
    over the same actor never starts its loop), compiled for each measurement and torn down
    after it; the ordinary calls go to other actors. Each step sends ``(θ (d,) float32, seed,
    sleep, busy)`` to every actor and gets 4 floats back. An execution that has not returned
    after :data:`GRAPH_TIMEOUT_S` counts as a stall: the graph is rebuilt and the measurement
    repeated. Returns seconds:

    * ``cg_call`` / ``plain_call``: driver CPU per actor for dispatch alone (execute or
      submit, then, 20 ms later, read results that are already there), from steps on 1 and
      on ``workers`` actors;
    * ``cg_wait`` / ``plain_wait``: driver CPU per step while ``workers`` actors sleep 20 ms;
    * ``cg_idle`` / ``plain_idle``: the ``workers`` actors' CPU per second between steps;
    * ``cg_wall`` / ``plain_wall``: wall per step on 2 actors with 20 ms of CPU work each and
      5 ms of the driver's own CPU work between steps (the one-machine case);
    * ``cg_compile``: compiling and the first execution; ``cg_stalls``: stalled executions;
    * ``cg_fault``: from killing an actor mid-execution to the error (``cg_fault_error``),
      ``cg_rebuild``: tearing the graph down and compiling it again without that actor.
    """
    from ray.exceptions import RayChannelTimeoutError

    actor = ray.remote(num_cpus=0, max_restarts=0)(GraphWorker)
    pool, plain = [actor.remote() for _ in range(workers)], [actor.remote() for _ in range(workers)]
    ray.get([a.cpu.remote() for a in pool + plain])
    theta = np.random.default_rng(0).random(d, dtype=np.float32)
    c: dict = {"cg_stalls": 0, "compiles": []}

    def with_graph(actors: list, measure) -> float:
        """``measure(graph)`` on a fresh graph over ``actors``; rebuilt after a stall (at
        most 3 tries)."""
        for _ in range(3):
            t0 = time.perf_counter()
            graph = _graph(actors)
            try:
                ray.get(graph.execute((theta, 0, 0.0, 0.0)), timeout=GRAPH_TIMEOUT_S)
                c["compiles"].append(time.perf_counter() - t0)
                return measure(graph)
            except RayChannelTimeoutError:
                c["cg_stalls"] += 1
            finally:
                graph.teardown()
        raise RuntimeError(f"3 compiled graphs over {len(actors)} actors stalled")

    def send(task: tuple, graph, actors: list):
        """One step's task to every actor: an execution of ``graph`` if given, else an
        ordinary call to each of ``actors``; the result's reference(s)."""
        return graph.execute(task) if graph is not None else [a.step.remote(task) for a in actors]

    def dispatch(w: int, graph=None, steps: int = 40) -> float:
        cpu = 0.0
        for s in range(steps):
            t0 = time.process_time()
            ref = send((theta, s, 0.0, 0.0), graph, plain[:w])
            cpu += time.process_time() - t0
            time.sleep(0.02)  # every result is there before it is read
            t0 = time.process_time()
            ray.get(ref, timeout=GRAPH_TIMEOUT_S)
            cpu += time.process_time() - t0
        return cpu / steps

    def waiting(graph=None, steps: int = 20) -> float:
        task = (theta, 1, 0.02, 0.0)
        t0 = time.process_time()
        for _ in range(steps):
            ray.get(send(task, graph, plain), timeout=GRAPH_TIMEOUT_S)
        return (time.process_time() - t0) / steps

    def idle(actors: list) -> float:
        before = sum(ray.get([a.cpu.remote() for a in actors]))
        time.sleep(1.0)
        return sum(ray.get([a.cpu.remote() for a in actors])) - before

    def wall(graph=None, steps: int = 10) -> float:
        task = (theta, 1, 0.0, 0.02)
        t0 = time.perf_counter()
        for _ in range(steps):
            ray.get(send(task, graph, plain[:2]), timeout=GRAPH_TIMEOUT_S)
            _spin(0.005)  # the driver's ask and tell
        return (time.perf_counter() - t0) / steps

    runs: dict = {f"{p}_{k}": [] for p in ("cg", "plain") for k in ("call", "wait", "idle", "wall")}
    for _ in range(repeats):  # interleaved
        one = with_graph(pool[:1], lambda g: dispatch(1, g))
        many = with_graph(pool, lambda g: dispatch(workers, g))
        runs["cg_call"].append((many - one) / (workers - 1))
        runs["plain_call"].append((dispatch(workers) - dispatch(1)) / (workers - 1))
        runs["cg_wait"].append(with_graph(pool, waiting))
        runs["plain_wait"].append(waiting())
        runs["cg_idle"].append(with_graph(pool, lambda g: idle(pool)))
        runs["plain_idle"].append(idle(plain))
        runs["cg_wall"].append(with_graph(pool[:2], wall))
        runs["plain_wall"].append(wall())
    c |= {k: statistics.median(v) for k, v in runs.items()}
    c["runs"] = runs
    c["cg_compile"] = statistics.median(c["compiles"])

    def fault(graph) -> None:  # an actor killed mid-execution: the error, then a rebuild
        ref = graph.execute((theta, 2, 0.5, 0.0))
        time.sleep(0.1)
        t0 = time.perf_counter()
        ray.kill(pool[-1], no_restart=True)
        try:
            ray.get(ref, timeout=60)
            c["cg_fault_error"] = "none"
        except Exception as exc:  # what the driver sees
            c["cg_fault_error"] = type(exc).__name__
        c["cg_fault"] = time.perf_counter() - t0

    with_graph(pool, fault)
    t0 = time.perf_counter()
    with_graph(pool[:-1], lambda g: None)
    c["cg_rebuild"] = time.perf_counter() - t0
    for a in pool + plain:
        ray.kill(a)
    return c


def dispatch_seconds(c: dict, n: int, relay: bool) -> float:
    """The serial dispatch of n calls: n·c_call from the driver, or, relayed, ⌊√n⌋ calls
    from the driver and then the largest group's children from its head."""
    if not relay or n < 2:
        return n * c["c_call"]
    g = math.isqrt(n)
    return g * c["c_call"] + (math.ceil(n / g) - 1) * c["c_head"]


def predict(
    c: dict,
    k: int,
    d: int,
    t_ep: float,
    w: int,
    relay: bool | None = None,
    per_machine: bool = False,
) -> tuple[float, float]:
    """(predicted step seconds, occupancy) on ``w`` workers: only min(w, k) workers have
    rows, so only that many calls are made; relayed from ``RELAY_FROM`` workers on, as the
    evaluator does (``relay`` forces either). ``per_machine``: one actor per machine with
    ``processes_per_worker`` = its cores; the driver calls the m actors, and each actor
    serves its processes one after another (``c_pool`` + p·``c_pipe``), for the reduction
    too."""
    n = min(w, k)
    machines = math.ceil(n / CORES_PER_MACHINE)
    callees = machines if per_machine else n
    if relay is None:
        relay = callees >= RELAY_FROM
    t_put = machines * d * 4 / NETWORK_BYTES_PER_S
    dispatch = dispatch_seconds(c, callees, relay) + c["c_step"]
    if per_machine:
        dispatch += c["c_pool"] + min(n, CORES_PER_MACHINE) * c["c_pipe"]
    compute = math.ceil(k / w) * (t_ep + d * c["c_gen"])
    if k * d >= c["threshold"]:
        r = min(n, math.ceil(math.sqrt(k)))  # on the workers, or on the actors' processes
        calls = min(callees, r) * c["c_call"]
        if per_machine:  # each actor hands its ranges to its processes
            calls += c["c_pool"] + math.ceil(r / machines) * c["c_pipe"]
        reduce = (
            calls
            + math.ceil(k / r) * d * c["c_red"]
            + r * d * 8 / NETWORK_BYTES_PER_S
            + r * d * c["c_add"]
        )
    else:
        reduce = k * d * c["c_sum32"]  # on the driver
    step = t_put + dispatch + compute + reduce
    return step, (k * t_ep / w) / step


def call_cost_for(c: dict, k: int, d: int, t_ep: float, w: int, occupancy: float) -> float:
    """The ``c_call`` at which the model reaches ``occupancy`` at ``w`` workers, unrelayed."""
    n = min(w, k)
    step, _ = predict({**c, "c_call": 0.0}, k, d, t_ep, w, relay=False)
    r = min(n, math.ceil(math.sqrt(k))) if k * d >= c["threshold"] else 0
    return max(0.0, ((k * t_ep / w) / occupancy - step) / (n + r))


def gcs_memory(seconds: float, system_config: dict | None) -> tuple[float, float, int]:
    """(GCS RSS MB after warm-up, at the end, tasks run) for ``seconds`` of small steps."""
    opts = {} if system_config is None else {"_system_config": system_config}
    start_local_ray(num_cpus=2, **opts)
    try:
        gcs = ray._private.worker._global_node.all_processes["gcs_server"][0].process.pid

        def rss_mb() -> float:  # resident set size from /proc (Linux)
            with open(f"/proc/{gcs}/status") as f:
                line = next(x for x in f if x.startswith("VmRSS:"))
            return int(line.split()[1]) / 1024

        obj, tasks = Free(), 0
        with RayEvaluator(num_workers=2, chunks_per_worker=64) as ev:
            pop = GaussianPopulation(torch.zeros(8), 0.1, 0, 256)
            per_step = len(ev._bounds(pop))  # row ranges (several travel in one call)
            t_end, t_warm = time.monotonic() + seconds, time.monotonic() + seconds / 6
            first = None
            while time.monotonic() < t_end:
                ev.evaluate(obj, pop, tasks)
                tasks += per_step
                if first is None and time.monotonic() > t_warm:
                    first = rss_mb()
        return first or 0.0, rss_mb(), tasks
    finally:
        ray.shutdown()


def print_compiled(c: dict, g: dict, workers: int) -> None:
    """The compiled graph's measurements and the model with its cost per actor."""

    def ms(key):
        runs = ", ".join(f"{1e3 * v:.3f}" for v in g["runs"][key])
        return f"{1e3 * g[key]:.3f} ms ({runs})"

    print(f"\ncompiled graphs against ordinary calls, {workers} actors, D=1,000 payload:")
    print(f"  dispatch, driver CPU per actor   compiled {ms('cg_call')}")
    print(
        f"                                   ordinary {ms('plain_call')}: "
        f"{g['plain_call'] / g['cg_call']:.2f}x the compiled"
    )
    print(f"  driver CPU per step, actors sleeping 20 ms: compiled {ms('cg_wait')}")
    print(
        f"                                              ordinary {ms('plain_wait')}: "
        f"compiled {g['cg_wait'] / g['plain_wait']:.2f}x"
    )
    print(
        f"  the {workers} actors' CPU per second between steps: compiled "
        f"{g['cg_idle']:.2f} s, ordinary {g['plain_idle']:.2f} s"
    )
    print(
        f"  wall per step, 2 actors x 20 ms CPU + 5 ms driver work: compiled {ms('cg_wall')}, "
        f"ordinary {ms('plain_wall')}: compiled {g['cg_wall'] / g['plain_wall']:.2f}x"
    )
    print(
        f"  compile and first execution {g['cg_compile']:.2f} s; executions stalled past "
        f"{GRAPH_TIMEOUT_S:g} s: {g['cg_stalls']}; actor killed mid-execution: "
        f"{g['cg_fault_error']} after {g['cg_fault']:.2f} s, teardown (after that fault) and "
        f"rebuild {g['cg_rebuild']:.2f} s"
    )
    cg = {**c, "c_call": g["cg_call"]}
    print("  model with c_call = the compiled cost per actor (flat, no relay):")
    for name, w in (("cartpole", 16), ("cartpole", 32), ("cartpole", 64), ("humanoid", 1440)):
        step, eff = predict(cg, *WORKLOADS[name], w, relay=False)
        base = predict(c, *WORKLOADS[name], w)[1]
        print(
            f"    {name:<9} W={w:>5}: step {step:.4f} s, occupancy {100 * eff:.1f}% "
            f"(ordinary calls, relayed: {100 * base:.1f}%)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=8, help="pool for c_call")
    parser.add_argument("--gcs-seconds", type=float, default=0.0)
    parser.add_argument("--compiled", action="store_true", help="measure compiled graphs")
    args = parser.parse_args()
    # Ray runs its workers at niceness 15; the local evaluator of the target case runs here,
    # so this process moves to the same niceness (as bench_ray.py does): on a shared machine
    # both then compete for the CPU on equal terms (on an idle one this changes nothing)
    os.nice(max(0, RAY_WORKER_NICENESS - os.nice(0)))
    start_local_ray(num_cpus=2)
    c = measure(args.repeats, args.workers)
    c |= measure_machines(args.repeats)
    target = target_case(args.repeats)
    graph = compiled_graph(args.repeats, args.workers) if args.compiled else None
    ray.shutdown()

    def ms(values):
        return ", ".join(f"{1e3 * v:.3f}" for v in values)

    print("constants measured on this machine (near-free objective):")
    print(
        f"  driver CPU per call       c_call  {1e3 * c['c_call']:.3f} ms ({ms(c['calls'])}), "
        f"{c['c_call'] / c['c_bare']:.2f}x Ray's bare actor call"
    )
    print(f"  Ray's bare actor call     c_bare  {1e3 * c['c_bare']:.3f} ms ({ms(c['bares'])})")
    print(f"  driver CPU per step       c_step  {1e3 * c['c_step']:.3f} ms (besides its calls)")
    flat = c["c_step"] + args.workers * c["c_call"]
    print(
        f"  relayed step of {args.workers} calls        driver {1e3 * c['relayed_step']:.3f} ms "
        f"through {c['relay_groups']} heads, against {1e3 * flat:.3f} ms unrelayed "
        f"({c['relayed_step'] / flat:.2f}x)"
    )
    print(f"  head CPU per child call   c_head  {1e3 * c['c_head']:.3f} ms")
    pp = c["pool_processes"]
    print(
        f"  actor with processes: CPU per process and step  c_pipe  {1e3 * c['c_pipe']:.3f} ms "
        f"({c['c_pipe'] / c['c_call']:.2f}x c_call; pools of 2 and {pp}: "
        f"{ms(c['pool_steps'][2])} / {ms(c['pool_steps'][pp])} ms a step)"
    )
    print(f"  actor with processes: CPU per step besides      c_pool  {1e3 * c['c_pool']:.3f} ms")
    rm = c["ray_machine"]
    med = {name: {key: statistics.median(v) for key, v in r.items()} for name, r in rm.items()}
    print(
        f"  a step on this machine (K=256, D=1,000, near-free objective): 1 actor x 2 processes "
        f"driver CPU {ms(rm['machine']['cpu'])} ms, wall {ms(rm['machine']['wall'])} ms; "
        f"2 actors {ms(rm['cores']['cpu'])} ms, wall {ms(rm['cores']['wall'])} ms "
        f"(driver CPU {med['machine']['cpu'] / med['cores']['cpu']:.2f}x, "
        f"wall {med['machine']['wall'] / med['cores']['wall']:.2f}x)"
    )
    print(
        f"  per range, 64 per worker          {1e3 * c['c_range_64']:.3f} ms "
        f"({c['c_range_64'] / c['c_bare']:.2f}x the bare call)"
    )
    print(f"  payload per step (D=1e4)          {c['payload_bytes']:,} B (inline, pickled once)")
    print(f"  per call / per result row         {c['call_bytes']} B / 4 B")
    print(f"  reduction result per task (D=1e4) {c['reduce_result_bytes']:,} B")
    print(f"  ray.put throughput                {c['put_bytes_per_s'] / 1e9:.2f} GB/s")
    print("  per element of K×D (K=256 antithetic, D=1e4):")
    print(f"    worker partial sums, folded  c_red   {1e9 * c['c_red']:.2f} ns   (target <= 5)")
    print(
        f"    previous dense partial sums          {1e9 * c['c_dense']:.2f} ns   "
        f"(folded / dense {c['c_red'] / c['c_dense']:.2f}x)"
    )
    print(f"    driver float32 reduce (regenerate + sum) {1e9 * c['c_sum32']:.2f} ns")
    print(f"    its random numbers alone (K/2 noise rows)   {1e9 * c['c_rand']:.2f} ns")
    print(f"    row regeneration             c_gen   {1e9 * c['c_gen']:.2f} ns")
    print(f"    driver addition              c_add   {1e9 * c['c_add']:.2f} ns")
    print(
        f"  reduction round trip              {1e3 * c['t_reduce_trip']:.2f} ms -> pays from "
        f"K·D = {c['threshold']:,.0f} (many workers), {c['threshold_2']:,.0f} (2 workers); "
        f"REDUCE_THRESHOLD = {REDUCE_THRESHOLD:,}"
    )
    ray_wall, local_wall = statistics.median(target["ray"]), statistics.median(target["local"])
    print("\ntarget case: one es step (ask, evaluate, tell), K=16,384, D=10^4")
    print(f"  2 Ray workers, reduction on the workers  {ms(target['ray'])} ms wall")
    print(f"  local evaluator                          {ms(target['local'])} ms wall")
    print(f"  ratio ray / local (median) {ray_wall / local_wall:.3f}   (target <= 1)")
    print(
        f"  driver CPU: ray {ms(target['ray_cpu'])} ms, local {ms(target['local_cpu'])} ms "
        f"({statistics.median(target['ray_cpu']) / statistics.median(target['local_cpu']):.3f}x)"
    )
    print(
        f"\nmodel: one core per worker, {CORES_PER_MACHINE} per machine, "
        f"{NETWORK_BYTES_PER_S * 8 / 1e9:g} Gb/s, one call per worker with rows (relayed "
        f"through isqrt(n) heads from {RELAY_FROM} workers), θ sent to every machine, "
        f"reduction in min(W, ceil(sqrt K)) tasks"
    )
    for name, (k, d, t_ep) in WORKLOADS.items():
        print(f"\n{name}: K={k:,} D={d:,} episode {1e3 * t_ep:.1f} ms")
        print(
            f"  {'W':>6} {'ideal s':>9} {'step s':>9} {'occupancy':>10} "
            f"{'unrelayed s':>12} {'occupancy':>10} {'per machine s':>14} {'occupancy':>10}"
        )
        for w in WORKERS:
            step, eff = predict(c, k, d, t_ep, w)
            flat_step, flat_eff = predict(c, k, d, t_ep, w, relay=False)
            node_step, node_eff = predict(c, k, d, t_ep, w, per_machine=True)
            print(
                f"  {w:>6} {k * t_ep / w:>9.4f} {step:>9.4f} {100 * eff:>9.1f}% "
                f"{flat_step:>12.4f} {100 * flat_eff:>9.1f}% "
                f"{node_step:>14.4f} {100 * node_eff:>9.1f}%"
            )
    k, d, t_ep = WORKLOADS["cartpole"]
    need = call_cost_for(c, k, d, t_ep, 64, 0.70)
    humanoid = predict(c, *WORKLOADS["humanoid"], 1440)[1]
    humanoid_m = predict(c, *WORKLOADS["humanoid"], 1440, per_machine=True)[1]
    print(
        f"\ntargets: humanoid W=1440 >= 85% ({100 * humanoid:.1f}%; one actor per machine "
        f"{100 * humanoid_m:.1f}%), "
        f"cartpole W=64 >= 70% ({100 * predict(c, k, d, t_ep, 64)[1]:.1f}%; "
        f"one actor per machine {100 * predict(c, k, d, t_ep, 64, per_machine=True)[1]:.1f}%; "
        f"unrelayed it needs c_call <= {1e3 * need:.3f} ms)"
    )
    print(f"cartpole at W=5,000 (K < W): step {predict(c, k, d, t_ep, 5000)[0]:.4f} s")
    if graph is not None:
        print_compiled(c, graph, args.workers)
    if args.gcs_seconds > 0:
        from zoopt.evaluators.ray import TASK_EVENT_LIMITS

        print(f"\nGCS memory over {args.gcs_seconds:g} s of small steps (MB after warm-up -> end):")
        for label, cfg in (
            ("capped (private instance)", None),
            ("cap 100,000", {k: 100_000 for k in TASK_EVENT_LIMITS}),
        ):
            a, b, tasks = gcs_memory(args.gcs_seconds, cfg)
            print(
                f"  {label:<26} {a:.1f} -> {b:.1f} MB ({100 * (b / a - 1):+.1f}%), {tasks:,} tasks"
            )


if __name__ == "__main__":
    main()
