"""Sparse rewards: plain estimators against the same estimators with novelty search.

Every parameter-space estimator's step is zero until some draw sees a reward. Novelty
search (``novelty=``, :mod:`zoopt.novelty`) adds "behave differently from before" to the
loss, so the draws differ before any reward is found. Each task runs each method until
the greedy policy is solved or the env-step budget is spent, and reports the training env
steps it took (``objective.env_steps``; held-out tests play on a separate objective and
are not counted):

* ``mountaincar`` / ``mountaincar-mlp``: MountainCar-v0, linear / one-hidden-layer policy;
  solved = mean greedy return ≥ −110 over 100 held-out episodes; budget 200k env steps.
* ``deepsea-N``: zoopt/DeepSea-v0, N × N with a random action meaning per cell (a random
  policy finds the treasure with probability 2⁻ᴺ); solved = greedy return > 0.5.
* ``frozenlake``: FrozenLake8x8-v1 without slipping (reward only at the goal, holes end
  the episode); solved = greedy return 1.
* ``cartpole``: CartPole-v1, a dense task, to check that novelty costs little there;
  solved = mean greedy return ≥ 475 over 20 held-out episodes.

Run: ``python examples/sparse_exploration.py --seeds 3`` (``--tasks``, ``--methods`` to
choose; ``--jobs 2`` runs two at a time).
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed

import torch

import zoopt
from zoopt.objectives import GymObjective

#: task → GymObjective arguments, the target, held-out episodes (0: the deterministic
#: training return decides) and the budget in env steps
TASKS: dict[str, dict] = {
    "mountaincar": dict(
        gym=dict(env="MountainCar-v0", policy="linear", normalize_observations=True),
        target=-110.0,
        test_episodes=100,
        budget=200_000,
    ),
    "mountaincar-mlp": dict(
        gym=dict(env="MountainCar-v0", policy="mlp", hidden=(16,), normalize_observations=True),
        target=-110.0,
        test_episodes=100,
        budget=200_000,
    ),
    **{
        f"deepsea-{n}": dict(
            gym=dict(
                env="zoopt/DeepSea-v0",
                max_episode_steps=n,
                env_kwargs={"size": n, "randomize_actions": True},
            ),
            target=0.5,
            test_episodes=0,
            budget=10_000 * n,
        )
        for n in (10, 14, 20)
    },
    "frozenlake": dict(
        gym=dict(env="FrozenLake-v1", env_kwargs={"map_name": "8x8", "is_slippery": False}),
        target=0.5,
        test_episodes=0,
        budget=200_000,
    ),
    "cartpole": dict(
        gym=dict(env="CartPole-v1", episodes=2),
        target=475.0,
        test_episodes=20,
        budget=500_000,
    ),
}

#: estimator → its options (the same with and without novelty)
SETTINGS: dict[str, dict] = {
    # lr/σ small: large steps grow the logits until σ no longer changes any action, and
    # every candidate then behaves alike (with or without novelty)
    "sampling": dict(estimator="sampling", sigma=0.5, population=16, lr=0.05),
    "es": dict(estimator="es", sigma=0.5, population=16, lr=0.05),
    "snes": dict(estimator="snes", sigma=0.5),
    "cmaes": dict(estimator="cmaes", sigma=0.5),
}
#: the novelty of "ESTIMATOR+novelty": NSRA-ES's adaptive weight ("ESTIMATOR+0.3" fixes λ)
NOVELTY = "adaptive"
METHODS = ["sampling", "sampling+novelty", "es", "es+novelty"]


def parse_method(method: str) -> tuple[str, dict, object]:
    """``"es"`` → plain es; ``"es+novelty"`` → es with :data:`NOVELTY`; ``"es+0.5"``,
    ``"es+adaptive"`` → that weight."""
    estimator, _, weight = method.partition("+")
    if estimator not in SETTINGS:
        raise SystemExit(f"--methods: unknown estimator {estimator!r}; one of {list(SETTINGS)}")
    novelty: object = None
    if weight:
        novelty = NOVELTY if weight == "novelty" else weight
        if novelty != "adaptive":
            novelty = float(novelty)
    options = dict(SETTINGS[estimator])
    return options.pop("estimator"), options, novelty


def solve(task: str, method: str, seed: int, budget: int | None = None) -> dict:
    """Train until solved or out of budget; the env steps and wall time it took."""
    warnings.simplefilter("ignore", zoopt.StalledSearchWarning)  # kept in m.notes
    spec = dict(TASKS[task])
    spec["budget"] = budget or spec["budget"]
    estimator, options, novelty = parse_method(method)
    train = GymObjective(**spec["gym"])
    test = GymObjective(**{**spec["gym"], "episodes": max(1, spec["test_episodes"])})
    target, out = spec["target"], {"task": task, "method": method, "seed": seed}

    def passes(x: torch.Tensor) -> bool:
        if not spec["test_episodes"]:  # deterministic: the training return decides
            return True
        test.load_shared_state(train.shared_state())  # the observation normaliser
        return float(test.episode_returns(x.detach(), seed=10**6 + seed).mean()) >= target

    def check(row: dict) -> bool:
        # triggers: θ's training return or a new best candidate reaching the target; then
        # the held-out test of that policy (θ, or the run's best_x, which it returns)
        for name, value, x in (("θ", row["metric"], m.x), ("best_x", row["best_metric"], m.best_x)):
            if value >= target and (name == "θ" or value > out.get("tested", -math.inf)):
                out["tested"] = value if name == "best_x" else out.get("tested", -math.inf)
                if passes(x):
                    out["env_steps"], out["by"] = train.env_steps, name
                    return True
        return train.env_steps >= spec["budget"]

    m = zoopt.Minimizer(
        train,
        train.initial_parameters(seed),
        estimator=estimator,
        steps=10**6,
        seed=seed,
        novelty=novelty,
        callback=check,
        progress=False,
        **options,
    )
    t0 = time.perf_counter()
    m.run()
    out["seconds"] = time.perf_counter() - t0
    out["best"] = m.best_loss * -1.0
    if spec["test_episodes"] and "env_steps" not in out:  # how far from the target
        test.load_shared_state(train.shared_state())
        out["held_out"] = float(test.episode_returns(m.x.detach(), seed=10**6 + seed).mean())
    out["spent"], out["budget"] = train.env_steps, spec["budget"]
    out["stalled"] = any(n.startswith("stalled search") for n in m.notes)
    return out


def _cell(runs: list[dict]) -> str:
    solved = [r["env_steps"] for r in runs if "env_steps" in r]
    text = f"{len(solved)}/{len(runs)}"
    if solved:
        text += f", median {statistics.median(solved):,.0f}"
    return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", nargs="*", default=list(TASKS), choices=list(TASKS))
    ap.add_argument("--methods", nargs="*", default=METHODS, help="ESTIMATOR[+novelty|+λ]")
    ap.add_argument("--seeds", type=int, default=3, help="seeds 0 .. N-1")
    ap.add_argument("--jobs", type=int, default=1, help="runs in parallel (processes)")
    ap.add_argument("--budget", type=int, default=None, help="env steps per run (all tasks)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    work = [(t, m, s) for t in args.tasks for m in args.methods for s in range(args.seeds)]
    results = []
    with ProcessPoolExecutor(args.jobs) as pool:
        futures = [pool.submit(solve, *w, args.budget) for w in work]
        for future in as_completed(futures):
            r = future.result()
            results.append(r)
            steps = f"{r['env_steps']:,} ({r['by']})" if "env_steps" in r else "not solved"
            print(
                f"{r['task']:16s} {r['method']:17s} seed {r['seed']}: {steps:>16s} env steps "
                f"(budget {r['budget']:,}; best return {r['best']:.3g}; "
                + (f"held-out return of θ {r['held_out']:.4g}; " if "held_out" in r else "")
                + ("stalled; " if r["stalled"] else "")
                + f"{r['seconds']:.0f} s)",
                flush=True,
            )
    print()
    print("| task | " + " | ".join(args.methods) + " |")
    print("|---|" + "---|" * len(args.methods))
    for t in args.tasks:
        cells = [
            _cell([r for r in results if r["task"] == t and r["method"] == m]) for m in args.methods
        ]
        print(f"| {t} | " + " | ".join(cells) + " |")
    print("\nsolved seeds / seeds, median training env steps to solve over the solved ones")
    print("stalled: every loss of some 10 steps in a row was equal (the run's note)")


if __name__ == "__main__":
    main()
