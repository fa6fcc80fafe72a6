"""pycma's state as plain data: tensors, numbers, strings and plain containers.

A checkpoint never pickles pycma's objects (loading must not run code): the strategy's
dynamic attributes, and lq-CMA-ES's model, are written as plain values and assigned back
onto a strategy rebuilt from the same options (:mod:`zoopt.estimators.cmaes`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["Unplain", "plain_reason", "to_plain", "from_plain", "dump_strategy", "load_strategy"]

#: pycma's sub-objects whose plain attributes (arrays, numbers, lists) are dynamic state;
#: everything else on the strategy is configuration, rebuilt from the same options
_STATE_OBJECTS = (
    "sm",
    "adapt_sigma",
    "fit",
    "best",
    "best.last",
    "sigma_vec",
    "_stoptolxstagnation",
)
#: attributes of the strategy rebuilt from the options, never copied
_SKIP_ATTRIBUTES = frozenset({"opts", "inopts", "inputargs", "sp", "sp0", "const", "timer"})


class Unplain(Exception):
    """A value that is not made of tensors/numbers/strings and plain containers."""


def plain_reason(value: Any) -> Any:
    """pycma's termination values (numpy scalars, lists) as plain Python values."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple, np.ndarray)):
        return [plain_reason(v) for v in value]
    return value


def to_plain(
    value: Any, path: str, seen: dict[int, str], aliases: dict[str, str], top: bool = True
) -> Any:
    """A value as tensors/numbers/strings in plain containers; :class:`Unplain` otherwise."""
    if isinstance(value, np.generic):  # before float: np.float64 subclasses float
        if value.dtype.kind not in "biuf":
            raise Unplain(path)
        return {"__numpy_scalar__": value.dtype.str, "value": value.item()}
    if type(value) in (type(None), bool, int, float, str):
        return value
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            raise Unplain(path)
        if top and id(value) in seen:  # the same array under two names: keep it shared
            aliases[path] = seen[id(value)]
            return None
        if top:
            seen[id(value)] = path
        plain = {"__numpy__": value.dtype.str, "value": torch.from_numpy(value.copy())}
        if value.ndim > 1 and value.flags.f_contiguous and not value.flags.c_contiguous:
            # LAPACK's results (eigh's B) are column-major: BLAS takes another path, and may
            # round in another order, on another layout, so the layout is state too
            plain["order"] = "F"
        return plain
    if type(value) in (list, tuple):
        items = [to_plain(v, f"{path}[{i}]", seen, aliases, False) for i, v in enumerate(value)]
        return items if type(value) is list else {"__tuple__": items}
    if type(value) is dict and value and all(type(k) is tuple for k in value):
        # a cache keyed by parameter tuples (the diagonal decoding's learning rates)
        return {
            "__tuple_keys__": [
                [to_plain(k, path, seen, aliases, False), to_plain(v, path, seen, aliases, False)]
                for k, v in value.items()
            ]
        }
    if type(value) is dict:
        if not all(type(k) is str for k in value):
            raise Unplain(path)
        return {
            "__dict__": {
                k: to_plain(v, f"{path}.{k}", seen, aliases, False) for k, v in value.items()
            }
        }
    raise Unplain(path)


def from_plain(value: Any) -> Any:
    if isinstance(value, list):
        return [from_plain(v) for v in value]
    if isinstance(value, dict):
        if "__numpy__" in value:
            order = value.get("order", "C")  # older checkpoints: row-major
            return value["value"].numpy().astype(np.dtype(value["__numpy__"]), order=order)
        if "__numpy_scalar__" in value:
            return np.dtype(value["__numpy_scalar__"]).type(value["value"])
        if "__tuple__" in value:
            return tuple(from_plain(v) for v in value["__tuple__"])
        if "__tuple_keys__" in value:
            return {from_plain(k): from_plain(v) for k, v in value["__tuple_keys__"]}
        return {k: from_plain(v) for k, v in value["__dict__"].items()}
    return value


def _resolve(es: Any, dotted: str) -> Any:
    obj = es
    for part in dotted.split("."):
        obj = getattr(obj, part, None)
    return obj


def dump_strategy(es: Any) -> dict:
    """Every plain attribute of the strategy and of its state-carrying parts."""
    seen: dict[int, str] = {}
    aliases: dict[str, str] = {}
    attrs: dict[str, Any] = {}
    # sub-objects first, so that the strategy's aliases (es.C is es.sm.C, …) point into them
    for prefix in (*_STATE_OBJECTS, ""):
        obj = _resolve(es, prefix) if prefix else es
        if obj is None:
            continue
        for name, value in vars(obj).items():
            if not prefix and name in _SKIP_ATTRIBUTES:
                continue
            path = f"{prefix}.{name}" if prefix else name
            try:
                attrs[path] = to_plain(value, path, seen, aliases)
            except Unplain:
                continue
    for path in aliases:
        attrs.pop(path, None)
    timer = getattr(es, "timer", None)
    elapsed = float(timer.elapsed) if timer is not None else 0.0
    return {"attributes": attrs, "aliases": aliases, "elapsed": elapsed}


def load_strategy(es: Any, state: dict) -> None:
    """Assign the attributes of :func:`dump_strategy` to a fresh strategy."""
    restored: dict[str, Any] = {}

    def assign(path: str, value: Any) -> None:
        owner_path, _, name = path.rpartition(".")
        owner = _resolve(es, owner_path) if owner_path else es
        if owner is None:
            raise ValueError(f"cmaes checkpoint: the strategy has no part {owner_path!r}")
        setattr(owner, name, value)
        restored[path] = value

    for path, value in state["attributes"].items():
        assign(path, from_plain(value))
    for path, target in state["aliases"].items():
        assign(path, restored[target])
    # pycma creates its wall-clock timer (option ``timeout``) in the first ask() only
    from cma.utilities.utils import ElapsedWCTime

    es.timer = ElapsedWCTime(time_offset=float(state.get("elapsed", 0.0)))
    es.timer.pause()
