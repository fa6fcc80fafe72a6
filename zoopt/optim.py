"""Optimizers and learning-rate schedules for pseudo-gradients: plain ``torch.optim``.

Every estimator reports a pseudo-gradient with the scale of a true gradient, so any
``torch.optim.Optimizer`` and ``torch.optim.lr_scheduler`` apply with their usual meaning.
"""

from __future__ import annotations

import difflib
import functools
import inspect
from collections.abc import Callable
from typing import Any

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

__all__ = [
    "ClipUp",
    "make_optimizer",
    "optimizer_factory",
    "make_scheduler",
    "check_schedule",
    "available_optimizers",
    "SCHEDULES",
]


class ClipUp(Optimizer):
    """ClipUp (Toklu et al. 2020, "ClipUp: a simple and powerful optimizer for
    distribution-based policy evolution", PPSN): normalised gradient, heavy-ball momentum and
    a clipped speed, so that the step length never exceeds ``max_speed`` whatever the
    gradient's scale.

        v ← clip(m·v − lr·g/‖g‖, max_speed),   θ ← θ + v

    Args:
        params: the parameters.
        lr: the step size (Toklu et al. use max_speed/2; None takes that).
        max_speed: the largest ‖v‖ per parameter tensor.
        momentum: m in [0, 1).
    """

    def __init__(self, params, lr: float | None = None, max_speed: float = 1.0, momentum=0.9):
        for name, val in (("max_speed", max_speed), ("lr", lr)):
            if val is not None and (isinstance(val, bool) or not val > 0):
                raise ValueError(f"{name} must be a positive number, got {val!r}")
        if isinstance(momentum, bool) or not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
        lr = 0.5 * max_speed if lr is None else lr
        super().__init__(params, dict(lr=lr, max_speed=max_speed, momentum=momentum))

    @torch.no_grad()
    def step(self, closure: Callable | None = None):  # noqa: D102
        loss = None if closure is None else closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "velocity" not in state:
                    state["velocity"] = torch.zeros_like(p)
                v = state["velocity"]
                norm = p.grad.norm()
                v.mul_(group["momentum"])
                if norm > 0:
                    v.add_(p.grad, alpha=-group["lr"] / float(norm))
                speed = float(v.norm())
                if speed > group["max_speed"]:
                    v.mul_(group["max_speed"] / speed)
                p.add_(v)
        return loss


def _optimizer_classes() -> dict[str, type]:
    out = {}
    for name, obj in vars(torch.optim).items():
        if (
            inspect.isclass(obj)
            and issubclass(obj, Optimizer)
            and obj is not Optimizer
            and "muon" not in name.lower()  # refused: see _refuse_matrix_only
        ):
            out[name.lower()] = obj
    return out


def available_optimizers() -> list[str]:
    """Lower-case names of the ``torch.optim`` optimizers accepted by name."""
    return sorted(_optimizer_classes())


def make_optimizer(
    optimizer: str | type | Callable, params: list[torch.Tensor], lr: float, **options: Any
) -> Optimizer:
    """Build a ``torch.optim`` optimizer from a name (``"adam"``), a class or a factory."""
    return optimizer_factory(optimizer, lr, **options)(params)


def optimizer_factory(
    optimizer: str | type | Callable, lr: float, **options: Any
) -> Callable[[list[torch.Tensor]], Optimizer]:
    """:func:`make_optimizer` checked now and built later: ``factory(params)``.

    Every argument is checked here (the name, ``lr``, and ``options`` against the class's
    signature), so that a bad one fails at once even where the optimizer is built late or
    never: the first ``torch.optim`` optimizer of a process imports ``torch._dynamo`` (about
    two seconds), which an estimator that owns its mean (CMA-ES) does not need to pay.
    """
    if isinstance(optimizer, Optimizer):
        raise TypeError(
            "optimizer must be a name or an Optimizer class/factory (zoopt creates it over the "
            "flat parameter vector); pass optimizer=torch.optim.Adam, optimizer_options={...}"
        )
    _refuse_matrix_only(optimizer)
    if isinstance(optimizer, str):
        classes = _optimizer_classes()
        cls = classes.get(optimizer.lower()) or _pytorch_optimizer(optimizer.lower())
        if cls is None:
            close = difflib.get_close_matches(
                optimizer.lower(), [*classes, *_external_names()], n=1
            )
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(
                f"optimizer must be one of {sorted(classes)}, a name from the pytorch-optimizer "
                f"package (pip install pytorch-optimizer; e.g. 'adabound', 'amsbound', "
                f"'lion'), or a torch.optim class; got {optimizer!r}.{hint}"
            )
        optimizer = cls
    if not callable(optimizer):
        raise TypeError(f"optimizer must be a name or a torch.optim class, got {optimizer!r}")
    if not isinstance(lr, (int, float)) or isinstance(lr, bool) or not lr > 0:
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    _check_options(optimizer, options)
    return functools.partial(optimizer, lr=lr, **options)


