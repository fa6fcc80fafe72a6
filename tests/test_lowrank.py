"""Low-rank draws (zoopt.lowrank), the population forward and in-place evaluation
(zoopt.population_forward), and the estimators' ``rank`` option."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

import zoopt
from zoopt.lowrank import LowRankError, LowRankPopulation, LowRankStructure
from zoopt.objectives.supervised import SupervisedObjective
from zoopt.population import CenteredPopulation
from zoopt.population_forward import inplace_forward, population_forward

ROOT = Path(__file__).resolve().parents[1]


class Tagger(nn.Module):
    """Embedding → Conv1d → LayerNorm → Linear: every supported layer kind."""

    def __init__(self, vocab: int = 20, width: int = 8, classes: int = 5):
        super().__init__()
        self.emb = nn.Embedding(vocab, width)
        self.conv = nn.Conv1d(width, 6, 3, padding=1)
        self.norm = nn.LayerNorm(6)
        self.head = nn.Linear(6, classes)

    def forward(self, idx):
        h = self.emb(idx).transpose(1, 2)
        h = torch.relu(self.conv(h)).transpose(1, 2)
        return self.head(self.norm(h))


def _cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 5 * 5, 3)
    )


def _population(model, rank=2, size=6, antithetic=True, sigma=0.3, seed=123, scale=None):
    theta = nn.utils.parameters_to_vector(model.parameters()).detach().clone()
    structure = LowRankStructure.from_module(model, rank)
    return LowRankPopulation(theta, sigma, seed, size, antithetic, scale=scale, structure=structure)


def _explicit(model, rows, *inputs):
    """K separate forwards, each with the module's parameters set to one row."""
    outs = []
    for row in rows:
        m = copy.deepcopy(model)
        nn.utils.vector_to_parameters(row, m.parameters())
        with torch.no_grad():
            outs.append(m.eval()(*inputs))
    return torch.stack(outs)


# ---------------------------------------------------------------------------------------
# draws and the step
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("antithetic", [True, False])
def test_lowrank_step_equals_the_dense_sum(antithetic):
    torch.manual_seed(0)
    model = Tagger().double()
    pop = _population(model, rank=3, size=8, antithetic=antithetic)
    z = pop.perturbations()  # (K, D) dense, formed here only to check against
    c = torch.randn(8, dtype=torch.float64)
    first, second = pop.reduce(c, square=True)
    torch.testing.assert_close(first, c @ z, rtol=0, atol=1e-12)
    # a matrix's block holds the block mean of Σ cᵢ(zᵢ² − 1); other tensors per coordinate
    dense_second = c @ (z * z) - c.sum()
    for t in pop.structure.tensors:
        block = slice(t.offset, t.offset + t.numel)
        want = dense_second[block].mean() if t.lowrank else dense_second[block]
        torch.testing.assert_close(second[block], want.expand(t.numel), rtol=0, atol=1e-12)
    # each matrix of a member has rank ≤ r
    for t in pop.structure.tensors:
        if t.lowrank:
            w = z[0, t.offset : t.offset + t.numel].view(t.rows, t.cols)
            assert int(torch.linalg.matrix_rank(w)) == 3


def test_draws_have_unit_variance_and_antithetic_pairs():
    model = nn.Linear(40, 30)
    pop = _population(model, rank=4, size=64, sigma=1.0, seed=5)
    z = pop.perturbations()
    assert torch.equal(z[0::2], -z[1::2])
    assert abs(float(z.var()) - 1.0) < 0.05
    assert abs(float(z.mean())) < 0.02


def test_factors_do_not_depend_on_the_slice():
    """Counter-based seeds: members 5:11 are the same whichever range asks for them."""
    model = Tagger()
    pop = _population(model, size=40)
    whole = pop.perturbations(0, 40)
    assert torch.equal(pop.perturbations(5, 11), whole[5:11])
    part = pop.members(17, 35).factors()
    full = pop.members(0, 40).factors()
    for a, b in zip(part, full, strict=True):
        if isinstance(a, tuple):
            assert torch.equal(a[0], b[0][17:35]) and torch.equal(a[1], b[1][17:35])
        else:
            assert torch.equal(a, b[17:35])


