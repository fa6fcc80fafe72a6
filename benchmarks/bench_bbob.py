"""zoopt against pycma and Nevergrad on COCO's ``bbob`` suite, reported as COCO-style ECDFs.

The 24 noiseless bbob functions (Hansen, Finck, Ros & Auger, 2009, "Real-parameter
black-box optimization benchmarking 2009: noiseless functions definitions"), evaluated
through the ``coco-experiment`` package (``cocoex.BareProblem``: the function and its
f_opt, no observer). Each (function, instance) starts every method from the same
x0 ~ U[-4, 4]^D with σ0 = 2 and gives it ``budget``·D evaluations; a run ends once
f − f_opt ≤ 1e-8, the last target.

The figure of merit is COCO's runtime ECDF: the fraction of (function, instance, target)
triples, targets f_opt + 10^k for k = 2, 1.8, …, −8 (51 targets), reached within a number of
evaluations, plotted against evaluations / D. Reported overall and per function group:
separable f1–f5, moderate f6–f9, ill-conditioned f10–f14, multimodal f15–f19, weakly
structured multimodal f20–f24.

Methods: pycma with IPOP and BIPOP restarts (``cma.fmin2(..., restarts=9[, bipop=True])``),
pycma's lq-CMA-ES (``cma.fmin_lq_surr2``, IPOP restarts), Nevergrad's NGOpt, and zoopt's
``auto`` (the default estimator), ``snes``, ``xnes`` and ``cmaes`` (``restarts=9``); on request
``zoopt-auto-bipop``, ``auto`` with ``bipop=True`` (BIPOP instead of IPOP restarts), and
``zoopt-auto-adaptive``, ``auto`` with ``surrogate="adaptive"`` (a restart drops the model
when the previous run rarely trusted it), ``zoopt-auto-lq``, ``auto`` with ``surrogate=True``
(the model kept in every run), ``zoopt-auto-inject``, ``auto`` with ``model_step=False`` (the
model's optimum injected, the mean left to CMA-ES, as lq-CMA-ES does), ``zoopt-auto-pinv``,
``auto`` with ``model_fit="pinv"`` (the model's least squares by pycma's pseudo-inverse every
time, not the QR where it is well-conditioned), and
``zoopt-cmaes-bipop``, ``cmaes`` with ``restarts=9, bipop=True`` (no surrogate). Every
evaluation any method makes is counted, zoopt's centre evaluations and its noise probe
included.

Run: ``python benchmarks/bench_bbob.py [--quick] [--dims 2,5,10,20] [--instances 1-5]
[--functions 1-24] [--budget 10000] [--methods ...] [--out results.json]
[--plot docs/bbob_ecdf.png]``; ``--report a.json,b.json`` merges saved runs and reports them
(the records of several seeds pooled; ``--dims``, ``--functions`` and ``--instances`` select
among them); with ``--targets`` the first method against the best peer at 10²·D, 10³·D and
10⁴·D per group, on the problems every method ran.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # before numpy is imported: one BLAS thread

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

import zoopt  # noqa: E402

torch.set_num_threads(1)
warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)

#: COCO's targets: f_opt + 10^k, k = 2, 1.8, ..., -8
TARGET_EXPONENTS = np.round(np.arange(2.0, -8.0 - 1e-9, -0.2), 1)
GROUPS = {
    "separable": range(1, 6),
    "moderate": range(6, 10),
    "ill-conditioned": range(10, 15),
    "multimodal": range(15, 20),
    "weak structure": range(20, 25),
}
PEERS = ["pycma-ipop", "pycma-bipop", "pycma-lq", "ng-NGOpt"]
ZOOPT = ["zoopt-auto", "zoopt-snes", "zoopt-xnes", "zoopt-cmaes"]
#: further zoopt variants, run when named in ``--methods``
EXTRA = [
    "zoopt-auto-bipop",
    "zoopt-auto-adaptive",
    "zoopt-auto-lq",
    "zoopt-auto-inject",
    "zoopt-auto-pinv",
    "zoopt-cmaes-bipop",
]
SIGMA0 = 2.0


class Stop(Exception):
    """The run's budget is spent or its last target reached."""


