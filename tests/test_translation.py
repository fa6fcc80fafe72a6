"""The synthetic translation task, the seq2seq model and the BLEU objective."""

from __future__ import annotations

import random

import pytest
import sacrebleu
import torch

import zoopt
from zoopt.objectives import OutputSamples, TranslationObjective
from zoopt.tasks import Seq2Seq, TranslationGrammar, Vocabulary, make_translation_task
from zoopt.tasks import translation as tr


@pytest.fixture(scope="module")
def task():
    return make_translation_task(300, seed=3, valid_size=40, test_size=40)


@pytest.fixture(scope="module")
def tiny_task():
    return make_translation_task(48, seed=5, valid_size=16, test_size=16, max_clauses=1)


def tiny_model(task, seed: int = 0) -> Seq2Seq:
    torch.manual_seed(seed)
    return Seq2Seq(len(task.src_vocab), len(task.tgt_vocab), embed_dim=12, hidden_dim=24)


@pytest.fixture(scope="module")
def pretrained(tiny_task):
    """A briefly MLE-trained tiny model: good enough that BLEU moves, far from perfect."""
    model = tiny_model(tiny_task, seed=1)
    obj = TranslationObjective(model, tiny_task, batch_size=None)
    res = zoopt.minimize(
        obj, obj.flat_parameters(), estimator="gradient", steps=35, seed=0, lr=0.03, progress=False
    )
    assert 5.0 < obj.bleu(res.x, "train") < 80.0  # room to improve either way
    return model, res.x


# -- the generator ------------------------------------------------------------------------------
def test_same_seed_same_data_and_different_seed_different_data():
    a = make_translation_task(200, seed=11, valid_size=20, test_size=20)
    b = make_translation_task(200, seed=11, valid_size=20, test_size=20)
    c = make_translation_task(200, seed=12, valid_size=20, test_size=20)
    assert a.train_pairs == b.train_pairs and a.test_pairs == b.test_pairs
    assert a.src_vocab == b.src_vocab and a.tgt_vocab == b.tgt_vocab
    assert a.train_pairs != c.train_pairs
    # the language (lexicon) is fixed by language_seed, not by the data seed
    assert a.tgt_vocab == c.tgt_vocab
    d = make_translation_task(200, seed=11, valid_size=20, test_size=20, language_seed=1)
    assert d.tgt_vocab != a.tgt_vocab


def test_splits_have_the_requested_sizes_and_distinct_sources(task):
    assert (len(task.train_pairs), len(task.valid_pairs), len(task.test_pairs)) == (300, 40, 40)
    sources = [s for split in ("train", "valid", "test") for s, _ in task.pairs(split)]
    assert len(set(sources)) == len(sources)


def test_every_word_is_in_the_vocabularies(task):
    for split in ("train", "valid", "test"):
        for src, tgt in task.pairs(split):
            assert all(w in task.src_vocab for w in src.split())
            assert all(w in task.tgt_vocab for w in tgt.split())


def test_target_is_verb_final_with_subject_agreement(task):
    g = task.grammar
    endings = set()
    for sent, (src, tgt) in zip(task.sentences["train"], task.train_pairs, strict=True):
        words = tgt.split()
        c = sent.clauses[-1]
        subj = c.subject
        suffix = tr._VERB_SUFFIX[(c.tense, g.gender[subj.noun], subj.plural)]
        assert words[-1] == g.verb_target[c.verb][-1] + suffix, (src, tgt)
        endings.add(suffix)
        # SVO → SOV: the object's noun comes before the verb in the target, after it in
        # the source
        s_words = src.split()
        first = sent.clauses[0]
        src_verb_pos = len(g.source_noun_phrase(first.subject))
        obj_head = g.plural_of[first.obj.noun] if first.obj.plural else first.obj.noun
        assert s_words.index(obj_head, src_verb_pos) > src_verb_pos
    assert len(endings) == 8  # every (tense, gender, number) suffix occurs: agreement varies


def test_adjectives_follow_the_noun_mirrored_and_agree(task):
    g = task.grammar
    seen = 0
    for sent in task.sentences["train"]:
        np_ = sent.clauses[0].subject
        if len(np_.adjectives) != 2:
            continue
        seen += 1
        out = g.target_noun_phrase(np_)
        gender = g.gender[np_.noun]
        suffix = tr._ADJ_SUFFIX[(gender, np_.plural)]
        n = len(g.noun_target[np_.noun])
        assert out[0] == tr._ARTICLES[(np_.det, gender, np_.plural)]
        assert out[1 + n :] == [g.adj_target[a] + suffix for a in reversed(np_.adjectives)]
        assert g.source_noun_phrase(np_)[1:3] == list(np_.adjectives)  # before it in English
    assert seen > 5