def test_factors_of_some_tensors_equal_those_of_all():
    """Each tensor's factors come from its own seed: asking for a few, in any order, gives
    the entries of the whole list."""
    model = Tagger()
    pop = _population(model, size=10)
    members = pop.members(3, 10)
    full = members.factors()
    for a, i in zip(members.factors(tensors=[5, 0, 3]), [5, 0, 3], strict=True):
        b = full[i]
        if isinstance(a, tuple):
            assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
        else:
            assert torch.equal(a, b)


# ---------------------------------------------------------------------------------------
# the population forward
# ---------------------------------------------------------------------------------------
def test_population_forward_holds_one_layers_factors_at_a_time(monkeypatch):
    """Factors are made when their layer runs and dropped after it: while the last layer
    runs, no factor tensor made for an earlier layer is alive."""
    import weakref

    from zoopt.lowrank import LowRankMembers

    made = []
    original = LowRankMembers.factors

    def spy(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        made.append([weakref.ref(u) for f in out for u in (f if isinstance(f, tuple) else (f,))])
        return out

    monkeypatch.setattr(LowRankMembers, "factors", spy)
    model = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 16), nn.Linear(16, 3))
    alive = []
    model[3].register_forward_pre_hook(
        lambda *_: alive.append([r() is not None for refs in made for r in refs])
    )
    pop = _population(model, rank=2, size=6)
    population_forward(model, pop.members(), torch.randn(4, 6))
    # layers 0 and 2 made A, B and a bias each, and dropped them before layer 3 ran
    assert len(made) == 3 and alive == [[False] * 6]


def test_a_layer_run_twice_gets_the_same_members():
    """A layer called again in one forward (a loop, a shared layer) adds the same members'
    terms each time."""

    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner, self.out = nn.Linear(5, 5), nn.Linear(5, 2)

        def forward(self, x):
            return self.out(
                torch.tanh(self.inner(torch.tanh(self.inner(torch.tanh(self.inner(x))))))
            )

    torch.manual_seed(4)
    model = Twice().double()
    pop = _population(model, rank=2, size=6)
    x = torch.randn(3, 5, dtype=torch.float64)
    out = population_forward(model, pop.members(), x)
    torch.testing.assert_close(out, _explicit(model, pop.materialize(), x), rtol=0, atol=1e-10)


def test_population_forward_equals_explicit_forwards():
    torch.manual_seed(1)
    model = Tagger().double()
    pop = _population(model, rank=2, size=6)
    idx = torch.randint(0, 20, (4, 7))
    out = population_forward(model, pop.members(), idx)
    assert out.shape == (6, 4, 7, 5)
    torch.testing.assert_close(out, _explicit(model, pop.materialize(), idx), rtol=0, atol=1e-10)


def test_population_forward_of_a_cnn_with_an_adapted_scale_and_the_centre():
    torch.manual_seed(2)
    model = _cnn().double()
    d = sum(p.numel() for p in model.parameters())
    scale = torch.rand(d, dtype=torch.float64) + 0.5
    structure = LowRankStructure.from_module(model, 2)
    for t in structure.tensors:  # one scale per matrix, as the proposal keeps it
        if t.lowrank:
            scale[t.offset : t.offset + t.numel] = scale[t.offset]
    pop = _population(model, rank=2, size=4, antithetic=False, sigma=0.5, scale=scale)
    centred = CenteredPopulation(pop, pop.center.clone())
    x = torch.randn(2, 3, 5, 5, dtype=torch.float64)
    out = population_forward(model, centred.members(0, 5), x)
    torch.testing.assert_close(out, _explicit(model, centred.materialize(), x), rtol=0, atol=1e-10)


def test_population_forward_through_batched_forward_and_a_supervised_objective():
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3))
    x, y = torch.randn(50, 6), torch.randint(0, 3, (50,))
    pop = _population(model, rank=2, size=8, sigma=0.2)
    members = pop.members()
    rows = pop.materialize()
    forward = zoopt.batched_forward(model)
    torch.testing.assert_close(forward(members, x), forward(rows, x), rtol=1e-5, atol=1e-5)
    obj = SupervisedObjective(model, x, y, metric=lambda p, t: (p == t).float().mean(-1))
    torch.testing.assert_close(obj.evaluate(members), obj.evaluate(rows), rtol=0, atol=0.021)


