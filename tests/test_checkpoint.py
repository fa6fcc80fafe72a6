"""Checkpoints: exact resume for every estimator, safe loading, atomic writes."""

from __future__ import annotations

import copy
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

import zoopt
from zoopt.checkpoint import (
    FORMAT,
    VERSION,
    CheckpointError,
    decode_state,
    encode_state,
    load_checkpoint,
    load_tensor,
    save_checkpoint,
    save_tensor,
)
from zoopt.config import validate
from zoopt.experiment import resume_experiment, run_experiment
from zoopt.runlog import read_metrics

N = 4  # steps before the interruption; the full run takes 2N


def function_config(estimator: str) -> dict:
    return validate(
        {
            "seed": 3,
            "estimator": estimator,
            "objective": {"kind": "function", "function": "rosenbrock", "dim": 4, "x0": -0.5},
            "estimators": {
                "sampling": {"population": 8},
                "es": {"population": 8},
                "cmaes": {"population": 6},
            },
            "optimizer": {"lr": 0.05, "schedule": "cosine", "warmup_steps": 2},
            "budget": {"steps": 2 * N},
            "output": {"tensorboard": False, "plot": False, "progress": "none"},
        }
    )


def sampling_objective_config(estimator: str) -> dict:
    """An objective that can sample its outputs (for "reinforce"): a small classifier."""
    return validate(
        {
            "seed": 1,
            "estimator": estimator,
            "objective": {
                "kind": "classification",
                "dataset": "iris",
                "hidden": [4],
                "batch_size": 16,
            },
            "budget": {"steps": 2 * N},
            "output": {"tensorboard": False, "plot": False, "progress": "none"},
        }
    )


def config_for(estimator: str) -> dict:
    return (
        sampling_objective_config(estimator)
        if estimator == "reinforce"
        else function_config(estimator)
    )


@pytest.mark.parametrize("estimator", zoopt.available_estimators())
def test_resumed_run_equals_uninterrupted_run(tmp_path, estimator):
    cfg = config_for(estimator)
    full = run_experiment(cfg, tmp_path / "full")
    half = run_experiment(cfg, tmp_path / "half", until=N)
    assert half.steps == N and half.status == "finished"
    state = load_checkpoint(tmp_path / "half" / "checkpoint.pt")
    assert state["minimizer"]["step_count"] == N
    resumed = resume_experiment(tmp_path / "half", steps=2 * N)
    assert resumed is not None and resumed.steps == 2 * N == full.steps
    x_full = load_tensor(tmp_path / "full" / "last.pt")
    x_resumed = load_tensor(tmp_path / "half" / "last.pt")
    assert torch.equal(x_full, x_resumed)  # identical, not merely close
    assert torch.equal(
        load_tensor(tmp_path / "full" / "best.pt"), load_tensor(tmp_path / "half" / "best.pt")
    )
    assert resumed.evaluations == full.evaluations
    a, b = read_metrics(tmp_path / "full"), read_metrics(tmp_path / "half")
    assert len(a["step"]) == len(b["step"]) == 2 * N
    for key in a:
        if key != "seconds":
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    # the parameters moved: equality is not that of two untouched starts
    assert not torch.equal(x_full, torch.full_like(x_full, -0.5))


def test_an_auto_run_resumes_exactly(tmp_path, monkeypatch):
    """The default estimator: the checkpoint names "auto" as configured, its minimizer the
    estimator auto chose and its verdict on noise; the resumed run makes the same choice
    without probing again and equals the uninterrupted one."""
    from zoopt.estimators import auto

    cfg = function_config("auto")
    full = run_experiment(cfg, tmp_path / "full")
    run_experiment(cfg, tmp_path / "half", until=N)
    state = load_checkpoint(tmp_path / "half" / "checkpoint.pt")
    assert state["estimator"] == "auto" and state["minimizer"]["estimator_name"] == "cmaes"
    assert state["minimizer"]["auto"].startswith("cmaes")
    assert state["minimizer"]["auto_noisy"] is False
    probes = []
    probe = auto.is_noisy
    monkeypatch.setattr(auto, "is_noisy", lambda *a, **k: probes.append(1) or probe(*a, **k))
    resumed = resume_experiment(tmp_path / "half", steps=2 * N)
    assert not probes
    assert resumed is not None and resumed.evaluations == full.evaluations
    last = [load_tensor(tmp_path / run / "last.pt") for run in ("full", "half")]
    assert torch.equal(*last)


