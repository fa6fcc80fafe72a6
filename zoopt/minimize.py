"""The one loop: estimate → optimizer.step → scheduler → callbacks.

:func:`minimize` is the public entry point; :class:`Minimizer` is the same loop as an object
whose complete state (parameters, optimizer, scheduler, estimator, objective statistics,
history, best-so-far, step count) round-trips through :meth:`Minimizer.state_dict`, so that a
resumed run equals an uninterrupted one. Every step's randomness derives from
``(seed, step)`` (:func:`step_seed`), so no RNG state has to be carried.
"""

from __future__ import annotations

import copy
import math
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from zoopt.estimators import Estimator, get_estimator
from zoopt.evaluators import make_evaluator
from zoopt.objectives.base import Objective, as_objective
from zoopt.optim import make_optimizer, make_scheduler
from zoopt.population import ExplicitPopulation
from zoopt.result import HISTORY_KEYS, Result
from zoopt.weights import NonFiniteLossError

__all__ = ["minimize", "Minimizer", "NonFiniteError", "step_seed"]


class NonFiniteError(FloatingPointError):
    """The run produced NaN/Inf parameters or losses; ``.result`` holds the last finite state."""

    def __init__(self, message: str, result: Result | None = None):
        super().__init__(message)
        self.result = result


def step_seed(seed: int, step: int) -> int:
    """The 63-bit seed of step ``step`` of a run seeded ``seed``."""
    ss = np.random.SeedSequence([int(seed) & (2**63 - 1), int(step), 0x5A0])
    return int(ss.generate_state(1, np.uint64)[0] & np.uint64(2**63 - 1))


def _flat_start(x0: Any) -> tuple[Tensor, nn.Module | None]:
    if isinstance(x0, nn.Module):
        params = list(x0.parameters())
        if not params:
            raise ValueError("x0: the module has no parameters to optimise")
        return nn.utils.parameters_to_vector(params).detach().clone(), x0
    if isinstance(x0, np.ndarray):
        x0 = torch.from_numpy(x0)
    if not isinstance(x0, Tensor):
        try:
            x0 = torch.as_tensor(x0, dtype=torch.get_default_dtype())
        except Exception:
            raise TypeError(
                f"x0 must be a 1-D tensor (D,) or an nn.Module, got {type(x0).__name__}"
            ) from None
    if x0.ndim != 1 or x0.numel() == 0:
        raise ValueError(f"x0 must be a non-empty 1-D tensor (D,), got shape {tuple(x0.shape)}")
    if not x0.is_floating_point():
        x0 = x0.to(torch.get_default_dtype())
    if not bool(torch.isfinite(x0).all()):
        raise ValueError("x0 must be finite; it contains NaN or Inf")
    return x0.detach().clone(), None


