"""lq-CMA-ES's screening of a generation, one increment of evaluations per step, and the
model's step of the mean.

lq-CMA-ES (Hansen, 2019, "A global surrogate assisted CMA-ES", GECCO; ``cma.fmin_lq_surr2``):
pycma's linear-quadratic model (``cma.fitness_models.LQModel``) of the evaluated points ranks
each generation of λ candidates; they are evaluated in model order, in increments of 1, 2,
3, 5, 8, … (``SurrogatePopulation``'s ``number``, grown by half while the model's Kendall τ
on the evaluated ones is below its threshold), until the model ranks them right. The
generation is then told to CMA-ES with model values for the unevaluated rest, shifted so that
the lowest is the lowest true loss, and the model's optimum is injected into the next one.
pycma runs that loop one evaluation at a time; :class:`LQScreen` runs it one increment per
step of zoopt's loop (one evaluator call each), with pycma's points and model bits.

The model's fit (``model_fit``): pycma solves its weighted least squares with a
pseudo-inverse, an SVD after every increment, the largest part of a generation's cost at
D = 10 and 20 (``benchmarks/bench_surrogate.py``'s ``model`` column). ``"qr"`` solves the
same least squares by a Householder QR where the archive determines it well
(:func:`qr_least_squares`), and hands the rest (the archive of a converged run spans many
scales) to pycma's pseudo-inverse, whose cutoff then decides; ``"pinv"`` keeps pycma's fit,
and so ``cma.fmin_lq_surr2``'s bits.

The model's step (``model_step``): after a generation the model ranked right before all λ
were evaluated, and whose evaluated points it predicted (before they joined it) to within
:data:`MODEL_STEP_MAX_ERROR` of its losses' spread, a model with a positive definite Hessian
moves the mean to its optimum x* = −H⁻¹b/2, at most :data:`MODEL_STEP_MAX_NORM`·√D away in
the strategy's Mahalanobis norm. lq-CMA-ES only injects x*, and its mean then follows at
CMA-ES's pace.
"""

from __future__ import annotations

import functools
import math
from collections import defaultdict
from typing import Any

import numpy as np
import torch

from zoopt.estimators.pycma_state import Unplain, from_plain, to_plain
from zoopt.metamodel import upper_pairs

__all__ = [
    "MODEL_FITS",
    "MODEL_STEP_MAX_ERROR",
    "MODEL_STEP_MAX_NORM",
    "MODEL_STEP_MIN_DIM",
    "QR_MIN_COEFFICIENTS",
    "QR_MIN_DIAGONAL_RATIO",
    "QR_RETRY_AFTER",
    "LQScreen",
    "check_model_fit",
    "qr_least_squares",
]

#: ``model_step``: the longest move of the mean to the model's optimum, in units of √D of the
#: strategy's Mahalanobis norm (a draw of the generation lies about √D away)
MODEL_STEP_MAX_NORM = 2.0

#: ``model_step``: the step is taken only where the model predicted the generation's
#: evaluated points, before they joined it, to within this fraction of the spread of its
#: archive's losses (a model that is the function, to that precision, where it was asked)
MODEL_STEP_MAX_ERROR = 1e-2

#: ``model_step``: the fewest parameters for which the step is taken. At D = 2 a run whose mean
#: sat on an exact model's optimum no longer ended by pycma's tolerances (σ grew while C
#: shrank), so restarts never came; D = 3 and 4 were not measured on bbob
MODEL_STEP_MIN_DIM = 5

#: ``model_fit="qr"``: a fit whose triangular factor (of the column-scaled weighted features)
#: has a diagonal entry below this fraction of its largest is left to pycma's pseudo-inverse,
#: whose cutoff drops the directions the archive does not determine
QR_MIN_DIAGONAL_RATIO = 1e-10

#: ``model_fit="qr"``: after the QR declines a fit, this many fits go to the pseudo-inverse
#: directly (an archive that spans many scales keeps doing so for a while; a declined QR
#: is time spent on top of the SVD)
QR_RETRY_AFTER = 8

#: ``model_fit="qr"``: models of fewer coefficients (D ≤ 3) are fitted by the pseudo-inverse,
#: whose SVD is then as cheap as the QR
QR_MIN_COEFFICIENTS = 15

#: the ways of fitting the model's weighted least squares (``model_fit``)
MODEL_FITS = ("qr", "pinv")


def check_model_fit(model_fit: object) -> str:
    """``model_fit``, one of :data:`MODEL_FITS`, else a ValueError naming it."""
    if model_fit not in MODEL_FITS:
        raise ValueError(f"model_fit must be one of {MODEL_FITS}, got {model_fit!r}")
    return model_fit


