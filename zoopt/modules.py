"""A module's forward pass over flat parameter rows, for plain-function objectives.

With an ``nn.Module`` as ``x0`` the objective receives flat rows ``(K, D)`` laid out as
``nn.utils.parameters_to_vector(module.parameters())``. :func:`batched_forward` turns them
back into K parameter sets and runs the module on each through
``torch.func.vmap(torch.func.functional_call)`` — one batched call, the module's own
weights untouched::

    forward = zoopt.batched_forward(model)

    def error_rate(X):                       # X: (K, D)
        logits = forward(X, images)          # (K, B, C)
        return (logits.argmax(-1) != labels).float().mean(-1)

    zoopt.minimize(error_rate, model, estimator="es")

With low-rank draws (``rank=r``, :mod:`zoopt.lowrank`) the objective receives
:class:`~zoopt.lowrank.LowRankMembers` instead of rows, and the same ``forward(X, images)``
runs the module once for all K members (:func:`zoopt.population_forward.population_forward`),
or one member after another in the module's own parameters with ``inplace=True``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from zoopt.lowrank import LowRankMembers
from zoopt.population_forward import _eval_mode, inplace_forward, population_forward

__all__ = ["batched_forward"]


def batched_forward(module: nn.Module, inplace: bool = False) -> Callable[..., Tensor]:
    """``forward(X, *args, **kwargs)``: the module's outputs for each flat row of ``X``.

    Args:
        module: the model whose parameters are ``x0``.
        inplace: for low-rank members, evaluate them one after another in the module's own
            parameters (memory of one model; its parameters hold θ afterwards, bit for bit)
            instead of one population forward.

    Returns:
        a callable taking ``X`` ``(K, D)`` (or one vector ``(D,)``, or K low-rank members)
        and the module's inputs, returning its outputs stacked over the rows ``(K, ...)``
        (or unstacked for one vector). It is differentiable in ``X`` (the ``"gradient"``
        estimator works through it). The module runs in eval mode: BatchNorm uses its running
        statistics and does not update them, Dropout is off, whatever estimator calls it.
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"batched_forward needs an nn.Module, got {type(module).__name__}")
    layout = []
    offset = 0
    for name, p in module.named_parameters():
        layout.append((name, p.shape, offset, p.numel()))
        offset += p.numel()
    dim = offset
    if dim == 0:
        raise ValueError("batched_forward: the module has no parameters")
    dtype = next(module.parameters()).dtype
    buffers = dict(module.named_buffers())

    def one(flat: Tensor, args: tuple, kwargs: dict) -> Any:
        params = {n: flat[o : o + k].view(shape) for n, shape, o, k in layout}
        return torch.func.functional_call(module, (params, buffers), args, kwargs)

    def forward(X: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        if isinstance(X, LowRankMembers):
            if inplace:
                return inplace_forward(module, X, *args, **kwargs)
            return population_forward(module, X, *args, **kwargs)
        X = torch.as_tensor(X)
        single = X.ndim == 1
        rows = X[None] if single else X
        if rows.ndim != 2 or rows.shape[1] != dim:
            raise ValueError(
                f"batched_forward: X must be (K, {dim}) flat parameter rows of the module, "
                f"got shape {tuple(X.shape)}"
            )
        rows = rows.to(dtype)
        with _eval_mode(module):
            out = torch.func.vmap(lambda r: one(r, args, kwargs))(rows)
        return out[0] if single else out

    return forward
