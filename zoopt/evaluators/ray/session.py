"""The Ray session: a private instance on loopback, or a joined cluster, shared and closed once.

:func:`start_local_ray` starts a quiet single-machine instance whose every process listens on
127.0.0.1, with Ray's token authentication left as Ray sets it. Evaluators of one process
share the session they opened; the last one to close shuts it down. A session opened by
someone else (a test fixture, the user) is used and never closed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from typing import Any

import ray

__all__ = ["TASK_EVENT_LIMITS", "WORKER_ENV_VARS", "start_local_ray"]

#: Ray system settings of a private instance: the GCS keeps the events of at most this many
#: tasks (with 100,000 it grew from 97 to 312 MB in 90 s of small steps; with 2,000 it stays
#: flat; the state API and dashboard then show the most recent tasks only). On a
#: cluster started with ``ray start --head`` set the same through the environment of that
#: command: ``RAY_task_events_max_num_task_in_gcs=2000``.
TASK_EVENT_LIMITS = {
    "task_events_max_num_task_in_gcs": 2_000,
    "task_events_max_dropped_task_attempts_tracked_per_job_in_gcs": 2_000,
}

#: environment of every worker: one BLAS/OpenMP thread each, so K workers use K cores
WORKER_ENV_VARS = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "VECLIB_MAXIMUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
}


class _DropTokenAuthNotice(logging.Filter):
    """Drops Ray's notice that token authentication was enabled by default.

    Only that notice: authentication itself is untouched, and the warning Ray prints when
    authentication is *disabled* still reaches the user.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Token authentication is enabled")


@contextlib.contextmanager
def _loopback_node(worker_env: bool = False):
    """Make Ray use 127.0.0.1 as this machine's node address.

    Ray binds its servers to the node IP, which on Linux is the machine's routable address,
    and rewrites "127.0.0.1" given by the user into that address.
    ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` is Ray's own switch for single-machine operation
    (its default on macOS and Windows): the node IP becomes the loopback address, so the GCS,
    raylet, workers, agents and metrics endpoints of an instance started inside this block
    listen on 127.0.0.1 only, and a driver connecting inside it reaches such an instance.
    With ``worker_env`` the one-BLAS-thread variables are set too, so that every worker of
    the instance inherits them. Processes started inside the block inherit the settings;
    the driver's own are restored afterwards.
    """
    from ray._private import ray_constants

    env = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", **(WORKER_ENV_VARS if worker_env else {})}
    old_env = {key: os.environ.get(key) for key in env}
    old_const = getattr(ray_constants, "ENABLE_RAY_CLUSTER", None)
    os.environ.update(env)
    if old_const is not None:  # read at import time; the driver is past that
        ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        if old_const is not None:
            ray_constants.ENABLE_RAY_CLUSTER = old_const
        for key, value in old_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _is_loopback(address: str) -> bool:
    host = address.rsplit(":", 1)[0].strip("[]") if ":" in address else address
    return host == "localhost" or host == "::1" or host.startswith("127.")


def start_local_ray(
    num_cpus: int | None = None,
    num_gpus: int | None = None,
    *,
    include_dashboard: bool = False,
    log_to_driver: bool = False,
    logging_level: int = logging.WARNING,
    **ray_init_options: Any,
) -> str:
    """Start a private single-machine Ray instance, quiet and on loopback only.

    * Every Ray process listens on 127.0.0.1; the dashboard, when included, too.
    * Ray's token authentication keeps its default: Ray 2.60 turns it on for a new local
      instance unless ``RAY_AUTH_MODE`` says otherwise, creating ``~/.ray/auth_token`` if
      missing. Only the notice announcing this is hidden; ``RAY_AUTH_MODE=disabled`` set by
      the user is respected (and Ray's warning about it is kept).
    * No start-up banner, worker output is not forwarded (``log_to_driver=False``), and the
      ``ray`` logger is set to ``logging_level``.
    * Every worker process of the instance runs with one OpenMP/MKL/OpenBLAS thread.
    * The GCS keeps the events of at most 2,000 tasks (:data:`TASK_EVENT_LIMITS`), so a
      long run does not grow it; ``_system_config`` given here is merged over that.

    Args:
        num_cpus, num_gpus: resources of the instance (default: detected).
        include_dashboard: start the dashboard (on 127.0.0.1).
        log_to_driver: forward the workers' stdout/stderr to this process.
        logging_level: level of Ray's ``ray`` logger in this process.
        **ray_init_options: further ``ray.init`` keyword arguments.

    Returns:
        the instance's GCS address ``"127.0.0.1:port"``, which another process can join.
    """
    if ray.is_initialized():
        raise RuntimeError("start_local_ray: Ray is already initialised in this process")
    options = dict(
        address="local",  # never join a cluster found on the machine by accident
        num_cpus=num_cpus,
        num_gpus=num_gpus,
        include_dashboard=include_dashboard,
        log_to_driver=log_to_driver,
        logging_level=logging_level,
    )
    if include_dashboard:
        options["dashboard_host"] = "127.0.0.1"
    options.update(ray_init_options)
    options["_system_config"] = {**TASK_EVENT_LIMITS, **(options.get("_system_config") or {})}
    notice = logging.getLogger("ray._private.authentication.authentication_token_setup")
    quiet = _DropTokenAuthNotice()
    notice.addFilter(quiet)
    try:
        with _loopback_node(worker_env=True):
            context = ray.init(**options)
    finally:
        notice.removeFilter(quiet)
    address = context.address_info["gcs_address"]
    _LOCAL_INSTANCES.add(address)
    return address


#: GCS addresses of the instances started by :func:`start_local_ray` in this process: their
#: workers inherited the one-thread environment, so no runtime_env (which would keep them
#: from using Ray's pre-started worker processes and slow the start) is needed
_LOCAL_INSTANCES: set[str] = set()


def workers_inherit_thread_env() -> bool:
    try:
        return ray.get_runtime_context().gcs_address in _LOCAL_INSTANCES
    except Exception:
        return False


# The Ray session opened by evaluators of this process, if any: it is shut down (a local
# instance stops; a joined cluster only loses this driver) when the last evaluator using
# it closes. A session opened by someone else is never shut down by an evaluator.
_SESSION_LOCK = threading.Lock()
_session = {"opened_by_zoopt": False, "users": 0}


def acquire_ray(address: str | None, log_to_driver: bool, ray_init_options: dict) -> bool:
    """Connect (or start) Ray; True when the caller shares a session opened by zoopt."""
    with _SESSION_LOCK:
        if ray.is_initialized():
            if not _session["opened_by_zoopt"]:
                return False  # a test fixture's or the user's session: used, never closed
            _session["users"] += 1
            return True
        if address is None:
            start_local_ray(log_to_driver=log_to_driver, **ray_init_options)
        else:
            options = dict(
                address=address, log_to_driver=log_to_driver, logging_level=logging.WARNING
            )
            options.update(ray_init_options)
            # joining: Ray decides about authentication from RAY_AUTH_MODE / the token files
            if _is_loopback(address):  # a loopback-only instance on this machine
                with _loopback_node():
                    ray.init(**options)
            else:
                ray.init(**options)
        _session["opened_by_zoopt"] = True
        _session["users"] = 1
        return True


def release_ray() -> None:
    """Undo one successful :func:`acquire_ray` that returned True."""
    with _SESSION_LOCK:
        _session["users"] = max(0, _session["users"] - 1)
        if _session["users"] == 0 and _session["opened_by_zoopt"]:
            _session["opened_by_zoopt"] = False
            if ray.is_initialized():
                ray.shutdown()
