"""A run directory's life: written, run step by step with checkpoints, stopped by Ctrl-C.

:func:`run_experiment` runs one config in a run directory: the resolved ``config.toml``,
``metrics.jsonl``, TensorBoard events, checkpoints every ``output.checkpoint_every`` steps
and at the end, ``best.pt``/``last.pt``, a learning-curve plot and ``summary.json``. Ctrl-C
stops after the current step and saves a checkpoint (:mod:`zoopt.experiment.resume`
continues from it).
"""

from __future__ import annotations

import copy
import os
import signal
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from zoopt.checkpoint import (
    atomic_write_bytes,
    save_checkpoint,
    save_tensor,
)
from zoopt.config import (
    ConfigError,
    dumps_toml,
)
from zoopt.experiment.build import _minimizer_of
from zoopt.objectives.recipes import BuiltObjective
from zoopt.result import evaluation_counts
from zoopt.runlog import (
    RunLog,
    draw_or_skip,
    plot_learning_curves,
    write_json,
)

CHECKPOINT = "checkpoint.pt"


@dataclass
class RunSummary:
    """What :func:`run_experiment` reports (also written to ``summary.json``)."""

    run_dir: str
    estimator: str
    seed: int
    status: str  # "finished", "interrupted"
    steps: int
    evaluations: int
    metric_name: str
    final_metric: float
    best_metric: float
    held_out: dict = field(default_factory=dict)
    stop_reason: str = ""
    seconds: float = 0.0
    files: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)  # what the run noticed (a stalled search)
    counts: dict = field(default_factory=dict)  # training and centre work apart