@pytest.mark.parametrize("layout", ["older", "another estimator"])
def test_an_auto_checkpoint_of_an_older_layout_or_another_choice(tmp_path, layout):
    """Older auto checkpoints named the chosen estimator at the top and not in the minimizer:
    they resume; one whose choice is not the one made again is refused by name."""
    cfg = function_config("auto")
    full = run_experiment(cfg, tmp_path / "full")
    run_experiment(cfg, tmp_path / "half", until=N)
    ckpt = tmp_path / "half" / "checkpoint.pt"
    state = load_checkpoint(ckpt)
    del state["minimizer"]["estimator_name"], state["minimizer"]["auto"]
    del state["minimizer"]["auto_noisy"]  # older: probed again on resume
    state["estimator"] = "cmaes" if layout == "older" else "snes"
    save_checkpoint(ckpt, state)
    if layout == "older":
        resumed = resume_experiment(tmp_path / "half", steps=2 * N)
        assert resumed is not None and resumed.evaluations == full.evaluations
        last = [load_tensor(tmp_path / run / "last.pt") for run in ("full", "half")]
        assert torch.equal(*last)
    else:
        with pytest.raises(CheckpointError, match=r"written by estimator 'snes'"):
            resume_experiment(tmp_path / "half", steps=2 * N)


@pytest.mark.parametrize(
    ("estimator", "options", "dim"),
    [
        ("auto", {}, 6),  # lq-CMA-ES with the model's step, IPOP restarts
        ("cmaes", {"surrogate": True, "restarts": 3, "bipop": True}, 5),
        ("snes", {}, 8),  # the quadratic metamodel's archive
    ],
)
def test_a_run_resumes_exactly_from_any_step(tmp_path, estimator, options, dim):
    """Saved after any of several steps (within a screened generation, across restarts): the
    resumed run evaluates the points of the uninterrupted one and ends at its parameters."""
    from zoopt.objectives import rastrigin

    def minimizer(rows: list) -> zoopt.Minimizer:
        def f(X):
            rows.extend(X.clone())
            return rastrigin(X)

        x0 = torch.full((dim,), 0.5, dtype=torch.float64)
        return zoopt.Minimizer(f, x0, estimator=estimator, seed=7, steps=10**6, **options)

    for saved_at in (7, 23, 61, 118, 190):
        rows_a, rows_b = [], []
        a = minimizer(rows_a)
        for _ in range(saved_at):
            a.step()
        b = minimizer(rows_b)
        rows_b.clear()  # auto's noise probe, made again by the new Minimizer
        save_checkpoint(tmp_path / "state.pt", a.state_dict())
        b.load_state_dict(load_checkpoint(tmp_path / "state.pt"))
        start = len(rows_a)
        for _ in range(40):
            a.step()
            b.step()
        assert len(rows_b) == len(rows_a) - start > 0, saved_at
        assert all(torch.equal(p, q) for p, q in zip(rows_a[start:], rows_b, strict=True))
        assert torch.equal(a.theta, b.theta), saved_at


