"""Batched metrics agree with scikit-learn and sacrebleu called directly."""

from __future__ import annotations

import warnings

import pytest
import sacrebleu
import torch
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import accuracy_score, f1_score

from zoopt.metrics import (
    METRICS,
    accuracy,
    corpus_bleu,
    get_metric,
    macro_f1,
    sentence_bleu,
    sentence_bleu_batch,
)


def _random_labels(seed: int, k: int = 6):
    g = torch.Generator().manual_seed(seed)
    c = int(torch.randint(2, 9, (1,), generator=g))
    n = int(torch.randint(1, 40, (1,), generator=g))
    # targets use only part of the classes, predictions may use others: absent classes
    targets = torch.randint(0, max(1, c - 2), (n,), generator=g)
    predictions = torch.randint(0, c, (k, n), generator=g)
    return predictions, targets, c


@pytest.mark.parametrize("seed", range(40))
def test_accuracy_and_macro_f1_equal_sklearn(seed):
    predictions, targets, c = _random_labels(seed)
    acc = accuracy(predictions, targets)
    f1 = macro_f1(predictions, targets, c)
    assert acc.shape == f1.shape == (predictions.shape[0],)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        for k in range(predictions.shape[0]):
            y, p = targets.numpy(), predictions[k].numpy()
            assert acc[k].item() == pytest.approx(accuracy_score(y, p), abs=1e-6)
            # sklearn's default: labels present in y_true ∪ y_pred, zero_division → 0
            assert f1[k].item() == pytest.approx(f1_score(y, p, average="macro"), abs=1e-6)


def test_macro_f1_ignores_classes_absent_from_both():
    targets = torch.tensor([0, 0, 1, 1])
    predictions = torch.tensor([[0, 1, 1, 1], [0, 0, 1, 1]])
    # class 5 never occurs: a larger num_classes must not change the score
    assert torch.allclose(macro_f1(predictions, targets, 2), macro_f1(predictions, targets, 9))
    expected = f1_score(targets.numpy(), predictions[0].numpy(), average="macro")
    assert macro_f1(predictions, targets, 9)[0].item() == pytest.approx(expected)
    assert macro_f1(predictions, targets)[1].item() == pytest.approx(1.0)


def test_predicted_but_never_true_class_counts_as_zero():
    targets = torch.tensor([0, 0, 0, 0])
    predictions = torch.tensor([0, 0, 0, 3])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        expected = f1_score(targets.numpy(), predictions.numpy(), average="macro")
    assert macro_f1(predictions, targets, 4).item() == pytest.approx(expected)
    assert expected < 0.5  # class 3 enters the average with F1 = 0


def test_unbatched_predictions_give_scalars():
    targets = torch.tensor([0, 1, 2, 2])
    predictions = torch.tensor([0, 1, 1, 2])
    assert accuracy(predictions, targets).shape == ()
    assert accuracy(predictions, targets).item() == pytest.approx(0.75)
    assert macro_f1(predictions, targets, 3).shape == ()


def test_batched_equals_rowwise():
    predictions, targets, c = _random_labels(123, k=16)
    batched = macro_f1(predictions, targets, c)
    rowwise = torch.stack([macro_f1(p, targets, c) for p in predictions])
    assert torch.allclose(batched, rowwise)


def test_classification_metrics_reject_bad_input():
    targets = torch.tensor([0, 1, 1])
    with pytest.raises(ValueError, match="predictions must have shape"):
        accuracy(torch.zeros(2, 4, dtype=torch.long), targets)
    with pytest.raises(TypeError, match="integer class labels"):
        accuracy(torch.zeros(2, 3), targets)
    with pytest.raises(ValueError, match="targets must be a non-empty 1-D"):
        macro_f1(torch.zeros(2, 3, dtype=torch.long), targets[None])
    with pytest.raises(ValueError, match=r"labels must lie in \[0, num_classes=2\)"):
        macro_f1(torch.tensor([[0, 1, 2]]), targets, 2)
    with pytest.raises(ValueError, match="num_classes must be a positive int"):
        macro_f1(torch.tensor([[0, 1, 1]]), targets, 0)


HYPS = [
    "the cat sat on the mat",
    "a quick brown fox jumps over the dog",
    "hello",
    "completely unrelated words here",
]
REFS = [
    "the cat is on the mat",
    "the quick brown fox jumps over the lazy dog",
    "hello world",
    "a sentence with nothing in common",
]


def test_bleu_equals_sacrebleu():
    assert corpus_bleu(HYPS, REFS) == pytest.approx(sacrebleu.corpus_bleu(HYPS, [REFS]).score)
    for h, r in zip(HYPS, REFS, strict=True):
        assert sentence_bleu(h, r) == pytest.approx(sacrebleu.sentence_bleu(h, [r]).score)
    batch = sentence_bleu_batch(HYPS, REFS)
    assert batch == pytest.approx(
        [sacrebleu.sentence_bleu(h, [r]).score for h, r in zip(HYPS, REFS, strict=True)]
    )
    assert sentence_bleu(REFS[0], REFS[0]) == pytest.approx(100.0)
    # smoothing: a short partial match scores above 0 at sentence level
    assert 0.0 < batch[2] < 100.0


def test_bleu_rejects_bad_input():
    with pytest.raises(ValueError, match="same length"):
        corpus_bleu(HYPS, REFS[:2])
    with pytest.raises(TypeError, match="hypotheses must be a list of strings"):
        corpus_bleu("a string", REFS)
    with pytest.raises(TypeError, match="item 1"):
        sentence_bleu_batch(["a", 3], ["a", "b"])
    with pytest.raises(TypeError, match="two strings"):
        sentence_bleu(["a"], "a")


def test_metric_registry():
    assert METRICS["accuracy"] is accuracy and METRICS["f1"] is macro_f1
    assert get_metric("corpus_bleu") is corpus_bleu
    with pytest.raises(ValueError, match="Did you mean 'accuracy'"):
        get_metric("acuracy")
