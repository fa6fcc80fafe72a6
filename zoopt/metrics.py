"""Non-differentiable metrics, batched over a population of K candidates.

Classification metrics take predicted labels of every candidate at once, ``(K, N)``, and
return ``(K,)`` scores with no Python loop over K, so a population is scored in one call.
They agree with scikit-learn's ``accuracy_score`` and ``f1_score(average="macro")``.
Translation metrics wrap sacrebleu (Post, 2018, "A Call for Clarity in Reporting BLEU
Scores") rather than re-implement it: corpus BLEU, and sentence BLEU with sacrebleu's
default exponential smoothing and effective n-gram order.

Every metric is "higher is better"; objectives negate them into losses.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "accuracy",
    "macro_f1",
    "corpus_bleu",
    "sentence_bleu",
    "sentence_bleu_batch",
    "METRICS",
    "get_metric",
]


# ---------------------------------------------------------------------------------------
# classification
# ---------------------------------------------------------------------------------------
def _as_label_tensor(value: Any, name: str) -> Tensor:
    if not isinstance(value, Tensor):
        try:
            value = torch.as_tensor(value)
        except Exception:
            raise TypeError(
                f"{name} must be a tensor (or array) of integer class labels, "
                f"got {type(value).__name__}"
            ) from None
    if value.is_floating_point() or value.is_complex() or value.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer class labels, got dtype {value.dtype}")
    return value.long()


def _check_labels(predictions: Any, targets: Any) -> tuple[Tensor, Tensor, bool]:
    """Validate and return ``(K, N)`` predictions, ``(N,)`` targets, and whether K was added."""
    predictions = _as_label_tensor(predictions, "predictions")
    targets = _as_label_tensor(targets, "targets")
    if targets.ndim != 1 or targets.numel() == 0:
        raise ValueError(
            f"targets must be a non-empty 1-D tensor (N,), got shape {tuple(targets.shape)}"
        )
    squeeze = predictions.ndim == 1
    if squeeze:
        predictions = predictions.unsqueeze(0)
    if predictions.ndim != 2 or predictions.shape[1] != targets.shape[0]:
        raise ValueError(
            f"predictions must have shape (K, N) or (N,) with N = len(targets) = "
            f"{targets.shape[0]}, got shape {tuple(predictions.shape)}"
        )
    return predictions, targets.to(predictions.device), squeeze


def accuracy(predictions: Any, targets: Any) -> Tensor:
    """Fraction of correct labels per candidate.

    Args:
        predictions: ``(K, N)`` (or ``(N,)``) integer labels predicted by K candidates.
        targets: ``(N,)`` integer true labels.

    Returns:
        ``(K,)`` accuracies in [0, 1] (a scalar tensor for ``(N,)`` predictions), as float.
    """
    predictions, targets, squeeze = _check_labels(predictions, targets)
    acc = (predictions == targets).to(torch.get_default_dtype()).mean(dim=1)
    return acc[0] if squeeze else acc


def macro_f1(predictions: Any, targets: Any, num_classes: int | None = None) -> Tensor:
    """Macro-averaged F1 per candidate, as ``sklearn.metrics.f1_score(average="macro")``.

    As scikit-learn does by default, the average runs over the labels present in
    ``targets ∪ predictions`` *of that candidate*; a present label that is never predicted
    (or never true) scores 0. Per label c: F1_c = 2·TP_c / (2·TP_c + FP_c + FN_c), which
    equals the harmonic mean of precision and recall and is defined for every present label.

    Args:
        predictions: ``(K, N)`` (or ``(N,)``) integer labels in ``[0, num_classes)``.
        targets: ``(N,)`` integer true labels in ``[0, num_classes)``.
        num_classes: C, the number of classes; inferred as ``max label + 1`` when None.

    Returns:
        ``(K,)`` macro-F1 scores in [0, 1] (a scalar tensor for ``(N,)`` predictions).
    """
    predictions, targets, squeeze = _check_labels(predictions, targets)
    lo = min(int(predictions.min()), int(targets.min()))
    hi = max(int(predictions.max()), int(targets.max()))
    if num_classes is None:
        num_classes = hi + 1
    elif isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int or None, got {num_classes!r}")
    if lo < 0 or hi >= num_classes:
        raise ValueError(
            f"labels must lie in [0, num_classes={num_classes}); found labels in [{lo}, {hi}]"
        )
    k, n = predictions.shape
    c = num_classes
    dtype = torch.get_default_dtype()
    ones = torch.ones(k, n, dtype=dtype, device=predictions.device)
    # counts per (candidate, class) by one scatter each: predicted, true positives
    pred_count = torch.zeros(k, c, dtype=dtype, device=predictions.device)
    pred_count.scatter_add_(1, predictions, ones)
    correct = (predictions == targets).to(dtype)
    tp = torch.zeros(k, c, dtype=dtype, device=predictions.device)
    tp.scatter_add_(1, predictions, correct)
    true_count = torch.bincount(targets, minlength=c).to(dtype)
    # 2TP + FP + FN = |predicted c| + |true c|; > 0 exactly for labels present in y ∪ ŷ
    denom = pred_count + true_count
    present = denom > 0
    f1 = torch.where(present, 2.0 * tp / denom.clamp_min(1.0), torch.zeros_like(tp))
    out = f1.sum(dim=1) / present.sum(dim=1).to(dtype)
    return out[0] if squeeze else out


# ---------------------------------------------------------------------------------------
# translation (sacrebleu)
# ---------------------------------------------------------------------------------------
@lru_cache(maxsize=2)
def _bleu(effective_order: bool):
    from zoopt.extras import require

    require("sacrebleu", "BLEU")
    from sacrebleu.metrics import BLEU

    return BLEU(effective_order=effective_order)


def _check_strings(value: Any, name: str) -> list[str]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise TypeError(f"{name} must be a list of strings, got {type(value).__name__}")
    bad = [i for i, s in enumerate(value) if not isinstance(s, str)]
    if bad:
        raise TypeError(
            f"{name} must be a list of strings; item {bad[0]} is {type(value[bad[0]]).__name__}"
        )
    return list(value)


def _check_pair(hypotheses: Any, references: Any) -> tuple[list[str], list[str]]:
    hyps = _check_strings(hypotheses, "hypotheses")
    refs = _check_strings(references, "references")
    if len(hyps) != len(refs):
        raise ValueError(
            f"hypotheses and references must have the same length (one reference per "
            f"hypothesis), got {len(hyps)} and {len(refs)}"
        )
    return hyps, refs


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Corpus BLEU (0–100) of ``hypotheses`` against one reference each (sacrebleu defaults).

    Args:
        hypotheses: N system outputs.
        references: N references, aligned with ``hypotheses``.
    """
    hyps, refs = _check_pair(hypotheses, references)
    if not hyps:
        raise ValueError("corpus_bleu needs at least one hypothesis")
    return float(_bleu(False).corpus_score(hyps, [refs]).score)


