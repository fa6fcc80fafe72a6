"""A pre-norm Transformer encoder–decoder (Vaswani et al., 2017, "Attention Is All You Need")
for the synthetic translation task, built only from layers that low-rank ES can perturb per
member.

Every parameter belongs to an ``nn.Embedding`` (tokens and learned positions), an
``nn.Linear`` (the q, k, v and output projections of each attention, the two layers of each
feed-forward block, the vocabulary projection) or an ``nn.LayerNorm``, so the population
forward of :mod:`zoopt.population_forward` runs the model once for K members of a low-rank
population (EGGROLL; Sarkar et al. 2025), greedy decoding included, and
:func:`~zoopt.population_forward.inplace_forward` runs it member by member.

Blocks are pre-norm (Xiong et al., 2020: x + f(LayerNorm(x)), a final LayerNorm on each
stack), with h heads of scaled dot-product attention and a ReLU feed-forward block of width
``ff_dim``; no dropout, so that an evaluation is a deterministic function of the parameters.
Decoding keeps each layer's keys and values of the tokens already produced (a key–value
cache), so a step costs one token's work instead of re-running the prefix; the cross-attention
keys and values of the source are projected once. Shapes: source ``(B, S)`` and target
``(B, T)`` right-padded ids, logits ``(B, T, V)``; inside, ``(B, L, d)`` activations and
``(B, h, L, d/h)`` heads.

Teacher forcing, greedy decoding and sampling come from
:class:`zoopt.tasks.sequence.SequenceModel`. Sampled log-probabilities equal a teacher-forced
recomputation up to float rounding (the cached and the masked attention add the same terms in
a different order).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoopt.tasks.sequence import SequenceModel, check_positive_int

__all__ = ["TransformerSeq2Seq"]


class _Attention(nn.Module):
    """Multi-head scaled dot-product attention with separate q, k, v, o projections."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.o = (nn.Linear(dim, dim) for _ in range(4))

    def split(self, x: Tensor) -> Tensor:
        """``(B, L, d)`` → ``(B, h, L, d/h)``."""
        b, length, d = x.shape
        return x.view(b, length, self.heads, d // self.heads).transpose(1, 2)

    def keys_values(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Keys and values ``(B, h, L, d/h)`` of ``x (B, L, d)``."""
        return self.split(self.k(x)), self.split(self.v(x))

    def attend(
        self, x: Tensor, keys: Tensor, values: Tensor, mask: Tensor | None = None, causal=False
    ) -> Tensor:
        """Queries from ``x (B, L, d)`` over ``keys``/``values``; ``mask (B, 1, 1, S)`` True
        where a key may be attended to. Returns ``(B, L, d)``."""
        out = F.scaled_dot_product_attention(
            self.split(self.q(x)), keys, values, attn_mask=mask, is_causal=causal
        )
        b, _, length, _ = out.shape
        return self.o(out.transpose(1, 2).reshape(b, length, -1))


class _FeedForward(nn.Module):
    def __init__(self, dim: int, ff_dim: int):
        super().__init__()
        self.up, self.down = nn.Linear(dim, ff_dim), nn.Linear(ff_dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.down(torch.relu(self.up(x)))


class _EncoderLayer(nn.Module):
    def __init__(self, dim: int, heads: int, ff_dim: int):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), _Attention(dim, heads)
        self.norm2, self.ff = nn.LayerNorm(dim), _FeedForward(dim, ff_dim)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        h = self.norm1(x)
        x = x + self.attn.attend(h, *self.attn.keys_values(h), mask)
        return x + self.ff(self.norm2(x))


class _DecoderLayer(nn.Module):
    def __init__(self, dim: int, heads: int, ff_dim: int):
        super().__init__()
        self.norm1, self.self_attn = nn.LayerNorm(dim), _Attention(dim, heads)
        self.norm2, self.cross_attn = nn.LayerNorm(dim), _Attention(dim, heads)
        self.norm3, self.ff = nn.LayerNorm(dim), _FeedForward(dim, ff_dim)

    def forward(
        self,
        x: Tensor,
        self_kv: tuple[Tensor, Tensor] | None,
        cross_kv: tuple[Tensor, Tensor],
        mask: Tensor,
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """One layer over target positions ``x (B, L, d)``. ``self_kv``: the cached keys and
        values of the earlier positions (None under teacher forcing, which attends causally
        within ``x``). Returns the output and the keys/values including ``x``'s."""
        h = self.norm1(x)
        k, v = self.self_attn.keys_values(h)
        if self_kv is not None:
            k, v = torch.cat([self_kv[0], k], 2), torch.cat([self_kv[1], v], 2)
        x = x + self.self_attn.attend(h, k, v, causal=self_kv is None and x.shape[1] > 1)
        x = x + self.cross_attn.attend(self.norm2(x), *cross_kv, mask)
        return x + self.ff(self.norm3(x)), (k, v)


class TransformerSeq2Seq(SequenceModel):
    """Pre-norm Transformer encoder–decoder (see the module docstring).

    Args:
        src_vocab_size: source vocabulary size (including the specials).
        tgt_vocab_size: target vocabulary size (including the specials).
        dim: d, the model width (a multiple of ``heads``).
        heads: h, attention heads.
        ff_dim: width of the feed-forward blocks.
        encoder_layers, decoder_layers: depth of each stack.
        max_positions: longest source or target (learned position embeddings).
        pad_id, bos_id, eos_id: special token indices (shared by both vocabularies).

    The defaults (d = 256, 4 heads, ff 1024, 3 + 3 layers) give about 5.8M parameters on
    the translation task's vocabularies.
    """

    def __init__(
        self,
        src_vocab_size: int,
        tgt_vocab_size: int,
        dim: int = 256,
        heads: int = 4,
        ff_dim: int = 1024,
        encoder_layers: int = 3,
        decoder_layers: int = 3,
        max_positions: int = 128,
        pad_id: int = 0,
        bos_id: int = 1,
        eos_id: int = 2,
    ):
        super().__init__(src_vocab_size, tgt_vocab_size, pad_id, bos_id, eos_id)
        for name, v in (
            ("dim", dim),
            ("heads", heads),
            ("ff_dim", ff_dim),
            ("encoder_layers", encoder_layers),
            ("decoder_layers", decoder_layers),
            ("max_positions", max_positions),
        ):
            check_positive_int(name, v)
        if dim % heads:
            raise ValueError(f"dim must be a multiple of heads, got dim={dim}, heads={heads}")
        self.dim, self.max_positions = dim, max_positions
        self.src_embed = nn.Embedding(src_vocab_size, dim, padding_idx=pad_id)
        self.tgt_embed = nn.Embedding(tgt_vocab_size, dim, padding_idx=pad_id)
        self.src_pos = nn.Embedding(max_positions, dim)
        self.tgt_pos = nn.Embedding(max_positions, dim)
        self.encoder = nn.ModuleList(
            _EncoderLayer(dim, heads, ff_dim) for _ in range(encoder_layers)
        )
        self.decoder = nn.ModuleList(
            _DecoderLayer(dim, heads, ff_dim) for _ in range(decoder_layers)
        )
        self.encoder_norm, self.decoder_norm = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.out = nn.Linear(dim, tgt_vocab_size)
        for emb in (self.src_embed, self.tgt_embed, self.src_pos, self.tgt_pos):
            nn.init.normal_(emb.weight, std=dim**-0.5)
            if emb.padding_idx is not None:
                with torch.no_grad():
                    emb.weight[emb.padding_idx].zero_()

    def _positions(self, ids: Tensor, first: int = 0) -> Tensor:
        """Position ids ``(B, L)`` of ``ids (B, L)`` (one row per sentence: the population
        forward needs the rows axis on every embedding lookup)."""
        length = ids.shape[1]
        if first + length > self.max_positions:
            raise ValueError(
                f"a sequence of {first + length} tokens exceeds max_positions="
                f"{self.max_positions}; build the model with a larger max_positions"
            )
        pos = torch.arange(first, first + length, device=ids.device)
        return pos.expand(ids.shape[0], length)

    def encode(self, src: Tensor) -> tuple[Tensor, Tensor]:
        """Encoder states ``(B, S, d)`` and the key mask ``(B, 1, 1, S)`` (True at real
        tokens) of ``src (B, S)``."""
        src = self._check_src(src)
        mask = (src != self.pad_id)[:, None, None, :]
        x = self.src_embed(src) + self.src_pos(self._positions(src))
        for layer in self.encoder:
            x = layer(x, mask)
        return self.encoder_norm(x), mask

    def forward(self, src: Tensor, tgt: Tensor) -> Tensor:
        """Teacher-forced logits ``(B, T, V)`` for targets ``tgt (B, T)`` (ending in EOS)."""
        memory, mask = self.encode(src)
        prev = self._shift_right(tgt)
        x = self.tgt_embed(prev) + self.tgt_pos(self._positions(prev))
        for layer in self.decoder:
            x, _ = layer(x, None, layer.cross_attn.keys_values(memory), mask)
        return self._mask_specials(self.out(self.decoder_norm(x)))

    def start(self, src: Tensor) -> dict[str, Any]:
        """The decoding state: source mask, each layer's cross-attention keys/values of the
        encoder states (projected once), empty self-attention caches, position 0."""
        memory, mask = self.encode(src)
        cross = [layer.cross_attn.keys_values(memory) for layer in self.decoder]
        return {"mask": mask, "cross": cross, "cache": [None] * len(self.decoder), "t": 0}

    def step(self, prev: Tensor, state: dict[str, Any]) -> tuple[Tensor, dict[str, Any]]:
        """Logits ``(B, V)`` of the next token after ``prev (B,)``, with the cache extended."""
        ids = prev.unsqueeze(1)
        x = self.tgt_embed(ids) + self.tgt_pos(self._positions(ids, state["t"]))
        cache = []
        for layer, kv, cross in zip(self.decoder, state["cache"], state["cross"], strict=True):
            x, kv = layer(x, kv, cross, state["mask"])
            cache.append(kv)
        logits = self._mask_specials(self.out(self.decoder_norm(x)))[:, 0]
        return logits, {**state, "cache": cache, "t": state["t"] + 1}
