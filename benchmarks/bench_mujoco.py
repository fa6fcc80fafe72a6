"""Linear policies on MuJoCo locomotion against Augmented Random Search (Mania et al. 2018,
"Simple random search provides a competitive approach to reinforcement learning").

Needs the ``mujoco`` extra (``pip install zoopt-torch[mujoco]``); without it the script says
so and exits. Three measurements, each against a reference run in the same process:

* **throughput** (one process): env-steps per second of zoopt's ``ars`` (observation
  normalisation, the paper's V2-t settings) against ARS V2-t written here in numpy (about
  sixty lines, :func:`reference_ars`), at K = 2N ∈ {2, 16, 64} directions, in interleaved
  rounds whose order alternates (median ratio), each timing about 40 episodes (at least 3
  steps) after a warm-up step, with each loop's cost on top of its ``env.step`` calls
  (:class:`EnvClock`: the environments' steps differ between the two runs, whose policies
  differ, so this share is the loop's cost alone), per env step and per generation;
* **episodes to threshold** (Swimmer 325, Hopper 3120, HalfCheetah 3430, the paper's
  thresholds): training episodes until the centre's return (one episode on the step's seed,
  checked every 10th step and not counted) first reaches the threshold, for ``ars``, the
  ``default`` (``zoopt.minimize``'s default, ``estimator="auto"``, with its default options) and
  ``snes`` (with ARS's K and σ), and the numpy reference; same envs, same seeds;
* **processes** (``--processes``): an ``ars`` step on Hopper at K = 16 with
  ``evaluator="processes"`` on every core against one process, interleaved; the per-task
  overhead of the pool and a modelled efficiency at 16 cores.

The v5 environments differ from the paper's v1 (contact model, observation ranges, reward
terms, MuJoCo 2+ instead of mujoco-py), so episode counts compare only in kind. The paper
also removed Hopper's survival bonus during training; ``--no-survival-bonus`` does too
(training episodes on ``gym.make("Hopper-v5", healthy_reward=0)`` for zoopt and the
reference alike, the centre's checks on the standard reward, which the threshold is
about); without it every run trains on the standard reward.

Run: ``python benchmarks/bench_mujoco.py --quick`` (Swimmer only, small budgets) or
``python benchmarks/bench_mujoco.py --envs Swimmer-v5 Hopper-v5 --seeds 0 1 2``; Hopper as the
paper trains it: ``python benchmarks/bench_mujoco.py --envs Hopper-v5 --skip throughput
--no-survival-bonus``.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time

import numpy as np
import torch

#: ARS V2-t hyperparameters per task (step α, noise ν, directions N, top b), and the
#: paper's threshold and V2-t median episodes to reach it
TASKS = {
    "Swimmer-v5": dict(alpha=0.02, nu=0.01, n=1, b=1, threshold=325, paper=427),
    "Hopper-v5": dict(alpha=0.01, nu=0.025, n=8, b=4, threshold=3120, paper=1973),
    "HalfCheetah-v5": dict(alpha=0.02, nu=0.03, n=32, b=4, threshold=3430, paper=1707),
}
CHECK_EVERY = 10

#: ``gymnasium.make`` keywords that remove a task's survival bonus (``--no-survival-bonus``):
#: Hopper-v5 pays ``healthy_reward`` (1) every step it is healthy; Swimmer and HalfCheetah
#: pay none
NO_BONUS = {"Hopper-v5": {"healthy_reward": 0.0}}


def training_kwargs(env_id: str, no_bonus: bool) -> dict:
    """The ``gymnasium.make`` keywords of the training episodes (the checks use none)."""
    return dict(NO_BONUS.get(env_id, {})) if no_bonus else {}


# -- the reference: ARS V2-t in numpy ------------------------------------------------------
class RunningStat:
    """Mean and variance of every state seen (Welford), as ARS V2 normalises."""

    def __init__(self, dim: int):
        self.n, self.mean, self.m2 = 0, np.zeros(dim), np.zeros(dim)

    def push_batch(self, x: np.ndarray) -> None:
        n, mean = len(x), x.mean(0)
        delta, total = mean - self.mean, self.n + len(x)
        self.m2 += ((x - mean) ** 2).sum(0) + delta**2 * self.n * n / total
        self.mean += delta * n / total
        self.n = total

    def std(self) -> np.ndarray:
        return np.sqrt(self.m2 / self.n) if self.n > 1 else np.ones_like(self.mean)


def rollout(env, M, mu, std, seed, states=None):
    """One episode of the linear policy a = clip(M (s − μ)/σ); its return and length."""
    obs, _ = env.reset(seed=seed)
    total, steps, done = 0.0, 0, False
    low, high = env.action_space.low, env.action_space.high
    while not done:
        if states is not None:
            states.append(obs)
        a = np.clip(M @ ((obs - mu) / std), low, high)
        obs, r, term, trunc, _ = env.step(a)
        total, steps, done = total + r, steps + 1, term or trunc
    return total, steps


def reference_ars(
    env_id, task, seed, *, max_episodes, max_seconds, iterations=None, clock=None, env_kwargs=None
):
    """ARS V2-t: (training episodes to threshold or None, env steps, seconds, training
    episodes played). Training episodes run on ``gym.make(env_id, **env_kwargs)``, the
    centre's checks on ``gym.make(env_id)``."""
    import gymnasium as gym

    env = gym.make(env_id, **(env_kwargs or {}))
    check_env = gym.make(env_id) if env_kwargs else env
    rng = np.random.default_rng(seed)
    o, a = env.observation_space.shape[0], env.action_space.shape[0]
    M, stat = np.zeros((a, o)), RunningStat(o)
    n, b, alpha, nu = task["n"], task["b"], task["alpha"], task["nu"]
    episodes = steps = 0
    t0 = time.perf_counter()
    for it in range(iterations or 10**9):
        if iterations is not None and it == 1:  # throughput: from the second iteration on
            steps, t0 = 0, time.perf_counter()
            if clock is not None:
                clock.reset()
        mu, std = stat.mean.copy(), stat.std() + 1e-8
        if it % CHECK_EVERY == 0 and iterations is None:
            ret, _ = rollout(check_env, M, mu, std, seed * 100_003 + it)
            if ret >= task["threshold"]:
                return episodes, steps, time.perf_counter() - t0, episodes
        if episodes >= max_episodes or time.perf_counter() - t0 > max_seconds:
            break
        deltas = rng.standard_normal((n, a, o))
        states: list = []
        r = np.zeros((n, 2))
        for k in range(n):
            for j, sign in enumerate((1.0, -1.0)):
                r[k, j], length = rollout(env, M + sign * nu * deltas[k], mu, std, it, states)
                steps += length
        episodes += 2 * n
        top = np.argsort(-r.max(1))[:b]
        sigma_r = r[top].std() + 1e-8
        M += alpha / (b * sigma_r) * np.einsum("k,kao->ao", r[top, 0] - r[top, 1], deltas[top])
        stat.push_batch(np.asarray(states))
    return None, steps, time.perf_counter() - t0, episodes


