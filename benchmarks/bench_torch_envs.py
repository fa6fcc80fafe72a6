"""Throughput of the batched torch CartPole against Gymnasium's vectorised CartPole.

Prints environment steps per second of :class:`zoopt_envs.torch_envs.BatchedCartPole`
(next-step autoreset, float64 and float32 state) at N = 256 and 65,536 on CPU, and on CUDA
when available, next to Gymnasium's ``CartPoleVectorEnv`` at 256 environments measured in
the same run; the ratio to that reference is what to compare across machines.

    python benchmarks/bench_torch_envs.py [--seconds 1.0] [--threads 1]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch
from gymnasium.envs.classic_control.cartpole import CartPoleVectorEnv

from zoopt_envs.torch_envs import BatchedCartPole

ACTION_POOL = 64  # distinct random action vectors, cycled, so no RNG cost is timed


def steps_per_second(step: Callable[[int], None], num_envs: int, seconds: float) -> float:
    """Call ``step(i)`` for about ``seconds`` after a warm-up; return env-steps per second."""
    for i in range(10):
        step(i)
    calls, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(20):
            step(calls)
            calls += 1
    return calls * num_envs / elapsed


def bench_gymnasium(num_envs: int, seconds: float) -> float:
    """Gymnasium's own vectorised CartPole (NumPy, next-step autoreset)."""
    env = CartPoleVectorEnv(num_envs=num_envs)
    env.reset(seed=0)
    pool = np.random.default_rng(0).integers(0, 2, size=(ACTION_POOL, num_envs))
    return steps_per_second(lambda i: env.step(pool[i % ACTION_POOL]), num_envs, seconds)


def bench_torch(num_envs: int, device: str, dtype: torch.dtype, seconds: float) -> float:
    """BatchedCartPole with next-step autoreset, the steady state of a long rollout."""
    env = BatchedCartPole(num_envs, autoreset=True, device=device, dtype=dtype, seed=0)
    env.reset()
    generator = torch.Generator(device=device).manual_seed(0)
    pool = torch.randint(0, 2, (ACTION_POOL, num_envs), device=device, generator=generator)

    def step(i: int) -> None:
        env.step(pool[i % ACTION_POOL])

    if device.startswith("cuda"):
        # time whole batches of kernels: synchronise around the measurement
        def step_synced(i: int, _step=step) -> None:
            _step(i)
            if i % 20 == 19:
                torch.cuda.synchronize()

        return steps_per_second(step_synced, num_envs, seconds)
    return steps_per_second(step, num_envs, seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    reference = bench_gymnasium(256, args.seconds)
    print(f"{'implementation':<44}{'N':>8}{'env-steps/s':>14}{'vs ref':>8}")
    print(f"{'gymnasium CartPoleVectorEnv (reference)':<44}{256:>8}{reference:>14,.0f}{1:>8.2f}")
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        for dtype in (torch.float64, torch.float32):
            for n in (256, 65_536):
                rate = bench_torch(n, device, dtype, args.seconds)
                name = f"BatchedCartPole {device} {str(dtype).removeprefix('torch.')}"
                print(f"{name:<44}{n:>8}{rate:>14,.0f}{rate / reference:>8.2f}")


if __name__ == "__main__":
    main()
