"""Solve CartPole-v1 with a linear policy, once per estimator, and count the cost.

"Solved" means a greedy mean return ≥ 475 over 20 held-out episodes (seeds never used in
training). For each estimator and each of ``--seeds`` runs, the script stops as soon as the
policy is solved and records the training episodes and environment steps it took
(``objective.episodes_played`` / ``objective.env_steps``; held-out tests are played on a
separate objective and not counted). It prints the median over runs.

``"gradient"`` needs a differentiable objective; an episode's return is not one, so that
row reports the library's error instead of a number.

Run: ``python examples/cartpole.py --seed 0 --steps 100 --seeds 5``
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import zoopt
from zoopt.objectives import GymObjective

torch.set_num_threads(1)

# per-estimator options (population sizes are candidates per step; each plays EPISODES)
SETTINGS = {
    "es": dict(sigma=0.1, population=32, lr=0.05),
    "sampling": dict(sigma=0.1, population=32, lr=0.05),
    "cmaes": dict(sigma=0.5),
    "snes": dict(sigma=0.5),
    "xnes": dict(sigma=0.5),
    "pgpe": dict(sigma=0.5),
    "ars": dict(sigma=0.5),
    "reinforce": dict(samples=16, lr=0.05),
    "gradient": dict(lr=0.05),
}
EPISODES = 2  # training episodes per candidate
TARGET, TEST_EPISODES = 475.0, 20


def solve(estimator: str, seed: int, steps: int) -> dict:
    """Train until solved or ``steps``; returns the cost of the first solved policy."""
    train = GymObjective("CartPole-v1", episodes=EPISODES)
    test = GymObjective("CartPole-v1", episodes=TEST_EPISODES)
    held_out_seed = 10**6 + seed  # disjoint from the training steps' seeds
    solved: dict = {}

    def check(row: dict) -> bool:
        # a cheap trigger (the step's own training return), then the held-out test
        if row["metric"] < TARGET:
            return False
        x = minimizer.x.detach()
        score = float(test.episode_returns(x, seed=held_out_seed).mean())
        if score >= TARGET:
            solved.update(
                episodes=train.episodes_played,
                env_steps=train.env_steps,
                step=row["step"],
                test_return=score,
            )
            return True
        return False

    minimizer = zoopt.Minimizer(
        train,
        train.initial_parameters(seed),
        estimator=estimator,
        steps=steps,
        seed=seed,
        callback=check,
        evaluate_center=True,  # the trigger reads θ's training return at every step
        progress=False,
        **SETTINGS.get(estimator, {}),
    )
    minimizer.run()
    minimizer.close()
    return solved


def main() -> None:
    ap = argparse.ArgumentParser(description="CartPole-v1 with every estimator")
    ap.add_argument("--seed", type=int, default=0, help="first run seed")
    ap.add_argument("--seeds", type=int, default=5, help="runs per estimator")
    ap.add_argument("--steps", type=int, default=100, help="step budget per run")
    ap.add_argument("--estimators", nargs="*", default=zoopt.available_estimators())
    args = ap.parse_args()

    print(
        f"CartPole-v1, linear policy, solved = greedy mean >= {TARGET:.0f} over "
        f"{TEST_EPISODES} held-out episodes; median over {args.seeds} seeds"
    )
    print(
        f"{'estimator':10s} {'solved':>7s} {'episodes':>9s} {'env-steps':>10s} "
        f"{'steps':>6s} {'seconds':>8s}"
    )
    for name in args.estimators:
        runs, t0 = [], time.perf_counter()
        try:
            for s in range(args.seed, args.seed + args.seeds):
                runs.append(solve(name, s, args.steps))
        except (TypeError, ValueError) as e:  # e.g. "gradient" on a non-differentiable return
            print(f"{name:10s}   n/a   {str(e).splitlines()[0]}")
            continue
        done = [r for r in runs if r]
        if not done:
            print(f"{name:10s} {0:>3d}/{len(runs):<3d} not solved within {args.steps} steps")
            continue
        med = {k: statistics.median(r[k] for r in done) for k in ("episodes", "env_steps", "step")}
        seconds = (time.perf_counter() - t0) / len(runs)
        print(
            f"{name:10s} {len(done):>3d}/{len(runs):<3d} {med['episodes']:>9.0f} "
            f"{med['env_steps']:>10.0f} {med['step']:>6.0f} {seconds:>8.1f}"
        )


if __name__ == "__main__":
    main()
