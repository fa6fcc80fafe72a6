"""The Ray evaluator: same numbers as the local one, faults, statistics hooks, bad input.

One local Ray instance serves the whole session (``ray_address`` in conftest.py) and one
two-worker evaluator serves this module; the tests that need a Ray of their own (joining by
address, a private instance) run it in a subprocess.
"""

from __future__ import annotations

import json
import logging
import math
import os
import pickle
import subprocess
import sys
import textwrap
import threading
import time

import pytest
import torch

import zoopt
from zoopt import ExplicitPopulation, GaussianPopulation, Objective
from zoopt.evaluators import LocalEvaluator, ObjectiveFactory, make_evaluator
from zoopt.objectives.base import as_objective
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
    simulate,
)

from zoopt.evaluators.ray import ObjectiveError, RayEvaluator  # noqa: E402
from zoopt.evaluators.ray.resources import resolve_resources  # noqa: E402

# the objectives here and in evaluator_objectives live in test modules, which Ray workers cannot
# import: ship them by value, as a user's script run as __main__ is
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
ray.cloudpickle.register_pickle_by_value(evaluator_objectives)


# ---------------------------------------------------------------------------------------
# objectives used by the tests
# ---------------------------------------------------------------------------------------
class PidReporter(Objective):
    """Sphere whose statistics are the id of the process that built it."""

    def __init__(self, scale: float):
        self.scale = scale
        self.built_in = os.getpid()
        self.seen: set[int] = set()

    def evaluate(self, X, seed=0):
        return self.scale * (X * X).sum(-1)

    def pop_stats(self):
        return self.built_in

    def absorb_stats(self, stats):
        self.seen.add(stats)


# ---------------------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def evaluator(ray_address):
    """Two workers of half a CPU each: half the session's 2 CPUs stay free for others."""
    ev = RayEvaluator(num_workers=2, num_cpus_per_worker=0.5)
    ev.start()
    yield ev
    ev.close()


def _same(a: list, b: list) -> bool:
    return len(a) == len(b) and all(
        (math.isnan(x) and math.isnan(y)) or x == y for x, y in zip(a, b, strict=True)
    )


def _parity_cases():
    cases = [("es", {}), ("sampling", {}), ("sampling", {"guided": True})]
    if "cmaes" in zoopt.available_estimators():
        cases.append(("cmaes", {"sigma": 0.5}))
    return cases


# ---------------------------------------------------------------------------------------
# same numbers as the local evaluator
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "options"),
    _parity_cases(),
    ids=lambda v: v if isinstance(v, str) else ",".join(v) or "-",
)
def test_same_losses_and_parameters_as_local(evaluator, name, options):
    x0 = torch.linspace(-1.0, 1.5, 6)
    kw = dict(estimator=name, steps=4, seed=11, population=10, **options)
    local = zoopt.minimize(rastrigin, x0, **kw)
    remote = zoopt.minimize(rastrigin, x0, evaluator=evaluator, **kw)
    assert torch.equal(local.x, remote.x)
    assert torch.equal(local.best_x, remote.best_x)
    for key in ("loss", "population_loss", "best_loss"):
        assert _same(local.history[key], remote.history[key]), key
    assert not torch.equal(remote.x, x0)  # the run moved, so equality means something


@pytest.mark.parametrize(
    ("k", "antithetic"), [(1, False), (2, True), (7, False), (30, True), (30, False)]
)
def test_population_split_into_chunks_equals_whole(evaluator, k, antithetic):
    objective = zoopt.FunctionObjective(rastrigin)
    center = torch.randn(5, dtype=torch.float64, generator=torch.Generator().manual_seed(k))
    pop = GaussianPopulation(center, 0.3, 1234 + k, k, antithetic)
    expected = LocalEvaluator().evaluate(objective, pop, seed=5)
    got = evaluator.evaluate(objective, pop, seed=5)
    assert got.dtype == expected.dtype == torch.float64
    assert torch.equal(got, expected)
    explicit = ExplicitPopulation(pop.materialize())
    assert torch.equal(evaluator.evaluate(objective, explicit, seed=5), expected)


