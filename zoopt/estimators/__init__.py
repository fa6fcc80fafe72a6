"""Estimators of the step p(Δθ|θ) ∝ π(Δθ)·exp(−ΔL/α), one file each, and their registry.

``get_estimator("es", sigma=0.05)`` builds one by name; ``register`` adds a new one and
refuses duplicate names.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from typing import Any

from zoopt.estimators.base import Estimate, Estimator, PopulationEstimator

__all__ = [
    "Estimate",
    "Estimator",
    "PopulationEstimator",
    "register",
    "get_estimator",
    "available_estimators",
    "ESTIMATORS",
    "BUILTIN_ESTIMATORS",
]

ESTIMATORS: dict[str, Callable[..., Estimator]] = {}


def register(name: str) -> Callable[[type], type]:
    """Class decorator adding an estimator under ``name`` (duplicates are refused)."""

    def deco(cls: type) -> type:
        if name in ESTIMATORS:
            raise ValueError(f"estimator {name!r} is already registered ({ESTIMATORS[name]})")
        cls.name = name
        ESTIMATORS[name] = cls
        return cls

    return deco


def available_estimators() -> list[str]:
    """Names of the registered estimators."""
    return sorted(ESTIMATORS)


def get_estimator(name: str | Estimator, **options: Any) -> Estimator:
    """Build the estimator registered as ``name`` with ``options`` (objects pass through)."""
    if isinstance(name, Estimator):
        if options:
            raise TypeError(
                f"options {sorted(options)} given with an estimator object; set them on the "
                "object instead"
            )
        return name
    if not isinstance(name, str) or name not in ESTIMATORS:
        close = difflib.get_close_matches(str(name), ESTIMATORS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"estimator must be one of {available_estimators()}, got {name!r}.{hint}")
    cls = ESTIMATORS[name]
    try:
        return cls(**options)
    except TypeError as e:
        import inspect

        params = [p for p in inspect.signature(cls).parameters if p != "self"]
        raise TypeError(f"estimator {name!r}: {e}. Its options are {params}") from None


#: the estimators zoopt ships, one module each, in the order they register; a build may lack
#: the optional ones (a comparison naming one reports it as not available)
BUILTIN_ESTIMATORS = (
    "ars",
    "es",
    "gradient",
    "pgpe",
    "sampling",
    "snes",
    "xnes",
    "cmaes",
    "reinforce",
)
_OPTIONAL = ("cmaes", "reinforce")

# import the built-in estimators so that they register themselves
for _name in BUILTIN_ESTIMATORS:
    try:
        importlib.import_module(f"zoopt.estimators.{_name}")
    except ModuleNotFoundError as _e:  # estimator file not present in this build
        if _name not in _OPTIONAL or _e.name != f"zoopt.estimators.{_name}":
            raise