class Run:
    """One counted (function, instance, dimension) problem: records when each target falls.

    ``hits[j]`` is the evaluation count at which f − f_opt ≤ 10^TARGET_EXPONENTS[j] first
    held (inf: never).
    """

    def __init__(self, fid: int, dim: int, instance: int, budget: int):
        import cocoex

        self.problem = cocoex.BareProblem("bbob", fid, dim, instance)
        self.fopt = float(self.problem.best_value())
        self.budget, self.n = budget, 0
        self.hits = np.full(len(TARGET_EXPONENTS), np.inf)
        self.best = math.inf
        self.thresholds = 10.0**TARGET_EXPONENTS

    def __call__(self, x) -> float:
        if self.n >= self.budget or self.best <= 1e-8:
            raise Stop
        f = float(self.problem(np.asarray(x, dtype=np.float64)))
        self.n += 1
        delta = f - self.fopt
        if delta < self.best:
            self.best = delta
            self.hits[(self.thresholds >= delta) & np.isinf(self.hits)] = self.n
        return f

    def batch(self, X: torch.Tensor) -> torch.Tensor:
        rows = X.detach().to("cpu", torch.float64).numpy()
        return torch.tensor([self(x) for x in rows], dtype=X.dtype)


def start_point(fid: int, dim: int, instance: int) -> np.ndarray:
    return np.random.default_rng([fid, dim, instance]).uniform(-4, 4, dim)


class _OneValue(np.ndarray):
    """A one-element prediction that ``float()`` accepts (numpy ≥ 2.4 refuses 1-D arrays)."""

    def __float__(self) -> float:
        return float(self.reshape(-1)[0])


def patch_nevergrad_metamodel() -> None:
    """Nevergrad 1.0.12's metamodel calls ``float(model.predict(x[None]))`` on a (1,) array,
    which numpy ≥ 2.4 refuses, so NGOpt would crash on every problem where it picks its
    quadratic metamodel. Its sklearn models' one-row predictions are made float-able."""
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.linear_model import LinearRegression
    from sklearn.neural_network import MLPRegressor
    from sklearn.svm import SVR

    for cls in (LinearRegression, SVR, MLPRegressor, RandomForestRegressor):
        if getattr(cls.predict, "_one_value", False):
            continue
        predict = cls.predict

        def wrapped(self, X, _predict=predict):
            out = _predict(self, X)
            return out.view(_OneValue) if np.size(out) == 1 else out

        wrapped._one_value = True
        cls.predict = wrapped


def run_method(method: str, run: Run, x0: np.ndarray, seed: int) -> None:
    try:
        if method.startswith("pycma"):
            import cma

            opts = {
                "seed": seed + 1,
                "verbose": -9,
                "verb_log": 0,
                "maxfevals": run.budget,
                "ftarget": run.fopt + 1e-8,
            }
            if method == "pycma-lq":
                cma.fmin_lq_surr2(run, x0, SIGMA0, opts, restarts=9)
            else:
                cma.fmin2(run, x0, SIGMA0, opts, restarts=9, bipop=method == "pycma-bipop")
        elif method.startswith("ng-"):
            import nevergrad as ng

            patch_nevergrad_metamodel()
            param = ng.p.Array(init=x0).set_mutation(sigma=SIGMA0)
            param.random_state.seed(seed)
            opt = ng.optimizers.registry[method[3:]](parametrization=param, budget=run.budget)
            while True:
                cand = opt.ask()
                opt.tell(cand, run(cand.value))
        else:
            name = method[len("zoopt-") :]
            opts = {"restarts": 9} if name == "cmaes" else {}
            if name == "auto-bipop":  # auto's choice with BIPOP restarts instead of IPOP
                name, opts = "auto", {"bipop": True}
            elif name == "auto-adaptive":  # auto's choice, the model dropped where it fails
                name, opts = "auto", {"surrogate": "adaptive"}
            elif name == "auto-lq":  # auto's choice, the model kept in every run
                name, opts = "auto", {"surrogate": True}
            elif name == "auto-inject":  # auto's choice, the model's optimum injected only
                name, opts = "auto", {"model_step": False}
            elif name == "auto-pinv":  # auto's choice, the model fitted by pycma's SVD always
                name, opts = "auto", {"model_fit": "pinv"}
            elif name == "cmaes-bipop":  # CMA-ES with BIPOP restarts, no surrogate
                name, opts = "cmaes", {"restarts": 9, "bipop": True}
            x = torch.from_numpy(x0.copy())
            m = zoopt.Minimizer(
                run.batch, x, estimator=name, sigma=SIGMA0, seed=seed, steps=10**9,
                max_evaluations=run.budget, **opts,
            )  # fmt: skip
            while not m.stop_reason:
                m.step()
    except Stop:
        pass
    except Exception:
        if not (run.n >= run.budget or run.best <= 1e-8):
            raise


