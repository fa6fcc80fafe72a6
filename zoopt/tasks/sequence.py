"""The interface shared by zoopt's sequence-to-sequence models: teacher forcing and decoding.

A model maps a source ``src (B, S)`` (right-padded token ids) to a distribution over target
sequences, factorised left to right, p(y | x) = Πₜ p(yₜ | y<ₜ, x). A subclass supplies three
things: the teacher-forced logits (:meth:`SequenceModel.forward`), the state a decoder
starts from (:meth:`SequenceModel.start`) and one decoding step
(:meth:`SequenceModel.step`). The rest is written here once, batched over sentences:

* :meth:`~SequenceModel.token_log_probs`, :meth:`~SequenceModel.sequence_log_prob`,
  :meth:`~SequenceModel.cross_entropy` — teacher forcing (maximum likelihood);
* :meth:`~SequenceModel.greedy` — greedy decoding;
* :meth:`~SequenceModel.sample` — ancestral sampling with summed per-token log-probabilities,
  differentiable, masked after EOS (the score-function input of REINFORCE; Williams, 1992).

``<pad>`` and ``<bos>`` are masked out of the output distribution: they are never emitted.
:class:`zoopt.objectives.TranslationObjective` takes any :class:`SequenceModel`.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["SequenceModel", "check_positive_int"]


def check_positive_int(name: str, value: Any) -> int:
    """``value`` if it is an int ≥ 1, else a ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


