"""Importance-weighted sampling of the tilted update distribution.

Draw ε₁..ε_K ~ q, weight them by w = softmax(−L/α + log π(ε) − log q(ε)) and report the
pseudo-gradient g = −(α/σ²)·Σᵢ (wᵢ − vᵢ) εᵢ, where v = softmax(log π − log q) estimates the
π-mean of ε (vᵢ = 1/K when q = π). Limits: α → ∞ gives the ES gradient of the
Gaussian-smoothed loss, σ → 0 the true gradient, α → 0 greedy (1, K) selection.

The *guided* proposal (MLE-guided parameter search; Welleck & Cho, 2020) is the mixture
q = ½N(0, σ²I) + ½N(μ, σ²I) with μ = −c·σ·∇S/‖∇S‖ for a differentiable surrogate S; the
log-ratio above corrects for it, so the estimate targets the same tilted distribution.

The proposal's shape adapts from the same centred weights cᵢ = wᵢ − 1/K (``covariance``;
the natural-gradient rule of :mod:`zoopt.proposal`): candidates are θ + σ·S zᵢ and the
pseudo-gradient is g = −(α/σ)·S Σᵢ cᵢ zᵢ, the tilted mean preconditioned by the adapted
shape. With ``eta_mean`` the estimator owns its mean: θ ← θ + η_μ·σ·S Σᵢ cᵢ zᵢ (at η_μ = 1,
the tilted distribution's own mean).

Defaults: for D ≤ :data:`zoopt.proposal.ADAPT_MAX_DIM` the proposal adapts
(``covariance="diagonal"``, ``eta_mean=1``, K from D, the quadratic metamodel on), where the
peer benchmark shows it needs 20–600× fewer evaluations than a fixed σ with the optimizer's
step; above it, with ``guided``, ``alpha=inf`` or ``rank``, or when ``covariance`` or
``eta_mean`` is given, the options left at ``"auto"`` take the fixed proposal's values
(``covariance="none"``, ``eta_mean=None``, K = 32).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from zoopt.estimators import register
from zoopt.estimators.adapted import AdaptedProposalEstimator
from zoopt.estimators.base import (
    Estimate,
    check_population,
    check_positive,
)
from zoopt.lowrank import LowRankError, check_lowrank, check_lowrank_reuse
from zoopt.metamodel import (
    check_metamodel,
    model_step,
    with_model_step,
)
from zoopt.mixing import check_mixing, make_mixing
from zoopt.objectives.base import Objective
from zoopt.population import ExplicitPopulation, GaussianPopulation, Population
from zoopt.proposal import (
    GaussianProposal,
)
from zoopt.weights import (
    check_ess_fraction,
    effective_sample_size,
    importance_weights,
    linear_weights,
    solve_alpha,
    tilt_weights,
)

__all__ = ["Sampling"]


@register("sampling")
class Sampling(AdaptedProposalEstimator):
    """Tilted importance sampling around θ.

    Args:
        sigma: σ > 0, the proposal's standard deviation per coordinate (the initial one
            when the shape adapts).
        population: K ≥ 2 draws per step (even when ``antithetic``), None for
            4 + ⌊3 ln D⌋ rounded up to even, or ``"auto"``: None with the adapted proposal,
            32 with the fixed one.
        alpha: temperature α > 0, ``float("inf")`` (the linear/ES limit), or ``"auto"``
            (α solved each step so that ESS/K = ``ess_fraction``).
        ess_fraction: target ESS/K for ``alpha="auto"``, in (0, 1].
        antithetic: draw pairs (ε, −ε).
        guided: mix in draws shifted along the negative surrogate gradient (needs an
            objective with a differentiable surrogate).
        guide_scale: c, the shift of the guided component in units of σ.
        covariance: ``"none"``, ``"diagonal"`` or ``"full"``: adapt the proposal's shape
            (needs a finite ``alpha`` or ``"auto"``, and no guide); ``"auto"``: see
            :func:`zoopt.proposal.adapts_by_default` (``"diagonal"`` for D ≤ 20).
        eta_sigma, eta_cov: learning rates of the shape (None: the NES defaults from D).
        eta_mean: None to report g to the optimizer, η_μ > 0 to own the mean, or
            ``"auto"``: 1 with the adapted proposal, None with the fixed one.
        rank: None for full-rank draws, or r ≥ 1 for low-rank draws of a module's weight
            matrices (:mod:`zoopt.lowrank`; not with ``guided``, whose shifted draws are
            full rank).
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
        alpha: float | str = "auto",
        ess_fraction: float = 0.5,
        antithetic: bool = True,
        guided: bool = False,
        guide_scale: float = 1.0,
        covariance: str = "auto",
        eta_sigma: float | None = None,
        eta_cov: float | None = None,
        eta_mean: float | None | str = "auto",
        rank: int | None = None,
        importance_mixing: float | None = None,
        metamodel: bool | str = "auto",
    ):
        self.sigma = float(check_positive("sigma", sigma))
        if population not in (None, "auto"):
            check_population(population, antithetic)
        self.population = population
        if alpha != "auto":
            check_positive("alpha", alpha)
        self.alpha = alpha
        self.ess_fraction = check_ess_fraction(ess_fraction)
        self.antithetic = bool(antithetic)
        self.guided = bool(guided)
        self.guide_scale = float(check_positive("guide_scale", guide_scale))
        self.covariance = covariance
        self.eta_sigma, self.eta_cov = eta_sigma, eta_cov
        self._proposal = GaussianProposal(
            self.sigma, "none" if covariance == "auto" else covariance, eta_sigma, eta_cov
        )
        if covariance not in ("none", "auto") and (guided or alpha == math.inf):
            raise ValueError(
                f"covariance={covariance!r} adapts the shape from the tilt weights: it needs a "
                "finite alpha or 'auto' and guided=False"
            )
        if eta_mean not in (None, "auto"):
            check_positive("eta_mean", eta_mean)
        if eta_mean not in (None, "auto") and guided:
            raise ValueError("eta_mean (owning the mean) is not available with guided=True")
        self.eta_mean = eta_mean
        self.rank = check_lowrank(rank, self._proposal.covariance)
        if self.rank is not None and guided:
            raise LowRankError(
                f"rank={self.rank} is not available with guided=True: the guided draws are "
                "shifted along a full-rank surrogate gradient"
            )
        self.importance_mixing = check_mixing(importance_mixing, antithetic)
        if self.importance_mixing is not None and guided:
            raise ValueError("importance_mixing is not available with guided=True")
        self._mixing = make_mixing(self.importance_mixing)
        metamodel = check_lowrank_reuse(self.rank, importance_mixing, metamodel)
        self.metamodel = check_metamodel(metamodel, eta_mean is not None)
        self._model = None
        self._objective: Objective | None = None
        #: the options as given, "auto" included: resolved for D by :meth:`_prepare`
        self._given = {"covariance": covariance, "eta_mean": eta_mean, "population": population}
        self._adapted = False

    def _excludes_adaptation(self) -> bool:
        return self.guided or self.alpha == math.inf or self.rank is not None

    def setup(self, objective: Objective, x0: Tensor) -> None:
        super().setup(objective, x0)
        if self.guided and not objective.has_surrogate:
            raise ValueError(
                "sampling(guided=True) needs an objective with a differentiable surrogate; "
                f"{type(objective).__name__} has none"
            )
        self._objective = objective
        self._setup_structure(objective, x0)

    # ask/tell -----------------------------------------------------------------------------
    def ask(self, x: Tensor, seed: int) -> Population:
        if not hasattr(self, "_size"):  # asked directly, without setup()
            self._prepare(x)
        if self.rank is not None and self._proposal.structure is None:
            raise RuntimeError(f"sampling(rank={self.rank}): call setup() before ask()")
        if self._mixing is not None:
            return self._mixing.ask(self._proposal, x, seed, self._size)
        pop = self._proposal.population(x, seed, self._size, self.antithetic)
        if not self.guided:
            return pop
        # guided: the second half of the draws is shifted by μ (stratified mixture)
        from zoopt.estimators.gradient import surrogate_gradient

        g, _ = surrogate_gradient(self._objective, x, seed)
        norm = g.norm()
        mu = -self.guide_scale * self.sigma * g / norm if norm > 0 else torch.zeros_like(g)
        eps = self.sigma * pop.perturbations()
        k = self._size
        shift = torch.zeros(k, 1, dtype=x.dtype, device=eps.device)
        shift[k // 2 :] = 1.0
        eps = eps + shift * mu
        return ExplicitPopulation(x.detach() + eps, eps, self._mixture_log_ratio(eps, mu))

    def _mixture_log_ratio(self, eps: Tensor, mu: Tensor) -> Tensor:
        """log π(ε) − log q(ε) for q = ½N(0, σ²I) + ½N(μ, σ²I), shape ``(K,)``."""
        s2 = self.sigma**2
        # log N(ε; μ) − log N(ε; 0) = (εᵀμ − ½‖μ‖²)/σ²
        d = (eps @ mu - 0.5 * (mu @ mu)) / s2
        return -(torch.logaddexp(torch.zeros_like(d), d) - math.log(2.0))

    def tell(self, x: Tensor, population: Population, losses: Tensor) -> Estimate:
        step = model_step(self._model, self, x, population, losses)
        if self._mixing is not None:
            # the mixed generation: K independent draws of the current proposal
            z, losses = self._mixing.tell(losses)
            c, a, est = self.centred(losses)
            est = self._take(x, est, self._proposal.step_draws(z, c), a)
            return with_model_step(self._model, est, x, step)
        if isinstance(population, GaussianPopulation):
            # ε = σ·S z: the sums over z go through the population (reduce), σ into the factor
            c, a, est = self.centred(losses)
            est = self._take(x, est, self._proposal.step(population, c), a)
            return with_model_step(self._model, est, x, step)
        return self.weigh(losses, population.offsets, population.log_ratio)

    def _take(self, x: Tensor, est: Estimate, direction: Tensor, a: float) -> Estimate:
        """The mean step η_μ·σ·S Σᵢ cᵢ zᵢ, or the pseudo-gradient −(a/σ)·S Σᵢ cᵢ zᵢ."""
        if self.eta_mean is not None:
            est.x = x.detach() + (self.eta_mean * self.sigma) * direction
        else:
            est.grad = direction * (-a / self.sigma)
        return est

    def weigh(
        self, losses: Tensor, eps: Tensor, log_ratio: Tensor | None = None, unit: float = 1.0
    ) -> Estimate:
        """Pseudo-gradient from draws ``unit · eps`` ``(K, D)`` and their losses ``(K,)``."""
        c, a, est = self.centred(losses, log_ratio)
        est.grad = (c @ eps) * (-(a / self.sigma**2) * unit)
        return est

    def centred(
        self, losses: Tensor, log_ratio: Tensor | None = None
    ) -> tuple[Tensor, float, Estimate]:
        """Centred weights c ``(K,)`` and the factor a with g = −(a/σ²)·Σᵢ cᵢ εᵢ.

        c = w − v and a = α at finite α; c = the linear limit at α = 1 and a = 1 at α = ∞.
        The :class:`Estimate` carries α and the ESS.
        """
        k = losses.numel()
        finite = torch.isfinite(losses)
        v = None  # the importance weights of π alone, for a proposal q ≠ π
        if log_ratio is not None:
            v = importance_weights(log_ratio, finite)
        if self.alpha != "auto":
            alpha = float(self.alpha)
        elif v is not None and self.ess_fraction * k >= 0.99 * effective_sample_size(v):
            # no α reaches the target: the tilt only lowers the ESS of v, so take α → ∞
            alpha = math.inf
        else:
            alpha = solve_alpha(losses, self.ess_fraction, log_ratio)
            if alpha < torch.finfo(losses.dtype).tiny:
                # loss differences below the dtype's normal range (a loss decaying to 0):
                # −L/α would divide by a subnormal or zero α; take the linear limit
                alpha = math.inf
        if math.isinf(alpha):
            # the linear limit, exactly: α(w − v) → −α·linear_weights, so
            # g = (1/σ²)·Σ vᵢ(Lᵢ − Σⱼ vⱼLⱼ) εᵢ (vᵢ = 1/K for draws from π), failed draws worst
            c = linear_weights(losses, 1.0, log_ratio)
            ess = float(finite.sum()) if v is None else effective_sample_size(v)
            return c, 1.0, Estimate(alpha=alpha, ess=ess)
        w = tilt_weights(losses, alpha, log_ratio)
        if v is None:
            v = finite.to(losses.dtype) / finite.sum()
        return w - v, alpha, Estimate(alpha=alpha, ess=effective_sample_size(w))
