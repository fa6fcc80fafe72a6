"""Experiments from configs: build the objective, run it in a run directory, compare estimators.

:func:`build_objective` turns an ``[objective]`` table into an objective and its start
``x0``; the modules behind each kind (Gymnasium, supervised, translation) are imported only
when that kind is used, and a missing one gives one clear error. :func:`run_experiment` runs
one config in a run directory (metrics, TensorBoard, checkpoints, plots; Ctrl-C saves a
checkpoint and stops cleanly); :func:`resume_experiment` continues one from its checkpoint;
:func:`compare` runs several estimators and seeds on one config under the same budget.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from zoopt.checkpoint import (
    CheckpointError,
    atomic_write_bytes,
    check_minimizer_state,
    load_checkpoint,
    save_checkpoint,
    save_tensor,
)
from zoopt.config import (
    ConfigError,
    _check_estimator_name,
    dumps_toml,
    estimator_settings,
    evaluator_recipes,
    objective_recipes,
    parse_config,
    validate,
)
from zoopt.objectives.recipes import BuiltObjective
from zoopt.result import evaluation_counts
from zoopt.runlog import (
    RunLog,
    draw_or_skip,
    plot_comparison,
    plot_learning_curves,
    read_metrics,
    write_json,
)

__all__ = [
    "BuiltObjective",
    "RunSummary",
    "CompareRow",
    "NotApplicable",
    "build_objective",
    "build_evaluator",
    "make_minimizer",
    "run_experiment",
    "resume_experiment",
    "compare",
    "format_table",
    "objective_kinds",
]

CHECKPOINT = "checkpoint.pt"


class NotApplicable(RuntimeError):
    """The estimator cannot be used on this objective (the message says why)."""


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


def objective_kinds() -> list[str]:
    """Objective kinds a config can name."""
    return list(objective_recipes())


def _import(kind: str) -> None:
    module = objective_recipes()[kind].needs
    if not module:
        return
    try:
        __import__(module, fromlist=["_"])
    except ImportError as e:
        raise ConfigError(
            f"objective.kind = {kind!r} needs {module}, which cannot be imported in this "
            f"installation ({e})"
        ) from None


def build_objective(obj: dict, seed: int = 0) -> BuiltObjective:
    """The objective and start of a validated ``[objective]`` table (``seed``: model init).

    Calls the builder registered for ``obj["kind"]`` (:mod:`zoopt.objectives.recipes`) with
    the table's keys.
    """
    recipe = objective_recipes()[obj["kind"]]
    _import(obj["kind"])
    return recipe.build(seed, **{k: v for k, v in obj.items() if k in recipe.schema})


def build_evaluator(cfg: dict) -> Any:
    """The evaluator of a validated config's ``[evaluator]`` table.

    Calls the builder registered for ``[evaluator] kind`` (:mod:`zoopt.evaluators.recipes`)
    with the table's keys and ``[evaluator.options]``.
    """
    ev = cfg["evaluator"]
    recipe = evaluator_recipes()[ev["kind"]]
    options = {k: v for k, v in ev.items() if k in recipe.schema}
    options.update(ev.get("options") or {})
    try:
        return recipe.build(cfg["seed"], **options)
    except ImportError as e:
        raise ConfigError(
            f"evaluator.kind = {ev['kind']!r} is not available in this installation ({e})"
        ) from None
    except (TypeError, ValueError) as e:
        raise ConfigError(f"evaluator: {e}") from None


def _progress_mode(setting: str) -> bool | str:
    if setting == "auto":
        return True if sys.stderr.isatty() else "lines"
    return {"bar": True, "lines": "lines", "none": False}[setting]


def novelty_option(table: dict) -> dict | None:
    """The Minimizer's ``novelty`` argument from a config's ``[novelty]`` table (None: off)."""
    weight = table.get("weight", 0.0)
    if weight == 0:
        return None
    return {"weight": weight, **{k: v for k, v in table.items() if k != "weight"}}


def make_minimizer(
    cfg: dict,
    built: BuiltObjective,
    evaluator: Any,
    *,
    estimator: str | None = None,
    progress: bool | str | None = None,
) -> Any:
    """A :class:`zoopt.Minimizer` for ``cfg`` (``estimator`` overrides ``cfg["estimator"]``).

    Raises:
        NotApplicable: the estimator refuses the objective (no surrogate, cannot sample, ...).
    """
    from zoopt.minimize import Minimizer

    name = estimator or cfg["estimator"]
    est_options, opt = estimator_settings(cfg, name)
    schedule = opt.get("schedule", "constant")
    try:
        m = Minimizer(
            built.objective,
            built.x0,
            estimator=name,
            steps=cfg["budget"]["steps"],
            seed=cfg["seed"],
            optimizer=opt["name"],
            lr=opt["lr"],
            optimizer_options=dict(opt.get("options") or {}),
            schedule=None if schedule == "constant" and not opt.get("warmup_steps") else schedule,
            warmup_steps=opt.get("warmup_steps", 0),
            max_grad_norm=opt.get("max_grad_norm"),
            max_step_norm=opt.get("max_step_norm"),
            max_evaluations=cfg["budget"].get("max_evaluations"),
            bounds=cfg["objective"].get("bounds"),
            novelty=novelty_option(cfg.get("novelty") or {}),
            evaluator=evaluator,
            progress=progress,
            **est_options,
        )
    except (TypeError, ValueError, NotImplementedError) as e:
        raise NotApplicable(f"estimator {name!r} does not apply here: {e}") from None
    m.progress_every = cfg["output"]["progress_every"]
    return m


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
        "estimator": m.estimator.name,
        "target_steps": int(target),
        "status": status,
        "stop_reason": m.stop_reason,
    }


def _history_from_metrics(run_dir: Path, meta: Any, mstate: dict) -> dict[str, list]:
    """The history of a checkpoint: the first ``meta["rows"]`` rows of ``metrics.jsonl``.

    Non-finite values come back as NaN (``metrics.jsonl`` writes NaN and ±Inf as null).

    Raises:
        ValueError: naming the entry or the file when they do not match the checkpoint.
    """
    from zoopt.result import HISTORY_KEYS

    if not isinstance(meta, dict) or set(meta) != {"rows", "columns"}:
        raise ValueError(f"history: expected a table of rows and columns, got {meta!r:.80}")
    n, columns = meta["rows"], meta["columns"]
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise ValueError(f"history.columns: expected a list of names, got {columns!r:.80}")
    if isinstance(n, bool) or not isinstance(n, int) or n != mstate["step_count"]:
        raise ValueError(f"history.rows: {n} rows for {mstate['step_count']} steps")
    missing = [k for k in HISTORY_KEYS if k not in columns]
    if missing:
        raise ValueError(f"history.columns: missing column {missing[0]!r}")
    path = run_dir / "metrics.jsonl"
    rows: list[dict] = []
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if len(rows) == n:
                    break
                row = json.loads(line)
                if not isinstance(row, dict):
                    raise ValueError
                rows.append(row)
    except (OSError, UnicodeDecodeError, ValueError):
        raise ValueError(
            f"{path}: line {len(rows) + 1} is missing or not a JSON row; the checkpoint's "
            f"history is its first {n} rows"
        ) from None
    if len(rows) < n:
        raise ValueError(f"{path}: {len(rows)} rows, the checkpoint's history needs {n}")
    history = {c: [math.nan if r.get(c) is None else r.get(c) for r in rows] for c in columns}
    for c, values in history.items():
        if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in values):
            raise ValueError(f"{path}: column {c!r} holds a value that is not a number")
    if n and (history["step"][-1] != n or history["evaluations"][-1] != mstate["evaluations"]):
        raise ValueError(
            f"{path}: row {n} (step {history['step'][-1]}, evaluations "
            f"{history['evaluations'][-1]}) is not the step the checkpoint was written after "
            f"(step {n}, evaluations {mstate['evaluations']})"
        )
    return history


def _history_in_checkpoint(history: Any, mstate: dict) -> dict[str, list]:
    """The history of a checkpoint that holds it (columns of equal length, one per step)."""
    from zoopt.result import HISTORY_KEYS

    if not isinstance(history, dict):
        raise ValueError(f"minimizer.history: expected a table, got {type(history).__name__}")
    for k in HISTORY_KEYS:
        if k not in history:
            raise ValueError(f"minimizer.history: missing column {k!r}")
    for k, values in history.items():
        if not isinstance(values, list) or len(values) != mstate["step_count"]:
            length = len(values) if isinstance(values, list) else type(values).__name__
            raise ValueError(
                f"minimizer.history.{k}: expected {mstate['step_count']} values (one per "
                f"step), got {length}"
            )
        if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in values):
            raise ValueError(f"minimizer.history.{k}: holds a value that is not a number")
    return history


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


@contextlib.contextmanager
def _minimizer_of(cfg: dict) -> Iterator[tuple[BuiltObjective, Any]]:
    """The built objective and a minimizer for ``cfg``; evaluator and objective closed after."""
    from zoopt.resources import check_step_memory

    check_step_memory(cfg)
    _check_devices(cfg)
    built = build_objective(cfg["objective"], cfg["seed"])
    try:
        evaluator = build_evaluator(cfg)
        try:
            progress = _progress_mode(cfg["output"]["progress"])
            yield built, make_minimizer(cfg, built, evaluator, progress=progress)
        finally:
            evaluator.close()
    finally:
        _close(built.objective)


def _check_devices(cfg: dict) -> None:
    """Refuse a CUDA device index this machine does not have (the config checked the form)."""
    for key, device in (
        ("evaluator.device", cfg["evaluator"].get("device")),
        ("objective.device", cfg["objective"].get("device")),
    ):
        if device is None or not torch.cuda.is_available():
            continue  # without CUDA, a 'cuda' request falls back to the CPU with a warning
        d = torch.device(device)
        if d.type == "cuda" and d.index is not None and d.index >= torch.cuda.device_count():
            raise ConfigError(
                f"{key}: {device!r} names GPU {d.index}, but this machine has "
                f"{torch.cuda.device_count()} (cuda:0 to cuda:{torch.cuda.device_count() - 1})"
            )


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


def _close(objective: Any) -> None:
    close = getattr(objective, "close", None)
    if callable(close):
        close()


def resume_experiment(
    run_dir: str | Path, steps: int | None = None, max_evaluations: int | None = None
) -> RunSummary | None:
    """Continue a run from ``run_dir/checkpoint.pt``.

    Args:
        run_dir: a run directory written by :func:`run_experiment`.
        steps: run until this many steps in total (default: the configured budget).
        max_evaluations: a new evaluation budget.

    Returns:
        the summary, or None when the run is already complete (nothing is run).

    Raises:
        CheckpointError: the checkpoint is missing or damaged (the message names it).
    """
    run_dir = Path(run_dir)
    ckpt = run_dir / CHECKPOINT
    state = load_checkpoint(ckpt)
    cfg = _run_config(run_dir)
    try:
        for key, kind in (
            ("minimizer", dict),
            ("config", dict),
            ("estimator", str),
            ("status", str),
            ("stop_reason", str),
        ):
            if not isinstance(state.get(key), kind):
                raise ValueError(f"{key}: expected a {kind.__name__}, got {state.get(key)!r:.80}")
        if state["status"] not in ("running", "finished", "interrupted", "failed"):
            raise ValueError(
                "status: expected running, finished, interrupted or failed, "
                f"got {state['status']!r:.80}"
            )
        _check_embedded_config(state["config"], cfg)
        mstate, estimator = state["minimizer"], state["estimator"]
        if estimator != cfg["estimator"]:
            raise ValueError(
                f"estimator: {estimator!r}, but {run_dir / 'config.toml'} runs {cfg['estimator']!r}"
            )
        for key in ("step_count", "evaluations"):
            v = mstate.get(key)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"minimizer.{key}: expected an int >= 0, got {v!r}")
        done, evaluations = mstate["step_count"], mstate["evaluations"]
    except ValueError as e:
        raise CheckpointError(f"{ckpt}: damaged checkpoint: {e}") from None
    if max_evaluations is not None:
        cfg["budget"]["max_evaluations"] = max_evaluations
    target = steps if steps is not None else cfg["budget"]["steps"]
    if steps is not None and steps > cfg["budget"]["steps"]:
        cfg["budget"]["steps"] = steps
    budget_left = (
        cfg["budget"].get("max_evaluations") is None
        or evaluations < cfg["budget"]["max_evaluations"]
    )
    stopped = state.get("status") == "finished" and state.get("stop_reason") and steps is None
    if done >= target or not budget_left or stopped:
        return None
    with _minimizer_of(cfg) as (built, m):
        _restore(ckpt, m, state)
        _write_config(run_dir, cfg, built, estimator)
        return _execute(cfg, run_dir, m, built, target, resumed=True)


def _run_config(run_dir: Path) -> dict:
    """The run directory's ``config.toml``, validated: what a resumed run executes."""
    path = run_dir / "config.toml"
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(
            f"{path}: cannot read the run's config ({getattr(e, 'strerror', None) or e}); "
            "resume needs the config.toml the run wrote"
        ) from None
    return validate(parse_config(text, str(path)), source=str(path))


