"""Every member's output from one run of the user's module (EGGROLL's population forward;
Sarkar et al. 2025), and seeded in-place evaluation (Qiu et al. 2025, "Evolution Strategies
at Scale: LLM Fine-Tuning Beyond Reinforcement Learning").

:func:`population_forward` runs the module once on the K·B rows of K copies of a batch
(member-major: rows k·B … (k+1)·B − 1 are member k's) with θ's values as its parameters
(``torch.func.functional_call``). While it runs, each supported layer's ``forward`` is
wrapped (an instance attribute, removed afterwards; the module's code is not touched) to add
its members' terms to the one shared product:

    Linear      y = x Wᵀ + b  +  (x Bᵢ) Aᵢᵀ + δbᵢ           (A carries σ·s/√r)
    Conv1d/2d   y = conv(x, W) + b  +  Aᵢ · conv(x, Bᵢ as r filters) + δbᵢ
    Embedding   y = W[idx]  +  Aᵢ[idx] Bᵢᵀ
    LayerNorm   y = norm(x) ⊙ (w + δwᵢ) + (b + δbᵢ)       (full-rank draws)
    MultiheadAttention   q, k, v from the packed projection as for Linear, then scaled
                dot-product attention per row and the output projection (an nn.Linear)

so the extra cost per layer is r·(m + n) per row against m·n for the shared product. A
layer's factors (K·r·(m + n) numbers for a matrix, K·numel for a bias or norm) are made from
their seeds when the layer runs and dropped after it, so one layer's are held at a time; a
layer that runs again (a decoding loop) keeps them from its second call on. The output is
``(K, B, …)``.
``method=`` runs another method of the module the same way, e.g. ``"greedy"``: a sequence
model's whole decoding loop then runs once for the K·B rows.

:func:`inplace_forward` evaluates members one after another in the module's own parameters:
each tensor is set to θ + δᵢ (a copy of θ's value, then one addition), the module runs, and
at the end every tensor is copied back from θ, so the parameters equal θ bit for bit (no
subtraction of the noise, which would not restore the bits). Memory: one model and the
factors of the members asked for; no K-sized activations.

Limits: parameters must belong to supported layers (others, e.g. ``nn.GRU``,
``nn.BatchNorm``, a bare ``nn.Parameter``, raise :class:`~zoopt.lowrank.LowRankError` in
:func:`population_forward`; :func:`inplace_forward` takes any module); convolutions with
``groups=1`` and zero padding; ``nn.MultiheadAttention`` with one packed projection, no
``add_bias_kv``, and no attention weights returned (``need_weights`` gives None); a
parameter read directly, outside its layer's call (``F.linear(h, self.emb.weight)``), gets
θ without its perturbation — tie weights by sharing the parameter between layers instead.
PyTorch's fused transformer fast path is switched off while the forward runs (it would
read the weights directly).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoopt.lowrank import LowRankError, LowRankMembers, LowRankStructure

__all__ = ["population_forward", "inplace_forward", "check_population_forward"]

_CONV = {nn.Conv1d: F.conv1d, nn.Conv2d: F.conv2d}


@contextlib.contextmanager
def _eval_mode(module: nn.Module) -> Iterator[None]:
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training


def _plan(module: nn.Module, structure: LowRankStructure) -> list[tuple[nn.Module, dict]]:
    """``(layer, {attribute: tensor index})`` for every layer that holds parameters."""
    index = {id(p): i for i, p in enumerate(module.parameters())}
    if len(index) != len(structure.tensors):
        raise LowRankError(
            f"the module has {len(index)} parameter tensors, the population's structure "
            f"{len(structure.tensors)}: members must come from this module's layout"
        )
    plan = []
    for qual, layer in module.named_modules():
        own = dict(layer.named_parameters(recurse=False))
        if not own:
            continue
        if isinstance(layer, nn.MultiheadAttention):
            if set(own) - {"in_proj_weight", "in_proj_bias"}:
                raise LowRankError(
                    f"population forward: {qual!r} (nn.MultiheadAttention) has "
                    f"{sorted(set(own) - {'in_proj_weight', 'in_proj_bias'})}; only one packed "
                    "q/k/v projection without add_bias_kv is supported (evaluate in place "
                    "with inplace=True)"
                )
            plan.append((layer, {name: index[id(p)] for name, p in own.items()}))
            continue
        supported = isinstance(layer, (*_CONV, nn.Linear, nn.Embedding, nn.LayerNorm))
        if not supported or set(own) - {"weight", "bias"}:
            raise LowRankError(
                f"population forward: parameter {qual + '.' + next(iter(own))!r} belongs to "
                f"a {type(layer).__name__}, which it cannot perturb per member (supported: "
                "nn.Linear, nn.Conv1d, nn.Conv2d, nn.Embedding, nn.LayerNorm and layers "
                "without parameters); evaluate such a module in place (inplace=True)"
            )
        if isinstance(layer, tuple(_CONV)) and (layer.groups != 1 or layer.padding_mode != "zeros"):
            raise LowRankError(
                f"population forward: {qual!r} has groups={layer.groups}, padding_mode="
                f"{layer.padding_mode!r}; only groups=1 with zero padding is supported "
                "(evaluate in place with inplace=True)"
            )
        if isinstance(layer, nn.Embedding) and layer.max_norm is not None:
            raise LowRankError(
                f"population forward: {qual!r} renormalises its weight (max_norm); "
                "evaluate in place (inplace=True)"
            )
        plan.append((layer, {name: index[id(p)] for name, p in own.items()}))
    return plan


def check_population_forward(module: nn.Module, structure: LowRankStructure) -> None:
    """Raise :class:`LowRankError` if :func:`population_forward` cannot run ``module``."""
    _plan(module, structure)


class _LayerDraws:
    """One layer's members' factors ``{attribute: factors}``, made when the layer runs.

    :meth:`take` makes them for one call of the layer and does not hold them, so a forward
    that runs each layer once holds one layer's factors at a time; a layer that runs again
    (a decoding loop) makes them once more and from then on keeps them.
    """

    def __init__(self, members: LowRankMembers, attrs: dict[str, int]):
        self.members, self.attrs = members, attrs
        self.calls = 0
        self.kept: dict | None = None

    def take(self) -> dict:
        """``{attribute: factors}`` of this layer's tensors (see ``LowRankMembers.factors``)."""
        if self.kept is not None:
            return self.kept
        self.calls += 1
        made = self.members.factors(tensors=list(self.attrs.values()))
        f = dict(zip(self.attrs, made, strict=True))
        if self.calls > 1:
            self.kept = f
        return f


