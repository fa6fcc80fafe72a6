"""Antithetic evolution strategies: the zeroth-order gradient of the Gaussian-smoothed loss.

With candidates θ + σ·S zᵢ (S the proposal's shape, the identity unless adapted; see
:mod:`zoopt.proposal`) and centred weights cᵢ from the losses (larger is better),

    ĝ = −(1/σ)·S Σᵢ cᵢ zᵢ.

Shapings: ``"raw"`` cᵢ = −(Lᵢ − L̄)/K (an unbiased estimate of ∇E[L(θ + σz)], the scale of
a true gradient, for S = I); ``"centered_ranks"`` cᵢ = −rankᵢ/K (Salimans et al., 2017:
robust to outliers and to the loss scale; pair it with a scale-free optimizer such as Adam);
``"utilities"`` the NES utilities (Wierstra et al., 2014); ``"top"`` ARS's best ``top``
antithetic pairs (Mania et al., 2018). Antithetic pairs give the symmetric difference
(L(θ+σz) − L(θ−σz))/(2σ) and cancel the even terms of the Taylor expansion.

With ``eta_mean`` the estimator owns its mean and takes the natural-gradient step
θ ← θ + η_μ·σ·S Σᵢ cᵢ zᵢ instead of reporting ĝ; with ``covariance`` the same cᵢ adapt S
(SNES/xNES; :mod:`zoopt.estimators.snes`, :mod:`zoopt.estimators.xnes`).

Defaults: for D ≤ :data:`zoopt.proposal.ADAPT_MAX_DIM` the proposal adapts as SNES's does
(``shaping="utilities"``, ``covariance="diagonal"``, ``eta_mean=1``, K from D, the quadratic
metamodel on), where the peer benchmark shows it needs 20–600× fewer evaluations than a
fixed σ with the optimizer's step; above it, with ``rank``, with ``shaping`` ``"raw"`` or
``"top"``, or when ``covariance`` or ``eta_mean`` is given, the options left at ``"auto"``
take the fixed proposal's values (``shaping="raw"``, ``covariance="none"``,
``eta_mean=None``, K = 32): the OpenAI-ES gradient for the optimizer.
"""

from __future__ import annotations

from torch import Tensor

from zoopt.estimators import register
from zoopt.estimators.adapted import AdaptedProposalEstimator
from zoopt.estimators.base import (
    Estimate,
    check_population,
    check_positive,
)
from zoopt.lowrank import check_lowrank, check_lowrank_reuse
from zoopt.metamodel import (
    check_metamodel,
    model_step,
    with_model_step,
)
from zoopt.mixing import check_mixing, make_mixing
from zoopt.objectives.base import Objective
from zoopt.population import Population
from zoopt.proposal import (
    GaussianProposal,
)
from zoopt.weights import centered_ranks, fill_worst, nes_utilities, top_pair_weights

__all__ = ["ES"]

SHAPINGS = ("raw", "centered_ranks", "utilities", "top")


