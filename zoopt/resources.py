"""Sizes checked before allocation: the memory one step of a config needs, against the machine's.

A config can ask for more than any machine holds (``objective.dim = 10**9``, a population of
a billion, an MLP layer of a billion units, decoded outputs a billion tokens long). Allocating
first fails late and badly: a storage-overflow traceback, a ``MemoryError``, or the operating
system killing the process after minutes of swapping. :func:`check_step_memory` estimates,
from the resolved config alone and before anything is built, the bytes one step holds at
once, and refuses with a :class:`~zoopt.config.ConfigError` naming the key behind the largest
part when the estimate exceeds the memory available.

The estimate is a lower bound of the dominant terms (parameters and optimizer state, the
evaluated candidates, CMA-ES's covariance, the objective's activations), so it never refuses
a config that would fit; it is not a guarantee that an accepted config fits.
"""

from __future__ import annotations

import inspect
import math
import os

from zoopt.config import ConfigError

__all__ = ["available_memory", "parameter_count", "step_memory", "check_step_memory"]

#: (features, classes, examples) of the bundled scikit-learn data sets
DATASET_SHAPES = {
    "digits": (64, 10, 1797),
    "breast_cancer": (30, 2, 569),
    "wine": (13, 3, 178),
    "iris": (4, 3, 150),
}
_VOCAB = 16  # fewest tokens of a synthetic translation vocabulary (a lower bound)
_ENV_BYTES = 16 * 1024  # one Gymnasium environment instance, at the least
_F64, _F32 = 8, 4


def available_memory() -> int:
    """Bytes this process can still allocate (``MemAvailable``, else physical memory)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not POSIX: no check
        return 2**62


def _mlp_count(sizes: list[int]) -> int:
    return sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:], strict=False))


def parameter_count(obj: dict) -> tuple[int, str]:
    """A lower bound of D for a validated ``[objective]`` table, and the key that sets it."""
    kind = obj["kind"]
    if kind == "function":
        return obj["dim"], "objective.dim"
    if kind == "classification":
        features, classes, _ = DATASET_SHAPES.get(obj["dataset"], (1, 2, 1))
        return _mlp_count([features, *obj["hidden"], classes]), "objective.hidden"
    if kind == "gym":
        hidden = obj["hidden"] if obj["policy"] == "mlp" else []
        return _mlp_count([1, *hidden, 1]), "objective.hidden"
    if kind == "translation":
        e, h = obj["embed_dim"], obj["hidden_dim"]
        gru = 3 * (e * h + h * h + 2 * h)
        d = 2 * gru + 2 * _VOCAB * e + h * h + (2 * h + 1) * h + (h + 1) * _VOCAB
        return d, "objective.hidden_dim" if h >= e else "objective.embed_dim"
    return 1, "objective"


def _population(cfg: dict, name: str, dim: int) -> tuple[int, str]:
    """The candidates per step of estimator ``name`` (λ of CMA-ES by pycma's rule)."""
    from zoopt.estimators import ESTIMATORS

    options = cfg["estimators"].get(name, {})
    for key in ("population", "samples"):
        if key in options:
            return int(options[key]), f"estimators.{name}.{key}"
    cls = ESTIMATORS.get(name)
    params = inspect.signature(cls).parameters if cls is not None else {}
    for key in ("population", "samples"):
        default = params[key].default if key in params else None
        if isinstance(default, int) and not isinstance(default, bool):
            return default, f"estimators.{name}.{key}"
    return 4 + int(3 * math.log(max(dim, 1))), f"estimators.{name}.population"


def step_memory(cfg: dict, estimator: str | None = None) -> list[tuple[int, str, str]]:
    """The estimated parts of one step's memory: ``(bytes, key, what)`` for each.

    Args:
        cfg: a validated config.
        estimator: the estimator that runs (default ``cfg["estimator"]``).
    """
    name = estimator or cfg["estimator"]
    obj = cfg["objective"]
    d, d_key = parameter_count(obj)
    k, k_key = _population(cfg, name, d)
    batch = cfg["evaluator"].get("max_batch")
    k_eval = min(k, batch) if batch else k
    parts = [
        (6 * _F64 * d, d_key, f"D = {d} parameters with optimizer state"),
        # the larger factor is the one to lower
        (_F64 * k_eval * d, d_key if d >= k_eval else k_key, f"{k_eval} candidates of D = {d}"),
    ]
    if name == "cmaes":
        diagonal = cfg["estimators"].get("cmaes", {}).get("diagonal", "auto")
        full = d <= 1000 if diagonal == "auto" else not diagonal
        if full:
            parts.append((3 * _F64 * d * d, d_key, f"CMA-ES's {d}×{d} covariance"))
    if obj["kind"] == "classification":
        features, classes, n = DATASET_SHAPES.get(obj["dataset"], (1, 2, 1))
        rows = obj.get("batch_size") or max(1, int(n * (1 - obj["test_size"])))
        width = features + sum(obj["hidden"]) + classes
        key = "objective.batch_size" if obj.get("batch_size") else "objective.hidden"
        parts.append((_F32 * k_eval * rows * width, key, f"activations of {rows} examples"))
    elif obj["kind"] == "translation":
        length = obj.get("max_len") or 5 + 2 * 12 * obj["max_clauses"]
        width = obj["embed_dim"] + 2 * obj["hidden_dim"] + _VOCAB
        act = _F32 * k_eval * obj["batch_size"] * length * width
        key = "objective.max_len" if obj.get("max_len") else "objective.batch_size"
        parts.append((act, key, f"decoding {obj['batch_size']} sentences of {length} tokens"))
        parts.append((64 * obj["size"] * obj["max_clauses"], "objective.size", "the corpus"))
    elif obj["kind"] == "gym":
        envs = k_eval * obj["episodes"]
        parts.append((_ENV_BYTES * envs, k_key, f"{envs} environments"))
    return parts


def _gib(n: float) -> str:
    return f"{n / 2**30:.3g} GiB" if n >= 2**30 else f"{n / 2**20:.3g} MiB"


def check_step_memory(cfg: dict, estimator: str | None = None, available: int | None = None) -> int:
    """Refuse a config whose step needs more memory than the machine has; return the estimate.

    Raises:
        ConfigError: naming the key behind the largest part of the estimate.
    """
    parts = step_memory(cfg, estimator)
    total = sum(p[0] for p in parts)
    have = available_memory() if available is None else available
    if total > have:
        size, key, what = max(parts, key=lambda p: p[0])
        raise ConfigError(
            f"{key}: one step needs at least {_gib(total)} of memory ({what}: {_gib(size)}), "
            f"more than the {_gib(have)} available; lower {key}"
        )
    return total
