"""Comparisons: several estimators and seeds on one config under the same budget.

:func:`compare` runs each estimator on each seed in its own run directory and writes
``comparison.{md,json,png}``; :func:`format_table` is the Markdown table, with the reasons
an estimator did not run as footnotes.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoopt.config import (
    ConfigError,
    _check_estimator_name,
    objective_recipes,
)
from zoopt.experiment.build import NotApplicable
from zoopt.experiment.run import _make_run_dir, run_experiment
from zoopt.runlog import (
    draw_or_skip,
    plot_comparison,
    read_metrics,
    write_json,
)


# -- comparison -----------------------------------------------------------------------------
@dataclass
class CompareRow:
    """One estimator's line of a comparison (means over the seeds that ran)."""

    estimator: str
    runs: int
    seeds: list
    final_metric: float = math.nan
    final_std: float = math.nan
    best_metric: float = math.nan
    held_out: float = math.nan
    evaluations: float = math.nan
    seconds: float = math.nan
    note: str = ""
    reasons: list = field(default_factory=list)
    run_dirs: list = field(default_factory=list)


def _mean(xs: Sequence[float]) -> float:
    xs = [x for x in xs if x is not None and math.isfinite(x)]
    return sum(xs) / len(xs) if xs else math.nan


def _std(xs: Sequence[float]) -> float:
    xs = [x for x in xs if x is not None and math.isfinite(x)]
    if len(xs) < 2:
        return math.nan
    mu = sum(xs) / len(xs)
    return math.sqrt(sum((x - mu) ** 2 for x in xs) / (len(xs) - 1))


def compare(
    cfg: dict,
    out_dir: str | Path,
    estimators: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
    echo: Callable[[str], Any] | None = print,
) -> tuple[list[CompareRow], dict]:
    """Run every estimator on every seed of ``cfg`` under the same budget.

    ``estimators``: names, default ``compare.estimators``, else ``auto`` (the default
    estimator, as it chooses) and every registered one. Each run gets
    ``out_dir/ESTIMATOR/seedS``. Estimators that cannot apply to the objective
    are reported with the reason; a run that fails part-way is reported with its error.

    Returns:
        (rows, files): the table rows and the paths of ``comparison.{md,json,png}``.
    """
    from zoopt.estimators import available_estimators

    out_dir = Path(out_dir)
    # by default the default estimator and every registered one
    default = ["auto", *available_estimators()]
    estimators = list(estimators or cfg["compare"].get("estimators") or default)
    for name in estimators:
        _check_estimator_name("--estimators", name, allow_builtin=True)
    seeds = list(seeds if seeds is not None else cfg["compare"]["seeds"])
    for seed in seeds:
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ConfigError(f"--seeds: every seed must be an int >= 0, got {seed!r}")
    _make_run_dir(out_dir)
    say = echo or (lambda s: None)
    if cfg["budget"].get("max_evaluations") is None:
        say(
            "note: budget.max_evaluations is not set; every estimator runs budget.steps steps, "
            "which costs each a different number of evaluations"
        )
    rows, curves, metric_name, held_name = [], {}, "metric", ""
    total, n = len(estimators) * len(seeds), 0
    for name in estimators:
        row = CompareRow(estimator=name, runs=0, seeds=[])
        finals, bests, evals, secs, helds, notes = [], [], [], [], [], []
        stalled: list[int] = []  # seeds whose run said its search stalled
        for seed in seeds:
            n += 1
            run_dir = out_dir / name / f"seed{seed}"
            run_cfg = copy.deepcopy(cfg)
            run_cfg["seed"], run_cfg["estimator"] = int(seed), name
            run_cfg["output"]["dir"] = str(run_dir)
            if name != "auto" and name not in available_estimators():
                notes.append("not available in this installation (not registered)")
                say(f"[{n}/{total}] {name}: {notes[-1]}")
                break
            say(f"[{n}/{total}] {name} seed {seed} -> {run_dir}")
            try:
                s = run_experiment(run_cfg, run_dir)
            except NotApplicable as e:
                reason = str(e).removeprefix(f"estimator {name!r} does not apply here: ")
                notes.append(f"not applicable: {reason}")
                say(f"    {notes[-1]}")
                break  # the same reason holds for every seed
            except (KeyboardInterrupt, ConfigError):
                raise
            except Exception as e:  # one estimator failing must not end the comparison
                import traceback

                run_dir.mkdir(parents=True, exist_ok=True)
                (run_dir / "error.txt").write_text(traceback.format_exc(), encoding="utf-8")
                notes.append(f"failed (seed {seed}): {type(e).__name__}: {e}")
                say(f"    {notes[-1]}")
                continue
            row.runs += 1
            row.seeds.append(seed)
            row.run_dirs.append(str(run_dir))
            metric_name = s.metric_name
            finals.append(s.final_metric)
            bests.append(s.best_metric)
            evals.append(s.evaluations)
            secs.append(s.seconds)
            for k, v in s.held_out.items():
                if not k.endswith("_of_best"):
                    held_name = k
                    helds.append(v)
            curves.setdefault(name, []).append(read_metrics(run_dir))
            if any(n.startswith("stalled search") for n in s.notes):
                stalled.append(seed)
            if s.status == "interrupted":
                say(
                    f"interrupted: the comparison stops here; resume this run with  "
                    f"zoopt resume {run_dir}"
                )
                raise KeyboardInterrupt
        row.final_metric, row.final_std = _mean(finals), _std(finals)
        row.best_metric, row.held_out = _mean(bests), _mean(helds)
        row.evaluations, row.seconds = _mean(evals), _mean(secs)
        if stalled:
            which = ", ".join(map(str, stalled))
            notes.append(f"stalled search (every loss equal for 10 steps) in seed(s) {which}")
        row.reasons = list(dict.fromkeys(notes))
        row.note = "; ".join(_first_sentence(n) for n in row.reasons)
        rows.append(row)
    files = {}
    title = f"{cfg['name']}: {_describe_objective(cfg['objective'])}"
    png = out_dir / "comparison.png"
    if curves and draw_or_skip(lambda: plot_comparison(curves, png, metric_name, title)):
        files["plot"] = str(png)
    table = format_table(rows, metric_name, held_name)
    files["table"] = str(out_dir / "comparison.md")
    (out_dir / "comparison.md").write_text(f"# {title}\n\n{table}\n", encoding="utf-8")
    files["json"] = str(
        write_json(
            out_dir / "comparison.json",
            {
                "name": cfg["name"],
                "objective": cfg["objective"],
                "budget": cfg["budget"],
                "seeds": seeds,
                "metric_name": metric_name,
                "held_out_name": held_name,
                "rows": [r.__dict__ for r in rows],
            },
        )
    )
    return rows, files


