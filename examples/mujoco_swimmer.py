"""Improve a linear policy on MuJoCo's Swimmer-v5 with antithetic ES; save the learning curve.

A linear policy on normalised observations, as in Augmented Random Search (Mania et al.,
2018), trained by ``"es"`` with centred-rank shaping and Adam. Each step evaluates the
current policy (one episode of 1,000 steps) and ``--population`` perturbed copies; all
candidates of one step play the same episode seed. The curve of the policy's return
against environment steps is written to ``--out``.

Needs MuJoCo: ``pip install 'zoopt-torch[mujoco]'`` (Gymnasium's ``mujoco`` extra).

Run: ``python examples/mujoco_swimmer.py --seed 0 --steps 40 --out swimmer.png``
"""

from __future__ import annotations

import argparse
import time

import torch

import zoopt
from zoopt.objectives import GymObjective

torch.set_num_threads(1)


def main() -> None:
    ap = argparse.ArgumentParser(description="Swimmer-v5 with ES")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--population", type=int, default=16)
    ap.add_argument("--env", default="Swimmer-v5", help="or HalfCheetah-v5, Hopper-v5, …")
    ap.add_argument("--out", default="swimmer_curve.png", help="learning-curve PNG")
    args = ap.parse_args()

    objective = GymObjective(args.env, policy="linear", normalize_observations=True)
    x0 = torch.zeros(objective.dim)  # the zero policy: a standard, unbiased start for ARS
    curve: list[tuple[int, float]] = []
    t0 = time.perf_counter()

    def log(row: dict) -> None:
        # row["metric"] is the return of the policy before this step, on this step's seed
        curve.append((objective.env_steps, row["metric"]))
        if row["step"] % 5 == 0 or row["step"] == 1:
            print(
                f"step {row['step']:3d}  env-steps {objective.env_steps:9,d}  "
                f"return {row['metric']:8.2f}  ({time.perf_counter() - t0:.0f} s)",
                flush=True,
            )

    result = zoopt.minimize(
        objective,
        x0,
        estimator="es",
        steps=args.steps,
        seed=args.seed,
        sigma=0.05,
        population=args.population,
        shaping="centered_ranks",
        lr=0.05,
        callback=log,
        evaluate_center=True,  # θ's return at every step, for the curve (one more episode)
        progress=False,
    )
    trained_steps = objective.env_steps  # before the held-out episodes below
    test_seed = 10**6 + args.seed
    before = float(objective.episode_returns(x0, seed=test_seed, episodes=5).mean())
    after = float(objective.episode_returns(result.x, seed=test_seed, episodes=5).mean())
    print(
        f"{args.env}: mean return over 5 held-out episodes {before:.1f} (start) -> "
        f"{after:.1f} (after {result.steps} steps, {trained_steps:,} env steps, "
        f"{time.perf_counter() - t0:.0f} s)"
    )

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([c[0] for c in curve], [c[1] for c in curve], lw=1.5)
    ax.set_xlabel("environment steps")
    ax.set_ylabel("episode return")
    ax.set_title(f"{args.env}, linear policy, zoopt 'es' (seed {args.seed})")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(f"learning curve saved to {args.out}")


if __name__ == "__main__":
    main()
