"""The generated Countdown task, its verifier, and the sequence objective scored by it."""

from __future__ import annotations

import pytest
import torch

import zoopt
from zoopt.objectives import TranslationObjective
from zoopt.tasks import SequenceTask, TransformerSeq2Seq, make_countdown_task
from zoopt.tasks.countdown import check_countdown, problem_parts, solve_countdown


@pytest.fixture(scope="module")
def task():
    return make_countdown_task(200, seed=3, valid_size=30, test_size=30, prompt_size=100)


def tiny_model(task, seed: int = 0) -> TransformerSeq2Seq:
    torch.manual_seed(seed)
    return TransformerSeq2Seq(
        len(task.src_vocab), len(task.tgt_vocab), dim=16, ff_dim=32, heads=2,
        encoder_layers=1, decoder_layers=1,
    )  # fmt: skip


# -- the generator ------------------------------------------------------------------------------
def test_same_seed_same_data_and_different_seed_different_data():
    a = make_countdown_task(50, seed=1, valid_size=5, test_size=5, prompt_size=10)
    b = make_countdown_task(50, seed=1, valid_size=5, test_size=5, prompt_size=10)
    c = make_countdown_task(50, seed=2, valid_size=5, test_size=5, prompt_size=10)
    assert a.train_pairs == b.train_pairs and a.prompt_pairs == b.prompt_pairs
    assert a.train_pairs != c.train_pairs


def test_splits_are_distinct_and_every_reference_solves_its_problem(task):
    sizes = {"train": 200, "valid": 30, "test": 30, "prompts": 100}
    assert {k: len(task.pairs(k)) for k in sizes} == sizes
    sources = [s for split in sizes for s, _ in task.pairs(split)]
    assert len(set(sources)) == len(sources)
    for split in sizes:
        for source, reference in task.pairs(split):
            words, target = problem_parts(source)
            numbers = [int(t) for t in words]
            assert numbers == sorted(numbers) and len(numbers) == 4
            assert check_countdown(reference, source)
            assert reference in solve_countdown(numbers, int(target))


def test_most_problems_have_several_answers(task):
    counts = []
    for source, _ in task.train_pairs:
        words, target = problem_parts(source)
        counts.append(len(solve_countdown([int(t) for t in words], int(target))))
    assert min(counts) >= 1 and sum(c > 1 for c in counts) > 0.9 * len(counts)


def test_encode_decode_round_trip(task):
    src, tgt = task.encode("test")
    assert task.tgt_vocab.decode(tgt) == [t for _, t in task.test_pairs]
    assert task.src_vocab.decode(src) == [s for s, _ in task.test_pairs]


# -- the verifier ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "answer, ok",
    [
        ("12 - 3 + 4", True),  # the reference need not be this one: any correct answer
        ("4 + 12 - 3", True),
        ("12 + 4 - 3", True),
        ("12 - 4 + 3", False),  # the wrong value
        ("12 + 4", False),  # a number unused
        ("12 - 3 + 4 + 4", False),  # a number used twice
        ("12 - 3 + 5", False),  # a number not given
        ("12 - 3 +", False),  # malformed
        ("12 3 + 4", False),
        ("12 - 3 / 4", False),  # an operator not allowed
        ("12 -+ 3 + 4", False),  # operators are single tokens
        ("", False),
        ("<unk>", False),
    ],
)
def test_check_countdown(answer, ok):
    assert check_countdown(answer, "3 4 12 = 13") is ok


def test_multiplication_binds_tighter():
    assert check_countdown("2 + 3 * 4", "2 3 4 = 14", operators="+*")
    assert not check_countdown("2 + 3 * 4", "2 3 4 = 20", operators="+*")
    assert not check_countdown("2 + 3 * 4", "2 3 4 = 14")  # "*" not allowed by default
    assert "2 + 3 * 4" in solve_countdown([2, 3, 4], 14, "+*")