def _leading(t: Tensor, k: int) -> Tensor:
    """``t`` ``(K·N, …)`` viewed as ``(K, N·…)`` rows of its last dimension."""
    return t.reshape(k, -1, t.shape[-1])


def _linear(layer: nn.Linear, k: int, draws: _LayerDraws) -> Any:
    def forward(x: Tensor) -> Tensor:
        y = F.linear(x, layer.weight, layer.bias)  # the shared product, a fresh tensor
        yk = _leading(y, k)  # a view: the members' terms are added in place
        f = draws.take()
        if "weight" in f:
            a, b = f["weight"]
            yk.baddbmm_(torch.bmm(_leading(x, k), b), a.transpose(1, 2))
        if "bias" in f:
            yk.add_(f["bias"][:, None, :])
        return y

    return forward


def _conv(layer: nn.Module, k: int, draws: _LayerDraws) -> Any:
    conv = _CONV[type(layer)]
    opts = (layer.stride, layer.padding, layer.dilation)

    def forward(x: Tensor) -> Tensor:
        f = draws.take()
        y = conv(x, layer.weight, layer.bias, *opts)
        yk = y.view(k, -1, *y.shape[1:])  # (K, B, out, *spatial)
        if "weight" in f:
            a, b = f["weight"]  # (K, out, r), (K, in·kernel, r)
            r = a.shape[-1]
            nb = yk.shape[1]
            # member k's r filters Bₖ, as one grouped convolution over the K members
            filters = b.transpose(1, 2).reshape(k * r, *layer.weight.shape[1:])
            xg = x.view(k, nb, *x.shape[1:]).transpose(0, 1).reshape(nb, -1, *x.shape[2:])
            t = conv(xg, filters, None, *opts, k).view(nb, k, r, -1)
            corr = torch.einsum("bkrs,kor->kbos", t, a)
            yk = yk + corr.reshape(yk.shape)
        if "bias" in f:
            db = f["bias"]
            yk = yk + db.view(k, 1, -1, *([1] * (y.ndim - 2)))
        return yk.reshape(y.shape)

    return forward