# -- zoopt ------------------------------------------------------------------------------------
def zoopt_options(task, estimator):
    """``zoopt.minimize``'s estimator name and options for ``estimator``: ARS's K, σ and
    step for ``ars``, ARS's K and σ for ``snes``, none for the ``default``."""
    opts: dict = {}
    if estimator == "ars":
        opts = dict(
            sigma=task["nu"], population=2 * task["n"], top=task["b"],
            eta_mean=task["alpha"] / task["nu"],
        )  # fmt: skip
    elif estimator == "snes":
        opts = dict(sigma=task["nu"], population=max(4, 2 * task["n"]))
    return ("auto" if estimator == "default" else estimator), opts


def zoopt_run(env_id, task, seed, estimator, *, max_episodes, max_seconds, env_kwargs=None):
    """A zoopt run: (training episodes to threshold or None, env steps, seconds, training
    episodes played). With ``env_kwargs`` (training on another reward) see
    :func:`zoopt_run_apart`."""
    import zoopt
    from zoopt.objectives.gym import GymObjective

    if env_kwargs:
        return zoopt_run_apart(
            env_id, task, seed, estimator, env_kwargs,
            max_episodes=max_episodes, max_seconds=max_seconds,
        )  # fmt: skip
    objective = GymObjective(env_id, normalize_observations=True)
    name, opts = zoopt_options(task, estimator)
    reached: list = []
    checks = [0]  # centre episodes so far (one per check)

    def watch(row):
        checks[0] += not math.isnan(row["metric"])
        training = objective.episodes_played - checks[0]
        if not math.isnan(row["metric"]) and row["metric"] >= task["threshold"]:
            reached.append(training)
            return True
        return training >= max_episodes or time.perf_counter() - t0 > max_seconds

    t0 = time.perf_counter()
    zoopt.minimize(
        objective, torch.zeros(objective.dim), estimator=name, seed=seed,
        steps=10**6, evaluate_center=CHECK_EVERY, callback=watch, progress=False, **opts,
    )  # fmt: skip
    seconds = time.perf_counter() - t0
    objective.close()
    played = objective.episodes_played - checks[0]
    return (reached[0] if reached else None), objective.env_steps, seconds, played