class LQScreen:
    """One CMA-ES run's lq-CMA-ES screening: pycma's ``SurrogatePopulation`` (its model and
    settings), the generation being screened, and the run's best true loss.

    Args:
        model_step: take the model's step after a generation it predicted well.
        model_fit: ``"qr"``: the model's weighted least squares by a Householder QR of the
            column-scaled features (:func:`qr_least_squares`), pycma's pseudo-inverse where
            that is ill-conditioned; ``"pinv"``: pycma's pseudo-inverse (an SVD) always,
            ``cma.fmin_lq_surr2``'s bits.

    Use: :meth:`next_increment` gives the candidates to evaluate next (pycma's own arrays,
    in model order); :meth:`tell` takes their losses and tells the generation to the
    strategy once the model ranks it right.
    """

    def __init__(self, model_step: bool, model_fit: str = "qr"):
        from cma import fitness_models

        model = _qr_model_class()() if check_model_fit(model_fit) == "qr" else None
        self.surrogate = fitness_models.SurrogatePopulation(None, model=model)
        self.model_step = model_step
        # the generation being screened: pycma's candidates X, their losses f, which are
        # evaluated, how many to evaluate (number), their features Z and the model's error
        self.generation: dict | None = None
        self.increment: list[int] = []  # the indices in the generation of the last increment
        self.predicted: np.ndarray | None = None  # the model's values there, before its losses
        self.best_f = math.inf  # the run's best true loss and its point
        self.best_x: np.ndarray | None = None
        self.told = 0  # generations told, and told before all λ were evaluated
        self.trusted = 0

    @property
    def model(self) -> Any:
        """pycma's ``LQModel``: the archive of evaluated points and its fit."""
        return self.surrogate.model

    def add_prior(self, points: np.ndarray, losses: np.ndarray) -> None:
        """Put evaluated points ``(n, D)`` with finite losses ``(n,)`` into the archive."""
        finite = np.isfinite(losses)
        if finite.any():
            self.model.add_data(points[finite], losses[finite])

    def next_increment(self, es: Any) -> list:
        """pycma's candidates to evaluate next: the unevaluated ones in model order until
        ``number`` of the generation are evaluated (``EvaluationManager.eval_sequence``);
        opens a generation from ``es.ask()`` when none is open."""
        if self.generation is None:
            self._open_generation(es.ask())
        gen, model = self.generation, self.model
        predicted = _model_values(model, gen) if model.size > 1 else None
        order = range(len(gen["X"])) if predicted is None else np.argsort(predicted)
        done = sum(gen["evaluated"])
        todo = [int(i) for i in order if not gen["evaluated"][i]]
        self.increment = todo[: max(0, gen["number"] - done)]
        # the model's values of the increment, read by the model's step once they are losses
        self.predicted = None if predicted is None else predicted[self.increment]
        return [gen["X"][i] for i in self.increment]

    def _open_generation(self, X: list) -> None:
        model, settings = self.model, self.surrogate.settings
        # a larger population (a restart) resets the model, as pycma's surrogate does
        if settings.model_max_size_factor * len(X) > model.settings.max_absolute_size:
            if model.settings.max_absolute_size:
                model.reset()
            model.settings.max_absolute_size = settings.model_max_size_factor * len(X)
        first = len(X) * settings.min_evals_percent / 100
        first = int(1 + max(first, 3 / model.settings.truncation_ratio - model.size))
        n = len(X)
        self.generation = {
            "X": X,
            "f": [math.nan] * n,
            "evaluated": [False] * n,
            "number": first,
            "model_error": 0.0,
            "Z": _expand(model, X),
        }

    def tell(self, es: Any, values: list[float]) -> tuple[bool, bool]:
        """Add the increment's losses to the model; once the model ranks the evaluated ones
        right, tell the generation to ``es`` (and maybe step its mean, then inject the
        model's optimum). Returns (whether the generation was told, whether the mean took
        the model's step)."""
        gen, model, settings = self.generation, self.model, self.surrogate.settings
        if self.model_step:  # how well the model predicted these points before seeing them
            gen["model_error"] = max(
                gen["model_error"], _prediction_error(model, self.predicted, values)
            )
        for i, f in zip(self.increment, values, strict=True):
            gen["f"][i], gen["evaluated"][i] = f, True
            model.add_data_row(gen["X"][i], f)
            if f < self.best_f:
                self.best_f, self.best_x = f, np.array(gen["X"][i], float)
        self.surrogate.evaluations += len(values)
        model.sort(gen["number"])
        n, done = len(gen["X"]), sum(gen["evaluated"])
        tau = _kendall(model, settings.n_for_tau(n, done))
        threshold = settings.tau_truth_threshold
        threshold -= settings.tau_truth_threshold_correction * done / n
        if done < n and tau < threshold:
            gen["number"] += int(math.ceil(gen["number"] / 2))
            return False, False
        model.sort(settings.model_sort_globally or done)
        model.adapt_max_relative_size(tau)
        self.told += 1
        self.trusted += done < n
        if done == n and settings.return_true_fitnesses:
            F = list(gen["f"])
        else:  # model values, shifted so that the lowest is the lowest true loss
            F = _model_values(model, gen)
            F = (F + (np.nanmin(gen["f"]) - np.nanmin(F))).tolist()
        es.tell(gen["X"], F)
        es.countevals = self.surrogate.evaluations  # true evaluations only
        stepped = False
        if self.model_step and done < n and gen["model_error"] <= MODEL_STEP_MAX_ERROR:
            stepped = self.step_to_model(es)
        # pycma keeps an injected point as its direction from the mean: after the model's
        # step the optimum is drawn at the new mean itself (evaluated first, in model order)
        es.inject([model.xopt])
        self.generation = None
        return True, stepped

    def step_to_model(self, es: Any) -> bool:
        """Move the mean of ``es`` to the model's optimum when its Hessian is positive
        definite (see the module), the move capped at :data:`MODEL_STEP_MAX_NORM`·√D
        (Mahalanobis); whether it moved."""
        model, dim = self.model, len(es.mean)
        if dim < MODEL_STEP_MIN_DIM:
            return False
        if not model.types or not es.gp.isidentity or es.opts["integer_variables"]:
            return False  # a linear model has no optimum; a transformed space is left to pycma
        if es.boundary_handler is not None and es.boundary_handler.has_bounds():
            return False
        hessian = np.asarray(model.hessian, dtype=float)
        if not np.all(np.isfinite(hessian)):
            return False
        if np.linalg.eigvalsh((hessian + hessian.T) / 2)[0] <= 0:
            return False
        step = np.asarray(model.xopt, dtype=float) - es.mean
        if not np.all(np.isfinite(step)):
            return False
        norm = _mahalanobis_norm(es, step)
        cap = MODEL_STEP_MAX_NORM * math.sqrt(dim)
        es.mean = es.mean + (step * (cap / norm) if norm > cap else step)
        return True

    # -- checkpoints -----------------------------------------------------------------------
    def state_dict(self, es: Any) -> dict:
        """The model's archive and fit, the run's best and counts, and the open generation
        (with pycma's genotypes of ``es``, for its tell), as tensors and plain values."""
        model = self.model
        seen: dict[int, str] = {}
        aliases: dict[str, str] = {}
        attrs = {}
        for name, value in vars(model).items():
            try:
                attrs[name] = to_plain(value, name, seen, aliases)
            except Unplain:
                continue
        for name in aliases:
            attrs.pop(name, None)
        state = {
            "model": attrs,
            "aliases": aliases,
            "type_updates": [[int(k), list(v)] for k, v in model.type_updates.items()],
            "tau": to_plain(vars(model.tau), "tau", {}, {}),
            "max_absolute_size": model.settings.max_absolute_size,
            "evaluations": self.surrogate.evaluations,
            "best_f": self.best_f,
            "best_x": None if self.best_x is None else torch.from_numpy(self.best_x.copy()),
            "told": self.told,
            "trusted": self.trusted,
            "generation": None,
        }
        gen = self.generation
        if gen is not None:
            genotypes = [es.sent_solutions[x]["geno"] for x in gen["X"]]
            # the model's optimum injected into this generation, as pycma marked it
            marks = es._injected_solutions_archive
            injected = [
                [i, {k: int(v) for k, v in marks[g].items()}]
                for i, g in enumerate(genotypes)
                if g in marks
            ]
            state["generation"] = {
                "X": torch.from_numpy(np.array(gen["X"], dtype=np.float64)),
                "geno": torch.from_numpy(np.array(genotypes, dtype=np.float64)),
                "f": list(gen["f"]),
                "evaluated": list(gen["evaluated"]),
                "number": int(gen["number"]),
                "injected": injected,
                "model_error": float(gen["model_error"]),
            }
        return state

    def load_state_dict(self, state: dict, es: Any) -> None:
        """Restore :meth:`state_dict`; the open generation's candidates are registered with
        ``es`` (the strategy already restored) as pycma's own."""
        model = self.model
        for name, value in state["model"].items():
            setattr(model, name, from_plain(value))
        for name, target in state["aliases"].items():
            setattr(model, name, getattr(model, target))
        model.type_updates = defaultdict(list, {k: list(v) for k, v in state["type_updates"]})
        for name, value in from_plain(state["tau"]).items():
            setattr(model.tau, name, value)
        model.settings.max_absolute_size = state["max_absolute_size"]
        self.surrogate.evaluations = state["evaluations"]
        self.best_f = float(state.get("best_f", math.inf))
        best = state["best_x"]
        self.best_x = None if best is None else best.numpy().astype(np.float64).copy()
        self.told, self.trusted = int(state.get("told", 0)), int(state.get("trusted", 0))
        gen = state["generation"]
        if gen is None:
            return
        X = [x.copy() for x in gen["X"].numpy()]
        genotypes = [g.copy() for g in gen["geno"].numpy()]
        for x, g in zip(X, genotypes, strict=True):
            es.sent_solutions.insert(x, geno=g, iteration=es.countiter)
        for i, mark in gen["injected"]:
            es._injected_solutions_archive[genotypes[i]] = dict(mark)
        self.generation = {
            "X": X,
            "f": [float(f) for f in gen["f"]],
            "evaluated": [bool(e) for e in gen["evaluated"]],
            "number": int(gen["number"]),
            # a checkpoint from before model_step: no step for this generation
            "model_error": float(gen.get("model_error", math.inf)),
            "Z": _expand(model, X),
        }


