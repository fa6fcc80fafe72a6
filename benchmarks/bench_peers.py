"""zoopt's estimators against the libraries a user would otherwise pick, on their benchmarks.

Every method calls one counted objective: a batched function or a CartPole-v1 rollout (a
5-parameter linear policy, one episode per evaluation, a fresh reset seed per batch from
the run's generator). zoopt's evaluations are all counted, its centre evaluations included.
A method is *solved* when its centre (not its best draw) passes the check, made outside the
count after every generation: f(centre) below the target, or for CartPole a greedy mean
return ≥ 475 over 20 held-out episodes.

Tasks (same x0 and σ0 for every method):

* ``cartpole``: CartPole-v1, linear policy a = [w·s + b > 0], x0 = 0, σ0 = 0.5;
* ``sphere``: 10-D, x0 = 3·1, σ0 = 2, target 1e-8;
* ``ellipsoid``: 10-D, condition 1e6, x0 = 3·1, σ0 = 2, target 1e-8;
* ``rosenbrock10``/``rosenbrock20``: x0 = 0, σ0 = 0.5, target 1e-6;
* ``rastrigin20``: x0 = 3·1, σ0 = 2, 100k evaluations; CMA-ES with IPOP restarts (pycma's
  ``fmin2`` and zoopt's ``cmaes(restarts=9)``), the others as they are: the reported final
  f of each method's solution.

Methods: pycma; pycma's lq-CMA-ES (``pycma-lq``: ``cma.fitness_models.SurrogatePopulation``
as ``cma.fmin_lq_surr2`` drives it, ``fmin_lq_surr2`` itself with IPOP restarts on
Rastrigin-20); EvoTorch SNES, CMAES, PGPE (ClipUp); Nevergrad CMA, NGOpt; zoopt's default
``auto`` and every zoopt parameter-space estimator with its defaults (``gradient`` and
``reinforce`` need a differentiable surrogate or output sampling and are left out). A peer
that is not installed or raises is reported as such. ``--draws zoopt`` gives pycma and
pycma-lq the normal draws zoopt's ``cmaes`` makes for the same seed (pycma's ``randn``
option), so that the two differ only where the algorithms do.

The table gives, per task and method, solved/seeds and the median evaluations (episodes for
CartPole) of the solved seeds, and for each zoopt estimator its ratio to the best peer's
median (< 1: fewer evaluations than the best peer). Each method's progress line also gives
COCO's expected running time (ERT): the evaluations of all its runs, a failed run's whole
budget included, per solved run, which charges a method for the seeds it misses.

Run: ``python benchmarks/bench_peers.py [--quick] [--seeds 5] [--tasks sphere,ellipsoid]
[--methods pycma,zoopt-snes]``
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # before numpy is imported: one BLAS thread

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

import zoopt  # noqa: E402
from zoopt.objectives import rastrigin, rosenbrock, sphere  # noqa: E402

torch.set_num_threads(1)
warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)


# -- objectives -----------------------------------------------------------------------------
def ellipsoid(X: torch.Tensor) -> torch.Tensor:
    """Σ 10^(6 (i−1)/(D−1)) xᵢ²: condition number 1e6."""
    d = X.shape[-1]
    w = 1e6 ** (torch.arange(d, dtype=X.dtype) / (d - 1))
    return (X * X * w).sum(-1)


class CartPole:
    """CartPole-v1 returns of linear policies, Gymnasium's native vector environment."""

    def __init__(self):
        import gymnasium as gym

        self.gym = gym
        self.envs: dict = {}

    def _env(self, n: int):
        if n not in self.envs:
            self.envs[n] = self.gym.make_vec(
                "CartPole-v1", num_envs=n, vectorization_mode="vector_entry_point"
            )
        return self.envs[n]

    def returns(self, W: np.ndarray, seed: int) -> np.ndarray:
        """One episode per row of ``W`` ``(n, 5)``; returns ``(n,)``."""
        n = W.shape[0]
        env = self._env(n)
        obs, _ = env.reset(seed=int(seed))
        total = np.zeros(n)
        alive = np.ones(n, dtype=bool)
        while alive.any():
            act = ((obs * W[:, :4]).sum(1) + W[:, 4] > 0).astype(np.int64)
            obs, reward, term, trunc, _ = env.step(act)
            total += reward * alive
            alive &= ~(term | trunc)
        return total


@dataclass
class Task:
    name: str
    dim: int
    x0: float
    sigma: float
    target: float
    budget: int
    kind: str = "function"  # "function", "cartpole" or "final" (report the final f)
    f: Callable | None = None