class _Interrupt:
    """SIGINT sets a flag; the run stops after the current step. A second Ctrl-C aborts."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def __enter__(self) -> _Interrupt:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print(
            "\ninterrupt: stopping after this step and saving a checkpoint (Ctrl-C again to abort)",
            file=sys.stderr,
            flush=True,
        )

    def __exit__(self, *exc: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def _versions() -> dict:
    import zoopt

    return {
        "zoopt": zoopt.__version__,
        "torch": torch.__version__,
        "python": sys.version.split()[0],
    }


def _write_config(run_dir: Path, cfg: dict, built: BuiltObjective, estimator: str) -> None:
    header = (
        f"zoopt run config, resolved (defaults filled in); estimator = {estimator!r}.\n"
        f"Re-run with: zoopt run {run_dir / 'config.toml'}"
    )
    atomic_write_bytes(run_dir / "config.toml", dumps_toml(cfg, header).encode())
    resolved = copy.deepcopy(cfg)
    resolved["output"]["dir"] = str(run_dir)  # the default "" resolved to where the run is
    write_json(
        run_dir / "resolved.json",
        {
            "config": resolved,
            "estimator": estimator,
            "dim": int(built.x0.numel()),
            "metric_name": built.objective.metric_name,
            "metric_sign": float(built.objective.metric_sign),
            "versions": _versions(),
        },
    )


def _state(m: Any, cfg: dict, target: int, status: str) -> dict:
    """The run's checkpoint: the minimizer without its history, and where to find that.

    The history is the first ``history.rows`` lines of ``metrics.jsonl`` (appended step by
    step), so writing a checkpoint costs the same at step 100 and at step 100,000.
    """
    return {
        "minimizer": m.state_dict(history=False),
        "history": {"rows": len(m.history["step"]), "columns": list(m.history)},
        "config": cfg,
        "estimator": cfg["estimator"],  # as configured ("auto"); the minimizer names its choice
        "target_steps": int(target),
        "status": status,
        "stop_reason": m.stop_reason,
    }


def _execute(
    cfg: dict, run_dir: Path, m: Any, built: BuiltObjective, target: int, resumed: bool
) -> RunSummary:
    """The run loop around ``m.run``: logging, checkpoints, Ctrl-C, end-of-run files."""
    out = cfg["output"]
    ckpt = run_dir / CHECKPOINT
    log = RunLog(
        run_dir,
        tensorboard=out["tensorboard"],
        history=m.history if resumed else None,
        metric=m.objective.metric,
    )
    every = out["checkpoint_every"]
    t0 = time.perf_counter()
    with _Interrupt() as interrupt:

        def callback(row: dict) -> bool:
            full = dict(row)
            for key, values in m.history.items():
                if key not in full and values:
                    full[key] = values[-1]
            full["best_metric"] = m.objective.metric(row["best_loss"])
            log.log(full)
            last = (
                m.step_count >= target
                or bool(m.stop_reason)
                or interrupt.requested
                or (m.max_evaluations is not None and m.evaluations >= m.max_evaluations)
            )
            if last or (every and m.step_count % every == 0):
                status = (
                    "interrupted"
                    if interrupt.requested and m.step_count < target
                    else "finished"
                    if last
                    else "running"
                )
                save_checkpoint(ckpt, _state(m, cfg, target, status))
            return interrupt.requested

        from zoopt.minimize import StalledSearchWarning

        m.callback = callback
        try:
            with warnings.catch_warnings():
                # without a progress display the note reaches the run's summary and its
                # closing lines, not a Python warning with a source line
                warnings.simplefilter("ignore", StalledSearchWarning)
                result = m.run(target)
        except Exception:
            # a fault inside a step (every Ray worker lost, NaN parameters) leaves the state
            # of the last whole step; keep it, so that `zoopt resume` continues from there
            if m.step_count:
                save_checkpoint(ckpt, _state(m, cfg, target, "failed"))
            raise
        finally:
            m.callback = None
            log.close()
    interrupted = interrupt.requested and result.stop_reason == "callback"
    if interrupted:
        result.stop_reason = "interrupted"
    files = {"checkpoint": str(ckpt), "metrics": str(log.metrics_path)}
    files["best"] = str(save_tensor(run_dir / "best.pt", result.best_x))
    files["last"] = str(save_tensor(run_dir / "last.pt", result.x))
    held = {}
    if built.held_out is not None and not interrupted:
        held = {
            built.held_out_name: built.held_out(result.x),
            f"{built.held_out_name}_of_best": built.held_out(result.best_x),
        }
    if out["plot"] and m.step_count:
        curve = draw_or_skip(lambda: plot_learning_curves([run_dir], run_dir / "curve.png"))
        if curve is not None:
            files["curve"] = str(curve)
    summary = RunSummary(
        run_dir=str(run_dir),
        estimator=m.estimator.name,
        seed=cfg["seed"],
        status="interrupted" if interrupted else "finished",
        steps=result.steps,
        evaluations=result.evaluations,
        metric_name=result.metric_name,
        final_metric=result.metric,
        best_metric=result.best_metric,
        held_out=held,
        stop_reason=result.stop_reason,
        seconds=time.perf_counter() - t0,
        files=files,
        notes=list(result.notes),
        counts=evaluation_counts(m.objective, result.evaluations, result.center_evaluations),
    )
    write_json(run_dir / "summary.json", summary.__dict__)
    return summary


def _default_dir(cfg: dict) -> Path:
    return Path(cfg["output"]["dir"] or Path("runs") / (cfg["name"] or "run"))


def run_experiment(
    cfg: dict,
    run_dir: str | Path | None = None,
    *,
    estimator: str | None = None,
    until: int | None = None,
) -> RunSummary:
    """Run a validated config in ``run_dir`` (default ``output.dir``, else ``runs/NAME``).

    Args:
        cfg: a config from :func:`zoopt.config.load_config` / :func:`zoopt.config.validate`.
        run_dir: the run directory; an existing checkpoint there is replaced.
        estimator: run this estimator instead of ``cfg["estimator"]``.
        until: stop after this many steps (the schedule still spans ``budget.steps``);
            ``zoopt resume`` continues from there.

    Raises:
        NotApplicable: the estimator cannot be used on this objective.
        ConfigError: the objective or evaluator cannot be built.
    """
    cfg = copy.deepcopy(cfg)
    if estimator is not None:
        cfg["estimator"] = estimator
    run_dir = Path(run_dir) if run_dir is not None else _default_dir(cfg)
    _make_run_dir(run_dir)
    with _minimizer_of(cfg) as (built, m):
        _write_config(run_dir, cfg, built, cfg["estimator"])
        _clear_previous_run(run_dir)
        target = cfg["budget"]["steps"] if until is None else min(until, cfg["budget"]["steps"])
        return _execute(cfg, run_dir, m, built, target, resumed=False)


def _make_run_dir(run_dir: Path) -> None:
    """Create ``run_dir`` or refuse it by the key that chose it (``output.dir`` / ``--out``)."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise ConfigError(
            f"output.dir: cannot use {str(run_dir)!r} as a run directory "
            f"({e.strerror or type(e).__name__})"
        ) from None


def _clear_previous_run(run_dir: Path) -> None:
    """Remove what an earlier run wrote to ``run_dir`` (a fresh run replaces it)."""
    import shutil

    for name in (CHECKPOINT, "summary.json", "error.txt", "curve.png", "best.pt", "last.pt"):
        (run_dir / name).unlink(missing_ok=True)
    if (run_dir / "tensorboard").is_dir():
        shutil.rmtree(run_dir / "tensorboard")


def describe(summary: RunSummary) -> str:
    """A few lines for the terminal at the end of a run."""
    lines = [
        f"{summary.estimator}: {summary.status} after {summary.steps} steps, "
        f"{summary.evaluations} evaluations, {summary.seconds:.1f} s "
        f"(stop: {summary.stop_reason})",
        f"  final {summary.metric_name} = {summary.final_metric:.6g}, "
        f"best {summary.metric_name} = {summary.best_metric:.6g}",
    ]
    for k, v in summary.held_out.items():
        lines.append(f"  {k} = {v:.6g}")
    c = summary.counts
    if c:
        unit = "episodes" if "training_episodes" in c else "evaluations"
        lines.append(
            f"  {unit}: {c[f'training_{unit}']} training, {c[f'center_{unit}']} of the centre"
        )
    lines += [f"  note: {n}" for n in summary.notes]
    lines.append(f"  run directory: {summary.run_dir}")
    for k in ("curve", "checkpoint"):
        if k in summary.files:
            lines.append(f"  {k}: {summary.files[k]}")
    return "\n".join(lines)
