"""Useful env-steps per second of zoopt's population evaluation on CartPole-v1.

The reference is Gymnasium's native vectorised CartPole with all 256 slots live, driven by
a batched linear policy written here in numpy (full occupancy: the physical limit of this
machine for 256 environments). zoopt's rate counts only steps of live episodes (a slot
that idles, or plays past its episode's end, earns nothing). For K×E = 256 episodes:

* (a) random linear policies (episodes of very different lengths), one evaluation, and
  the time of one loop step (policy forward, vector-env step and bookkeeping);
* (b) a whole ``es`` run (population 64 × 4 episodes) from a random start until the
  centre's return reaches 475, aggregated over the run: every env step of the run (the
  population's and the centre's) over the time spent evaluating. Occupancy = useful
  steps / simulated slot-steps over the run; the centre's share of evaluation time is
  printed too. ``--episode-cap C`` adds the same run with the straggler cap of Salimans et
  al. (``GymObjective(episode_cap=C)``; it changes the objective, see its docstring).

(c) shows where idle slots do cost: on ``SyncVectorEnv`` each slot is a Python
``env.step``, so occupancy is speed.

``--before REV`` loads ``GymObjective`` from git revision REV of this repository and
measures it interleaved with the working tree's, in the same process.

Run: ``python benchmarks/bench_cartpole.py [--before REV] [--rounds 3]``
"""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

import zoopt
from zoopt.objectives import GymObjective

torch.set_num_threads(1)
N = 256  # K×E episodes per evaluation