TASKS = {
    "cartpole": Task("cartpole", 5, 0.0, 0.5, 475.0, 3000, "cartpole"),
    "sphere": Task("sphere", 10, 3.0, 2.0, 1e-8, 30_000, f=sphere),
    "ellipsoid": Task("ellipsoid", 10, 3.0, 2.0, 1e-8, 30_000, f=ellipsoid),
    "rosenbrock10": Task("rosenbrock10", 10, 0.0, 0.5, 1e-6, 30_000, f=rosenbrock),
    "rosenbrock20": Task("rosenbrock20", 20, 0.0, 0.5, 1e-6, 60_000, f=rosenbrock),
    "rastrigin20": Task("rastrigin20", 20, 3.0, 2.0, 1e-8, 100_000, "final", f=rastrigin),
}


class Budget(Exception):
    """The counted budget is spent."""


class Counted:
    """The one counted objective of a run: a batched loss ``(K, D) -> (K,)``."""

    def __init__(self, task: Task, seed: int, cartpole: CartPole | None):
        self.task, self.n = task, 0
        self.rng = np.random.default_rng(seed)
        self.cartpole = cartpole
        self.heldout_seed = 10**6 + seed
        self.best = math.inf  # the lowest loss evaluated (what fmin2 reports as fbest)

    def __call__(self, X: torch.Tensor) -> torch.Tensor:
        if self.n >= self.task.budget:
            raise Budget
        self.n += X.shape[0]
        if self.task.kind == "cartpole":
            W = X.detach().double().cpu().numpy()
            ret = self.cartpole.returns(W, int(self.rng.integers(2**31)))
            return torch.from_numpy(-ret).to(X.dtype)
        out = self.task.f(X.detach().double())
        self.best = min(self.best, float(out.min()))
        return out.to(X.dtype)

    def solved(self, center) -> bool:
        """The check on the centre (not counted)."""
        c = torch.as_tensor(np.asarray(center, dtype=np.float64)).reshape(1, -1)
        if self.task.kind == "cartpole":
            W = np.repeat(c.numpy(), 20, axis=0)
            return float(self.cartpole.returns(W, self.heldout_seed).mean()) >= 475.0
        if self.task.kind == "final":
            return False
        return float(self.task.f(c)[0]) < self.task.target

    def final(self, center) -> float:
        c = torch.as_tensor(np.asarray(center, dtype=np.float64)).reshape(1, -1)
        return float(self.task.f(c)[0])


def default_popsize(d: int) -> int:
    return 4 + int(3 * math.log(d))


# -- methods: each returns (solved, evaluations, final f or nan) -----------------------------
#: extra estimator options for the zoopt methods (``--zoopt-options``; defaults otherwise)
ZOOPT_OPTIONS: dict = {}


def run_zoopt(name: str, task: Task, seed: int, obj: Counted) -> tuple:
    x0 = torch.full((task.dim,), task.x0, dtype=torch.float64)
    opts = {"sigma": task.sigma, **ZOOPT_OPTIONS}
    if task.kind == "final" and name == "cmaes":
        opts["restarts"] = 9
    m = zoopt.Minimizer(obj, x0, estimator=name, steps=10**9, seed=seed, **opts)
    checked = None  # the last centre checked: a surrogate's step often leaves it unchanged
    try:
        while True:  # solved is checked before stopped, as _until_solved does for pycma
            m.step()
            if checked is None or not torch.equal(m.x, checked):
                checked = m.x.clone()
                if obj.solved(checked):
                    return True, obj.n, math.nan
            if m.stop_reason:
                break
    except Budget:
        pass
    return False, obj.n, obj.final(m.x) if task.kind == "final" else math.nan


#: "own" (pycma seeded with seed + 1) or "zoopt" (``--draws``; see :func:`pycma_options`)
DRAWS = ["own"]


def pycma_options(seed: int) -> dict:
    """pycma's options for a seed: its own seeded generator, or with ``--draws zoopt`` the
    normals of zoopt's ``cmaes`` (numpy's PCG64 at the run's first step seed)."""
    opts = {"seed": seed + 1, "verbose": -9, "verb_log": 0}
    if DRAWS[0] == "zoopt":
        rng = np.random.Generator(np.random.PCG64(zoopt.step_seed(seed, 0)))
        opts.update(seed=math.nan, randn=lambda lam, dim: rng.standard_normal((lam, dim)))
    return opts


def run_pycma(task: Task, seed: int, obj: Counted) -> tuple:
    import cma

    x0 = np.full(task.dim, task.x0)
    opts = pycma_options(seed)
    if task.kind == "final":  # IPOP restarts through fmin2, the reported xbest
        best = [None]
        try:
            x, es = cma.fmin2(
                None,
                x0,
                task.sigma,
                dict(opts, maxfevals=task.budget),
                restarts=9,
                incpopsize=2,
                parallel_objective=lambda X: obj(torch.tensor(np.array(X))).tolist(),
            )
            best[0] = x
        except Budget:  # fmin2's xbest: the best evaluated point
            return False, obj.n, obj.best
        return False, obj.n, obj.final(best[0])
    es = cma.CMAEvolutionStrategy(x0, task.sigma, opts)
    return _until_solved(es, obj, lambda X: es.tell(X, obj(torch.tensor(np.array(X))).tolist()))


