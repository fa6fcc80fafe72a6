"""The interface shared by zoopt's generated sequence tasks: splits of (source, reference) pairs,
vocabularies, and the task's own score of generated outputs.

:class:`zoopt.objectives.TranslationObjective` takes any :class:`SequenceTask`: the
translation task scores outputs by BLEU against the reference
(:class:`~zoopt.tasks.translation.TranslationTask`), the Countdown task by a verifier that
reads only the source (:class:`~zoopt.tasks.countdown.CountdownTask`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["SequenceTask", "Vocabulary", "PAD", "BOS", "EOS", "UNK"]

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIALS = (PAD, BOS, EOS, UNK)


class Vocabulary:
    """Token ↔ index map with the special tokens ``<pad>`` (0), ``<bos>``, ``<eos>``, ``<unk>``.

    Args:
        tokens: the ordinary tokens (duplicates and specials are ignored; order is kept).
    """

    def __init__(self, tokens: Sequence[str]):
        self.tokens: list[str] = list(SPECIALS)
        self.index: dict[str, int] = {t: i for i, t in enumerate(SPECIALS)}
        for t in tokens:
            if not isinstance(t, str) or not t or any(c.isspace() for c in t):
                raise ValueError(f"tokens must be non-empty strings without spaces, got {t!r}")
            if t not in self.index:
                self.index[t] = len(self.tokens)
                self.tokens.append(t)
        self.pad_id, self.bos_id = self.index[PAD], self.index[BOS]
        self.eos_id, self.unk_id = self.index[EOS], self.index[UNK]

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: str) -> bool:
        return token in self.index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.tokens == other.tokens

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} tokens)"

    def encode(self, sentences: Sequence[str], add_eos: bool = True) -> Tensor:
        """Whitespace-tokenise and index ``sentences`` into a padded ``(N, T)`` LongTensor.

        Unknown words map to ``<unk>``; each row ends with ``<eos>`` (when ``add_eos``) and is
        right-padded with ``<pad>`` to the longest row.
        """
        if isinstance(sentences, str) or not isinstance(sentences, Sequence):
            raise TypeError(f"sentences must be a list of strings, got {type(sentences).__name__}")
        if not sentences:
            raise ValueError("sentences must not be empty")
        rows = []
        for i, s in enumerate(sentences):
            if not isinstance(s, str):
                raise TypeError(f"sentences[{i}] must be a string, got {type(s).__name__}")
            ids = [self.index.get(t, self.unk_id) for t in s.split()]
            rows.append(ids + [self.eos_id] if add_eos else ids)
        width = max(1, max(len(r) for r in rows))
        out = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        for i, r in enumerate(rows):
            out[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        return out

    def decode(self, ids: Tensor) -> list[str]:
        """Strings from an ``(N, T)`` index tensor: stop at ``<eos>``, drop ``<pad>``/``<bos>``."""
        if not isinstance(ids, Tensor) or ids.ndim != 2:
            raise ValueError(
                f"ids must be a 2-D LongTensor (N, T), got "
                f"{tuple(ids.shape) if isinstance(ids, Tensor) else type(ids).__name__}"
            )
        out = []
        for row in ids.tolist():
            words = []
            for i in row:
                if i == self.eos_id:
                    break
                if i in (self.pad_id, self.bos_id):
                    continue
                words.append(self.tokens[i] if 0 <= i < len(self.tokens) else UNK)
            out.append(" ".join(words))
        return out


@dataclass
class SequenceTask:
    """Splits of (source, reference) string pairs with their vocabularies and score.

    Subclasses set :attr:`metric_name` and implement :meth:`sentence_scores` and
    :meth:`corpus_score` (both 0–100, higher is better); they may add splits through
    :meth:`splits`.

    Attributes:
        train_pairs, valid_pairs, test_pairs: lists of (source, reference) strings.
        src_vocab, tgt_vocab: :class:`Vocabulary` of each side.
    """

    train_pairs: list[tuple[str, str]]
    valid_pairs: list[tuple[str, str]]
    test_pairs: list[tuple[str, str]]
    src_vocab: Vocabulary
    tgt_vocab: Vocabulary
    metric_name = "score"

    def splits(self) -> dict[str, list[tuple[str, str]]]:
        """Split name -> its pairs."""
        return {"train": self.train_pairs, "valid": self.valid_pairs, "test": self.test_pairs}

    def pairs(self, split: str) -> list[tuple[str, str]]:
        """The pairs of ``split`` (``"train"``, ``"valid"``, ``"test"`` or a task's own)."""
        table = self.splits()
        if split not in table:
            raise ValueError(f"split must be one of {sorted(table)}, got {split!r}")
        return table[split]

    def encode(self, split: str) -> tuple[Tensor, Tensor]:
        """``(src (N, S), tgt (N, T))`` padded index tensors of ``split``, both ending in EOS."""
        pairs = self.pairs(split)
        return (
            self.src_vocab.encode([s for s, _ in pairs]),
            self.tgt_vocab.encode([t for _, t in pairs]),
        )

    def sentence_scores(
        self, hypotheses: Sequence[str], sources: Sequence[str], references: Sequence[str]
    ) -> list[float]:
        """One score (0–100) per output."""
        raise NotImplementedError

    def corpus_score(
        self, hypotheses: Sequence[str], sources: Sequence[str], references: Sequence[str]
    ) -> float:
        """The score (0–100) of a set of outputs."""
        raise NotImplementedError