def zoopt_run_apart(env_id, task, seed, estimator, env_kwargs, *, max_episodes, max_seconds):
    """A zoopt run that trains on ``gym.make(env_id, **env_kwargs)`` and checks the centre
    on ``gym.make(env_id)``: a :class:`zoopt.Minimizer` stepped by hand, whose centre θ is
    played every ``CHECK_EVERY``-th step, before the step, on a second objective with the
    training objective's observation statistics and the step's seed (one episode, as
    ``evaluate_center`` plays it). The checks leave the training objective untouched, so
    its episodes are the training episodes; a threshold reached at step t counts those of
    steps 0 … t−1, as :func:`reference_ars` does. Returns what :func:`zoopt_run` does (env
    steps: training only)."""
    import zoopt
    from zoopt.minimize import step_seed
    from zoopt.objectives.gym import GymObjective

    train = GymObjective(env_id, normalize_observations=True, env_kwargs=env_kwargs)
    check = GymObjective(env_id, normalize_observations=True)
    name, opts = zoopt_options(task, estimator)
    t0 = time.perf_counter()
    m = zoopt.Minimizer(
        train, torch.zeros(train.dim), estimator=name, seed=seed, steps=10**6,
        evaluate_center=False, progress=False, **opts,
    )  # fmt: skip
    reached = None
    try:
        while True:
            if m.step_count % CHECK_EVERY == 0:
                check.load_shared_state(train.shared_state())
                x = m.theta.detach()[None]
                if -float(check.evaluate(x, step_seed(seed, m.step_count))[0]) >= task["threshold"]:
                    reached = train.episodes_played
                    break
            if train.episodes_played >= max_episodes or time.perf_counter() - t0 > max_seconds:
                break
            m.step()
    finally:
        m.close()
        train.close()
        check.close()
    return reached, train.env_steps, time.perf_counter() - t0, train.episodes_played


class NoOp:
    """A trivial batched objective (module level: the worker processes import it)."""

    def __call__(self, X):
        return X.sum(-1)


# -- the three measurements -------------------------------------------------------------------
def zoopt_rate(env_id, task, seed, iterations, clock=None, ev="local"):
    """Env steps and seconds of ``iterations`` ars steps after a first (warm-up) one, which
    builds the environments (and, on ``ev``'s workers, their objectives)."""
    import zoopt
    from zoopt.objectives.gym import GymObjective

    objective = GymObjective(env_id, normalize_observations=True)
    m = zoopt.Minimizer(
        objective, torch.zeros(objective.dim), estimator="ars", seed=seed, progress=False,
        sigma=task["nu"], population=2 * task["n"], top=task["b"],
        eta_mean=task["alpha"] / task["nu"], evaluate_center=False, evaluator=ev,
    )  # fmt: skip
    m.step()
    if clock is not None:
        clock.reset()
    n0, t0 = objective.env_steps, time.perf_counter()
    for _ in range(iterations - 1):
        m.step()
    seconds = time.perf_counter() - t0
    objective.close()
    return objective.env_steps - n0, seconds


class EnvClock:
    """Times every ``env.step`` of the environments ``gymnasium.make`` builds while active,
    so that a loop's own cost on top of its environments' steps can be told apart."""

    def __init__(self):
        self.seconds, self.calls = 0.0, 0

    def __enter__(self):
        import gymnasium as gym

        self._make, clock = gym.make, self

        def make(*args, **kwargs):
            env = clock._make(*args, **kwargs)
            inner = env.step

            def step(action):
                t = time.perf_counter()
                out = inner(action)
                clock.seconds += time.perf_counter() - t
                clock.calls += 1
                return out

            env.step = step
            return env

        gym.make = make
        return self

    def __exit__(self, *exc):
        import gymnasium as gym

        gym.make = self._make

    def reset(self) -> None:
        """Count from now on (after a warm-up)."""
        self.seconds, self.calls = 0.0, 0

    def share(self, seconds: float) -> float:
        """The loop's cost on top of env.step: (seconds − env time) / env time, for a loop
        that took ``seconds`` since the last :meth:`reset`."""
        return (seconds - self.seconds) / self.seconds