def _until_solved(es, obj: Counted, tell) -> tuple:
    """Ask and ``tell(X)`` until pycma's mean solves the task, pycma stops or the budget ends."""
    try:
        while True:
            tell(es.ask())
            if obj.solved(es.mean):
                return True, obj.n, math.nan
            if es.stop():
                break
    except Budget:
        pass
    return False, obj.n, math.nan


def run_pycma_lq(task: Task, seed: int, obj: Counted) -> tuple:
    import cma
    from cma import fitness_models

    x0 = np.full(task.dim, task.x0)
    opts = pycma_options(seed)

    def f(x) -> float:
        return float(obj(torch.tensor(np.array(x))[None])[0])

    if task.kind == "final":
        try:
            x, _ = cma.fmin_lq_surr2(f, x0, task.sigma, dict(opts, maxfevals=task.budget),
                                     restarts=9)  # fmt: skip
        except Budget:
            return False, obj.n, obj.best
        return False, obj.n, obj.final(x)
    es = cma.CMAEvolutionStrategy(x0, task.sigma, opts)
    surrogate = fitness_models.SurrogatePopulation(f)

    def tell(X) -> None:  # as cma.fmin_lq_surr2 does
        es.tell(X, surrogate(X))
        es.countevals = surrogate.evaluations
        es.inject([surrogate.model.xopt])

    return _until_solved(es, obj, tell)


def run_evotorch(name: str, task: Task, seed: int, obj: Counted) -> tuple:
    from evotorch import Problem
    from evotorch.algorithms import CMAES, PGPE, SNES

    torch.manual_seed(seed)
    problem = Problem(
        "min",
        obj,
        solution_length=task.dim,
        initial_bounds=(-1, 1),
        vectorized=True,
        dtype=torch.float64,
        seed=seed,
    )
    center = torch.full((task.dim,), task.x0, dtype=torch.float64)
    if name == "SNES":
        searcher = SNES(problem, stdev_init=task.sigma, center_init=center)
    elif name == "CMAES":
        searcher = CMAES(problem, stdev_init=task.sigma, center_init=center)
    else:  # PGPE with ClipUp, the zoopt pgpe rule for max_speed
        k = default_popsize(task.dim)
        speed = task.sigma * math.sqrt(task.dim) / 15
        searcher = PGPE(
            problem,
            popsize=k + k % 2,
            center_learning_rate=speed / 2,
            stdev_learning_rate=0.1,
            stdev_init=task.sigma,
            center_init=center,
            optimizer="clipup",
            optimizer_config={"max_speed": speed},
            ranking_method="centered",
        )
    last = None
    try:
        while True:
            searcher.step()
            last = searcher.status["center"].clone()
            if obj.solved(last.numpy()):
                return True, obj.n, math.nan
    except Budget:
        pass
    final = obj.final(last.numpy()) if task.kind == "final" and last is not None else math.nan
    return False, obj.n, final


def run_nevergrad(name: str, task: Task, seed: int, obj: Counted) -> tuple:
    import nevergrad as ng

    param = ng.p.Array(init=np.full(task.dim, task.x0)).set_mutation(sigma=task.sigma)
    param.random_state.seed(seed)
    k = default_popsize(task.dim)
    opt = ng.optimizers.registry[name](parametrization=param, budget=task.budget, num_workers=k)
    rec = None
    try:
        while obj.n < task.budget:
            cands = [opt.ask() for _ in range(k)]
            losses = obj(torch.tensor(np.array([c.value for c in cands])))
            for c, loss in zip(cands, losses.tolist(), strict=True):
                opt.tell(c, loss)
            rec = opt.provide_recommendation().value
            if obj.solved(rec):
                return True, obj.n, math.nan
    except Budget:
        pass
    final = obj.final(rec) if task.kind == "final" and rec is not None else math.nan
    return False, obj.n, final


ZOOPT = ["auto", "sampling", "es", "cmaes", "snes", "xnes", "pgpe", "ars"]
PEERS = [
    "pycma",
    "pycma-lq",
    "evotorch-SNES",
    "evotorch-CMAES",
    "evotorch-PGPE",
    "ng-CMA",
    "ng-NGOpt",
]


