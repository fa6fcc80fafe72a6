"""Ask/tell: zoopt proposes the candidates, your own loop evaluates them.

The evaluation here is a plain Gymnasium loop over ``gymnasium.make("CartPole-v1")`` with a
linear policy (4 weights and a bias, action = [w·obs + b > 0]); it could as well be a
simulator, a cluster job or a lab instrument. zoopt only sees the numbers::

    m = zoopt.Minimizer(None, np.zeros(5), estimator="es", seed=0)
    X = m.ask()                      # (K, 5) numpy rows to try
    m.tell([loss(x) for x in X])     # their K losses; the step is taken

Every candidate of a step plays the same episode seeds (common random numbers), so the
differences between their returns come from the weights, not from the episodes.

    python examples/ask_tell.py --steps 30
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np

import zoopt


def episode_return(env: gym.Env, w: np.ndarray, seed: int) -> float:
    """The return of one episode played by the linear policy ``w`` (5,)."""
    obs, _ = env.reset(seed=seed)
    total, done = 0.0, False
    while not done:
        action = int(obs @ w[:4] + w[4] > 0)
        obs, reward, terminated, truncated, _ = env.step(action)
        total += float(reward)
        done = terminated or truncated
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--population", type=int, default=16)
    ap.add_argument("--episodes", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    env = gym.make("CartPole-v1")
    m = zoopt.Minimizer(
        None,
        np.zeros(5),
        estimator="es",
        population=args.population,
        sigma=0.5,
        shaping="centered_ranks",
        lr=0.1,
        seed=args.seed,
    )
    for step in range(args.steps):
        X = m.ask()  # (K, 5) numpy
        seeds = [args.seed * 100_003 + step * args.episodes + e for e in range(args.episodes)]
        # losses: lower is better, so the negated mean return
        losses = [-np.mean([episode_return(env, x, s) for s in seeds]) for x in X]
        row = m.tell(losses)
        print(
            f"step {row['step']:3d}  best return {-row['best_loss']:6.1f}  "
            f"population mean {-row['population_loss']:6.1f}"
        )
        if -row["best_loss"] >= 500:
            break
    held_out = [episode_return(env, m.best_x, 10**6 + e) for e in range(5)]
    print(f"best weights {np.round(m.best_x, 3).tolist()}")
    print(f"held-out return of the best weights over 5 episodes: {np.mean(held_out):.1f}")
    env.close()


if __name__ == "__main__":
    main()
