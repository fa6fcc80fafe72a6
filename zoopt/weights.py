"""Losses → centred weights: the one function family every estimator shares.

For losses L₁..L_K (lower is better) these functions say how much each draw counts:

* :func:`tilt_weights` — w = softmax(−L/α + log π/q): the self-normalised importance weights
  of the tilted distribution p(Δθ) ∝ π(Δθ)·exp(−ΔL/α). α → 0 puts all mass on the best
  draw; α → ∞ gives the linear limit.
* :func:`linear_weights` — the α → ∞ limit of w − 1/K: −(L − L̄)/(Kα).
* :func:`centered_ranks` — the usual ES fitness shaping (Salimans et al. 2017): ranks mapped
  to [−0.5, 0.5], invariant to any monotone transform of the losses.
* :func:`solve_alpha` — the temperature at which the effective sample size
  :func:`effective_sample_size` is a given fraction of K (``alpha="auto"``).

Non-finite losses (NaN, ±Inf) mark failed candidates. Rule: the tilt *drops* them (weight 0,
the rest renormalised); ranks and the linear limit treat them as *worst* (they rank last, or
take the largest finite loss). A population with no finite loss raises
:class:`NonFiniteLossError`.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "NonFiniteLossError",
    "tilt_weights",
    "effective_sample_size",
    "solve_alpha",
    "linear_weights",
    "centered_ranks",
]


class NonFiniteLossError(FloatingPointError):
    """Raised when no loss of a population is finite."""


def _as_losses(losses: Tensor) -> Tensor:
    if not isinstance(losses, Tensor):
        losses = torch.as_tensor(losses)
    if losses.ndim != 1 or losses.numel() == 0:
        raise ValueError(
            f"losses must be a non-empty 1-D tensor (K,), got shape {tuple(losses.shape)}"
        )
    if not losses.is_floating_point():
        losses = losses.to(torch.get_default_dtype())
    return losses


def _finite_mask(losses: Tensor) -> Tensor:
    mask = torch.isfinite(losses)
    if not bool(mask.any()):
        raise NonFiniteLossError(f"all {losses.numel()} losses are NaN or Inf")
    return mask


def _check_alpha(alpha: float) -> float:
    if not isinstance(alpha, (int, float)) or isinstance(alpha, bool) or not alpha > 0:
        raise ValueError(f"alpha must be a positive number (or inf), got {alpha!r}")
    return float(alpha)


def tilt_weights(losses: Tensor, alpha: float, log_ratio: Tensor | None = None) -> Tensor:
    """Self-normalised tilt weights w = softmax(−L/α + log π − log q).

    Args:
        losses: ``(K,)`` losses; non-finite entries get weight 0.
        alpha: temperature α > 0 (``inf`` gives uniform weights over finite losses).
        log_ratio: optional ``(K,)`` log π(ε_i) − log q(ε_i) for draws from a proposal q ≠ π.

    Returns:
        ``(K,)`` non-negative weights summing to 1. Invariant to adding a constant to the
        losses; stable for losses of 1e6 and α of 1e-8 (the max is subtracted before exp).
    """
    losses = _as_losses(losses)
    alpha = _check_alpha(alpha)
    mask = _finite_mask(losses)
    safe = torch.where(mask, losses, torch.zeros_like(losses))
    # shift by the best finite loss first so that −L/α never overflows, whatever the scale
    shifted = safe - safe[mask].min()
    logits = -shifted / alpha if math.isfinite(alpha) else torch.zeros_like(shifted)
    if log_ratio is not None:
        log_ratio = torch.as_tensor(log_ratio, dtype=losses.dtype, device=losses.device)
        if log_ratio.shape != losses.shape:
            raise ValueError(
                f"log_ratio must have the shape of losses {tuple(losses.shape)}, "
                f"got {tuple(log_ratio.shape)}"
            )
        logits = logits + log_ratio
    logits = logits.masked_fill(~mask, -math.inf)
    return torch.softmax(logits, dim=0)


def effective_sample_size(weights: Tensor) -> float:
    """Kish's effective sample size (Σw)²/Σw² of ``(K,)`` non-negative weights, in [1, K]."""
    w = torch.as_tensor(weights)
    return float(w.sum() ** 2 / (w * w).sum())


