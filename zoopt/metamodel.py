"""A quadratic metamodel of the loss, fitted to an archive of evaluated points.

After lq-CMA-ES (Hansen 2019, "A Global Surrogate Assisted CMA-ES", GECCO): the model is
linear-quadratic in the proposal's own coordinates u = S⁻¹(x − θ)/σ,

    m(u) = c + bᵀu + ½ uᵀHu,

fitted by least squares to the latest evaluated points, with as many terms as the data carry:
linear (D + 1 coefficients) until the archive holds 2D + 1 points, then diagonal H (2D + 1),
then full H ((D + 1)(D + 2)/2) once the archive holds that many points and D ≤
:data:`MAX_FULL_DIM`. Each new point is predicted by the model fitted before it was evaluated;
Kendall's τ between those out-of-sample predictions and the true losses of the latest K points
tells whether the model ranks the loss well. When τ ≥ ``tau`` and H is positive definite, the
estimator takes its mean step to the model's minimiser u* = −H⁻¹b (its length capped at
``radius``·√D in u, the region the draws cover) instead of the natural-gradient step;
otherwise it falls back to that step. The proposal's shape adapts from the draws either way.

The archive (points, losses and their out-of-sample predictions) is state: it travels in the
estimator's checkpoint.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
from torch import Tensor

from zoopt.blas_threads import one_blas_thread
from zoopt.checkpoint import check_float_tensors

__all__ = [
    "AUTO_MAX_DIM",
    "MAX_FULL_DIM",
    "QuadraticModel",
    "check_metamodel",
    "fit_quadratic",
    "kendall_tau",
    "make_metamodel",
    "upper_pairs",
]

#: largest D for the full quadratic (its (D+1)(D+2)/2 terms need as many points)
MAX_FULL_DIM = 20


def kendall_tau(a: Tensor | np.ndarray, b: Tensor | np.ndarray) -> float:
    """Kendall's τ-a between two ``(n,)`` score vectors (concordant − discordant pairs over
    all pairs); 0 for n < 2."""
    return _tau(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))


def _tau(a: np.ndarray, b: np.ndarray) -> float:
    n = a.size
    if n < 2:
        return 0.0
    da = np.sign(a[:, None] - a[None, :])
    db = np.sign(b[:, None] - b[None, :])
    return float((da * db).sum()) / (n * (n - 1))


def _features(u: np.ndarray, kind: str) -> np.ndarray:
    """Design matrix ``(n, p)``: [1, u] (linear), [1, u, u²/2] (diagonal) or
    [1, u, uᵢuⱼ (i < j), u²/2] (full)."""
    ones = np.ones((u.shape[0], 1))
    if kind == "linear":
        return np.concatenate([ones, u], 1)
    sq = 0.5 * u * u
    if kind == "diagonal":
        return np.concatenate([ones, u, sq], 1)
    i, j = upper_pairs(u.shape[1])
    return np.concatenate([ones, u, u[:, i] * u[:, j], sq], 1)


@functools.lru_cache(maxsize=32)
def upper_pairs(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The index pairs ``(i, j)``, i < j < ``n``, in row-major order (``np.triu_indices(n,
    1)``), made once per ``n``: the model's cross terms uᵢuⱼ, in that order."""
    i, j = np.triu_indices(n, 1)
    i.flags.writeable = j.flags.writeable = False  # shared between calls
    return i, j


def terms(dim: int, kind: str) -> int:
    """Number of coefficients of a ``kind`` model in D = ``dim``."""
    if kind == "linear":
        return dim + 1
    if kind == "diagonal":
        return 2 * dim + 1
    return (dim + 1) * (dim + 2) // 2


def model_kind(dim: int, points: int) -> str | None:
    """The richest model the archive's ``points`` carry, or None (too few)."""
    if dim <= MAX_FULL_DIM and points >= terms(dim, "full"):
        return "full"
    if points >= terms(dim, "diagonal"):
        return "diagonal"
    if points >= terms(dim, "linear"):
        return "linear"
    return None


def fit_quadratic(u: Tensor | np.ndarray, y: Tensor | np.ndarray, kind: str) -> tuple:
    """Least-squares ``(c, b (D,), H (D, D))`` of m(u) = c + bᵀu + ½uᵀHu on ``u`` ``(n, D)``
    and ``y`` ``(n,)`` (H = 0 for ``kind="linear"``); tensors in, tensors out."""
    as_tensor = isinstance(u, Tensor)
    un, yn = (np.asarray(u, dtype=np.float64), np.asarray(y, dtype=np.float64))
    c, b, h = _fit(un, yn, kind)
    if as_tensor:
        return c, torch.from_numpy(b), torch.from_numpy(h)
    return c, b, h


def _fit(u: np.ndarray, y: np.ndarray, kind: str) -> tuple[float, np.ndarray, np.ndarray]:
    d = u.shape[1]
    coef = _least_squares(_features(u, kind), y)
    c, b = float(coef[0]), coef[1 : d + 1]
    h = np.zeros((d, d))
    if kind == "diagonal":
        h = np.diag(coef[d + 1 :])
    elif kind == "full":
        i, j = upper_pairs(d)
        off = coef[d + 1 : d + 1 + i.size]
        h[i, j] = off
        h[j, i] = off
        h[np.diag_indices(d)] = coef[d + 1 + i.size :]
    return c, b, h


