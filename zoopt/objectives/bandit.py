"""A categorical bandit: the smallest objective that speaks both zoopt languages.

The parameters x ``(A,)`` are the logits of a softmax policy p = softmax(x) over A arms
with known losses ℓ ``(A,)``. The objective is the expected loss

    L(x) = Σ_a p_a ℓ_a,    ∇L(x)_k = p_k (ℓ_k − L(x)),

so it has an exact gradient to test estimators against (Williams, 1992: the score-function
estimate E_{a~p}[ℓ_a ∇ log p_a] equals ∇L). It offers

* :meth:`CategoricalBandit.evaluate` — L for a population of logit vectors, so the
  parameter-space estimators ("es", "sampling", "cmaes") run on it;
* :meth:`CategoricalBandit.surrogate` — L itself, differentiable ("gradient");
* :meth:`CategoricalBandit.sample_outputs` — M pulled arms per round with their
  log-probabilities and (optionally noisy) losses ("reinforce").
"""

from __future__ import annotations

import torch
from torch import Tensor

from zoopt.objectives.base import Objective, OutputSamples

__all__ = ["CategoricalBandit"]


class CategoricalBandit(Objective):
    """Softmax policy over A arms with known losses.

    Args:
        losses: ``(A,)`` finite loss of each arm (A ≥ 2), lower is better.
        noise: standard deviation σ ≥ 0 of Gaussian noise added to each sampled loss
            (the expected loss is unchanged).
        rounds: N, independent rounds per :meth:`sample_outputs` call (the "inputs" of the
            output-sampling protocol; each round pulls M arms).
    """

    metric_name = "expected_loss"

    def __init__(self, losses: Tensor, noise: float = 0.0, rounds: int = 1):
        losses = torch.as_tensor(losses)
        if losses.ndim != 1 or losses.numel() < 2:
            raise ValueError(
                f"losses must be a 1-D tensor (A,) with A >= 2 arms, got shape "
                f"{tuple(losses.shape)}"
            )
        if not losses.is_floating_point():
            losses = losses.to(torch.get_default_dtype())
        if not bool(torch.isfinite(losses).all()):
            raise ValueError("losses must be finite")
        if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not noise >= 0:
            raise ValueError(f"noise must be a number >= 0, got {noise!r}")
        if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
            raise ValueError(f"rounds must be a positive int, got {rounds!r}")
        self.losses = losses.detach().clone()
        self.noise = float(noise)
        self.rounds = rounds
        self.dim = losses.numel()
        self.name = "CategoricalBandit"

    def _check(self, X: Tensor) -> None:
        if X.shape[-1] != self.dim:
            raise ValueError(
                f"CategoricalBandit has {self.dim} arms: parameters must have {self.dim} "
                f"logits in the last dimension, got shape {tuple(X.shape)}"
            )

    def expected_loss(self, X: Tensor) -> Tensor:
        """L = softmax(X)·ℓ for ``(..., A)`` logits, shape ``(...)`` (differentiable)."""
        self._check(X)
        return torch.softmax(X, dim=-1) @ self.losses.to(X)

    def gradient(self, x: Tensor) -> Tensor:
        """The exact ∇L(x)_k = p_k (ℓ_k − L(x)) at logits ``x`` ``(A,)``, shape ``(A,)``."""
        self._check(x)
        p = torch.softmax(x.detach(), dim=-1)
        ell = self.losses.to(p)
        return p * (ell - p @ ell)

    def evaluate(self, X: Tensor, seed: int = 0) -> Tensor:
        """Expected losses ``(K,)`` of ``(K, A)`` logit vectors (noise-free)."""
        with torch.no_grad():
            return self.expected_loss(X)

    def surrogate(self, x: Tensor, seed: int = 0) -> Tensor:
        """The expected loss at ``x`` ``(A,)`` as a differentiable scalar."""
        return self.expected_loss(x)

    def sample_outputs(
        self, x: Tensor, num_samples: int, generator: torch.Generator, seed: int = 0
    ) -> OutputSamples:
        """Pull M = ``num_samples`` arms in each of N = ``rounds`` rounds from softmax(x).

        Returns :class:`OutputSamples` with ``log_probs (N, M)`` = log p_a of each pulled
        arm (differentiable with respect to ``x``), ``losses (N, M)`` its loss plus noise,
        and ``entropy (N,)`` = −Σ_a p_a log p_a (differentiable).
        """
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
            raise ValueError(f"num_samples must be a positive int, got {num_samples!r}")
        self._check(x)
        log_p = torch.log_softmax(x, dim=-1)
        probs = log_p.detach().exp().to(generator.device)
        arms = torch.multinomial(
            probs.expand(self.rounds, -1), num_samples, replacement=True, generator=generator
        ).to(x.device)  # (N, M)
        ell = self.losses.to(log_p)[arms]
        if self.noise > 0:
            noise = torch.randn(arms.shape, generator=generator, dtype=ell.dtype)
            ell = ell + self.noise * noise.to(ell.device)
        log_probs = log_p[arms]
        entropy = -(log_p.exp() * log_p).sum().expand(self.rounds)
        return OutputSamples(log_probs=log_probs, losses=ell.detach(), entropy=entropy)

    def best_loss(self) -> float:
        """The smallest arm loss (the infimum of L, approached as one logit → ∞)."""
        return float(self.losses.min())

    def __repr__(self) -> str:
        arms = ", ".join(f"{v:.3g}" for v in self.losses.tolist())
        extra = f", noise={self.noise}" if self.noise else ""
        extra += f", rounds={self.rounds}" if self.rounds != 1 else ""
        return f"CategoricalBandit([{arms}]{extra})"