def sentence_bleu(hypothesis: str, reference: str) -> float:
    """Sentence BLEU (0–100): sacrebleu's ``sentence_bleu`` (exp smoothing, effective order)."""
    if not isinstance(hypothesis, str) or not isinstance(reference, str):
        raise TypeError(
            "sentence_bleu takes two strings (hypothesis, reference), got "
            f"{type(hypothesis).__name__} and {type(reference).__name__}"
        )
    return float(_bleu(True).sentence_score(hypothesis, [reference]).score)


def sentence_bleu_batch(hypotheses: Sequence[str], references: Sequence[str]) -> list[float]:
    """Sentence BLEU (0–100) of each aligned (hypothesis, reference) pair.

    Args:
        hypotheses: N system outputs.
        references: N references.

    Returns:
        N scores, as :func:`sentence_bleu` of each pair.
    """
    hyps, refs = _check_pair(hypotheses, references)
    bleu = _bleu(True)
    return [float(bleu.sentence_score(h, [r]).score) for h, r in zip(hyps, refs, strict=True)]


#: metrics by name, all higher-is-better. Classification ones take ``(predictions (K, N),
#: targets (N,)[, num_classes])`` and return ``(K,)``; ``"f1"`` aliases ``"macro_f1"``.
#: BLEU ones take strings (see :func:`corpus_bleu`, :func:`sentence_bleu`).
METRICS: dict[str, Callable[..., Any]] = {
    "accuracy": accuracy,
    "macro_f1": macro_f1,
    "f1": macro_f1,
    "corpus_bleu": corpus_bleu,
    "sentence_bleu": sentence_bleu,
}


def get_metric(name: str) -> Callable[..., Any]:
    """The metric registered as ``name`` in :data:`METRICS`; a clear error otherwise."""
    if not isinstance(name, str) or name not in METRICS:
        import difflib

        close = difflib.get_close_matches(str(name), METRICS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"metric must be one of {sorted(METRICS)}, got {name!r}.{hint}")
    return METRICS[name]
