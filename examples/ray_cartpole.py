"""ES on CartPole-v1 with a linear policy, the episodes played on Ray workers.

Each worker builds its own CartPole objective from a picklable recipe
(``ObjectiveFactory``), so no environment is pickled; every step only θ and a seed travel,
and each worker regenerates its rows of the noise. The losses equal those of a local run.

    python examples/ray_cartpole.py                          # a private Ray instance, 2 workers
    ray start --head && python examples/ray_cartpole.py --address auto --workers 8
    # on a cluster of 4 machines of 32 cores: one actor per machine, 32 processes each
    python examples/ray_cartpole.py --address auto --workers 4 --processes-per-worker 32
"""

from __future__ import annotations

import argparse
import math

import torch

import zoopt
from zoopt import ObjectiveFactory
from zoopt.evaluators.ray import RayEvaluator
from zoopt.objectives import GymObjective

torch.set_num_threads(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="Ray worker actors")
    parser.add_argument(
        "--processes-per-worker", type=int, default=1, help="local processes of each actor"
    )
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--address", default=None, help="join this Ray cluster ('auto', 'host:port')"
    )
    args = parser.parse_args()

    # the recipe travels to the workers; each builds its own environments
    objective = ObjectiveFactory(GymObjective, "CartPole-v1", policy="linear", episodes=2)
    x0 = objective.initial_parameters(seed=args.seed)

    def report(row: dict) -> None:
        if not math.isnan(row["metric"]):  # θ is evaluated every 10th step (1, 11, …)
            print(f"step {row['step']:3d}  return {row['metric']:7.1f}", flush=True)

    with RayEvaluator(
        num_workers=args.workers,
        address=args.address,
        processes_per_worker=args.processes_per_worker,
    ) as evaluator:
        result = zoopt.minimize(
            objective,
            x0,
            estimator="es",
            steps=args.steps,
            seed=args.seed,
            sigma=0.1,
            population=32,
            lr=0.05,
            evaluator=evaluator,
            callback=report,
            progress=False,
        )

    # held out: 20 greedy episodes on seeds that training never used, played here
    held_out = objective.episode_returns(result.x, seed=10**6 + args.seed, episodes=20)
    print(
        f"held-out return {float(held_out.mean()):.1f} (20 episodes) after {result.steps} "
        f"steps, {result.evaluations} evaluations, {result.seconds:.1f} s"
    )


if __name__ == "__main__":
    main()
