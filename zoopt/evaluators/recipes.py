"""The ``[evaluator]`` kinds of a config: one builder per kind, whose signature is its schema.

Each builder is registered with :func:`zoopt.config.register_evaluator`; its keyword
parameters are the keys of ``[evaluator]`` for that kind (see :mod:`zoopt.objectives.recipes`
for how a signature becomes a schema). The Ray evaluator's ``[evaluator.options]`` are the
explicit allow-list :data:`zoopt.config.RAY_OPTIONS_SCHEMA`: options that run code on the
workers (``runtime_env``, ``ray_init_options``) are set from Python only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from zoopt.config import RAY_OPTIONS_SCHEMA, at_least, device_name, register_evaluator

if TYPE_CHECKING:
    from zoopt.evaluators.base import Evaluator

__all__ = ["local", "processes", "ray"]


@register_evaluator("local")
def local(
    seed: int,
    /,
    *,
    device: Annotated[str, device_name] | None = None,
    max_batch: Annotated[int, at_least(1)] | None = None,
) -> Evaluator:
    """Populations evaluated in this process, vectorised (the default).

    Args:
        device: device of the local evaluator (cpu, cuda).
        max_batch: candidates per objective call.
    """
    from zoopt.evaluators.local import LocalEvaluator

    return LocalEvaluator(device=device, max_batch=max_batch)


@register_evaluator("processes")
def processes(
    seed: int,
    /,
    *,
    num_workers: Annotated[int, at_least(1)] | None = None,
    chunks_per_worker: Annotated[int, at_least(1)] = 1,
    max_batch: Annotated[int, at_least(1)] | None = None,
) -> Evaluator:
    """Populations split over worker processes of this machine (every core, no Ray).

    Args:
        num_workers: worker processes (default: the CPUs this process may use).
        chunks_per_worker: pieces per worker per population.
        max_batch: candidates per chunk.
    """
    from zoopt.evaluators.processes import ProcessEvaluator

    return ProcessEvaluator(
        num_workers, chunks_per_worker=chunks_per_worker, max_batch=max_batch, seed=seed
    )


@register_evaluator("ray", needs="ray", options=RAY_OPTIONS_SCHEMA)
def ray(
    seed: int,
    /,
    *,
    device: Annotated[str, device_name] | None = None,
    max_batch: Annotated[int, at_least(1)] | None = None,
    num_workers: Annotated[int, at_least(1)] | None = None,
    address: str | None = None,
    **options: Any,
) -> Evaluator:
    """Populations split over Ray workers, on this machine or a cluster.

    Args:
        device: device of each worker's evaluation (cpu, cuda).
        max_batch: candidates per objective call on a worker.
        num_workers: Ray workers.
        address: Ray cluster to join: 'auto' or 'host:port'.
        options: the ``[evaluator.options]`` of :data:`zoopt.config.RAY_OPTIONS_SCHEMA`.
    """
    from zoopt.evaluators.ray import RayEvaluator

    given = {"device": device, "max_batch": max_batch, "address": address}
    return RayEvaluator(
        num_workers, seed=seed, **{k: v for k, v in given.items() if v is not None}, **options
    )