def timed_steps(k: int, iterations: int | None) -> int:
    """Steps per throughput run, the warm-up step included: ``iterations`` if given, else
    enough timed steps for about 40 episodes (at least 3), so that a round at K = 2 times
    20 generations rather than a handful of short early episodes."""
    return iterations if iterations is not None else 1 + max(3, 40 // k)


def throughput(env_id, rounds, ks, iterations):
    task = TASKS[env_id]
    print(
        f"\n{env_id}: env-steps/s of zoopt ars / numpy ARS V2-t, one process, rounds "
        "interleaved (the order swapped every round); 'on top' is each loop's cost on top of "
        "its env.step calls (timed around each call), also per env step and per generation"
    )
    for k in ks:
        t = dict(task, n=k // 2, b=max(1, min(task["b"], k // 2)))
        its = timed_steps(k, iterations)
        ratios, zoopt_top, ref_top = [], [], []
        for r in range(rounds):
            measured = {}
            for who in ("zoopt", "reference") if r % 2 == 0 else ("reference", "zoopt"):
                with EnvClock() as clock:
                    if who == "zoopt":
                        steps, seconds = zoopt_rate(env_id, t, r, its, clock=clock)
                    else:
                        _, steps, seconds, _ = reference_ars(
                            env_id, t, r, max_episodes=10**9, max_seconds=1e9, iterations=its,
                            clock=clock,
                        )  # fmt: skip
                over = seconds - clock.seconds
                measured[who] = (
                    steps / seconds, clock.share(seconds), 1e6 * over / steps,
                    1e3 * over / (its - 1),
                )  # fmt: skip
            (zr, zs, zu, zg), (rr, rs, ru, rg) = measured["zoopt"], measured["reference"]
            ratios.append(zr / rr)
            zoopt_top.append(zs)
            ref_top.append(rs)
            print(
                f"  K={k:3d} round {r}: zoopt {zr:8.0f} steps/s ({zs:.0%} on top: {zu:.1f} µs a "
                f"step, {zg:.2f} ms a generation), reference {rr:8.0f} ({rs:.0%}: {ru:.1f} µs, "
                f"{rg:.2f} ms)"
            )
        print(
            f"  K={k:3d}: ratio {statistics.median(ratios):.2f}, on top of env.step: zoopt "
            f"{statistics.median(zoopt_top):.0%}, reference {statistics.median(ref_top):.0%} "
            f"(medians of {rounds} rounds of {its - 1} timed steps)"
        )


def to_threshold(env_id, seeds, estimators, max_episodes, max_seconds, no_bonus=False):
    task = TASKS[env_id]
    kwargs = training_kwargs(env_id, no_bonus)
    trained = f"; trained with {kwargs}, checked on the standard reward" if kwargs else ""
    print(
        f"\n{env_id}: training episodes to {task['threshold']} (paper V2-t median: "
        f"{task['paper']}; v5 is not the paper's v1), cap {max_episodes} episodes / "
        f"{max_seconds:.0f} s per run{trained}"
    )
    for name in estimators:
        found = []
        for seed in seeds:
            if name == "reference":
                got = reference_ars(
                    env_id, task, seed, max_episodes=max_episodes, max_seconds=max_seconds,
                    env_kwargs=kwargs,
                )  # fmt: skip
            else:
                got = zoopt_run(
                    env_id, task, seed, name, max_episodes=max_episodes, max_seconds=max_seconds,
                    env_kwargs=kwargs,
                )  # fmt: skip
            episodes, steps, seconds, played = got
            found.append(episodes)
            shown = f"not reached in {played}" if episodes is None else f"{episodes} episodes"
            print(f"  {name:9s} seed {seed}: {shown} ({steps} env steps, {seconds:.0f} s)")
        done = sorted(e for e in found if e is not None)
        if len(done) * 2 > len(found):
            median = sorted(e if e is not None else math.inf for e in found)[len(found) // 2]
            print(f"  {name:9s} median: {median} episodes ({median / task['paper']:.2f}× paper)")
        else:
            print(f"  {name:9s} median: not reached within the cap")


def task_overhead(ev, n: int = 200) -> float:
    """Seconds per task of the pool: W tasks of a no-op objective per call, ``n`` calls."""
    from zoopt import ExplicitPopulation, FunctionObjective

    objective = FunctionObjective(NoOp())
    pop = ExplicitPopulation(torch.zeros(ev.num_workers, 16 * 17))
    ev.evaluate(objective, pop, 0)
    t = time.perf_counter()
    for i in range(n):
        ev.evaluate(objective, pop, i)
    return (time.perf_counter() - t) / (n * ev.num_workers)


def processes(env_id, rounds, iterations):
    from zoopt.evaluators import ProcessEvaluator

    task = dict(TASKS["Hopper-v5"], n=8)
    with ProcessEvaluator() as ev:
        w = ev.num_workers
        print(
            f"\n{env_id}: ars K = 16, {iterations} steps after a warm-up one, processes "
            f"({w} workers) / one process"
        )
        speedups = []
        for r in range(rounds):
            s1, t1 = zoopt_rate(env_id, task, r, iterations + 1)
            sp, tp = zoopt_rate(env_id, task, r, iterations + 1, ev=ev)
            speedups.append((sp / tp) / (s1 / t1))
            print(f"  round {r}: one process {s1 / t1:7.0f} steps/s, processes {sp / tp:7.0f}")
        print(f"  speed-up {statistics.median(speedups):.2f}× on {w} workers (median)")

        per_task = task_overhead(ev)
        # one Hopper chunk at 16 cores and K = 16: one episode of up to 1,000 steps
        chunk = 1000 / (s1 / t1)
        print(
            f"  per-task overhead {per_task * 1e3:.2f} ms (driver send + receive, measured); "
            f"one K = 16 chunk at 16 workers ≈ {chunk * 1e3:.0f} ms of simulation; modelled "
            f"efficiency at 16 cores = chunk / (chunk + 16 × overhead) = "
            f"{chunk / (chunk + 16 * per_task):.2f} (episode-length imbalance not modelled)"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="Swimmer only, small budgets")
    ap.add_argument("--envs", nargs="+", default=list(TASKS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument(
        "--estimators", nargs="+", default=["reference", "ars", "default", "snes"],
        help="'reference' is the numpy ARS V2-t",
    )  # fmt: skip
    ap.add_argument("--max-episodes", type=int, default=20_000)
    ap.add_argument("--max-seconds", type=float, default=1800.0, help="cap per run")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved throughput rounds")
    ap.add_argument("--ks", nargs="+", type=int, default=[2, 16, 64])
    ap.add_argument(
        "--iterations", type=int, default=None,
        help="steps per throughput run (1 warm-up); default 1 + max(3, 40 // K)",
    )  # fmt: skip
    ap.add_argument("--skip", nargs="*", default=[], choices=["throughput", "threshold"])
    ap.add_argument("--processes", action="store_true", help="also the processes evaluator")
    ap.add_argument(
        "--no-survival-bonus", action="store_true",
        help="episodes to threshold: train without the survival bonus (Hopper-v5: "
        "healthy_reward=0, as the paper trains); the centre's checks keep the standard reward",
    )  # fmt: skip
    args = ap.parse_args()
    try:
        import mujoco  # noqa: F401
    except ImportError:
        print("bench_mujoco: needs the mujoco extra (pip install 'zoopt-torch[mujoco]'); skipped")
        sys.exit(0)
    torch.set_num_threads(1)
    if args.quick:
        args.envs, args.seeds, args.rounds = ["Swimmer-v5"], [0], 2
        args.ks, args.iterations, args.max_seconds = [2, 16], 3, 600.0
    for env_id in args.envs:
        if "throughput" not in args.skip:
            throughput(env_id, args.rounds, args.ks, args.iterations)
        if "threshold" not in args.skip:
            to_threshold(
                env_id, args.seeds, args.estimators, args.max_episodes, args.max_seconds,
                no_bonus=args.no_survival_bonus,
            )  # fmt: skip
    if args.processes:
        processes("Hopper-v5", args.rounds, 3 if args.quick else 20)


if __name__ == "__main__":
    main()