class Minimizer:
    """The optimisation loop as a resumable object. See :func:`minimize` for the options."""

    #: seconds between plain progress lines (``progress="lines"``)
    progress_every: float = 10.0

    def __init__(
        self,
        objective: Any,
        x0: Any,
        *,
        estimator: str | Estimator = "snes",
        steps: int = 500,
        seed: int = 0,
        optimizer: str | type | Callable = "adam",
        lr: float = 0.02,
        optimizer_options: dict | None = None,
        schedule: str | Callable | None = None,
        warmup_steps: int = 0,
        max_grad_norm: float | None = None,
        max_step_norm: float | None = None,
        max_evaluations: int | None = None,
        evaluator: Any = None,
        device: str | None = None,
        callback: Callable[[dict], Any] | None = None,
        progress: bool | str | None = None,
        **estimator_options: Any,
    ):
        if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
            raise ValueError(f"steps must be a positive int, got {steps!r}")
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise TypeError(f"seed must be an int, got {seed!r}")
        for name, val in (("max_grad_norm", max_grad_norm), ("max_step_norm", max_step_norm)):
            if val is not None and not (isinstance(val, (int, float)) and val > 0):
                raise ValueError(f"{name} must be a positive number or None, got {val!r}")
        if max_evaluations is not None and not (
            isinstance(max_evaluations, int) and max_evaluations > 0
        ):
            raise ValueError(
                f"max_evaluations must be a positive int or None, got {max_evaluations!r}"
            )
        x, self.module = _flat_start(x0)
        self.objective: Objective = as_objective(objective, dim=x.numel())
        dim = getattr(self.objective, "dim", None)
        if dim is not None and dim != x.numel():
            raise ValueError(f"x0 has {x.numel()} parameters but the objective expects {dim}")
        self.estimator = get_estimator(estimator, **estimator_options)
        self.steps, self.seed = steps, seed
        self.max_grad_norm, self.max_step_norm = max_grad_norm, max_step_norm
        self.max_evaluations = max_evaluations
        self.callback, self.progress = callback, progress
        # an evaluator built here from a name (or the default) is closed by close()
        self.owns_evaluator = evaluator is None or isinstance(evaluator, str)
        self.evaluator = make_evaluator(evaluator, **({"device": device} if device else {}))
        self.x = x
        self.optimizer = make_optimizer(optimizer, [self.x], lr, **(optimizer_options or {}))
        self.scheduler = make_scheduler(self.optimizer, schedule, steps, warmup_steps)
        self.estimator.setup(self.objective, self.x)
        self.step_count = 0
        self.evaluations = 0
        self.best_loss = math.inf
        self.best_x = self.x.clone()
        self.history: dict[str, list] = {k: [] for k in HISTORY_KEYS}
        self.elapsed = 0.0
        self.stop_reason = ""

    # -- one step ---------------------------------------------------------------------------
    def _evaluate_center(self, seed: int) -> float:
        losses = self.evaluator.evaluate(self.objective, ExplicitPopulation(self.x[None]), seed)
        self.evaluations += 1
        return float(losses[0])

    def _consider(self, loss: float, x: Tensor) -> None:
        if math.isfinite(loss) and loss < self.best_loss:
            self.best_loss = loss
            self.best_x = x.detach().clone()

    def step(self) -> dict:
        """Take one step; returns the step's history row."""
        t0 = time.perf_counter()
        t = self.step_count
        seed = step_seed(self.seed, t)
        est_name = self.estimator.name or type(self.estimator).__name__
        center_loss = self._evaluate_center(seed)
        self._consider(center_loss, self.x)
        try:
            est = self.estimator.estimate(self.objective, self.x, self.evaluator, seed)
        except NonFiniteLossError as e:
            self._fail(f"step {t + 1}: {e}")
        self.evaluations += est.evaluations
        pop_loss = math.nan
        if est.losses is not None and est.losses.numel() and est.population is not None:
            # K numbers: numpy's per-call cost is a fraction of torch's
            losses = est.losses.detach().cpu().double().numpy()
            losses = np.where(np.isfinite(losses), losses, np.inf)
            i = int(np.argmin(losses))
            pop_loss = float(losses[np.isfinite(losses)].mean())
            if losses[i] < self.best_loss:
                self._consider(float(losses[i]), est.population.rows(i, i + 1)[0])
        before = self.x.clone()
        lr = float(self.optimizer.param_groups[0]["lr"])  # the rate this step uses
        grad_norm = math.nan
        if est.x is not None:
            new = est.x.to(self.x)
            if not bool(torch.isfinite(new).all()):
                self._fail(f"step {t + 1}: {est_name} proposed NaN/Inf parameters")
            with torch.no_grad():
                self.x.copy_(new)
        else:
            grad = est.grad.to(self.x)
            if not bool(torch.isfinite(grad).all()):
                self._fail(f"step {t + 1}: {est_name} produced a NaN/Inf pseudo-gradient")
            grad_norm = float(grad.norm())
            if self.max_grad_norm is not None and grad_norm > self.max_grad_norm:
                grad = grad * (self.max_grad_norm / grad_norm)
            self.x.grad = grad
            self.optimizer.step()
            self.x.grad = None
            if self.scheduler is not None:
                self.scheduler.step()
        delta = self.x - before
        update_norm = float(delta.norm())
        # an estimator that owns its mean (CMA-ES) is not clipped: its distribution would
        # drift away from the parameters
        if est.x is None and self.max_step_norm is not None and update_norm > self.max_step_norm:
            with torch.no_grad():
                self.x.copy_(before + delta * (self.max_step_norm / update_norm))
            update_norm = self.max_step_norm
        if not bool(torch.isfinite(self.x).all()):
            with torch.no_grad():
                self.x.copy_(before)
            self._fail(
                f"step {t + 1}: parameters became NaN/Inf after the optimizer step "
                "(the last finite parameters are kept); lower lr or set max_grad_norm"
            )
        self.step_count += 1
        self.elapsed += time.perf_counter() - t0
        row = {
            "step": self.step_count,
            "loss": center_loss,
            "best_loss": self.best_loss,
            "population_loss": pop_loss,
            "metric": self.objective.metric(center_loss),
            "evaluations": self.evaluations,
            "alpha": math.nan if est.alpha is None else float(est.alpha),
            "ess": math.nan if est.ess is None else float(est.ess),
            "grad_norm": grad_norm,
            "update_norm": update_norm,
            "lr": lr,
            "seconds": self.elapsed,
        }
        for k in HISTORY_KEYS:
            self.history[k].append(row[k])
        for k, v in est.extra.items():
            self.history.setdefault(k, [math.nan] * (self.step_count - 1)).append(v)
        if est.stop:
            self.stop_reason = ", ".join(f"{k}={v}" for k, v in est.stop.items())
        return row

    def _fail(self, message: str) -> None:
        raise NonFiniteError(message, self.result(evaluate_final=False))

    # -- the loop ---------------------------------------------------------------------------
    def run(self, steps: int | None = None) -> Result:
        """Run until ``steps`` in total (default: the configured number) and return the result."""
        target = self.steps if steps is None else steps
        self.stop_reason = ""  # a new call runs on, whatever ended the previous one
        bar = self._progress_bar(target)
        try:
            while self.step_count < target:
                row = self.step()
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(self._postfix(row), refresh=False)
                # the callback sees every row, the last one included
                stop = self.callback is not None and self.callback(row) is True
                if self.stop_reason:
                    break
                if self.max_evaluations is not None and self.evaluations >= self.max_evaluations:
                    self.stop_reason = "max_evaluations"
                    break
                if stop:
                    self.stop_reason = "callback"
                    break
            else:
                self.stop_reason = "steps"
        finally:
            if bar is not None:
                bar.close()
        return self.result()

    def _progress_bar(self, total: int):
        if self.progress == "lines":
            return _LineProgress(total, self.step_count, self.estimator.name, self.progress_every)
        show = self.progress if self.progress is not None else sys.stderr.isatty()
        if not show:
            return None
        from tqdm.auto import tqdm

        return tqdm(
            total=total,
            initial=self.step_count,
            desc=self.estimator.name,
            dynamic_ncols=True,
            leave=False,
        )

    def _postfix(self, row: dict) -> dict:
        out = {
            self.objective.metric_name: f"{row['metric']:.4g}",
            "best": f"{self.objective.metric(row['best_loss']):.4g}",
        }
        for k in ("alpha", "ess"):
            if not math.isnan(row[k]):
                out[k] = f"{row[k]:.3g}"
        if row["seconds"] > 0:
            out["evals/s"] = f"{row['evaluations'] / row['seconds']:.0f}"
        return out

    def result(self, evaluate_final: bool = True) -> Result:
        """The :class:`Result` for the current state (evaluates the final parameters once)."""
        loss = math.nan
        if evaluate_final:
            loss = self._evaluate_center(step_seed(self.seed, self.step_count))
            self._consider(loss, self.x)
        if self.module is not None:
            nn.utils.vector_to_parameters(self.x.detach().clone(), list(self.module.parameters()))
        return Result(
            x=self.x.detach().clone(),
            loss=loss,
            best_x=self.best_x.clone(),
            best_loss=self.best_loss,
            evaluations=self.evaluations,
            steps=self.step_count,
            history={k: list(v) for k, v in self.history.items()},
            metric_name=self.objective.metric_name,
            metric=self.objective.metric(loss),
            best_metric=self.objective.metric(self.best_loss),
            stop_reason=self.stop_reason or "steps",
            estimator=self.estimator.name,
            seconds=self.elapsed,
        )

    # -- state for checkpoints ----------------------------------------------------------------
    def state_dict(self) -> dict:
        """Everything needed to resume exactly (tensors and plain values only).

        A deep copy: torch's optimizer state_dict shares tensors with the live optimizer.
        """
        return copy.deepcopy(
            {
                "x": self.x.detach().clone(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
                "estimator": self.estimator.state_dict(),
                "objective": self.objective.state_dict(),
                "step_count": self.step_count,
                "evaluations": self.evaluations,
                "best_loss": self.best_loss,
                "best_x": self.best_x.clone(),
                "history": {k: list(v) for k, v in self.history.items()},
                "elapsed": self.elapsed,
                "seed": self.seed,
            }
        )

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`."""
        with torch.no_grad():
            self.x.copy_(state["x"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.estimator.load_state_dict(state["estimator"])
        self.objective.load_state_dict(state["objective"])
        self.step_count = int(state["step_count"])
        self.evaluations = int(state["evaluations"])
        self.best_loss = float(state["best_loss"])
        self.best_x = state["best_x"].clone()
        self.history = {k: list(v) for k, v in state["history"].items()}
        self.elapsed = float(state["elapsed"])
        self.seed = int(state["seed"])

    def close(self) -> None:
        """Release the evaluator if this run created it."""
        if self.owns_evaluator:
            self.evaluator.close()


class _LineProgress:
    """Plain progress lines on stderr every ``every`` seconds (logs, CI: no terminal)."""

    def __init__(self, total: int, initial: int, desc: str, every: float = 10.0):
        self.total, self.n, self.desc, self.every = total, initial, desc, every
        self.last = -math.inf
        self.postfix: dict = {}

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix(self, postfix: dict, refresh: bool = False) -> None:
        self.postfix = postfix
        now = time.monotonic()
        if now - self.last >= self.every or self.n >= self.total:
            self.last = now
            self._print()

    def _print(self) -> None:
        fields = " ".join(f"{k}={v}" for k, v in self.postfix.items())
        print(f"{self.desc} step {self.n}/{self.total} {fields}", file=sys.stderr, flush=True)

    def close(self) -> None:
        pass


def minimize(
    objective: Any,
    x0: Any,
    *,
    estimator: str | Estimator = "snes",
    steps: int = 500,
    seed: int = 0,
    **options: Any,
) -> Result:
    """Minimise ``objective`` from ``x0``.

    Args:
        objective: a batched callable ``f(X: Tensor[K, D]) -> Tensor[K]`` (lower is better)
            or a :class:`zoopt.Objective`.
        x0: ``(D,)`` start, or an ``nn.Module`` whose parameters are optimised through a flat
            view and written back in place at the end.
        estimator: a registered name (``"sampling"``, ``"es"``, ``"cmaes"``,
            ``"reinforce"``, ``"gradient"``) or an estimator object.
        steps: number of steps.
        seed: everything random in the run derives from it; same seed → same result.
        **options: the estimator's options (``sigma``, ``population``, ``alpha``, …) and the
            loop's: ``optimizer`` (name or ``torch.optim`` class, default ``"adam"``), ``lr``
            (0.02), ``optimizer_options``, ``schedule`` (``"constant"``, ``"cosine"``,
            ``"linear"`` or a factory), ``warmup_steps``, ``max_grad_norm``,
            ``max_step_norm``, ``max_evaluations``, ``evaluator`` (``"local"``, ``"ray"`` or
            an object), ``device``, ``callback(row) -> True to stop`` (called after every
            step), ``progress`` (True: a tqdm bar, ``"lines"``: plain periodic lines, False:
            silent, None: a bar when stderr is a terminal).

    Returns:
        a :class:`zoopt.Result`.

    Raises:
        NonFiniteError: parameters or the pseudo-gradient became NaN/Inf, or no loss of a
            population was finite; ``err.result`` holds the last finite state.
    """
    # the loop's options are Minimizer's keyword arguments; the rest go to the estimator
    m = Minimizer(objective, x0, estimator=estimator, steps=steps, seed=seed, **options)
    try:
        return m.run()
    finally:
        m.close()