def solve_alpha(
    losses: Tensor,
    ess_fraction: float,
    log_ratio: Tensor | None = None,
    *,
    rtol: float = 1e-3,
    max_iter: int = 20,
) -> float:
    """The α at which ESS(tilt_weights(losses, α))/K equals ``ess_fraction``.

    Bisection on log α; the ESS grows monotonically with α, from 1 (α → 0, the best draw
    only) to K (α → ∞, with ``log_ratio=None``). When all finite losses are equal every α
    gives the same weights and 1.0 is returned. Targets beyond what α → ∞ can reach (a
    proposal with a heavy importance ratio) return the largest α tried.

    Args:
        losses: ``(K,)`` losses.
        ess_fraction: target ESS/K, in (0, 1].
        log_ratio: optional ``(K,)`` importance log-ratios, as in :func:`tilt_weights`.

    Returns:
        α > 0 with ESS/K within ``rtol`` of the target (relative), where reachable.
    """
    losses = _as_losses(losses)
    if not isinstance(ess_fraction, (int, float)) or not 0 < ess_fraction <= 1:
        raise ValueError(f"ess_fraction must be in (0, 1], got {ess_fraction!r}")
    mask = _finite_mask(losses)
    finite = losses[mask].double()
    k = losses.numel()
    spread = float(finite.max() - finite.min())
    if spread == 0.0 or not math.isfinite(spread):
        return 1.0
    target = ess_fraction * k
    base = (finite - finite.min()).cpu().numpy()
    lr = None if log_ratio is None else torch.as_tensor(log_ratio).double()[mask].cpu().numpy()

    def ess(log_alpha: np.ndarray) -> np.ndarray:
        """ESS at each of ``(G,)`` log-temperatures at once, via a ``(G, K)`` softmax."""
        logits = -base[None, :] * np.exp(-log_alpha)[:, None]
        if lr is not None:
            logits = logits + lr[None, :]
        w = np.exp(logits - logits.max(axis=1, keepdims=True))
        return w.sum(1) ** 2 / (w * w).sum(1)

    # α ≪ spread: the best draw dominates; α ≫ spread: (nearly) uniform. Bisection on log α,
    # vectorised: each round evaluates a grid of 129 points and keeps the bracketing cell.
    lo, hi = math.log(spread) - 40.0, math.log(spread) + 40.0
    e_lo, e_hi = ess(np.array([lo, hi]))
    if e_hi < target:
        return math.exp(hi)
    if e_lo > target:
        return math.exp(lo)
    for _ in range(max_iter):
        grid = np.linspace(lo, hi, 129)
        e = np.maximum.accumulate(ess(grid))  # monotone up to rounding
        i = int(np.clip(np.searchsorted(e, target), 1, 128))
        lo, hi, e_lo, e_hi = grid[i - 1], grid[i], e[i - 1], e[i]
        # linear interpolation inside the cell; ESS is smooth in log α
        mid = lo + (hi - lo) * (target - e_lo) / (e_hi - e_lo) if e_hi > e_lo else 0.5 * (lo + hi)
        if abs(float(ess(np.array([mid]))[0]) - target) <= rtol * target:
            return math.exp(mid)
    return math.exp(mid)


def linear_weights(losses: Tensor, alpha: float) -> Tensor:
    """The α → ∞ limit of the centred tilt weights: w_i − 1/K ≈ −(L_i − L̄)/(Kα).

    Non-finite losses take the largest finite loss (worst). Returns ``(K,)``, summing to 0.
    """
    losses = _as_losses(losses)
    alpha = _check_alpha(alpha)
    mask = _finite_mask(losses)
    filled = torch.where(mask, losses, losses[mask].max())
    return -(filled - filled.mean()) / (losses.numel() * alpha)


def centered_ranks(losses: Tensor) -> Tensor:
    """Centred ranks in [−0.5, 0.5]: the lowest loss maps to −0.5, the highest to +0.5.

    Used in place of L − L̄ (it plays the role of a loss, not a weight). Ties share their mean
    rank; non-finite losses rank last (worst). Returns ``(K,)`` summing to 0.
    """
    losses = _as_losses(losses)
    k = losses.numel()
    if k < 2:
        return torch.zeros_like(losses)
    mask = _finite_mask(losses)
    filled = torch.where(mask, losses, torch.full_like(losses, math.inf))
    order = torch.argsort(filled, stable=True)
    ranks = torch.empty(k, dtype=losses.dtype, device=losses.device)
    ranks[order] = torch.arange(k, dtype=losses.dtype, device=losses.device)
    # average the ranks of ties so that equal losses get equal shaped values
    uniq, inverse = torch.unique(filled, return_inverse=True)
    if uniq.numel() < k:
        sums = torch.zeros(uniq.numel(), dtype=losses.dtype).index_add_(0, inverse, ranks)
        counts = torch.zeros(uniq.numel(), dtype=losses.dtype).index_add_(
            0, inverse, torch.ones_like(ranks)
        )
        ranks = (sums / counts)[inverse]
    return ranks / (k - 1) - 0.5
