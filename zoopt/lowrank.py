"""Low-rank draws for a module's weight matrices (EGGROLL; Sarkar et al. 2025, "Evolution
Strategies at the Hyperscale").

For a module, the draw of member i is a structure rather than a row of D numbers: every weight
matrix W (m×n) of an ``nn.Linear``, ``nn.Conv1d``/``nn.Conv2d`` (read as out × in·kernel),
``nn.Embedding`` (num × dim) or ``nn.MultiheadAttention``'s packed input projection (3E × E)
gets

    zᵢ = AᵢBᵢᵀ/√r,   Aᵢ (m×r), Bᵢ (n×r) with N(0, 1) entries,

so each entry of zᵢ has mean 0 and variance 1, like a full-rank draw; every other tensor
(biases, norms) gets a full-rank draw. Candidate i is θ + σ·S zᵢ, as in
:class:`zoopt.population.GaussianPopulation`. Everything an estimator needs stays a sum over
members with centred weights cᵢ, and for a matrix it never forms K×m×n numbers:

    Σᵢ cᵢ zᵢ = (A·diag c)·Bᵀ/√r            (full rank: m×n from K·r·(m+n) numbers)

The factors are regenerated from counter-based seeds (step seed, block of members, tensor;
:func:`factor_seed`), so a Ray worker rebuilds its members' factors from the population's
few numbers, and a population forward (:mod:`zoopt.population_forward`) runs the module once
for all members, each layer adding its members' rank-r terms to one shared product.

With an adapted per-coordinate scale (``covariance="diagonal"``: snes, pgpe) the scale is one
number per weight matrix (a draw σ·s_W·AᵢBᵢᵀ/√r stays rank r) and per-coordinate for the
full-rank tensors; the natural-gradient rule adapts s_W from the block mean of cᵢ(zᵢ² − 1).
A full covariance (xnes) would mix every coordinate and is not offered.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence  # noqa: F401  (Callable: the inherited reducer field's annotation, for the API reference)
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from zoopt.population import NOISE_BLOCK, GaussianPopulation, noise_block_seed

__all__ = [
    "LOWRANK_LAYERS",
    "LowRankError",
    "LowRankMembers",
    "LowRankPopulation",
    "LowRankStructure",
    "TensorDraw",
    "check_lowrank",
    "check_rank",
    "factor_seed",
    "lowrank_estimators",
    "module_structure",
]

#: layers whose weight is drawn as a rank-r matrix
LOWRANK_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Embedding)


class LowRankError(ValueError):
    """A low-rank option that does not fit the module: rank ≤ 0, rank above min(m, n) of a
    weight matrix, a module without a supported layer, or a layer the population forward
    cannot perturb per member."""


def check_rank(rank: Any) -> int | None:
    """``rank`` of an estimator: None (full-rank draws) or an int ≥ 1."""
    if rank is None:
        return None
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise LowRankError(
            f"rank must be None (full-rank draws) or an int >= 1 (the rank r of each weight "
            f"matrix's draw), got {rank!r}"
        )
    return rank


def check_lowrank(rank: Any, covariance: str = "none") -> int | None:
    """An estimator's ``rank`` option with its ``covariance``: a full factor cannot be
    combined with low-rank draws (it would mix every coordinate of a member)."""
    rank = check_rank(rank)
    if rank is not None and covariance == "full":
        raise LowRankError(
            f"rank={rank} draws per weight matrix; covariance='full' mixes all coordinates "
            "and is not available with it: use covariance='none' or 'diagonal'"
        )
    return rank


def check_lowrank_reuse(rank: int | None, importance_mixing: Any, metamodel: Any) -> Any:
    """Low-rank draws with the reuse options: importance mixing and the quadratic metamodel
    need the density / coordinates of full-rank Gaussian draws, so ``rank`` refuses them;
    ``metamodel="auto"`` resolves to False. Returns the ``metamodel`` option to keep."""
    if rank is None:
        return metamodel
    if importance_mixing is not None:
        raise LowRankError(
            f"rank={rank} is not available with importance_mixing: the density ratio of "
            "low-rank draws is not the Gaussian one that importance mixing reweights by"
        )
    if metamodel is True:
        raise LowRankError(
            f"rank={rank} is not available with metamodel=True: the quadratic model is fitted "
            "in the coordinates of full-rank draws"
        )
    return False if metamodel == "auto" else metamodel


def module_structure(rank: int, module: Any, objective: Any, dim: int) -> LowRankStructure:
    """The low-rank structure for an estimator's ``rank``: of ``module`` (the ``nn.Module``
    x0 came as) or else of the objective's ``model``
    (:class:`zoopt.objectives.SupervisedObjective`).

    Raises:
        LowRankError: no module to read the layers from, or its D differs from ``dim``.
    """
    if not isinstance(module, nn.Module):
        module = getattr(objective, "model", None)
    if not isinstance(module, nn.Module):
        raise LowRankError(
            f"rank={rank} draws low-rank perturbations per weight matrix of a module: give "
            "x0 as the nn.Module (or an objective with a .model, e.g. SupervisedObjective)"
        )
    structure = LowRankStructure.from_module(module, rank)
    if structure.dim != dim:
        raise LowRankError(
            f"rank={rank}: the module has D={structure.dim} parameters, x0 has {dim}"
        )
    return structure


def lowrank_estimators() -> list[str]:
    """The registered estimators that offer low-rank draws (a ``rank`` option)."""
    import inspect

    from zoopt.estimators import ESTIMATORS

    return sorted(n for n, c in ESTIMATORS.items() if "rank" in inspect.signature(c).parameters)


def factor_seed(seed: int, block: int, tensor: int) -> int:
    """The 63-bit seed of tensor ``tensor``'s factors for noise block ``block`` of a step
    seeded ``seed`` (the counter-based seed of :func:`zoopt.population.noise_block_seed`,
    once more keyed by the tensor)."""
    return noise_block_seed(noise_block_seed(seed, block), tensor)


@dataclass(frozen=True)
class TensorDraw:
    """How one parameter tensor is drawn.

    Attributes:
        name: its qualified name in ``module.named_parameters()``.
        shape: its shape. offset, numel: its slice of the flat vector.
        index: its position among the module's parameters (the ``tensor`` of the seed).
        rows, cols: m and n of its weight matrix when drawn at low rank, else 0 and 0.
    """

    name: str
    shape: tuple[int, ...]
    offset: int
    numel: int
    index: int
    rows: int = 0
    cols: int = 0

    @property
    def lowrank(self) -> bool:
        """True for a weight matrix drawn as AᵢBᵢᵀ/√r."""
        return self.rows > 0


@dataclass(frozen=True)
class LowRankStructure:
    """The draw of every parameter tensor of a module, in the flat layout
    ``parameters_to_vector(module.parameters())``.

    Attributes:
        tensors: one :class:`TensorDraw` per parameter tensor, in order.
        rank: r. dim: D.
    """

    tensors: tuple[TensorDraw, ...]
    rank: int
    dim: int

    @classmethod
    def from_module(cls, module: nn.Module, rank: int) -> LowRankStructure:
        """The structure of ``module`` at rank ``rank``.

        Raises:
            LowRankError: rank ≤ 0, rank above min(m, n) of a weight matrix, or no
                ``nn.Linear``/``nn.Conv1d``/``nn.Conv2d``/``nn.Embedding``/
                ``nn.MultiheadAttention`` in the module.
        """
        if not isinstance(module, nn.Module):
            raise TypeError(f"module must be an nn.Module, got {type(module).__name__}")
        check_rank(rank)
        if rank is None:
            raise LowRankError("rank must be an int >= 1 for a low-rank structure, got None")
        matrices: dict[int, tuple[int, int]] = {}
        for m in module.modules():
            w = None
            if isinstance(m, LOWRANK_LAYERS):
                w = m.weight
            elif isinstance(m, nn.MultiheadAttention):
                w = m.in_proj_weight  # the packed q, k, v projections (3E×E); None if unpacked
            if isinstance(w, Tensor):
                matrices[id(w)] = (w.shape[0], w[0].numel())
        if not matrices:
            raise LowRankError(
                f"rank={rank}: {type(module).__name__} has no nn.Linear, nn.Conv1d, nn.Conv2d, "
                "nn.Embedding or nn.MultiheadAttention whose weight could be drawn at low rank; "
                "use full-rank draws (rank=None)"
            )
        tensors, offset = [], 0
        for i, (name, p) in enumerate(module.named_parameters()):
            m, n = matrices.get(id(p), (0, 0))
            if m and rank > min(m, n):
                raise LowRankError(
                    f"rank={rank} exceeds min(m, n) = {min(m, n)} of the weight matrix "
                    f"{name!r} ({m}×{n}); use rank <= {min(m, n)}"
                )
            tensors.append(TensorDraw(name, tuple(p.shape), offset, p.numel(), i, m, n))
            offset += p.numel()
        return cls(tuple(tensors), rank, offset)


def _noise(
    structure: LowRankStructure,
    seed: int,
    start: int,
    stop: int,
    dtype: torch.dtype,
    tensors: Sequence[int] | None = None,
) -> Iterator[Any]:
    """Unit draws of noise indices ``start:stop`` for each tensor in turn (drawn when asked
    for, so one tensor's draws are held at a time): ``(A (n, m, r), B (n, cols, r))`` for a
    matrix, ``Z (n, numel)`` otherwise (n = stop − start), on the CPU. ``tensors``: the
    positions in ``structure.tensors`` to draw, in that order (all by default); a tensor's
    draws do not depend on which others are drawn."""
    b0, b1 = start // NOISE_BLOCK, (stop - 1) // NOISE_BLOCK + 1
    off = b0 * NOISE_BLOCK
    g = torch.Generator()
    r = structure.rank
    chosen = structure.tensors if tensors is None else [structure.tensors[i] for i in tensors]
    for t in chosen:
        per_member = (t.rows + t.cols, r) if t.lowrank else (t.numel,)
        z = torch.empty((b1 - b0) * NOISE_BLOCK, *per_member, dtype=dtype)
        for b in range(b0, b1):  # blocks of NOISE_BLOCK members, not single members
            g.manual_seed(factor_seed(seed, b, t.index))
            block = z[(b - b0) * NOISE_BLOCK : (b - b0 + 1) * NOISE_BLOCK]
            torch.randn(NOISE_BLOCK, *per_member, generator=g, dtype=dtype, out=block)
        z = z[start - off : stop - off]
        yield (z[:, : t.rows], z[:, t.rows :]) if t.lowrank else z


@dataclass(eq=False)
class LowRankPopulation(GaussianPopulation):
    """θ + σ·S zᵢ with zᵢ drawn per tensor of ``structure``: AᵢBᵢᵀ/√r for a weight matrix,
    N(0, I) for the rest (see the module docstring).

    Attributes (besides :class:`GaussianPopulation`'s):
        structure: the module's :class:`LowRankStructure`.

    :meth:`members` gives the structured view that a population forward consumes;
    :meth:`rows` still materialises ``(n, D)`` rows, for objectives that take rows (fine for
    a few rows or a small D). :meth:`reduce` sums over the factors and ignores ``reducer``:
    the sum needs no rows, so there is nothing to compute where rows live.
    """

    structure: LowRankStructure | None = None
    #: the population hands objectives structured members (see zoopt.evaluators.base)
    structured = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.structure is None or self.structure.dim != self.center.shape[0]:
            have = None if self.structure is None else self.structure.dim
            raise ValueError(
                f"structure must describe the D={self.center.shape[0]} parameters of center, "
                f"got D={have}"
            )
        if self.scale is not None and self.scale.ndim != 1:
            raise LowRankError(
                "low-rank draws take no full (D, D) factor: use covariance 'none' or 'diagonal'"
            )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LowRankPopulation):
            return NotImplemented
        return GaussianPopulation.__eq__(self, other) and self.structure == other.structure

    __hash__ = None

    # -- unit draws ---------------------------------------------------------------------------
    def unit_noise(
        self, start: int = 0, stop: int | None = None, tensors: Sequence[int] | None = None
    ) -> Iterator[Any]:
        """Independent unit draws ``start:stop`` per tensor (see :func:`_noise`)."""
        stop = self.num_noise if stop is None else stop
        return _noise(self.structure, self.seed, start, stop, self.center.dtype, tensors)

    def _row_signs(self, start: int, stop: int) -> tuple[Tensor, Tensor, int]:
        """Noise index ``(n,)`` relative to the first, the sign ``(n,)`` of rows
        ``start:stop``, and the first noise index."""
        rows = torch.arange(start, stop)
        dtype = self.center.dtype
        if not self.antithetic:
            return rows - start, torch.ones(stop - start, dtype=dtype), start
        j0 = start // 2
        return rows // 2 - j0, 1.0 - 2.0 * (rows % 2).to(dtype), j0

    def _perturbations(self, start: int, stop: int) -> Tensor:
        """Dense rows of z for candidates ``start:stop``, ``(n, D)`` (n·D numbers: use for
        a few rows)."""
        k = min(stop, self.size)
        out = torch.zeros(stop - start, self.dim, dtype=self.center.dtype)
        if k > start:
            idx, sign, j0 = self._row_signs(start, k)
            noise = self.unit_noise(j0, j0 + int(idx.max()) + 1)
            root = math.sqrt(self.structure.rank)
            for t, z in zip(self.structure.tensors, noise, strict=True):
                if t.lowrank:
                    a, b = z
                    block = torch.bmm(a[idx], b[idx].transpose(1, 2)).flatten(1) / root
                else:
                    block = z[idx]
                out[: k - start, t.offset : t.offset + t.numel] = block * sign[:, None].to(block)
        return out.to(self.center.device)

    def perturbations(self, start: int = 0, stop: int | None = None) -> Tensor:
        """Dense σ-free directions of candidates ``start:stop`` ``(n, D)`` (not cached)."""
        return self._perturbations(start, self.size if stop is None else stop)

    def noise(self, start: int = 0, stop: int | None = None) -> Tensor:
        """Dense independent draws ``start:stop`` ``(n, D)`` (the + rows of the pairs)."""
        stop = self.num_noise if stop is None else stop
        if not self.antithetic:
            return self._perturbations(start, stop)
        return self._perturbations(2 * start, 2 * stop)[0::2]

    # -- the structured view ------------------------------------------------------------------
    def members(self, start: int = 0, stop: int | None = None) -> LowRankMembers:
        """Members ``start:stop`` as factors, for a population forward; rows from K on
        (a :class:`zoopt.population.CenteredPopulation`'s θ) are unperturbed."""
        return LowRankMembers(self, start, self.size if stop is None else stop)

    # -- sums over the population -------------------------------------------------------------
    def reduce(self, coeffs: Tensor, square: bool = False) -> tuple[Tensor, Tensor | None]:
        """Σᵢ cᵢ zᵢ ``(D,)`` per tensor, (A·diag c)·Bᵀ/√r for a matrix; with ``square`` also
        Σᵢ cᵢ (zᵢ² − 1) ``(D,)``, whose matrix blocks hold the block mean (the scale of a
        matrix is one number)."""
        if coeffs.shape != (self.size,):
            raise ValueError(
                f"coeffs must have shape (K,) = ({self.size},), got {tuple(coeffs.shape)}"
            )
        dtype = self.center.dtype
        c = coeffs.detach().to("cpu", dtype)
        if self.antithetic:  # rows 2j, 2j+1 are +z_j, −z_j
            c1, c2 = c[0::2] - c[1::2], c[0::2] + c[1::2]
        else:
            c1 = c2 = c
        noise = self.unit_noise()
        first = torch.empty(self.dim, dtype=dtype)
        second = torch.empty(self.dim, dtype=dtype) if square else None
        root = math.sqrt(self.structure.rank)
        total = c2.sum()
        for t, z in zip(self.structure.tensors, noise, strict=True):
            sl = slice(t.offset, t.offset + t.numel)
            if t.lowrank:
                a, b = z  # (J, m, r), (J, n, r)
                ac = (a * c1[:, None, None]).permute(1, 0, 2).reshape(t.rows, -1)
                bb = b.permute(1, 0, 2).reshape(t.cols, -1)
                first[sl] = (ac @ bb.T).flatten() / root
                if square:
                    # ‖AᵢBᵢᵀ‖²_F = Σ (AᵢᵀAᵢ) ∘ (BᵢᵀBᵢ): the block mean of zᵢ² from r² numbers
                    gram = (a.transpose(1, 2) @ a) * (b.transpose(1, 2) @ b)
                    mean_sq = gram.sum(dim=(1, 2)) / (self.structure.rank * t.numel)
                    second[sl] = c2 @ mean_sq - total
            else:
                first[sl] = c1 @ z
                if square:
                    second[sl] = c2 @ (z * z) - total
        device = self.center.device
        return first.to(device), (None if second is None else second.to(device))


@dataclass
class LowRankMembers:
    """Members ``start:stop`` of a :class:`LowRankPopulation`, as factors (never rows).

    What an objective that runs a population forward receives instead of ``(n, D)`` rows
    (:func:`zoopt.batched_forward`, :class:`zoopt.objectives.SupervisedObjective`). Rows from
    K on are the centre θ (zero perturbation). :meth:`materialize` gives the dense rows ``(n, D)``.
    """

    population: LowRankPopulation
    start: int
    stop: int
    device: torch.device | None = field(default=None)

    def __len__(self) -> int:
        return self.stop - self.start

    @property
    def dim(self) -> int:
        """D."""
        return self.population.dim

    @property
    def shape(self) -> tuple[int, int]:
        """``(n, D)``, the shape of the rows these members stand for."""
        return (len(self), self.dim)

    @property
    def structure(self) -> LowRankStructure:
        """The module's draw structure."""
        return self.population.structure

    @property
    def center(self) -> Tensor:
        """θ ``(D,)``."""
        c = self.population.center
        return c if self.device is None else c.to(self.device)

    def to(self, device: Any = None, *args: Any, **kwargs: Any) -> LowRankMembers:
        """The same members, their factors made on ``device`` (dtype arguments are ignored:
        the members keep θ's dtype)."""
        if isinstance(device, torch.dtype) or device is None:
            return self
        return LowRankMembers(self.population, self.start, self.stop, torch.device(device))

    def split(self, size: int) -> list[LowRankMembers]:
        """Consecutive pieces of at most ``size`` members."""
        return [
            LowRankMembers(self.population, a, min(a + size, self.stop), self.device)
            for a in range(self.start, self.stop, size)
        ]

    def materialize(self) -> Tensor:
        """Dense rows ``(n, D)``: θ + σ·S zᵢ."""
        pop = self.population
        rows = pop.center + pop.sigma * pop.shaped(pop.perturbations(self.start, self.stop))
        return rows if self.device is None else rows.to(self.device)

    def factors(
        self, dtype: torch.dtype | None = None, tensors: Sequence[int] | None = None
    ) -> list[Any]:
        """The members' signed, scaled perturbation of every tensor, in structure order:
        ``(A (n, m, r), B (n, cols, r))`` with member i's weight W + AᵢBᵢᵀ for a matrix
        (σ·s_W·sign/√r folded into A), ``δ (n, numel)`` with member i's tensor + δᵢ
        otherwise. Centre rows get zeros. n·r·(m + n) numbers per matrix.

        ``tensors``: positions in ``structure.tensors`` to give, in that order (all by
        default); each tensor's factors are the same whichever others are asked for."""
        pop = self.population
        n = len(self)
        k = min(self.stop, pop.size)
        dtype = dtype or pop.center.dtype
        scale = pop.scale
        r = pop.structure.rank
        device = self.device or pop.center.device
        centre = n - max(0, k - self.start)  # rows from K on: θ itself

        def rows(t: Tensor) -> Tensor:  # with the centre's zero rows, on device and dtype
            if centre:
                t = torch.cat([t, t.new_zeros(centre, *t.shape[1:])])
            return t.to(device=device, dtype=dtype)

        every = pop.structure.tensors
        chosen = every if tensors is None else [every[i] for i in tensors]
        if k <= self.start:  # only centre rows
            return [
                (rows(pop.center.new_zeros(0, t.rows, r)), rows(pop.center.new_zeros(0, t.cols, r)))
                if t.lowrank
                else rows(pop.center.new_zeros(0, t.numel))
                for t in chosen
            ]
        idx, sign, j0 = pop._row_signs(self.start, k)
        out: list[Any] = []
        noise = pop.unit_noise(j0, j0 + int(idx.max()) + 1, tensors)
        for t, z in zip(chosen, noise, strict=True):
            # each product is made in the one copy that indexing makes (no further temporaries)
            if t.lowrank:
                s = 1.0 if scale is None else float(scale[t.offset])
                a = z[0][idx].mul_(((pop.sigma * s / math.sqrt(r)) * sign)[:, None, None])
                out.append((rows(a), rows(z[1][idx])))
            else:
                d = z[idx].mul_(pop.sigma * sign[:, None])
                if scale is not None:
                    d.mul_(scale[t.offset : t.offset + t.numel].cpu())
                out.append(rows(d))
            del z
        return out
