"""Populations: noise regenerated from a seed equals the materialised population, any slice."""

from __future__ import annotations

import pickle

import pytest
import torch

from zoopt.population import NOISE_BLOCK, GaussianPopulation, noise_block_seed


@pytest.mark.parametrize("antithetic", [True, False])
def test_any_row_range_regenerates_the_same_candidates(antithetic):
    k = 4 * NOISE_BLOCK + 6
    center = torch.randn(7)
    full = GaussianPopulation(center, 0.3, seed=11, size=k, antithetic=antithetic).materialize()
    for start, stop in [(0, 1), (1, 2), (3, NOISE_BLOCK + 5), (2 * NOISE_BLOCK - 1, k), (0, k)]:
        fresh = GaussianPopulation(center, 0.3, seed=11, size=k, antithetic=antithetic)
        assert torch.equal(fresh.rows(start, stop), full[start:stop]), (start, stop)


def test_antithetic_rows_are_interleaved_pairs():
    pop = GaussianPopulation(torch.zeros(5), 1.0, seed=0, size=8)
    z = pop.perturbations()
    assert torch.equal(z[0::2], -z[1::2])
    assert torch.equal(z[0::2], pop.noise())


def test_noise_is_standard_normal_and_seed_dependent():
    a = GaussianPopulation(torch.zeros(2000), 1.0, seed=1, size=64).noise()
    b = GaussianPopulation(torch.zeros(2000), 1.0, seed=2, size=64).noise()
    assert abs(float(a.mean())) < 0.01 and abs(float(a.std()) - 1) < 0.01
    assert not torch.equal(a, b)
    seeds = {noise_block_seed(s, blk) for s in range(50) for blk in range(50)}
    assert len(seeds) == 2500 and all(0 <= s < 2**63 for s in seeds)


def test_pickling_does_not_ship_the_cached_noise():
    pop = GaussianPopulation(torch.zeros(10_000), 0.1, seed=3, size=256)
    small = len(pickle.dumps(pop))
    pop.materialize()  # fills the cache (256 × 10,000 floats)
    assert len(pickle.dumps(pop)) == small < 50_000
    assert torch.equal(pickle.loads(pickle.dumps(pop)).materialize(), pop.materialize())


def _scales(d: int) -> list:
    g = torch.Generator().manual_seed(5)
    full = torch.tril(torch.randn(d, d, generator=g)) + 3 * torch.eye(d)
    return [None, torch.rand(d, generator=g) + 0.5, full]


@pytest.mark.parametrize("which", [0, 1, 2])
@pytest.mark.parametrize("antithetic", [True, False])
def test_scaled_rows_and_reduce_match_the_materialised_sums(which, antithetic):
    d, k = 6, 2 * NOISE_BLOCK + 4
    scale = _scales(d)[which]
    center = torch.randn(d, dtype=torch.float64)
    if scale is not None:
        scale = scale.double()
    pop = GaussianPopulation(center, 0.3, seed=4, size=k, antithetic=antithetic, scale=scale)
    z = pop.perturbations()
    shaped = z if scale is None else (z * scale if scale.ndim == 1 else z @ scale.T)
    assert torch.allclose(pop.materialize(), center + 0.3 * shaped)
    # any slice regenerates the same scaled rows
    fresh = GaussianPopulation(center, 0.3, seed=4, size=k, antithetic=antithetic, scale=scale)
    assert torch.allclose(fresh.rows(3, 11), pop.materialize()[3:11])
    c = torch.randn(k, dtype=torch.float64)
    first, none = pop.reduce(c)
    assert none is None
    assert torch.allclose(first, sum(c[i] * z[i] for i in range(k)))
    first2, second = pop.reduce(c, square=True)
    assert torch.allclose(first2, first)
    if scale is not None and scale.ndim == 2:
        ref = sum(c[i] * (torch.outer(z[i], z[i]) - torch.eye(d)) for i in range(k))
    else:
        ref = sum(c[i] * (z[i] ** 2 - 1) for i in range(k))
    assert second.shape == ref.shape and torch.allclose(second, ref)


