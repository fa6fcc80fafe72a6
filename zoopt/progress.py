"""Progress display of a run: a terminal bar that fits its width, or plain periodic lines.

The bar shows the step count, elapsed and remaining time and a few short fields — the metric,
the best metric so far, evaluations per second, α and the effective sample size. Fields that
do not fit the terminal are dropped, the least useful first (:data:`FIELD_ORDER`), so the bar
itself keeps at least :data:`MIN_BAR` characters: a bar at 80 columns still shows progress.
"""

from __future__ import annotations

import math
import shutil
import sys
import time
from collections.abc import Callable
from typing import Any

__all__ = ["Progress", "LineProgress", "make_progress", "fit_fields", "row_fields", "FIELD_ORDER"]

#: the fields in the order they are kept when space runs short (the last goes first)
FIELD_ORDER = ("metric", "best", "ev/s", "α", "ess")

#: the fewest characters left to the bar itself
MIN_BAR = 8

BAR_FORMAT = "{desc} {n_fmt}/{total_fmt} |{bar}| {elapsed}<{remaining}{postfix}"
_NO_BAR = BAR_FORMAT.replace("{bar}", "")


def _rate(x: float) -> str:
    """Evaluations per second in at most 5 characters: ``812``, ``12.3k``, ``4.1M``."""
    for scale, suffix in ((1e6, "M"), (1e3, "k")):
        if x >= scale:
            return f"{x / scale:.3g}{suffix}"
    return f"{x:.0f}"


def row_fields(
    row: dict, metric_name: str, metric: Callable[[float], float], held: float = math.nan
) -> list[tuple[str, str]]:
    """``(name, value)`` of a history row's progress fields, in :data:`FIELD_ORDER`.

    ``metric`` maps a loss to the reported metric. θ's metric is the row's on steps that
    evaluated θ (see ``evaluate_center``), else ``held``, the last one evaluated (none
    before the first); α and ESS appear only for estimators that report them.
    """
    shown = held if math.isnan(row["metric"]) else row["metric"]
    fields = [] if math.isnan(shown) else [(metric_name[:8], f"{shown:.4g}")]
    fields.append(("best", f"{metric(row['best_loss']):.4g}"))
    if row["seconds"] > 0:
        fields.append(("ev/s", _rate(row["evaluations"] / row["seconds"])))
    if not math.isnan(row["alpha"]):
        fields.append(("α", f"{row['alpha']:.2g}"))
    if not math.isnan(row["ess"]):
        fields.append(("ess", f"{row['ess']:.3g}"))
    return fields


def fit_fields(fields: list[tuple[str, str]], room: int) -> str:
    """``name=value`` pairs joined by spaces, dropping the last ones until they fit ``room``."""
    fields = list(fields)
    while fields:
        text = " ".join(f"{k}={v}" for k, v in fields)
        if len(text) <= room:
            return text
        fields.pop()
    return ""


