"""ARS: augmented random search, V1-t (Mania et al. 2018, NeurIPS).

Antithetic pairs θ ± σδ; keep the b pairs with the best min(L⁺, L⁻) and step

    θ ← θ + (α/(b σ_R))·Σ_top (r⁺ − r⁻)·δ,   r = −L,  σ_R the std of the 2b losses kept,

i.e. ES with the centred weights :func:`zoopt.weights.top_pair_weights` and the mean owned
with α = η_μ·σ. σ is fixed (no adaptation), as in the paper.
"""

from __future__ import annotations

from zoopt.estimators import register
from zoopt.estimators.es import ES

__all__ = ["ARS"]


@register("ars")
class ARS(ES):
    """Augmented random search (V1-t): the best b antithetic directions, a fixed σ.

    Args: ``sigma`` (ν), ``population`` (K = 2N, None: from D), ``top`` (b, None:
    half of the pairs), ``eta_mean`` (α/ν, 1), ``rank`` (None, or low-rank draws of a
    module's weight matrices; :mod:`zoopt.lowrank`)."""

    def __init__(
        self,
        sigma: float = 0.1,
        population: int | None = None,
        top: int | None = None,
        eta_mean: float = 1.0,
        rank: int | None = None,
    ):
        super().__init__(sigma, population, shaping="top", eta_mean=eta_mean, top=top, rank=rank)