def test_a_failing_step_leaves_a_checkpoint_to_resume_from(tmp_path, monkeypatch):
    """A fault inside a step (here: every Ray worker lost, injected into the evaluator) ends
    the run with its error and a checkpoint of the last whole step; resuming it gives the
    uninterrupted run."""
    from zoopt.evaluators.local import LocalEvaluator
    from zoopt.evaluators.ray import WorkersLostError

    cfg = function_config("es")
    full = run_experiment(cfg, tmp_path / "full")
    real = LocalEvaluator.evaluate
    calls = {"n": 0}

    def evaluate(self, objective, population, seed):
        calls["n"] += 1
        if calls["n"] == N + 1:  # the (N+1)-th step's call
            raise WorkersLostError("all 2 workers lost; none could be placed in 60 s")
        return real(self, objective, population, seed)

    monkeypatch.setattr(LocalEvaluator, "evaluate", evaluate)
    with pytest.raises(WorkersLostError):
        run_experiment(cfg, tmp_path / "cut")
    monkeypatch.setattr(LocalEvaluator, "evaluate", real)
    state = load_checkpoint(tmp_path / "cut" / "checkpoint.pt")
    assert state["status"] == "failed" and state["minimizer"]["step_count"] == N
    resumed = resume_experiment(tmp_path / "cut", steps=2 * N)
    assert resumed is not None and resumed.steps == full.steps
    assert torch.equal(
        load_tensor(tmp_path / "full" / "last.pt"), load_tensor(tmp_path / "cut" / "last.pt")
    )


def test_resume_of_a_complete_run_does_nothing(tmp_path):
    cfg = function_config("es")
    run_experiment(cfg, tmp_path / "r")
    assert resume_experiment(tmp_path / "r") is None
    more = resume_experiment(tmp_path / "r", steps=2 * N + 2)
    assert more is not None and more.steps == 2 * N + 2
    assert len(read_metrics(tmp_path / "r")["step"]) == 2 * N + 2


def test_state_encoding_round_trips_numpy_and_refuses_objects():
    state = {
        "a": np.arange(6, dtype=np.float64).reshape(2, 3),
        "b": np.int64(7),
        "c": [np.float32(1.5), (1, "x", None)],
        "t": torch.ones(2),
        "nested": {"m": np.array([True, False]), "u": np.arange(3, dtype=np.uint8)},
    }
    enc = encode_state(state)
    dec = decode_state(enc)
    assert isinstance(dec["a"], np.ndarray) and dec["a"].dtype == np.float64
    np.testing.assert_array_equal(dec["a"], state["a"])
    assert dec["b"] == 7 and isinstance(dec["b"], int)
    assert dec["c"][0] == 1.5 and dec["c"][1] == (1, "x", None)
    assert dec["nested"]["m"].dtype == np.bool_ and dec["nested"]["u"].dtype == np.uint8
    with pytest.raises(CheckpointError, match=r"state\.nested\.f: .*function"):
        encode_state({"nested": {"f": lambda: 0}})
    with pytest.raises(CheckpointError, match=r"state\.s: NumPy arrays of dtype <U"):
        encode_state({"s": np.array(["a"])})


def test_checkpoint_round_trip_and_weights_only_format(tmp_path):
    path = tmp_path / "ck.pt"
    state = {"x": torch.arange(3.0), "arr": np.eye(2), "step": 4, "name": "es", "inf": float("inf")}
    save_checkpoint(path, state)
    out = load_checkpoint(path)
    assert torch.equal(out["x"], state["x"]) and out["step"] == 4 and out["inf"] == float("inf")
    np.testing.assert_array_equal(out["arr"], np.eye(2))
    # the file itself is plain enough for torch.load(weights_only=True)
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == "zoopt-checkpoint"
    t = save_tensor(tmp_path / "best.pt", torch.ones(3))
    assert torch.equal(torch.load(t, weights_only=True), torch.ones(3))


def test_corrupt_or_truncated_checkpoint_names_the_file(tmp_path):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"x": torch.randn(100)})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"checkpoint\.pt: corrupt or truncated"):
        load_checkpoint(path)
    path.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match=str(path)):
        load_checkpoint(path)
    torch.save({"something": 1}, path)
    with pytest.raises(CheckpointError, match="not a zoopt checkpoint"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="no checkpoint here"):
        load_checkpoint(tmp_path / "missing.pt")


