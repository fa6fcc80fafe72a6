"""Env-steps per second of a population evaluation on the batched torch CartPole, on a GPU
against the same code on the CPU.

``GymObjective("CartPole-v1", vectorization="torch", device=...)`` evaluates N linear
policies (one episode each, N slots) near a balancing controller, so every slot stays live:
the torch envs' dynamics, the policy forward and the episode scheduler all run on the
device, and the host looks at the device once every 16 steps. Episodes are capped at
``--steps`` so that the CPU side of the comparison stays short. Both devices use N slots.

Run: ``python benchmarks/bench_torch_rollouts.py --sizes 65536 1048576 [--devices cuda cpu]``
"""

from __future__ import annotations

import argparse
import time

import torch

from zoopt.objectives import GymObjective

# a linear CartPole controller that balances (weight (2, 4) row-major, then bias (2,))
BALANCING = torch.tensor([0.0, 0.0, 0.0, 0.0, 0.1, 0.5, 10.0, 2.0, 0.0, 0.0])


def rate(n: int, device: str, steps: int, repeats: int) -> tuple[float, float]:
    """(useful env-steps/s, occupancy) of evaluating N policies on ``device``."""
    objective = GymObjective(
        "CartPole-v1", vectorization="torch", device=device, max_episode_steps=steps, slots=n
    )
    g = torch.Generator().manual_seed(0)
    X = (BALANCING + 0.01 * torch.randn(n, 10, generator=g)).to(device)
    objective.evaluate(X, seed=0)  # warm-up: allocation, kernels
    if device != "cpu":
        torch.cuda.synchronize()
    before, slots = objective.env_steps, objective.slot_steps
    t0 = time.perf_counter()
    for seed in range(1, repeats + 1):
        objective.evaluate(X, seed=seed)  # returns losses on the CPU: synchronises
    dt = time.perf_counter() - t0
    useful = objective.env_steps - before
    return useful / dt, useful / (objective.slot_steps - slots)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[65536, 1048576])
    ap.add_argument("--devices", nargs="+", default=["cuda", "cpu"])
    ap.add_argument("--steps", type=int, default=100, help="episode cap")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    if "cuda" in args.devices and not torch.cuda.is_available():
        raise SystemExit("bench_torch_rollouts: no CUDA device; pass --devices cpu")
    print(f"CartPole-v1, torch envs, linear policies, {args.steps}-step episodes, one each")
    for n in args.sizes:
        rates = {d: rate(n, d, args.steps, args.repeats) for d in args.devices}
        line = f"  N={n:>9,d}"
        for d, (r, occ) in rates.items():
            line += f"   {d}: {r:15,.0f} env-steps/s (occupancy {occ:.2f})"
        if "cuda" in rates and "cpu" in rates:
            line += f"   cuda/cpu {rates['cuda'][0] / rates['cpu'][0]:.1f}×"
        print(line, flush=True)


if __name__ == "__main__":
    main()
