"""Resuming a run from its checkpoint, which is checked entry by entry before it is loaded.

:func:`resume_experiment` runs the run directory's ``config.toml`` (never the copy inside
the checkpoint, which must agree with it) from ``checkpoint.pt``; a damaged checkpoint is
refused with a :class:`zoopt.checkpoint.CheckpointError` naming the entry, before anything
runs. The resumed run equals an uninterrupted one.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import torch

from zoopt.checkpoint import (
    CheckpointError,
    check_minimizer_state,
    load_checkpoint,
)
from zoopt.config import (
    ConfigError,
    parse_config,
    validate,
)
from zoopt.experiment.build import _minimizer_of
from zoopt.experiment.run import CHECKPOINT, RunSummary, _execute, _write_config


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


def resume_experiment(
    run_dir: str | Path, steps: int | None = None, max_evaluations: int | None = None
) -> RunSummary | None:
    """Continue a run from ``run_dir/checkpoint.pt``.

    Args:
        run_dir: a run directory written by :func:`zoopt.experiment.run_experiment`.
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
            if cfg["estimator"] != "auto":
                raise ValueError(
                    f"estimator: {estimator!r}, but {run_dir / 'config.toml'} runs "
                    f"{cfg['estimator']!r}"
                )
            # an older auto checkpoint named the estimator auto chose: the minimizer's check
            # compares it with the choice made again
            mstate.setdefault("estimator_name", estimator)
        for key in ("step_count", "evaluations"):
            v = mstate.get(key)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"minimizer.{key}: expected an int >= 0, got {v!r}")
        done, evaluations = mstate["step_count"], mstate["evaluations"]
        _check_step_count(state, done)
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
    noisy = mstate.get("auto_noisy")  # auto's verdict: the same choice, no probe again
    with _minimizer_of(cfg, noisy if isinstance(noisy, bool) else None) as (built, m):
        _restore(ckpt, m, state)
        _write_config(run_dir, cfg, built, cfg["estimator"])
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
    """Refuse a checkpoint whose embedded config would execute something else than ``cfg``,
    is not a valid config, or describes another objective (the saved θ belongs to it)."""
    theirs, ours = _executed(embedded), _executed(cfg)
    for key in ours:
        if theirs[key] != ours[key]:
            raise ValueError(
                f"config.{key}: the checkpoint's embedded config says {theirs[key]!r}, the run "
                f"directory's config.toml {ours[key]!r}; resume runs config.toml only and "
                "refuses a checkpoint written for something else"
            )
    try:
        embedded = validate(embedded, source="config")
    except ConfigError as e:
        raise ValueError(f"config.{str(e).removeprefix('config: ')}") from None
    theirs, ours = embedded["objective"], cfg["objective"]
    for key in sorted(set(theirs) | set(ours)):
        if theirs.get(key) != ours.get(key):
            raise ValueError(
                f"config.objective.{key}: the checkpoint's embedded config says "
                f"{theirs.get(key)!r}, the run directory's config.toml {ours.get(key)!r}; the "
                "saved parameters belong to the objective the checkpoint was written for"
            )


def _check_step_count(state: dict, done: int) -> None:
    """Refuse a step count that its history does not hold (one row per step)."""
    history, meta = state["minimizer"].get("history"), state.get("history")
    if isinstance(history, dict) and isinstance(history.get("step"), list):
        rows, where = len(history["step"]), "minimizer.history.step"
    elif history is None and isinstance(meta, dict) and isinstance(meta.get("rows"), int):
        rows, where = meta["rows"], "history.rows"
    else:
        return  # a malformed history is named when the state is restored
    if done != rows:
        raise ValueError(
            f"minimizer.step_count: {done} steps, but the checkpoint's history ({where}) "
            f"holds {rows} rows, one per step"
        )


def _restore(ckpt: Path, m: Any, state: dict) -> None:
    """Check the checkpoint's minimizer state against ``m`` (fresh), then load it into ``m``.

    Raises:
        CheckpointError: naming ``ckpt`` and the damaged entry.
    """
    mstate = dict(state["minimizer"])
    if isinstance(mstate.get("estimator"), dict):  # the defaults the run was written with
        m.estimator.match_checkpoint(mstate["estimator"])
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