def run(method: str, task: Task, seed: int, cartpole: CartPole | None) -> tuple:
    obj = Counted(task, seed, cartpole)
    if method.startswith("zoopt-"):
        return run_zoopt(method[6:], task, seed, obj)
    if method == "pycma":
        return run_pycma(task, seed, obj)
    if method == "pycma-lq":
        return run_pycma_lq(task, seed, obj)
    if method.startswith("evotorch-"):
        return run_evotorch(method[9:], task, seed, obj)
    return run_nevergrad(method[3:], task, seed, obj)


def fmt(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--tasks", default=",".join(TASKS))
    ap.add_argument("--methods", default=",".join(PEERS + [f"zoopt-{n}" for n in ZOOPT]))
    ap.add_argument(
        "--quick",
        action="store_true",
        help="2 seeds, budgets cut to a third, Rastrigin-20 at 30k: a few minutes",
    )
    ap.add_argument(
        "--zoopt-options",
        default="{}",
        help="JSON options for every zoopt estimator, e.g. '{\"eta_sigma\": 1.0}'",
    )
    ap.add_argument(
        "--draws",
        choices=["own", "zoopt"],
        default="own",
        help="pycma's normal draws: its own seeded generator, or zoopt cmaes's for the seed",
    )
    args = ap.parse_args()
    ZOOPT_OPTIONS.update(json.loads(args.zoopt_options))
    DRAWS[0] = args.draws
    seeds = 2 if args.quick and args.seeds == 5 else args.seeds
    tasks = [TASKS[t] for t in args.tasks.split(",")]
    if args.quick:
        for t in tasks:
            t.budget = t.budget // 3
    methods = args.methods.split(",")
    cartpole = CartPole() if any(t.kind == "cartpole" for t in tasks) else None
    results: dict = {}
    for task in tasks:
        for method in methods:
            t0 = time.perf_counter()
            runs, status = [], "ok"
            for seed in range(seeds):
                try:
                    runs.append(run(method, task, seed, cartpole))
                except ImportError as e:
                    status = f"not installed ({e.name})"
                    break
                except Exception as e:  # a peer that crashes is reported as crashed
                    status = f"crashed: {type(e).__name__}: {e}"
                    traceback.print_exc(limit=2)
                    break
            results[task.name, method] = (runs, status)
            solved = [r[1] for r in runs if r[0]]
            med = statistics.median(solved) if solved else math.nan
            finals = [r[2] for r in runs if not math.isnan(r[2])]
            # COCO's expected running time: every run's evaluations (a failed run's whole
            # budget included) per solved run
            ert = sum(r[1] for r in runs) / len(solved) if solved else math.nan
            print(
                f"{task.name:13s} {method:16s} solved {len(solved)}/{len(runs)} "
                f"median {fmt(med)} ERT {fmt(ert)} "
                f"final {fmt(statistics.median(finals)) if finals else '—'} "
                f"({time.perf_counter() - t0:.0f} s) {'' if status == 'ok' else status}",
                flush=True,
            )
    print_table(tasks, methods, results, seeds)


def print_table(tasks: list, methods: list, results: dict, seeds: int) -> None:
    unit = {"cartpole": "episodes"}
    print(
        f"\n{seeds} seeds; solved/seeds, median evaluations of the solved seeds "
        "(Rastrigin: median final f), ratio = zoopt / best peer\n"
    )
    head = "| method | " + " | ".join(
        f"{t.name} ({'final f' if t.kind == 'final' else unit.get(t.name, 'evals')})" for t in tasks
    )
    print(head + " |")
    print("|---" * (len(tasks) + 1) + "|")
    best_peer: dict = {}
    for t in tasks:
        vals = []
        for m in methods:
            if m.startswith("zoopt-"):
                continue
            runs, status = results[t.name, m]
            vals.append(_figure(t, runs))
        vals = [v for v in vals if not math.isnan(v)]
        best_peer[t.name] = min(vals) if vals else math.nan
    for m in methods:
        cells = []
        for t in tasks:
            runs, status = results[t.name, m]
            if status != "ok":
                cells.append(status.split(":")[0])
                continue
            v = _figure(t, runs)
            solved = sum(r[0] for r in runs)
            cell = f"{fmt(v)}" if t.kind == "final" else f"{solved}/{len(runs)} {fmt(v)}"
            bp = best_peer[t.name]
            if m.startswith("zoopt-") and not math.isnan(v) and bp and not math.isnan(bp):
                cell += f" ({v / bp:.2f}×)" if bp > 0 else ""
            cells.append(cell)
        print(f"| {m} | " + " | ".join(cells) + " |")


def _figure(task: Task, runs: list) -> float:
    if task.kind == "final":
        finals = [r[2] for r in runs if not math.isnan(r[2])]
        return statistics.median(finals) if finals else math.nan
    solved = [r[1] for r in runs if r[0]]
    return statistics.median(solved) if solved else math.nan


if __name__ == "__main__":
    main()