def ecdf(hits: list[np.ndarray], evals: float) -> float:
    """Fraction of (problem, target) pairs reached within ``evals`` evaluations."""
    if not hits:
        return math.nan
    return float(np.mean(np.concatenate(hits) <= evals))


def report(records: list[dict], budgets: list[int], methods: list[str]) -> str:
    """Markdown tables: ECDF at ``budgets``·D, per dimension, overall and per group."""
    out = []
    dims = sorted({r["dim"] for r in records})
    for dim in dims:
        rows = [r for r in records if r["dim"] == dim]
        n_inst = len({(r["fid"], r["instance"]) for r in rows}) // max(
            1, len({r["fid"] for r in rows})
        )
        n_fun = len({r["fid"] for r in rows})
        n_seeds = len({r.get("seed") for r in rows})  # merged records of several seeds
        seeds = f" × {n_seeds} seeds" if n_seeds > 1 else ""
        out.append(
            f"\n**D = {dim}** ({n_fun} functions × {n_inst} instances{seeds} × 51 targets; "
            "fraction reached at budget·D evaluations)\n"
        )
        cols = [f"{b}·D" for b in budgets]
        head = (
            "| method | "
            + " | ".join(f"all {c}" for c in cols)
            + " | "
            + " | ".join(f"{g} {cols[-1]}" for g in GROUPS)
            + " |"
        )
        out.append(head)
        out.append("|" + "---|" * (1 + len(cols) + len(GROUPS)))
        for method in methods:
            mine = [r for r in rows if r["method"] == method]
            if not mine:
                continue
            hits = [np.asarray(r["hits"], float) for r in mine]
            cells = [f"{ecdf(hits, b * dim):.3f}" for b in budgets]
            for fids in GROUPS.values():
                g = [np.asarray(r["hits"], float) for r in mine if r["fid"] in fids]
                cells.append("—" if not g else f"{ecdf(g, budgets[-1] * dim):.3f}")
            out.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def common_problems(records: list[dict], methods: list[str]) -> list[dict]:
    """Per dimension, the records of ``methods`` on the (function, instance) problems that
    every one of them with runs at that dimension ran, so that their fractions count the
    same problems."""
    out = []
    for dim in {r["dim"] for r in records}:
        ran = [{(r["fid"], r["instance"]) for r in records
                if r["dim"] == dim and r["method"] == m} for m in methods]  # fmt: skip
        ran = [p for p in ran if p]
        shared = set.intersection(*ran) if ran else set()
        out += [r for r in records if r["dim"] == dim and r["method"] in methods
                and (r["fid"], r["instance"]) in shared]  # fmt: skip
    return out


def _runs_for_budget(runs: list[dict], budget: int) -> list[dict]:
    """Per (function, instance), the runs (every seed) of the smallest budget that still
    covers ``budget``·D: a method that plans by its budget (NGOpt picks its algorithm from
    it) is read at 10²·D from runs told 10²·D where there are some. Empty unless every
    problem has such runs."""
    chosen: dict = {}
    for r in runs:
        key = (r["fid"], r["instance"])
        if r["budget_per_d"] >= budget:
            chosen[key] = min(chosen.get(key, r["budget_per_d"]), r["budget_per_d"])
    if len(chosen) < len({(r["fid"], r["instance"]) for r in runs}):
        return []
    return [r for r in runs if r["budget_per_d"] == chosen[r["fid"], r["instance"]]]


