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

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

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
        if stop <= start:
            return torch.empty(0, self.dim, dtype=self.center.dtype, device=self.center.device)
        blocks = [eps for _, eps in self.noise_blocks(start, stop)]
        eps = torch.cat(blocks) if len(blocks) > 1 else blocks[0]
        return eps.to(self.center.device)

    def noise_blocks(self, start: int, stop: int) -> Iterator[tuple[int, Tensor]]:
        """Noise rows ``start:stop`` one seeded block at a time, on the CPU.

        Yields ``(first, eps)``: ``eps`` ``(n, D)`` holds rows ``first:first + n``, at most
        ``NOISE_BLOCK`` of them, so a consumer never holds more than one block.
        """
        d, dtype = self.dim, self.center.dtype
        g = torch.Generator()
        for b in range(start // NOISE_BLOCK, (stop - 1) // NOISE_BLOCK + 1):
            g.manual_seed(noise_block_seed(self.seed, b))
            block = torch.randn(NOISE_BLOCK, d, generator=g, dtype=dtype)
            lo, hi = max(start, b * NOISE_BLOCK), min(stop, (b + 1) * NOISE_BLOCK)
            yield lo, block[lo - b * NOISE_BLOCK : hi - b * NOISE_BLOCK]

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
        whole = start == 0 and stop == self.size
        elementwise = self.scale is None or self.scale.ndim == 1  # a full factor: see below
        if self.antithetic and self._cache is None and elementwise and not whole and stop > start:
            # a slice nobody caches (a worker's rows): θ ± σ·S εⱼ written straight into the
            # interleaved rows, without the signed (rows, D) matrix or its temporaries. Not
            # for a full factor: a matrix product over a different number of rows may round
            # differently, and the rows must equal the local evaluator's bit for bit
            j0 = start // 2
            step = self.sigma * self.shaped(self.noise(j0, (stop + 1) // 2))
            pairs = torch.empty(len(step), 2, self.dim, dtype=step.dtype, device=step.device)
            torch.add(self.center, step, out=pairs[:, 0])
            torch.sub(self.center, step, out=pairs[:, 1])
            first = start - 2 * j0
            return pairs.view(-1, self.dim)[first : first + stop - start]
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

    def partial_reduce(
        self, coeffs: Tensor, start: int = 0, stop: int | None = None, square: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        """The part of :meth:`reduce` from rows ``start:stop``, in float64, block by block.

        Args:
            coeffs: ``(stop - start,)`` the rows' coefficients cᵢ.
            start, stop: a row range (``stop`` excluded; default all K rows).
            square: also return the second-moment part.

        Returns:
            ``(Σ cᵢ zᵢ (D,), M)`` over the range, float64 on the CPU; M is None unless
            ``square``, then Σ cᵢ (zᵢ² − 1) ``(D,)`` or, for a full factor, Σ cᵢ (zᵢzᵢᵀ − I)
            ``(D, D)``.

        Antithetic rows +εⱼ, −εⱼ share one noise row, so their terms fold:
        c₊εⱼ + c₋(−εⱼ) = (c₊ − c₋) εⱼ and c₊εⱼ² + c₋εⱼ² = (c₊ + c₋) εⱼ². Each noise row is
        generated once and multiplied once, and only one block of ``NOISE_BLOCK`` rows
        exists at a time: no ``(K, D)`` matrix, no signed copy, no float64 copy of it.
        """
        stop = self.size if stop is None else stop
        c = torch.as_tensor(coeffs).detach().to("cpu", torch.float64)
        if not 0 <= start <= stop <= self.size or c.shape != (stop - start,):
            raise ValueError(
                f"coeffs must have shape (stop - start,) = ({stop - start},) for rows "
                f"{start}:{stop} of {self.size}, got {tuple(c.shape)}"
            )
        if self.antithetic:  # fold each pair's coefficients onto its noise row
            j0, j1 = start // 2, (stop + 1) // 2
            paired = c.new_zeros(2 * (j1 - j0))
            paired[start - 2 * j0 : stop - 2 * j0] = c  # a range may cut a pair at either end
            plus, minus = paired.view(-1, 2).unbind(1)
            diff, both = plus - minus, plus + minus
        else:
            j0, j1, diff, both = start, stop, c, c
        d = self.dim
        full = self.scale is not None and self.scale.ndim == 2
        first = torch.zeros(d, dtype=torch.float64)
        second = torch.zeros((d, d) if full else d, dtype=torch.float64) if square else None
        for lo, block in self.noise_blocks(j0, j1) if j1 > j0 else ():
            eps = block.to(torch.float64)  # one block: NOISE_BLOCK × D, cache-resident
            rows = slice(lo - j0, lo - j0 + len(eps))
            first += diff[rows] @ eps
            if square and full:
                second += (eps.T * both[rows]) @ eps
            elif square:
                second += both[rows] @ (eps * eps)
        if square:
            total = c.sum()
            if full:
                second.diagonal().sub_(total)
            else:
                second -= total
        return first, second


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

    @property
    def structured(self) -> bool:
        """Whether the population offers :meth:`members` (a low-rank one)."""
        return getattr(self.population, "structured", False)

    def members(self, start: int, stop: int) -> Any:
        """The structured members ``start:stop`` of a low-rank population, row K being θ
        (see :meth:`zoopt.lowrank.LowRankPopulation.members`)."""
        return self.population.members(start, stop)


Population = ExplicitPopulation | GaussianPopulation | CenteredPopulation