def test_reduce_delegates_to_the_reducer_which_is_not_pickled_or_compared():
    pop = GaussianPopulation(torch.zeros(3), 1.0, seed=0, size=4, scale=torch.ones(3))
    calls = []

    def reducer(p, coeffs, square):
        calls.append((p, square))
        return torch.full((3,), 7.0), None

    other = GaussianPopulation(torch.zeros(3), 1.0, seed=0, size=4, scale=torch.ones(3))
    pop.reducer = reducer
    assert pop == other
    assert torch.equal(pop.reduce(torch.ones(4), square=True)[0], torch.full((3,), 7.0))
    assert calls == [(pop, True)]
    assert pickle.loads(pickle.dumps(pop)).reducer is None


def test_bad_scale_and_coeffs_are_rejected():
    with pytest.raises(ValueError, match="scale must be"):
        GaussianPopulation(torch.zeros(3), 1.0, seed=0, size=4, scale=torch.ones(4))
    pop = GaussianPopulation(torch.zeros(3), 1.0, seed=0, size=4)
    with pytest.raises(ValueError, match="coeffs must have shape"):
        pop.reduce(torch.ones(5))


def _dense_partial(pop: GaussianPopulation, c: torch.Tensor, start: int, stop: int):
    """The dense reference: the signed rows start:stop as a float64 matrix, then the sums."""
    z = pop.perturbations()[start:stop].double()
    c = c.double()
    first = c @ z
    if pop.scale is not None and pop.scale.ndim == 2:
        return first, (z.T * c) @ z - c.sum() * torch.eye(z.shape[1], dtype=torch.float64)
    return first, c @ (z * z) - c.sum()


@pytest.mark.parametrize("which", [0, 1, 2])
@pytest.mark.parametrize("antithetic", [True, False])
def test_folded_partial_reduce_equals_the_dense_reference(which, antithetic):
    d, k = 9, 3 * NOISE_BLOCK + 6  # several noise blocks, the last one partial
    pop = GaussianPopulation(
        torch.randn(d), 0.3, seed=8, size=k, antithetic=antithetic, scale=_scales(d)[which]
    )
    c = torch.randn(k, generator=torch.Generator().manual_seed(2))
    # ranges that cut antithetic pairs at either end, cross block edges, or hold one row
    for start, stop in [(0, k), (1, k), (0, k - 1), (3, 2 * NOISE_BLOCK + 3), (5, 6), (4, 4)]:
        fresh = GaussianPopulation(  # nothing cached: the blocks are regenerated
            pop.center, 0.3, seed=8, size=k, antithetic=antithetic, scale=pop.scale
        )
        first, second = fresh.partial_reduce(c[start:stop], start, stop, square=True)
        assert fresh._cache is None  # no (K, D) matrix was built
        ref_first, ref_second = _dense_partial(pop, c[start:stop], start, stop)
        assert first.dtype == second.dtype == torch.float64
        assert second.shape == ref_second.shape
        assert torch.allclose(first, ref_first, rtol=1e-12, atol=1e-12), (start, stop)
        assert torch.allclose(second, ref_second, rtol=1e-12, atol=1e-12), (start, stop)
        assert fresh.partial_reduce(c[start:stop], start, stop)[1] is None
    # parts over a partition add up to the whole (what the driver does with the workers' parts)
    cuts = [0, 7, 8, 25, k]
    parts = [pop.partial_reduce(c[a:b], a, b)[0] for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
    assert torch.allclose(sum(parts), pop.partial_reduce(c)[0], rtol=1e-12, atol=1e-12)
    # and the whole agrees with the float32 reduce to float32 rounding
    z = pop.perturbations()
    bound = 16 * 2.0**-24 * (c.abs() @ z.abs())
    assert bool(((pop.partial_reduce(c)[0] - pop.reduce(c)[0].double()).abs() <= bound).all())


def test_partial_reduce_names_the_expected_coefficient_shape():
    pop = GaussianPopulation(torch.zeros(3), 1.0, seed=0, size=8)
    with pytest.raises(ValueError, match=r"coeffs must have shape \(stop - start,\) = \(3,\)"):
        pop.partial_reduce(torch.zeros(4), 2, 5)
    with pytest.raises(ValueError, match="rows 2:9 of 8"):
        pop.partial_reduce(torch.zeros(7), 2, 9)