def test_scores_read_the_source_not_the_reference(task):
    hyps, sources = ["12 - 3 + 4", "4 + 3 + 12"], ["3 4 12 = 13", "3 4 12 = 13"]
    assert task.sentence_scores(hyps, sources, ["x", "y"]) == [100.0, 0.0]
    assert task.corpus_score(hyps, sources, ["x", "y"]) == 50.0
    assert task.metric_name == "solved" and isinstance(task, SequenceTask)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(size=0), "size"),
        (dict(numbers=1), "numbers"),
        (dict(numbers=7), "numbers"),
        (dict(max_number=1), "max_number"),
        (dict(operators="+/"), "operators"),
        (dict(operators="++"), "operators"),
        (dict(operators=""), "operators"),
        (dict(prompt_size=-1), "prompt_size"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_countdown_task(**{"size": 10, "prompt_size": 0, **kwargs})


def test_too_many_problems_for_the_range_is_an_error_not_a_hang():
    with pytest.raises(RuntimeError, match="distinct problems"):
        make_countdown_task(200, numbers=2, max_number=3, operators="+", prompt_size=0)


def test_unknown_split_is_named(task):
    with pytest.raises(ValueError, match="split must be one of"):
        task.pairs("dev")


# -- the objective --------------------------------------------------------------------------------
def test_objective_scores_greedy_outputs_by_the_verifier(task):
    model = tiny_model(task)
    obj = TranslationObjective(model, task, batch_size=None, split="prompts")
    assert obj.metric_name == "solved"
    x = obj.flat_parameters()
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    X = torch.stack([x, x + 0.05 * noise])
    losses = obj.evaluate(X, seed=1)
    sources = [s for s, _ in task.prompt_pairs]
    for k in range(2):
        hyps = obj.translate(X[k], sources)
        solved = sum(check_countdown(h, s) for h, s in zip(hyps, sources, strict=True))
        assert float(losses[k]) == pytest.approx(-100.0 * solved / len(hyps))
    assert obj.score(x, "prompts") == pytest.approx(-float(losses[0]))


def test_sample_outputs_losses_are_the_verifier_verdicts(task):
    model = tiny_model(task, seed=2)
    obj = TranslationObjective(model, task, batch_size=8, split="prompts")
    out = obj.sample_outputs(obj.flat_parameters(), 3, torch.Generator().manual_seed(0), seed=4)
    assert out.losses.shape == (8, 3)
    assert set(out.losses.flatten().tolist()) <= {0.0, 1.0}


@pytest.mark.skipif(
    "reinforce" not in zoopt.available_estimators(), reason="no reinforce estimator in this build"
)
def test_reinforce_raises_the_share_of_sampled_answers_that_solve():
    """From a briefly MLE-trained model, REINFORCE with the verifier's reward on unlabelled
    prompts raises the expected reward of its samples."""
    task = make_countdown_task(
        300, seed=0, numbers=3, max_number=9, valid_size=0, test_size=0, prompt_size=40
    )
    model = tiny_model(task, seed=1)
    mle = TranslationObjective(model, task, batch_size=None)
    res = zoopt.minimize(
        mle, mle.flat_parameters(), estimator="gradient", steps=60, seed=0, lr=0.01,
        progress=False,
    )  # fmt: skip
    obj = TranslationObjective(model, task, batch_size=None, split="prompts")

    def solved(x):  # mean verifier reward over 16 fixed draws per prompt
        with torch.no_grad():
            out = obj.sample_outputs(x, 16, torch.Generator().manual_seed(99))
        return 1.0 - float(out.losses.mean())

    start = solved(res.x)
    assert 0.05 < start < 0.95  # room either way
    tuned = zoopt.minimize(
        obj, res.x, estimator="reinforce", samples=8, steps=15, seed=0, lr=0.01, progress=False
    )
    assert solved(tuned.x) > start + 0.05
