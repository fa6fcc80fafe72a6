"""A sequence task's score as an objective: BLEU of translations, or a verifier's verdict.

Loss = −(the task's score, 0–100) of the greedy outputs for the step's minibatch, so the
reported metric is the score itself (``metric_sign = -1``): corpus BLEU (Papineni et al.,
2002; sacrebleu, Post, 2018, through :mod:`zoopt.metrics`) for the translation task, the
share of problems solved for the Countdown task (:mod:`zoopt.tasks.countdown`), whose
verifier reads no reference. Three views of one model:

* :meth:`TranslationObjective.evaluate` — parameter space: K flat parameter vectors → K
  losses (for ``"sampling"``, ``"es"``, ``"cmaes"``);
* :meth:`TranslationObjective.surrogate` — the MLE cross-entropy under teacher forcing (for
  ``"gradient"`` and the MLE-guided proposal of ``"sampling"``; Welleck & Cho, 2020);
* :meth:`TranslationObjective.sample_outputs` — output space: M sampled translations per
  source sentence with their differentiable log-probabilities and losses 1 − sentence
  BLEU/100 (for ``"reinforce"``; Ranzato et al., 2016, Shen et al., 2016).

The model is any :class:`~zoopt.tasks.sequence.SequenceModel`: the GRU
:class:`~zoopt.tasks.seq2seq.Seq2Seq` or the Transformer
:class:`~zoopt.tasks.transformer.TransformerSeq2Seq`. Parameters enter through
``torch.func.functional_call`` on a flat vector ``(D,)`` laid out as
``parameters_to_vector(model.parameters())``, so the user's model is never modified and
gradients reach the flat vector. ``nn.GRU`` has no ``vmap`` batching rule
(``aten::gru.input``), so :meth:`~TranslationObjective.evaluate` runs one batched greedy
decode per candidate row: K is small for a seq2seq model, and each call already batches the
whole minibatch. Measured on one CPU thread (D = 87,662, embed 32, hidden 64): about 50 ms
per candidate for a minibatch of 32 or 64 sentences, mostly the per-token decoding loop.

Low-rank members (an estimator's ``rank``, :mod:`zoopt.lowrank`) are never turned into rows:
when every parameter belongs to a layer the population forward supports (the Transformer),
one greedy decode runs the K·B rows of all members' translations at once
(:func:`zoopt.population_forward.population_forward` with ``method="greedy"``); otherwise
(the GRU), or with ``inplace=True``, each member is decoded in the model's own parameters
(:func:`~zoopt.population_forward.inplace_forward`), which hold θ again afterwards.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.func import functional_call

from zoopt.lowrank import LowRankError, LowRankMembers, LowRankStructure
from zoopt.objectives.base import Objective, OutputSamples, seeded_generator
from zoopt.population_forward import check_population_forward, inplace_forward, population_forward
from zoopt.tasks.sequence import SequenceModel
from zoopt.tasks.sequence_task import SequenceTask

__all__ = ["TranslationObjective"]


class TranslationObjective(Objective):
    """Minimise minus the score (BLEU, or the share solved) of a sequence-to-sequence model
    on a sequence task.

    Args:
        model: a :class:`~zoopt.tasks.sequence.SequenceModel` (``Seq2Seq``,
            ``TransformerSeq2Seq``) whose parameters (flattened) are optimised; its
            vocabulary sizes and special ids must match ``task``'s vocabularies.
        task: a :class:`~zoopt.tasks.sequence_task.SequenceTask`: the translation task
            (``make_translation_task``, scored by BLEU) or the Countdown task
            (``make_countdown_task``, scored by its verifier); the loss is minus the task's
            score and ``metric_name`` the task's.
        batch_size: sentences per step, drawn from the training split without replacement
            from the step's seed (common random numbers: every candidate of a step sees the
            same sentences); ``None`` or a size ≥ the split uses the whole split.
        max_len: longest decoded output (default ``2·S + 5`` for source length S).
        split: the split the steps draw from.
        inplace: how low-rank members are decoded: ``None`` (default) by one population
            forward when the model's layers allow it, else in place; ``True`` always one
            member after another in the model's own parameters; ``False`` always by the
            population forward (a ``LowRankError`` for a model it cannot run).
        chunk_size: members per population forward (``None``: all of them at once); bounds
            the K·B rows held at a time.

    Attributes:
        dim: D, the number of model parameters.
    """

    metric_sign = -1.0
    #: low-rank members are decoded by a population forward or in place, never as rows
    accepts_members = True

    def __init__(
        self,
        model: nn.Module,
        task: SequenceTask,
        batch_size: int | None = 32,
        max_len: int | None = None,
        split: str = "train",
        inplace: bool | None = None,
        chunk_size: int | None = None,
    ):
        if not isinstance(model, SequenceModel):
            raise TypeError(
                "model must be a zoopt.tasks.SequenceModel (Seq2Seq, TransformerSeq2Seq), "
                f"got {type(model).__name__}"
            )
        if not isinstance(task, SequenceTask):
            raise TypeError(
                "task must be a zoopt.tasks.SequenceTask (make_translation_task, "
                f"make_countdown_task), got {type(task).__name__}"
            )
        for side, size, vocab in (
            ("src", model.src_vocab_size, task.src_vocab),
            ("tgt", model.tgt_vocab_size, task.tgt_vocab),
        ):
            if size != len(vocab):
                raise ValueError(
                    f"model.{side}_vocab_size = {size} does not match the task's {side}_vocab "
                    f"of {len(vocab)} tokens; build the model as Seq2Seq(len(task.src_vocab), "
                    "len(task.tgt_vocab))"
                )
        ids = (task.tgt_vocab.pad_id, task.tgt_vocab.bos_id, task.tgt_vocab.eos_id)
        if (model.pad_id, model.bos_id, model.eos_id) != ids:
            raise ValueError(
                f"model special ids (pad, bos, eos) = {(model.pad_id, model.bos_id, model.eos_id)}"
                f" do not match the task's vocabulary {ids}"
            )
        if batch_size is not None and (
            isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
        ):
            raise ValueError(f"batch_size must be a positive int or None, got {batch_size!r}")
        if max_len is not None and (
            isinstance(max_len, bool) or not isinstance(max_len, int) or max_len < 1
        ):
            raise ValueError(f"max_len must be a positive int or None, got {max_len!r}")
        if inplace not in (None, True, False):
            raise ValueError(f"inplace must be None, True or False, got {inplace!r}")
        if chunk_size is not None and (
            isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1
        ):
            raise ValueError(f"chunk_size must be a positive int or None, got {chunk_size!r}")
        if inplace is False:  # refuse a model the population forward cannot run, now
            check_population_forward(model, LowRankStructure.from_module(model, 1))
        self.inplace, self.chunk_size = inplace, chunk_size
        self.model, self.task = model, task
        self.batch_size, self.max_len, self.split = batch_size, max_len, split
        self.src, self.tgt = task.encode(split)
        self.refs = [t for _, t in task.pairs(split)]
        self.sources = [s for s, _ in task.pairs(split)]
        self.metric_name = task.metric_name
        self._names = [n for n, _ in model.named_parameters()]
        self._shapes = [p.shape for _, p in model.named_parameters()]
        self._numels = [p.numel() for _, p in model.named_parameters()]
        self.dim = sum(self._numels)
        self.name = "translation_bleu"
        self._encoded: dict[str, tuple[Tensor, Tensor]] = {split: (self.src, self.tgt)}

    # -- plumbing ----------------------------------------------------------------------------
    def params(self, x: Tensor) -> dict[str, Tensor]:
        """The flat vector ``x`` ``(D,)`` as the model's named parameters (differentiable views)."""
        if not isinstance(x, Tensor) or x.shape != (self.dim,):
            raise ValueError(
                f"x must be a 1-D tensor of the model's {self.dim} parameters, got "
                f"{tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__}"
            )
        chunks = torch.split(x, self._numels)
        return {n: c.view(s) for n, c, s in zip(self._names, chunks, self._shapes, strict=True)}

    def batch_indices(self, seed: int) -> Tensor:
        """Indices of the step's minibatch (a function of ``seed`` only)."""
        n = len(self.refs)
        if self.batch_size is None or self.batch_size >= n:
            return torch.arange(n)
        g = seeded_generator(seed)
        return torch.randperm(n, generator=g)[: self.batch_size]

    def _minibatch(self, seed: int) -> tuple[Tensor, Tensor, list[str], list[str]]:
        """``(src, tgt, sources, references)`` of the step's minibatch."""
        idx = self.batch_indices(seed)
        src, tgt = self.src[idx], self.tgt[idx]
        # trim columns that are padding in every row of this minibatch
        src = src[:, : int((src != self.model.pad_id).sum(1).max())]
        tgt = tgt[:, : int((tgt != self.model.pad_id).sum(1).max())]
        rows = idx.tolist()
        return src, tgt, [self.sources[i] for i in rows], [self.refs[i] for i in rows]

    # -- the objective -----------------------------------------------------------------------
    def evaluate(self, X: Tensor, seed: int = 0) -> Tensor:
        """Minus the task's score (corpus BLEU, or the share solved) of the greedy outputs for
        the step's minibatch, per candidate.

        Args:
            X: ``(K, D)`` flat parameter vectors, or K low-rank members
                (:class:`zoopt.LowRankMembers`).
            seed: the step's seed; it picks the minibatch.

        Returns:
            ``(K,)`` losses in [−100, 0].
        """
        if isinstance(X, LowRankMembers):
            if X.dim != self.dim:
                raise ValueError(f"X: members of D={X.dim} parameters, the model has {self.dim}")
            src, _, sources, refs = self._minibatch(seed)
            hyps = self.translate_members(X, src)
            scores = [self.task.corpus_score(h, sources, refs) for h in hyps]
            return -torch.tensor(scores, dtype=X.center.dtype)
        if (
            not isinstance(X, Tensor)
            or X.ndim != 2
            or X.shape[1] != self.dim
            or not X.is_floating_point()
        ):
            raise ValueError(
                f"X must be a floating-point tensor of shape (K, {self.dim}), got "
                f"{tuple(X.shape) if isinstance(X, Tensor) else type(X).__name__}"
            )
        src, _, sources, refs = self._minibatch(seed)
        losses = torch.empty(X.shape[0], dtype=X.dtype)
        with torch.no_grad():
            # vmap over K fails on nn.GRU ("Batching rule not implemented for
            # aten::gru.input"), so one batched greedy decode per candidate
            for k in range(X.shape[0]):
                hyps = self.translate_ids(X[k], src)
                losses[k] = -self.task.corpus_score(hyps, sources, refs)
        return losses

    def surrogate(self, x: Tensor, seed: int = 0) -> Tensor:
        """Mean per-token cross-entropy on the step's minibatch (teacher forcing), a scalar."""
        src, tgt, _, _ = self._minibatch(seed)
        return _call_method(self.model, self.params(x), "cross_entropy", src, tgt)

    def sample_outputs(
        self, x: Tensor, num_samples: int, generator: torch.Generator, seed: int = 0
    ) -> OutputSamples:
        """M sampled translations of each minibatch sentence (the output-sampling protocol).

        Returns:
            :class:`~zoopt.objectives.base.OutputSamples` with ``log_probs (N, M)`` summed
            token log-probabilities (differentiable with respect to ``x``), ``losses (N, M)``
            = 1 − score/100 of each sample (sentence BLEU, or the verifier's 0/1), and
            ``entropy (N,)`` the mean over the M samples of the summed per-token entropies.
        """
        src, _, sources, refs = self._minibatch(seed)
        tokens, log_probs, entropy = _call_method(
            self.model, self.params(x), "sample", src, num_samples, generator, self.max_len
        )
        n, m, _ = tokens.shape
        hyps = self.task.tgt_vocab.decode(tokens.reshape(n * m, -1))
        scores = self.task.sentence_scores(
            hyps, [s for s in sources for _ in range(m)], [r for r in refs for _ in range(m)]
        )
        losses = 1.0 - torch.tensor(scores, dtype=log_probs.dtype).view(n, m) / 100.0
        return OutputSamples(log_probs=log_probs, losses=losses, entropy=entropy.mean(1))

    # -- low-rank members ---------------------------------------------------------------------
    def _population_forward_ok(self, members: LowRankMembers) -> bool:
        if self.inplace is not None:
            return not self.inplace
        if not hasattr(self, "_supports_population"):
            try:
                check_population_forward(self.model, members.structure)
                self._supports_population = True
            except LowRankError:
                self._supports_population = False
        return self._supports_population

    def translate_members(self, members: LowRankMembers, src: Tensor) -> list[list[str]]:
        """Greedy translations (strings) of ``src`` ``(B, S)`` by each of K low-rank
        members: K lists of B strings."""
        if self._population_forward_ok(members):
            step = self.chunk_size or len(members)
            ids = []
            with torch.no_grad():
                for part in members.split(step):
                    out = population_forward(
                        self.model, part, src, method="greedy", max_len=self.max_len
                    )  # (k, B, L)
                    ids += list(out)
        else:  # one member at a time; greedy outputs of members differ in length
            ids = [
                inplace_forward(self.model, m, src, method="greedy", max_len=self.max_len)[0]
                for m in members.split(1)
            ]
        return [self.task.tgt_vocab.decode(i) for i in ids]

    # -- held-out evaluation -------------------------------------------------------------------
    def translate_ids(self, x: Tensor, src: Tensor) -> list[str]:
        """Greedy translations (strings) of source ids ``src`` ``(B, S)`` at parameters ``x``."""
        with torch.no_grad():
            ids = _call_method(self.model, self.params(x), "greedy", src, self.max_len)
        return self.task.tgt_vocab.decode(ids)

    def translate(self, x: Tensor, sentences: list[str]) -> list[str]:
        """Greedy translations of source ``sentences`` at parameters ``x`` ``(D,)``."""
        return self.translate_ids(x, self.task.src_vocab.encode(sentences))

    def score(self, x: Tensor, split: str = "test", batch_size: int = 256) -> float:
        """The task's score (0–100: corpus BLEU, or the share solved) of the greedy outputs
        for a whole split at ``x`` ``(D,)``."""
        if split not in self._encoded:
            self._encoded[split] = self.task.encode(split)
        src_all, _ = self._encoded[split]
        pairs = self.task.pairs(split)
        hyps: list[str] = []
        for start in range(0, len(pairs), batch_size):
            src = src_all[start : start + batch_size]
            src = src[:, : int((src != self.model.pad_id).sum(1).max())]
            hyps += self.translate_ids(x.detach(), src)
        return self.task.corpus_score(hyps, [s for s, _ in pairs], [t for _, t in pairs])

    def bleu(self, x: Tensor, split: str = "test", batch_size: int = 256) -> float:
        """:meth:`score` under its name for the translation task (corpus BLEU, 0–100)."""
        return self.score(x, split, batch_size)

    def flat_parameters(self) -> Tensor:
        """The model's current parameters as a flat vector ``(D,)`` (a copy)."""
        return nn.utils.parameters_to_vector(self.model.parameters()).detach().clone()

    def __repr__(self) -> str:
        return (
            f"TranslationObjective(D={self.dim}, batch_size={self.batch_size}, "
            f"train={len(self.refs)})"
        )


class _MethodCall(nn.Module):
    """Wraps a model so that ``functional_call`` can run any of its methods, not only forward."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, method: str, *args, **kwargs):
        return getattr(self.model, method)(*args, **kwargs)


def _call_method(model: nn.Module, params: dict[str, Tensor], method: str, *args, **kwargs):
    """``model.<method>(*args)`` with ``params`` in place of the model's own parameters."""
    wrapper = _MethodCall(model)
    named = {f"model.{k}": v for k, v in params.items()}
    return functional_call(wrapper, named, (method, *args), kwargs, strict=True)