class SequenceModel(nn.Module):
    """Base class of the sequence-to-sequence models (see the module docstring).

    Args:
        src_vocab_size: source vocabulary size (including the specials).
        tgt_vocab_size: target vocabulary size (including the specials).
        pad_id, bos_id, eos_id: special token indices (shared by both vocabularies, as in
            :class:`zoopt.tasks.translation.Vocabulary`).
    """

    def __init__(
        self,
        src_vocab_size: int,
        tgt_vocab_size: int,
        pad_id: int = 0,
        bos_id: int = 1,
        eos_id: int = 2,
    ):
        super().__init__()
        check_positive_int("src_vocab_size", src_vocab_size)
        check_positive_int("tgt_vocab_size", tgt_vocab_size)
        self.src_vocab_size, self.tgt_vocab_size = src_vocab_size, tgt_vocab_size
        self.pad_id, self.bos_id, self.eos_id = pad_id, bos_id, eos_id

    # -- what a subclass supplies -------------------------------------------------------------
    def forward(self, src: Tensor, tgt: Tensor) -> Tensor:
        """Teacher-forced logits ``(B, T, V)`` for targets ``tgt (B, T)`` (ending in EOS)."""
        raise NotImplementedError

    def start(self, src: Tensor) -> Any:
        """The decoder's state before the first target token, for source ``src (B, S)``."""
        raise NotImplementedError

    def step(self, prev: Tensor, state: Any) -> tuple[Tensor, Any]:
        """Logits ``(B, V)`` of the next token after the previous one ``prev (B,)``, and the
        new state."""
        raise NotImplementedError

    # -- shared pieces ---------------------------------------------------------------------------
    def _check_src(self, src: Tensor) -> Tensor:
        if not isinstance(src, Tensor) or src.ndim != 2 or src.dtype != torch.long:
            raise ValueError(
                "src must be a 2-D LongTensor (B, S) of source token ids, got "
                f"{tuple(src.shape) if isinstance(src, Tensor) else type(src).__name__}"
            )
        return src

    def _mask_specials(self, logits: Tensor) -> Tensor:
        """``logits (…, V)`` with <pad> and <bos> made impossible.

        A large finite negative (not −inf) keeps 0·log p = 0 in masked sums and entropies.
        """
        never = torch.zeros(logits.shape[-1], dtype=torch.bool, device=logits.device)
        never[[self.pad_id, self.bos_id]] = True
        return logits.masked_fill(never, -1e9)

    def _shift_right(self, tgt: Tensor) -> Tensor:
        bos = torch.full_like(tgt[:, :1], self.bos_id)
        return torch.cat([bos, tgt[:, :-1]], 1)

    # -- teacher forcing ---------------------------------------------------------------------------
    def token_log_probs(self, src: Tensor, tgt: Tensor) -> Tensor:
        """log p(y_t | y_<t, x) of each target token, ``(B, T)``, 0 at padding."""
        logp = torch.log_softmax(self.forward(src, tgt), -1)
        lp = logp.gather(-1, tgt.unsqueeze(-1)).squeeze(-1)
        return lp.masked_fill(tgt == self.pad_id, 0.0)

    def sequence_log_prob(self, src: Tensor, tgt: Tensor) -> Tensor:
        """log p(y | x) summed over the tokens up to and including EOS, ``(B,)``."""
        return self.token_log_probs(src, tgt).sum(1)

    def cross_entropy(self, src: Tensor, tgt: Tensor) -> Tensor:
        """Mean per-token cross-entropy (the MLE loss), a scalar."""
        logits = self.forward(src, tgt)
        return F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1), ignore_index=self.pad_id
        )

    # -- decoding --------------------------------------------------------------------------------
    def _length_limits(self, src: Tensor, max_len: int | None) -> Tensor:
        """Per-sentence output length limits ``(B,)``.

        The default, ``2·len(x) + 5`` (the task's targets are at most ~1.5× the source),
        depends on each sentence alone, so a translation never depends on which other
        sentences share its batch or how far they are padded.
        """
        if max_len is None:
            return 2 * (src != self.pad_id).sum(1) + 5
        if isinstance(max_len, bool) or not isinstance(max_len, int) or max_len < 1:
            raise ValueError(f"max_len must be a positive int or None, got {max_len!r}")
        return torch.full((src.shape[0],), max_len, dtype=torch.long, device=src.device)

    @torch.no_grad()
    def greedy(self, src: Tensor, max_len: int | None = None) -> Tensor:
        """Greedy translations ``(B, L)`` (EOS-terminated, padded after EOS).

        ``max_len``: longest output (default ``2·len(x) + 5`` per sentence); unfinished
        outputs are cut there.
        """
        state = self.start(self._check_src(src))
        b = src.shape[0]
        limits = self._length_limits(src, max_len)
        prev = torch.full((b,), self.bos_id, dtype=torch.long, device=src.device)
        done = torch.zeros(b, dtype=torch.bool, device=src.device)
        out = []
        for t in range(int(limits.max())):
            logits, state = self.step(prev, state)
            tok = logits.argmax(-1).masked_fill(done, self.pad_id)
            out.append(tok)
            done = done | (tok == self.eos_id) | (limits <= t + 1)
            if bool(done.all()):  # stop early: the whole batch has finished
                break
            prev = tok
        return torch.stack(out, 1)

    def sample(
        self,
        src: Tensor,
        num_samples: int = 1,
        generator: torch.Generator | None = None,
        max_len: int | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Ancestral samples y ~ p(·|x), ``num_samples`` per source sentence.

        Args:
            src: ``(B, S)`` source ids.
            num_samples: M ≥ 1 draws per sentence.
            generator: the torch RNG for the draws (reproducible sampling).
            max_len: longest output (default ``2·len(x) + 5`` per sentence); unfinished
                samples are cut there (no EOS).

        Returns:
            ``tokens (B, M, L)`` (padded after EOS), ``log_probs (B, M)`` summed
            log p(y_t|y_<t, x) up to and including EOS, ``entropy (B, M)`` summed per-step
            entropies H(p(·|y_<t, x)) along each sample (a Monte-Carlo estimate of the
            sequence entropy by the chain rule). Both are differentiable when grad is
            enabled.
        """
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
            raise ValueError(f"num_samples must be a positive int, got {num_samples!r}")
        b = self._check_src(src).shape[0]
        src_rep = src.repeat_interleave(num_samples, 0)  # (B·M, S), sentence-major
        state = self.start(src_rep)
        limits = self._length_limits(src_rep, max_len)
        n = b * num_samples
        prev = torch.full((n,), self.bos_id, dtype=torch.long, device=src.device)
        done = torch.zeros(n, dtype=torch.bool, device=src.device)
        draw_on = generator.device if generator is not None else src.device
        toks, lps, ents = [], [], []
        for t in range(int(limits.max())):
            logits, state = self.step(prev, state)
            logp = torch.log_softmax(logits, -1)
            with torch.no_grad():
                # inverse-CDF sampling: one uniform per row (torch.multinomial is several
                # times slower on the CPU for many short rows); zero-probability tokens
                # occupy empty CDF intervals and are never drawn
                cdf = logp.exp().cumsum(-1)
                # drawn where the generator lives (a CPU generator drives a CUDA model too)
                u = torch.rand(n, 1, generator=generator, dtype=cdf.dtype, device=draw_on)
                u = u.to(cdf.device) * cdf[:, -1:]
                tok = torch.searchsorted(cdf, u, right=True).squeeze(1).clamp_max(cdf.shape[1] - 1)
            tok = tok.masked_fill(done, self.pad_id)
            live = (~done).to(logp.dtype)
            lps.append(logp.gather(1, tok.unsqueeze(1)).squeeze(1) * live)
            ents.append(-(logp.exp() * logp).sum(-1) * live)
            toks.append(tok)
            done = done | (tok == self.eos_id) | (limits <= t + 1)
            if bool(done.all()):
                break
            prev = tok
        tokens = torch.stack(toks, 1).view(b, num_samples, -1)
        log_probs = torch.stack(lps, 1).sum(1).view(b, num_samples)
        entropy = torch.stack(ents, 1).sum(1).view(b, num_samples)
        return tokens, log_probs, entropy