class Encoder(nn.Module):
    """nn.Embedding → nn.TransformerEncoderLayer (nn.MultiheadAttention inside) → nn.Linear."""

    def __init__(self, batch_first: bool = True):
        super().__init__()
        self.batch_first = batch_first
        self.emb = nn.Embedding(30, 16)
        self.layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.1, batch_first=batch_first)
        self.head = nn.Linear(16, 4)

    def forward(self, idx):
        pad = idx == 0
        n = idx.shape[1]
        causal = torch.ones(n, n, dtype=torch.bool).triu(1)  # True: may not attend
        h = self.emb(idx if self.batch_first else idx.T)
        h = self.layer(h, src_mask=causal, src_key_padding_mask=pad)
        return self.head(h if self.batch_first else h.transpose(0, 1))


@pytest.mark.parametrize("batch_first", [True, False])
def test_population_forward_of_a_transformer_with_multihead_attention(batch_first):
    torch.manual_seed(7)
    model = Encoder(batch_first).double()
    pop = _population(model, rank=2, size=4)
    assert any(
        t.name == "layer.self_attn.in_proj_weight" and t.lowrank for t in pop.structure.tensors
    )
    idx = torch.randint(1, 30, (3, 6))
    idx[0, 4:] = 0  # padding, masked out of the attention
    out = population_forward(model, pop.members(), idx)
    torch.testing.assert_close(out, _explicit(model, pop.materialize(), idx), rtol=0, atol=1e-9)


def test_population_forward_refuses_layers_it_cannot_perturb():
    class Attn(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = nn.MultiheadAttention(8, 2, batch_first=True, add_bias_kv=True)
            self.rnn = nn.GRU(8, 8, batch_first=True)
            self.head = nn.Linear(8, 2)

        def forward(self, x):
            return self.head(self.rnn(self.attn(x, x, x)[0])[0])

    model = Attn()
    pop = _population(model, rank=1, size=2)
    with pytest.raises(LowRankError, match="'attn'.*add_bias_kv"):
        population_forward(model, pop.members(), torch.randn(1, 3, 8))
    model.attn = nn.MultiheadAttention(8, 2, batch_first=True)
    pop = _population(model, rank=1, size=2)
    with pytest.raises(LowRankError, match="'rnn.weight_ih_l0' belongs to a GRU"):
        population_forward(model, pop.members(), torch.randn(1, 3, 8))
    # in place, any module runs
    out = inplace_forward(model, pop.members(), torch.randn(1, 3, 8))
    assert out.shape == (2, 1, 3, 2)


# ---------------------------------------------------------------------------------------
# in-place evaluation
# ---------------------------------------------------------------------------------------
def test_inplace_evaluation_restores_theta_bit_for_bit():
    torch.manual_seed(4)
    model = Tagger()
    # σ so large that θ + δ − δ would not give θ back in float32
    pop = _population(model, rank=2, size=6, sigma=1e4)
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(7.0)  # whatever the module held before: afterwards it holds θ
    idx = torch.randint(0, 20, (3, 5))
    out = inplace_forward(model, pop.members(), idx)
    assert torch.equal(nn.utils.parameters_to_vector(model.parameters()), pop.center)
    naive = pop.center + pop.sigma * pop.perturbations()[0] - pop.sigma * pop.perturbations()[0]
    assert not torch.equal(naive, pop.center)  # add-then-subtract would not have restored θ
    torch.testing.assert_close(
        out, population_forward(model, pop.members(), idx), rtol=1e-3, atol=1.0
    )


def test_inplace_objective_gives_the_population_forward_losses_and_keeps_theta():
    torch.manual_seed(5)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))
    x, y = torch.randn(60, 6), torch.randint(0, 3, (60,))

    def run(inplace):
        m = copy.deepcopy(model)
        obj = SupervisedObjective(m, x, y, inplace=inplace, surrogate=None)
        return zoopt.minimize(
            obj,
            m,
            estimator="es",
            rank=2,
            steps=4,
            seed=3,
            population=8,
            shaping="centered_ranks",
            progress=False,
        ), m

    a, ma = run(False)
    b, mb = run(True)
    assert a.history["loss"] == b.history["loss"]
    assert torch.equal(a.x, b.x)
    assert torch.equal(nn.utils.parameters_to_vector(mb.parameters()), b.x)


