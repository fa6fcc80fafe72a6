"""A small GRU encoder–decoder with attention for the synthetic translation task.

Encoder: embeddings → one-layer ``nn.GRU``; the decoder starts from the encoder state at the
last real source token. Decoder: embeddings of the previous target token → ``nn.GRU`` →
global "general" attention over the encoder states (Luong, Pham & Manning, 2015) →
``tanh(W[h; c])`` → vocabulary logits. Without input feeding, the decoder's per-step
computation is the same whether it runs over a whole teacher-forced sequence at once or one
token at a time, so sampled log-probabilities match a teacher-forced recomputation exactly.
``<pad>`` and ``<bos>`` are masked out of the output distribution: they are never emitted.

Teacher forcing, greedy decoding and sampling come from
:class:`zoopt.tasks.sequence.SequenceModel`, all batched over sentences.

``nn.GRU`` has no ``vmap`` batching rule (``aten::gru.input``), so a population of parameter
vectors is evaluated with one call per candidate; see
:class:`zoopt.objectives.translation.TranslationObjective`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from zoopt.tasks.sequence import SequenceModel, check_positive_int

__all__ = ["Seq2Seq"]


class Seq2Seq(SequenceModel):
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
        super().__init__(src_vocab_size, tgt_vocab_size, pad_id, bos_id, eos_id)
        check_positive_int("embed_dim", embed_dim)
        check_positive_int("hidden_dim", hidden_dim)
        self.src_embed = nn.Embedding(src_vocab_size, embed_dim, padding_idx=pad_id)
        self.tgt_embed = nn.Embedding(tgt_vocab_size, embed_dim, padding_idx=pad_id)
        self.encoder = nn.GRU(embed_dim, hidden_dim, batch_first=True)
        self.decoder = nn.GRU(embed_dim, hidden_dim, batch_first=True)
        self.attn = nn.Linear(hidden_dim, hidden_dim, bias=False)
        self.combine = nn.Linear(2 * hidden_dim, hidden_dim)
        self.out = nn.Linear(hidden_dim, tgt_vocab_size)

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
        return self._mask_specials(logits), h

    def forward(self, src: Tensor, tgt: Tensor) -> Tensor:
        """Teacher-forced logits ``(B, T, V)`` for targets ``tgt (B, T)`` (ending in EOS)."""
        states, mask, h = self.encode(src)
        logits, _ = self._decode(self._shift_right(tgt), states, mask, h)
        return logits

    def start(self, src: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(memory, mask, h0)`` of :meth:`encode`: the decoder's initial state."""
        return self.encode(src)

    def step(self, prev: Tensor, state: tuple) -> tuple[Tensor, tuple]:
        """Logits ``(B, V)`` after ``prev (B,)`` and the GRU's next state."""
        states, mask, h = state
        logits, h = self._decode(prev.unsqueeze(1), states, mask, h)
        return logits[:, -1], (states, mask, h)
