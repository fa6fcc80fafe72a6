"""The one loop: ask → evaluate → tell (estimate → optimizer.step → scheduler → callbacks).

:func:`minimize` is the public entry point; :class:`Minimizer` is the same loop as an object
whose complete state (parameters, optimizer, scheduler, estimator, objective statistics,
history, best-so-far, step count) round-trips through :meth:`Minimizer.state_dict`, so that a
resumed run equals an uninterrupted one. Every step's randomness derives from
``(seed, step)`` (:func:`step_seed`), so no RNG state has to be carried.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from zoopt.checkpoint import check_estimator_name
from zoopt.estimators import Estimate, Estimator, PopulationEstimator, get_estimator
from zoopt.estimators.auto import resolve_auto
from zoopt.estimators.base import sanitize_losses
from zoopt.evaluators import make_evaluator
from zoopt.novelty import BehaviourTap, make_novelty, novelty_tap
from zoopt.objectives.base import Objective, as_objective
from zoopt.objectives.box import BoxObjective, box_from_options
from zoopt.optim import check_schedule, make_scheduler, optimizer_factory
from zoopt.population import CenteredPopulation, ExplicitPopulation
from zoopt.result import HISTORY_KEYS, Result, step_counts
from zoopt.stall import StalledSearchWarning, StallWatch, signal_fraction
from zoopt.start import flat_start
from zoopt.weights import NonFiniteLossError

__all__ = ["minimize", "Minimizer", "NonFiniteError", "StalledSearchWarning", "step_seed"]


class NonFiniteError(FloatingPointError):
    """The run produced NaN/Inf parameters or losses; ``.result`` holds the last finite state."""

    def __init__(self, message: str, result: Result | None = None):
        super().__init__(message)
        self.result = result


def step_seed(seed: int, step: int) -> int:
    """The 63-bit seed of step ``step`` of a run seeded ``seed``."""
    ss = np.random.SeedSequence([int(seed) & (2**63 - 1), int(step), 0x5A0])
    return int(ss.generate_state(1, np.uint64)[0] & np.uint64(2**63 - 1))


def _all_finite(x: Tensor, norm: float) -> bool:
    """Whether every entry of ``x`` is finite, given the norm of ``x`` or of ``x − y``: an
    infinite or NaN entry makes that norm infinite or NaN, so a finite norm says so without
    another pass over ``x``; its entries are read only when the norm is not finite."""
    return math.isfinite(norm) or bool(torch.isfinite(x).all())


def _needs_objective(estimator: Estimator) -> str:
    return (
        f"estimator {estimator.name!r} evaluates the objective itself (its surrogate or its "
        "sampled outputs), so it has no ask()/tell(); give it the objective and call step() "
        "or run(), or use a population estimator ('es', 'sampling', 'cmaes', ...) for ask/tell"
    )


class _AskTellObjective(Objective):
    """Stands in for the objective of a Minimizer built with ``objective=None``."""

    name = "ask/tell"

    def evaluate(self, X: Tensor, seed: int = 0) -> Tensor:
        raise RuntimeError(
            "this Minimizer has no objective (objective=None): evaluate the rows of ask() "
            "yourself and pass their losses to tell()"
        )


@dataclass
class _Asked:
    """A step between ask and tell: the estimator's population and the rows evaluated."""

    seed: int
    population: Any  # the estimator's population, K rows
    evaluated: Any  # what the objective sees: the population, then θ when the centre is kept
    with_center: bool


