"""Solve MountainCar-v0 (mean return ≥ −110 over 100 episodes) within 500,000 env steps.

MountainCar pays −1 per step until the car reaches the flag, so every policy that never gets
there scores −200: the landscape is flat almost everywhere. What makes it work here:

* CMA-ES with a wide initial step (σ = 1) so that some first candidates reach the flag, and
  pycma's flat-fitness stopping rules turned off so that it keeps searching meanwhile;
* a small MLP policy (a linear switching line tops out near −113 on this task) on
  normalised observations (position and velocity differ in scale by ~20×).

Every 5 steps the current mean is tested on 100 held-out episodes; the run stops at the
first pass and reports the training env steps (``objective.env_steps``). Because that test
is repeated, the winning policy is then re-tested on 100 fresh episodes.

Run: ``python examples/mountaincar.py --seed 0 --steps 150``
"""

from __future__ import annotations

import argparse
import time

import torch

import zoopt
from zoopt.objectives import GymObjective

torch.set_num_threads(1)

TARGET, BUDGET = -110.0, 500_000


def main() -> None:
    ap = argparse.ArgumentParser(description="MountainCar-v0 with CMA-ES")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--check-every", type=int, default=5)
    args = ap.parse_args()

    policy = dict(policy="mlp", hidden=(8,), normalize_observations=True)
    train = GymObjective("MountainCar-v0", episodes=2, **policy)
    test = GymObjective("MountainCar-v0", episodes=100, **policy)
    t0 = time.perf_counter()
    outcome: dict = {}

    def check(row: dict) -> bool:
        if row["step"] % args.check_every:
            return train.env_steps > BUDGET
        test.load_shared_state(train.shared_state())  # the normaliser the policy was trained with
        score = float(test.episode_returns(minimizer.x.detach(), seed=10**6 + args.seed).mean())
        print(
            f"step {row['step']:4d}  env-steps {train.env_steps:8,d}  "
            f"train {row['metric']:8.2f}  held-out {score:8.2f}  "
            f"({time.perf_counter() - t0:.0f} s)",
            flush=True,
        )
        if score >= TARGET:
            outcome.update(step=row["step"], env_steps=train.env_steps, score=score)
            return True
        return train.env_steps > BUDGET

    # CMA-ES stops by itself on flat fitness; MountainCar starts flat, so those rules are off
    patience = {"tolflatfitness": 10**6, "tolfun": 0, "tolfunhist": 0, "tolstagnation": 10**6}
    minimizer = zoopt.Minimizer(
        train,
        train.initial_parameters(args.seed),
        estimator="cmaes",
        steps=args.steps,
        seed=args.seed,
        sigma=1.0,
        population=16,
        options=patience,
        callback=check,
        progress=False,
    )
    minimizer.run()
    minimizer.close()

    if not outcome:
        print(f"not solved: {train.env_steps:,} env steps, {minimizer.step_count} steps")
        return
    fresh = float(test.episode_returns(minimizer.x.detach(), seed=2 * 10**6 + args.seed).mean())
    ok = "within" if outcome["env_steps"] <= BUDGET else "OVER"
    print(
        f"solved at step {outcome['step']} after {outcome['env_steps']:,} env steps "
        f"({ok} the {BUDGET:,} budget): held-out mean {outcome['score']:.2f}, "
        f"fresh 100 episodes {fresh:.2f}"
    )


if __name__ == "__main__":
    main()