def _check_options(optimizer: Callable, options: dict) -> None:
    """``options`` fit the signature of ``optimizer`` (params, lr=…, **options)."""
    try:
        signature = inspect.signature(optimizer)
    except (TypeError, ValueError):  # a builtin or C factory: checked when it is built
        return
    try:
        signature.bind([], lr=1.0, **options)
    except TypeError as e:
        name = getattr(optimizer, "__name__", type(optimizer).__name__)
        raise TypeError(f"optimizer_options do not fit {name}: {e}") from None


def _pytorch_optimizer(name: str) -> Callable | None:
    """An optimizer of the ``pytorch-optimizer`` package by name (None if absent or unknown).

    ``"amsbound"`` is its AdaBound with ``ams_bound=True`` (Luo et al., 2019).
    """
    try:
        import pytorch_optimizer
    except ImportError:
        return None
    if name == "amsbound":
        return functools.partial(pytorch_optimizer.AdaBound, ams_bound=True)
    if name not in pytorch_optimizer.get_supported_optimizers():
        return None
    return pytorch_optimizer.load_optimizer(name)


def _external_names() -> list[str]:
    try:
        import pytorch_optimizer
    except ImportError:
        return []
    return [*pytorch_optimizer.get_supported_optimizers(), "amsbound"]


def _refuse_matrix_only(optimizer: Any) -> None:
    """Muon and its variants orthogonalise 2-D updates; zoopt's θ is one flat vector."""
    name = optimizer if isinstance(optimizer, str) else getattr(optimizer, "__name__", "")
    if "muon" in str(name).lower():
        raise ValueError(
            f"optimizer {name!r} (Muon) needs 2-D weight matrices, but zoopt optimises one "
            "flat parameter vector (D,); use 'adam', 'sgd' or another element-wise optimizer"
        )


SCHEDULES = ("constant", "cosine", "linear")


def make_scheduler(
    optimizer: Optimizer, schedule: str | Callable | None, steps: int, warmup_steps: int = 0
) -> LRScheduler | None:
    """A learning-rate schedule over ``steps``: linear warm-up, then ``schedule``.

    ``schedule`` is ``"constant"``, ``"cosine"`` (decay to 0), ``"linear"`` (decay to 1/1000
    of ``lr``), a factory ``f(optimizer) -> LRScheduler`` (used as it is: ``warmup_steps``
    applies to the named schedules only), or None (constant; with ``warmup_steps``, the
    warm-up alone).
    """
    from torch.optim import lr_scheduler as lrs

    if not isinstance(warmup_steps, int) or warmup_steps < 0:
        raise ValueError(f"warmup_steps must be a non-negative int, got {warmup_steps!r}")
    if callable(schedule) and not isinstance(schedule, str):
        return schedule(optimizer)
    if schedule is None and warmup_steps == 0:
        return None
    schedule = schedule or "constant"
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES} or a factory, got {schedule!r}")
    rest = max(1, steps - warmup_steps)
    if schedule == "cosine":
        main = lrs.CosineAnnealingLR(optimizer, T_max=rest)
    elif schedule == "linear":
        main = lrs.LinearLR(optimizer, start_factor=1.0, end_factor=1e-3, total_iters=rest)
    else:
        main = lrs.ConstantLR(optimizer, factor=1.0, total_iters=0)
    if warmup_steps == 0:
        return main
    warm = lrs.LinearLR(
        optimizer, start_factor=1.0 / (warmup_steps + 1), end_factor=1.0, total_iters=warmup_steps
    )
    return lrs.SequentialLR(optimizer, [warm, main], milestones=[warmup_steps])


def check_schedule(schedule: Any, warmup_steps: Any) -> None:
    """The ``schedule``/``warmup_steps`` options (the scheduler itself is built later)."""
    if not isinstance(warmup_steps, int) or isinstance(warmup_steps, bool) or warmup_steps < 0:
        raise ValueError(f"warmup_steps must be a non-negative int, got {warmup_steps!r}")
    if schedule is not None and not callable(schedule) and schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES} or a factory, got {schedule!r}")