def test_one_to_many_and_do_support():
    g = TranslationGrammar(language_seed=0)
    assert any(len(t) == 2 for t in g.noun_target.values())
    assert any(len(t) == 2 for t in g.verb_target.values())
    rng = random.Random(0)
    c = g.sample_clause(rng)
    neg = tr.Clause(c.subject, "see", c.obj, "past", True)
    src, tgt = g.render(tr.Sentence((neg,)))
    assert " did not see " in f" {src} "
    assert tgt.split()[-2 - (len(g.verb_target["see"]) - 1)] == "na"


# -- vocabulary ----------------------------------------------------------------------------------
def test_encode_decode_round_trip(task):
    for split in ("train", "test"):
        src, tgt = task.encode(split)
        assert src.dtype == torch.long and src.shape[0] == len(task.pairs(split))
        assert task.src_vocab.decode(src) == [s for s, _ in task.pairs(split)]
        assert task.tgt_vocab.decode(tgt) == [t for _, t in task.pairs(split)]
        lengths = (tgt != task.tgt_vocab.pad_id).sum(1)
        assert lengths.max() == tgt.shape[1]  # padded to the longest row, no more
        assert bool((tgt.gather(1, (lengths - 1)[:, None]) == task.tgt_vocab.eos_id).all())


def test_unknown_words_map_to_unk():
    v = Vocabulary(["a", "b"])
    ids = v.encode(["a zz b"])
    assert ids.tolist() == [[v.index["a"], v.unk_id, v.index["b"], v.eos_id]]
    assert v.decode(ids) == ["a <unk> b"]


# -- the model -----------------------------------------------------------------------------------
def test_sampled_log_probs_equal_teacher_forced_recomputation(task):
    model = tiny_model(task)
    src, _ = task.encode("valid")
    src = src[:6]
    g = torch.Generator().manual_seed(0)
    tokens, log_probs, entropy = model.sample(src, 4, generator=g)
    assert tokens.shape[:2] == (6, 4) and log_probs.shape == (6, 4) == entropy.shape
    flat = tokens.reshape(24, -1)
    recomputed = model.sequence_log_prob(src.repeat_interleave(4, 0), flat).view(6, 4)
    torch.testing.assert_close(log_probs, recomputed, rtol=1e-5, atol=1e-5)
    # masked after EOS: only padding follows the first EOS
    for row in flat.tolist():
        if model.eos_id in row:
            assert set(row[row.index(model.eos_id) + 1 :]) <= {model.pad_id}
    # same generator seed, same samples
    again, _, _ = model.sample(src, 4, generator=torch.Generator().manual_seed(0))
    assert torch.equal(tokens, again)


def test_greedy_is_the_argmax_of_teacher_forcing(task):
    model = tiny_model(task, seed=2)
    src, _ = task.encode("valid")
    src = src[:8]
    out = model.greedy(src, max_len=12)
    logits = model(src, out)
    live = out != model.pad_id
    assert torch.equal(logits.argmax(-1)[live], out[live])


# -- the objective ------------------------------------------------------------------------------
def test_evaluate_equal_candidates_and_direct_sacrebleu(task):
    model = tiny_model(task)
    obj = TranslationObjective(model, task, batch_size=16)
    x = obj.flat_parameters()
    X = torch.stack([x, x, x, x + 0.5 * torch.randn_like(x)])
    losses = obj.evaluate(X, seed=7)
    assert losses.shape == (4,)
    assert losses[0] == losses[1] == losses[2]
    # the same number straight from sacrebleu, decoding with the model itself
    idx = obj.batch_indices(7)
    src = task.src_vocab.encode([task.train_pairs[i][0] for i in idx.tolist()])
    hyps = task.tgt_vocab.decode(model.greedy(src))
    refs = [task.train_pairs[i][1] for i in idx.tolist()]
    direct = sacrebleu.corpus_bleu(hyps, [refs]).score
    assert float(losses[0]) == pytest.approx(-direct, rel=1e-6)
    assert obj.metric(float(losses[0])) == pytest.approx(direct)
    # the minibatch is a function of the seed
    assert torch.equal(obj.batch_indices(7), idx)
    assert not torch.equal(obj.batch_indices(8), idx)


def test_sample_outputs_shapes_losses_and_gradient(task):
    model = tiny_model(task)
    obj = TranslationObjective(model, task, batch_size=5)
    x = obj.flat_parameters().requires_grad_(True)
    out = obj.sample_outputs(x, 3, torch.Generator().manual_seed(1), seed=2)
    assert isinstance(out, OutputSamples)
    assert out.log_probs.shape == (5, 3) == out.losses.shape and out.entropy.shape == (5,)
    assert bool((out.losses >= 0).all() and (out.losses <= 1).all())
    assert bool((out.log_probs <= 0).all())
    (grad,) = torch.autograd.grad(out.log_probs.sum(), x)
    assert grad.shape == x.shape and float(grad.norm()) > 0
    # the losses are 1 − sentence BLEU/100 of the decoded samples
    tokens, _, _ = model.sample(obj._minibatch(2)[0], 3, torch.Generator().manual_seed(1))
    hyp = task.tgt_vocab.decode(tokens[0])[1]
    ref = obj._minibatch(2)[3][0]
    expected = 1 - sacrebleu.sentence_bleu(hyp, [ref]).score / 100
    assert float(out.losses[0, 1]) == pytest.approx(expected)