def _least_squares(a: np.ndarray, y: np.ndarray) -> np.ndarray:
    """argmin ‖a β − y‖ by the normal equations, columns scaled to unit norm, with a small
    ridge where ``a`` is near rank-deficient.

    (LAPACK's gelsy behind ``torch.linalg.lstsq`` may differ in the last bits between calls on
    the same input; this does not, and checkpoints must resume exactly. A 66-term fit costs
    a tenth of a millisecond, a QR four times that.)"""
    norms = np.sqrt((a * a).sum(0))
    norms[norms == 0] = 1.0
    a = a / norms
    gram = a.T @ a
    rhs = a.T @ y
    eye = np.eye(gram.shape[0])
    for ridge in (0.0, 1e-10, 1e-6):  # the smallest ridge that leaves it positive definite
        try:
            np.linalg.cholesky(gram + ridge * eye)
            return np.linalg.solve(gram + ridge * eye, rhs) / norms
        except np.linalg.LinAlgError:
            continue
    # degenerate archive (repeated rows or constant features): the minimum-norm solution
    return (np.linalg.pinv(gram) @ rhs) / norms


def predict(u: Tensor | np.ndarray, model: tuple) -> Tensor | np.ndarray:
    """m(u) for rows ``u`` ``(n, D)``."""
    c, b, h = model
    return c + u @ b + 0.5 * ((u @ h) * u).sum(1)


def _whiten(offsets: np.ndarray, sigma: float, scale: np.ndarray | None) -> np.ndarray:
    """z = S⁻¹ (x − θ)/σ, as :func:`zoopt.proposal.whiten`, for numpy rows."""
    u = offsets / sigma
    if scale is None:
        return u
    return u / scale if scale.ndim == 1 else np.linalg.solve(scale, u.T).T


class QuadraticModel:
    """The archive and the metamodel step of one estimator.

    Args:
        tau: the Kendall τ at or above which the model takes the mean step.
        radius: the cap on the model step's length, in units of √D in u.
        dim: D, when known: a loaded archive must have D coordinates.
    """

    def __init__(self, tau: float = 0.85, radius: float = 2.0, dim: int | None = None):
        self.tau, self.radius, self.dim = tau, radius, dim
        self.archive: dict | None = None  # rows (n, D), losses (n,), predicted (n,)
        self.last_tau = math.nan

    def capacity(self, dim: int, size: int) -> int:
        """Points kept: twice the terms of the richest model, and at least two generations."""
        kind = "full" if dim <= MAX_FULL_DIM else "diagonal"
        return max(2 * terms(dim, kind), 2 * size)

    def observe(
        self,
        x: Tensor,
        sigma: float,
        scale: Tensor | None,
        rows: Tensor,
        losses: Tensor,
        size: int,
    ) -> Tensor | None:
        """Record the new evaluated ``rows`` ``(n, D)`` and ``losses`` ``(n,)`` of a
        generation drawn around ``x`` with σ and shape ``scale``; the model's mean step
        σ·S u* ``(D,)`` when the model ranks well, else None."""
        with one_blas_thread():  # least squares of at most 231 terms
            return self._observe(x, sigma, scale, rows, losses, size)

    def _observe(self, x, sigma, scale, rows, losses, size) -> Tensor | None:
        d = x.numel()
        xn = x.detach().to("cpu", torch.float64).numpy()
        sn = None if scale is None else scale.detach().to("cpu", torch.float64).numpy()
        rows_n = rows.detach().to("cpu", torch.float64).numpy()
        losses_n = losses.detach().to("cpu", torch.float64).numpy()
        finite = np.isfinite(losses_n)
        rows_n, losses_n = rows_n[finite], losses_n[finite]
        arch = self.archive
        if arch is None:
            old_rows, old_losses, old_pred = np.zeros((0, d)), np.zeros(0), np.zeros(0)
        else:
            old_rows, old_losses, old_pred = (
                arch[k].numpy() for k in ("rows", "losses", "predicted")
            )
        # out-of-sample predictions of the new points by the model of the earlier ones
        predicted = np.full(losses_n.shape, np.nan)
        kind = model_kind(d, old_rows.shape[0])
        if kind is not None and rows_n.shape[0]:
            model = _fit(_whiten(old_rows - xn, sigma, sn), old_losses, kind)
            predicted = predict(_whiten(rows_n - xn, sigma, sn), model)
        keep = self.capacity(d, size)
        all_rows = np.concatenate([old_rows, rows_n])[-keep:]
        all_losses = np.concatenate([old_losses, losses_n])[-keep:]
        all_pred = np.concatenate([old_pred, predicted])[-keep:]
        self.archive = {
            "rows": torch.from_numpy(all_rows),
            "losses": torch.from_numpy(all_losses),
            "predicted": torch.from_numpy(all_pred),
        }
        # τ over the latest K points that were predicted
        ok = np.isfinite(all_pred)
        pred, true = all_pred[ok][-size:], all_losses[ok][-size:]
        self.last_tau = _tau(pred, true) if pred.size >= min(size, 5) else math.nan
        if not self.last_tau >= self.tau:
            return None
        kind = model_kind(d, all_rows.shape[0])
        if kind in (None, "linear"):
            return None
        _, b, h = _fit(_whiten(all_rows - xn, sigma, sn), all_losses, kind)
        try:
            np.linalg.cholesky(h)
        except np.linalg.LinAlgError:
            return None  # not convex: no minimiser to step to
        step = -np.linalg.solve(h, b)
        norm = float(np.linalg.norm(step))
        if not math.isfinite(norm):
            return None
        cap = self.radius * math.sqrt(d)
        if norm > cap:
            step = step * (cap / norm)
        if sn is not None:
            step = step * sn if sn.ndim == 1 else sn @ step
        return torch.from_numpy(sigma * step).to(x)

    def state_dict(self) -> dict | None:
        """The archive (None before the first generation)."""
        if self.archive is None:
            return None
        return {k: v.clone() for k, v in self.archive.items()}

    def load_state_dict(self, state: dict | None) -> None:
        """Restore :meth:`state_dict`.

        Raises:
            ValueError: an entry is missing or not an archive of n points: ``rows`` ``(n, D)``,
                ``losses`` and ``predicted`` ``(n,)``, floats (nothing is restored).
        """
        if state is None:
            self.archive = None
            return
        missing = {"rows", "losses", "predicted"} - set(state)
        if missing:
            raise ValueError(f"metamodel state: missing entry {sorted(missing)[0]!r}")
        ndims = {"rows": 2, "losses": 1, "predicted": 1}
        shapes = check_float_tensors(state, ndims, "metamodel state")
        n = shapes["rows"][0]
        if shapes["losses"] != (n,) or shapes["predicted"] != (n,):
            raise ValueError(
                "metamodel state: rows (n, D), losses (n,) and predicted (n,) must hold the "
                f"same points, got {shapes['rows']}, {shapes['losses']}, {shapes['predicted']}"
            )
        if self.dim is not None and shapes["rows"][1] != self.dim:
            raise ValueError(
                f"metamodel state: rows have {shapes['rows'][1]} coordinates, this run's "
                f"parameters {self.dim}"
            )
        self.archive = {k: state[k].clone() for k in ("rows", "losses", "predicted")}


