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

import math

import torch
from torch import Tensor

from zoopt.proposal import whiten

__all__ = ["MAX_FULL_DIM", "QuadraticModel", "fit_quadratic", "kendall_tau"]

#: largest D for the full quadratic (its (D+1)(D+2)/2 terms need as many points)
MAX_FULL_DIM = 20


def kendall_tau(a: Tensor, b: Tensor) -> float:
    """Kendall's τ-a between two ``(n,)`` score vectors (concordant − discordant pairs over
    all pairs); 0 for n < 2."""
    n = a.numel()
    if n < 2:
        return 0.0
    da = torch.sign(a[:, None] - a[None, :])
    db = torch.sign(b[:, None] - b[None, :])
    return float((da * db).sum()) / (n * (n - 1))


def _features(u: Tensor, kind: str) -> Tensor:
    """Design matrix ``(n, p)``: [1, u] (linear), [1, u, u²/2] (diagonal) or
    [1, u, uᵢuⱼ (i < j), u²/2] (full)."""
    ones = torch.ones(u.shape[0], 1, dtype=u.dtype)
    if kind == "linear":
        return torch.cat([ones, u], 1)
    sq = 0.5 * u * u
    if kind == "diagonal":
        return torch.cat([ones, u, sq], 1)
    i, j = torch.triu_indices(u.shape[1], u.shape[1], 1)
    return torch.cat([ones, u, u[:, i] * u[:, j], sq], 1)


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


def fit_quadratic(u: Tensor, y: Tensor, kind: str) -> tuple[float, Tensor, Tensor]:
    """Least-squares ``(c, b (D,), H (D, D))`` of m(u) = c + bᵀu + ½uᵀHu on ``u`` ``(n, D)``
    and ``y`` ``(n,)`` (H = 0 for ``kind="linear"``)."""
    d = u.shape[1]
    coef = _least_squares(_features(u, kind), y)
    c, b = float(coef[0]), coef[1 : d + 1]
    h = torch.zeros(d, d, dtype=u.dtype)
    if kind == "diagonal":
        h = torch.diag(coef[d + 1 :])
    elif kind == "full":
        i, j = torch.triu_indices(d, d, 1)
        off = coef[d + 1 : d + 1 + i.numel()]
        h[i, j] = off
        h[j, i] = off
        h = h + torch.diag(coef[d + 1 + i.numel() :])
    return c, b, h


def _least_squares(a: Tensor, y: Tensor) -> Tensor:
    """argmin ‖a β − y‖ by QR, with a small ridge where ``a`` is near rank-deficient.

    (LAPACK's gelsy behind ``torch.linalg.lstsq`` may differ in the last bits between calls
    on the same input; QR does not, and checkpoints must resume exactly.)"""
    q, r = torch.linalg.qr(a)
    diag = r.diagonal().abs()
    if bool((diag > 1e-10 * diag.max()).all()):
        return torch.linalg.solve_triangular(r, (q.T @ y)[:, None], upper=True)[:, 0]
    gram = a.T @ a
    ridge = 1e-10 * float(gram.diagonal().max()) + 1e-300
    eye = torch.eye(gram.shape[0], dtype=a.dtype)
    return torch.linalg.solve(gram + ridge * eye, a.T @ y)


def predict(u: Tensor, model: tuple[float, Tensor, Tensor]) -> Tensor:
    """m(u) for rows ``u`` ``(n, D)``."""
    c, b, h = model
    return c + u @ b + 0.5 * ((u @ h) * u).sum(1)


class QuadraticModel:
    """The archive and the metamodel step of one estimator.

    Args:
        tau: the Kendall τ at or above which the model takes the mean step.
        radius: the cap on the model step's length, in units of √D in u.
    """

    def __init__(self, tau: float = 0.85, radius: float = 2.0):
        self.tau, self.radius = tau, radius
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
        x = x.detach()
        d = x.numel()
        rows = rows.detach().to(x)
        losses = losses.detach().to(x)
        finite = torch.isfinite(losses)
        rows, losses = rows[finite], losses[finite]
        arch = self.archive
        if arch is None:
            arch = {
                "rows": rows.new_zeros(0, d),
                "losses": rows.new_zeros(0),
                "predicted": rows.new_zeros(0),
            }
        # out-of-sample predictions of the new points by the model of the earlier ones
        predicted = torch.full_like(losses, math.nan)
        kind = model_kind(d, arch["rows"].shape[0])
        if kind is not None and rows.shape[0]:
            u_old = whiten(arch["rows"] - x, sigma, scale)
            model = fit_quadratic(u_old, arch["losses"], kind)
            predicted = predict(whiten(rows - x, sigma, scale), model)
        keep = self.capacity(d, size)
        arch = {
            "rows": torch.cat([arch["rows"], rows])[-keep:],
            "losses": torch.cat([arch["losses"], losses])[-keep:],
            "predicted": torch.cat([arch["predicted"], predicted])[-keep:],
        }
        self.archive = arch
        # τ over the latest K points that were predicted
        pred, true = arch["predicted"], arch["losses"]
        ok = torch.isfinite(pred)
        pred, true = pred[ok][-size:], true[ok][-size:]
        self.last_tau = kendall_tau(pred, true) if pred.numel() >= min(size, 5) else math.nan
        if not self.last_tau >= self.tau:
            return None
        kind = model_kind(d, arch["rows"].shape[0])
        if kind in (None, "linear"):
            return None
        u = whiten(arch["rows"] - x, sigma, scale)
        _, b, h = fit_quadratic(u, arch["losses"], kind)
        chol, info = torch.linalg.cholesky_ex(h)
        if int(info) != 0:
            return None  # not convex: no minimiser to step to
        step = -torch.cholesky_solve(b[:, None], chol)[:, 0]
        cap = self.radius * math.sqrt(d)
        norm = float(step.norm())
        if not math.isfinite(norm):
            return None
        if norm > cap:
            step = step * (cap / norm)
        from zoopt.population import shape_rows

        return sigma * shape_rows(step[None], scale)[0]

    def state_dict(self) -> dict | None:
        """The archive (None before the first generation)."""
        if self.archive is None:
            return None
        return {k: v.clone() for k, v in self.archive.items()}

    def load_state_dict(self, state: dict | None) -> None:
        """Restore :meth:`state_dict`."""
        if state is None:
            self.archive = None
            return
        missing = {"rows", "losses", "predicted"} - set(state)
        if missing:
            raise ValueError(f"metamodel state: missing entry {sorted(missing)[0]!r}")
        self.archive = {k: state[k].clone() for k in ("rows", "losses", "predicted")}


def make_metamodel(metamodel: object, owns_mean: bool) -> QuadraticModel | None:
    """An estimator's metamodel from its ``metamodel`` option (True/False), checked."""
    if not isinstance(metamodel, bool):
        raise TypeError(f"metamodel must be True or False, got {metamodel!r}")
    if not metamodel:
        return None
    if not owns_mean:
        raise ValueError(
            "metamodel=True takes the mean step to the model's minimiser: it needs an "
            "estimator that owns its mean (eta_mean set, as snes and xnes do)"
        )
    return QuadraticModel()


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
