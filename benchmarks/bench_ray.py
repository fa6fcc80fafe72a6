"""The Ray evaluator against the local one, measured in one run.

(a) Speed-up of ``RayEvaluator(num_workers=2)`` over ``LocalEvaluator`` on a CPU-heavy
    objective: each candidate is a linear CartPole-v1 policy that plays ``--episodes``
    episodes in a plain Gymnasium loop (≥ 10 ms per candidate). The same population is
    evaluated by both backends (the losses are checked to be equal); the ratio of the
    median wall times is printed. A perfect two-worker split gives 2×; the gap is Ray's
    per-step overhead and the load on the machine.
(b) Bytes sent to the workers per step for a Gaussian population of K = 256, D = 10,000:
    the step's payload (θ, σ, seeds) once per worker plus the pickled arguments of every
    call, measured with Ray's own serializer, against shipping the K×D float32 noise matrix.

Ray runs its workers at niceness 15 (its system processes come first). So that both
backends compete for the CPU on equal terms on a shared machine, this script moves itself
to the same niceness before measuring; on an idle machine that changes nothing.

Run: ``python benchmarks/bench_ray.py [--population 64] [--episodes 4] [--repeats 3]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import gymnasium as gym
import numpy as np
import torch

from zoopt import GaussianPopulation, Objective
from zoopt.evaluators import LocalEvaluator, ObjectiveFactory
from zoopt.evaluators.ray import RayEvaluator

torch.set_num_threads(1)

#: Ray's default niceness of worker processes (RAY_worker_niceness)
RAY_WORKER_NICENESS = int(os.environ.get("RAY_worker_niceness", "15"))

# a linear controller that balances CartPole for the full 500 steps: push toward the lean
BALANCING = torch.tensor([0.1, 0.5, 10.0, 2.0, 0.0], dtype=torch.float64)


class CartPoleEpisodes(Objective):
    """−(mean return) of a linear policy ``a = [w·obs + b > 0]`` over ``episodes`` episodes.

    One ``gym.make`` environment stepped in a Python loop: the CPU-heavy, one-candidate-at-
    a-time workload that parallel evaluation is for. Episode seeds come from the step seed
    (common random numbers), so every backend sees the same episodes. The CPU seconds
    each copy spends travel to the driver through the statistics hooks, so the benchmark
    can report how much of a core every process actually got.
    """

    metric_name = "return"
    metric_sign = -1.0

    def __init__(self, episodes: int):
        self.episodes = episodes
        self.env = gym.make("CartPole-v1")
        self.dim = 5
        self.cpu_seconds = 0.0  # spent in evaluate() by this copy
        self.worker_cpu_seconds = 0.0  # reported by the evaluation copies on Ray workers

    def pop_stats(self) -> float:
        spent, self.cpu_seconds = self.cpu_seconds, 0.0
        return spent

    def absorb_stats(self, stats: float) -> None:
        self.worker_cpu_seconds += stats

    def evaluate(self, X: torch.Tensor, seed: int = 0) -> torch.Tensor:
        cpu0 = time.process_time()
        W = X.detach().to(torch.float64).numpy()
        out = np.empty(len(W))
        for i, w in enumerate(W):
            total = 0.0
            for e in range(self.episodes):
                obs, _ = self.env.reset(seed=(seed + e) % 2**31)
                done = False
                while not done:
                    action = int(obs @ w[:4] + w[4] > 0)
                    obs, reward, terminated, truncated, _ = self.env.step(action)
                    total += reward
                    done = terminated or truncated
            out[i] = -total / self.episodes
        self.cpu_seconds += time.process_time() - cpu0
        return torch.from_numpy(out)


def median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def speedup(ev: RayEvaluator, population: int, episodes: int, repeats: int) -> None:
    objective = ObjectiveFactory(CartPoleEpisodes, episodes)
    pop = GaussianPopulation(BALANCING, 0.02, seed=7, size=population)
    local = LocalEvaluator()
    # warm-up: environments built in this process and on every worker
    reference = local.evaluate(objective, pop, seed=1)
    assert torch.equal(ev.evaluate(objective, pop, seed=1), reference), "backends differ"
    driver = objective.build()
    driver.cpu_seconds = driver.worker_cpu_seconds = 0.0
    t_local = median_seconds(lambda: local.evaluate(objective, pop, seed=1), repeats)
    t_ray = median_seconds(lambda: ev.evaluate(objective, pop, seed=1), repeats)
    # share of a core each process got (100% on an idle machine)
    local_share = driver.cpu_seconds / (repeats * t_local)
    worker_share = driver.worker_cpu_seconds / (repeats * t_ray * ev.num_workers)
    print(
        f"(a) CartPole-v1, K={population} candidates × {episodes} episodes, "
        f"mean return {-float(reference.mean()):.0f}, niceness {os.nice(0)} everywhere"
    )
    print(
        f"    local (1 process)     {t_local * 1e3:8.1f} ms/step   "
        f"{t_local / population * 1e3:6.1f} ms/candidate"
    )
    print(f"    ray ({ev.num_workers} workers)       {t_ray * 1e3:8.1f} ms/step")
    busy = min(local_share, worker_share) < 0.9
    note = " (well below 100%: the machine is busy, the ratio is not meaningful)" if busy else ""
    print(
        f"    share of a core: local process {local_share:.0%}, each Ray worker "
        f"{worker_share:.0%}{note}"
    )
    print(
        f"    speed-up ray / local: {t_local / t_ray:.2f}x "
        f"(ideal {ev.num_workers:.0f}x; target >= 1.7x on an idle two-core machine)"
    )


def bytes_per_step(ev: RayEvaluator, k: int, d: int) -> None:
    import ray

    from zoopt.evaluators.ray.scheduler import calls_per_step

    context = ray._private.worker.global_worker.get_serialization_context()

    def size(value) -> int:
        return context.serialize(value).total_bytes

    objective = ObjectiveFactory(CartPoleEpisodes, 1)
    pop = GaussianPopulation(torch.randn(d), 0.1, seed=3, size=k)
    step, packed, _ = ev._payload(objective, pop, 12345)  # exactly what evaluate() packs
    bounds = ev._bounds(pop)
    per_call = calls_per_step(len(bounds), ev.num_workers)
    batches = [bounds[i : i + per_call] for i in range(0, len(bounds), per_call)]
    payload = size(packed) if isinstance(packed, bytes) else size(packed[0])
    calls = sum(size((None, batch, None)) for batch in batches)
    sent = ev.num_workers * payload + calls  # each worker's first call carries the payload
    noise = k * d * 4
    where = "inline" if isinstance(packed, bytes) else "object store"
    print(f"(b) bytes sent per step, K={k}, D={d:,}, {len(batches)} calls")
    print(f"    payload ({where}), once per worker {payload:12,d} B x {ev.num_workers}")
    print(f"    call arguments (all calls)        {calls:12,d} B")
    print(f"    total                             {sent:12,d} B")
    print(f"    noise matrix K×D×4                {noise:12,d} B")
    print(f"    ratio noise matrix / sent: {noise / sent:.0f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--population", type=int, default=64)
    parser.add_argument("--episodes", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    os.nice(max(0, RAY_WORKER_NICENESS - os.nice(0)))  # same priority as the Ray workers
    with RayEvaluator(num_workers=args.workers) as ev:
        speedup(ev, args.population, args.episodes, args.repeats)
        bytes_per_step(ev, k=256, d=10_000)


if __name__ == "__main__":
    main()
