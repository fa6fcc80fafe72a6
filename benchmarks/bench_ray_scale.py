"""Ray at cluster scale: the driver's constants measured here, and a model of the step time.

Measured on this machine, with a private Ray instance of two one-CPU workers and a near-free
objective (so that what is timed is the evaluator, not the objective):

* ``c_task``   driver CPU per task (submit, collect, place), many small tasks per step;
* ``c_step``   driver CPU per step besides its tasks (payload put, objective box);
* bytes per step: the payload (θ, σ, seeds; put once), per task and per result;
* ``ray.put`` throughput;
* ``c_gen``    ns per element to regenerate noise (what the driver did in ``tell`` before
  the reduction moved to the workers), ``c_red`` ns per element of a worker's partial sums
  (regenerate + float64 weighted sum), ``c_add`` ns per element added on the driver;
* the reduction's round trip on a tiny population, and from it the K·D above which the
  reduction pays (``REDUCE_THRESHOLD`` in the evaluator);
* the target case: driver CPU per step at K = 16,384, D = 10⁴ with 2 workers, the reduction
  on the workers against the driver regenerating the K×D noise (``reduce_threshold=None``),
  interleaved in this run.

The model: one core per worker, 32 workers per machine, a 10 Gb/s network; one task per
worker per step (K/W rows, balanced to the row); θ sent once to every machine; the driver's
dispatch serial (W·c_task + c_step); the reduction in R = min(W, ⌈√K⌉) tasks, each
regenerating K/R rows and sending D float64 to the driver, added there; efficiency = ideal
(K·t_episode/W) over the predicted step. Workloads: Humanoid-like (K = 10,000, D = 170,000,
t_episode chosen so that the ideal step on 1,440 workers is 6.9 s) and CartPole-like (K = 256,
D = 1,000, 5 ms episodes).

``--gcs-seconds S`` also runs S seconds of small steps twice, with the task-event cap of a
private instance and with a cap of 100,000 tasks, and prints the GCS server's memory after
warm-up and at the end of each (flat means within ±10%).

Run: ``python benchmarks/bench_ray_scale.py [--repeats 3] [--gcs-seconds 60]``
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import numpy as np
import ray
import torch

from zoopt import GaussianPopulation, Objective
from zoopt.estimators import get_estimator
from zoopt.evaluators.ray import RayEvaluator, start_local_ray
from zoopt.evaluators.ray.evaluator import REDUCE_THRESHOLD
from zoopt.evaluators.ray.worker import StepPayload, partial_sums

torch.set_num_threads(1)

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


def measure(repeats: int) -> dict:
    c: dict = {}
    obj = Free()
    with RayEvaluator(num_workers=2, chunks_per_worker=256, reduce_threshold=None) as ev:
        pops = [GaussianPopulation(torch.zeros(8), 0.1, s, 4096) for s in range(repeats + 1)]
        ev.evaluate(obj, pops[0], 0)
        tasks = len(ev._bounds(pops[0]))
        c["c_task"] = statistics.median(
            _cpu(lambda p=p: ev.evaluate(obj, p, 1)) / tasks for p in pops[1:]
        )
    with RayEvaluator(num_workers=2, reduce_threshold=None) as ev:
        small = GaussianPopulation(torch.zeros(8), 0.1, 0, 2)
        ev.evaluate(obj, small, 0)
        per_step = statistics.median(_cpu(lambda: ev.evaluate(obj, small, 1)) for _ in range(50))
        c["c_step"] = max(0.0, per_step - 2 * c["c_task"])
        # the reduction's round trip on a tiny population: what it costs beyond the work
        tiny_c = torch.randn(2)
        ev.reduce(small, tiny_c)
        c["t_reduce_trip"] = statistics.median(
            _wall(lambda: ev.reduce(small, tiny_c)) for _ in range(20)
        )
    d = 10_000
    pop = GaussianPopulation(torch.zeros(d), 0.1, 3, 512)
    c["payload_bytes"] = _nbytes(StepPayload([1, None], pop, None, 3))
    c["task_bytes"] = _nbytes((None, 0, 256, None))
    c["result_bytes_per_row"] = 4
    c["reduce_result_bytes"] = _nbytes(np.zeros(d))
    big = torch.randn(10_000_000)
    ray.put(big)
    c["put_bytes_per_s"] = (
        big.numel() * 4 / statistics.median(_wall(lambda: ray.put(big)) for _ in range(repeats))
    )
    n = 256 * d
    c["c_gen"] = (
        statistics.median(
            _cpu(lambda s=s: GaussianPopulation(torch.zeros(d), 0.1, s, 256).perturbations())
            for s in range(repeats)
        )
        / n
    )
    coeffs = torch.randn(256)
    c["c_red"] = (
        statistics.median(_cpu(lambda: partial_sums(pop, 0, 256, coeffs, False)) for _ in range(3))
        / n
    )
    acc, part = torch.zeros(1_000_000, dtype=torch.float64), torch.ones(1_000_000).double()
    c["c_add"] = statistics.median(_cpu(lambda: acc.add_(part)) for _ in range(20)) / part.numel()
    # the reduction pays once the driver's regeneration (K·D·c_gen) costs more than the
    # round trip plus the workers' share of the work (K·D·c_red/W): with many workers and
    # with the 2 measured here
    c["threshold"] = c["t_reduce_trip"] / c["c_gen"]
    c["threshold_2"] = c["t_reduce_trip"] / max(1e-12, c["c_gen"] - c["c_red"] / 2)
    return c


def target_case(repeats: int) -> tuple[list[float], list[float]]:
    """Driver CPU per step (evaluate + tell) at K = 16,384, D = 10⁴, 2 workers."""
    obj, x = Free(), torch.zeros(10_000)
    es = get_estimator("es", sigma=0.1, population=16_384)
    out: dict[str, list[float]] = {"workers": [], "driver": []}
    half = dict(num_workers=2, num_cpus_per_worker=0.5)  # both pools on the 2 CPUs
    with (
        RayEvaluator(**half) as on,
        RayEvaluator(**half, reduce_threshold=None) as off,
    ):
        for s in range(repeats):
            for name, ev in (("workers", on), ("driver", off)):  # interleaved
                pop = es.ask(x, s)

                def step(ev=ev, pop=pop, s=s):
                    es.tell(x, pop, ev.evaluate(obj, pop, s))

                out[name].append(_cpu(step))
    return out["workers"], out["driver"]


def predict(c: dict, k: int, d: int, t_ep: float, w: int) -> tuple[float, float]:
    """(predicted step seconds, parallel efficiency) on ``w`` workers."""
    machines = math.ceil(w / CORES_PER_MACHINE)
    t_put = machines * d * 4 / NETWORK_BYTES_PER_S
    dispatch = w * c["c_task"] + c["c_step"]
    compute = math.ceil(k / w) * (t_ep + d * c["c_gen"])
    if k * d >= c["threshold"]:
        r = min(w, math.ceil(math.sqrt(k)))
        reduce = (
            r * c["c_task"]
            + math.ceil(k / r) * d * c["c_red"]
            + r * d * 8 / NETWORK_BYTES_PER_S
            + r * d * c["c_add"]
        )
    else:
        reduce = k * d * c["c_red"]  # on the driver
    step = t_put + dispatch + compute + reduce
    return step, (k * t_ep / w) / step


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
            per_step = len(ev._bounds(pop))
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--gcs-seconds", type=float, default=0.0)
    args = parser.parse_args()
    start_local_ray(num_cpus=2)
    c = measure(args.repeats)
    on, off = target_case(args.repeats)
    ray.shutdown()
    print("constants measured on this machine (2 one-CPU workers, near-free objective):")
    print(f"  driver CPU per task       c_task  {1e3 * c['c_task']:.3f} ms   (target <= 0.2 ms)")
    print(f"  driver CPU per step       c_step  {1e3 * c['c_step']:.3f} ms (besides its tasks)")
    print(f"  payload per step (D=1e4)          {c['payload_bytes']:,} B (put once)")
    print(f"  per task / per result row         {c['task_bytes']} B / 4 B")
    print(f"  reduction result per task (D=1e4) {c['reduce_result_bytes']:,} B")
    print(f"  ray.put throughput                {c['put_bytes_per_s'] / 1e9:.2f} GB/s")
    print(f"  noise regeneration        c_gen   {1e9 * c['c_gen']:.2f} ns/element")
    print(f"  worker partial sums       c_red   {1e9 * c['c_red']:.2f} ns/element")
    print(f"  driver addition           c_add   {1e9 * c['c_add']:.2f} ns/element")
    print(
        f"  reduction round trip              {1e3 * c['t_reduce_trip']:.2f} ms -> pays from "
        f"K·D = {c['threshold']:,.0f} (many workers), {c['threshold_2']:,.0f} (2 workers); "
        f"REDUCE_THRESHOLD = {REDUCE_THRESHOLD:,}"
    )
    ratio = statistics.median(on) / statistics.median(off)
    print("\ntarget case K=16,384, D=10^4, 2 workers: driver CPU per step (evaluate + tell)")
    print(f"  reduction on the workers  {' '.join(f'{v:.3f}' for v in on)} s")
    print(f"  noise regenerated on the driver {' '.join(f'{v:.3f}' for v in off)} s")
    print(f"  ratio (median) {ratio:.3f}   (target <= 0.1)")
    print(
        f"\nmodel: one core per worker, {CORES_PER_MACHINE} per machine, "
        f"{NETWORK_BYTES_PER_S * 8 / 1e9:g} Gb/s, one task per worker, θ sent to every "
        f"machine, reduction in min(W, ceil(sqrt K)) tasks"
    )
    for name, (k, d, t_ep) in WORKLOADS.items():
        print(f"\n{name}: K={k:,} D={d:,} episode {1e3 * t_ep:.1f} ms")
        print(f"  {'W':>6} {'ideal s':>9} {'step s':>9} {'efficiency':>10}")
        for w in WORKERS:
            step, eff = predict(c, k, d, t_ep, w)
            print(f"  {w:>6} {k * t_ep / w:>9.4f} {step:>9.4f} {100 * eff:>9.1f}%")
    print("\ntargets: humanoid W=1440 >= 85%, cartpole W=64 >= 70%")
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