def test_surrogate_is_the_model_cross_entropy(task):
    model = tiny_model(task)
    obj = TranslationObjective(model, task, batch_size=8)
    x = obj.flat_parameters().requires_grad_(True)
    value = obj.surrogate(x, seed=4)
    src, tgt, _, _ = obj._minibatch(4)
    torch.testing.assert_close(value, model.cross_entropy(src, tgt))
    (grad,) = torch.autograd.grad(value, x)
    assert float(grad.norm()) > 0
    # the user's model is not modified by evaluation
    before = obj.flat_parameters()
    obj.evaluate(torch.zeros(2, obj.dim), seed=0)
    assert torch.equal(before, obj.flat_parameters())


def test_bleu_of_a_split(task):
    model = tiny_model(task)
    obj = TranslationObjective(model, task)
    x = obj.flat_parameters()
    src, _ = task.encode("test")
    hyps = task.tgt_vocab.decode(model.greedy(src))
    refs = [t for _, t in task.test_pairs]
    assert obj.bleu(x, "test", batch_size=7) == pytest.approx(
        sacrebleu.corpus_bleu(hyps, [refs]).score
    )


# -- fine-tuning improves BLEU ------------------------------------------------------------------
@pytest.mark.skipif(
    "reinforce" not in zoopt.available_estimators(), reason="no reinforce estimator in this build"
)
def test_reinforce_lowers_the_expected_sentence_loss(tiny_task, pretrained):
    model, x0 = pretrained
    obj = TranslationObjective(model, tiny_task, batch_size=None)

    def expected_loss(x):  # mean 1 − sentence BLEU over 16 fixed draws per sentence
        with torch.no_grad():
            return float(obj.sample_outputs(x, 16, torch.Generator().manual_seed(99)).losses.mean())

    res = zoopt.minimize(
        obj, x0, estimator="reinforce", samples=8, steps=10, seed=0, lr=0.01, progress=False
    )
    assert expected_loss(res.x) < expected_loss(x0) - 0.01


def test_guided_sampling_raises_bleu(tiny_task, pretrained):
    model, x0 = pretrained
    obj = TranslationObjective(model, tiny_task, batch_size=None)
    start = obj.bleu(x0, "train")
    res = zoopt.minimize(
        obj,
        x0,
        estimator="sampling",
        guided=True,
        population=8,
        sigma=0.01,
        guide_scale=2.0,
        steps=10,
        seed=0,
        lr=0.01,
        progress=False,
    )
    assert obj.bleu(res.x, "train") > start + 1.0


# -- bad input ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(size=0), "size"),
        (dict(size=10, max_clauses=0), "max_clauses"),
        (dict(size=10, test_size=-1), "test_size"),
        (dict(size=2.5), "size"),
    ],
)
def test_bad_task_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_translation_task(**kwargs)


def test_mismatched_vocabulary_is_refused(task):
    model = Seq2Seq(len(task.src_vocab), len(task.tgt_vocab) + 1)
    with pytest.raises(ValueError, match="tgt_vocab"):
        TranslationObjective(model, task)
    model = Seq2Seq(len(task.src_vocab) - 1, len(task.tgt_vocab))
    with pytest.raises(ValueError, match="src_vocab"):
        TranslationObjective(model, task)


def test_bad_objective_and_model_input(task):
    model = tiny_model(task)
    with pytest.raises(ValueError, match="batch_size"):
        TranslationObjective(model, task, batch_size=0)
    with pytest.raises(TypeError, match="Seq2Seq"):
        TranslationObjective(torch.nn.Linear(2, 2), task)
    obj = TranslationObjective(model, task, batch_size=4)
    with pytest.raises(ValueError, match=rf"\(K, {obj.dim}\)"):
        obj.evaluate(torch.zeros(2, obj.dim + 1))
    with pytest.raises(ValueError, match="x must be"):
        obj.surrogate(torch.zeros(3))
    with pytest.raises(ValueError, match="split"):
        obj.bleu(obj.flat_parameters(), "dev")
    with pytest.raises(ValueError, match="num_samples"):
        model.sample(task.encode("test")[0], 0)
    with pytest.raises(ValueError, match="src"):
        model.greedy(torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="ids"):
        task.tgt_vocab.decode(torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="hidden_dim"):
        Seq2Seq(10, 10, hidden_dim=0)