def _problem_mean(runs: list[dict], evals: float) -> float:
    """The fraction of targets reached within ``evals``, averaged over each problem's seeds
    and then over the problems, so that a problem run with more seeds weighs the same."""
    per_problem: dict = {}
    for r in runs:
        per_problem.setdefault((r["fid"], r["instance"]), []).append(np.asarray(r["hits"], float))
    return (
        float(np.mean([ecdf(h, evals) for h in per_problem.values()])) if per_problem else math.nan
    )


def targets_report(records: list[dict], methods: list[str]) -> str:
    """One markdown table per D: each method's fraction reached at 10²·D, 10³·D and
    10⁴·D (:func:`_problem_mean`), overall and per group, on the problems all methods ran;
    a budget appears for a method only if its runs were given that many evaluations. A last
    row per budget gives the first method's margin over the best peer, pycma or Nevergrad
    (negative: behind). Each budget reads the runs of :func:`_runs_for_budget`."""
    out = []
    records = common_problems(records, methods)
    for dim in sorted({r["dim"] for r in records}):
        rows = [r for r in records if r["dim"] == dim]
        problems = len({(r["fid"], r["instance"]) for r in rows})
        seeds = sorted({str(r.get("seed", "pooled")) for r in rows})
        out.append(
            f"\n**D = {dim}** ({problems} problems, seeds {', '.join(map(str, seeds))}; "
            "fraction of (function, instance, target) triples reached)\n"
        )
        out.append("| budget | method | all | " + " | ".join(GROUPS) + " |")
        out.append("|" + "---|" * (3 + len(GROUPS)))
        for budget in (100, 1000, 10_000):
            table = {}
            for method in methods:
                mine = _runs_for_budget([r for r in rows if r["method"] == method], budget)
                if not mine:
                    continue
                cells = [_problem_mean(mine, budget * dim)]
                for fids in GROUPS.values():
                    cells.append(_problem_mean([r for r in mine if r["fid"] in fids], budget * dim))
                table[method] = cells
            for method, cells in table.items():
                text = ["—" if math.isnan(c) else f"{c:.3f}" for c in cells]
                out.append(f"| {budget}·D | {method} | " + " | ".join(text) + " |")
            first, peers = methods[0], [m for m in table if not m.startswith("zoopt")]
            if first in table and peers:
                best = np.max([table[m] for m in peers], axis=0)
                margin = np.asarray(table[first]) - best
                text = ["—" if math.isnan(c) else f"{c:+.3f}" for c in margin]
                out.append(f"| {budget}·D | {first} − best peer | " + " | ".join(text) + " |")
    return "\n".join(out)


