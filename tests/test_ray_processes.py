"""The Ray evaluator with local processes per worker actor (``processes_per_worker``): the
same numbers as the local evaluator and as one actor per core, faults of a process or of a
whole actor, no process left behind, bad input.

Uses the session's local Ray instance (``ray_address`` in conftest.py).
"""

from __future__ import annotations

import os
import signal
import sys
import threading

import pytest
import torch

import zoopt
from zoopt import ExplicitPopulation, GaussianPopulation
from zoopt.evaluators import LocalEvaluator
from zoopt.objectives.functions import rastrigin

ray = pytest.importorskip("ray")

import evaluator_objectives  # noqa: E402
from evaluator_objectives import (  # noqa: E402
    Diverging,
    RunningMeanObjective,
    SlowRastrigin,
    all_gone,
    assert_reduced_like_local,
    reduce_case,
)

from zoopt.evaluators.ray import ObjectiveError, RayEvaluator  # noqa: E402

# objectives of test modules travel by value, as a user's script run as __main__ does
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
ray.cloudpickle.register_pickle_by_value(evaluator_objectives)


def _pids(evaluator: RayEvaluator) -> list[int]:
    return [pid for actor in evaluator.workers for pid in ray.get(actor.pids.remote())]


@pytest.fixture(scope="module")
def pooled(ray_address):
    """One actor with two processes (one CPU reserved: the session has two)."""
    ev = RayEvaluator(num_workers=1, processes_per_worker=2, num_cpus_per_worker=1)
    ev.start()
    yield ev
    ev.close()


def test_same_numbers_as_local_for_gaussian_and_explicit_populations(pooled):
    x0 = torch.linspace(-1.0, 1.5, 6)
    for name, options in (("es", {}), ("cmaes", {"sigma": 0.5})):
        if name not in zoopt.available_estimators():
            continue
        kw = dict(estimator=name, steps=3, seed=11, population=10, **options)
        local = zoopt.minimize(rastrigin, x0, **kw)
        remote = zoopt.minimize(rastrigin, x0, evaluator=pooled, **kw)
        assert torch.equal(local.x, remote.x) and not torch.equal(remote.x, x0)
        assert local.history["population_loss"] == remote.history["population_loss"]
    # two processes: the population is cut into two ranges, one per process
    assert pooled._bounds(GaussianPopulation(x0, 0.1, 0, 10)) == [(0, 5), (5, 10)]
    assert len(set(_pids(pooled))) == 2


def test_shared_state_reaches_the_processes_and_statistics_merge_in_row_order(pooled):
    driver = RunningMeanObjective(offset=2.5)
    pop = GaussianPopulation(torch.ones(4), 0.5, 99, 12)
    X = pop.materialize()
    assert torch.equal(pooled.evaluate(driver, pop, seed=3), (X * X).sum(-1) + 2.5)
    assert driver.count == 12 and torch.allclose(driver.total, X.sum(0))
    driver.offset = -1.0  # the next step's shared state travels again
    assert torch.equal(pooled.evaluate(driver, pop, seed=3), (X * X).sum(-1) - 1.0)
    assert driver.count == 24


@pytest.mark.parametrize("scale", ["none", "diagonal", "full"])
def test_reduce_on_the_processes_equals_local_to_float_tolerance(pooled, scale):
    pop, c = reduce_case(scale)
    pooled.evaluate(RunningMeanObjective(), pop, seed=1)  # the processes now hold pop
    assert_reduced_like_local(pop, c, pooled.reduce(pop, c, square=True))
    assert pooled._reduce_bounds(pop) == [(0, 21), (21, 42)]  # one range per process
    # a population the processes have not seen travels with the reduction
    other = GaussianPopulation(torch.randn(30), 0.3, 18, 42, scale=pop.scale)
    assert torch.allclose(pooled.reduce(other, c)[0], other.reduce(c)[0], rtol=0, atol=1e-5)


def test_an_es_run_reduced_on_the_processes_equals_local_to_float_tolerance(pooled):
    x0 = torch.linspace(-1.0, 1.5, 8)
    kw = dict(estimator="es", steps=3, seed=2, population=12, shaping="centered_ranks")
    local = zoopt.minimize(rastrigin, x0, **kw)
    old = pooled.reduce_threshold
    try:
        pooled.reduce_threshold = 80
        remote = zoopt.minimize(rastrigin, x0, evaluator=pooled, **kw)
    finally:
        pooled.reduce_threshold = old
    assert torch.allclose(remote.x, local.x, rtol=0, atol=1e-5)
    assert not torch.equal(remote.x, x0)