@register("es")
class ES(AdaptedProposalEstimator):
    """Antithetic ES gradient estimator (OpenAI-ES style), optionally with an adapted shape.

    Args:
        sigma: σ > 0, the smoothing scale (the initial one when the shape adapts).
        population: K ≥ 2 evaluations per step (even when ``antithetic``), None for
            4 + ⌊3 ln D⌋ rounded up to even, or ``"auto"``: None with the adapted
            proposal, 32 with the fixed one.
        shaping: ``"raw"``, ``"centered_ranks"``, ``"utilities"`` or ``"top"``, or
            ``"auto"``: ``"utilities"`` with the adapted proposal, ``"raw"`` with the fixed.
        antithetic: draw pairs (z, −z).
        covariance: ``"none"``, ``"diagonal"`` or ``"full"`` (needs a scale-free shaping),
            or ``"auto"``: see :func:`zoopt.proposal.adapts_by_default` (``"diagonal"`` for
            D ≤ 20).
        eta_sigma, eta_cov: learning rates of the shape (None: the NES defaults from D).
        eta_mean: None to report ĝ to the optimizer, η_μ > 0 to own the mean, or ``"auto"``:
            1 with the adapted proposal, None with the fixed one.
        top: for ``shaping="top"``, the number of pairs kept (None: half of them).
        rank: None for full-rank draws, or r ≥ 1: when x0 is an ``nn.Module``, the weight
            matrices of its Linear/Conv1d/Conv2d/Embedding layers are drawn as AᵢBᵢᵀ/√r
            (:mod:`zoopt.lowrank`), the other tensors full rank.
        importance_mixing: None (off) or the minimal refresh rate α₀ ∈ (0, 1): reuse the
            previous generation's draws by importance mixing (:mod:`zoopt.mixing`; needs
            ``antithetic=False``).
        metamodel: True to fit a quadratic to the evaluated points and take the mean step
            to its minimiser while it ranks the new points well (:mod:`zoopt.metamodel`;
            needs ``eta_mean``), or ``"auto"``: on when ``eta_mean`` is set and D ≤ 20.
    """

    def __init__(
        self,
        sigma: float = 0.1,
        population: int | None | str = "auto",
        shaping: str = "auto",
        antithetic: bool = True,
        covariance: str = "auto",
        eta_sigma: float | None = None,
        eta_cov: float | None = None,
        eta_mean: float | None | str = "auto",
        top: int | None = None,
        rank: int | None = None,
        importance_mixing: float | None = None,
        metamodel: bool | str = "auto",
    ):
        self.sigma = float(check_positive("sigma", sigma))
        if population not in (None, "auto"):
            check_population(population, antithetic)
        self.population = population
        if shaping not in SHAPINGS + ("auto",):
            raise ValueError(f"shaping must be one of {SHAPINGS} or 'auto', got {shaping!r}")
        if shaping == "top" and not antithetic:
            raise ValueError("shaping='top' ranks antithetic pairs: it needs antithetic=True")
        if covariance not in ("none", "auto") and shaping in ("raw", "auto"):
            raise ValueError(
                f"covariance={covariance!r} needs scale-free weights: use shaping='utilities' "
                "or 'centered_ranks' (raw losses would set the adaptation rate by their scale)"
            )
        self.shaping = shaping
        self.antithetic = bool(antithetic)
        self.covariance = covariance
        self.eta_sigma, self.eta_cov = eta_sigma, eta_cov
        self._proposal = GaussianProposal(
            self.sigma, "none" if covariance == "auto" else covariance, eta_sigma, eta_cov
        )
        if eta_mean not in (None, "auto"):
            check_positive("eta_mean", eta_mean)
        self.eta_mean = eta_mean
        if top is not None:
            check_positive("top", top, integer=True)
        self.top = top
        self.rank = check_lowrank(rank, self._proposal.covariance)
        self.importance_mixing = check_mixing(importance_mixing, antithetic)
        self._mixing = make_mixing(self.importance_mixing)
        metamodel = check_lowrank_reuse(self.rank, importance_mixing, metamodel)
        self.metamodel = check_metamodel(metamodel, eta_mean is not None)
        self._model = None
        #: the options as given, "auto" included: resolved for D by :meth:`_prepare`
        self._given = {
            "covariance": covariance,
            "eta_mean": eta_mean,
            "population": population,
            "shaping": shaping,
        }
        self._adapted = False

    def _excludes_adaptation(self) -> bool:
        return self.rank is not None or self._given["shaping"] in ("raw", "top")

    def setup(self, objective: Objective, x0: Tensor) -> None:
        super().setup(objective, x0)
        self._setup_structure(objective, x0)

    def _prepare(self, x0: Tensor, adapted: bool | None = None) -> None:
        super()._prepare(x0, adapted)
        if self.top is not None and self.top > self._size // 2:
            raise ValueError(f"top must be at most K/2 = {self._size // 2}, got {self.top}")

    def _resolve(self, adapted: bool) -> None:
        if self._given["shaping"] == "auto":
            self.shaping = "utilities" if adapted else "raw"
        super()._resolve(adapted)

    def ask(self, x: Tensor, seed: int) -> Population:
        if not hasattr(self, "_size"):  # asked directly, without setup()
            self._prepare(x)
        if self.rank is not None and self._proposal.structure is None:
            raise RuntimeError(f"{self.name}(rank={self.rank}): call setup() before ask()")
        if self._mixing is not None:
            return self._mixing.ask(self._proposal, x, seed, self._size)
        return self._proposal.population(x, seed, self._size, self.antithetic)

    def coefficients(self, losses: Tensor) -> Tensor:
        """Centred weights c ``(K,)`` (larger is better) from ``(K,)`` losses."""
        k = losses.numel()
        if self.shaping == "centered_ranks":
            return -centered_ranks(losses) / k
        if self.shaping == "utilities":
            return nes_utilities(losses)
        if self.shaping == "top":
            return top_pair_weights(losses, self.top or max(1, k // 4))
        s = fill_worst(losses)  # failed → worst
        return -(s - s.mean()) / k

    def tell(self, x: Tensor, population: Population, losses: Tensor) -> Estimate:
        step = model_step(self._model, self, x, population, losses)
        if self._mixing is not None:
            z, losses = self._mixing.tell(losses)
            direction = self._proposal.step_draws(z, self.coefficients(losses))
        else:
            direction = self._proposal.step(population, self.coefficients(losses))
        if self.eta_mean is not None:
            est = Estimate(x=x.detach() + (self.eta_mean * self.sigma) * direction)
            return with_model_step(self._model, est, x, step)
        return Estimate(grad=direction * (-1.0 / self.sigma))

    def gradient(self, losses: Tensor, z: Tensor) -> Tensor:
        """ĝ = −(1/σ)·Σᵢ cᵢ zᵢ from ``(K,)`` losses and ``(K, D)`` unit perturbations (S = I)."""
        return (self.coefficients(losses) @ z) * (-1.0 / self.sigma)