def _mahalanobis_norm(es: Any, dx: np.ndarray) -> float:
    """‖dx‖ in the metric of the sample distribution σ²·diag(s)·C·diag(s) (pycma's
    ``mahalanobis_norm``), from C itself: pycma's own call would bring its lazy
    eigendecomposition forward, and a resumed run, which makes it later, would then draw
    other bits."""
    d = np.asarray(dx, dtype=float) / es.sigma_vec.scaling / es.sigma
    C = getattr(es.sm, "C", None)  # None: a constant sampler (sep-CMA scales by sigma_vec)
    if C is None:
        return float(np.sqrt(d @ d))
    C = np.asarray(C, dtype=float)
    if C.ndim == 1:
        return float(np.sqrt(np.sum(d * d / C)))
    return float(np.sqrt(d @ np.linalg.solve(C, d)))


# -- the model's fit ---------------------------------------------------------------------------
def qr_least_squares(a: np.ndarray, y: np.ndarray) -> np.ndarray | None:
    """argmin_c ‖a c − y‖ for ``a`` ``(n, m)``, n ≥ m, by a Householder QR of the
    column-scaled ``[a | y]`` (the scaling changes the columns' units, not the solution),
    or None where the triangular factor's diagonal spans more than
    1/:data:`QR_MIN_DIAGONAL_RATIO` (or a column is zero): there the pseudo-inverse's
    cutoff, not a solve, decides the answer. ``y`` ``(n,)``; returns ``(m,)``.

    The same least squares as pycma's ``pinv(aᵀ)ᵀ y`` up to rounding where it returns, in
    a fraction of the SVD's time (``benchmarks/bench_surrogate.py`` times both fits).
    """
    n, m = a.shape
    if n < m:
        return None
    norms = np.sqrt(np.einsum("ij,ij->j", a, a))
    if not np.all(norms > 0) or not np.all(np.isfinite(norms)):
        return None
    r = np.linalg.qr(np.column_stack([a / norms, y]), mode="r")
    d = np.abs(np.diagonal(r)[:m])
    if not d.min() >= QR_MIN_DIAGONAL_RATIO * d.max():
        return None
    return np.linalg.solve(r[:m, :m], r[:m, m]) / norms  # r: upper triangular


