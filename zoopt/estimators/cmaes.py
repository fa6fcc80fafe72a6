"""CMA-ES through pycma's ask/tell, with IPOP restarts and exact, code-free checkpoints.

CMA-ES (Hansen & Ostermeier, 2001; Hansen, 2016, "The CMA Evolution Strategy: A Tutorial")
adapts the proposal π itself: each generation draws λ candidates xᵢ = m + σ·B·D·zᵢ with
zᵢ ~ N(0, I), sorts them by loss and moves the mean to the weighted recombination
m ← m + c_m Σᵢ wᵢ (x_{i:λ} − m) with CMA's log-rank weights wᵢ ∝ ln((λ+1)/2) − ln i — one
more member of the "losses → centred weights" family of :mod:`zoopt.weights`. It then
updates the evolution paths p_σ, p_c, the step size σ (cumulative step-size adaptation) and
the covariance C = B·D²·Bᵀ (rank-one and rank-μ updates).

The arithmetic is pycma's (``cma.CMAEvolutionStrategy``), not a re-implementation; this
module adds what zoopt needs around it:

* evaluation through zoopt's evaluators (a whole generation per call, so the local and
  the Ray evaluator both work);
* the diagonal variant sep-CMA-ES (Ros & Hansen, 2008; pycma's ``CMA_diagonal``), O(D) per
  draw instead of O(D²), chosen automatically above :data:`DIAGONAL_ABOVE` parameters;
* IPOP restarts (Auger & Hansen, 2005): when pycma's termination criteria fire, start a
  fresh strategy from x0 with the population multiplied by ``incpopsize``; or BIPOP
  (Hansen, 2009, ``bipop=True``), pycma's ``fmin`` regime rule interleaving runs with small
  populations and a smaller σ₀ while their budget is below the large runs' (``restarts``
  counts the large runs, as ``cma.fmin2``'s does); it visits ``cma.fmin2``'s points when
  pycma draws from the same generator (``tolflatfitness`` off, no final-mean evaluation);
* with restarts the reported parameters are the best run's: the current run's mean while
  its best loss is the lowest found, otherwise the best solution of the earlier run that
  found lower (``cma.fmin2``'s ``xbest``); and ``Result.x``/``Result.loss`` are the best
  evaluated point of all runs when it beats the final parameters (:attr:`reports_best`),
  as ``cma.fmin2`` returns ``xbest``, so the result is never a worse mean of a run cut by
  the budget or stopped by its termination criteria;
* plateaus never end a run: a generation whose λ losses are all equal (a minibatch
  accuracy, a sparse return) does not trigger the flat-fitness criteria ``tolfun``,
  ``tolfunhist``, ``tolflatfitness`` (pycma widens σ on such a generation and searches on);
  the run's ``steps`` or ``max_evaluations`` bound it instead;
* its own seeded random generator (pycma's ``randn`` option), so runs do not depend on, or
  disturb, numpy's global random state;
* silence: pycma prints nothing and writes no ``outcmaes/`` files; σ, the condition number
  of the covariance, λ and the restart count go to zoopt's history instead;
* lq-CMA-ES (Hansen, 2019, "A global surrogate assisted CMA-ES", GECCO; ``surrogate=True``):
  pycma's own linear-quadratic model (``cma.fitness_models``) ranks each generation, and
  only as many candidates are evaluated as it takes for the model's ranking to agree with
  the true one (Kendall τ ≥ 0.85); the rest get model values. pycma runs that loop one
  evaluation at a time (``SurrogatePopulation``); here each increment of it (1, 2, 3, 5,
  8, … candidates in model order) is one evaluator call, one step of zoopt's loop, so the
  same points are evaluated in batches and the model's archive rides in the checkpoint
  (:class:`zoopt.estimators.lq_screen.LQScreen`);
* the model's step (``model_step=True``, the default with a surrogate): after a generation
  the model ranked right and predicted well, the mean moves to the model's optimum, as the
  quadratic metamodel of ``snes``/``xnes`` steps (:mod:`zoopt.metamodel`); lq-CMA-ES only
  injects the optimum, whose mean then follows at CMA-ES's pace. On a quadratic the mean
  lands on the minimiser once the model is exact, and the optimum, injected after the step,
  is evaluated next (:mod:`zoopt.estimators.lq_screen`);
* ``surrogate="adaptive"``: with restarts, the model is dropped for the remaining runs after
  a run that trusted it (told a generation before all λ were evaluated) in fewer than
  :data:`MODEL_KEEP_FRACTION` of its generations: on rugged functions (bbob's Weierstrass,
  Schaffer F7) the quadratic model rarely ranks right and its injected optimum misleads;
* a checkpoint made of tensors and plain values only (:meth:`CMAES.state_dict`), loadable
  with ``torch.load(weights_only=True)``, from which the strategy is rebuilt exactly.

CMA-ES owns its mean: each step returns the new distribution mean m as the parameters
(``Estimate.x``). The mean, not the best candidate so far, is the natural "current
parameters" — it is what the next generation is drawn around, and it averages out the
luck of single draws; the best candidate is still tracked as ``Result.best_x``.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from typing import Any

import numpy as np
import torch
from torch import Tensor

from zoopt.blas_threads import one_blas_thread
from zoopt.estimators import register
from zoopt.estimators.base import CENTER_EVERY, Estimate, PopulationEstimator, check_positive
from zoopt.estimators.lq_screen import (
    MODEL_STEP_MAX_ERROR,
    MODEL_STEP_MAX_NORM,
    MODEL_STEP_MIN_DIM,
    LQScreen,
    check_model_fit,
)
from zoopt.estimators.pycma_state import dump_strategy, load_strategy, plain_reason
from zoopt.objectives.base import Objective
from zoopt.objectives.box import BoxObjective
from zoopt.population import ExplicitPopulation, Population

__all__ = [
    "CMAES",
    "DIAGONAL_ABOVE",
    "MODEL_KEEP_FRACTION",
    "MODEL_STEP_MAX_ERROR",
    "MODEL_STEP_MAX_NORM",
    "MODEL_STEP_MIN_DIM",
    "ONE_BLAS_THREAD_MAX_DIM",
]

#: ``diagonal="auto"`` switches to sep-CMA-ES above this many parameters
DIAGONAL_ABOVE = 1000

#: up to this many parameters pycma's arithmetic (and lq-CMA-ES's model) runs on one BLAS
#: thread (:mod:`zoopt.blas_threads`): D × D matrices this small cost more in thread hand-offs
ONE_BLAS_THREAD_MAX_DIM = 100

#: ``surrogate="adaptive"``: the least fraction of a run's generations in which the model
#: must have been trusted (told before all λ candidates were evaluated) to screen the next run
MODEL_KEEP_FRACTION = 0.5

#: pycma options this estimator sets itself (through its own arguments)
_MANAGED_OPTIONS = frozenset(
    {
        "randn",
        "seed",
        "popsize",
        "CMA_diagonal",
        "verbose",
        "verb_disp",
        "verb_log",
        "verb_plot",
        "verb_filenameprefix",
        "signals_filename",
    }
)

#: pycma's criteria that also fire on a plateau (all losses equal) — ignored on one
_FLAT_CRITERIA = frozenset({"tolfun", "tolfunhist", "tolflatfitness", "tolfunrel"})


@register("cmaes")
class CMAES(PopulationEstimator):
    """CMA-ES (pycma) behind zoopt's ask/tell, evaluators, history and checkpoints.

    Args:
        sigma: σ₀ > 0, the initial step size: roughly a quarter to a half of the distance
            from x0 to where the optimum may lie.
        population: λ ≥ 2 candidates per generation; ``None`` takes pycma's default
            4 + ⌊3 ln D⌋.
        diagonal: ``True`` for sep-CMA-ES (diagonal covariance, O(D) per draw), ``False``
            for the full covariance (O(D²) per draw), ``"auto"`` for the diagonal variant
            above :data:`DIAGONAL_ABOVE` parameters.
        restarts: IPOP restarts. When pycma's termination criteria fire and restarts
            remain, a fresh strategy starts from x0 with σ₀ and λ multiplied by
            ``incpopsize``; when none remain the run ends with pycma's reasons as its
            ``stop_reason``. ``ftarget`` and ``maxfevals`` end the run at once, as in
            ``cma.fmin2``.
        incpopsize: population growth factor per restart (≥ 1; IPOP uses 2).
        bipop: restart as BIPOP-CMA-ES (needs ``restarts`` > 0): small-population runs with
            σ₀·0.01^U are interleaved while their evaluations are below the large runs';
            as in ``cma.fmin2``, ``restarts`` counts the large runs only, the small ones
            come on top.
        surrogate: lq-CMA-ES, ``cma.fmin_lq_surr2``'s scheme: a linear-quadratic model of
            the evaluated points pre-screens each generation; a step of the loop evaluates
            the next increment of candidates in model order, and a generation ends (pycma's
            ``tell`` with model values for the unevaluated rest, the model's optimum
            injected) once the model ranks the evaluated ones right. For smooth problems of
            a few dozen parameters at most (the full model has (D+1)(D+2)/2 coefficients);
            each restart starts a fresh model. The loop does not evaluate the mean by default.
            ``"adaptive"``: as ``True``, but with restarts a run whose model was trusted
            (the generation told before all λ candidates were evaluated) in fewer than
            :data:`MODEL_KEEP_FRACTION` of its generations ends the model: the later runs
            are plain CMA-ES. On rugged functions the quadratic model rarely ranks a
            generation right, and its injected optimum misleads.
        model_step: with ``surrogate``, after a generation the model ranked right (told
            before all λ candidates were evaluated) and whose evaluated points it predicted
            to :data:`MODEL_STEP_MAX_ERROR` of its losses' spread, a model with a positive
            definite Hessian moves the mean to its optimum (at most
            :data:`MODEL_STEP_MAX_NORM`·√D in the strategy's Mahalanobis norm). Not with
            pycma's ``bounds``, a variable transformation or integer variables, nor below
            :data:`MODEL_STEP_MIN_DIM` parameters, where the optimum is only injected.
            ``False`` with ``model_fit="pinv"``: ``cma.fmin_lq_surr2``'s points exactly.
        model_fit: with ``surrogate``, how the model's weighted least squares is solved:
            ``"qr"`` (a Householder QR of the column-scaled features, pycma's pseudo-inverse
            where that is ill-conditioned: the same fit up to rounding in a fraction of the
            SVD's time, see :func:`zoopt.estimators.lq_screen.qr_least_squares`)
            or ``"pinv"`` (pycma's pseudo-inverse, an SVD, every time).
        options: further pycma options (``tolfun``, ``tolx``, ``ftarget``, ``bounds``,
            ``maxiter``, …; see ``cma.CMAOptions()``). The options set through the
            arguments above, the random generator and the verbosity are refused here.

    The random generator (a numpy ``PCG64`` handed to pycma as ``randn``) is seeded with
    the first step's seed, which derives from the run's seed.
    """

    owns_mean = True

    def __init__(
        self,
        sigma: float = 0.5,
        population: int | None = None,
        diagonal: bool | str = "auto",
        restarts: int = 0,
        incpopsize: float = 2,
        options: dict | None = None,
        bipop: bool = False,
        surrogate: bool | str = False,
        model_step: bool = True,
        model_fit: str = "qr",
    ):
        self.sigma = float(check_positive("sigma", sigma))
        if population is not None:
            check_positive("population", population, integer=True, minimum=2, inclusive=True)
        self.population = population
        if not (isinstance(diagonal, bool) or (isinstance(diagonal, str) and diagonal == "auto")):
            raise ValueError(f"diagonal must be True, False or 'auto', got {diagonal!r}")
        self.diagonal = diagonal
        self.restarts = check_positive("restarts", restarts, integer=True, inclusive=True)
        self.incpopsize = float(check_positive("incpopsize", incpopsize, minimum=1, inclusive=True))
        if not isinstance(bipop, bool):
            raise TypeError(f"bipop must be True or False, got {bipop!r}")
        self.bipop = bipop
        if not (isinstance(surrogate, bool) or surrogate == "adaptive"):
            raise TypeError(f"surrogate must be True, False or 'adaptive', got {surrogate!r}")
        self.surrogate = surrogate
        if not isinstance(model_step, bool):
            raise TypeError(f"model_step must be True or False, got {model_step!r}")
        self.model_step = model_step
        self.model_fit = check_model_fit(model_fit)
        if options is None:
            options = {}
        if not isinstance(options, dict):
            raise TypeError(f"options must be a dict of pycma options, got {options!r}")
        managed = sorted(_MANAGED_OPTIONS.intersection(options))
        if managed:
            raise ValueError(
                f"options {managed} are set by the cmaes estimator itself; use its arguments "
                "sigma, population, diagonal (the generator is seeded from the run's seed)"
            )
        if "restarts" in options or "noise_handling" in options:
            raise ValueError("options: use the restarts argument (pycma's restarts are fmin's)")
        import cma

        unknown = sorted(set(options) - set(cma.CMAOptions()))
        if unknown:
            raise ValueError(f"options {unknown} are not pycma options (see cma.CMAOptions())")
        self.options = dict(options)
        # points evaluated before the first step (reuse), kept across _reset: a resume
        # before the first step rebuilds the same first model
        self._prior: tuple[np.ndarray, np.ndarray] | None = None
        self._reset()

    def _reset(self) -> None:
        self._es: Any = None  # the live cma.CMAEvolutionStrategy
        self._rng: np.random.Generator | None = None
        self._x0: np.ndarray | None = None
        self._dim = 0
        self._seed = 0
        self._popsize0 = 0.0  # the first run's evaluated popsize option (λ₀)
        self._restarts_done = 0
        self._asked: list | None = None
        # the best solution of the finished runs, and BIPOP's budget accounting
        self._best_f = math.inf
        self._best_x: np.ndarray | None = None
        self._maxiter0 = 0.0
        self._budget = {"small": 0.0, "large": 0.0, "small_runs": 0}
        self._run = {
            "popsize": 0.0,
            "maxiter": 0.0,
            "sigma": 0.0,
            "kind": "small",
        }
        # whether the current run screens with the model ("adaptive" may end it at a restart)
        self._model_on = bool(self.surrogate)
        # lq-CMA-ES: the run's screening (pycma's model, the open generation, the run's best)
        self._screen: LQScreen | None = None
        self._stepped = False  # whether this step moved the mean to the model's optimum

    @property
    def reports_best(self) -> bool:  # type: ignore[override]
        """With restarts the result is ``cma.fmin2``'s: the best evaluated point of all runs
        when it beats the final parameters (the loop compares their losses)."""
        return self.restarts > 0

    @property
    def center_every(self) -> bool | int:  # type: ignore[override]
        """The loop's default ``evaluate_center``: every :data:`CENTER_EVERY`-th step, but
        never with a surrogate, whose steps evaluate a handful of candidates each."""
        return False if self.surrogate else CENTER_EVERY

    # -- pycma -----------------------------------------------------------------------------
    def setup(self, objective: Objective, x0: Tensor) -> None:
        super().setup(objective, x0)
        self._reset()
        self._dim = int(x0.numel())
        # the loop's bounds go to pycma's own boundary handling (its BoundTransform unless
        # options choose another BoundaryHandler) and integer coordinates to integer_variables
        self._box = objective if isinstance(objective, BoxObjective) else None

    def uses_diagonal(self, dim: int) -> bool:
        """Whether a ``dim``-parameter problem runs sep-CMA-ES."""
        return dim > DIAGONAL_ABOVE if self.diagonal == "auto" else bool(self.diagonal)

    def pycma_options(self, dim: int) -> dict:
        """The options of the first ``cma.CMAEvolutionStrategy`` (all but ``randn``)."""
        opts = dict(self.options)
        opts.update(
            seed=math.nan,  # with a numeric seed pycma would reseed numpy's global RNG
            verbose=-9,
            verb_disp=0,
            verb_log=0,
            verb_plot=0,
            # pycma would otherwise look for ./cma_signals.in every generation and apply
            # (and evaluate) the options written in it
            signals_filename=None,
            CMA_diagonal=self.uses_diagonal(dim),
        )
        # plateaus are handled in tell() (flat generations never end a run)
        opts.setdefault("tolflatfitness", math.inf)
        if self.population is not None:
            opts["popsize"] = self.population
        box = getattr(self, "_box", None)
        if box is not None and "bounds" not in self.options:
            opts["bounds"] = [box.lower.tolist(), box.upper.tolist()]
            if box.integer.numel() and "integer_variables" not in self.options:
                opts["integer_variables"] = box.integer.tolist()
        return opts

    def _randn(self, lam: int, dim: int) -> np.ndarray:
        """pycma's ``randn(λ, D)`` drawn from this estimator's own generator."""
        return self._rng.standard_normal((lam, dim))

    def _new_strategy(self, restart: int) -> Any:
        """A fresh pycma strategy at x0 for run ``restart`` (0: the first run).

        Restarts follow ``cma.fmin2``'s IPOP: the processed options of the previous run
        (evaluated defaults such as ``maxiter`` included) with λ = λ₀·incpopsize^restart,
        λ₀ the first run's evaluated ``popsize`` option (4 + 3 ln D, unrounded, by default).
        """

        sigma = self.sigma
        if restart == 0:
            opts = self.pycma_options(len(self._x0))
        else:
            opts = dict(self._es.opts)
            large = restart - self._budget["small_runs"]
            opts["popsize"] = self._popsize0 * self.incpopsize**large
            if self.bipop:
                b = self._budget
                if b["small"] < max(1.0, b["large"]):  # pycma's fmin: a small run
                    b["small_runs"] += 1
                    large = restart - b["small_runs"]
                    u1, u2 = self._rng.uniform(size=2)
                    sigma = self.sigma * 0.01 ** float(u1)  # a float: the checkpoint's
                    opts["popsize"] = int(self._popsize0 * (self.incpopsize**large) ** (u2**2))
                    opts["maxiter"] = min(self._maxiter0, 0.5 * b["large"] / opts["popsize"])
                    self._run["kind"] = "small"
                else:
                    opts["maxiter"] = self._maxiter0
                    self._run["kind"] = "large"
        # fmin_lq_surr2: a fresh model for each run
        self._screen = LQScreen(self.model_step, self.model_fit) if self._model_on else None
        return self._strategy(opts, sigma, first=restart == 0)

    def _strategy(self, opts: dict, sigma: float, first: bool = False) -> Any:
        import cma

        opts = dict(opts)
        opts["randn"] = self._randn
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pycma's notes on option handling
            es = cma.CMAEvolutionStrategy(self._x0, sigma, opts)
        if first:
            self._popsize0 = float(es.opts["popsize"])
            self._maxiter0 = float(es.opts["maxiter"])
        self._run.update(
            popsize=float(es.opts["popsize"]), maxiter=float(es.opts["maxiter"]), sigma=sigma
        )
        return es

    def reuse(self, points: Tensor, losses: Tensor) -> None:
        """With a surrogate, the first run's model starts with these evaluated points
        ``(n, D)`` and losses ``(n,)`` in its archive (the evaluations ``auto``'s noise
        probe made); later runs start fresh models, as ``cma.fmin_lq_surr2``'s do."""
        self._prior = (
            points.detach().to("cpu", torch.float64).numpy().copy(),
            losses.detach().to("cpu", torch.float64).numpy().copy(),
        )

    def _start(self, x: Tensor, seed: int) -> None:
        self._x0 = x.detach().to("cpu", torch.float64).numpy().copy()
        self._seed = int(seed)
        self._rng = np.random.Generator(np.random.PCG64(self._seed))
        self._es = self._new_strategy(0)
        if self._model_on and self._prior is not None:
            self._screen.add_prior(*self._prior)

    @property
    def strategy(self) -> Any:
        """The live ``cma.CMAEvolutionStrategy`` (None before the first step)."""
        return self._es

    # -- ask/tell --------------------------------------------------------------------------
    def _blas(self) -> contextlib.AbstractContextManager:
        """One BLAS thread for pycma's arithmetic up to :data:`ONE_BLAS_THREAD_MAX_DIM`."""
        small = self._dim <= ONE_BLAS_THREAD_MAX_DIM
        return one_blas_thread() if small else contextlib.nullcontext()

    def ask(self, x: Tensor, seed: int) -> Population:
        """λ candidates ``(λ, D)`` from pycma (started at ``x`` with ``seed`` on first use).

        With ``surrogate`` the rows are the generation's next increment ``(n, D)``, in the
        order of the model's predicted losses. After the first step ``x`` is the mean this
        estimator returned; pycma's own mean is authoritative.
        """
        with self._blas():
            return self._ask(x, seed)

    def _ask(self, x: Tensor, seed: int) -> Population:
        if self._es is None:
            self._start(x, seed)
        if self._model_on:
            self._asked = self._screen.next_increment(self._es)
        else:
            self._asked = self._es.ask()
        cand = torch.from_numpy(np.asarray(self._asked)).to(dtype=x.dtype, device=x.device)
        return ExplicitPopulation(cand)

    def tell(self, x: Tensor, population: Population, losses: Tensor) -> Estimate:
        """Hand the ``(λ,)`` losses to pycma; the new mean ``(D,)`` is the estimate's ``x``.

        With ``surrogate`` a step that leaves the generation open (the model's ranking does
        not yet agree with the true one) returns the unchanged mean.
        """
        with self._blas():
            return self._tell(x, population, losses)

    def _tell(self, x: Tensor, population: Population, losses: Tensor) -> Estimate:
        if self._asked is None or len(self._asked) != len(losses):
            raise RuntimeError("cmaes: tell() must follow ask() with one loss per candidate")
        values = _fill_failed(losses)
        self._stepped = False
        if self._model_on:
            self._asked = None
            told, self._stepped = self._screen.tell(self._es, values)
            if not told:
                return Estimate(x=torch.from_numpy(self._reported_x()), extra=self._extra())
        else:
            self._es.tell(self._asked, values)
            self._asked = None
        es = self._es
        extra = self._extra()
        stop = {k: plain_reason(v) for k, v in es.stop().items()}
        if stop and min(values) == max(values) and _FLAT_CRITERIA.issuperset(stop):
            stop = {}  # a plateau: pycma widens σ on flat fitness; search on
        if stop:
            final = "ftarget" in stop or "maxfevals" in stop  # as in cma.fmin2
            if self._large_restarts() < self.restarts and not final:
                self._budget[self._run["kind"]] += es.countevals  # BIPOP's accounting
                f, xb = self._run_best()
                if f is not None and f < self._best_f:
                    self._best_f, self._best_x = float(f), np.array(xb, float)
                self._restarts_done += 1
                self._model_on = self._model_on and self._model_earned()
                self._es = self._new_strategy(self._restarts_done)
                stop = {}
        return Estimate(x=torch.from_numpy(self._reported_x()), stop=stop, extra=extra)

    def _extra(self) -> dict:
        es = self._es
        return (
            {
                "sigma": float(es.sigma),
                "condition": _condition_number(es),
                "popsize": float(es.popsize),
                "restarts": float(self._restarts_done),
            }
            | ({"surrogate": float(self._model_on)} if self.surrogate == "adaptive" else {})
            | ({"model_step": float(self._stepped)} if self.surrogate and self.model_step else {})
        )

    def _large_restarts(self) -> int:
        """The restarts that count against ``restarts``: all of IPOP's; BIPOP's large runs
        only, as in ``cma.fmin2`` (its small-population runs are interleaved on top)."""
        return self._restarts_done - int(self._budget["small_runs"])

    def _model_earned(self) -> bool:
        """Whether the finished run keeps the model for the next: always unless
        ``surrogate="adaptive"``, where the model must have been trusted (a generation told
        with fewer than λ evaluations) in at least :data:`MODEL_KEEP_FRACTION` of the run's
        told generations."""
        if self.surrogate != "adaptive":
            return True
        told, trusted = self._screen.told, self._screen.trusted
        return told > 0 and trusted >= MODEL_KEEP_FRACTION * told

    def _run_best(self) -> tuple[float | None, Any]:
        """The current run's best true loss and its point (a surrogate's model values in
        pycma's ``best`` are not losses)."""
        if self._model_on:
            f = self._screen.best_f
            return (None, None) if math.isinf(f) else (f, self._screen.best_x)
        return self._es.best.f, self._es.best.x

    def _reported_x(self) -> np.ndarray:
        """The best run's parameters: the current mean while the current run is best."""
        current, _ = self._run_best()
        if self._best_x is not None and (current is None or self._best_f < current):
            return self._best_x.copy()  # an earlier run found better: report its solution
        return _mean_phenotype(self._es)

    # -- checkpoints -----------------------------------------------------------------------
    def state_dict(self) -> dict:
        """The strategy as tensors and plain values (``torch.load(weights_only=True)``-safe).

        Holds the run's x0, seed, restart count, the generator state, and every plain
        attribute of pycma's strategy and of its state-carrying parts (sampler with C, B, D;
        step-size adaptation with p_σ; fitness history for the termination criteria; best
        solution): mean, σ, p_c, countiter, countevals, …. Arrays shared between attributes
        are stored once and shared again on load.
        """
        if self._es is None:
            return {"started": False}
        bitgen = self._rng.bit_generator.state
        return {
            "started": True,
            "x0": torch.from_numpy(self._x0.copy()),
            "seed": self._seed,
            "restarts_done": self._restarts_done,
            "model_on": self._model_on,
            "best_f": self._best_f,
            "best_x": None if self._best_x is None else torch.from_numpy(self._best_x.copy()),
            "budget": dict(self._budget),
            "run": dict(self._run),
            "popsize0": self._popsize0,
            "maxiter0": self._maxiter0,
            "rng": {
                "state": str(bitgen["state"]["state"]),  # 128-bit ints as decimal strings
                "inc": str(bitgen["state"]["inc"]),
                "has_uint32": int(bitgen["has_uint32"]),
                "uinteger": int(bitgen["uinteger"]),
            },
            "pycma": dump_strategy(self._es),
            "surrogate": None if self._screen is None else self._screen.state_dict(self._es),
        }

    def load_state_dict(self, state: dict) -> None:
        """Rebuild the strategy of :meth:`state_dict` exactly (no code is unpickled)."""
        self._reset()
        if not state.get("started", False):
            return
        self._x0 = state["x0"].numpy().astype(np.float64).copy()
        self._dim = len(self._x0)
        self._seed = int(state["seed"])
        self._rng = np.random.Generator(np.random.PCG64(self._seed))
        # the first run's options, then the current run's popsize, maxiter and σ₀
        first = self._strategy(self.pycma_options(self._dim), self.sigma, first=True)
        run = state["run"]
        opts = dict(first.opts)
        if int(state["restarts_done"]) > 0:
            opts.update(popsize=run["popsize"], maxiter=run["maxiter"])
        self._es = self._strategy(opts, float(run["sigma"]))
        self._run = {**self._run, **{k: v for k, v in run.items() if k in self._run}}
        self._budget = dict(state["budget"])
        self._popsize0, self._maxiter0 = float(state["popsize0"]), float(state["maxiter0"])
        self._best_f = float(state["best_f"])
        best = state["best_x"]
        self._best_x = None if best is None else best.numpy().astype(np.float64).copy()
        self._restarts_done = int(state["restarts_done"])
        load_strategy(self._es, state["pycma"])
        self._model_on = bool(state.get("model_on", self.surrogate))
        if self._model_on:
            self._screen = LQScreen(self.model_step, self.model_fit)
            screen = state.get("surrogate")
            if screen is not None:
                # an older checkpoint kept the run's best loss and counts under "run"
                older = {k: run[k] for k in ("best_f", "told", "trusted") if k in run}
                self._screen.load_state_dict({**older, **screen}, self._es)
        rng = state["rng"]
        self._rng.bit_generator.state = {
            "bit_generator": "PCG64",
            "state": {"state": int(rng["state"]), "inc": int(rng["inc"])},
            "has_uint32": int(rng["has_uint32"]),
            "uinteger": int(rng["uinteger"]),
        }


# -- helpers -------------------------------------------------------------------------------
def _fill_failed(losses: Tensor) -> list[float]:
    """Losses for pycma; NaN/Inf (failed candidates) become worse than every finite loss.

    The weights module's rule for rank-based weights: failed candidates rank last. A finite
    stand-in (the worst finite loss plus the spread plus one) keeps pycma's termination
    criteria, which take differences of losses, finite.
    """
    values = losses.detach().to("cpu", torch.float64).numpy()
    finite = np.isfinite(values)
    if not finite.all():
        lo, hi = float(values[finite].min()), float(values[finite].max())
        values = np.where(finite, values, hi + (hi - lo) + 1.0)
    return values.tolist()


def _mean_phenotype(es: Any) -> np.ndarray:
    """The distribution mean ``(D,)`` in the objective's coordinates (``xfavorite``).

    With bounds, pycma's mean lives in its genotype space: its ``BoundTransform`` maps a
    genotype onto the box through a periodic reflection, so the raw mean may lie outside
    the box or beyond the opposite face; clipping that raw mean would report the wrong
    bound. The phenotype is what pycma itself reports as ``result.xfavorite``.
    """
    pheno = es.gp.pheno(es.mean, copy=True, into_bounds=es.boundary_handler.repair)
    return np.array(pheno, dtype=np.float64)


def _condition_number(es: Any) -> float:
    """Condition number of the covariance: the sampler's C times the diagonal scaling's.

    Exact in both of the standard modes (full C with no diagonal decoding; sep-CMA with a
    constant sampler), an upper bound when both adapt.
    """
    try:
        cond = float(es.sm.condition_number)
        if not es.sigma_vec.is_identity:
            cond *= float(es.sigma_vec.condition_number)
        return cond
    except (AttributeError, NotImplementedError, ValueError, AssertionError):
        return math.nan