def test_chunks_cover_rows_once_about_one_per_worker_whatever_k():
    ev = RayEvaluator(num_workers=3, chunks_per_worker=2)
    ev.num_workers = 3  # bounds only; no Ray needed
    for k in (2, 6, 10, 26, 100, 10_000):
        bounds = ev._bounds(GaussianPopulation(torch.zeros(2), 1.0, 0, k, antithetic=True))
        assert [a for a, _ in bounds] + [k] == [0] + [b for _, b in bounds]
        assert len(bounds) == min(k, 6)
        sizes = [b - a for a, b in bounds]
        assert max(sizes) - min(sizes) <= 1  # balanced to the row, pairs may be split
    bounds = ev._bounds(ExplicitPopulation(torch.zeros(7, 2)))
    assert len(bounds) == 6 and bounds[-1][1] == 7
    # the reduction: about √K tasks, at most one per evaluation task
    pop = GaussianPopulation(torch.zeros(2), 1.0, 0, 16)
    assert len(ev._reduce_bounds(pop)) == 4
    ev.max_batch = 5  # a memory bound: more, smaller tasks
    bounds = ev._bounds(GaussianPopulation(torch.zeros(2), 1.0, 0, 100, antithetic=True))
    assert max(b - a for a, b in bounds) <= 5 and bounds[-1][1] == 100


def test_calls_carry_several_ranges_about_two_per_worker():
    from zoopt.evaluators.ray.scheduler import calls_per_step

    assert calls_per_step(2, 2) == 1  # one range per worker: one call each
    assert calls_per_step(16, 2) == 4  # 8 ranges per worker: two calls of 4
    assert calls_per_step(512, 2) == 128
    assert calls_per_step(5, 0) == 3  # no worker yet: still at least one range a call


def test_batched_ranges_give_the_same_losses_order_and_statistics(evaluator, tmp_path):
    log = tmp_path / "calls.txt"
    X = torch.randn(30, 3, generator=torch.Generator().manual_seed(1))
    old = evaluator.chunks_per_worker
    try:
        evaluator.chunks_per_worker = 8  # 16 ranges, sent four to a call
        got = evaluator.evaluate(Diverging(str(log)), ExplicitPopulation(X), seed=0)
        driver = RunningMeanObjective(offset=0.5)
        pop = GaussianPopulation(torch.ones(4), 0.5, 99, 30)
        losses = evaluator.evaluate(driver, pop, seed=3)
    finally:
        evaluator.chunks_per_worker = old
    assert torch.equal(got, simulate(X))  # in row order
    sizes = sorted(int(line.split()[0]) for line in log.read_text().splitlines())
    assert sizes == [1] * 2 + [2] * 14  # each range still one objective call of its own rows
    reference = LocalEvaluator().evaluate(RunningMeanObjective(offset=0.5), pop, seed=3)
    assert torch.equal(losses, reference)
    assert driver.count == 30 and torch.allclose(driver.total, pop.materialize().sum(0))


def test_worker_killed_while_holding_a_batch_of_ranges_changes_nothing(evaluator):
    objective = SlowRastrigin(delay=0.15)
    pop = GaussianPopulation(torch.full((4,), 0.7), 0.2, 5, 12)
    old = evaluator.chunks_per_worker
    try:
        evaluator.chunks_per_worker = 3  # 6 ranges: calls of 2, two per worker
        undisturbed = evaluator.evaluate(objective, pop, seed=4)
        victim, restarts = evaluator.workers[0], evaluator.restarts
        killer = threading.Timer(0.2, ray.kill, (victim,))  # during its first call
        killer.start()
        disturbed = evaluator.evaluate(objective, pop, seed=4)
        killer.join()
    finally:
        evaluator.chunks_per_worker = old
    assert evaluator.restarts == restarts + 1
    assert victim not in evaluator.workers
    assert torch.equal(disturbed, undisturbed)
    assert torch.equal(undisturbed, LocalEvaluator().evaluate(objective, pop, seed=4))


