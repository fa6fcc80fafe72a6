"""Building an experiment from a config: the objective, the evaluator and the minimizer.

:func:`build_objective` turns an ``[objective]`` table into an objective and its start
``x0``; the modules behind each kind (Gymnasium, supervised, translation) are imported only
when that kind is used, and a missing one gives one clear error. :func:`build_evaluator`
does the same for ``[evaluator]``, and :func:`make_minimizer` puts them together with the
estimator, optimizer, schedule, budget and novelty settings.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

import torch

from zoopt.config import (
    ConfigError,
    estimator_settings,
    evaluator_recipes,
    objective_recipes,
)
from zoopt.objectives.recipes import BuiltObjective


class NotApplicable(RuntimeError):
    """The estimator cannot be used on this objective (the message says why)."""


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
    auto_noisy: bool | None = None,
) -> Any:
    """A :class:`zoopt.Minimizer` for ``cfg`` (``estimator`` overrides ``cfg["estimator"]``).

    ``auto_noisy``: for ``auto``, the verdict on noise a checkpoint kept (the run resumes
    with the same choice, without probing again); None probes.

    Raises:
        NotApplicable: the estimator refuses the objective (no surrogate, cannot sample, ...).
    """
    from zoopt.minimize import Minimizer

    name = estimator or cfg["estimator"]
    est_options, opt = estimator_settings(cfg, name)
    if name == "auto" and auto_noisy is not None:
        est_options["noisy"] = auto_noisy
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


@contextlib.contextmanager
def _minimizer_of(
    cfg: dict, auto_noisy: bool | None = None
) -> Iterator[tuple[BuiltObjective, Any]]:
    """The built objective and a minimizer for ``cfg`` (``auto_noisy``: see
    :func:`make_minimizer`); evaluator and objective closed after."""
    from zoopt.resources import check_step_memory

    check_step_memory(cfg)
    _check_devices(cfg)
    built = build_objective(cfg["objective"], cfg["seed"])
    try:
        evaluator = build_evaluator(cfg)
        try:
            progress = _progress_mode(cfg["output"]["progress"])
            yield (
                built,
                make_minimizer(cfg, built, evaluator, progress=progress, auto_noisy=auto_noisy),
            )
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


def _close(objective: Any) -> None:
    close = getattr(objective, "close", None)
    if callable(close):
        close()