class Progress:
    """A tqdm bar on stderr whose fields fit the terminal (``ncols``: a fixed width)."""

    def __init__(
        self,
        total: int,
        initial: int,
        desc: str,
        metric_name: str,
        metric: Callable[[float], float],
        ncols: int | None = None,
        file: Any = None,
    ):
        from tqdm.auto import tqdm

        self.metric_name, self.metric, self.fixed_ncols = metric_name, metric, ncols
        self.held = math.nan  # θ's metric at the last step that evaluated θ
        self._fitted = -math.inf
        self.bar = tqdm(
            total=total,
            initial=initial,
            desc=desc,
            bar_format=BAR_FORMAT,
            ncols=ncols,
            dynamic_ncols=ncols is None,
            leave=False,
            file=file,
        )

    def _width(self) -> int:
        if self.fixed_ncols is not None:
            return self.fixed_ncols
        return shutil.get_terminal_size((80, 24)).columns

    def update(self, row: dict) -> None:
        """Advance one step; ``row``'s fields are refitted at most every ``mininterval`` s."""
        bar = self.bar
        bar.update(1)
        if not math.isnan(row["metric"]):
            self.held = row["metric"]
        now = time.monotonic()
        if now - self._fitted < bar.mininterval and bar.n < bar.total:
            return  # fitting costs more than a step of a fast objective
        self._fitted = now
        d = bar.format_dict
        # everything but the bar and the fields, measured with the bar at zero width and
        # the widest step count
        bare = bar.format_meter(
            **{**d, "n": d["total"], "bar_format": _NO_BAR, "ncols": None, "postfix": None}
        )
        room = self._width() - len(bare) - MIN_BAR - 2  # 2: the ", " before the fields
        fields = fit_fields(row_fields(row, self.metric_name, self.metric, self.held), room)
        bar.set_postfix_str(fields, refresh=False)

    def note(self, text: str) -> None:
        """Print ``text`` above the bar (which is redrawn below it)."""
        self.bar.write(text, file=self.bar.fp)

    def line(self) -> str:
        """The bar as it is drawn now."""
        return str(self.bar)

    def close(self) -> None:
        """Finish the bar."""
        self.bar.close()


class LineProgress:
    """Plain progress lines on stderr every ``every`` seconds (logs, CI: no terminal)."""

    def __init__(
        self,
        total: int,
        initial: int,
        desc: str,
        metric_name: str,
        metric: Callable[[float], float],
        every: float = 10.0,
    ):
        self.total, self.n, self.desc, self.every = total, initial, desc, every
        self.metric_name, self.metric = metric_name, metric
        self.held = math.nan  # θ's metric at the last step that evaluated θ
        self.last = -math.inf

    def update(self, row: dict) -> None:
        """Count one step; print a line when ``every`` seconds have passed or at the end."""
        self.n += 1
        if not math.isnan(row["metric"]):
            self.held = row["metric"]
        now = time.monotonic()
        if now - self.last >= self.every or self.n >= self.total:
            self.last = now
            shown = row_fields(row, self.metric_name, self.metric, self.held)
            fields = " ".join(f"{k}={v}" for k, v in shown)
            print(f"{self.desc} step {self.n}/{self.total} {fields}", file=sys.stderr, flush=True)

    def note(self, text: str) -> None:
        """Print ``text`` as a line of its own."""
        print(f"{self.desc}: {text}", file=sys.stderr, flush=True)

    def close(self) -> None:
        """Nothing to finish: every line is complete when printed."""


def startup_note(evaluator: Any) -> str | None:
    """A line to print before the first step when ``evaluator`` has to start first (Ray)."""
    if type(evaluator).__name__ == "RayEvaluator" and not getattr(evaluator, "_started", True):
        return (
            "starting Ray and its workers; the first step waits for them (about 10 s on a laptop)"
        )
    return None


def make_progress(minimizer: Any, total: int) -> Progress | LineProgress | None:
    """The display of a :class:`zoopt.Minimizer` run to ``total`` steps, by its ``progress``:
    True a bar, ``"lines"`` plain lines every ``progress_every`` seconds, False none, None a
    bar when stderr is a terminal. Prints :func:`startup_note` once when a display is shown.
    """
    mode, initial = minimizer.progress, minimizer.step_count
    desc, objective = minimizer.estimator.name, minimizer.objective
    rank = getattr(minimizer.estimator, "rank", None)
    if rank is not None:  # low-rank draws (zoopt.lowrank)
        desc = f"{desc} rank {rank}"
    if mode == "lines":
        display: Progress | LineProgress | None = LineProgress(
            total,
            initial,
            desc,
            objective.metric_name,
            objective.metric,
            minimizer.progress_every,
        )
    elif mode if mode is not None else sys.stderr.isatty():
        display = Progress(total, initial, desc, objective.metric_name, objective.metric)
    else:
        return None
    note = startup_note(minimizer.evaluator)
    if note is not None and initial < total:
        print(f"{desc}: {note}", file=sys.stderr, flush=True)
    return display