class Minimizer(StallWatch):
    """The optimisation loop as a resumable object, with ask/tell. See :func:`minimize`.

    :meth:`step` is :meth:`ask` → evaluate → :meth:`tell`; the same two calls drive a loop
    whose evaluation runs elsewhere (a simulator, a cluster job, an instrument)::

        m = zoopt.Minimizer(None, np.zeros(5), estimator="es", seed=0)
        for _ in range(100):
            X = m.ask()                      # (K, D) numpy, x0's type
            m.tell([my_loss(x) for x in X])  # K losses
        print(m.best_x, m.result())

    On the steps that evaluate θ (``evaluate_center``: every 10th by default when an
    objective is given) the rows also hold θ as their last row, and the history's ``loss``
    is the centre's loss (NaN on the other steps).
    """

    #: seconds between plain progress lines (``progress="lines"``)
    progress_every: float = 10.0

    def __init__(
        self,
        objective: Any,
        x0: Any,
        *,
        estimator: str | Estimator = "auto",
        steps: int = 500,
        seed: int = 0,
        batched: bool = True,
        bounds: Any = None,
        integer: Any = None,
        evaluate_center: bool | int | None = None,
        optimizer: str | type | Callable = "adam",
        lr: float = 0.02,
        optimizer_options: dict | None = None,
        schedule: str | Callable | None = None,
        warmup_steps: int = 0,
        max_grad_norm: float | None = None,
        max_step_norm: float | None = None,
        max_evaluations: int | None = None,
        novelty: Any = None,
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
        if evaluate_center is not None and not (
            isinstance(evaluate_center, bool)
            or (isinstance(evaluate_center, int) and evaluate_center >= 1)
        ):
            raise ValueError(
                "evaluate_center must be True, False, None or a positive int (every n-th "
                f"step), got {evaluate_center!r}"
            )
        x, self.module, self.as_numpy = flat_start(x0)
        self.has_objective = objective is not None
        if objective is None:
            objective = _AskTellObjective()
        objective = as_objective(objective, dim=x.numel(), batched=batched, numpy=self.as_numpy)
        dim = getattr(objective, "dim", None)
        if dim is not None and dim != x.numel():
            raise ValueError(f"x0 has {x.numel()} parameters but the objective expects {dim}")
        box = box_from_options(bounds, integer, x)
        if box is not None:
            objective = BoxObjective(objective, *box)
        self.objective: Objective = objective
        #: what ``estimator="auto"`` chose (:class:`zoopt.estimators.auto.AutoChoice`) or None
        self.auto_choice = None
        if isinstance(estimator, str) and estimator == "auto":
            noisy = estimator_options.pop("noisy", None)  # given: no noise probe
            self.auto_choice = resolve_auto(
                objective if self.has_objective else None, x,
                max_evaluations=max_evaluations, steps=steps, options=estimator_options,
                seed=seed, noisy=noisy,
            )  # fmt: skip
            estimator, estimator_options = self.auto_choice.estimator, self.auto_choice.options
            if self.auto_choice.max_evaluations is not None:  # steps read as generations
                max_evaluations = self.auto_choice.max_evaluations
                steps = max(steps, max_evaluations)
        self.estimator = get_estimator(estimator, **estimator_options)
        if not self.has_objective and not isinstance(self.estimator, PopulationEstimator):
            raise TypeError(_needs_objective(self.estimator))
        self.novelty = make_novelty(novelty)
        self._tap: BehaviourTap | None = None
        if self.novelty is not None:
            self._tap = novelty_tap(self.estimator, self.objective, self.has_objective)
        if evaluate_center is None:  # population estimators: every n-th step (CENTER_EVERY)
            evaluate_center = self.has_objective and getattr(self.estimator, "center_every", True)
        self.evaluate_center = evaluate_center
        self.steps, self.seed = steps, seed
        self.max_grad_norm, self.max_step_norm = max_grad_norm, max_step_norm
        self.max_evaluations = max_evaluations
        self.callback, self.progress = callback, progress
        # an evaluator built here from a name (or the default) is closed by close()
        self.owns_evaluator = evaluator is None or isinstance(evaluator, str)
        self.evaluator = make_evaluator(evaluator, **({"device": device} if device else {}))
        self.theta = x
        # checked now, built when first needed (an estimator that owns its mean never steps it)
        self._make_optimizer = optimizer_factory(optimizer, lr, **(optimizer_options or {}))
        self._optimizer: torch.optim.Optimizer | None = None
        self._lr = float(lr)
        # built at the first update, once the evaluations per step (and so the binding
        # budget) are known
        self._schedule = (schedule, warmup_steps)
        check_schedule(schedule, warmup_steps)
        self.scheduler = None
        self.schedule_steps: int | None = None
        self.estimator.bind_module(self.module)
        self.estimator.setup(self.objective, self.theta)
        self.step_count = 0
        self.evaluations = 0
        self.center_evaluations = 0  # of them, evaluations of θ (not training)
        self.best_loss = math.inf
        self._best = self._repair(self.theta).clone()
        probe = self.auto_choice.probe if self.auto_choice is not None else None
        if probe is not None:  # the noise probe's evaluations are not thrown away
            points = probe.points.to(self.theta)
            self.estimator.reuse(points, probe.losses)
            for x, loss in zip(points, probe.losses.tolist(), strict=True):
                self._consider(loss, x)
        self.history: dict[str, list] = {k: [] for k in HISTORY_KEYS}
        self.elapsed = 0.0
        self.stop_reason = ""
        #: what the run noticed and said (a stalled search); also in :class:`Result`
        self.notes: list[str] = [self.auto_choice.reason] if self.auto_choice else []
        self.evaluations += self.auto_choice.evaluations if self.auto_choice else 0
        self._flat_steps = 0
        self._display: Any = None
        self._asked: _Asked | None = None
        self._t_ask = 0.0

    # -- parameters in the type of x0 ---------------------------------------------------------
    @property
    def x(self) -> Any:
        """The current parameters θ ``(D,)``: the live tensor, or a numpy copy for numpy x0."""
        return self._out(self.theta)

    @property
    def best_x(self) -> Any:
        """The best evaluated point so far ``(D,)``, in the type of x0."""
        return self._out(self._best.clone())

    def _out(self, t: Tensor) -> Any:
        return t.detach().to("cpu").numpy().copy() if self.as_numpy else t

    def _repair(self, x: Tensor) -> Tensor:
        """The point the objective evaluates for ``x``: inside the box, integers rounded."""
        if isinstance(self.objective, BoxObjective):
            return self.objective.repair(x.detach())
        return x.detach()

    # -- ask / tell ---------------------------------------------------------------------------
    def ask(self) -> Any:
        """The rows to evaluate this step: ``(K, D)``, θ appended as row K when
        ``evaluate_center``; numpy for numpy/list x0, else a tensor; inside ``bounds``.

        Asking again before :meth:`tell` returns the same rows.
        """
        rows = self._repair(self._ask().evaluated.materialize())
        return rows.to("cpu").numpy().copy() if self.as_numpy else rows.clone()

    def tell(self, losses: Any, behaviours: Any = None) -> dict:
        """Apply the step from the losses of :meth:`ask`'s rows (sequence, numpy or tensor,
        lower is better, NaN/Inf for failed rows). Returns the step's history row.

        With ``novelty``, ``behaviours`` ``(rows, B)`` gives each row's behaviour."""
        if self._asked is None:
            raise RuntimeError(
                "tell() needs a pending ask(): call ask(), evaluate its rows, then tell() "
                "their losses once"
            )
        k = len(self._asked.evaluated)
        try:
            if isinstance(losses, Tensor):
                values = losses.detach().to("cpu", torch.float64)
            else:
                values = torch.as_tensor(np.asarray(losses, dtype=np.float64))
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(
                f"tell(losses): expected {k} real numbers (a sequence, numpy array or "
                f"tensor), got {type(losses).__name__}"
            ) from None
        if values.shape != (k,):
            raise ValueError(
                f"tell(losses): expected {k} losses, one per row of ask(), got shape "
                f"{tuple(values.shape)}"
            )
        if self.novelty is None:
            if behaviours is not None:
                raise ValueError("tell(behaviours=...) needs a Minimizer built with novelty")
            return self._tell(values)
        try:
            b = torch.as_tensor(np.asarray(behaviours, dtype=np.float64))
        except (TypeError, ValueError, RuntimeError):
            b = None
        if b is None or b.ndim != 2 or b.shape[0] != k:
            raise ValueError(
                f"tell(losses, behaviours): with novelty, behaviours must be ({k}, B) numbers, "
                f"one row per row of ask(); got {type(behaviours).__name__}"
                + (f" of shape {tuple(b.shape)}" if b is not None else "")
            )
        return self._tell(values, b)

    def _ask(self) -> _Asked:
        if self._asked is None:
            if not isinstance(self.estimator, PopulationEstimator):
                raise TypeError(_needs_objective(self.estimator))
            self._t_ask = time.perf_counter()
            seed = step_seed(self.seed, self.step_count)
            population = self.estimator.ask(self.theta, seed)
            evaluated = population
            with_center = self._center_due()
            if with_center:
                evaluated = CenteredPopulation(population, self.theta.detach().clone())
            self._asked = _Asked(seed, population, evaluated, with_center)
        return self._asked

    def _tell(self, losses: Tensor, behaviours: Tensor | None = None) -> dict:
        asked, self._asked = self._asked, None
        k = len(asked.population)
        center_loss = float(losses[k]) if asked.with_center else math.nan
        self.evaluations += len(asked.evaluated) - k
        self.center_evaluations += len(asked.evaluated) - k
        if asked.with_center:
            self._consider(center_loss, self._repair(self.theta))
        pop = losses[:k].to(dtype=self.theta.dtype)
        # the K losses once on the host: the checks, the history and the stall watch read
        # them there (numpy's per-call cost is a fraction of torch's)
        host = pop.detach().to("cpu", torch.float64).numpy()
        if not np.isfinite(host).all():
            self.estimator._warn_nonfinite(pop)
            try:
                sanitize_losses(pop, self.estimator.name)
            except NonFiniteLossError as e:
                self._fail(f"step {self.step_count + 1}: {e}")
        seen, extra = pop, {"signal_fraction": signal_fraction(host)}
        if self.novelty is not None:
            center = behaviours[k] if asked.with_center else None
            seen, info = self.novelty.combine(pop, behaviours[:k], center)
            extra.update(info)
        est = self.estimator.tell(self.theta, asked.population, seen)
        est.losses, est.population = pop, asked.population  # the raw losses: best, history
        est.evaluations = est.evaluations or k
        est.extra.update(extra)
        self._watch_stall(host if self.novelty is None else seen, host)
        return self._apply(est, center_loss, self._t_ask, asked.with_center, host)

    def step(self) -> dict:
        """Take one step (ask → evaluate → tell); returns the step's history row."""
        if not self.has_objective:
            raise RuntimeError(
                "step()/run() need an objective; this Minimizer has none (objective=None): "
                "use ask() and tell()"
            )
        if isinstance(self.estimator, PopulationEstimator):
            asked = self._ask()
            if self._tap is None:
                losses = self.evaluator.evaluate(self.objective, asked.evaluated, asked.seed)
                return self._tell(losses)
            losses = self.evaluator.evaluate(self._tap, asked.evaluated, asked.seed)
            return self._tell(losses, self._tap.take(len(asked.evaluated)))
        # estimators that query the objective themselves (gradient, reinforce)
        t0 = time.perf_counter()
        seed = step_seed(self.seed, self.step_count)
        center_loss = math.nan
        centered = self._center_due()
        if centered:
            center_loss = self._evaluate_center(seed)
            self._consider(center_loss, self._repair(self.theta))
        try:
            est = self.estimator.estimate(self.objective, self.theta, self.evaluator, seed)
        except NonFiniteLossError as e:
            self._fail(f"step {self.step_count + 1}: {e}")
        return self._apply(est, center_loss, t0, centered)

    # -- the step's bookkeeping, whichever way the losses came -------------------------------
    def _center_due(self) -> bool:
        """Whether this step evaluates θ: every step, never, or every n-th (1, n+1, …)."""
        every = self.evaluate_center
        if isinstance(every, bool):
            return every
        return self.step_count % every == 0

    def _evaluate_center(self, seed: int) -> float:
        population = ExplicitPopulation(self.theta.detach()[None])
        losses = self.evaluator.evaluate(self.objective, population, seed)
        self.evaluations += 1
        self.center_evaluations += 1
        return float(losses[0])

    def _consider(self, loss: float, x: Tensor) -> None:
        if math.isfinite(loss) and loss < self.best_loss:
            self.best_loss = loss
            self._best = x.detach().clone()

    def _apply(
        self,
        est: Estimate,
        center_loss: float,
        t0: float,
        centered: bool,
        host: np.ndarray | None = None,
    ) -> dict:
        """Best-so-far, the update of θ, the schedule and the history row of one step.

        ``host``: ``est.losses`` as float64 numpy when the caller has them."""
        t = self.step_count
        est_name = self.estimator.name or type(self.estimator).__name__
        spent = est.evaluations + int(centered)
        self.evaluations += est.evaluations
        pop_loss = math.nan
        if est.losses is not None and est.losses.numel() and est.population is not None:
            # K numbers: numpy's per-call cost is a fraction of torch's
            if host is None:
                host = est.losses.detach().cpu().double().numpy()
            finite = np.isfinite(host)
            losses = np.where(finite, host, np.inf)
            i = int(np.argmin(losses))
            pop_loss = float(host[finite].mean())
            if losses[i] < self.best_loss:
                self._consider(float(losses[i]), self._repair(est.population.rows(i, i + 1)[0]))
        self._build_scheduler(spent)
        before = self.theta.clone()
        # the rate this step uses
        lr = self._lr if self._optimizer is None else float(self._optimizer.param_groups[0]["lr"])
        grad_norm = math.nan
        if est.x is not None:
            new = est.x.to(self.theta)
            delta = new - before
            update_norm = float(delta.norm())
            if not _all_finite(new, update_norm):
                self._fail(f"step {t + 1}: {est_name} proposed NaN/Inf parameters")
            with torch.no_grad():
                self.theta.copy_(new)
        else:
            grad = est.grad.to(self.theta)
            grad_norm = float(grad.norm())
            if not _all_finite(grad, grad_norm):
                self._fail(f"step {t + 1}: {est_name} produced a NaN/Inf pseudo-gradient")
            if self.max_grad_norm is not None and grad_norm > self.max_grad_norm:
                grad = grad * (self.max_grad_norm / grad_norm)
            self.theta.grad = grad
            self.optimizer.step()
            self.theta.grad = None
            if self.scheduler is not None:
                self.scheduler.step()
            delta = self.theta - before
            update_norm = float(delta.norm())
        step_norm = update_norm  # before the clip and the box: finite iff θ is
        # an estimator that owns its mean (CMA-ES) is not clipped: its distribution would
        # drift away from the parameters
        if est.x is None and self.max_step_norm is not None and update_norm > self.max_step_norm:
            with torch.no_grad():
                self.theta.copy_(before + delta * (self.max_step_norm / update_norm))
            update_norm = self.max_step_norm
        if isinstance(self.objective, BoxObjective):
            # projected update: θ stays inside the box (integer coordinates stay continuous)
            lo, hi = self.objective.bounds
            with torch.no_grad():
                self.theta.copy_(torch.clamp(self.theta, lo.to(self.theta), hi.to(self.theta)))
            update_norm = float((self.theta - before).norm())
        if not _all_finite(self.theta, step_norm):  # an optimizer's step can overflow
            with torch.no_grad():
                self.theta.copy_(before)
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
            "best_metric": self.objective.metric(self.best_loss),
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
        counts = step_counts(self.objective, self.evaluations, self.center_evaluations)
        extra = {**est.extra, **counts}
        for k, v in extra.items():
            column = self.history.get(k)
            if column is None:  # a new column: NaN for the steps before (not built every step)
                column = self.history[k] = [math.nan] * (self.step_count - 1)
            column.append(v)
        if est.stop:
            self.stop_reason = ", ".join(f"{k}={v}" for k, v in est.stop.items())
        return row

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        """The ``torch.optim`` optimizer over the flat parameters, built on first use."""
        if self._optimizer is None:
            self._optimizer = self._make_optimizer([self.theta])
        return self._optimizer

    def _build_scheduler(self, per_step: int, steps: int | None = None) -> None:
        """The schedule over whichever budget ends the run first: ``steps`` or
        ``max_evaluations`` at ``per_step`` evaluations a step."""
        if self.schedule_steps is not None:
            return
        if steps is None:
            steps = self.steps
            if self.max_evaluations is not None and per_step > 0:
                steps = min(steps, max(1, math.ceil(self.max_evaluations / per_step)))
        self.schedule_steps = steps
        schedule, warmup_steps = self._schedule
        if schedule is None and warmup_steps == 0:
            return  # a constant rate: no scheduler (and no optimizer needed for it)
        self.scheduler = make_scheduler(self.optimizer, schedule, steps, warmup_steps)

    def _fail(self, message: str) -> None:
        raise NonFiniteError(message, self.result(evaluate_final=False))

    # -- the loop ---------------------------------------------------------------------------
    def run(self, steps: int | None = None) -> Result:
        """Run until ``steps`` in total (default: the configured number) and return the result."""
        target = self.steps if steps is None else steps
        self.stop_reason = ""  # a new call runs on, whatever ended the previous one
        from zoopt.progress import make_progress

        bar = self._display = make_progress(self, target)
        try:
            while self.step_count < target:
                row = self.step()
                if bar is not None:
                    bar.update(row)
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
            self._display = None
            if bar is not None:
                bar.close()
        return self.result()

    def result(self, evaluate_final: bool = True) -> Result:
        """The :class:`Result` for the current state (evaluates the final parameters once)."""
        loss = math.nan
        if evaluate_final and self.has_objective:
            loss = self._evaluate_center(step_seed(self.seed, self.step_count))
            self._consider(loss, self._repair(self.theta))
        x = self._repair(self.theta).clone()
        if self.estimator.reports_best and self.best_loss < loss:
            x, loss = self._best.clone(), self.best_loss  # cma.fmin2's xbest over the runs
        if self.module is not None:
            nn.utils.vector_to_parameters(x.clone(), list(self.module.parameters()))
        return Result(
            x=self._out(x),
            loss=loss,
            best_x=self.best_x,
            best_loss=self.best_loss,
            evaluations=self.evaluations,
            center_evaluations=self.center_evaluations,
            steps=self.step_count,
            history={k: list(v) for k, v in self.history.items()},
            metric_name=self.objective.metric_name,
            metric=self.objective.metric(loss),
            best_metric=self.objective.metric(self.best_loss),
            stop_reason=self.stop_reason or "steps",
            estimator=self.estimator.name,
            seconds=self.elapsed,
            notes=list(self.notes),
        )

    # -- state for checkpoints ----------------------------------------------------------------
    def state_dict(self, history: bool = True) -> dict:
        """Everything needed to resume exactly (tensors and plain values only).

        Take it between :meth:`tell` and the next :meth:`ask`: a pending ask is not saved.

        A deep copy: torch's optimizer state_dict shares tensors with the live optimizer.
        With ``history=False`` the history is left out (``None``), so that the cost does not
        grow with the steps taken; the caller restores it before :meth:`load_state_dict`.
        """
        return copy.deepcopy(
            {
                "x": self.theta.detach().clone(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
                "schedule_steps": self.schedule_steps,
                "estimator": self.estimator.state_dict(),
                # which estimator wrote it (and what auto chose): another one cannot read it
                "estimator_name": self.estimator.name,
                "auto": None if self.auto_choice is None else self.auto_choice.label,
                # auto's verdict on noise: a run rebuilt to resume passes it (noisy=...)
                # instead of probing again
                "auto_noisy": None if self.auto_choice is None else self.auto_choice.noisy,
                "objective": self.objective.state_dict(),
                "step_count": self.step_count,
                "evaluations": self.evaluations,
                "center_evaluations": self.center_evaluations,
                "best_loss": self.best_loss,
                "best_x": self._best.clone(),
                "history": {k: list(v) for k, v in self.history.items()} if history else None,
                "elapsed": self.elapsed,
                "seed": self.seed,
                "novelty": None if self.novelty is None else self.novelty.state_dict(),
                "flat_steps": self._flat_steps,
                "notes": list(self.notes),
            }
        )

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`.

        Raises:
            ValueError: the state was written by another estimator (nothing is restored).
        """
        why = f" ({self.auto_choice.reason})" if self.auto_choice else ""
        check_estimator_name(state, self.estimator.name, why)
        with torch.no_grad():
            self.theta.copy_(state["x"])
        if state.get("scheduler") is not None:
            # built before the optimizer's state is restored: building it sets the lr
            self.schedule_steps = None
            self._build_scheduler(0, steps=state.get("schedule_steps") or self.steps)
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.estimator.match_checkpoint(state["estimator"])
        self.estimator.load_state_dict(state["estimator"])
        self.objective.load_state_dict(state["objective"])
        self.step_count = int(state["step_count"])
        self.evaluations = int(state["evaluations"])
        self.center_evaluations = int(state.get("center_evaluations", 0))
        self.best_loss = float(state["best_loss"])
        self._best = state["best_x"].clone()
        self._asked = None
        self.history = {k: list(v) for k, v in state["history"].items()}
        self.elapsed = float(state["elapsed"])
        self.seed = int(state["seed"])
        if self.novelty is not None:
            if state.get("novelty") is None:
                raise ValueError("minimizer.novelty: this run searches novelty; the state has none")
            self.novelty.load_state_dict(state["novelty"])
        self._flat_steps = int(state.get("flat_steps", 0))
        self.notes = list(state.get("notes", []))

    def close(self) -> None:
        """Release the evaluator if this run created it."""
        if self.owns_evaluator:
            self.evaluator.close()


def minimize(
    objective: Any,
    x0: Any,
    *,
    estimator: str | Estimator = "auto",
    steps: int = 500,
    seed: int = 0,
    **options: Any,
) -> Result:
    """Minimise ``objective`` from ``x0``.

    Args:
        objective: a batched callable ``f(X: Tensor[K, D]) -> Tensor[K]`` (lower is better),
            with ``batched=False`` a function ``f(x) -> float`` of one vector, or a
            :class:`zoopt.Objective`.
        x0: ``(D,)`` start — a tensor, a numpy array or a list (then ``f`` receives numpy
            rows under ``batched=False`` and the result's ``x``/``best_x`` are numpy) — or
            an ``nn.Module`` whose parameters are optimised through a flat view and written
            back in place at the end (:func:`zoopt.batched_forward` runs it on the rows).
        estimator: ``"auto"`` (the default: chosen from D, the budget, bounds/integers and
            noise, see :mod:`zoopt.estimators.auto` and docs/estimators_auto.md; the choice
            is the first of ``Result.notes``; ``noisy=True``/``False`` says whether
            repeated evaluations of one point differ and skips its noise probe), a
            registered name (``"snes"``, ``"xnes"``, ``"pgpe"``, ``"ars"``, ``"sampling"``,
            ``"es"``, ``"cmaes"``, ``"reinforce"``, ``"gradient"``) or an estimator object.
        steps: number of steps (one ask → evaluate → tell each). When ``"auto"`` chooses
            the surrogate (a step evaluates 1 to λ candidates) and ``max_evaluations`` is
            not given, they are read as ``steps``·λ evaluations (CMA-ES generations).
        seed: everything random in the run derives from it; same seed → same result.
        batched: False for ``f(x) -> float`` on one vector: rows are evaluated one at a
            time (on Ray, in parallel across workers).
        bounds: ``(lower, upper)``, each a number or a ``(D,)`` array (``±inf`` for an open
            side): the objective only ever receives points inside the box (candidates are
            projected onto it, see :class:`zoopt.objectives.box.BoxObjective` for the
            effect on the estimate), θ is projected after each update, and ``x``/``best_x``
            lie inside. ``cmaes`` hands the box to pycma's own boundary handling.
        integer: indices of coordinates evaluated at integer values (rounded at evaluation;
            ``cmaes`` also passes them as pycma's ``integer_variables``).
        evaluate_center: evaluate θ every step (True), never (False; the history's
            ``loss`` is then NaN), or every n-th step (an int). None, the default: every
            10th step for the population estimators, whose steps never read the centre's
            loss (every step would spend 1/(K + 1) of the budget on reporting), never for
            ``cmaes`` with a surrogate, every step for ``gradient`` and ``reinforce``; θ
            is also evaluated once at the end (``Result.loss``). θ travels as one more row
            of the population's evaluator call, so it costs one candidate; the history
            counts these ``center_evaluations`` apart.
        novelty: novelty search as part of the loss (:mod:`zoopt.novelty`): a weight λ in
            (0, 1] of (1 − λ)·loss − λ·novelty, ``"adaptive"`` (NSRA-ES), True (λ = 0.5),
            a dict of :class:`zoopt.novelty.Novelty`'s arguments or a ``Novelty``. Needs a
            population estimator and an objective returning behaviours
            (``GymObjective`` does); the history gains ``novelty_weight``,
            ``mean_novelty`` and ``archive_size``, and the archive is checkpointed.
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
