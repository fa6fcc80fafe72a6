"""A two-node Ray cluster on this machine (Ray's own test cluster), for ``test_ray_cluster.py``.

Run as ``python ray_two_nodes.py SCENARIO``; prints one JSON line. Each scenario starts a
head node and a second node, both on 127.0.0.1 with Ray's token authentication, joins them
with a ``RayEvaluator`` of two workers, and then:

* ``lose_node`` (one CPU per node): rows land on both nodes and the reduction across nodes
  equals the local one; then the second node is removed mid-run (raylet and workers
  killed). No spare capacity is left, so its worker cannot be replaced: the run must go on
  with the survivor and give the undisturbed result;
* ``lose_all``: the head has no CPU, both workers live on the second node, which is
  removed mid-run: the step must stop with ``WorkersLostError``, not hang.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import warnings

import ray
import torch
from ray.cluster_utils import Cluster

import zoopt
from zoopt import GaussianPopulation, Objective
from zoopt.evaluators.ray import RayEvaluator, WorkersLostError
from zoopt.evaluators.ray.session import _loopback_node

#: Ray's node-failure detection, shortened so that a removed node is noticed in ~1.5 s
FAST_HEALTH_CHECK = {
    "health_check_initial_delay_ms": 0,
    "health_check_period_ms": 300,
    "health_check_timeout_ms": 300,
    "health_check_failure_threshold": 3,
}


class SlowSphere(Objective):
    """‖x‖² after ``delay`` seconds per call; reports the Ray node of each call."""

    def __init__(self, delay: float):
        self.delay = delay
        self.calls: list[str] = []

    def evaluate(self, X, seed=0):
        time.sleep(self.delay)
        if ray.is_initialized():
            self.calls.append(ray.get_runtime_context().get_node_id())
        return (X * X).sum(-1)

    def pop_stats(self):
        out, self.calls = self.calls, []
        return out

    def absorb_stats(self, stats):
        self.calls.extend(stats)


def main(scenario: str) -> dict:
    head_cpus = 0 if scenario == "lose_all" else 1
    with _loopback_node(worker_env=True):
        cluster = Cluster(
            initialize_head=True,
            head_node_args={"num_cpus": head_cpus, "_system_config": FAST_HEALTH_CHECK},
        )
        second = cluster.add_node(num_cpus=2 if scenario == "lose_all" else 1)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, logging_level="ERROR", log_to_driver=False)
    out: dict = {"nodes": len([n for n in ray.nodes() if n["Alive"]])}
    ev = RayEvaluator(num_workers=2, chunks_per_worker=2, replace_timeout=3.0)
    try:
        ev.start()
        out["worker_nodes"] = len(set(ev.nodes.values()))
        kw = dict(estimator="es", steps=4, seed=3, population=16, sigma=0.3)
        x0 = torch.full((5,), 0.8)
        if scenario == "lose_node":
            spread = SlowSphere(delay=0.05)
            res = zoopt.minimize(spread, x0, evaluator=ev, **kw)
            out["call_nodes"] = len(set(spread.calls))
            local = zoopt.minimize(SlowSphere(0.0), x0, **kw)
            out["spread_same_x"] = torch.equal(res.x, local.x)
            pop = GaussianPopulation(torch.randn(40), 0.2, 5, 64, True, scale=torch.rand(40) + 0.5)
            c = torch.randn(64)
            f0, s0 = pop.reduce(c, square=True)
            f1, s1 = ev.reduce(pop, c, square=True)
            z = pop.perturbations()
            out["reduce_err"] = float(((f0 - f1).abs() / (c.abs() @ z.abs())).max())
            out["reduce_err2"] = float(((s0 - s1).abs() / (c.abs() @ (z * z + 1))).max())
        objective = SlowSphere(delay=0.4)
        killer: list[threading.Timer] = []

        def kill_second_node(row):
            if row["step"] == 1:  # during the next step
                killer.append(threading.Timer(0.2, cluster.remove_node, (second, False)))
                killer[0].start()

        # long enough after the loss (≥ 6 calls of 0.4 s on the one worker left) that the
        # replacement's replace_timeout of 3 s runs out while the run still polls for it
        kw = dict(kw, steps=8)
        t0 = time.monotonic()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                res = zoopt.minimize(objective, x0, evaluator=ev, callback=kill_second_node, **kw)
                out["finished"] = True
                local = zoopt.minimize(SlowSphere(0.0), x0, **kw)
                out["same_x"] = torch.equal(res.x, local.x)
                out["same_loss"] = res.history["loss"] == local.history["loss"]
            except WorkersLostError as exc:
                out["workers_lost"] = str(exc)
        out["seconds"] = time.monotonic() - t0
        out["restarts"] = ev.restarts
        out["warnings"] = [str(w.message) for w in caught if w.category is RuntimeWarning]
        out["workers_left"] = len(ev.workers)
        return out
    finally:
        ev.close()
        ray.shutdown()
        cluster.shutdown()


if __name__ == "__main__":
    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    print(json.dumps(main(sys.argv[1])), flush=True)
