"""Importance mixing: reuse the previous generation's draws through their density ratio.

Sun, Wierstra, Schaul & Schmidhuber (2009), "Efficient Natural Evolution Strategies", GECCO.
After a step the proposal moves from π_old = N(θ_old, σ²·S_old S_oldᵀ) to
π_new = N(θ_new, σ²·S_new S_newᵀ). Each of the K slots of the next generation is filled by

1. keeping its previous draw x with probability min(1, (1 − α₀)·π_new(x)/π_old(x));
2. otherwise drawing x' ~ π_new until one is accepted with probability
   max(α₀, 1 − π_old(x')/π_new(x')), and evaluating only that one.

A slot's draw then has the density min(π_old, (1 − α₀)π_new) + max(α₀π_new, π_new − π_old)
= π_new, independently of the other slots: the mixed generation is K independent draws from
π_new, so the estimators weigh it exactly as a fresh one (no importance weights), while only
the refreshed slots cost evaluations. α₀ ∈ (0, 1) is the minimal refresh rate. One slot, chosen
at random independently of the draws, is always refreshed, so that every generation evaluates
at least one new point (an independent choice leaves the slot's density π_new).

The kept draws, their losses and the proposal they came from are state: they travel in the
estimator's checkpoint, so a resumed run reuses the same draws.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from zoopt.checkpoint import check_float_tensors
from zoopt.population import (
    ExplicitPopulation,
    GaussianPopulation,
    noise_block_seed,
    shape_rows,
)
from zoopt.proposal import GaussianProposal, log_det, whiten

__all__ = ["ImportanceMixing", "check_refresh"]

#: block index of the uniform variates (the draws themselves use blocks 0, 1, …)
_UNIFORM_STREAM = 1 << 40


def check_refresh(value: object) -> float | None:
    """``importance_mixing``: None/False (off) or the minimal refresh rate α₀ in (0, 1)."""
    if value is None or value is False:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise ValueError(
            "importance_mixing must be None (off) or the minimal refresh rate, a number in "
            f"(0, 1), got {value!r}"
        )
    return float(value)


class ImportanceMixing:
    """The reused draws of one estimator and the rule that keeps or refreshes them.

    Args:
        refresh: α₀ ∈ (0, 1), the minimal expected fraction of new draws.
    """

    def __init__(self, refresh: float):
        self.refresh = refresh
        self.kept: dict | None = None  # centre, scale, rows (K, D), losses (K,)
        self._pending: dict | None = None

    def ask(
        self, proposal: GaussianProposal, x: Tensor, seed: int, size: int
    ) -> ExplicitPopulation:
        """The draws to evaluate this step (the refreshed slots), ``(n, D)`` with n ≥ 1.

        Args:
            proposal: the current proposal (σ and its shape S).
            x: ``(D,)`` the current centre θ.
            seed: the step's seed (draws and acceptance variates come from it).
            size: K, the generation size.
        """
        x = x.detach()
        d = x.numel()
        sigma, scale = proposal.sigma, proposal.scale
        new_logdet = log_det(scale)
        g = torch.Generator().manual_seed(noise_block_seed(seed, _UNIFORM_STREAM))
        kept = self.kept
        if kept is not None and (kept["rows"].shape != (size, d) or kept["sigma"] != sigma):
            kept = None  # another generation size or σ: start afresh
        keep = torch.zeros(size, dtype=torch.bool)
        z = torch.zeros(size, d, dtype=x.dtype)
        source = GaussianPopulation(x, sigma, seed, 1, antithetic=False)
        if kept is None:
            z = source.noise(0, size)
        else:
            rows = kept["rows"].to(x)
            z_new = whiten(rows - x, sigma, scale)
            z_old = whiten(rows - kept["center"].to(x), sigma, kept["scale"])
            # log π_new(x) − log π_old(x); σ and 2π cancel
            log_r = (
                -0.5 * (z_new * z_new).sum(1)
                + 0.5 * (z_old * z_old).sum(1)
                - new_logdet
                + log_det(kept["scale"])
            )
            u = torch.rand(size, generator=g, dtype=torch.float64)
            keep = torch.log(u).to(log_r) < math.log1p(-self.refresh) + log_r
            forced = int(torch.randint(size, (1,), generator=g))
            keep[forced] = False
            z = z_new.clone()
            z[forced] = source.noise(0, 1)[0]  # a plain draw from π_new
            tested = ~keep
            tested[forced] = False
            z[tested] = self._refreshed(x, sigma, scale, kept, int(tested.sum()), source, g)
        fresh = ~keep
        rows = x + sigma * shape_rows(z[fresh], scale)
        self._pending = {
            "center": x.clone(),
            "scale": None if scale is None else scale.detach().clone(),
            "sigma": sigma,
            "keep": keep,
            "z": z,
            "rows": rows,
        }
        return ExplicitPopulation(rows)

    def _refreshed(
        self,
        x: Tensor,
        sigma: float,
        scale: Tensor | None,
        kept: dict,
        need: int,
        source: GaussianPopulation,
        g: torch.Generator,
    ) -> Tensor:
        """``need`` draws z ~ N(0, I) of π_new, each accepted with probability
        max(α₀, 1 − π_old/π_new): ``(need, D)``."""
        if need == 0:
            return source.noise(0, 0)
        center_old = kept["center"].to(x)
        offset = log_det(scale) - log_det(kept["scale"])
        out, start, found = [], 1, 0  # noise row 0 is the always-refreshed slot's
        while found < need:
            batch = max(4 * need, 16)
            z = source.noise(start, start + batch)
            start += batch
            z_old = whiten(sigma * shape_rows(z, scale) + (x - center_old), sigma, kept["scale"])
            # log π_old(x') − log π_new(x')
            log_q = -0.5 * (z_old * z_old).sum(1) + 0.5 * (z * z).sum(1) + offset
            accept = torch.clamp(1 - torch.exp(log_q), min=self.refresh)
            u = torch.rand(batch, generator=g, dtype=torch.float64).to(accept)
            out.append(z[u < accept])
            found += len(out[-1])
        return torch.cat(out)[:need]

    def tell(self, losses: Tensor) -> tuple[Tensor, Tensor]:
        """Join the fresh ``(n,)`` losses with the kept draws: ``(z (K, D), losses (K,))``,
        z the unit-normal rows of the whole generation under the current proposal."""
        p, self._pending = self._pending, None
        if p is None:
            raise RuntimeError("importance mixing: tell() without a pending ask()")
        keep, z = p["keep"], p["z"]
        size = keep.numel()
        all_losses = torch.empty(size, dtype=losses.dtype, device=losses.device)
        rows = torch.empty(size, z.shape[1], dtype=p["rows"].dtype)
        if bool(keep.any()):
            all_losses[keep] = self.kept["losses"].to(losses)[keep]
            rows[keep] = self.kept["rows"].to(rows)[keep]
        all_losses[~keep] = losses
        rows[~keep] = p["rows"]
        self.kept = {
            "center": p["center"],
            "scale": p["scale"],
            "sigma": p["sigma"],
            "rows": rows,
            "losses": all_losses.detach().clone(),
        }
        return z, all_losses

    def state_dict(self) -> dict | None:
        """The kept generation (None before the first step)."""
        if self.kept is None:
            return None
        return {k: (v.clone() if isinstance(v, Tensor) else v) for k, v in self.kept.items()}

    def load_state_dict(self, state: dict | None) -> None:
        """Restore :meth:`state_dict`.

        Raises:
            ValueError: an entry is missing or not the kept generation's: ``center`` ``(D,)``,
                ``rows`` ``(n, D)`` and ``losses`` ``(n,)`` float tensors, ``sigma`` a
                positive number (nothing is restored).
        """
        self._pending = None
        if state is None:
            self.kept = None
            return
        missing = {"center", "scale", "sigma", "rows", "losses"} - set(state)
        if missing:
            raise ValueError(f"importance mixing state: missing entry {sorted(missing)[0]!r}")
        where = "importance mixing state"
        shape = check_float_tensors(state, {"center": 1, "rows": 2, "losses": 1}, where)
        center, rows, losses = shape["center"], shape["rows"], shape["losses"]
        if rows[1] != center[0] or losses[0] != rows[0]:
            raise ValueError(
                f"{where}: center (D,), rows (n, D) and losses (n,) disagree: {center}, {rows}, "
                f"{losses}"
            )
        sigma = state["sigma"]
        number = isinstance(sigma, (int, float)) and not isinstance(sigma, bool)
        if not (number or (isinstance(sigma, Tensor) and sigma.numel() == 1)):
            raise ValueError(f"{where}: sigma must be a number, got {sigma!r:.40}")
        if not float(sigma) > 0 or not math.isfinite(float(sigma)):
            raise ValueError(f"{where}: sigma must be > 0, got {float(sigma)}")
        self.kept = {k: (v.clone() if isinstance(v, Tensor) else v) for k, v in state.items()}


def check_mixing(value: object, antithetic: bool) -> float | None:
    """Validate an estimator's ``importance_mixing`` against its other options."""
    refresh = check_refresh(value)
    if refresh is not None and antithetic:
        raise ValueError(
            "importance_mixing reuses independent draws, which antithetic pairs are not: "
            "set antithetic=False"
        )
    return refresh


def make_mixing(refresh: float | None) -> ImportanceMixing | None:
    """The estimator's mixing state, or None when it is off."""
    return None if refresh is None else ImportanceMixing(refresh)


def mixing_state(state: dict, mixing: ImportanceMixing | None) -> dict:
    """``state`` with the kept generation under ``"mixing"`` when mixing is on."""
    if mixing is not None:
        state = dict(state, mixing=mixing.state_dict())
    return state


def load_mixing_state(state: dict, mixing: ImportanceMixing | None) -> None:
    """Restore the kept generation of :func:`mixing_state`."""
    if mixing is not None:
        mixing.load_state_dict(state.get("mixing"))
