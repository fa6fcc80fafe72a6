"""The adapted Gaussian proposal π = N(θ, σ²·S Sᵀ) shared by the parameter-space estimators.

The weights that estimate the step also estimate the shape of the tilted distribution
p(Δθ) ∝ π(Δθ)·exp(−ΔL/α). With draws zᵢ ~ N(0, I), candidates θ + σ·S zᵢ and centred weights
cᵢ (Σᵢ cᵢ = 0, larger is better: tilt weights wᵢ − 1/K, or NES utilities), the natural
gradient of the expected objective with respect to the proposal's parameters gives

    mean:       δθ       = η_μ · σ · S Σᵢ cᵢ zᵢ
    diagonal:   log s    ← log s + (η_σ/2) · Σᵢ cᵢ (zᵢ² − 1)                       (SNES)
    full:       G        = Σᵢ cᵢ (zᵢzᵢᵀ − I),  g = tr(G)/D
                A        ← A · expm(½ [η_σ g I + η_B (G − g I)])                    (xNES)

(Wierstra et al. 2014, "Natural Evolution Strategies", JMLR 15; Glasmachers et al. 2010,
"Exponential Natural Evolution Strategies", GECCO; Schaul et al. 2011, "High Dimensions and
Heavy Tails for Natural Evolution Strategies", GECCO). σ stays the user's σ0; the adapted
state is the shape S (s ``(D,)`` or A ``(D, D)``, both starting at the identity), so the
population object carries it to any evaluator and a Ray worker regenerates its rows from
(seed, rows, S) alone. Every sum over the K draws goes through
:meth:`zoopt.population.GaussianPopulation.reduce`.

Defaults from the NES papers, as functions of D: population K = 4 + ⌊3 ln D⌋ (rounded up to
even for antithetic pairs), η_μ = 1, diagonal η_σ = (3 + ln D)/(5√D), full
η_σ = η_B = 3(3 + ln D)/(5 D√D).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from zoopt.lowrank import LowRankPopulation, LowRankStructure
from zoopt.population import GaussianPopulation, shape_rows, weighted_moments

__all__ = [
    "ADAPT_MAX_DIM",
    "COVARIANCES",
    "MAX_FULL_DIM",
    "GaussianProposal",
    "default_population",
    "default_rates",
    "adapts_by_default",
    "log_det",
    "whiten",
]

COVARIANCES = ("none", "diagonal", "full")

#: largest D for ``covariance="full"``: A costs D² memory and a D×D matrix exponential a step
MAX_FULL_DIM = 1000


#: the largest D at which ``sampling`` and ``es`` adapt their proposal by default
#: (``covariance="auto"``, ``eta_mean="auto"``): the range where the peer benchmark shows
#: the adapted proposal and its mean step winning (docs/sample_reuse.md)
ADAPT_MAX_DIM = 20

#: ``population="auto"`` of ``sampling`` and ``es`` with the fixed proposal
FIXED_POPULATION = 32


def adapts_by_default(covariance: object, eta_mean: object, dim: int, excluded: bool) -> bool:
    """Whether ``sampling``/``es`` take the adapted proposal for D = ``dim``: neither
    ``covariance`` nor ``eta_mean`` was given (both ``"auto"``), no other option excludes it
    (``excluded``) and D ≤ :data:`ADAPT_MAX_DIM`. Otherwise the options not given take the
    fixed proposal's values: ``covariance="none"``, ``eta_mean=None`` (the optimizer's step)."""
    return covariance == "auto" and eta_mean == "auto" and not excluded and dim <= ADAPT_MAX_DIM


def default_population(dim: int, antithetic: bool = True) -> int:
    """K = 4 + ⌊3 ln D⌋ (the CMA-ES/NES rule), rounded up to even when ``antithetic``."""
    k = 4 + int(math.floor(3 * math.log(max(dim, 1))))
    return k + (k % 2) if antithetic else k


def default_rates(dim: int, covariance: str) -> tuple[float, float]:
    """(η_σ, η_B) of the NES papers for D = ``dim``: SNES for diagonal, xNES for full."""
    d = max(dim, 1)
    if covariance == "full":
        eta = 3 * (3 + math.log(d)) / (5 * d * math.sqrt(d))
        return eta, eta
    return (3 + math.log(d)) / (5 * math.sqrt(d)), 0.0


def whiten(offsets: Tensor, sigma: float, scale: Tensor | None) -> Tensor:
    """z = S⁻¹ (x − θ)/σ for offsets x − θ ``(n, D)``: the inverse of σ·S z."""
    u = offsets / sigma
    if scale is None:
        return u
    scale = scale.to(u)
    return u / scale if scale.ndim == 1 else torch.linalg.solve(scale, u.T).T


def log_det(scale: Tensor | None) -> float:
    """log |det S|: 0 for the identity, Σ log sᵢ, or log |det A|."""
    if scale is None:
        return 0.0
    if scale.ndim == 1:
        return float(scale.log().sum())
    return float(torch.linalg.slogdet(scale)[1])


def _check_rate(name: str, value: float | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name} must be a positive number or None (from D), got {value!r}")
    return float(value)


class GaussianProposal:
    """σ·S z: a Gaussian proposal whose shape S adapts by the natural-gradient rule.

    Args:
        sigma: σ > 0, the initial step size (S starts at the identity).
        covariance: ``"none"`` (S = I, fixed), ``"diagonal"`` (a per-coordinate scale, any D)
            or ``"full"`` (a factor A, D ≤ :data:`MAX_FULL_DIM`).
        eta_sigma: η_σ > 0, or None for the NES default from D.
        eta_cov: η_B > 0 for the shape of a full factor, or None for the xNES default.
    """

    def __init__(
        self,
        sigma: float,
        covariance: str = "none",
        eta_sigma: float | None = None,
        eta_cov: float | None = None,
    ):
        if covariance not in COVARIANCES:
            raise ValueError(f"covariance must be one of {COVARIANCES}, got {covariance!r}")
        self.sigma = float(sigma)
        self.covariance = covariance
        self.eta_sigma = _check_rate("eta_sigma", eta_sigma)
        self.eta_cov = _check_rate("eta_cov", eta_cov)
        self.scale: Tensor | None = None
        self._rates = (0.0, 0.0)
        #: a module's low-rank draw structure (:mod:`zoopt.lowrank`), or None for rows
        self.structure: LowRankStructure | None = None

    @property
    def adapts(self) -> bool:
        """True when the shape S is adapted."""
        return self.covariance != "none"

    def setup(self, x0: Tensor) -> None:
        """Start S at the identity for parameters like ``x0`` ``(D,)``."""
        d = x0.numel()
        if self.covariance == "full" and d > MAX_FULL_DIM:
            raise ValueError(
                f"covariance='full' supports D <= {MAX_FULL_DIM} (MAX_FULL_DIM), got D={d}; "
                "use covariance='diagonal'"
            )
        eta_s, eta_b = default_rates(d, self.covariance)
        self._rates = (self.eta_sigma or eta_s, self.eta_cov or eta_b)
        if self.covariance == "diagonal":
            self.scale = torch.ones(d, dtype=x0.dtype, device=x0.device)
        elif self.covariance == "full":
            self.scale = torch.eye(d, dtype=x0.dtype, device=x0.device)

    def population(self, x: Tensor, seed: int, size: int, antithetic: bool) -> GaussianPopulation:
        """K = ``size`` candidates θ + σ·S zᵢ around ``x`` ``(D,)`` (low-rank draws when a
        ``structure`` is set)."""
        scale = None if self.scale is None else self.scale.clone()
        if self.structure is not None:
            return LowRankPopulation(
                x.detach(),
                self.sigma,
                seed,
                size,
                antithetic,
                scale=scale,
                structure=self.structure,
            )
        return GaussianPopulation(x.detach(), self.sigma, seed, size, antithetic, scale=scale)

    def step(self, population: GaussianPopulation, coeffs: Tensor) -> Tensor:
        """Adapt S from the step's centred weights ``coeffs`` ``(K,)``; return S Σᵢ cᵢ zᵢ.

        The returned ``(D,)`` direction is taken with the shape the population was drawn
        with, so the mean step and the shape update use the same draws.
        """
        first, second = population.reduce(coeffs, square=self.adapts)
        direction = population.shaped(first[None])[0]
        if self.adapts:
            self._adapt(second)
        return direction

    def step_draws(self, z: Tensor, coeffs: Tensor) -> Tensor:
        """:meth:`step` for draws given as unit-normal rows ``z`` ``(K, D)`` of the current
        proposal (candidates θ + σ·S zᵢ), as importance mixing assembles them."""
        full = self.scale is not None and self.scale.ndim == 2
        first, second = weighted_moments(z, coeffs, self.adapts, full)
        direction = shape_rows(first[None], self.scale)[0]
        if self.adapts:
            self._adapt(second)
        return direction

    def _adapt(self, second: Tensor) -> None:
        eta_s, eta_b = self._rates
        if self.covariance == "diagonal":
            self.scale = self.scale * torch.exp(0.5 * eta_s * second.to(self.scale))
        else:
            g = torch.trace(second) / second.shape[0]
            eye = torch.eye(second.shape[0], dtype=second.dtype, device=second.device)
            m = 0.5 * (eta_s * g * eye + eta_b * (second - g * eye))
            self.scale = self.scale @ torch.linalg.matrix_exp(m.to(self.scale))

    def state_dict(self) -> dict:
        """The adapted shape (None when S is fixed)."""
        return {"scale": None if self.scale is None else self.scale.clone()}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`."""
        scale = state.get("scale")
        self.scale = None if scale is None else scale.clone()