def _embedding(layer: nn.Embedding, k: int, draws: _LayerDraws) -> Any:
    def forward(idx: Tensor) -> Tensor:
        y = F.embedding(idx, layer.weight, layer.padding_idx, None, 2.0, False, layer.sparse)
        ik = idx.reshape(k, -1)
        rows = torch.arange(k, device=idx.device)[:, None]
        a, b = draws.take()["weight"]  # (K, num, r), (K, dim, r)
        _leading(y, k).baddbmm_(a[rows, ik], b.transpose(1, 2))  # + Aₖ[idx] Bₖᵀ, (K, N, dim)
        return y

    return forward


def _layer_norm(layer: nn.LayerNorm, k: int, draws: _LayerDraws) -> Any:
    def forward(x: Tensor) -> Tensor:
        f = draws.take()
        y = F.layer_norm(x, layer.normalized_shape, None, None, layer.eps)
        shape = tuple(layer.normalized_shape)
        yk = y.reshape(k, -1, *shape)
        if layer.weight is not None:
            w = layer.weight + f["weight"].view(k, *shape) if "weight" in f else layer.weight
            yk = yk * (w[:, None] if w.ndim > len(shape) else w)
        if layer.bias is not None:
            b = layer.bias + f["bias"].view(k, *shape) if "bias" in f else layer.bias
            yk = yk + (b[:, None] if b.ndim > len(shape) else b)
        return yk.view(y.shape)

    return forward


def _additive(mask: Tensor, dtype: torch.dtype) -> Tensor:
    """An attention mask as additive float: a boolean one (True: may attend) → 0 / −inf."""
    if mask.dtype != torch.bool:
        return mask.to(dtype)
    return torch.zeros_like(mask, dtype=dtype).masked_fill(~mask, -math.inf)