def plot(records: list[dict], methods: list[str], path: str, max_budget: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dims = sorted({r["dim"] for r in records})
    fig, axes = plt.subplots(1, len(dims), figsize=(4.2 * len(dims), 3.6), squeeze=False)
    grid = np.logspace(0, math.log10(max_budget), 200)
    for ax, dim in zip(axes[0], dims, strict=True):
        for method in methods:
            hits = [np.asarray(r["hits"], float) for r in records
                    if r["dim"] == dim and r["method"] == method]  # fmt: skip
            if hits:
                style = "-" if method.startswith("zoopt") else "--"
                ax.plot(grid, [ecdf(hits, g * dim) for g in grid], style, label=method)
        ax.set_xscale("log")
        ax.set_ylim(0, 1)
        ax.set_xlabel("evaluations / D")
        ax.set_title(f"bbob f1–f24, D = {dim}")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("fraction of (f, instance, target) reached")
    axes[0][-1].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _ints(text: str) -> list[int]:
    out = []
    for part in text.split(","):
        a, _, b = part.partition("-")
        out += list(range(int(a), int(b or a) + 1))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dims", default=None, help="default 2,5,10,20")
    ap.add_argument("--functions", default=None, help="default 1-24")
    ap.add_argument("--instances", default=None, help="default 1-5")
    ap.add_argument("--budget", type=int, default=10_000, help="evaluations per D")
    ap.add_argument("--methods", default=",".join(PEERS + ZOOPT))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--quick", action="store_true", help="D = 2, 5; instance 1; budget 100·D: minutes"
    )
    ap.add_argument("--out", default="", help="save the records (JSON)")
    ap.add_argument("--plot", default="", help="ECDF figure per D (PNG)")
    ap.add_argument(
        "--report",
        default="",
        help="comma-separated saved JSON files to report (--dims, --functions and "
        "--instances select among their runs)",
    )
    ap.add_argument(
        "--targets",
        action="store_true",
        help="with --report: the methods at 10²·D, 10³·D and 10⁴·D per group, on the "
        "problems all of them ran, and the first one's margin over the best peer (--plot "
        "then draws those problems)",
    )
    ap.add_argument(
        "--budget-of-runs",
        type=int,
        default=0,
        help="with --report: only the runs given this many evaluations per D",
    )
    args = ap.parse_args()
    methods = args.methods.split(",")
    if args.report:
        # a run recorded in several files counts once, the last file's (records saved
        # before they carried their seed are all kept: they pool several seeds)
        merged = {}
        for path in args.report.split(","):
            with open(path) as fh:
                saved = json.load(fh)
            for r in saved["records"]:
                seed = r.get("seed", ("unnamed", len(merged)))
                merged[r["method"], r["dim"], r["fid"], r["instance"], seed, r["budget_per_d"]] = r
        records = list(merged.values())
        if args.budget_of_runs:  # one budget's runs: ECDF curves that do not mix budgets
            records = [r for r in records if r["budget_per_d"] == args.budget_of_runs]
        # --dims, --functions and --instances, where given, select among the saved runs
        for key, arg in (("dim", args.dims), ("fid", args.functions), ("instance", args.instances)):
            if arg:
                records = [r for r in records if r[key] in _ints(arg)]
        budget = max(r["budget_per_d"] for r in records)
    else:
        dims, fids = _ints(args.dims or "2,5,10,20"), _ints(args.functions or "1-24")
        insts, budget = _ints(args.instances or "1-5"), args.budget
        if args.quick:
            dims, insts, budget = [2, 5], [1], min(budget, 100)
        records = []
        for dim in dims:
            for method in methods:
                t0 = time.perf_counter()
                status = "ok"
                for fid in fids:
                    for inst in insts:
                        run = Run(fid, dim, inst, budget * dim)
                        cpu = time.process_time()
                        try:
                            run_method(method, run, start_point(fid, dim, inst), args.seed)
                        except ImportError as e:
                            status = f"not installed ({e.name})"
                            break
                        except Exception as e:
                            status = f"crashed on f{fid} i{inst}: {type(e).__name__}: {e}"
                            traceback.print_exc(limit=3)
                        records.append({
                            "method": method, "dim": dim, "fid": fid, "instance": inst,
                            "seed": args.seed, "budget_per_d": budget, "evaluations": run.n,
                            "hits": [h if math.isfinite(h) else None for h in run.hits],
                            "cpu_seconds": round(time.process_time() - cpu, 3),
                        })  # fmt: skip
                        if args.out:  # saved after every problem: a cut run still reports
                            with open(args.out, "w") as fh:
                                json.dump({"args": vars(args), "records": records}, fh)
                    if status.startswith("not installed"):
                        break
                mine = [np.asarray(r["hits"], float) for r in records
                        if r["method"] == method and r["dim"] == dim]  # fmt: skip
                print(
                    f"D={dim:2d} {method:12s} ECDF at budget {ecdf(mine, budget * dim):.3f} "
                    f"({time.perf_counter() - t0:.0f} s) {'' if status == 'ok' else status}",
                    flush=True,
                )
        if args.out:
            with open(args.out, "w") as fh:
                json.dump({"args": vars(args), "records": records}, fh)
    for r in records:
        r["hits"] = [math.inf if h is None else h for h in r["hits"]]
    if args.targets:
        print(targets_report(records, methods))
        records = common_problems(records, methods)  # the figure counts the same problems
    else:
        budgets = [b for b in (10, 100, 1000, 10_000) if b <= budget]
        ran = [m for m in methods if any(r["method"] == m for r in records)]
        print(report(records, budgets, ran))
    if args.plot:
        plot(records, methods, args.plot, budget)
        print(f"figure: {args.plot}")


if __name__ == "__main__":
    main()
