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
full disk during a write leaves the previous good checkpoint in place. Temporary files a
killed process left behind are removed by the next write.

A loadable file is not yet a valid one: :func:`check_minimizer_state` checks every entry of
a :meth:`zoopt.Minimizer.state_dict` against the run that is about to load it (shapes against
D, dtypes, counters, finiteness, the optimizer's and estimator's own structure), so a damaged
checkpoint is refused with the file and the entry named instead of being coerced.
"""

from __future__ import annotations

import io
import math
import os
import secrets
from collections import OrderedDict
from glob import escape as glob_escape
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
    "check_like",
    "check_float_tensors",
    "check_minimizer_state",
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


def _remove_stale_temps(path: Path) -> None:
    """Remove ``.NAME.*.tmp`` files beside ``path`` left by a writer that was killed."""
    for stale in path.parent.glob(f".{glob_escape(path.name)}.*.tmp"):
        try:
            stale.unlink()
        except OSError:  # another writer's file in use, or already gone
            pass


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that ``path`` holds either the old or the new bytes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(path)
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


# -- validation against the run ----------------------------------------------------------------
def _kind(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    return type(value).__name__


def check_float_tensors(state: dict, ndims: dict[str, int], where: str) -> dict[str, tuple]:
    """The shapes of the float tensors ``state[key]`` of ``ndims[key]`` dimensions each.

    Raises:
        ValueError: ``"{where}: KEY must be a float tensor of N dimension(s), got ..."``.
    """
    shapes = {}
    for key, ndim in ndims.items():
        v = state[key]
        if not isinstance(v, torch.Tensor) or v.ndim != ndim or not v.is_floating_point():
            raise ValueError(
                f"{where}: {key} must be a float tensor of {ndim} dimension(s), got {_kind(v)}"
            )
        shapes[key] = tuple(v.shape)
    return shapes


def check_like(
    value: Any, template: Any, entry: str, strict: bool = True, _top: bool = True
) -> None:
    """Check that ``value`` has the structure of ``template`` (a fresh state of the same run).

    Dicts need the same keys (``strict=False``: at least the template's, and no entries at
    the top when the template has none; nested tables may grow, as an inner optimizer's state
    does after its first step), lists and tuples
    the template's element types, tensors its dtype and shape (``strict=False``: its number
    of dimensions), numbers the same type and finite values where the template's are.

    Raises:
        ValueError: naming ``entry`` (a dotted path) and what was expected.
    """
    if isinstance(template, dict):
        if not isinstance(value, dict):
            raise ValueError(f"{entry}: expected a table, got {_kind(value)}")
        missing = [k for k in template if k not in value]
        if missing:
            raise ValueError(f"{entry}: missing entry {missing[0]!r}")
        extra = [k for k in value if k not in template]
        if extra and (strict or (not template and _top)):
            raise ValueError(f"{entry}: unexpected entry {extra[0]!r}")
        for k, v in value.items():
            if k in template:
                check_like(v, template[k], f"{entry}.{k}", strict, _top=False)
        return
    if isinstance(template, (list, tuple)):
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{entry}: expected a list, got {_kind(value)}")
        if strict and len(value) != len(template):
            raise ValueError(f"{entry}: expected {len(template)} items, got {len(value)}")
        for i, v in enumerate(value):
            if template:
                check_like(
                    v, template[min(i, len(template) - 1)], f"{entry}[{i}]", strict, _top=False
                )
        return
    if isinstance(template, torch.Tensor):
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"{entry}: expected {_kind(template)}, got {_kind(value)}")
        same = value.shape == template.shape if strict else value.dim() == template.dim()
        if value.dtype != template.dtype or not same:
            raise ValueError(f"{entry}: expected {_kind(template)}, got {_kind(value)}")
        if value.is_floating_point() and bool(torch.isfinite(template).all()):
            if not bool(torch.isfinite(value).all()):
                raise ValueError(f"{entry}: holds non-finite values (NaN or Inf)")
        return
    if isinstance(template, bool):
        if not isinstance(value, bool):
            raise ValueError(f"{entry}: expected true or false, got {value!r}")
        return
    if isinstance(template, (int, float)):
        numbers = (int, float) if (isinstance(template, float) or not strict) else (int,)
        if not isinstance(value, numbers) or isinstance(value, bool):
            raise ValueError(f"{entry}: expected {type(template).__name__}, got {_kind(value)}")
        if isinstance(value, float) and math.isfinite(template) and not math.isfinite(value):
            raise ValueError(f"{entry}: expected a finite number, got {value!r}")
        return
    if isinstance(template, str):
        if not isinstance(value, str):
            raise ValueError(f"{entry}: expected a string, got {_kind(value)}")
        return
    if template is None and strict and value is not None:
        raise ValueError(f"{entry}: expected no value, got {_kind(value)}")


def _counter(state: dict, key: str) -> int:
    v = state[key]
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise ValueError(f"minimizer.{key}: expected an int >= 0, got {v!r}")
    return v


def _parameters(state: dict, key: str, template: torch.Tensor) -> None:
    v = state[key]
    if not isinstance(v, torch.Tensor):
        raise ValueError(f"minimizer.{key}: expected {_kind(template)}, got {_kind(v)}")
    if v.shape != template.shape:
        raise ValueError(
            f"minimizer.{key}: expected shape {tuple(template.shape)} (D = {template.numel()} "
            f"parameters of this run), got {tuple(v.shape)}"
        )
    if v.dtype != template.dtype:
        raise ValueError(f"minimizer.{key}: expected dtype {template.dtype}, got {v.dtype}")
    if not bool(torch.isfinite(v).all()):
        bad = int((~torch.isfinite(v)).sum())
        raise ValueError(
            f"minimizer.{key}: {bad} non-finite parameter value(s) (NaN or Inf); "
            "the checkpoint is damaged"
        )


def _optimizer_state(value: Any, template: dict, x: torch.Tensor) -> None:
    if not isinstance(value, dict) or set(value) != {"state", "param_groups"}:
        raise ValueError(
            f"minimizer.optimizer: expected a table of state and param_groups, got {_kind(value)}"
        )
    if not isinstance(value["state"], dict):
        raise ValueError(f"minimizer.optimizer.state: expected a table, got {_kind(value)}")
    check_like(value["param_groups"], template["param_groups"], "minimizer.optimizer.param_groups")
    expected = template["state"].get(0)
    for pid, entries in value["state"].items():
        where = f"minimizer.optimizer.state.{pid}"
        if pid != 0 or not isinstance(entries, dict):
            raise ValueError(f"{where}: not the state of this run's one parameter vector")
        if expected is not None:  # the optimizer's own state after one step: same entries
            check_like(entries, expected, where)
            continue
        for name, t in entries.items():
            if not isinstance(t, torch.Tensor) or not t.is_floating_point():
                if isinstance(t, (int, float)) and not isinstance(t, bool) and math.isfinite(t):
                    continue
                raise ValueError(f"{where}.{name}: expected a float tensor, got {_kind(t)}")
            if t.dim() != 0 and t.shape != x.shape:
                raise ValueError(
                    f"{where}.{name}: expected shape {tuple(x.shape)}, got {tuple(t.shape)}"
                )
            if not bool(torch.isfinite(t).all()):
                raise ValueError(f"{where}.{name}: holds non-finite values (NaN or Inf)")


#: entries a checkpoint written before they existed may lack (their defaults apply)
OPTIONAL_ENTRIES = ("novelty", "flat_steps", "notes", "estimator_name", "auto", "auto_noisy")


def check_estimator_name(state: dict, runs: str | None, why: str = "") -> None:
    """Refuse a minimizer state written by another estimator than ``runs`` (``why``: how
    this run came to it, e.g. auto's reason). A state without the name, written before it
    was kept, passes.

    Raises:
        ValueError: naming the estimator that wrote it (and what auto chose) and this run's.
    """
    name, auto = state.get("estimator_name"), state.get("auto")
    if name is not None and not isinstance(name, str):
        raise ValueError(f"minimizer.estimator_name: expected a string, got {_kind(name)}")
    if auto is not None and not isinstance(auto, str):
        raise ValueError(f"minimizer.auto: expected a string or nothing, got {_kind(auto)}")
    noisy = state.get("auto_noisy")
    if noisy is not None and not isinstance(noisy, bool):
        raise ValueError(
            f"minimizer.auto_noisy: expected true, false or nothing, got {_kind(noisy)}"
        )
    if name is not None and name != runs:
        chose = f" (auto chose {auto})" if auto else ""
        raise ValueError(
            f"minimizer.estimator_name: written by estimator {name!r}{chose}; this run's "
            f"estimator is {runs!r}{why}, and the state would not carry over. Build the run "
            f"with estimator={name!r} and its options to resume it"
        )


def check_minimizer_state(state: Any, template: dict) -> None:
    """Check a :meth:`zoopt.Minimizer.state_dict` against ``template``, a fresh one of the run.

    ``template["optimizer"]`` may hold the optimizer's state after one step (its ``state``
    entry 0): the checkpoint's must then have the same entries, dtypes and shapes.

    The history is checked by the caller (it may be kept outside the checkpoint); the
    estimator's state is checked here for its structure and by the estimator when loaded.

    Raises:
        ValueError: naming the entry (``minimizer.x``, ``minimizer.optimizer.state.0...``).
    """
    if not isinstance(state, dict):
        raise ValueError(f"minimizer: expected a table, got {_kind(state)}")
    for key in template:
        if key not in state and key not in OPTIONAL_ENTRIES:
            raise ValueError(f"minimizer: missing entry {key!r}")
    extra = [k for k in state if k not in template]
    if extra:
        raise ValueError(f"minimizer: unexpected entry {extra[0]!r}")
    _parameters(state, "x", template["x"])
    for key in ("step_count", "evaluations", "seed"):
        _counter(state, key)
    best = state["best_loss"]
    if isinstance(best, bool) or not isinstance(best, (int, float)) or math.isnan(best):
        raise ValueError(f"minimizer.best_loss: expected a number, got {best!r}")
    if state["step_count"] > 0 and math.isfinite(best):
        _parameters(state, "best_x", template["x"])
    else:
        check_like(state["best_x"], template["best_x"], "minimizer.best_x")
    elapsed = state["elapsed"]
    if isinstance(elapsed, bool) or not isinstance(elapsed, (int, float)) or not 0 <= elapsed:
        raise ValueError(f"minimizer.elapsed: expected seconds >= 0, got {elapsed!r}")
    if not math.isfinite(elapsed):
        raise ValueError(f"minimizer.elapsed: expected a finite number, got {elapsed!r}")
    _optimizer_state(state["optimizer"], template["optimizer"], template["x"])
    if (template["scheduler"] is None) != (state["scheduler"] is None):
        raise ValueError(
            "minimizer.scheduler: "
            + ("this run has no schedule" if template["scheduler"] is None else "missing")
        )
    if template["scheduler"] is not None:
        check_like(state["scheduler"], template["scheduler"], "minimizer.scheduler")
    check_like(state["objective"], template["objective"], "minimizer.objective")
    check_estimator_name(state, template.get("estimator_name"))
    if "flat_steps" in state:
        _counter(state, "flat_steps")
    notes = state.get("notes", [])
    if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
        raise ValueError(f"minimizer.notes: expected a list of strings, got {_kind(notes)}")
    if (template.get("novelty") is None) != (state.get("novelty") is None):
        raise ValueError(
            "minimizer.novelty: "
            + ("this run searches no novelty" if template.get("novelty") is None else "missing")
        )
    check_like(state["estimator"], template["estimator"], "minimizer.estimator", strict=False)