def _attention(layer: nn.MultiheadAttention, k: int, draws: _LayerDraws) -> Any:
    e, heads = layer.embed_dim, layer.num_heads

    def project(x: Tensor, part: int, f: dict) -> Tensor:
        rows = slice(part * e, (part + 1) * e)
        bias = None if layer.in_proj_bias is None else layer.in_proj_bias[rows]
        y = _leading(F.linear(x, layer.in_proj_weight[rows], bias), k)
        if "in_proj_weight" in f:
            a, b = f["in_proj_weight"]
            y = y.baddbmm(torch.bmm(_leading(x, k), b), a[:, rows].transpose(1, 2))
        if "in_proj_bias" in f:
            y = y + f["in_proj_bias"][:, None, rows]
        return y.view(*x.shape[:-1], e)

    def forward(
        query: Tensor,
        key: Tensor,
        value: Tensor,
        key_padding_mask: Tensor | None = None,
        need_weights: bool = True,
        attn_mask: Tensor | None = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[Tensor, None]:
        if not layer.batch_first:  # (L, N, E) → (N, L, E)
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        n, length, _ = query.shape

        def split(t: Tensor) -> Tensor:  # (N, L, E) → (N, heads, L, E/heads)
            return t.reshape(n, t.shape[1], heads, -1).transpose(1, 2)

        f = draws.take()
        q, kk, v = (split(project(t, i, f)) for i, t in enumerate((query, key, value)))
        mask = None
        if attn_mask is not None:
            mask = ~attn_mask if attn_mask.dtype == torch.bool else attn_mask
            if mask.ndim == 3:  # (N·heads, L, S)
                mask = mask.view(n, heads, *mask.shape[1:])
        if key_padding_mask is not None:
            pad = key_padding_mask.view(n, 1, 1, -1)
            pad = ~pad if pad.dtype == torch.bool else pad
            if mask is None:
                mask = pad
            elif mask.dtype == torch.bool and pad.dtype == torch.bool:
                mask = mask & pad
            else:
                mask = _additive(mask, q.dtype) + _additive(pad, q.dtype)
        out = F.scaled_dot_product_attention(
            q, kk, v, attn_mask=mask, is_causal=is_causal and mask is None
        )
        out = layer.out_proj(out.transpose(1, 2).reshape(n, length, e))
        return (out if layer.batch_first else out.transpose(0, 1)), None

    return forward


def _rows_first(inner: Any, rows: int, trailing: int) -> Any:
    """``inner`` (written for inputs whose first axis holds the K·B member-major rows) for
    an input whose K·B axis is anywhere before its last ``trailing`` axes (a sequence-first
    layout inside the model): the axis is moved to the front and the output's back."""

    def forward(x: Tensor) -> Tensor:
        for d in range(x.ndim - trailing):
            if x.shape[d] == rows:
                break
        else:
            raise LowRankError(
                f"population forward: a layer's input of shape {tuple(x.shape)} has no axis "
                f"of the K·B = {rows} rows the module was run on"
            )
        if d == 0:
            return inner(x)
        return inner(x.movedim(d, 0).contiguous()).movedim(0, d)

    return forward


def _wrapper(layer: nn.Module, k: int, draws: _LayerDraws, rows: int) -> Any:
    if isinstance(layer, nn.MultiheadAttention):
        return _attention(layer, k, draws)
    if isinstance(layer, nn.Linear):
        return _rows_first(_linear(layer, k, draws), rows, 1)
    if isinstance(layer, tuple(_CONV)):
        return _conv(layer, k, draws)
    if isinstance(layer, nn.Embedding):
        return _rows_first(_embedding(layer, k, draws), rows, 0)
    return _rows_first(_layer_norm(layer, k, draws), rows, len(layer.normalized_shape))


def _repeat(x: Any, k: int, batch_dim: int) -> Any:
    """``x`` with its batch dimension repeated K times, member-major."""
    if not isinstance(x, Tensor):
        return x
    return (
        x.unsqueeze(batch_dim)
        .expand(*x.shape[:batch_dim], k, *x.shape[batch_dim:])
        .flatten(batch_dim, batch_dim + 1)
    )


def population_forward(
    module: nn.Module,
    members: LowRankMembers,
    *args: Any,
    batch_dim: int = 0,
    method: str = "forward",
    **kwargs: Any,
) -> Tensor:
    """The outputs of every member on one batch, from one run of ``module``.

    Args:
        module: the model whose layout ``members`` come from (its own parameters are not
            read or changed: θ comes from ``members``).
        members: K members of a :class:`~zoopt.lowrank.LowRankPopulation`.
        *args: the module's inputs; each tensor's ``batch_dim`` is its batch (B).
        batch_dim: where the batch dimension is, in the inputs and the output.
        method: the module's method to run (``"greedy"`` decodes every member's
            translations of a batch in one loop), ``forward`` by default.
        **kwargs: further keyword inputs, passed unchanged (not repeated over members).

    Returns:
        ``(K, B, …)``: member k's output at index k. Runs in eval mode.

    Raises:
        LowRankError: a parameter belongs to a layer it cannot perturb per member.
    """
    structure = members.structure
    plan = _plan(module, structure)
    k = len(members)
    center = members.center
    params = {
        t.name: center[t.offset : t.offset + t.numel].view(t.shape) for t in structure.tensors
    }
    device = center.device
    buffers = {n: b.to(device) for n, b in module.named_buffers()}
    first = next((a for a in args if isinstance(a, Tensor)), None)
    if first is None:
        raise TypeError("population forward: the module's inputs must include a tensor")
    rows = k * first.shape[batch_dim]
    inputs = [_repeat(a.to(device) if isinstance(a, Tensor) else a, k, batch_dim) for a in args]
    wrapped = []
    fastpath = torch.backends.mha.get_fastpath_enabled()
    call = _method(module, method)
    try:
        if method != "forward":  # functional_call runs forward: point it at the method
            module.forward = call
        for layer, attrs in plan:
            layer.forward = _wrapper(layer, k, _LayerDraws(members, attrs), rows)
            wrapped.append(layer)
        torch.backends.mha.set_fastpath_enabled(False)  # fused kernels read weights directly
        with _eval_mode(module):
            out = torch.func.functional_call(module, (params, buffers), tuple(inputs), kwargs)
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
        for layer in wrapped:
            del layer.forward
        if method != "forward":
            del module.forward
    if not isinstance(out, Tensor):
        raise TypeError(
            f"population forward: the module must return a tensor, got {type(out).__name__}"
        )
    return out.unflatten(batch_dim, (k, -1)).movedim(batch_dim, 0)


def _method(module: nn.Module, method: Any) -> Any:
    """``module``'s bound method named ``method``, else a ValueError naming the argument."""
    call = getattr(module, method, None) if isinstance(method, str) else None
    if not callable(call):
        raise ValueError(
            f"method must name a method of {type(module).__name__} (e.g. 'forward'), got {method!r}"
        )
    return call


def inplace_forward(
    module: nn.Module, members: LowRankMembers, *args: Any, method: str = "forward", **kwargs: Any
):
    """The outputs of every member, evaluated one after another in the module's parameters.

    Each parameter tensor is set to θ + δᵢ (θ's value copied, then member i's perturbation
    added once), the module runs on ``args`` (its ``method``, ``forward`` by default), and at
    the end every tensor is copied from θ: the module's parameters then equal θ bit for bit,
    whatever they were before.

    Returns:
        ``(K, …)``: the module's outputs stacked over the members. Runs in eval mode and
        without autograd.
    """
    structure = members.structure
    call = module if method == "forward" else _method(module, method)
    params = list(module.parameters())
    if len(params) != len(structure.tensors) or any(
        tuple(p.shape) != t.shape for p, t in zip(params, structure.tensors, strict=False)
    ):
        raise LowRankError("members must come from this module's parameter layout")
    device = params[0].device
    factors = members.to(device).factors(params[0].dtype)
    center = members.population.center.to(device, params[0].dtype)
    views = [center[t.offset : t.offset + t.numel].view(t.shape) for t in structure.tensors]
    outs = []
    with torch.no_grad(), _eval_mode(module):
        try:
            for i in range(len(members)):
                for p, t, c, f in zip(params, structure.tensors, views, factors, strict=True):
                    if t.lowrank:
                        a, b = f
                        # W = θ_W + AᵢBᵢᵀ in one fused product into the parameter's storage
                        torch.addmm(
                            c.reshape(t.rows, t.cols), a[i], b[i].T, out=p.data.view(t.rows, t.cols)
                        )
                    else:
                        torch.add(c, f[i].view(t.shape), out=p.data)
                outs.append(call(*args, **kwargs))
        finally:
            for p, c in zip(params, views, strict=True):
                p.data.copy_(c)
    return torch.stack(outs)