@functools.cache
def _qr_model_class() -> type:
    """pycma's ``LQModel`` with its coefficients from :func:`qr_least_squares` (the
    pseudo-inverse where that declines, for the next :data:`QR_RETRY_AFTER` fits after it
    declined, and below :data:`QR_MIN_COEFFICIENTS`); everything else is pycma's. The count
    of fits left to the pseudo-inverse is an attribute of the model, so it rides in the
    checkpoint with the rest of the model."""
    from cma import fitness_models

    class QRLQModel(fitness_models.LQModel):
        @property
        def coefficients(self) -> np.ndarray:
            if self._coefficients_count < self.count:
                self._coefficients_count = self.count
                a, y = self.weighted_array(self.Z), self.weighted_array(self.Y)  # (m, n), (n,)
                c, skip = None, int(getattr(self, "_qr_skip", 0))
                if skip > 0:
                    self._qr_skip = skip - 1
                elif a.shape[0] >= QR_MIN_COEFFICIENTS:
                    c = qr_least_squares(a.T, y)
                    if c is None:
                        self._qr_skip = QR_RETRY_AFTER
                self._coefficients = np.dot(self.pinv, y) if c is None else c
            return self._coefficients

    return QRLQModel


# -- pycma's model arithmetic, vectorised, the same bits ------------------------------------
def _prediction_error(model: Any, predicted: np.ndarray | None, values: list[float]) -> float:
    """The largest |model value − loss| of an increment (``predicted`` by the model before
    its points joined it), relative to the spread of the model's archive; inf while the
    model is linear or has no spread."""
    if predicted is None or not model.types or model.size < 2:
        return math.inf
    spread = float(np.ptp(model.F))
    error = float(np.max(np.abs(predicted - np.asarray(values, dtype=float))))
    return error / spread if spread > 0 and math.isfinite(error) else math.inf