def _first_sentence(text: str) -> str:
    import re

    parts = re.split(r"(?<=\.)\s+(?=[A-Z])", text, maxsplit=1)
    return parts[0]


def _describe_objective(obj: dict) -> str:
    return objective_recipes()[obj["kind"]].describe(obj)


def format_table(
    rows: Sequence[CompareRow], metric_name: str = "metric", held_name: str = ""
) -> str:
    """A Markdown table of comparison rows (also readable as plain text).

    Notes (why an estimator did not run) are numbered footnotes under the table, so that a
    long reason does not widen every row.
    """

    def num(x: float, digits: int = 4) -> str:
        return "—" if x is None or not math.isfinite(x) else f"{x:.{digits}g}"

    head = ["estimator", "runs", f"final {metric_name}", f"best {metric_name}"]
    if held_name:
        head.append(held_name)
    head += ["evaluations", "wall s", "note"]
    lines, footnotes = [head], []
    for r in rows:
        final = num(r.final_metric) + (
            f" ± {num(r.final_std, 2)}" if math.isfinite(r.final_std) else ""
        )
        cells = [r.estimator, str(r.runs), final, num(r.best_metric)]
        if held_name:
            cells.append(num(r.held_out))
        mark = ""
        if r.note:
            footnotes.append(f"[{len(footnotes) + 1}] {r.estimator}: {r.note}")
            mark = f"[{len(footnotes)}]"
        cells += [num(r.evaluations, 6), num(r.seconds, 3), mark]
        lines.append(cells)
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(head))]
    out = []
    for i, line in enumerate(lines):
        out.append(
            "| " + " | ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)) + " |"
        )
        if i == 0:
            out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    if footnotes:
        out += [""] + footnotes
    return "\n".join(out)
