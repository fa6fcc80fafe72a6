"""Resource resolution: how many workers, GPUs per worker and which device, against the cluster."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

__all__ = ["Resources", "resolve_resources"]


@dataclass(frozen=True)
class Resources:
    """What each worker reserves and where it evaluates."""

    num_workers: int
    num_cpus_per_worker: float
    num_gpus_per_worker: float
    device: str | None


def resolve_resources(
    cluster: dict[str, float],
    num_workers: int | None,
    num_cpus_per_worker: float,
    num_gpus_per_worker: float | None,
    device: str | None,
) -> Resources:
    """Fill in the defaults from the cluster's totals and check that the pool fits.

    ``num_gpus_per_worker=None``: 1 when ``device`` is CUDA and the cluster has GPUs, else 0
    (with a warning and ``device="cpu"`` when CUDA was asked for but there is none).
    ``num_workers=None``: the cluster's CPUs divided by ``num_cpus_per_worker``.

    Raises:
        ValueError: the pool needs more CPUs or GPUs than the cluster has (names both).
    """
    cpus, gpus = cluster.get("CPU", 0.0), cluster.get("GPU", 0.0)
    if num_gpus_per_worker is None:
        wants_cuda = device is not None and device.startswith("cuda")
        if wants_cuda and gpus < 1:
            warnings.warn(
                "device='cuda' requested but the Ray cluster has no GPUs; "
                "workers evaluate on the CPU",
                stacklevel=5,
            )
            device = "cpu"
        num_gpus_per_worker = 1 if wants_cuda and gpus >= 1 else 0
    if device is None and num_gpus_per_worker > 0:
        device = "cuda"
    if num_workers is None:
        num_workers = max(1, int(cpus // num_cpus_per_worker))
    need_cpu = num_workers * num_cpus_per_worker
    need_gpu = num_workers * num_gpus_per_worker
    if need_cpu > cpus + 1e-9:
        raise ValueError(
            f"num_workers={num_workers} × num_cpus_per_worker={num_cpus_per_worker} needs "
            f"{need_cpu:g} CPUs but the Ray cluster has {cpus:g}; lower num_workers or "
            f"num_cpus_per_worker"
        )
    if need_gpu > gpus + 1e-9:
        raise ValueError(
            f"num_workers={num_workers} × num_gpus_per_worker={num_gpus_per_worker} needs "
            f"{need_gpu:g} GPUs but the Ray cluster has {gpus:g}; lower num_gpus_per_worker "
            f"or use device='cpu'"
        )
    return Resources(num_workers, num_cpus_per_worker, num_gpus_per_worker, device)
