"""The Ray evaluator's options: their names, which of them are safe to read from files, checks.

Every check raises a ``ValueError`` or ``TypeError`` naming the option and the expected form.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from zoopt.evaluators.base import check_max_batch

__all__ = ["OPTIONS", "FILE_SAFE_OPTIONS", "check_options"]

#: every keyword of :class:`~zoopt.evaluators.ray.RayEvaluator`
OPTIONS = (
    "num_workers",
    "address",
    "num_cpus_per_worker",
    "num_gpus_per_worker",
    "device",
    "chunks_per_worker",
    "processes_per_worker",
    "max_batch",
    "max_retries",
    "seed",
    "startup_timeout",
    "replace_timeout",
    "reduce_threshold",
    "relay_from",
    "log_to_driver",
    "runtime_env",
    "ray_init_options",
)

#: the options that only choose sizes, counts, timeouts and addresses: safe to take from a
#: config or checkpoint. ``runtime_env`` and ``ray_init_options`` are not among them: Ray
#: runs commands and imports code named there (``py_executable``, set-up hooks), so they are
#: accepted from Python only
FILE_SAFE_OPTIONS = tuple(o for o in OPTIONS if o not in ("runtime_env", "ray_init_options"))


def check_number(name: str, value: Any, *, positive: bool) -> None:
    """A finite-or-infinite real ``> 0`` (``positive``) or ``>= 0``, else a ValueError naming it."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or math.isnan(value) or (value <= 0 if positive else value < 0):
        rel = "> 0" if positive else ">= 0"
        raise ValueError(f"{name} must be a number {rel}, got {value!r}")


def check_int(name: str, value: Any, low: int) -> None:
    """An int ``>= low`` (not a bool), else a ValueError naming it."""
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")


def check_options(options: dict[str, Any]) -> dict[str, Any]:
    """The checked options (``device`` normalised to its string form)."""
    num_workers = options["num_workers"]
    if num_workers is not None and (
        not isinstance(num_workers, int) or isinstance(num_workers, bool) or num_workers < 1
    ):
        raise ValueError(f"num_workers must be a positive int or None, got {num_workers!r}")
    address = options["address"]
    if address is not None and (not isinstance(address, str) or not address.strip()):
        raise ValueError(
            f"address must be None (start a local instance), 'auto' or 'host:port', got {address!r}"
        )
    if options["num_cpus_per_worker"] is not None:
        check_number("num_cpus_per_worker", options["num_cpus_per_worker"], positive=True)
    if options["num_gpus_per_worker"] is not None:
        check_number("num_gpus_per_worker", options["num_gpus_per_worker"], positive=False)
    check_int("chunks_per_worker", options["chunks_per_worker"], 1)
    check_int("processes_per_worker", options["processes_per_worker"], 1)
    check_int("max_retries", options["max_retries"], 0)
    check_max_batch(options["max_batch"])
    if not isinstance(options["seed"], int) or isinstance(options["seed"], bool):
        raise TypeError(f"seed must be an int, got {options['seed']!r}")
    check_number("startup_timeout", options["startup_timeout"], positive=True)
    check_number("replace_timeout", options["replace_timeout"], positive=True)
    if options["reduce_threshold"] is not None:
        check_number("reduce_threshold", options["reduce_threshold"], positive=False)
    if options["relay_from"] is not None:
        check_int("relay_from", options["relay_from"], 2)
    for name in ("runtime_env", "ray_init_options"):
        value = options[name]
        if value is not None and not isinstance(value, dict):
            raise TypeError(f"{name} must be a dict or None, got {type(value).__name__}")
    device = options["device"]
    if device is not None:
        try:
            options["device"] = str(torch.device(device))
        except (RuntimeError, TypeError):
            raise ValueError(
                f"device must be a torch device such as 'cpu' or 'cuda', got {device!r}"
            ) from None
    return options
