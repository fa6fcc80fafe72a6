"""The multi-process evaluator: same numbers as the local one, a killed worker, errors,
Ctrl-C, and no process left behind.

One two-worker evaluator serves the module (starting workers costs seconds); the tests that
stop their own pool or need a driver to interrupt start their own.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
import torch
from evaluator_objectives import (
    Diverging,
    LoadsOnlyHere,
    RunningMeanObjective,
    SlowRastrigin,
    alive,
    assert_reduced_like_local,
    reduce_case,
)

import zoopt
from zoopt import ExplicitPopulation, GaussianPopulation
from zoopt.evaluators import ProcessEvaluator, make_evaluator
from zoopt.evaluators.processes import WorkerObjectiveError
from zoopt.objectives.functions import rastrigin
from zoopt.objectives.gym import GymObjective


def _same(a: list, b: list) -> bool:
    return len(a) == len(b) and all(
        (math.isnan(x) and math.isnan(y)) or x == y for x, y in zip(a, b, strict=True)
    )


@pytest.fixture(scope="module")
def evaluator():
    ev = ProcessEvaluator(2)
    ev.start()
    yield ev
    ev.close()


def test_same_losses_and_parameters_as_local(evaluator):
    x0 = torch.linspace(-1.0, 1.5, 6)
    kw = dict(estimator="es", steps=4, seed=11, population=10)
    local = zoopt.minimize(rastrigin, x0, **kw)
    remote = zoopt.minimize(rastrigin, x0, evaluator=evaluator, **kw)
    assert torch.equal(local.x, remote.x)
    for key in ("loss", "population_loss", "best_loss"):
        assert _same(local.history[key], remote.history[key]), key
    assert not torch.equal(remote.x, x0)  # the run moved, so equality means something


def test_gym_run_with_normaliser_and_episode_cap_equals_local(evaluator):
    def run(ev):
        objective = GymObjective("CartPole-v1", normalize_observations=True, episode_cap=2.0)
        kw = dict(estimator="ars", steps=4, seed=2, population=6, sigma=0.5, evaluate_center=True)
        r = zoopt.minimize(objective, torch.zeros(objective.dim), evaluator=ev, **kw)
        return r, objective

    local, lo = run(None)
    remote, ro = run(evaluator)
    assert torch.equal(local.x, remote.x)
    assert _same(local.history["loss"], remote.history["loss"])
    # the straggler cap: set on the driver from the workers' lengths, as in one process
    assert local.history["episode_cap"] == remote.history["episode_cap"]
    assert lo.env_steps == ro.env_steps and lo.episodes_played == ro.episodes_played
    # the workers' normaliser increments came back (merged by chunk: float rounding only)
    assert ro.observation_statistics.count == lo.observation_statistics.count > 0
    assert torch.allclose(ro.observation_statistics.mean, lo.observation_statistics.mean)


def test_explicit_rows_travel_and_chunks_cover_every_row(evaluator):
    X = torch.randn(7, 3, generator=torch.Generator().manual_seed(0))
    losses = evaluator.evaluate(zoopt.FunctionObjective(rastrigin), ExplicitPopulation(X), 0)
    assert torch.equal(losses, rastrigin(X))
    pop = GaussianPopulation(torch.ones(5), 0.3, 77, 9, antithetic=False)
    assert torch.equal(
        evaluator.evaluate(zoopt.FunctionObjective(rastrigin), pop, 3),
        rastrigin(pop.materialize()),
    )


def test_worker_killed_mid_step_is_replaced_and_run_is_unchanged(evaluator):
    objective = SlowRastrigin(delay=0.3)
    kw = dict(estimator="es", steps=3, seed=5, population=8, sigma=0.2)
    undisturbed = zoopt.minimize(objective, torch.full((4,), 0.7), evaluator=evaluator, **kw)
    victim = evaluator.pids[0]
    restarts = evaluator.restarts
    killer: list[threading.Timer] = []

    def kill_during_next_step(row):
        if row["step"] == 1:
            killer.append(threading.Timer(0.1, os.kill, (victim, signal.SIGKILL)))
            killer[0].start()

    disturbed = zoopt.minimize(
        objective, torch.full((4,), 0.7), evaluator=evaluator, callback=kill_during_next_step, **kw
    )
    killer[0].join()
    assert evaluator.restarts == restarts + 1
    assert not alive(victim) and victim not in evaluator.pids
    assert torch.equal(disturbed.x, undisturbed.x)
    assert _same(disturbed.history["loss"], undisturbed.history["loss"])
    assert _same(disturbed.history["population_loss"], undisturbed.history["population_loss"])


def test_objective_exception_names_rows_and_pool_goes_on(evaluator):
    X = torch.zeros(8, 3)
    X[5, 1] = 1e6
    restarts = evaluator.restarts
    with pytest.raises(WorkerObjectiveError) as info:
        evaluator.evaluate(Diverging(), ExplicitPopulation(X), seed=0)
    err = info.value
    assert err.rows == (4, 8) and err.error_type == "ValueError"
    assert "candidates 4..7" in str(err) and "simulator diverged" in str(err)
    assert "Traceback" in err.worker_traceback
    assert evaluator.restarts == restarts  # not retried, nobody replaced
    ok = evaluator.evaluate(Diverging(), ExplicitPopulation(X[:4]), 0)
    assert torch.equal(ok, torch.zeros(4))


def test_a_step_whose_payload_fails_to_load_fails_alone(evaluator):
    """A worker that cannot load a step's payload reports it for that step's ranges, the
    evaluation's and the reduction's (not the sums of the step before), and takes the next
    step as usual."""
    objective = RunningMeanObjective()
    bounds = [(0, 21), (21, 42)]
    first, _ = reduce_case("diagonal")
    evaluator.evaluate_ranges(objective, first, 0, bounds, shared_state={"offset": 0.0})
    pop, c = reduce_case("none")
    with pytest.raises(WorkerObjectiveError, match="loads only where it was made"):
        evaluator.evaluate_ranges(
            objective, pop, 1, bounds, shared_state={"offset": LoadsOnlyHere()}
        )
    coeffs = [c[a:b].numpy() for a, b in bounds]
    with pytest.raises(WorkerObjectiveError, match="loads only where it was made"):
        evaluator.reduce_ranges(pop, bounds, coeffs, True)
    out = evaluator.evaluate_ranges(objective, pop, 2, bounds, shared_state={"offset": 1.0})
    X = pop.rows(0, 42)
    assert torch.allclose(torch.cat([losses for losses, _ in out]), (X * X).sum(-1) + 1.0)
    sums = evaluator.reduce_ranges(pop, bounds, coeffs, True)
    total = tuple(sum(part[i].double() for part in sums).float() for i in (0, 1))
    assert_reduced_like_local(pop, c, total)


def test_close_leaves_no_process_behind():
    ev = ProcessEvaluator(2)
    pids = ev.pids
    assert all(alive(p) for p in pids)
    ev.close()
    assert not any(alive(p) for p in pids)
    with pytest.raises(RuntimeError, match="closed"):
        ev.evaluate(Diverging(), ExplicitPopulation(torch.zeros(2, 2)), 0)


DRIVER = textwrap.dedent(
    """
    import signal, sys, time, torch
    from zoopt import ExplicitPopulation, Objective
    from zoopt.evaluators import ProcessEvaluator

    class Sleeper(Objective):
        def evaluate(self, X, seed=0):
            time.sleep(60)
            return X.sum(-1)

    if __name__ == "__main__":
        # a terminal's Python: started in the background, it would inherit SIGINT ignored
        signal.signal(signal.SIGINT, signal.default_int_handler)
        ev = ProcessEvaluator(2)
        print(" ".join(map(str, ev.pids)), flush=True)
        try:
            ev.evaluate(Sleeper(), ExplicitPopulation(torch.zeros(4, 2)), 0)
        except KeyboardInterrupt:
            print("interrupted", flush=True)
            sys.exit(3)
    """
)


def test_ctrl_c_stops_every_worker(tmp_path):
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        pids = [int(p) for p in proc.stdout.readline().split()]
        assert len(pids) == 2 and all(alive(p) for p in pids)
        time.sleep(1.0)  # the workers are asleep inside the objective
        # a terminal's Ctrl-C reaches the whole process group; the workers ignore it
        proc.send_signal(signal.SIGINT)
        for p in pids:
            os.kill(p, signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 3 and "interrupted" in out
    assert not any(alive(p) for p in pids)


@pytest.mark.parametrize(
    ("option", "value", "match"),
    [
        ("num_workers", 0, "num_workers must be a positive int"),
        ("chunks_per_worker", 1.5, "chunks_per_worker must be a positive int"),
        ("max_batch", -1, "max_batch must be a positive int"),
        ("max_retries", -1, "max_retries must be an int >= 0"),
        ("start_method", "fork", "start_method must be 'spawn' or 'forkserver'"),
    ],
)
def test_bad_options(option, value, match):
    with pytest.raises(ValueError, match=match):
        ProcessEvaluator(**{option: value})


def test_made_by_name_and_from_a_config():
    ev = make_evaluator("processes", num_workers=3)
    assert isinstance(ev, ProcessEvaluator) and ev.num_workers == 3
    ev.close()
    from zoopt.config import evaluator_recipes

    assert "processes" in evaluator_recipes()


def test_explicit_rows_travel_as_bytes_in_their_dtype(evaluator):
    """Rows go to the workers as array bytes (not through torch's shared-memory handover):
    float64 rows arrive unrounded, bfloat16 rows (no numpy dtype) as tensors."""
    X = torch.randn(5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) / 3
    losses = evaluator.evaluate(zoopt.FunctionObjective(rastrigin), ExplicitPopulation(X), 0)
    assert losses.dtype == torch.float64 and torch.equal(losses, rastrigin(X))
    B = X.to(torch.bfloat16)
    losses = evaluator.evaluate(zoopt.FunctionObjective(rastrigin), ExplicitPopulation(B), 0)
    assert torch.equal(losses.to(torch.float64), rastrigin(B).to(torch.float64))


def test_seeding_a_chunk_equals_torchs_own_manual_seed():
    """A chunk's seeding skips the devices this process cannot have: its draws equal those
    after ``torch.manual_seed`` (and NumPy's and ``random``'s seeds) bit for bit."""
    import random

    import numpy as np

    from zoopt.evaluators.chunks import seed_global_rngs

    def draws():
        return (
            torch.rand(5),
            torch.randn(3, dtype=torch.float64),
            np.random.rand(2),
            random.random(),
        )

    for seed in (0, 12345, 2**62 + 5, -3):
        seed_global_rngs(seed)
        ours = draws()
        s = seed & (2**63 - 1)
        torch.manual_seed(s)
        np.random.seed(s % 2**32)
        random.seed(s)
        ref = draws()
        assert torch.equal(ours[0], ref[0]) and torch.equal(ours[1], ref[1])
        assert (ours[2] == ref[2]).all() and ours[3] == ref[3]