def load_before(rev: str) -> type:
    """``GymObjective`` as of git revision ``rev`` (a module file or a package).

    A package's modules are written to a temporary directory under another name (its
    absolute imports renamed alike), so that both versions live in one process.
    """
    root = Path(__file__).resolve().parents[1]
    show = ["git", "-C", str(root), "show"]
    name = f"gym_before_{rev.replace('-', '_').replace('.', '_')}"
    src = subprocess.run([*show, f"{rev}:zoopt/objectives/gym.py"], capture_output=True, text=True)
    if src.returncode == 0:
        module = types.ModuleType(name)
        exec(compile(src.stdout, f"{rev}:zoopt/objectives/gym.py", "exec"), module.__dict__)
        return module.GymObjective
    ls = subprocess.run(
        ["git", "-C", str(root), "ls-tree", "--name-only", f"{rev}:zoopt/objectives/gym"],
        capture_output=True,
        text=True,
    )
    if ls.returncode != 0:
        raise SystemExit(f"--before {rev}: no zoopt/objectives/gym(.py) there ({ls.stderr})")
    package = Path(tempfile.mkdtemp()) / name
    package.mkdir()
    for file in ls.stdout.split():
        if file.endswith(".py"):
            text = subprocess.run(
                [*show, f"{rev}:zoopt/objectives/gym/{file}"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            (package / file).write_text(text.replace("zoopt.objectives.gym", name))
    sys.path.insert(0, str(package.parent))
    return importlib.import_module(name).GymObjective


def native_rate(seconds: float) -> float:
    """Reference: native CartPoleVectorEnv, 256 slots all live, numpy linear policies."""
    env = gym.make_vec("CartPole-v1", num_envs=N, vectorization_mode="vector_entry_point")
    obs, _ = env.reset(seed=0)
    W = np.random.default_rng(0).standard_normal((N, 2, 5)).astype(np.float32)
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(100):
            logits = np.einsum("ni,noi->no", obs, W[:, :, :4]) + W[:, :, 4]
            obs, *_ = env.step(logits.argmax(1))  # autoreset keeps every slot live
        steps += 100 * N
    return steps / (time.perf_counter() - t0)


def single_slot_step_seconds(steps: int = 2000) -> float:
    """Seconds per step of a 1-env native vector CartPole (no policy): the cheapest step."""
    env = gym.make_vec("CartPole-v1", num_envs=1, vectorization_mode="vector_entry_point")
    env.reset(seed=0)
    action = np.ones(1, dtype=np.int64)
    t0 = time.perf_counter()
    for _ in range(steps):
        env.step(action)
    return (time.perf_counter() - t0) / steps


def random_rate(objective, X: torch.Tensor, seconds: float) -> tuple[float, float, float]:
    """(useful env-steps/s, occupancy, seconds per loop step) of repeated evaluations of
    ``X`` (a loop step: one policy forward, one vector-env step and the bookkeeping)."""
    objective.evaluate(X, 0)  # warm-up: environment creation
    steps0, slots0 = objective.env_steps, getattr(objective, "slot_steps", 0)
    seed, t0 = 1, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        objective.evaluate(X, seed)
        seed += 1
    dt = time.perf_counter() - t0
    steps = objective.env_steps - steps0
    slots = getattr(objective, "slot_steps", 0) - slots0
    if not slots:
        return steps / dt, float("nan"), float("nan")
    return steps / dt, steps / slots, dt / (slots / objective.num_slots(X.shape[0]))


class Timed:
    """Wraps an objective's ``evaluate`` to time population and centre (K = 1) calls."""

    def __init__(self, objective):
        self.objective, self.population_s, self.centre_s = objective, 0.0, 0.0
        inner = objective.evaluate

        def evaluate(X, seed=0):
            t0 = time.perf_counter()
            out = inner(X, seed)
            if X.shape[0] == 1:
                self.centre_s += time.perf_counter() - t0
            else:
                self.population_s += time.perf_counter() - t0
            return out

        objective.evaluate = evaluate


def es_run(make, steps: int, seed: int) -> dict:
    """An ``es`` run on ``make()`` until the centre's return ≥ 475 or ``steps``."""
    objective = make()
    timed = Timed(objective)
    result = zoopt.minimize(
        objective,
        objective.initial_parameters(seed),
        estimator="es",
        population=64,
        sigma=0.1,
        lr=0.05,
        steps=steps,
        seed=seed,
        progress=False,
        callback=lambda row: row["metric"] >= 475.0,
    )
    eval_s = timed.population_s + timed.centre_s
    slots = getattr(objective, "slot_steps", 0)
    return {
        "rate": objective.env_steps / eval_s,
        "occupancy": objective.env_steps / slots if slots else float("nan"),
        "centre_share": timed.centre_s / eval_s,
        "steps": len(result.history["loss"]),
        "return": -float(result.history["loss"][-1]),
        "env_steps": objective.env_steps,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=2.0, help="time per (a) measurement")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median)")
    ap.add_argument("--es-steps", type=int, default=60, help="step cap of the es runs")
    ap.add_argument("--es-runs", type=int, default=1, help="es runs (seeds) per round")
    ap.add_argument("--before", metavar="REV", help="also measure GymObjective of git REV")
    ap.add_argument(
        "--slots",
        type=int,
        nargs="+",
        default=[None],
        help="zoopt's slot counts (default: its own)",
    )
    ap.add_argument(
        "--episode-cap",
        type=float,
        default=None,
        metavar="C",
        help="also run (b) with the straggler cap episode_cap=C (Salimans et al.: 2)",
    )
    args = ap.parse_args()
    X = torch.randn(N, 10, generator=torch.Generator().manual_seed(0))  # (a) K=256, E=1
    variants = {f"zoopt (slots={s or 'default'})": (GymObjective, s) for s in args.slots}
    if args.before:
        variants = {f"before ({args.before})": (load_before(args.before), None), **variants}

    def now(variant, **kw):
        cls, slots = variant
        if slots is not None:
            kw["slots"] = slots
        return cls("CartPole-v1", **kw)

    objectives = {name: now(variant) for name, variant in variants.items()}
    # (c) SyncVectorEnv, where every slot is a Python env.step: idle slots cost real work
    sync = {"zoopt (slots=default)": GymObjective("CartPole-v1", vectorization="sync")}
    if args.before:
        before = variants[f"before ({args.before})"][0]
        sync = {f"before ({args.before})": before("CartPole-v1", vectorization="sync"), **sync}
    c: dict[str, list] = {name: [] for name in sync}
    a: dict[str, list] = {name: [] for name in ["native", *variants]}
    runs_b = {name: (variant, {}) for name, variant in variants.items()}
    if args.episode_cap is not None:
        capped = (GymObjective, None), {"episode_cap": args.episode_cap}
        runs_b[f"zoopt (episode_cap={args.episode_cap:g})"] = capped
    b: dict[str, list] = {name: [] for name in runs_b}
    # interleaved rounds: a load change on the shared machine hits every method alike
    for r in range(args.rounds):
        a["native"].append((native_rate(args.seconds), 1.0, float("nan")))
        # odd rounds run the variants in reverse order: no variant always goes first
        order = list(variants)[:: 1 if r % 2 == 0 else -1]
        for name in order:
            a[name].append(random_rate(objectives[name], X, args.seconds))
        for name in list(sync)[:: 1 if r % 2 == 0 else -1]:
            c[name].append(random_rate(sync[name], X, args.seconds))
        for name in list(runs_b)[:: 1 if r % 2 == 0 else -1]:
            variant, kw = runs_b[name]
            for s in range(args.es_runs):
                run = es_run(lambda v=variant, kw=kw: now(v, episodes=4, **kw), args.es_steps, s)
                b[name].append((run, r))
        for name in runs_b:  # the reference of the same round, for (b)'s ratio
            for run, rr in b[name]:
                run.setdefault("ref", a["native"][rr][0])

    ref = float(np.median([x for x, _, _ in a["native"]]))
    print(
        f"CartPole-v1, K×E = {N} episodes, one thread, median of {args.rounds} interleaved "
        "rounds; ratios against the native vector env at full occupancy of the same round"
    )
    print(
        f"  native CartPoleVectorEnv + numpy linear policy, all slots live: {ref:,.0f} /s "
        f"({1e6 * N / ref:.0f} µs per step of the {N} envs)"
    )
    print("  (a) random policies, one evaluation of 256 episodes:")
    for name in variants:
        rates = [x for x, _, _ in a[name]]
        ratios = [x / y for (x, _, _), (y, _, _) in zip(a[name], a["native"], strict=True)]
        occ = float(np.median([o for _, o, _ in a[name]]))
        loop = 1e6 * float(np.median([t for _, _, t in a[name]]))
        print(
            f"    {name:28s} {np.median(rates):11,.0f} useful env-steps/s  "
            f"{np.median(ratios):5.3f}×  occupancy {occ:.2f}  {loop:4.0f} µs per loop step"
        )
    lengths = GymObjective("CartPole-v1").episode_returns(X, seed=1)
    one = single_slot_step_seconds()
    bound = float(lengths.sum()) / (float(lengths.max()) * one) / ref
    print(
        f"    critical path: the longest episode has {lengths.max():.0f} steps and one step "
        f"of a 1-env native vector env takes {1e6 * one:.0f} µs, so no schedule of this "
        f"population exceeds {bound:.2f}×"
    )
    print("  (b) es run, population 64 × 4 episodes, random start until return ≥ 475:")
    for name in runs_b:
        runs = [run for run, _ in b[name]]
        ratio = np.median([run["rate"] / run["ref"] for run in runs])
        print(
            f"    {name:28s} {np.median([run['rate'] for run in runs]):11,.0f} useful "
            f"env-steps/s  {ratio:5.3f}×  occupancy "
            f"{np.median([run['occupancy'] for run in runs]):.2f}  centre "
            f"{100 * np.median([run['centre_share'] for run in runs]):.0f}% of eval time  "
            f"({runs[0]['steps']} steps, return {runs[0]['return']:.0f})"
        )

    print("  (c) SyncVectorEnv (vectorization='sync'), random policies, 256 episodes:")
    for name in sync:
        rates = [x for x, _, _ in c[name]]
        occ = float(np.median([o for _, o, _ in c[name]]))
        print(f"    {name:28s} {np.median(rates):11,.0f} useful env-steps/s  occupancy {occ:.2f}")


if __name__ == "__main__":
    main()
