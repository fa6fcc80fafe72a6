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
