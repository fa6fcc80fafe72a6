"""The start ``x0`` in the forms :func:`zoopt.minimize` accepts, as one flat vector θ₀ ``(D,)``.

A tensor, a numpy array, a list of numbers, or an ``nn.Module`` whose parameters are laid
out as ``nn.utils.parameters_to_vector(module.parameters())`` (the layout
:func:`zoopt.batched_forward` reads rows in). The loop returns its results in the type of
``x0``: numpy for numpy/list starts, and a module's parameters are written back in place.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

__all__ = ["flat_start"]


def flat_start(x0: Any) -> tuple[Tensor, nn.Module | None, bool]:
    """``(θ₀ (D,), the module or None, whether x0 came as numpy/a list)``."""
    if isinstance(x0, nn.Module):
        params = list(x0.parameters())
        if not params:
            raise ValueError("x0: the module has no parameters to optimise")
        return nn.utils.parameters_to_vector(params).detach().clone(), x0, False
    as_numpy = isinstance(x0, (np.ndarray, list, tuple))
    if isinstance(x0, (list, tuple)):
        try:  # numbers in a list are float64, as numpy makes them
            x0 = np.asarray(x0, dtype=np.float64)
        except (TypeError, ValueError):
            pass  # the error below names the expected forms
    if isinstance(x0, np.ndarray) and x0.dtype.kind in "fiub":
        x0 = torch.from_numpy(np.ascontiguousarray(x0))
    if not isinstance(x0, Tensor):
        try:
            x0 = torch.as_tensor(x0, dtype=torch.get_default_dtype())
        except Exception:
            raise TypeError(
                f"x0 must be a 1-D tensor (D,), a numpy array, a list of numbers or an "
                f"nn.Module, got {type(x0).__name__}"
            ) from None
    if x0.ndim != 1 or x0.numel() == 0:
        raise ValueError(f"x0 must be a non-empty 1-D tensor (D,), got shape {tuple(x0.shape)}")
    if not x0.is_floating_point():
        x0 = x0.to(torch.get_default_dtype())
    if not bool(torch.isfinite(x0).all()):
        raise ValueError("x0 must be finite; it contains NaN or Inf")
    return x0.detach().clone(), None, as_numpy