def test_objective_exception_names_rows_and_the_pool_goes_on(pooled):
    X = torch.zeros(8, 3)
    X[5, 1] = 1e6  # candidate 5 makes the simulator fail
    restarts = pooled.restarts
    with pytest.raises(ObjectiveError, match="simulator diverged") as info:
        pooled.evaluate(Diverging(), ExplicitPopulation(X), seed=0)
    assert info.value.rows == (4, 8) and "candidates 4..7" in str(info.value)
    assert "simulate" in info.value.worker_traceback
    assert pooled.restarts == restarts  # nothing replaced
    assert torch.equal(pooled.evaluate(Diverging(), ExplicitPopulation(X[:4]), 0), torch.zeros(4))


def test_process_killed_mid_step_is_replaced_inside_the_actor_and_nothing_changes(pooled):
    objective = SlowRastrigin(delay=0.4)
    pop = GaussianPopulation(torch.full((4,), 0.7), 0.2, 5, 8)
    undisturbed = pooled.evaluate(objective, pop, seed=4)
    before, restarts = _pids(pooled), pooled.restarts
    killer = threading.Timer(0.2, os.kill, (before[0], signal.SIGKILL))
    killer.start()
    disturbed = pooled.evaluate(objective, pop, seed=4)
    killer.join()
    after = _pids(pooled)
    assert torch.equal(disturbed, undisturbed)
    assert torch.equal(undisturbed, LocalEvaluator().evaluate(objective, pop, seed=4))
    assert before[0] not in after and before[1] in after and len(after) == 2
    assert pooled.restarts == restarts  # the actor itself lived


def test_actor_killed_mid_step_is_replaced_and_its_processes_exit(pooled):
    objective = SlowRastrigin(delay=0.4)
    pop = GaussianPopulation(torch.full((4,), 0.7), 0.2, 6, 8)
    undisturbed = pooled.evaluate(objective, pop, seed=2)
    victim, pids, restarts = pooled.workers[0], _pids(pooled), pooled.restarts
    killer = threading.Timer(0.2, ray.kill, (victim,))
    killer.start()
    disturbed = pooled.evaluate(objective, pop, seed=2)
    killer.join()
    assert pooled.restarts == restarts + 1 and victim not in pooled.workers
    assert torch.equal(disturbed, undisturbed)
    assert all_gone(pids, 60.0)  # their pipe closed with the actor: no orphan left running


def test_relayed_steps_through_pooled_actors_equal_local_ones(ray_address):
    x0 = torch.linspace(-1.0, 1.5, 5)
    kw = dict(estimator="es", steps=2, seed=3, population=12)
    local = zoopt.minimize(rastrigin, x0, **kw)
    with RayEvaluator(
        num_workers=2, processes_per_worker=2, num_cpus_per_worker=0.5, relay_from=2
    ) as ev:
        pids = _pids(ev)
        remote = zoopt.minimize(rastrigin, x0, evaluator=ev, **kw)
    assert torch.equal(local.x, remote.x)
    assert local.history["population_loss"] == remote.history["population_loss"]
    assert len(pids) == 4 and all_gone(pids, 60.0)  # close() left no process behind


def test_processes_that_cannot_start_in_time_fail_the_start_clearly(ray_address):
    ev = RayEvaluator(num_workers=1, processes_per_worker=2, startup_timeout=0.05)
    with pytest.raises((TimeoutError, RuntimeError), match="startup_timeout"):
        ev.start()
    ev.close()


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"processes_per_worker": 0}, "processes_per_worker must be an int >= 1"),
        ({"processes_per_worker": 1.5}, "processes_per_worker must be an int >= 1"),
        ({"processes_per_worker": True}, "processes_per_worker must be an int >= 1"),
        ({"processes_per_worker": 2, "device": "cuda"}, "evaluates on the CPU"),
        ({"processes_per_worker": 2, "num_gpus_per_worker": 1}, "evaluates on the CPU"),
    ],
)
def test_bad_processes_per_worker(options, match):
    with pytest.raises(ValueError, match=match):
        RayEvaluator(**options)


def test_processes_per_worker_sets_the_default_cpus_and_comes_from_configs():
    assert RayEvaluator(processes_per_worker=4).num_cpus_per_worker == 4
    assert RayEvaluator(processes_per_worker=4, num_cpus_per_worker=2).num_cpus_per_worker == 2
    assert RayEvaluator().num_cpus_per_worker == 1
    from zoopt.config import ConfigError, validate
    from zoopt.experiment import build_evaluator

    table = {"kind": "ray", "num_workers": 2, "options": {"processes_per_worker": 3}}
    cfg = validate({"objective": {"kind": "function"}, "evaluator": table})
    ev = build_evaluator(cfg)  # built, not started
    assert isinstance(ev, RayEvaluator) and ev.processes_per_worker == 3
    assert ev.num_cpus_per_worker == 3 and ev.num_workers == 2
    table["options"]["processes_per_worker"] = 0
    with pytest.raises(ConfigError, match=r"evaluator.options.processes_per_worker: must be"):
        validate({"objective": {"kind": "function"}, "evaluator": table})
