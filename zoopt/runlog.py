"""Run directories: the resolved config, per-step metrics, TensorBoard events and plots.

A run directory holds

* ``config.toml`` — the resolved config (defaults filled in), ``resolved.json`` — the same
  plus versions and the objective's size;
* ``metrics.jsonl`` — one JSON object per step (the columns of :data:`zoopt.result.HISTORY_KEYS`
  and any estimator extras; NaN is written as ``null``);
* ``events.out.tfevents.*`` under ``tensorboard/`` when TensorBoard is installed;
* ``checkpoint.pt`` (see :mod:`zoopt.checkpoint`), ``best.pt`` and ``last.pt`` (plain
  parameter tensors ``(D,)``), ``summary.json`` and ``curve.png`` at the end.

Plots use matplotlib's Agg canvas directly (no display, no global pyplot state). matplotlib
is optional (the ``viz`` extra): without it a run skips its plots and says so once
(:func:`draw_or_skip`). Lines are labelled by what tells the runs apart (:func:`run_labels`).
"""

from __future__ import annotations

import json
import math
import sys
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from zoopt.checkpoint import atomic_write_bytes
from zoopt.extras import MissingExtraError, require

__all__ = [
    "RunLog",
    "read_metrics",
    "read_summary",
    "write_json",
    "plot_learning_curves",
    "plot_comparison",
    "run_labels",
    "draw_or_skip",
    "YSCALES",
]

#: y-axis scales of the plots: "auto" is log when every value is positive over > 2 decades
YSCALES = ("auto", "linear", "log")


def _plain(value: Any) -> Any:
    """JSON-safe: NaN/Inf → None, tensors and NumPy scalars → numbers."""
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def write_json(path: str | Path, data: Any) -> Path:
    """Atomically write ``data`` as indented JSON (NaN/Inf as null)."""
    path = Path(path)
    atomic_write_bytes(path, (json.dumps(_plain(data), indent=2) + "\n").encode())
    return path


