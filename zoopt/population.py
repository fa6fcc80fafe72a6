"""Populations: what an estimator asks to be evaluated.

Two kinds share one interface (``len``, ``rows(start, stop)``, ``materialize()``):

* :class:`ExplicitPopulation` holds a ``(K, D)`` tensor of candidates (CMA-ES, guided
  proposals).
* :class:`GaussianPopulation` is θ + σ·S zᵢ with zᵢ ~ N(0, I) regenerated on demand from a
  seed, in fixed blocks of noise rows, and S the proposal's adapted shape: the identity, a
  per-coordinate scale s ``(D,)`` (S zᵢ = s ⊙ zᵢ) or a full factor A ``(D, D)``
  (S zᵢ = A zᵢ; see :mod:`zoopt.proposal`). A worker given ``(center, sigma, scale, seed,
  start, stop)`` rebuilds its own slice, so the bytes sent per step do not grow with K, and
  every backend sees the same noise.

Estimators read a Gaussian population back only through :meth:`GaussianPopulation.reduce`
(Σᵢ cᵢ zᵢ and, for adaptation, Σᵢ cᵢ (zᵢ² − 1) or Σᵢ cᵢ (zᵢzᵢᵀ − I)), so an evaluator that
holds the rows elsewhere can compute those sums where the rows are (``reducer``).

Row order for antithetic sampling is interleaved, ``[+ε₀, −ε₀, +ε₁, −ε₁, …]``, so any even
row range holds whole pairs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

__all__ = [
    "CenteredPopulation",
    "ExplicitPopulation",
    "GaussianPopulation",
    "Population",
    "noise_block_seed",
    "shape_rows",
    "weighted_moments",
]

#: noise rows per independently seeded block
NOISE_BLOCK = 16


_MASK64 = (1 << 64) - 1


def _splitmix64(z: int) -> int:
    """One round of SplitMix64 (Steele et al., 2014): a cheap, well-mixed 64-bit hash."""
    z = (z + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def noise_block_seed(seed: int, block: int) -> int:
    """A 63-bit seed for noise block ``block`` of a step seeded ``seed``."""
    return _splitmix64(_splitmix64(int(seed) & _MASK64) ^ int(block)) >> 1


def shape_rows(z: Tensor, scale: Tensor | None) -> Tensor:
    """S z for rows ``z`` ``(n, D)``: the identity (``scale`` None), s ⊙ z or z Aᵀ."""
    if scale is None:
        return z
    scale = scale.to(z)
    return z * scale if scale.ndim == 1 else z @ scale.T


def weighted_moments(
    z: Tensor, coeffs: Tensor, square: bool = False, full: bool = False
) -> tuple[Tensor, Tensor | None]:
    """``(Σᵢ cᵢ zᵢ, M)`` for unit-normal rows ``z`` ``(K, D)`` and coefficients ``(K,)``.

    M is None unless ``square``; then Σᵢ cᵢ (zᵢ² − 1) ``(D,)``, or Σᵢ cᵢ (zᵢzᵢᵀ − I)
    ``(D, D)`` when ``full``.
    """
    c = coeffs.to(z)
    first = c @ z
    if not square:
        return first, None
    total = c.sum()
    if full:
        eye = torch.eye(z.shape[1], dtype=z.dtype, device=z.device)
        return first, (z.T * c) @ z - total * eye
    return first, c @ (z * z) - total


@dataclass
class ExplicitPopulation:
    """A population given as a ``(K, D)`` tensor.

    ``offsets`` ``(K, D)`` and ``log_ratio`` ``(K,)`` carry, for proposals other than π, the
    draws relative to θ and their importance log-ratios log π − log q.
    """

    candidates: Tensor
    offsets: Tensor | None = None
    log_ratio: Tensor | None = None

    def __len__(self) -> int:
        return self.candidates.shape[0]

    @property
    def dim(self) -> int:
        """D, the number of parameters per candidate."""
        return self.candidates.shape[1]

    def rows(self, start: int, stop: int) -> Tensor:
        """Candidates ``start:stop``, shape ``(stop - start, D)``."""
        return self.candidates[start:stop]

    def materialize(self) -> Tensor:
        """All candidates, ``(K, D)``."""
        return self.candidates


@dataclass
class GaussianPopulation:
    """θ + σ·S z, z ~ N(0, I) regenerated from ``seed``.

    Attributes:
        center: ``(D,)`` θ.
        sigma: σ > 0.
        seed: the step's noise seed.
        size: K, the number of candidates (even when ``antithetic``).
        antithetic: rows come in pairs (+z, −z).
        scale: the adapted shape S: None (the identity), a ``(D,)`` per-coordinate scale or
            a ``(D, D)`` factor A (candidate i is θ + σ·A zᵢ).
        reducer: optional ``reducer(population, coeffs, square)`` that computes
            :meth:`reduce` where the rows live (set by an evaluator; not compared, not
            pickled).
    """

    center: Tensor
    sigma: float
    seed: int
    size: int
    antithetic: bool = True
    scale: Tensor | None = None
    reducer: Callable | None = field(default=None, repr=False, compare=False)
    _cache: Tensor | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.scale is None:
            return
        d = self.center.shape[0]
        if tuple(self.scale.shape) not in ((d,), (d, d)):
            raise ValueError(
                f"scale must be None, a (D,) scale or a (D, D) factor with D={d}, "
                f"got shape {tuple(self.scale.shape)}"
            )

    def __getstate__(self) -> dict:
        # never ship the cached noise (receivers regenerate it from the seed) nor the reducer
        state = dict(self.__dict__)
        state["_cache"] = None
        state["reducer"] = None
        return state

    def __eq__(self, other: object) -> bool:
        # tensors compare by value (the dataclass default would compare them elementwise)
        if not isinstance(other, GaussianPopulation):
            return NotImplemented
        same = (self.sigma, self.seed, self.size, self.antithetic) == (
            other.sigma,
            other.seed,
            other.size,
            other.antithetic,
        )
        return (
            same
            and torch.equal(self.center, other.center)
            and (self.scale is None) == (other.scale is None)
            and (self.scale is None or torch.equal(self.scale, other.scale))
        )

    __hash__ = None  # mutable, compared by value

    def __len__(self) -> int:
        return self.size

    @property
    def dim(self) -> int:
        """D, the number of parameters per candidate."""
        return self.center.shape[0]

    @property
    def num_noise(self) -> int:
        """Number of independent noise rows (K/2 when antithetic, else K)."""
        return self.size // 2 if self.antithetic else self.size

    def noise(self, start: int = 0, stop: int | None = None) -> Tensor:
        """Independent noise rows ``start:stop`` of ε, shape ``(stop - start, D)``."""
        stop = self.num_noise if stop is None else stop
        d = self.center.shape[0]
        dtype = self.center.dtype
        if stop <= start:
            return torch.empty(0, d, dtype=dtype, device=self.center.device)
        b0, b1 = start // NOISE_BLOCK, (stop - 1) // NOISE_BLOCK + 1
        g = torch.Generator()
        blocks = []
        for b in range(b0, b1):  # a loop over blocks of NOISE_BLOCK rows, not over candidates
            g.manual_seed(noise_block_seed(self.seed, b))
            blocks.append(torch.randn(NOISE_BLOCK, d, generator=g, dtype=dtype))
        eps = torch.cat(blocks) if len(blocks) > 1 else blocks[0]
        off = b0 * NOISE_BLOCK
        return eps[start - off : stop - off].to(self.center.device)

    def perturbations(self, start: int = 0, stop: int | None = None) -> Tensor:
        """σ-free perturbation directions for candidate rows ``start:stop`` (signed ε).

        The full ``(K, D)`` matrix is cached: the evaluator and the estimator both need it.
        """
        stop = self.size if stop is None else stop
        if start == 0 and stop == self.size:
            if self._cache is None:
                self._cache = self._perturbations(0, self.size)
            return self._cache
        if self._cache is not None:
            return self._cache[start:stop]
        return self._perturbations(start, stop)

    def _perturbations(self, start: int, stop: int) -> Tensor:
        if not self.antithetic:
            return self.noise(start, stop)
        eps = self.noise(start // 2, (stop + 1) // 2)
        pm = torch.stack([eps, -eps], dim=1).reshape(-1, eps.shape[1])
        s = start - 2 * (start // 2)
        return pm[s : s + (stop - start)]

    def shaped(self, z: Tensor) -> Tensor:
        """S z for rows ``z`` ``(n, D)``: the identity, s ⊙ z or z Aᵀ."""
        return shape_rows(z, self.scale)

    def rows(self, start: int, stop: int) -> Tensor:
        """Candidates ``start:stop``, shape ``(stop - start, D)``."""
        return self.center + self.sigma * self.shaped(self.perturbations(start, stop))

    def materialize(self) -> Tensor:
        """All candidates, ``(K, D)``."""
        return self.rows(0, self.size)

    def reduce(self, coeffs: Tensor, square: bool = False) -> tuple[Tensor, Tensor | None]:
        """Weighted sums over the signed unit-normal rows zᵢ (antithetic sign included).

        Args:
            coeffs: ``(K,)`` per-row coefficients cᵢ.
            square: also return the second-moment sum used to adapt the scale.

        Returns:
            ``(Σᵢ cᵢ zᵢ, M)``: the first ``(D,)``; M is None unless ``square``, then
            Σᵢ cᵢ (zᵢ² − 1) ``(D,)`` for a None or ``(D,)`` scale, or Σᵢ cᵢ (zᵢzᵢᵀ − I)
            ``(D, D)`` for a full factor. Delegates to ``reducer`` when one is set.
        """
        if coeffs.shape != (self.size,):
            raise ValueError(
                f"coeffs must have shape (K,) = ({self.size},), got {tuple(coeffs.shape)}"
            )
        if self.reducer is not None:
            return self.reducer(self, coeffs, square)
        full = self.scale is not None and self.scale.ndim == 2
        return weighted_moments(self.perturbations(), coeffs, square, full)


@dataclass
class CenteredPopulation:
    """An estimator's population followed by the centre θ as row K: ``K + 1`` rows.

    The loop evaluates θ in the same evaluator call as the population, so the centre's
    loss costs one more row rather than a separate call. Rows ``0:K`` are the population's.
    """

    population: ExplicitPopulation | GaussianPopulation
    center: Tensor

    def __len__(self) -> int:
        return len(self.population) + 1

    @property
    def dim(self) -> int:
        """D, the number of parameters per candidate."""
        return self.center.shape[0]

    def rows(self, start: int, stop: int) -> Tensor:
        """Rows ``start:stop``, shape ``(stop - start, D)``; row K is θ."""
        k = len(self.population)
        parts = [self.population.rows(start, min(stop, k))] if start < k else []
        if stop > k:
            parts.append(self.center[None])
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def materialize(self) -> Tensor:
        """All ``K + 1`` rows."""
        return self.rows(0, len(self))


Population = ExplicitPopulation | GaussianPopulation | CenteredPopulation
