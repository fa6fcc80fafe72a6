"""Losses → centred weights: properties of the tilt, the ESS, the α solver, ranks."""

from __future__ import annotations

import math

import pytest
import torch

import zoopt
from zoopt.weights import NonFiniteLossError

torch.manual_seed(0)


@pytest.fixture
def losses() -> torch.Tensor:
    return torch.randn(64, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


def test_tilt_weights_are_a_distribution(losses):
    w = zoopt.tilt_weights(losses, 0.7)
    assert w.shape == (64,)
    assert (w >= 0).all()
    assert torch.allclose(w.sum(), torch.tensor(1.0, dtype=w.dtype))
    # lower loss → larger weight
    order = torch.argsort(losses)
    assert (w[order][:-1] >= w[order][1:]).all()


def test_tilt_is_invariant_to_a_constant_shift(losses):
    w = zoopt.tilt_weights(losses, 0.3)
    for c in (-1e3, 1.0, 1e6):
        assert torch.allclose(zoopt.tilt_weights(losses + c, 0.3), w, atol=1e-9)


def test_tilt_is_stable_for_extreme_scales(losses):
    for scale, alpha in ((1e6, 1.0), (1.0, 1e-8), (1e6, 1e-8)):
        w = zoopt.tilt_weights(losses * scale, alpha)
        assert torch.isfinite(w).all()
        assert torch.allclose(w.sum(), torch.tensor(1.0, dtype=w.dtype))


def test_alpha_to_zero_puts_all_weight_on_the_best(losses):
    w = zoopt.tilt_weights(losses, 1e-10)
    best = int(torch.argmin(losses))
    assert w[best] == pytest.approx(1.0)
    assert zoopt.effective_sample_size(w) == pytest.approx(1.0)


def test_alpha_to_infinity_matches_the_linear_limit(losses):
    alpha = 1e5
    w = zoopt.tilt_weights(losses, alpha)
    centred = w - 1.0 / len(losses)
    lin = zoopt.linear_weights(losses, alpha)
    assert torch.allclose(centred, lin, rtol=1e-4, atol=1e-12)
    assert torch.allclose(zoopt.tilt_weights(losses, math.inf), torch.full_like(w, 1 / 64))


def test_log_ratio_enters_as_an_importance_weight(losses):
    lr = torch.linspace(-1, 1, 64, dtype=torch.float64)
    w = zoopt.tilt_weights(losses, 0.5, lr)
    ref = torch.softmax(-losses / 0.5 + lr, 0)
    assert torch.allclose(w, ref)
    with pytest.raises(ValueError, match="log_ratio"):
        zoopt.tilt_weights(losses, 0.5, lr[:3])


def test_effective_sample_size_bounds():
    assert zoopt.effective_sample_size(torch.full((10,), 0.1)) == pytest.approx(10)
    assert zoopt.effective_sample_size(torch.tensor([1.0, 0, 0])) == pytest.approx(1)
    w = torch.rand(50)
    assert 1 <= zoopt.effective_sample_size(w) <= 50


@pytest.mark.parametrize("scale", [1e-6, 1.0, 1e6])
@pytest.mark.parametrize("fraction", [0.05, 0.25, 0.5, 0.9])
def test_solve_alpha_hits_the_ess_target_within_one_percent(losses, scale, fraction):
    alpha = zoopt.solve_alpha(losses * scale, fraction)
    ess = zoopt.effective_sample_size(zoopt.tilt_weights(losses * scale, alpha))
    assert ess / len(losses) == pytest.approx(fraction, rel=0.01)


def test_solve_alpha_is_scale_equivariant(losses):
    a1 = zoopt.solve_alpha(losses, 0.5)
    a2 = zoopt.solve_alpha(losses * 1000.0, 0.5)
    assert a2 / a1 == pytest.approx(1000.0, rel=0.02)


def test_solve_alpha_bad_input(losses):
    for bad in (0.0, 1.5, -0.1):
        with pytest.raises(ValueError, match="ess_fraction"):
            zoopt.solve_alpha(losses, bad)
    assert zoopt.solve_alpha(torch.zeros(8), 0.5) == 1.0  # all equal: any α, report 1


def test_non_finite_losses_are_dropped_from_the_tilt(losses):
    bad = losses.clone()
    bad[[3, 7]] = float("nan")
    bad[11] = float("inf")
    w = zoopt.tilt_weights(bad, 0.5)
    assert torch.isfinite(w).all()
    assert w[[3, 7, 11]].sum() == 0
    keep = torch.isfinite(bad)
    assert torch.allclose(w[keep], zoopt.tilt_weights(bad[keep], 0.5))
    alpha = zoopt.solve_alpha(bad, 0.5)
    assert math.isfinite(alpha)


def test_non_finite_losses_rank_worst(losses):
    bad = losses.clone()
    bad[5] = float("nan")
    r = zoopt.centered_ranks(bad)
    assert r[5] == pytest.approx(0.5)
    assert torch.isfinite(r).all()
    lw = zoopt.linear_weights(bad, 1.0)
    assert torch.isfinite(lw).all()
    assert lw[5] == lw.min()


def test_all_non_finite_raises():
    nan = torch.full((4,), float("nan"))
    for fn in (
        lambda: zoopt.tilt_weights(nan, 1.0),
        lambda: zoopt.centered_ranks(nan),
        lambda: zoopt.solve_alpha(nan, 0.5),
        lambda: zoopt.linear_weights(nan, 1.0),
    ):
        with pytest.raises(NonFiniteLossError, match="all 4 losses"):
            fn()


def test_centered_ranks_properties(losses):
    r = zoopt.centered_ranks(losses)
    assert r.min() == -0.5 and r.max() == 0.5
    assert r.sum().abs() < 1e-9
    # invariant to monotone transforms
    assert torch.equal(zoopt.centered_ranks(torch.exp(losses) * 3 + 1), r)
    ties = zoopt.centered_ranks(torch.tensor([1.0, 1.0, 2.0]))
    assert ties[0] == ties[1]


def test_bad_alpha_and_shapes(losses):
    for bad in (0.0, -1.0, float("nan"), "hot"):
        with pytest.raises(ValueError, match="alpha"):
            zoopt.tilt_weights(losses, bad)
    with pytest.raises(ValueError, match=r"\(\.\.\., K\)"):
        zoopt.tilt_weights(torch.tensor(1.0), 1.0)
    with pytest.raises(ValueError, match=r"\(K,\)"):
        zoopt.centered_ranks(losses.reshape(8, 8))


def test_linear_limit_with_importance_ratios(losses):
    lr = torch.linspace(-1, 1, 64, dtype=torch.float64)
    alpha = 1e5
    v = zoopt.weights.importance_weights(lr, torch.isfinite(losses))
    centred = zoopt.tilt_weights(losses, alpha, lr) - v
    lin = zoopt.linear_weights(losses, alpha, lr)
    assert torch.allclose(centred, lin, rtol=1e-4, atol=1e-12)
    assert abs(float(lin.sum())) < 1e-15


def test_weights_over_rows_equal_the_weights_row_by_row():
    g = torch.Generator().manual_seed(0)
    losses = torch.randn(5, 12, generator=g, dtype=torch.float64) * torch.tensor(
        [[0.01], [1.0], [10.0], [1e3], [2.0]], dtype=torch.float64
    )
    losses[1, 3] = float("nan")
    losses[4, ::3] = float("inf")
    lr = torch.randn(5, 12, generator=g, dtype=torch.float64)
    for ratio in (None, lr):
        alphas = zoopt.solve_alpha(losses, 0.3, ratio)
        w = zoopt.tilt_weights(losses, alphas, ratio)
        lin = zoopt.linear_weights(losses, 2.0, ratio)
        for n in range(5):
            rn = None if ratio is None else ratio[n]
            assert float(alphas[n]) == pytest.approx(
                zoopt.solve_alpha(losses[n], 0.3, rn), rel=1e-6
            )
            assert torch.allclose(w[n], zoopt.tilt_weights(losses[n], float(alphas[n]), rn))
            assert torch.allclose(lin[n], zoopt.linear_weights(losses[n], 2.0, rn))
    # a row without a finite loss gets zero weights and α = 1
    losses[2] = float("nan")
    assert torch.equal(zoopt.tilt_weights(losses, 1.0)[2], torch.zeros(12))
    assert torch.equal(zoopt.linear_weights(losses, 1.0)[2], torch.zeros(12))
    assert float(zoopt.solve_alpha(losses, 0.5)[2]) == 1.0


def _top_pair_weights_in_torch(losses: torch.Tensor, top: int) -> torch.Tensor:
    """ARS's weights written with torch operations (the definition, for comparison)."""
    mask = torch.isfinite(losses)
    pairs = torch.where(mask, losses, losses[mask].max()).reshape(-1, 2)
    best = torch.argsort(pairs.min(dim=1).values, stable=True)[:top]
    kept = pairs[best]
    std = float(kept.std(unbiased=False)) if kept.numel() > 1 else 0.0
    diff = (kept[:, 0] - kept[:, 1]) / (2 * top * (std if std > 0 else 1.0))
    c = torch.zeros_like(pairs)
    c[best, 0] = -diff
    c[best, 1] = diff
    return c.reshape(-1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
def test_top_pair_weights_equal_torch_bit_for_bit(dtype):
    """The host computation gives torch's weights exactly: ties, failed rows, any top."""
    g = torch.Generator().manual_seed(0)
    for trial in range(300):
        n = 1 + trial % 9
        scale = 10.0 ** float(torch.randint(-4, 5, (), generator=g))
        losses = (torch.randn(2 * n, generator=g, dtype=torch.float64) * scale).to(dtype)
        if trial % 3 == 0:  # ties
            losses = torch.round(losses / scale * 2) * scale / 2
        if trial % 5 == 0 and n > 1:  # failed rows
            losses[int(torch.randint(0, 2 * n, (), generator=g))] = math.nan
            losses[int(torch.randint(0, 2 * n, (), generator=g))] = math.inf
        top = 1 + trial % n
        got = zoopt.weights.top_pair_weights(losses, top)
        want = _top_pair_weights_in_torch(losses, top)
        assert got.dtype == dtype and torch.equal(got, want), (losses, top)
        assert torch.equal(torch.signbit(got), torch.signbit(want))


def test_top_pair_weights_all_non_finite_raises():
    with pytest.raises(NonFiniteLossError):
        zoopt.weights.top_pair_weights(torch.tensor([math.nan, math.inf]), 1)
