"""Env-steps per second of zoopt's population evaluation on CartPole-v1, against references.

Measured in one run, on one thread:

* zoopt: ``GymObjective("CartPole-v1", episodes=E).evaluate(X)`` with K×E = 256 episodes
  (the policies' steps only: steps of episodes that have ended are not counted);
* (a) Gymnasium's native vectorised CartPole (256 envs) driven by a batched linear policy
  written here in numpy — the physical limit of this machine;
* (b) a single ``gym.make`` environment stepped in a Python loop by the same linear policy.

zoopt runs on Gymnasium's native vector CartPole (``vectorization="auto"``), plus one line
on this project's batched torch CartPole (``vectorization="torch"``, which pays off for
thousands of episodes or on a GPU rather than at 256 on a CPU).

Two populations: around a balancing policy (every episode lasts 500 steps, no masking
waste) and random policies (episodes of very different lengths: the vector keeps stepping
until the longest one ends, so part of its work is masked out).

Run: ``python benchmarks/bench_cartpole.py [--seconds 3]``
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np
import torch

from zoopt.objectives import GymObjective

torch.set_num_threads(1)

# a linear CartPole controller that balances for 500 steps: push toward the pole's lean
# (layout of zoopt's linear policy: weight (2 actions, 4 inputs) row-major, then bias (2,))
BALANCING = np.array([0.0, 0.0, 0.0, 0.0, 0.1, 0.5, 10.0, 2.0, 0.0, 0.0], dtype=np.float32)


def timed(fn, seconds: float) -> float:
    """Env-steps per second of ``fn() -> steps`` repeated for about ``seconds``."""
    fn()  # warm-up (environment creation, first allocations)
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        steps += fn()
    return steps / (time.perf_counter() - t0)


def zoopt_eval(objective: GymObjective, X: torch.Tensor):
    seed = iter(range(10**9))

    def run() -> int:
        before = objective.env_steps
        objective.evaluate(X, next(seed))
        return objective.env_steps - before

    return run


def native_vector(n: int, W: np.ndarray, steps: int = 500):
    """(a) native CartPoleVectorEnv, batched linear policy W (n, 4, 2) in numpy."""
    env = gym.make_vec("CartPole-v1", num_envs=n, vectorization_mode="vector_entry_point")
    obs, _ = env.reset(seed=0)

    def run() -> int:
        nonlocal obs
        for _ in range(steps):
            logits = np.einsum("ni,noi->no", obs, W[:, :, :4]) + W[:, :, 4]
            obs, *_ = env.step(logits.argmax(1))
        return n * steps

    return run


def single_loop(w: np.ndarray, steps: int = 2000):
    """(b) one gym.make environment, the same linear policy, a plain Python loop."""
    env = gym.make("CartPole-v1")
    obs, _ = env.reset(seed=0)

    def run() -> int:
        nonlocal obs
        for _ in range(steps):
            obs, _, terminated, truncated, _ = env.step(int((w[:, :4] @ obs + w[:, 4]).argmax()))
            if terminated or truncated:
                obs, _ = env.reset()
        return steps

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=2.0, help="time per measurement")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    g = torch.Generator().manual_seed(args.seed)
    n = 256
    centre = torch.as_tensor(BALANCING)
    populations = {
        "balancing": centre + 0.01 * torch.randn(128, 10, generator=g),
        "random": torch.randn(128, 10, generator=g),
    }
    # the references run the same controller: w (2, 5) = [weight | bias] per action
    w = np.concatenate([BALANCING[:8].reshape(2, 4), BALANCING[8:, None]], axis=1)
    W = np.ascontiguousarray(np.broadcast_to(w, (n, 2, 5)))

    runs = {
        "(a) native vector env + numpy policy": native_vector(n, W),
        "(b) single gym.make loop": single_loop(w),
    }
    for name, X in populations.items():
        for k, e in ((128, 2), (256, 1)):
            objective = GymObjective("CartPole-v1", episodes=e)
            runs[f"zoopt {name:9s} K={k:3d} E={e}"] = zoopt_eval(objective, X.repeat(2, 1)[:k])
    # the same evaluation on zoopt_envs' batched torch CartPole (vectorization="torch")
    torch_backend = GymObjective("CartPole-v1", episodes=1, vectorization="torch")
    runs["zoopt balancing K=256 E=1 torch env"] = zoopt_eval(
        torch_backend, populations["balancing"].repeat(2, 1)
    )
    # interleaved rounds: a load change on the shared machine hits every method alike
    rates: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, fn in runs.items():
            rates[name].append(timed(fn, args.seconds))
    rate = {name: float(np.median(r)) for name, r in rates.items()}
    ref_a, ref_b = rate["(a) native vector env + numpy policy"], rate["(b) single gym.make loop"]
    print(
        f"CartPole-v1, K×E = {n} episodes, one thread, median of {args.rounds} interleaved "
        f"rounds of {args.seconds:g} s"
    )
    for name, r in rate.items():
        line = f"  {name:38s} {r:12,.0f} env-steps/s"
        if name.startswith("zoopt"):
            line += f"   {r / ref_a:5.2f}× (a)   {r / ref_b:6.1f}× (b)"
        print(line)
    print("  balancing: every episode lasts 500 steps; random: mixed lengths, and the vector")
    print("  keeps stepping until the longest episode ends (only live episodes' steps count)")


if __name__ == "__main__":
    main()
