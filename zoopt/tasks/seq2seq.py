"""A small GRU encoder–decoder with attention for the synthetic translation task.

Encoder: embeddings → one-layer ``nn.GRU``; the decoder starts from the encoder state at the
last real source token. Decoder: embeddings of the previous target token → ``nn.GRU`` →
global "general" attention over the encoder states (Luong, Pham & Manning, 2015) →
``tanh(W[h; c])`` → vocabulary logits. Without input feeding, the decoder's per-step
computation is the same whether it runs over a whole teacher-forced sequence at once or one
token at a time, so sampled log-probabilities match a teacher-forced recomputation exactly.
``<pad>`` and ``<bos>`` are masked out of the output distribution: they are never emitted.

Three ways to use it, all batched over sentences:

* :meth:`Seq2Seq.token_log_probs` / :meth:`Seq2Seq.cross_entropy` — teacher forcing (MLE);
* :meth:`Seq2Seq.greedy` — greedy decoding;
* :meth:`Seq2Seq.sample` — ancestral sampling with summed per-token log-probabilities,
  differentiable, masked after EOS (the score-function input of REINFORCE; Williams, 1992).

``nn.GRU`` has no ``vmap`` batching rule (``aten::gru.input``), so a population of parameter
vectors is evaluated with one call per candidate; see
:class:`zoopt.objectives.translation.TranslationObjective`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["Seq2Seq"]


class Seq2Seq(nn.Module):
    """GRU encoder–decoder with Luong attention.

    Args:
        src_vocab_size: source vocabulary size (including the specials).
        tgt_vocab_size: target vocabulary size (including the specials).
        embed_dim: embedding width.
        hidden_dim: GRU state width.
        pad_id, bos_id, eos_id: special token indices (shared by both vocabularies, as in
            :class:`zoopt.tasks.translation.Vocabulary`).
    """

    def __init__(
        self,
        src_vocab_size: int,
        tgt_vocab_size: int,
        embed_dim: int = 32,
        hidden_dim: int = 64,
        pad_id: int = 0,
        bos_id: int = 1,
        eos_id: int = 2,
    ):
        super().__init__()
        for name, v in (
            ("src_vocab_size", src_vocab_size),
            ("tgt_vocab_size", tgt_vocab_size),
            ("embed_dim", embed_dim),
            ("hidden_dim", hidden_dim),
        ):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        self.src_vocab_size, self.tgt_vocab_size = src_vocab_size, tgt_vocab_size
        self.pad_id, self.bos_id, self.eos_id = pad_id, bos_id, eos_id
        self.src_embed = nn.Embedding(src_vocab_size, embed_dim, padding_idx=pad_id)
        self.tgt_embed = nn.Embedding(tgt_vocab_size, embed_dim, padding_idx=pad_id)
        self.encoder = nn.GRU(embed_dim, hidden_dim, batch_first=True)
        self.decoder = nn.GRU(embed_dim, hidden_dim, batch_first=True)
        self.attn = nn.Linear(hidden_dim, hidden_dim, bias=False)
        self.combine = nn.Linear(2 * hidden_dim, hidden_dim)
        self.out = nn.Linear(hidden_dim, tgt_vocab_size)

    # -- building blocks -----------------------------------------------------------------------
    def _check_src(self, src: Tensor) -> Tensor:
        if not isinstance(src, Tensor) or src.ndim != 2 or src.dtype != torch.long:
            raise ValueError(
                "src must be a 2-D LongTensor (B, S) of source token ids, got "
                f"{tuple(src.shape) if isinstance(src, Tensor) else type(src).__name__}"
            )
        return src

    def encode(self, src: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Encode ``src`` ``(B, S)`` (right-padded).

        Returns:
            ``memory (B, S, H)`` encoder states (already projected for attention),
            ``mask (B, S)`` True at real tokens, ``h0 (1, B, H)`` the state at the last real
            token (padding never reaches it because padding is on the right).
        """
        src = self._check_src(src)
        mask = src != self.pad_id
        states, _ = self.encoder(self.src_embed(src))
        last = mask.sum(1).clamp_min(1) - 1
        h0 = states[torch.arange(src.shape[0], device=src.device), last].unsqueeze(0)
        return states, mask, h0.contiguous()

    def _decode(
        self, prev: Tensor, states: Tensor, mask: Tensor, h: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Logits ``(B, T, V)`` for previous tokens ``prev (B, T)`` from state ``h``."""
        dec, h = self.decoder(self.tgt_embed(prev), h)
        scores = torch.bmm(self.attn(dec), states.transpose(1, 2))  # (B, T, S)
        scores = scores.masked_fill(~mask.unsqueeze(1), float("-inf"))
        context = torch.bmm(torch.softmax(scores, dim=-1), states)
        logits = self.out(torch.tanh(self.combine(torch.cat([dec, context], -1))))
        # <pad> and <bos> are never outputs; a large finite negative (not −inf) keeps
        # 0·log p = 0 in masked sums and entropies
        never = torch.zeros(logits.shape[-1], dtype=torch.bool, device=logits.device)
        never[[self.pad_id, self.bos_id]] = True
        return logits.masked_fill(never, -1e9), h

    def _shift_right(self, tgt: Tensor) -> Tensor:
        bos = torch.full_like(tgt[:, :1], self.bos_id)
        return torch.cat([bos, tgt[:, :-1]], 1)

    # -- teacher forcing ---------------------------------------------------------------------------
    def forward(self, src: Tensor, tgt: Tensor) -> Tensor:
        """Teacher-forced logits ``(B, T, V)`` for targets ``tgt (B, T)`` (ending in EOS)."""
        states, mask, h = self.encode(src)
        logits, _ = self._decode(self._shift_right(tgt), states, mask, h)
        return logits

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
        states, mask, h = self.encode(src)
        b = src.shape[0]
        limits = self._length_limits(src, max_len)
        prev = torch.full((b, 1), self.bos_id, dtype=torch.long, device=src.device)
        done = torch.zeros(b, dtype=torch.bool, device=src.device)
        out = []
        for t in range(int(limits.max())):
            logits, h = self._decode(prev, states, mask, h)
            tok = logits[:, -1].argmax(-1)
            tok = tok.masked_fill(done, self.pad_id)
            out.append(tok)
            done = done | (tok == self.eos_id) | (limits <= t + 1)
            if bool(done.all()):  # stop early: the whole batch has finished
                break
            prev = tok.unsqueeze(1)
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
        states, mask, h = self.encode(src_rep)
        limits = self._length_limits(src_rep, max_len)
        n = b * num_samples
        prev = torch.full((n, 1), self.bos_id, dtype=torch.long, device=src.device)
        done = torch.zeros(n, dtype=torch.bool, device=src.device)
        draw_on = generator.device if generator is not None else src.device
        toks, lps, ents = [], [], []
        for t in range(int(limits.max())):
            logits, h = self._decode(prev, states, mask, h)
            logp = torch.log_softmax(logits[:, -1], -1)
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
            prev = tok.unsqueeze(1)
        tokens = torch.stack(toks, 1).view(b, num_samples, -1)
        log_probs = torch.stack(lps, 1).sum(1).view(b, num_samples)
        entropy = torch.stack(ents, 1).sum(1).view(b, num_samples)
        return tokens, log_probs, entropy