def test_payload_travels_inline_or_by_reference_and_the_objective_once(evaluator):
    from zoopt.evaluators.ray.worker import INLINE_PAYLOAD_BYTES

    objective = zoopt.FunctionObjective(rastrigin)
    for d in (5, INLINE_PAYLOAD_BYTES // 4 + 100):  # small: inline; large: a reference
        pop = GaussianPopulation(torch.randn(d), 0.3, 3, 6)
        payload = evaluator._payload(objective, pop, 1)
        assert isinstance(payload[1], bytes) == (d == 5)
        expected = LocalEvaluator().evaluate(objective, pop, seed=1)
        assert torch.equal(evaluator.evaluate(objective, pop, seed=1), expected)
    # the workers hold this objective now: the next step's boxes do not carry it again
    actor = evaluator.workers[0]
    step, packed, objective_box = evaluator._box(actor, evaluator._payload(objective, pop, 2))
    assert objective_box is None and step == evaluator._steps
    other = zoopt.FunctionObjective(rastrigin)
    assert evaluator._box(actor, evaluator._payload(other, pop, 2))[2][0] == evaluator._token
    del evaluator._built[actor]  # nothing was sent: the worker does not hold it


def test_relay_plan_gives_every_range_once_in_groups_of_about_sqrt_w():
    from zoopt.evaluators.ray.scheduler import relay_plan

    for w, k in [(2, 2), (2, 7), (16, 16), (64, 256), (64, 10), (1440, 1440)]:
        workers = list(range(w))
        tasks = [(i, i + 1) for i in range(k)]
        plan = relay_plan(workers, tasks)
        assert len(plan) == math.isqrt(min(w, k))  # the driver's calls
        seen = [r for _, own, children in plan for r in own + [x for _, rs in children for x in rs]]
        assert seen == tasks  # row order, each range once
        members = [head for head, _, _ in plan] + [c for _, _, ch in plan for c, _ in ch]
        assert len(set(members)) == len(members) == min(w, k)  # one call per worker
        assert max(len(ch) for _, _, ch in plan) <= 2 * math.isqrt(min(w, k))


def _await_replacements(ev: RayEvaluator, timeout: float = 120.0) -> None:
    """Wait until the replacements of workers killed by earlier tests have joined."""
    deadline = time.monotonic() + timeout
    while ev._pool.starting and time.monotonic() < deadline:
        ev._pool.poll()
        time.sleep(0.1)
    assert len(ev.workers) == ev.num_workers


@pytest.fixture
def relayed(evaluator):
    """The module's evaluator relaying every Gaussian step through one head worker."""
    old = evaluator.relay_from
    evaluator.relay_from = 2
    yield evaluator
    evaluator.relay_from = old


def test_relayed_steps_equal_local_ones(relayed):
    x0 = torch.linspace(-1.0, 1.5, 6)
    kw = dict(estimator="es", steps=3, seed=11, population=10)
    local = zoopt.minimize(rastrigin, x0, **kw)
    remote = zoopt.minimize(rastrigin, x0, evaluator=relayed, **kw)
    assert torch.equal(local.x, remote.x) and not torch.equal(remote.x, x0)
    assert _same(local.history["population_loss"], remote.history["population_loss"])
    driver = RunningMeanObjective(offset=1.5)  # statistics merged in row order
    pop = GaussianPopulation(torch.ones(4), 0.5, 9, 12)
    assert torch.equal(
        relayed.evaluate(driver, pop, seed=3), (pop.materialize() ** 2).sum(-1) + 1.5
    )
    assert driver.count == 12


@pytest.mark.parametrize("victim", ["head", "child"])
def test_worker_killed_in_a_relayed_step_changes_nothing(relayed, victim):
    objective = SlowRastrigin(delay=0.3)
    pop = GaussianPopulation(torch.full((4,), 0.7), 0.2, 5, 8)
    _await_replacements(relayed)  # an earlier test's kill: both workers in the tree
    undisturbed = relayed.evaluate(objective, pop, seed=4)
    head, child = relayed.workers[:2]  # relay_plan: the first worker heads the group
    target, restarts = (head if victim == "head" else child), relayed.restarts
    killer = threading.Timer(0.15, ray.kill, (target,))
    killer.start()
    disturbed = relayed.evaluate(objective, pop, seed=4)
    killer.join()
    assert relayed.restarts == restarts + 1 and target not in relayed.workers
    assert torch.equal(disturbed, undisturbed)
    assert torch.equal(undisturbed, LocalEvaluator().evaluate(objective, pop, seed=4))
    assert torch.equal(relayed.evaluate(objective, pop, seed=4), undisturbed)  # and after


class ThreeRowsFail(Objective):
    """Sphere that raises on any call of exactly three rows."""

    def evaluate(self, X, seed=0):
        if len(X) == 3:
            raise ValueError("three rows")
        return (X * X).sum(-1)


def test_objective_error_on_a_relayed_child_names_its_rows(relayed):
    pop = GaussianPopulation(torch.zeros(3), 1.0, 0, 7)  # head rows 0:4, child rows 4:7
    restarts = relayed.restarts
    with pytest.raises(ObjectiveError, match="three rows") as info:
        relayed.evaluate(ThreeRowsFail(), pop, 0)
    assert info.value.rows == (4, 7) and "candidates 4..6" in str(info.value)
    assert relayed.restarts == restarts  # not retried, nobody replaced
    ok = GaussianPopulation(torch.zeros(3), 1.0, 0, 8)
    assert torch.equal(relayed.evaluate(ThreeRowsFail(), ok, 0), (ok.materialize() ** 2).sum(-1))


# ---------------------------------------------------------------------------------------
# the reduction over the population, on the workers
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("scale", ["none", "diagonal", "full"])
@pytest.mark.parametrize("antithetic", [True, False])
def test_reduce_on_workers_equals_local_to_float_tolerance(evaluator, scale, antithetic):
    pop, c = reduce_case(scale, antithetic)
    r_first, r_second = evaluator.reduce(pop, c, square=True)
    assert_reduced_like_local(pop, c, (r_first, r_second))
    assert evaluator.reduce(pop, c)[1] is None
    # whichever worker sums which rows, the driver adds the parts in row order: exact repeat
    assert torch.equal(evaluator.reduce(pop, c, square=True)[0], r_first)
    with pytest.raises(ValueError, match=r"coeffs must have shape \(42,\)"):
        evaluator.reduce(pop, c[:5])


def test_reducer_switched_on_above_the_threshold(evaluator):
    objective = as_objective(rastrigin)
    small = GaussianPopulation(torch.zeros(8), 0.1, 1, 10)
    evaluator.evaluate(objective, small, seed=1)
    assert small.reducer is None  # K·D = 80 < reduce_threshold: the driver regenerates z
    old = evaluator.reduce_threshold
    try:
        evaluator.reduce_threshold = 80
        evaluator.evaluate(objective, small, seed=1)
        assert small.reducer == evaluator.reduce
        # an estimate through the workers' reduction: the same step to float tolerance
        x0 = torch.linspace(-1.0, 1.5, 8)
        kw = dict(estimator="es", steps=3, seed=2, population=12, shaping="centered_ranks")
        local = zoopt.minimize(rastrigin, x0, **kw)
        remote = zoopt.minimize(rastrigin, x0, evaluator=evaluator, **kw)
        assert torch.allclose(remote.x, local.x, rtol=0, atol=1e-5)
        assert not torch.equal(remote.x, x0)
    finally:
        evaluator.reduce_threshold = old


def test_options_safe_from_files_exclude_code_running_ones():
    from zoopt.evaluators.ray import FILE_SAFE_OPTIONS, OPTIONS

    assert set(FILE_SAFE_OPTIONS) < set(OPTIONS)
    assert "runtime_env" not in FILE_SAFE_OPTIONS
    assert "ray_init_options" not in FILE_SAFE_OPTIONS
    assert {"num_workers", "address", "replace_timeout"} <= set(FILE_SAFE_OPTIONS)
    # what a config file may set is a subset of them
    from zoopt.config import RAY_OPTIONS_SCHEMA

    assert set(RAY_OPTIONS_SCHEMA) <= set(FILE_SAFE_OPTIONS)


# ---------------------------------------------------------------------------------------
# statistics hooks and objective factories
# ---------------------------------------------------------------------------------------
def test_shared_state_reaches_workers_and_stats_come_back(evaluator):
    driver = RunningMeanObjective(offset=2.5)
    pop = GaussianPopulation(torch.ones(4), 0.5, 99, 12)
    losses = evaluator.evaluate(driver, pop, seed=3)
    X = pop.materialize()
    assert torch.equal(losses, (X * X).sum(-1) + 2.5)  # workers used the driver's offset
    assert driver.count == 12  # every worker's rows were absorbed exactly once
    assert torch.allclose(driver.total, X.sum(0))
    driver.offset = -1.0  # the next step's shared state is sent again
    assert torch.equal(evaluator.evaluate(driver, pop, seed=3), (X * X).sum(-1) - 1.0)
    assert driver.count == 24


def test_objective_factory_builds_on_each_worker(evaluator):
    factory = ObjectiveFactory(PidReporter, scale=3.0)
    blob = pickle.dumps(factory)
    clone = pickle.loads(blob)
    assert not clone.is_built and clone.kwargs == {"scale": 3.0}
    pop = GaussianPopulation(torch.ones(3), 0.1, 7, 8)
    losses = evaluator.evaluate(factory, pop, seed=0)
    assert torch.equal(losses, 3.0 * (pop.materialize() ** 2).sum(-1))
    worker_pids = {ray.get(w.ready.remote()) for w in evaluator.workers}
    assert factory.build().seen == worker_pids  # built once in each worker process
    assert os.getpid() not in factory.build().seen
    # the driver's built copy does not travel: pickling still sends the recipe alone
    assert len(pickle.dumps(factory)) == len(blob)
    local = zoopt.minimize(
        ObjectiveFactory(PidReporter, 3.0),
        torch.ones(3),
        estimator="es",
        steps=2,
        population=4,
        seed=1,
    )
    remote = zoopt.minimize(
        factory, torch.ones(3), estimator="es", steps=2, population=4, seed=1, evaluator=evaluator
    )
    assert torch.equal(local.x, remote.x)


def test_objective_factory_rejects_non_callable():
    with pytest.raises(TypeError, match="fn must be a callable"):
        ObjectiveFactory(42)


# ---------------------------------------------------------------------------------------
# faults
# ---------------------------------------------------------------------------------------
def test_worker_killed_mid_step_is_replaced_and_run_is_unchanged(evaluator):
    objective = SlowRastrigin(delay=0.2)
    kw = dict(estimator="es", steps=3, seed=5, population=8, sigma=0.2)
    undisturbed = zoopt.minimize(objective, torch.full((4,), 0.7), evaluator=evaluator, **kw)
    victim = evaluator.workers[0]
    restarts = evaluator.restarts
    killer: list[threading.Timer] = []

    def kill_during_next_step(row):
        if row["step"] == 1:  # step 2's first call (the centre) goes to worker 0
            killer.append(threading.Timer(0.1, ray.kill, (victim,)))
            killer[0].start()

    disturbed = zoopt.minimize(
        objective, torch.full((4,), 0.7), evaluator=evaluator, callback=kill_during_next_step, **kw
    )
    killer[0].join()
    assert evaluator.restarts == restarts + 1
    assert torch.equal(disturbed.x, undisturbed.x)
    assert _same(disturbed.history["loss"], undisturbed.history["loss"])
    assert _same(disturbed.history["population_loss"], undisturbed.history["population_loss"])


def test_objective_exception_names_rows_and_is_not_retried(evaluator, tmp_path):
    log = tmp_path / "calls.txt"
    X = torch.zeros(8, 3)
    X[5, 1] = 1e6  # candidate 5 makes the simulator fail
    restarts = evaluator.restarts
    with pytest.raises(ObjectiveError) as info:
        evaluator.evaluate(Diverging(str(log)), ExplicitPopulation(X), seed=0)
    err = info.value
    assert err.rows == (4, 8) and err.error_type == "ValueError"
    message = str(err)
    assert "candidates 4..7" in message and "simulator diverged" in message
    assert "simulate" in err.worker_traceback and "Traceback" in message
    assert evaluator.restarts == restarts  # the worker was not replaced
    # the pool still works afterwards (both workers take a chunk, so both have finished
    # whatever they were doing before)
    ok = evaluator.evaluate(Diverging(str(log)), ExplicitPopulation(X[:4]), seed=0)
    assert torch.equal(ok, torch.zeros(4))
    calls = log.read_text().split("\n")[:-1]
    assert sorted(calls) == ["2 0", "2 0", "4 0", "4 1000000"]  # the failure was not retried


def test_local_objective_exception_keeps_its_type_and_names_the_rows():
    X = torch.zeros(8, 3)
    X[5, 1] = 1e6
    with pytest.raises(ValueError, match="simulator diverged") as info:
        LocalEvaluator(max_batch=4).evaluate(as_objective(simulate), ExplicitPopulation(X), 0)
    # (a note before it reminds that a batched f receives (K, D))
    assert info.value.__notes__[-1] == "raised while evaluating candidates 4..7 (rows 4:8)"
    with pytest.raises(ValueError, match="max_batch must be a positive int"):
        LocalEvaluator(max_batch=True)


# ---------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [0, -2, 1.5, "2", True])
def test_num_workers_must_be_positive_int(bad):
    with pytest.raises(ValueError, match="num_workers must be a positive int"):
        RayEvaluator(num_workers=bad)


def test_unknown_options_are_named():
    with pytest.raises(TypeError, match=r"unknown option\(s\) \['num_worker'\].*num_workers"):
        make_evaluator("ray", num_worker=2)


@pytest.mark.parametrize(
    ("option", "value", "match"),
    [
        ("num_cpus_per_worker", 0, "num_cpus_per_worker must be a number > 0"),
        ("num_gpus_per_worker", -1, "num_gpus_per_worker must be a number >= 0"),
        ("chunks_per_worker", 0, "chunks_per_worker must be an int >= 1"),
        ("max_retries", -1, "max_retries must be an int >= 0"),
        ("address", "", "address must be None"),
        ("max_batch", 0, "max_batch must be a positive int"),
        ("device", "gpu:x", "device must be a torch device"),
        ("replace_timeout", 0, "replace_timeout must be a number > 0"),
        ("reduce_threshold", float("nan"), "reduce_threshold must be a number >= 0"),
    ],
)
def test_bad_options(option, value, match):
    with pytest.raises(ValueError, match=match):
        RayEvaluator(**{option: value})


def test_more_workers_than_cluster_cpus_is_refused(ray_address):
    ev = RayEvaluator(num_workers=5, num_cpus_per_worker=1)
    with pytest.raises(ValueError, match=r"needs 5 CPUs but the Ray cluster has 2"):
        ev.start()
    ev.close()
    assert ray.is_initialized()  # the session's Ray is untouched


def test_gpus_are_checked_against_the_cluster(ray_address):
    if ray.cluster_resources().get("GPU", 0) > 0:
        pytest.skip("the test cluster has GPUs")
    ev = RayEvaluator(num_workers=1, num_gpus_per_worker=1)
    with pytest.raises(ValueError, match=r"needs 1 GPUs but the Ray cluster has 0"):
        ev.start()
    # device="cuda" asks for a GPU and falls back to the CPU
    with pytest.warns(UserWarning, match="no GPUs"):
        res = resolve_resources(ray.cluster_resources(), 1, 1, None, "cuda")
    assert res.device == "cpu" and res.num_gpus_per_worker == 0


def test_closed_evaluator_refuses_work(ray_address):
    ev = RayEvaluator(num_workers=1)
    ev.close()
    with pytest.raises(RuntimeError, match="closed"):
        ev.evaluate(zoopt.FunctionObjective(rastrigin), ExplicitPopulation(torch.zeros(1, 2)), 0)


# ---------------------------------------------------------------------------------------
# joining a running instance; a private instance; nothing left behind
# ---------------------------------------------------------------------------------------
_CHILD = textwrap.dedent(
    r"""
    import json, os, socket, struct, sys, time
    import torch, ray, zoopt
    from zoopt.evaluators.ray import RayEvaluator
    from zoopt.objectives.functions import sphere

    def listening_addresses(root):
        # every TCP socket in LISTEN state owned by `root` or its descendants
        kids = {}
        for p in os.listdir("/proc"):
            if p.isdigit():
                try:
                    ppid = int(open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[1])
                except OSError:
                    continue
                kids.setdefault(ppid, []).append(int(p))
        pids, todo = set(), [root]
        while todo:
            p = todo.pop()
            pids.add(p)
            todo += kids.get(p, [])
        inodes = set()
        for p in pids:
            try:
                for fd in os.listdir(f"/proc/{p}/fd"):
                    link = os.readlink(f"/proc/{p}/fd/{fd}")
                    if link.startswith("socket:["):
                        inodes.add(link[8:-1])
            except OSError:
                pass
        out = []
        for name, fam in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
            for line in open(f"/proc/net/{name}").read().splitlines()[1:]:
                f = line.split()
                if f[3] != "0A" or f[9] not in inodes:
                    continue
                raw = bytes.fromhex(f[1].split(":")[0])
                raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
                out.append(socket.inet_ntop(fam, raw))
        return out, pids

    report = {}
    # 1. no address: a private instance, quiet, on loopback, token auth on, gone after the run
    seen = {}
    def watch(row):
        if row["step"] == 1:
            seen["listen"], seen["pids"] = listening_addresses(os.getpid())
            seen["node_ip"] = ray.util.get_node_ip_address()
            mode = ray._raylet.get_authentication_mode()
            seen["auth"] = "TOKEN" if mode == ray._raylet.AuthenticationMode.TOKEN else str(mode)
    r = zoopt.minimize(sphere, torch.ones(3), estimator="es", steps=2, population=4,
                       evaluator="ray", callback=watch)
    report["private_initialized_after"] = ray.is_initialized()
    report.update(seen)
    report["pids"] = sorted(seen["pids"] - {os.getpid()})
    report["loss"] = r.loss
    # 2. join the test session's instance by address, run, close: it must stay up
    ev = RayEvaluator(num_workers=1, num_cpus_per_worker=0.5, address=sys.argv[1])
    zoopt.minimize(sphere, torch.ones(3), estimator="es", steps=2, population=4, evaluator=ev)
    report["joined_pid"] = ray.get(ev.workers[0].ready.remote())
    ev.close()
    report["joined_connected_after_close"] = ray.is_initialized()
    print(json.dumps(report))
    """
)

_LOOPBACK = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_join_by_address_and_private_instance_leave_nothing_behind(ray_address):
    # as in a fresh shell: Ray itself decides to turn token authentication on
    env = {k: v for k, v in os.environ.items() if k != "RAY_AUTH_MODE"}
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, ray_address],
        capture_output=True,
        text=True,
        timeout=150,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # Ray printed nothing: no banner, no auth or metrics notices
    report = json.loads(proc.stdout)
    # joining: the evaluator disconnected, the session's instance still serves
    assert report["joined_connected_after_close"] is False
    assert ray.get(ray.put(41)) == 41 and ray.cluster_resources().get("CPU") == 2
    assert all_gone([report["joined_pid"]])  # its worker went with it
    # the private instance listened on loopback only and left no process behind
    assert report["auth"] == "TOKEN"  # Ray's default for a new instance, kept
    assert report["node_ip"] == "127.0.0.1"
    assert report["listen"] and set(report["listen"]) <= _LOOPBACK, report["listen"]
    assert report["private_initialized_after"] is False
    assert math.isfinite(report["loss"])
    assert len(report["pids"]) >= 4  # GCS, raylet, agents, workers were seen...
    assert all_gone(report["pids"])  # ...and are all gone


def test_only_the_token_auth_enabled_notice_is_hidden():
    from zoopt.evaluators.ray import _DropTokenAuthNotice

    def record(message):
        return logging.LogRecord("ray", logging.WARNING, __file__, 1, message, None, None)

    drop = _DropTokenAuthNotice()
    assert not drop.filter(record("Token authentication is enabled for this Ray cluster."))
    assert drop.filter(record("Token authentication is disabled for this Ray cluster."))


def test_objective_factory_is_a_transparent_proxy(tmp_path):
    factory = ObjectiveFactory(Diverging, str(tmp_path / "log.txt"))
    assert not factory.is_built
    assert factory.log_path.endswith("log.txt")  # delegated, builds on first use
    assert factory.is_built
    clone = pickle.loads(pickle.dumps(factory))
    assert not clone.is_built and clone.args == factory.args
    with pytest.raises(AttributeError):
        factory.no_such_attribute  # noqa: B018