#: largest D at which ``metamodel="auto"`` switches the model on
AUTO_MAX_DIM = MAX_FULL_DIM


def check_metamodel(metamodel: object, owns_mean: bool) -> bool | str:
    """Validate an estimator's ``metamodel`` option: True, False or ``"auto"``."""
    if metamodel != "auto" and not isinstance(metamodel, bool):
        raise TypeError(f"metamodel must be True, False or 'auto', got {metamodel!r}")
    if metamodel is True and not owns_mean:
        raise ValueError(
            "metamodel=True takes the mean step to the model's minimiser: it needs an "
            "estimator that owns its mean (eta_mean set, as snes and xnes do)"
        )
    return metamodel


def make_metamodel(metamodel: bool | str, owns_mean: bool, dim: int) -> QuadraticModel | None:
    """The estimator's model for D = ``dim``, or None: ``"auto"`` is on for an estimator
    that owns its mean and D ≤ :data:`AUTO_MAX_DIM`."""
    if metamodel == "auto":
        metamodel = owns_mean and dim <= AUTO_MAX_DIM
    return QuadraticModel(dim=dim) if metamodel else None


def model_step(
    model: QuadraticModel | None, estimator: object, x: Tensor, population: object, losses: Tensor
) -> Tensor | None:
    """Record a generation in ``model`` (None: no model) and return its mean step, if any.

    ``population`` holds the generation's new rows and ``losses`` their ``(n,)`` losses; the
    proposal is the estimator's before its shape is updated."""
    if model is None:
        return None
    proposal = estimator._proposal
    return model.observe(
        x, proposal.sigma, proposal.scale, population.materialize(), losses, estimator._size
    )


def with_model_step(model: QuadraticModel | None, est: object, x: Tensor, step: Tensor | None):
    """Put the model's mean step into the estimate ``est`` and its τ into the history."""
    if model is None:
        return est
    est.extra["metamodel_tau"] = model.last_tau
    est.extra["metamodel_step"] = float(step is not None)
    if step is not None:
        est.x = x.detach() + step
    return est


def model_state(state: dict, model: QuadraticModel | None) -> dict:
    """``state`` with the archive under ``"metamodel"`` when the model is on."""
    if model is not None:
        state = dict(state, metamodel=model.state_dict())
    return state


def load_model_state(state: dict, model: QuadraticModel | None) -> None:
    """Restore the archive of :func:`model_state`."""
    if model is not None:
        model.load_state_dict(state.get("metamodel"))