#: what a config executes: a checkpoint's embedded copy must agree with the run directory's
def _executed(cfg: Any) -> dict:
    obj = cfg.get("objective") if isinstance(cfg, dict) else None
    obj = obj if isinstance(obj, dict) else {}
    return {
        "evaluator": cfg.get("evaluator") if isinstance(cfg, dict) else None,
        "objective.kind": obj.get("kind"),
        "objective.env": obj.get("env"),
    }


def _check_embedded_config(embedded: Any, cfg: dict) -> None:
    """Refuse a checkpoint whose embedded config would execute something else than ``cfg``."""
    theirs, ours = _executed(embedded), _executed(cfg)
    for key in ours:
        if theirs[key] != ours[key]:
            raise ValueError(
                f"config.{key}: the checkpoint's embedded config says {theirs[key]!r}, the run "
                f"directory's config.toml {ours[key]!r}; resume runs config.toml only and "
                "refuses a checkpoint written for something else"
            )


def _restore(ckpt: Path, m: Any, state: dict) -> None:
    """Check the checkpoint's minimizer state against ``m`` (fresh), then load it into ``m``.

    Raises:
        CheckpointError: naming ``ckpt`` and the damaged entry.
    """
    mstate = dict(state["minimizer"])
    template = m.state_dict(history=False)
    template["optimizer"], scheduler = _stepped_optimizer_state(m, template["optimizer"])
    if template["scheduler"] is None:
        template["scheduler"] = scheduler
    try:
        history = mstate.pop("history", None)
        check_minimizer_state(mstate, {k: v for k, v in template.items() if k != "history"})
        if history is None:
            history = _history_from_metrics(ckpt.parent, state.get("history"), mstate)
        else:  # a checkpoint that holds its history
            history = _history_in_checkpoint(history, mstate)
        _probe_estimator(m, mstate)
        if m.novelty is not None:  # the archive's own checks, on a copy
            copy.deepcopy(m.novelty).load_state_dict(mstate["novelty"])
    except ValueError as e:
        raise CheckpointError(f"{ckpt}: damaged checkpoint: {e}") from None
    try:
        m.load_state_dict({**mstate, "history": history})
    except Exception as e:  # the checks above should leave nothing for torch to refuse
        raise CheckpointError(
            f"{ckpt}: damaged checkpoint: minimizer: cannot be restored "
            f"({type(e).__name__}: {str(e)[:200]})"
        ) from None


