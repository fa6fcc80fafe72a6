"""Losses → centred weights: the one function family every estimator shares.

For losses L₁..L_K (lower is better) these functions say how much each draw counts:

* :func:`tilt_weights` — w = softmax(−L/α + log π/q): the self-normalised importance weights
  of the tilted distribution p(Δθ) ∝ π(Δθ)·exp(−ΔL/α). α → 0 puts all mass on the best
  draw; α → ∞ gives the linear limit.
* :func:`linear_weights` — the α → ∞ limit of w − 1/K: −(L − L̄)/(Kα).
* :func:`centered_ranks` — the usual ES fitness shaping (Salimans et al. 2017): ranks mapped
  to [−0.5, 0.5], invariant to any monotone transform of the losses.
* :func:`nes_utilities` — the rank-based utilities of the NES papers (Wierstra et al. 2014):
  max(0, ln(K/2 + 1) − ln rank), normalised, minus 1/K; already centred weights.
* :func:`top_pair_weights` — Augmented Random Search's top-b directions (Mania et al. 2018).
* :func:`solve_alpha` — the temperature at which the effective sample size
  :func:`effective_sample_size` is a given fraction of K (``alpha="auto"``).

:func:`tilt_weights`, :func:`linear_weights` and :func:`solve_alpha` also take losses
``(..., K)``: one population per row (REINFORCE's M draws per input), weighted along the
last dimension at once.

Non-finite losses (NaN, ±Inf) mark failed candidates. Rule: the tilt *drops* them (weight 0,
the rest renormalised); ranks and the linear limit treat them as *worst* (they rank last, or
take the largest finite loss). A population with no finite loss raises
:class:`NonFiniteLossError`; in a batch of rows, a row without any finite loss gets all-zero
weights (the batch raises only when no loss at all is finite).
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
    "importance_weights",
    "centered_ranks",
    "nes_utilities",
    "top_pair_weights",
    "fill_worst",
    "check_ess_fraction",
]


class NonFiniteLossError(FloatingPointError):
    """Raised when no loss of a population is finite."""


def _as_losses(losses: Tensor, rows: bool = True) -> Tensor:
    """Losses as a floating tensor: ``(..., K)`` with ``rows``, else ``(K,)`` only."""
    if not isinstance(losses, Tensor):
        losses = torch.as_tensor(losses)
    if not rows and losses.ndim != 1:
        raise ValueError(
            f"losses must be a non-empty 1-D tensor (K,), got shape {tuple(losses.shape)}"
        )
    if losses.ndim == 0 or losses.numel() == 0:
        raise ValueError(
            f"losses must be a non-empty tensor (K,) or (..., K), got shape {tuple(losses.shape)}"
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


def check_ess_fraction(ess_fraction: float) -> float:
    """Validate a target ESS/K for ``alpha="auto"``: a number in (0, 1], else a ValueError."""
    if (
        isinstance(ess_fraction, bool)
        or not isinstance(ess_fraction, (int, float))
        or not 0 < ess_fraction <= 1
    ):
        raise ValueError(f"ess_fraction must be in (0, 1], got {ess_fraction!r}")
    return float(ess_fraction)


def tilt_weights(losses: Tensor, alpha: float | Tensor, log_ratio: Tensor | None = None) -> Tensor:
    """Self-normalised tilt weights w = softmax(−L/α + log π − log q) along the last dim.

    Args:
        losses: ``(K,)`` or ``(..., K)`` losses; non-finite entries get weight 0.
        alpha: temperature α > 0 (``inf`` gives uniform weights over finite losses), or a
            tensor ``(...,)`` of one temperature per row.
        log_ratio: optional log π(ε_i) − log q(ε_i), the shape of ``losses``, for draws from
            a proposal q ≠ π.

    Returns:
        non-negative weights, the shape of ``losses``, each row summing to 1 (0 for a row
        without a finite loss). Invariant to adding a constant to the losses; stable for
        losses of 1e6 and α of 1e-8 (each row's best loss is subtracted before exp).
    """
    losses = _as_losses(losses)
    mask = _finite_mask(losses)
    # shift by each row's best finite loss first so that −L/α never overflows
    row_min = torch.where(mask, losses, math.inf).amin(dim=-1, keepdim=True)
    shifted = torch.where(mask, losses - row_min, 0.0)
    if isinstance(alpha, Tensor):
        alpha = alpha.to(losses).unsqueeze(-1)
        if bool((~(alpha > 0)).any()):
            raise ValueError("alpha must hold positive numbers (or inf)")
        logits = torch.where(torch.isinf(alpha), 0.0, -shifted / alpha)
    else:
        alpha = _check_alpha(alpha)
        logits = -shifted / alpha if math.isfinite(alpha) else torch.zeros_like(shifted)
    if log_ratio is not None:
        log_ratio = torch.as_tensor(log_ratio, dtype=losses.dtype, device=losses.device)
        if log_ratio.shape != losses.shape:
            raise ValueError(
                f"log_ratio must have the shape of losses {tuple(losses.shape)}, "
                f"got {tuple(log_ratio.shape)}"
            )
        logits = logits + log_ratio
    w = torch.softmax(logits.masked_fill(~mask, -math.inf), dim=-1)
    return torch.where(mask, w, 0.0)  # rows of -inf only: softmax gives NaN → 0


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
    max_iter: int = 200,
) -> float:
    """The α at which ESS(tilt_weights(losses, α))/K equals ``ess_fraction``.

    A bracketing root search on log α; the ESS grows monotonically with α, from 1 (α → 0,
    the best draw only) to K (α → ∞, with ``log_ratio=None``). When all finite losses are
    equal every α gives the same weights and 1.0 is returned. Targets beyond what α → ∞ can
    reach (a proposal with a heavy importance ratio) return the largest α tried.

    Args:
        losses: ``(K,)`` losses.
        ess_fraction: target ESS/K, in (0, 1].
        log_ratio: optional ``(K,)`` importance log-ratios, as in :func:`tilt_weights`.

    Returns:
        α > 0 with ESS/K within ``rtol`` of the target (relative), where reachable: a float
        for ``(K,)`` losses, a tensor ``(...,)`` of one α per row for ``(..., K)`` (1.0 for a
        row without a finite loss), from the same root search run on all rows at once.
    """
    losses = _as_losses(losses)
    check_ess_fraction(ess_fraction)
    if losses.ndim > 1:
        return _solve_alpha_rows(losses, ess_fraction, log_ratio, rtol, max_iter)
    # a scalar root search over K numbers: numpy's per-call cost is a fraction of torch's
    values = losses.detach().cpu().double().numpy()
    mask = np.isfinite(values)
    if not mask.any():
        raise NonFiniteLossError(f"all {values.size} losses are NaN or Inf")
    finite = values[mask]
    k = values.size
    spread = float(finite.max() - finite.min())
    if spread == 0.0 or not math.isfinite(spread):
        return 1.0
    target = ess_fraction * k
    base = finite - finite.min()
    lr = None
    if log_ratio is not None:
        lr = torch.as_tensor(log_ratio).detach().cpu().double().numpy()[mask]

    def excess(log_alpha: float) -> float:
        """ESS(α) − target, from a softmax over the K finite losses."""
        logits = base * -math.exp(-log_alpha)
        if lr is not None:
            logits = logits + lr
        w = np.exp(logits - logits.max())
        s1 = w.sum()
        return float(s1 * s1 / np.dot(w, w)) - target

    # α ≪ spread: the best draw dominates; α ≫ spread: (nearly) uniform. The ESS is smooth
    # and monotone in log α, so a bracketing root finder on log α converges in a few
    # evaluations: regula falsi with the Illinois modification (Dowell & Jarratt, 1971),
    # which halves a stale end's value so that both ends keep moving.
    # The bracket starts at the losses' own scale (α ≈ their standard deviation) and widens
    # by e⁴ per try, up to e^±40 around the spread.
    center = math.log(max(float(base.std()), 1e-300))
    floor, ceil = math.log(spread) - 40.0, math.log(spread) + 40.0
    lo, hi = max(center - 2.0, floor), min(center + 2.0, ceil)
    f_lo, f_hi = excess(lo), excess(hi)
    while f_lo > 0 and lo > floor:
        hi, f_hi = lo, f_lo
        lo = max(lo - 4.0, floor)
        f_lo = excess(lo)
    while f_hi < 0 and hi < ceil:
        lo, f_lo = hi, f_hi
        hi = min(hi + 4.0, ceil)
        f_hi = excess(hi)
    if f_hi < 0:
        return math.exp(hi)
    if f_lo > 0:
        return math.exp(lo)
    tol = rtol * target
    mid, side = 0.5 * (lo + hi), 0
    for _ in range(max_iter):
        mid = (lo * f_hi - hi * f_lo) / (f_hi - f_lo) if f_hi != f_lo else 0.5 * (lo + hi)
        if not lo < mid < hi:
            mid = 0.5 * (lo + hi)
        f_mid = excess(mid)
        if abs(f_mid) <= tol:
            return math.exp(mid)
        if f_mid < 0:
            lo, f_lo = mid, f_mid
            if side == -1:
                f_hi *= 0.5
            side = -1
        else:
            hi, f_hi = mid, f_mid
            if side == 1:
                f_lo *= 0.5
            side = 1
    return math.exp(mid)


def _solve_alpha_rows(
    losses: Tensor, ess_fraction: float, log_ratio: Tensor | None, rtol: float, max_iter: int
) -> Tensor:
    """:func:`solve_alpha` on every row of ``(..., K)`` losses at once (same iteration)."""
    shape = losses.shape[:-1]
    values = losses.detach().cpu().double().reshape(-1, losses.shape[-1]).numpy()
    mask = np.isfinite(values)
    if not mask.any():
        raise NonFiniteLossError(f"all {values.size} losses are NaN or Inf")
    n, k = values.shape
    count = mask.sum(1)
    row_min = np.where(mask, values, np.inf).min(1)
    spread = np.where(mask, values, -np.inf).max(1) - row_min
    with np.errstate(invalid="ignore"):
        active = (count > 0) & (spread > 0) & np.isfinite(spread)
    out = np.ones(n)
    if not active.any():
        return torch.as_tensor(out, dtype=losses.dtype, device=losses.device).reshape(shape)
    values, mask, spread = values[active], mask[active], spread[active]
    base = np.where(mask, values - row_min[active, None], 0.0)
    lr = None
    if log_ratio is not None:
        lr = torch.as_tensor(log_ratio).detach().cpu().double().reshape(n, k).numpy()[active]
    target = ess_fraction * k

    def excess(log_alpha: np.ndarray) -> np.ndarray:
        logits = base * -np.exp(-log_alpha)[:, None]
        if lr is not None:
            logits = logits + lr
        logits = np.where(mask, logits, -np.inf)
        w = np.exp(logits - logits.max(1, keepdims=True))
        s1 = w.sum(1)
        return s1 * s1 / (w * w).sum(1) - target

    # the scalar search of solve_alpha, row-wise: bracket around the losses' scale, then
    # regula falsi with the Illinois modification; converged rows stay frozen
    cnt = mask.sum(1)
    mean = base.sum(1) / cnt
    std = np.sqrt((np.where(mask, base - mean[:, None], 0.0) ** 2).sum(1) / cnt)
    center = np.log(np.maximum(std, 1e-300))
    floor, ceil = np.log(spread) - 40.0, np.log(spread) + 40.0
    lo, hi = np.maximum(center - 2.0, floor), np.minimum(center + 2.0, ceil)
    f_lo, f_hi = excess(lo), excess(hi)
    while True:
        move = (f_lo > 0) & (lo > floor)
        if not move.any():
            break
        hi, f_hi = np.where(move, lo, hi), np.where(move, f_lo, f_hi)
        lo = np.where(move, np.maximum(lo - 4.0, floor), lo)
        f_lo = np.where(move, excess(lo), f_lo)
    while True:
        move = (f_hi < 0) & (hi < ceil)
        if not move.any():
            break
        lo, f_lo = np.where(move, hi, lo), np.where(move, f_hi, f_lo)
        hi = np.where(move, np.minimum(hi + 4.0, ceil), hi)
        f_hi = np.where(move, excess(hi), f_hi)
    result = np.where(f_hi < 0, hi, np.where(f_lo > 0, lo, np.nan))
    done = ~np.isnan(result)
    tol = rtol * target
    mid, side = 0.5 * (lo + hi), np.zeros(len(lo), dtype=int)
    for _ in range(max_iter):
        if done.all():
            break
        with np.errstate(invalid="ignore", divide="ignore"):
            mid = np.where(f_hi != f_lo, (lo * f_hi - hi * f_lo) / (f_hi - f_lo), 0.5 * (lo + hi))
        mid = np.where((lo < mid) & (mid < hi), mid, 0.5 * (lo + hi))
        f_mid = excess(mid)
        hit = ~done & (np.abs(f_mid) <= tol)
        result = np.where(hit, mid, result)
        done = done | hit
        left = ~done & (f_mid < 0)
        right = ~done & (f_mid >= 0)
        f_hi = np.where(left & (side == -1), 0.5 * f_hi, f_hi)
        f_lo = np.where(right & (side == 1), 0.5 * f_lo, f_lo)
        lo, f_lo = np.where(left, mid, lo), np.where(left, f_mid, f_lo)
        hi, f_hi = np.where(right, mid, hi), np.where(right, f_mid, f_hi)
        side = np.where(left, -1, np.where(right, 1, side))
    result = np.where(done, result, mid)
    out[active] = np.exp(result)
    return torch.as_tensor(out, dtype=losses.dtype, device=losses.device).reshape(shape)


def fill_worst(losses: Tensor, mask: Tensor | None = None) -> Tensor:
    """``(K,)`` losses with every non-finite entry replaced by the largest finite loss.

    The "failed is worst" rule of the linear limit. ``mask`` is ``isfinite(losses)`` when
    the caller has it already; a population with no finite loss raises
    :class:`NonFiniteLossError`.
    """
    if mask is None:
        mask = _finite_mask(losses)
    if losses.ndim == 1:
        return torch.where(mask, losses, losses[mask].max())
    # per row; a row without a finite loss becomes 0 (its weights are 0)
    row_max = torch.where(mask, losses, -math.inf).amax(dim=-1, keepdim=True)
    ok = mask.any(dim=-1, keepdim=True)
    return torch.where(mask, losses, torch.where(ok, row_max, 0.0))


def importance_weights(log_ratio: Tensor, mask: Tensor) -> Tensor:
    """v = softmax(log π − log q) over the draws where ``mask`` is True (others get 0).

    The self-normalised importance weights of π alone, along the last dimension: ``(..., K)``
    from ``(..., K)`` log-ratios.
    """
    return torch.softmax(log_ratio.masked_fill(~mask, -math.inf), dim=-1)


def linear_weights(losses: Tensor, alpha: float, log_ratio: Tensor | None = None) -> Tensor:
    """The α → ∞ limit of the centred tilt weights w − v.

    With draws from π (``log_ratio=None``): wᵢ − 1/K ≈ −(Lᵢ − L̄)/(Kα). With importance
    log-ratios log π − log q: wᵢ − vᵢ ≈ −vᵢ(Lᵢ − Σⱼ vⱼLⱼ)/α, v = :func:`importance_weights`.
    Non-finite losses take the largest finite loss (worst) and, with log-ratios, weight 0.
    Takes ``(K,)`` or ``(..., K)`` (one population per row; a row without a finite loss gets
    zeros) and returns the same shape, each row summing to 0.
    """
    losses = _as_losses(losses)
    alpha = _check_alpha(alpha)
    mask = _finite_mask(losses)
    filled = fill_worst(losses, mask)
    k = losses.shape[-1]
    if log_ratio is None:
        out = -(filled - filled.mean(dim=-1, keepdim=True)) / (k * alpha)
        return out if losses.ndim == 1 else torch.where(mask.any(-1, keepdim=True), out, 0.0)
    v = importance_weights(torch.as_tensor(log_ratio, dtype=losses.dtype), mask)
    if losses.ndim == 1:
        return -v * (filled - v @ filled) / alpha
    return -v * (filled - (v * filled).sum(dim=-1, keepdim=True)) / alpha


def centered_ranks(losses: Tensor) -> Tensor:
    """Centred ranks in [−0.5, 0.5]: the lowest loss maps to −0.5, the highest to +0.5.

    Used in place of L − L̄ (it plays the role of a loss, not a weight). Ties share their mean
    rank; non-finite losses rank last (worst). Returns ``(K,)`` summing to 0.
    """
    losses = _as_losses(losses, rows=False)
    k = losses.numel()
    if k < 2:
        return torch.zeros_like(losses)
    return _tied_ranks(losses) / (k - 1) - 0.5


def _tied_ranks(losses: Tensor) -> Tensor:
    """0-based ranks of ``(K,)`` losses (ties share their mean rank, non-finite rank last)."""
    k = losses.numel()
    mask = _finite_mask(losses)
    filled = torch.where(mask, losses, torch.full_like(losses, math.inf))
    order = torch.argsort(filled, stable=True)
    ranks = torch.empty(k, dtype=losses.dtype, device=losses.device)
    ranks[order] = torch.arange(k, dtype=losses.dtype, device=losses.device)
    # average the ranks of ties so that equal losses get equal shaped values
    uniq, inverse = torch.unique(filled, return_inverse=True)
    if uniq.numel() < k:
        # zeros_like(uniq): the losses' dtype and device (CUDA populations included)
        sums = torch.zeros_like(uniq).index_add_(0, inverse, ranks)
        counts = torch.zeros_like(uniq).index_add_(0, inverse, torch.ones_like(ranks))
        ranks = (sums / counts)[inverse]
    return ranks


def nes_utilities(losses: Tensor) -> Tensor:
    """NES utilities: uₖ = max(0, ln(K/2 + 1) − ln k)/Σⱼ max(0, ln(K/2 + 1) − ln j) − 1/K.

    k is the rank (1 for the lowest loss). Centred weights (larger is better, summing to 0),
    invariant to monotone transforms of the losses. Ties share the mean utility of their
    ranks, so equal losses give all-zero weights; non-finite losses rank last.
    """
    losses = _as_losses(losses, rows=False)
    k = losses.numel()
    table = torch.clamp(
        math.log(k / 2 + 1) - torch.log(torch.arange(1, k + 1, dtype=losses.dtype)), min=0
    )
    table = (table / table.sum() - 1.0 / k).to(losses.device)
    ranks = _tied_ranks(losses)
    lo = ranks.floor().long()
    hi = ranks.ceil().long()
    # a tie spanning ranks a..b has mean rank (a+b)/2; averaging the table over the span
    # is exact for pairs and a close stand-in for longer ties, and all-equal gives 0
    if bool((hi == lo).all()):
        out = table[lo]
        return out - out.mean()  # exactly centred (float rounding of the table's 1/K)
    csum = torch.cat([torch.zeros(1, dtype=table.dtype, device=table.device), table.cumsum(0)])
    filled = torch.where(torch.isfinite(losses), losses, torch.full_like(losses, math.inf))
    _, inverse, counts = torch.unique(filled, return_inverse=True, return_counts=True)
    n = counts[inverse]
    first = (ranks - (n - 1) / 2).round().long()
    out = (csum[first + n] - csum[first]) / n
    return out - out.mean()


def top_pair_weights(losses: Tensor, top: int) -> Tensor:
    """Augmented Random Search's weights over antithetic pairs (Mania et al. 2018, V1-t).

    ``losses`` ``(K,)`` come in interleaved pairs (L⁺ᵢ, L⁻ᵢ). The ``top`` pairs with the best
    min(L⁺, L⁻) keep c⁺ = −c⁻ = −(L⁺ − L⁻)/(2·b·σ_R), σ_R the standard deviation of their 2b
    losses; the others get 0. Then Σᵢ cᵢ zᵢ = Σ_top (r⁺ − r⁻) δ/(b σ_R) with r = −L, ARS's
    step direction. Non-finite losses take the largest finite loss. Returns ``(K,)``.

    The K numbers are weighed in numpy on the host (torch's per-call cost is most of the
    work at small K), with torch's float operations: the weights torch computes in the
    losses' dtype, bit for bit (bfloat16 losses, which numpy lacks, are weighed in float32).
    """
    losses = _as_losses(losses, rows=False)
    if losses.numel() % 2:
        raise ValueError(f"losses must come in antithetic pairs (even K), got {losses.numel()}")
    n = losses.numel() // 2
    if isinstance(top, bool) or not isinstance(top, int) or not 1 <= top <= n:
        raise ValueError(f"top must be an int in [1, {n}] (the number of pairs), got {top!r}")
    values = _host_losses(losses)
    mask = np.isfinite(values)
    if not mask.all():
        if not mask.any():
            raise NonFiniteLossError(f"all {values.size} losses are NaN or Inf")
        values = np.where(mask, values, values[mask].max())  # fill_worst
    pairs = values.reshape(n, 2)
    best = np.argsort(pairs.min(axis=1), kind="stable")[:top]
    kept = pairs[best]
    # torch's std (its reduction order and accumulation), on the same contiguous values
    std = float(torch.from_numpy(kept).std(unbiased=False)) if kept.size > 1 else 0.0
    c = np.zeros_like(pairs)
    diff = _divide(kept[:, 0] - kept[:, 1], 2 * top * (std if std > 0 else 1.0))
    c[best, 0] = -diff
    c[best, 1] = diff
    return torch.from_numpy(c.reshape(-1)).to(losses.device, losses.dtype)


def _host_losses(losses: Tensor) -> np.ndarray:
    """``(K,)`` losses as a numpy array of their dtype on the host (float32 for bfloat16,
    which numpy lacks)."""
    losses = losses.detach().cpu()
    return (losses.float() if losses.dtype == torch.bfloat16 else losses).numpy()


def _divide(x: np.ndarray, divisor: float) -> np.ndarray:
    """``x / divisor`` as torch divides a tensor by a Python number: both in the dtype's
    computation type (float32 for float16), the result rounded to ``x``'s dtype."""
    op = np.result_type(x.dtype, np.float32)
    return (x.astype(op) / op.type(divisor)).astype(x.dtype)