# ---------------------------------------------------------------------------------------
# the estimators' option, checkpoints, Ray
# ---------------------------------------------------------------------------------------
def _digits_like(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(120, 8, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long() + (x[:, 2] > 0.5).long()
    model = nn.Sequential(nn.Linear(8, 24), nn.ReLU(), nn.Linear(24, 3))
    torch.manual_seed(seed)
    for p in model.parameters():
        nn.init.normal_(p, std=0.3)
    return model, SupervisedObjective(model, x, y, batch_size=64)


@pytest.mark.parametrize("name", ["es", "sampling", "ars", "pgpe", "snes"])
def test_estimators_with_rank_learn_and_resume_exactly(name):
    model, obj = _digits_like()
    kw = dict(estimator=name, rank=2, seed=9, population=16, sigma=0.1, progress=False)
    # result() writes θ back into the module it was given: each run gets its own copy
    full = zoopt.Minimizer(obj, copy.deepcopy(model), steps=6, **kw)
    full.run()
    first = zoopt.Minimizer(obj, copy.deepcopy(model), steps=6, **kw)
    first.run(3)
    state = first.state_dict()
    second = zoopt.Minimizer(obj, copy.deepcopy(model), steps=6, **kw)
    second.load_state_dict(state)
    second.run()
    assert torch.equal(second.theta, full.theta)
    assert second.history["loss"] == full.history["loss"]
    assert isinstance(
        full.estimator._proposal.population(full.theta, 0, 4, True), LowRankPopulation
    )


def test_rank_learns_on_a_small_task():
    model, obj = _digits_like(1)
    before = -float(obj.evaluate(nn.utils.parameters_to_vector(model.parameters())[None])[0])
    r = zoopt.minimize(
        obj,
        copy.deepcopy(model),
        estimator="es",
        rank=1,
        steps=60,
        seed=0,
        population=32,
        sigma=0.1,
        shaping="centered_ranks",
        lr=0.05,
        progress=False,
    )
    assert r.metric > before + 0.1


def test_factors_regenerated_on_ray_equal_the_local_ones(ray_address):
    import ray

    from zoopt.evaluators.ray import RayEvaluator

    model, obj = _digits_like(2)
    pop = _population(model, rank=2, size=10, sigma=0.1, seed=77)

    @ray.remote(num_cpus=0.5)
    def regenerate(population, start, stop):
        return population.members(start, stop).factors()

    remote = ray.get(regenerate.remote(pop, 3, 9))
    local = pop.members(3, 9).factors()
    for a, b in zip(remote, local, strict=True):
        pairs = zip(a, b, strict=True) if isinstance(a, tuple) else [(a, b)]
        assert all(torch.equal(u, v) for u, v in pairs)
    kw = dict(estimator="es", rank=2, seed=4, steps=3, population=10, progress=False)
    with RayEvaluator(num_workers=2, num_cpus_per_worker=0.5) as ev:
        on_ray = zoopt.minimize(obj, copy.deepcopy(model), evaluator=ev, **kw)
    here = zoopt.minimize(obj, copy.deepcopy(model), **kw)
    assert on_ray.history["loss"] == here.history["loss"]
    assert torch.equal(on_ray.x, here.x)
    # one actor with two processes: the processes regenerate the members too
    with RayEvaluator(num_workers=1, processes_per_worker=2, num_cpus_per_worker=1) as ev:
        pooled = zoopt.minimize(obj, copy.deepcopy(model), evaluator=ev, **kw)
    assert pooled.history["loss"] == here.history["loss"]
    assert torch.equal(pooled.x, here.x)


def test_a_model_whose_population_of_rows_exceeds_memory_runs(tmp_path):
    """K×D = 8192 × 1.05M floats (34 GB) never exists: peak memory stays a few hundred MB."""
    script = textwrap.dedent(
        """
        import json, resource, sys, torch
        from torch import nn
        import zoopt
        torch.set_num_threads(1)
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(1024, 1024), nn.Tanh(), nn.Linear(1024, 2))
        x, y = torch.randn(1, 1024), torch.tensor([1])
        forward = zoopt.batched_forward(model)
        def loss(X):
            return -torch.log_softmax(forward(X, x)[:, 0], -1)[:, 1]
        d = sum(p.numel() for p in model.parameters())
        r = zoopt.minimize(loss, model, estimator="es", rank=1, population=8192, steps=1,
                           sigma=0.01, progress=False)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        print(json.dumps({"d": d, "k": 8192, "peak": peak, "loss": r.loss}))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=900,
        env={"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout.strip().splitlines()[-1])
    rows_bytes = info["k"] * info["d"] * 4
    assert rows_bytes > 30e9
    assert info["peak"] < rows_bytes / 20


# ---------------------------------------------------------------------------------------
# bad options
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("rank", [0, -2, 1.5, "4", True])
def test_rank_must_be_a_positive_int(rank):
    with pytest.raises(LowRankError, match="rank must be None .* or an int >= 1"):
        zoopt.get_estimator("es", rank=rank)


def test_rank_above_the_smallest_side_of_a_matrix_names_it():
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    with pytest.raises(
        LowRankError,
        match=r"rank=4 exceeds min\(m, n\) = 3 of the weight "
        r"matrix '2.weight' \(3×16\)",
    ):
        zoopt.minimize(lambda X: torch.zeros(len(X)), model, estimator="es", rank=4, steps=1)


def test_a_module_without_supported_layers_is_refused():
    model = nn.Sequential(nn.LayerNorm(4), nn.GRU(4, 3))
    with pytest.raises(
        LowRankError, match="no nn.Linear, nn.Conv1d, nn.Conv2d, nn.Embedding or nn.Multi"
    ):
        zoopt.minimize(lambda X: torch.zeros(len(X)), model, estimator="pgpe", rank=1, steps=1)


def test_rank_needs_a_module_and_fits_only_some_options():
    with pytest.raises(LowRankError, match="give x0 as the nn.Module"):
        zoopt.minimize(lambda X: X.sum(1), torch.zeros(5), estimator="es", rank=1, steps=1)
    with pytest.raises(LowRankError, match="covariance='full'"):
        zoopt.get_estimator("es", rank=1, covariance="full", shaping="utilities")
    with pytest.raises(LowRankError, match="guided=True"):
        zoopt.get_estimator("sampling", rank=1, guided=True)
    for name in ("xnes", "cmaes", "reinforce", "gradient"):
        if name in zoopt.available_estimators():
            with pytest.raises(TypeError):  # no rank option
                zoopt.get_estimator(name, rank=2)


def test_a_function_that_expects_rows_is_told_what_it_received():
    model = nn.Linear(4, 3)
    with pytest.raises(Exception) as info:
        zoopt.minimize(lambda X: (X**2).sum(1), model, estimator="es", rank=1, steps=1)
    assert "low-rank members" in "".join(getattr(info.value, "__notes__", []))


def test_config_key_rank():
    from zoopt.config import ConfigError, validate

    base = {
        "objective": {"kind": "classification", "dataset": "digits"},
        "budget": {"steps": 2},
        "estimator": "es",
    }
    cfg = validate({**copy.deepcopy(base), "estimators": {"es": {"rank": 4}}})
    assert cfg["estimators"]["es"]["rank"] == 4
    with pytest.raises(ConfigError, match="rank"):
        validate({**copy.deepcopy(base), "estimators": {"es": {"rank": 0}}})


@pytest.mark.cuda
def test_population_forward_on_a_gpu_equals_the_cpu():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    torch.manual_seed(6)
    model = Tagger()
    pop = _population(model, rank=2, size=8)
    idx = torch.randint(0, 20, (4, 7))
    cpu = population_forward(model, pop.members(), idx)
    gpu = population_forward(model.cuda(), pop.members().to("cuda"), idx.cuda())
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-4, atol=1e-4)
    cpu_step = pop.reduce(torch.linspace(-1, 1, 8))[0]
    gpu_pop = _population(model, rank=2, size=8)
    assert gpu_pop.center.is_cuda
    torch.testing.assert_close(gpu_pop.reduce(torch.linspace(-1, 1, 8))[0].cpu(), cpu_step)