class RunLog:
    """Per-step metrics of one run: ``metrics.jsonl`` and TensorBoard events.

    Args:
        run_dir: the run directory (created if missing).
        tensorboard: write TensorBoard events when ``torch.utils.tensorboard`` works.
        history: the rows already taken (on resume): ``metrics.jsonl`` is rewritten from them
            so that it matches the checkpoint, and TensorBoard events after them are purged.
        metric: loss → reported metric, to add the ``best_metric`` column to ``history``.
    """

    def __init__(
        self,
        run_dir: str | Path,
        tensorboard: bool = True,
        history: Mapping[str, Sequence] | None = None,
        metric: Callable[[float], float] | None = None,
    ):
        self.dir = Path(run_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.metrics_path = self.dir / "metrics.jsonl"
        rows = _rows(history) if history else []
        if metric is not None:
            for r in rows:
                r["best_metric"] = metric(r["best_loss"])
        atomic_write_bytes(
            self.metrics_path, "".join(json.dumps(_plain(r)) + "\n" for r in rows).encode()
        )
        self._file = open(self.metrics_path, "a", encoding="utf-8")  # noqa: SIM115
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except Exception:  # tensorboard not installed: metrics.jsonl only
                SummaryWriter = None
            if SummaryWriter is not None:
                self.writer = SummaryWriter(
                    str(self.dir / "tensorboard"), purge_step=len(rows) + 1 if rows else None
                )

    def log(self, row: Mapping[str, Any]) -> None:
        """Append one step's row."""
        self._file.write(json.dumps(_plain(dict(row))) + "\n")
        self._file.flush()
        if self.writer is not None:
            step = int(row["step"])
            for key, value in row.items():
                if key == "step" or isinstance(value, bool):
                    continue
                if isinstance(value, (int, float)) and math.isfinite(value):
                    self.writer.add_scalar(key, value, step)

    def close(self) -> None:
        """Flush and close the files."""
        self._file.close()
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def _rows(history: Mapping[str, Sequence]) -> list[dict]:
    keys = list(history)
    n = len(history[keys[0]]) if keys else 0
    return [{k: history[k][i] for k in keys if i < len(history[k])} for i in range(n)]


def read_metrics(run_dir: str | Path) -> dict[str, np.ndarray]:
    """The columns of ``run_dir/metrics.jsonl`` as float arrays (null → NaN)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no metrics here (is {run_dir} a zoopt run directory?)")
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            raise ValueError(f"{path}:{n}: not a JSON line") from None
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    out = {}
    for k in keys:
        vals = [r.get(k) for r in rows]
        if all(v is None or isinstance(v, (int, float)) for v in vals):
            out[k] = np.array([math.nan if v is None else float(v) for v in vals])
    return out


def read_summary(run_dir: str | Path) -> dict:
    """``run_dir/summary.json`` (an empty dict when the run has not finished)."""
    path = Path(run_dir) / "summary.json"
    if not path.is_file():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))


def _figure(ncols: int = 1, width: float = 6.0):
    require("matplotlib", "drawing plots")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, 4.2), constrained_layout=True)
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]
    return fig, axes


def _resolved(run_dir: Path) -> dict:
    try:
        data = json.loads((run_dir / "resolved.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _metric_name(run_dir: Path) -> str:
    return str(_resolved(run_dir).get("metric_name", "metric"))


def run_labels(run_dirs: Sequence[str | Path]) -> list[str]:
    """Legend labels of runs: the parts of (run name, estimator, seed) that tell them apart.

    Read from each run's ``resolved.json``; parts equal across all runs are left out, and the
    directory path is used where the parts are missing or do not tell two runs apart.
    """
    dirs = [Path(d) for d in run_dirs]
    parts = []
    for d in dirs:
        info = _resolved(d)
        cfg = info.get("config") if isinstance(info.get("config"), dict) else {}
        seed = cfg.get("seed")
        parts.append(
            (
                str(cfg.get("name") or ""),
                str(info.get("estimator") or ""),
                "" if seed is None else f"seed {seed}",
            )
        )
    keep = [i for i in range(3) if len({p[i] for p in parts}) > 1]
    labels = [" ".join(p[i] for i in keep if p[i]) for p in parts]
    if len(dirs) == 1:
        labels = [" ".join(x for x in parts[0] if x)]
    if any(not lab for lab in labels) or len(set(labels)) < len(labels):
        return [str(d) for d in dirs]
    return labels


def plot_learning_curves(
    run_dirs: Iterable[str | Path],
    out: str | Path,
    labels: Sequence[str] | None = None,
    yscale: str = "auto",
) -> Path:
    """Metric (and best so far) against evaluations for one or several runs, in one PNG.

    Args:
        run_dirs: run directories (each holds ``metrics.jsonl``).
        out: the PNG path.
        labels: one legend label per run (default: :func:`run_labels`).
        yscale: one of :data:`YSCALES`.
    """
    dirs = [Path(d) for d in run_dirs]
    if not dirs:
        raise ValueError("plot_learning_curves needs at least one run directory")
    if labels is not None and len(labels) != len(dirs):
        raise ValueError(f"labels: expected {len(dirs)} labels (one per run), got {len(labels)}")
    _check_yscale(yscale)
    labels = list(labels) if labels is not None else run_labels(dirs)
    fig, (ax, axb) = _figure(2)
    names = set()
    for d, label in zip(dirs, labels, strict=True):
        m = read_metrics(d)
        x = m.get("evaluations", m.get("step"))
        ok = np.isfinite(m["metric"])  # steps that evaluated the centre (ars: every 10th)
        (line,) = ax.plot(x[ok], m["metric"][ok], lw=1.2, label=label)
        best = _best_metric(m)
        axb.plot(x, best, lw=1.5, color=line.get_color(), label=label)
        names.add(_metric_name(d))
    name = names.pop() if len(names) == 1 else "metric"
    title = labels[0] if len(dirs) == 1 else ""
    if title:
        fig.suptitle(title, fontsize=10)
    return _finish(fig, (ax, axb), name, "", out, legend=len(dirs) > 1, yscale=yscale)


def _check_yscale(yscale: str) -> None:
    if yscale not in YSCALES:
        raise ValueError(f"yscale must be one of {', '.join(YSCALES)}, got {yscale!r}")


_skip_noted = False


def draw_or_skip(draw: Callable[[], Path]) -> Path | None:
    """``draw()``, or None without matplotlib: the run goes on, and says so once (stderr)."""
    global _skip_noted
    try:
        return draw()
    except MissingExtraError as e:
        if e.name != "matplotlib":
            raise
        if not _skip_noted:
            _skip_noted = True
            print(f"note: plot skipped: {e}", file=sys.stderr, flush=True)
        return None


def _finish(
    fig: Any,
    axes: Sequence[Any],
    name: str,
    note: str,
    out: str | Path,
    *,
    legend: bool,
    title_size: float | None = None,
    yscale: str = "auto",
) -> Path:
    """Label the two panels (``name`` now, best ``name`` so far) and write the PNG."""
    titles = (f"{name} at the current parameters", f"best {name} so far")
    size = {} if title_size is None else {"fontsize": title_size}
    for a, title in zip(axes, titles, strict=True):
        a.set_xlabel("evaluations")
        a.set_ylabel(name)
        a.set_title(title + note, **size)
        a.grid(alpha=0.3)
        _set_yscale(a, yscale)
        if legend:
            a.legend(fontsize=8)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    return out


def _set_yscale(ax: Any, yscale: str) -> None:
    """``"log"`` (symmetric-log when some value is <= 0), ``"linear"``, or ``"auto"``: log
    when every plotted value is positive and they span over 2 decades."""
    ys = [np.asarray(line.get_ydata(), dtype=float) for line in ax.get_lines()]
    ys = [y[np.isfinite(y)] for y in ys]
    values = np.concatenate(ys) if ys else np.array([])
    positive = bool(values.size) and values.min() > 0
    if yscale == "log":
        ax.set_yscale("log" if positive or not values.size else "symlog")
    elif yscale == "auto" and positive and values.max() / values.min() > 100:
        ax.set_yscale("log")


def _best_metric(m: Mapping[str, np.ndarray]) -> np.ndarray:
    """The best-so-far metric: the logged ``best_metric`` column, else from ``best_loss``."""
    if "best_metric" in m:
        return m["best_metric"]
    loss, metric, best = m["loss"], m["metric"], m["best_loss"]
    sign = 1.0
    ok = np.isfinite(loss) & np.isfinite(metric) & (loss != 0)
    if ok.any():
        sign = float(np.sign(np.median(metric[ok] / loss[ok])))
    return sign * best


def plot_comparison(
    curves: Mapping[str, Sequence[Mapping[str, np.ndarray]]],
    out: str | Path,
    metric_name: str = "metric",
    title: str = "",
) -> Path:
    """One line per estimator: the metric against evaluations, mean over seeds.

    Args:
        curves: estimator → one ``read_metrics`` dict per seed.
        out: the PNG path.
        metric_name: y-axis label.
        title: figure title.
    """
    fig, (ax, axb) = _figure(2)
    for label, runs in curves.items():
        runs = [r for r in runs if len(r.get("evaluations", ())) > 0]
        if not runs:
            continue
        top = max(float(r["evaluations"][-1]) for r in runs)
        grid = np.linspace(0.0, top, 200)
        for a, column in ((ax, "metric"), (axb, "best")):
            ys = []
            for r in runs:
                y = _best_metric(r) if column == "best" else r["metric"]
                x = r["evaluations"]
                ok = np.isfinite(y)
                if ok.sum() == 0:
                    continue
                yi = np.interp(grid, x[ok], y[ok], left=np.nan, right=np.nan)
                ys.append(yi)
            if not ys:
                continue
            Y = np.vstack(ys)
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # grid points no seed reaches
                mean = np.nanmean(Y, axis=0)
                lo, hi = np.nanmin(Y, axis=0), np.nanmax(Y, axis=0)
            (line,) = a.plot(grid, mean, lw=1.6, label=f"{label} (n={len(ys)})")
            if len(ys) > 1:
                a.fill_between(grid, lo, hi, color=line.get_color(), alpha=0.15, lw=0)
    if title:
        fig.suptitle(title)
    note = " (mean over seeds, band: min–max)"
    return _finish(fig, (ax, axb), metric_name, note, out, legend=True, title_size=9)
