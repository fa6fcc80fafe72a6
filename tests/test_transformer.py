"""The Transformer sequence model, and low-rank members on the translation objective."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import zoopt
from zoopt.lowrank import LowRankError, LowRankPopulation, LowRankStructure
from zoopt.objectives import TranslationObjective
from zoopt.population_forward import inplace_forward, population_forward
from zoopt.tasks import Seq2Seq, SequenceModel, TransformerSeq2Seq, make_translation_task


@pytest.fixture(scope="module")
def task():
    return make_translation_task(64, seed=4, valid_size=12, test_size=12, max_clauses=1)


def small(task, seed: int = 0, dtype=torch.float32) -> TransformerSeq2Seq:
    torch.manual_seed(seed)
    model = TransformerSeq2Seq(
        len(task.src_vocab), len(task.tgt_vocab), dim=16, heads=2, ff_dim=32,
        encoder_layers=1, decoder_layers=2, max_positions=48,
    )  # fmt: skip
    return model.to(dtype)


def population(model, rank=2, size=6, sigma=0.05, seed=11):
    theta = nn.utils.parameters_to_vector(model.parameters()).detach().clone()
    structure = LowRankStructure.from_module(model, rank)
    return LowRankPopulation(theta, sigma, seed, size, True, structure=structure)


# -- the model -----------------------------------------------------------------------------------
def test_shapes_and_the_sequence_interface(task):
    model = small(task)
    assert isinstance(model, SequenceModel)
    src, tgt = task.encode("valid")
    src, tgt = src[:5], tgt[:5]
    assert model(src, tgt).shape == (5, tgt.shape[1], len(task.tgt_vocab))
    lp = model.token_log_probs(src, tgt)
    assert lp.shape == tgt.shape and bool((lp[tgt == model.pad_id] == 0).all())
    out = model.greedy(src, max_len=9)
    assert out.shape[0] == 5 and out.shape[1] <= 9
    # <pad> and <bos> are never emitted (pad only after EOS or the limit)
    assert not bool((out == model.bos_id).any())


def test_greedy_is_the_argmax_of_teacher_forcing(task):
    model = small(task, seed=2)
    src, _ = task.encode("valid")
    out = model.greedy(src[:8], max_len=12)
    logits = model(src[:8], out)
    live = out != model.pad_id
    assert torch.equal(logits.argmax(-1)[live], out[live])


def test_cached_sampling_equals_teacher_forced_log_probs(task):
    model = small(task, dtype=torch.float64)
    src, _ = task.encode("valid")
    src = src[:4]
    g = torch.Generator().manual_seed(0)
    tokens, log_probs, entropy = model.sample(src, 3, generator=g, max_len=8)
    assert tokens.shape[:2] == (4, 3) and log_probs.shape == (4, 3) == entropy.shape
    flat = tokens.reshape(12, -1)
    recomputed = model.sequence_log_prob(src.repeat_interleave(3, 0), flat).view(4, 3)
    torch.testing.assert_close(log_probs, recomputed, rtol=1e-9, atol=1e-9)
    again, _, _ = model.sample(src, 3, generator=torch.Generator().manual_seed(0), max_len=8)
    assert torch.equal(tokens, again)


def test_cross_entropy_falls_under_adam(task):
    model = small(task)
    src, tgt = task.encode("train")
    src, tgt = src[:24], tgt[:24]
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = float(model.cross_entropy(src, tgt).detach())
    for _ in range(8):
        opt.zero_grad()
        model.cross_entropy(src, tgt).backward()
        opt.step()
    assert float(model.cross_entropy(src, tgt).detach()) < first - 0.5


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"dim": 10, "heads": 3}, "dim must be a multiple of heads"),
        ({"dim": 0}, "dim must be a positive int"),
        ({"encoder_layers": 1.5}, "encoder_layers must be a positive int"),
        ({"max_positions": -1}, "max_positions must be a positive int"),
    ],
)
def test_bad_arguments_are_named(task, kwargs, match):
    with pytest.raises(ValueError, match=match):
        TransformerSeq2Seq(len(task.src_vocab), len(task.tgt_vocab), **kwargs)


def test_too_long_inputs_and_bad_sources_are_named(task):
    model = small(task)
    with pytest.raises(ValueError, match="exceeds max_positions=48"):
        model.greedy(torch.full((1, 60), 4, dtype=torch.long))
    with pytest.raises(ValueError, match="src must be a 2-D LongTensor"):
        model.greedy(torch.zeros(3, 4))


# -- the population forward -----------------------------------------------------------------------
def test_population_forward_equals_explicit_forwards(task):
    model = small(task, dtype=torch.float64)
    pop = population(model, size=4)
    src, tgt = task.encode("valid")
    src, tgt = src[:3], tgt[:3]
    out = population_forward(model, pop.members(), src, tgt)
    explicit = []
    for row in pop.materialize():
        m = copy.deepcopy(model)
        nn.utils.vector_to_parameters(row, m.parameters())
        with torch.no_grad():
            explicit.append(m(src, tgt))
    torch.testing.assert_close(out, torch.stack(explicit), rtol=0, atol=1e-10)
    # greedy decoding of every member in one run equals each member decoded alone
    greedy = population_forward(model, pop.members(), src, method="greedy", max_len=10)
    alone = inplace_forward(model, pop.members(1, 2), src, method="greedy", max_len=10)[0]
    assert torch.equal(greedy[1, :, : alone.shape[1]], alone)
    with pytest.raises(ValueError, match="method must name a method"):
        population_forward(model, pop.members(), src, method="decode")


# -- low-rank members on the objective ---------------------------------------------------------
@pytest.mark.parametrize("inplace", [None, True])
def test_members_give_the_losses_of_their_rows(task, inplace):
    model = small(task, dtype=torch.float64)
    obj = TranslationObjective(model, task, batch_size=8, inplace=inplace, chunk_size=3)
    pop = population(model, size=6, sigma=0.3)
    theta = obj.flat_parameters()
    losses = obj.evaluate(pop.members(), seed=5)
    rows = obj.evaluate(pop.materialize(), seed=5)
    assert losses.shape == (6,)
    torch.testing.assert_close(losses, rows)
    assert len(set(losses.tolist())) > 1  # the members differ
    assert torch.equal(obj.flat_parameters(), theta)  # θ untouched (in place: restored)


def test_a_gru_model_gets_its_members_in_place(task):
    torch.manual_seed(0)
    model = Seq2Seq(len(task.src_vocab), len(task.tgt_vocab), embed_dim=8, hidden_dim=12)
    model = model.double()
    obj = TranslationObjective(model, task, batch_size=6)
    theta = nn.utils.parameters_to_vector(model.parameters()).detach().clone()
    structure = LowRankStructure.from_module(model, 2)
    pop = LowRankPopulation(theta, 0.3, 3, 4, True, structure=structure)
    torch.testing.assert_close(obj.evaluate(pop.members(), 1), obj.evaluate(pop.materialize(), 1))
    with pytest.raises(LowRankError, match="GRU"):
        TranslationObjective(model, task, inplace=False)


@pytest.mark.parametrize("estimator", ["es", "snes"])
def test_rank_runs_through_minimize(task, estimator):
    model = small(task)
    obj = TranslationObjective(model, task, batch_size=8)
    theta = obj.flat_parameters()
    res = zoopt.minimize(
        obj, model, estimator=estimator, rank=2, population=4, sigma=0.5, steps=2, seed=0,
        lr=0.01, progress=False,
    )  # fmt: skip
    assert res.steps == 2 and res.x.shape == (obj.dim,)
    assert bool(torch.isfinite(res.x).all())
    assert not torch.equal(res.x, theta)


def test_reinforce_takes_a_step_on_the_transformer(task):
    model = small(task)
    obj = TranslationObjective(model, task, batch_size=4)
    x0 = obj.flat_parameters()
    res = zoopt.minimize(
        obj, x0, estimator="reinforce", samples=3, baseline="leave_one_out", steps=1, seed=0,
        lr=1e-2, progress=False,
    )  # fmt: skip
    assert res.steps == 1 and not torch.equal(res.x, x0)


def test_bad_objective_arguments_are_named(task):
    model = small(task)
    with pytest.raises(ValueError, match="inplace must be None, True or False"):
        TranslationObjective(model, task, inplace="yes")
    with pytest.raises(ValueError, match="chunk_size must be a positive int"):
        TranslationObjective(model, task, chunk_size=0)
    with pytest.raises(TypeError, match="model must be a zoopt.tasks.SequenceModel"):
        TranslationObjective(nn.Linear(2, 2), task)
    obj = TranslationObjective(model, task)
    wrong = LowRankPopulation(
        torch.zeros(5), 0.1, 0, 2, True,
        structure=LowRankStructure.from_module(nn.Linear(4, 1), 1),
    )  # fmt: skip
    with pytest.raises(ValueError, match="members of D=5 parameters"):
        obj.evaluate(wrong.members())