class _Payload:
    """Unpickling this would create a marker file: loading must refuse it."""

    marker = ""

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_loading_never_executes_code_from_the_file(tmp_path):
    marker = tmp_path / "executed"
    payload = _Payload()
    payload.marker = str(marker)
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        torch.save(
            {"format": "zoopt-checkpoint", "version": 1, "state": {"x": payload}},
            f,
            pickle_module=pickle,
        )
    assert not marker.exists()
    with pytest.raises(CheckpointError, match="evil.pt"):
        load_checkpoint(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    "tagged",
    [
        {"__zoopt_ndarray__": 5, "dtype": "<f8"},
        {"__zoopt_ndarray__": torch.zeros(2), "dtype": "|O"},
        {"__zoopt_ndarray__": torch.zeros(2), "dtype": "nonsense"},
    ],
)
def test_damaged_tagged_array_names_the_file(tmp_path, tagged):
    path = tmp_path / "damaged.pt"
    torch.save({"format": FORMAT, "version": VERSION, "state": {"a": tagged}}, path)
    with pytest.raises(CheckpointError, match=r"damaged\.pt: damaged checkpoint"):
        load_checkpoint(path)


def test_unsavable_state_names_the_file_and_writes_nothing(tmp_path):
    path = tmp_path / "checkpoint.pt"
    with pytest.raises(CheckpointError, match=r"checkpoint\.pt: cannot checkpoint state\.f"):
        save_checkpoint(path, {"f": lambda: 0})
    assert not path.exists()


def test_written_files_get_the_permissions_of_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        path = save_checkpoint(tmp_path / "checkpoint.pt", {"step": 1})
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o640


def test_failed_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"step": 1})

    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(CheckpointError, match="previous checkpoint, if any, is kept"):
        save_checkpoint(path, {"step": 2})
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]  # no temp files


def test_resume_reports_a_damaged_checkpoint(tmp_path):
    cfg = copy.deepcopy(function_config("sampling"))
    run_experiment(cfg, tmp_path / "r", until=2)
    ck = tmp_path / "r" / "checkpoint.pt"
    ck.write_bytes(ck.read_bytes()[:100])
    with pytest.raises(CheckpointError, match=r"r/checkpoint\.pt: corrupt or truncated"):
        resume_experiment(tmp_path / "r")


def test_a_damaged_verdict_on_noise_is_named(tmp_path):
    run_experiment(function_config("auto"), tmp_path / "r", until=2)
    ckpt = tmp_path / "r" / "checkpoint.pt"
    state = load_checkpoint(ckpt)
    state["minimizer"]["auto_noisy"] = "no"
    save_checkpoint(ckpt, state)
    with pytest.raises(CheckpointError, match=r"minimizer\.auto_noisy: expected true, false"):
        resume_experiment(tmp_path / "r", steps=4)


def test_objective_statistics_are_restored_on_resume(tmp_path):
    """A Gymnasium objective that learns observation statistics resumes exactly."""
    cfg = validate(
        {
            "seed": 2,
            "estimator": "es",
            "objective": {
                "kind": "gym",
                "env": "zoopt/DeepSea-v0",
                "env_kwargs": {"size": 4},
                "max_episode_steps": 4,
                "normalize_observations": True,
            },
            "estimators": {"es": {"population": 8, "sigma": 0.5}},
            "budget": {"steps": 2 * N},
            "output": {"tensorboard": False, "plot": False, "progress": "none"},
        }
    )
    run_experiment(cfg, tmp_path / "full")
    run_experiment(cfg, tmp_path / "half", until=N)
    stats = load_checkpoint(tmp_path / "half" / "checkpoint.pt")["minimizer"]["objective"]
    assert stats, "the objective's statistics are part of the checkpoint"
    resume_experiment(tmp_path / "half")
    assert torch.equal(
        load_tensor(tmp_path / "full" / "last.pt"), load_tensor(tmp_path / "half" / "last.pt")
    )
    full = load_checkpoint(tmp_path / "full" / "checkpoint.pt")["minimizer"]["objective"]
    half = load_checkpoint(tmp_path / "half" / "checkpoint.pt")["minimizer"]["objective"]
    assert repr(full) == repr(half)