def _stepped_optimizer_state(m: Any, fresh: dict) -> tuple[dict, dict | None]:
    """The state a copy of ``m``'s optimizer holds after one step (its own entries), and the
    state of the run's learning-rate schedule (None without one).

    The loop builds its scheduler at the first step, when the binding budget is known; a
    copy built here gives the entries the scheduler adds to the optimizer's groups.
    """
    from zoopt.optim import make_scheduler

    p = m.x.detach().clone().requires_grad_(True)
    try:
        opt = type(m.optimizer)([p], **m.optimizer.defaults)
        schedule, warmup_steps = m._schedule
        sched = make_scheduler(opt, schedule, m.steps, warmup_steps)
        p.grad = torch.zeros_like(p)
        opt.step()
    except Exception:  # an optimizer that needs a closure (L-BFGS): shapes are checked only
        return fresh, None
    state = opt.state_dict()
    groups = fresh["param_groups"] if sched is None else state["param_groups"]
    return {"state": state["state"], "param_groups": groups}, (
        None if sched is None else sched.state_dict()
    )


def _probe_estimator(m: Any, mstate: dict) -> None:
    """Load the estimator's state into a copy and draw one population from it.

    The estimator's own ``load_state_dict`` and ``ask`` are its expectations of the state:
    a state they refuse, or one whose population has another D, is damaged.
    """
    if not mstate["estimator"]:
        return
    est = copy.deepcopy(m.estimator)
    try:
        est.load_state_dict(mstate["estimator"])
        ask = getattr(est, "ask", None)
        if ask is None:
            return
        population = ask(mstate["x"].clone(), int(mstate["seed"]))
        rows = population.rows(0, min(2, len(population)))
    except Exception as e:
        raise ValueError(
            f"minimizer.estimator: {m.estimator.name!r} cannot continue from this state "
            f"({type(e).__name__}: {str(e)[:200]})"
        ) from None
    if rows.dim() != 2 or rows.shape[1] != m.x.numel() or not bool(torch.isfinite(rows).all()):
        raise ValueError(
            f"minimizer.estimator: {m.estimator.name!r} draws candidates of shape "
            f"{tuple(rows.shape)} from this state, not finite rows of D = {m.x.numel()}"
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

    Each run gets ``out_dir/ESTIMATOR/seedS``. Estimators that cannot apply to the objective
    are reported with the reason; a run that fails part-way is reported with its error.

    Returns:
        (rows, files): the table rows and the paths of ``comparison.{md,json,png}``.
    """
    from zoopt.estimators import available_estimators

    out_dir = Path(out_dir)
    estimators = list(estimators or cfg["compare"].get("estimators") or available_estimators())
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
            if name not in available_estimators():
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
