"""Env-steps per second of zoopt's population evaluation on CartPole-v1, against references.

Measured in one run, on one thread:

* zoopt: ``GymObjective("CartPole-v1", episodes=E).evaluate(X)`` with K×E = 256 episodes
  (the policies' steps only: steps of episodes that have ended are not counted);
* (a) Gymnasium's native vectorised CartPole (256 envs) driven by a batched linear policy
  written here in numpy — the physical limit of this machine;
* (b) a single ``gym.make`` environment stepped in a Python loop by the same linear policy.

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
    ap.add_argument("--seconds", type=float, default=3.0, help="time per measurement")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    g = torch.Generator().manual_seed(args.seed)
    n = 256
    centre = torch.as_tensor(BALANCING, dtype=torch.float32)
    populations = {
        "balancing (all 500 steps)": centre + 0.01 * torch.randn(128, 10, generator=g),
        "random (mixed lengths)": torch.randn(128, 10, generator=g),
    }
    # the references run the same controller: w (2, 5) = [weight | bias] per action
    w = np.concatenate([BALANCING[:8].reshape(2, 4), BALANCING[8:, None]], axis=1)
    W = np.ascontiguousarray(np.broadcast_to(w, (n, 2, 5)))

    ref_a = timed(native_vector(n, W), args.seconds)
    ref_b = timed(single_loop(w), args.seconds)
    print(f"CartPole-v1, K×E = {n}, one thread (measured under load)")
    print(f"  (a) native vector env + numpy linear policy : {ref_a:12,.0f} env-steps/s")
    print(f"  (b) single gym.make loop                    : {ref_b:12,.0f} env-steps/s")
    for name, X in populations.items():
        for k, e in ((128, 2), (256, 1)):
            objective = GymObjective("CartPole-v1", episodes=e)
            Xk = X.repeat(k // len(X), 1)[:k]
            rate = timed(zoopt_eval(objective, Xk), args.seconds)
            print(
                f"  zoopt {name:26s} K={k:3d} E={e}: {rate:12,.0f} env-steps/s   "
                f"{rate / ref_a:5.2f}× (a)   {rate / ref_b:6.1f}× (b)"
            )


if __name__ == "__main__":
    main()
