"""Checkpoints that restore a run exactly and never execute code when loaded.

A checkpoint is a ``torch.save`` file holding only tensors and plain containers (dict,
list, tuple, str, int, float, bool, None). It is read back with
``torch.load(weights_only=True)``, which refuses anything else, so loading a file cannot
run code from it. State that is not made of those pieces is encoded first
(:func:`encode_state`): NumPy arrays become tensors tagged with their dtype and NumPy
scalars become Python numbers. Any other object is refused when *saving*, with the dotted
path of the offending entry, instead of being pickled.

Writes are atomic: the file is written to a temporary name in the same directory, flushed
and fsynced, then moved over the old checkpoint with :func:`os.replace`, so a crash or a
full disk during a write leaves the previous good checkpoint in place.
"""

from __future__ import annotations

import io
import os
import secrets
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "CheckpointError",
    "FORMAT",
    "VERSION",
    "encode_state",
    "decode_state",
    "atomic_write_bytes",
    "save_checkpoint",
    "load_checkpoint",
    "save_tensor",
    "load_tensor",
]

FORMAT = "zoopt-checkpoint"
VERSION = 1
_NDARRAY = "__zoopt_ndarray__"


class CheckpointError(RuntimeError):
    """A checkpoint cannot be written or read; the message names the file."""


def encode_state(obj: Any, path: str = "state") -> Any:
    """``obj`` with NumPy values turned into tensors/numbers; other objects are refused.

    Raises:
        CheckpointError: an entry is neither a tensor, a NumPy value nor a plain value.
    """
    if obj is None or isinstance(obj, (bool, int, float, str, torch.Tensor)):
        return obj
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind not in "biuf":
            raise CheckpointError(
                f"cannot checkpoint {path}: NumPy arrays of dtype {obj.dtype} are not supported"
            )
        return {
            _NDARRAY: torch.from_numpy(np.ascontiguousarray(obj).copy()),
            "dtype": obj.dtype.str,
        }
    if isinstance(obj, dict):
        out = OrderedDict() if isinstance(obj, OrderedDict) else {}
        for k, v in obj.items():
            if not isinstance(k, (str, int)) or isinstance(k, bool):
                raise CheckpointError(f"cannot checkpoint {path}: key {k!r} is not a str or int")
            out[k] = encode_state(v, f"{path}.{k}")
        return out
    if isinstance(obj, list):
        return [encode_state(v, f"{path}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, tuple):
        return tuple(encode_state(v, f"{path}[{i}]") for i, v in enumerate(obj))
    raise CheckpointError(
        f"cannot checkpoint {path}: {type(obj).__name__} is not a tensor, a NumPy array or a "
        "plain value (state_dict() must return tensors, arrays and plain containers)"
    )


def decode_state(obj: Any) -> Any:
    """Invert :func:`encode_state` (tagged tensors become NumPy arrays again).

    Raises:
        CheckpointError: a tagged array holds no tensor or an unsupported dtype.
    """
    if isinstance(obj, dict):
        if _NDARRAY in obj and set(obj) == {_NDARRAY, "dtype"}:
            tensor, dtype = obj[_NDARRAY], obj["dtype"]
            if not isinstance(tensor, torch.Tensor) or not isinstance(dtype, str):
                raise CheckpointError("a tagged NumPy array holds no tensor or dtype")
            try:
                dtype = np.dtype(dtype)
            except TypeError:
                raise CheckpointError(f"unknown NumPy dtype {dtype!r}") from None
            if dtype.kind not in "biuf":
                raise CheckpointError(f"NumPy arrays of dtype {dtype} are not supported")
            return tensor.numpy().astype(dtype, copy=True)
        out = OrderedDict() if isinstance(obj, OrderedDict) else {}
        for k, v in obj.items():
            out[k] = decode_state(v)
        return out
    if isinstance(obj, list):
        return [decode_state(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(decode_state(v) for v in obj)
    return obj


def _create_temp(path: Path) -> tuple[int, str]:
    """A new temporary file beside ``path``, with the permissions ``open`` would give it.

    ``tempfile.mkstemp`` creates files readable by their owner only; created with mode
    0o666 here, the process's umask applies as for any other file the run writes.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = str(path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"{path}: no free temporary name beside it")


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that ``path`` holds either the old or the new bytes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temp(path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:  # make the rename itself durable
        dfd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


def _serialize(obj: Any) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def save_checkpoint(path: str | Path, state: dict) -> Path:
    """Atomically write ``state`` (a dict of tensors, arrays and plain values) to ``path``."""
    path = Path(path)
    try:
        payload = {"format": FORMAT, "version": VERSION, "state": encode_state(state)}
    except CheckpointError as e:
        raise CheckpointError(f"{path}: {e}") from None
    try:
        atomic_write_bytes(path, _serialize(payload))
    except OSError as e:
        raise CheckpointError(
            f"{path}: cannot write the checkpoint ({e}); the previous checkpoint, if any, is kept"
        ) from e
    return path


def load_checkpoint(path: str | Path) -> dict:
    """Read a checkpoint written by :func:`save_checkpoint` (no code is executed).

    Raises:
        CheckpointError: the file is missing, corrupt, truncated, holds objects other than
            tensors and plain values, or is not a zoopt checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no checkpoint here")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for damaged files
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(
            f"{path}: corrupt or truncated checkpoint, or one holding objects other than "
            f"tensors and plain values ({first[:200]})"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a zoopt checkpoint")
    if payload.get("version") != VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {payload.get('version')!r} "
            f"is not supported (this zoopt reads version {VERSION})"
        )
    state = payload.get("state")
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: the checkpoint holds no state")
    try:
        return decode_state(state)
    except CheckpointError as e:
        raise CheckpointError(f"{path}: damaged checkpoint: {e}") from None


def save_tensor(path: str | Path, tensor: torch.Tensor) -> Path:
    """Atomically save one plain tensor (``torch.load(path, weights_only=True)`` reads it)."""
    path = Path(path)
    atomic_write_bytes(path, _serialize(tensor.detach().cpu().clone()))
    return path


def load_tensor(path: str | Path) -> torch.Tensor:
    """Read a tensor written by :func:`save_tensor`; a clear error naming the file otherwise."""
    path = Path(path)
    try:
        out = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such file") from None
    except Exception as e:
        raise CheckpointError(f"{path}: corrupt or not a tensor file ({e})") from None
    if not isinstance(out, torch.Tensor):
        raise CheckpointError(f"{path}: holds {type(out).__name__}, not a tensor")
    return out