def _expand(model: Any, X: list) -> np.ndarray:
    """The full quadratic features ``(n, 1 + 2D + D(D−1)/2)`` of the rows of ``X``, in the
    column order of pycma's ``LQModel.expand_x``: [1, x, x², xᵢxⱼ (i < j)].

    The linear and the diagonal model take a prefix of these columns, so a generation's
    candidates are expanded once, whatever the model's type becomes while it is screened.
    Each entry is the single product pycma computes, so the features are its bits."""
    x = np.asarray(X, dtype=np.float64) + model._xoffset
    i, j = upper_pairs(x.shape[1])
    return np.concatenate([np.ones((x.shape[0], 1)), x, np.square(x), x[:, i] * x[:, j]], 1)


def _model_values(model: Any, gen: dict) -> np.ndarray:
    """``LQModel.eval`` of the generation's candidates ``(λ,)`` from their cached features.

    One ``np.dot`` per row, as pycma's ``eval`` takes it: a matrix-vector product sums in
    another order and may differ in the last bit, which could reorder near-ties."""
    if model.count <= 0:
        return np.zeros(len(gen["X"]))
    coef = model.coefficients
    Z = gen["Z"][:, : coef.size]
    return np.array([np.dot(coef, z) for z in Z])


def _kendall(model: Any, number: int) -> float:
    """``LQModel.kendall(number)``: Kendall's τ-b between the model's latest ``number`` true
    losses and its values there, with the same side effects on ``model.tau``.

    pycma calls ``scipy.stats.kendalltau``, whose argument checks cost more than the count
    itself at these sizes (n ≤ λ); :func:`_tau_b` is its formula on the same counts."""
    number = min(number, model.size)
    tau = model.tau
    tau.n, tau.count = number, model.count
    if number < 3:
        tau.result = None
        tau.tau, tau.pvalue = 0, 0
        return 0
    coef = model.coefficients
    values = np.array([np.dot(coef, model.Z[i]) for i in range(number)])
    tau.tau = _tau_b(np.asarray(model.Y[:number], dtype=np.float64), values)
    return tau.tau


def _tau_b(x: np.ndarray, y: np.ndarray) -> float:
    """Kendall's τ-b of ``(n,)`` vectors as ``scipy.stats.kendalltau`` computes it
    (concordant − discordant pairs over √(pairs untied in x)·√(pairs untied in y), clipped
    to [−1, 1]), and as pycma's ``kendall_tau`` reports it: 0 where scipy gives NaN (a NaN
    input, or all of x or of y tied)."""
    if np.isnan(x).any() or np.isnan(y).any():
        return 0
    n = x.size
    i, j = upper_pairs(n)
    xi, xj, yi, yj = x[i], x[j], y[i], y[j]
    xeq, yeq = xi == xj, yi == yj
    dis = int(np.count_nonzero(((xi < xj) & (yi > yj)) | ((xi > xj) & (yi < yj))))
    xtie, ytie, ntie = (int(np.count_nonzero(e)) for e in (xeq, yeq, xeq & yeq))
    tot = n * (n - 1) // 2
    if xtie == tot or ytie == tot:
        return 0
    tau = (tot - xtie - ytie + ntie - 2 * dis) / np.sqrt(tot - xtie) / np.sqrt(tot - ytie)
    return np.minimum(1.0, max(-1.0, tau))
