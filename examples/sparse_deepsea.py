"""DeepSea: a sparse-reward exploration task, and what each estimator does on it.

``zoopt/DeepSea-v0`` (N × N grid, bsuite's definition): the agent falls one row per step
and moves left or right; only moving right on all N steps reaches the treasure (+1). Every
right move costs 0.01/N, so the dense signal points *away* from the treasure: always-left
returns exactly 0, the optimum is 0.99. With ``randomize_actions=True`` the meaning of the
two actions is drawn per cell, so the policy must be state dependent. A linear policy on the
one-hot observation is a lookup table over cells.

A random policy reaches the treasure with probability 2⁻ᴺ per episode, so each estimator's
behaviour shows how it explores: parameter noise (``"sampling"``, ``"es"``, ``"cmaes"``)
perturbs whole deterministic policies; ``"reinforce"`` samples actions. Solved = the greedy
policy's return > 0.5 (the treasure is reached).

What to expect: the move cost is tiny, but Adam rescales any consistent gradient to
full-size steps, so an estimator that sees only the cost learns "always left" quickly.
``"reinforce"`` shows it most clearly (its action entropy collapses within a few steps
unless a sampled episode finds the treasure first; ``entropy_coef`` slows that), while
parameter noise with a large σ keeps proposing whole right-moving policies.

Run: ``python examples/sparse_deepsea.py --seed 0 --steps 150 --sizes 6 10``
"""

from __future__ import annotations

import argparse

import torch

import zoopt
from zoopt.objectives import GymObjective

torch.set_num_threads(1)

SETTINGS = {
    "sampling": dict(sigma=1.0, population=32, lr=0.3),
    "es": dict(sigma=1.0, population=32, lr=0.3),
    "cmaes": dict(
        sigma=1.0,
        population=32,
        # all-equal returns at the start must not stop the search
        options={"tolflatfitness": 10**6, "tolfun": 0, "tolfunhist": 0},
    ),
    "reinforce": dict(samples=32, lr=0.3),
    "gradient": dict(lr=0.3),
}


def run(name: str, size: int, seed: int, steps: int) -> str:
    objective = GymObjective(
        "zoopt/DeepSea-v0",
        policy="linear",
        max_episode_steps=size,
        env_kwargs={"size": size, "randomize_actions": True},
    )
    x0 = torch.zeros(objective.dim)
    first: dict = {}

    def watch(row: dict) -> bool:
        if row["metric"] > 0.5 and not first:
            first.update(step=row["step"], episodes=objective.episodes_played)
            return True
        return False

    try:
        result = zoopt.minimize(
            objective,
            x0,
            estimator=name,
            steps=steps,
            seed=seed,
            callback=watch,
            evaluate_center=True,  # θ's return at every step: the first step that reaches it
            progress=False,
            **SETTINGS[name],
        )
    except (TypeError, ValueError) as e:
        return f"n/a ({str(e).splitlines()[0][:70]}…)"
    greedy = float(objective.episode_returns(result.x, seed=0, episodes=1)[0, 0])
    if first:
        return (
            f"solved at step {first['step']} ({first['episodes']:,} episodes), "
            f"greedy return {greedy:.3f}"
        )
    best = result.best_metric
    text = (
        f"not solved in {result.steps} steps ({objective.episodes_played:,} episodes): "
        f"greedy return {greedy:.3f}, best seen {best:.3f} (stop: {result.stop_reason})"
    )
    entropy = result.history.get("entropy")
    if entropy:  # output-space exploration: how fast the action noise collapsed
        drop = next((i + 1 for i, h in enumerate(entropy) if h < 0.1), None)
        text += f"; action entropy {entropy[0]:.2f} -> {entropy[-1]:.3f}"
        text += f" (< 0.1 from step {drop})" if drop else ""
    return text


def main() -> None:
    ap = argparse.ArgumentParser(description="DeepSea with every estimator")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--sizes", type=int, nargs="*", default=[6, 10])
    ap.add_argument("--estimators", nargs="*", default=zoopt.available_estimators())
    args = ap.parse_args()
    for size in args.sizes:
        print(
            f"DeepSea N={size} (random per-cell action meaning; random policy finds the "
            f"treasure with probability 1/{2**size:,} per episode)"
        )
        for name in args.estimators:
            print(f"  {name:10s} {run(name, size, args.seed, args.steps)}", flush=True)


if __name__ == "__main__":
    main()
