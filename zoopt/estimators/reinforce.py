"""REINFORCE and its tilted generalisation: the step estimated from the model's own outputs.

For an input x_n (a state, an image, a source sentence) draw M outputs y_n1..y_nM ~ p_θ(·|x_n)
(actions/episodes, labels, token sequences) with losses ℓ_nj. The tilted target
p*(y) ∝ p_θ(y|x)·exp(−ℓ(y)/α) gives the weights w_n = softmax(−ℓ_n/α) over each input's draws
and the pseudo-gradient (zoopt's "one scale for all" rule)

    g = −(1/N) Σ_n α Σ_j (w_nj − 1/M) ∇_θ log p_θ(y_nj | x_n).

As α → ∞, α(w_nj − 1/M) → −(ℓ_nj − ℓ̄_n)/M and g becomes REINFORCE with the mean baseline
(Williams, 1992)

    g = (1/N) Σ_n (1/M) Σ_j (ℓ_nj − ℓ̄_n) ∇_θ log p_θ(y_nj | x_n),

computed here with that exact linear formula (``alpha=float("inf")``, the default). Because
ℓ̄_n includes ℓ_nj itself, its expectation is (1 − 1/M)·∇E[ℓ]; the leave-one-out baseline
ℓ_nj − mean_{k≠j} ℓ_nk = (M/(M−1))·(ℓ_nj − ℓ̄_n) (Kool et al., 2019, "Buy 4 REINFORCE
samples, get a baseline for free!") removes that factor and is unbiased. At finite α the
estimate is the reward-weighted, minimum-risk-style step toward p* (the output-space twin of
:mod:`zoopt.estimators.sampling`); ``alpha="auto"`` solves α per input so that the
effective sample size is ``ess_fraction``·M (:func:`zoopt.weights.solve_alpha`).

One backward pass computes g: the surrogate S = (1/N) Σ_nj a_nj log p_θ(y_nj|x_n), with
the coefficients a_nj held constant, has ∇S = g. An entropy bonus subtracts
``entropy_coef``·∇H̄ (H̄ the mean entropy of p_θ(·|x_n)), pushing toward more exploration.

The objective provides the draws through the output-sampling protocol
(:meth:`zoopt.objectives.base.Objective.sample_outputs` returning
:class:`zoopt.objectives.base.OutputSamples`). Non-finite losses follow
:mod:`zoopt.weights`: the tilt drops them, the linear (α = ∞) limit gives them the largest
finite loss of their input.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from zoopt.estimators import register
from zoopt.estimators.base import Estimate, Estimator, check_positive
from zoopt.objectives.base import Objective, OutputSamples
from zoopt.weights import (
    NonFiniteLossError,
    check_ess_fraction,
    linear_weights,
    solve_alpha,
    tilt_weights,
)

__all__ = ["Reinforce", "row_tilt_weights"]

BASELINES = ("mean", "leave_one_out")


def row_tilt_weights(losses: Tensor, alpha: Tensor | float) -> Tensor:
    """:func:`zoopt.weights.tilt_weights` over the rows of ``(N, M)`` losses.

    ``alpha``: one temperature for all rows or ``(N,)``; a row without a finite loss gets
    all zeros (so does a batch without any).
    """
    if not bool(torch.isfinite(losses).any()):
        return torch.zeros_like(losses)
    if not isinstance(alpha, Tensor):
        alpha = torch.full(losses.shape[:1], float(alpha), dtype=losses.dtype)
    return tilt_weights(losses, alpha.reshape(-1))


@register("reinforce")
class Reinforce(Estimator):
    """Score-function (REINFORCE) pseudo-gradient from sampled outputs, optionally tilted.

    Args:
        samples: M ≥ 2 outputs drawn per input (per state, image, source sentence).
        alpha: ``float("inf")`` (default; REINFORCE with the baseline below, exactly), a
            temperature α > 0 (the tilted, reward-weighted estimate), or ``"auto"`` (α per
            input such that ESS = ``ess_fraction``·M).
        ess_fraction: target ESS/M for ``alpha="auto"``, in (0, 1].
        baseline: ``"mean"`` (ℓ − ℓ̄ over the M draws; expectation (1 − 1/M)·∇) or
            ``"leave_one_out"`` (ℓ_j − mean of the other draws; unbiased).
        entropy_coef: c ≥ 0; the estimate becomes g − c·∇H̄ (needs an objective that
            reports the entropy of its output distribution).
    """

    def __init__(
        self,
        samples: int = 16,
        alpha: float | str = math.inf,
        ess_fraction: float = 0.5,
        baseline: str = "mean",
        entropy_coef: float = 0.0,
    ):
        self.samples = check_positive("samples", samples, integer=True, minimum=2, inclusive=True)
        if alpha != "auto":
            check_positive("alpha", alpha)
        self.alpha = alpha
        self.ess_fraction = check_ess_fraction(ess_fraction)
        if baseline not in BASELINES:
            raise ValueError(f"baseline must be one of {BASELINES}, got {baseline!r}")
        self.baseline = baseline
        self.entropy_coef = float(check_positive("entropy_coef", entropy_coef, inclusive=True))

    def setup(self, objective: Objective, x0: Tensor) -> None:
        super().setup(objective, x0)
        if not objective.can_sample_outputs:
            name = getattr(objective, "name", type(objective).__name__)
            raise TypeError(
                f"'reinforce' needs an objective that samples its own outputs; {name!r} "
                f"({type(objective).__name__}) does not implement "
                "sample_outputs(x, num_samples, generator, seed) -> OutputSamples(log_probs "
                "(N, M) differentiable w.r.t. x, losses (N, M), entropy (N,) optional). "
                "A policy, classifier or sequence model objective does; for a plain loss "
                "function use 'es', 'sampling' or 'cmaes'."
            )

    # -- the weights --------------------------------------------------------------------------
    def coefficients(self, losses: Tensor) -> tuple[Tensor, float, float]:
        """The coefficients a ``(N, M)`` with g = (1/N)·Σ_nj a_nj ∇log p_nj, and (α, ESS).

        a = (ℓ − ℓ̄)/M at α = ∞ and −α(w − 1/M) at finite α, times M/(M−1) for the
        leave-one-out baseline (M the number of finite draws of the row for the tilt, which
        drops failed draws). The returned α is the mean over inputs (``"auto"`` solves one
        per input), the ESS the mean of Kish's (Σw)²/Σw² over inputs.
        """
        if losses.ndim != 2:
            raise ValueError(f"losses must be (N, M), got shape {tuple(losses.shape)}")
        mask = torch.isfinite(losses)
        if not bool(mask.any()):
            raise NonFiniteLossError(f"all {losses.numel()} sampled losses are NaN/Inf")
        n, m = losses.shape
        rows_ok = mask.any(dim=1, keepdim=True)
        if self.alpha != "auto" and math.isinf(self.alpha):
            # the linear limit, exactly: a = −linear_weights at α = 1, i.e. (ℓ − ℓ̄)/M with
            # failed draws at their row's largest finite loss (rows without any: 0)
            a = -linear_weights(losses, 1.0)
            if self.baseline == "leave_one_out":
                a = a * (m / (m - 1))
            ess = float(mask.sum(dim=1).to(losses.dtype).mean())
            return a, math.inf, ess
        if self.alpha == "auto":
            alphas = solve_alpha(losses, self.ess_fraction)  # (N,), one root search for all
        else:
            alphas = torch.full((n,), float(self.alpha), dtype=losses.dtype, device=losses.device)
        w = tilt_weights(losses, alphas)
        count = mask.sum(dim=1, keepdim=True).to(losses.dtype)
        v = mask.to(losses.dtype) / count.clamp(min=1)  # 1/M over the finite draws
        a = -alphas.reshape(-1, 1) * (w - v)
        if self.baseline == "leave_one_out":
            a = a * torch.where(count > 1, count / (count - 1).clamp(min=1), 0.0)
        wr = w[rows_ok[:, 0]]
        ess = wr.sum(1) ** 2 / (wr * wr).sum(1)
        return a, float(alphas.mean()), float(ess.mean())

    # -- one step ----------------------------------------------------------------------------
    def estimate(self, objective: Objective, x: Tensor, evaluator: Any, seed: int) -> Estimate:
        """Draw M outputs per input at ``x`` ``(D,)`` and return the pseudo-gradient ``(D,)``."""
        generator = torch.Generator()
        generator.manual_seed(int(seed))
        xg = x.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            out = objective.sample_outputs(xg, self.samples, generator, seed)
            log_probs, losses, entropy = self._check_samples(objective, out)
            self._warn_nonfinite(losses.reshape(-1))
            # the coefficients meet log_probs: their dtype and device (an objective may score
            # draws on the CPU while x and its log-probabilities live on a GPU)
            a, alpha, ess = self.coefficients(losses.to(log_probs.device, log_probs.dtype))
            n = log_probs.shape[0]
            # ∇ of S = (1/N) Σ a·log p is the pseudo-gradient g (a held constant)
            surrogate = (a * torch.where(a != 0, log_probs, 0.0)).sum() / n
            if self.entropy_coef > 0:
                surrogate = surrogate - self.entropy_coef * entropy.mean()
            (grad,) = torch.autograd.grad(surrogate, xg, allow_unused=True)
        if grad is None:
            grad = torch.zeros_like(x)
        finite = torch.isfinite(losses)
        extra = {"sample_loss": float(losses[finite].mean())}
        if entropy is not None:
            extra["entropy"] = float(entropy.detach().mean())
        return Estimate(
            grad=grad.detach(),
            losses=losses.reshape(-1),
            # one evaluation = one complete scoring of the step's N inputs (the unit of a
            # candidate's evaluation in parameter space): each of the M draws is one
            evaluations=losses.shape[1],
            alpha=alpha,
            ess=ess,
            extra=extra,
        )

    def _check_samples(
        self, objective: Objective, out: Any
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        name = getattr(objective, "name", type(objective).__name__)
        if not isinstance(out, OutputSamples):
            raise TypeError(
                f"{name}.sample_outputs must return OutputSamples, got {type(out).__name__}"
            )
        log_probs, losses, entropy = out.log_probs, out.losses, out.entropy
        m = self.samples
        for what, value in (("log_probs", log_probs), ("losses", losses)):
            if not isinstance(value, Tensor):
                raise TypeError(
                    f"{name}: {what} must be a tensor of shape (N, {m}) (N inputs, {m} draws "
                    f"each) of real numbers, got {type(value).__name__}"
                )
        if not isinstance(log_probs, Tensor) or log_probs.ndim != 2 or log_probs.shape[1] != m:
            shape = tuple(log_probs.shape) if isinstance(log_probs, Tensor) else log_probs
            raise ValueError(f"{name}: log_probs must have shape (N, {m}), got {shape}")
        if not isinstance(losses, Tensor) or losses.shape != log_probs.shape:
            shape = tuple(losses.shape) if isinstance(losses, Tensor) else losses
            raise ValueError(
                f"{name}: losses must have the shape of log_probs {tuple(log_probs.shape)}, "
                f"got {shape}"
            )
        if not log_probs.requires_grad:
            raise TypeError(
                f"{name}: log_probs carry no gradient; compute them from the parameters x "
                "with differentiable torch operations (no .detach() or no_grad)"
            )
        if self.entropy_coef > 0:
            if entropy is None or not isinstance(entropy, Tensor):
                raise TypeError(
                    f"entropy_coef={self.entropy_coef} needs the entropy of the output "
                    f"distribution, but {name}.sample_outputs returns entropy=None"
                )
            if entropy.shape != (log_probs.shape[0],) or not entropy.requires_grad:
                raise ValueError(
                    f"{name}: entropy must be a differentiable tensor of shape "
                    f"({log_probs.shape[0]},), got {tuple(entropy.shape)}"
                )
        if losses.dtype == torch.bool or losses.is_complex():
            # a mask or a complex value is not a loss; coercing it would hide the mistake
            raise TypeError(f"{name}: losses must be real numbers, got dtype {losses.dtype}")
        if not losses.is_floating_point():
            losses = losses.to(log_probs.dtype)
        return log_probs, losses.detach(), entropy
