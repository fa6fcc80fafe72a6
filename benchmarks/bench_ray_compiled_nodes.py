"""Ray's compiled graphs across two Ray nodes on this machine, and a worker process killed.

A head node and a second node (Ray's own test cluster, both on 127.0.0.1), two actors on
each. Prints, for blocks of 30 steps (``(θ (1,000,) float32, seed)`` to every actor, a node id
and the seed back), the wall and driver CPU per step of a compiled graph over the 4 actors
and of ordinary calls to 4 other actors placed alike, interleaved; then kills the process
of an actor on the second node (``SIGKILL``) during an execution and prints what the driver
sees and when, the next ``execute``, the teardown, whether the survivors answer ordinary
calls, and a rebuild of the graph without the dead actor. See ``docs/ray_scaling.md``.

Run: ``python benchmarks/bench_ray_compiled_nodes.py [--blocks 3]``
"""

from __future__ import annotations

import argparse
import os
import signal
import time

import numpy as np
import ray
from ray.cluster_utils import Cluster
from ray.dag import InputNode, MultiOutputNode

from zoopt.evaluators.ray.session import _loopback_node

TIMEOUT_S = 60.0


class NodeWorker:
    """Returns its Ray node id and the step's seed, after ``sleep`` seconds."""

    def step(self, task):
        _, seed, sleep = task
        if sleep:
            time.sleep(sleep)
        return ray.get_runtime_context().get_node_id()[:8], seed

    def pid(self) -> int:
        return os.getpid()


def graph(actors: list):
    with InputNode() as inp:
        dag = MultiOutputNode([a.step.bind(inp) for a in actors])
    return dag.experimental_compile()


def per_step(run, steps: int = 30) -> tuple[float, float]:
    """(wall, driver CPU) seconds per step of ``run(seed)``."""
    t0, c0 = time.perf_counter(), time.process_time()
    for s in range(steps):
        run(s)
    return (time.perf_counter() - t0) / steps, (time.process_time() - c0) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--blocks", type=int, default=3)
    args = parser.parse_args()
    with _loopback_node(worker_env=True):
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
        cluster.add_node(num_cpus=1, resources={"second": 1})
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, logging_level="ERROR", log_to_driver=False)
    try:
        actor = ray.remote(num_cpus=0, max_restarts=0)(NodeWorker)

        def four() -> list:
            on_second = actor.options(resources={"second": 0.1})
            return [actor.remote(), actor.remote(), on_second.remote(), on_second.remote()]

        compiled, plain = four(), four()
        pids = ray.get([a.pid.remote() for a in compiled + plain])
        theta = np.zeros(1_000, dtype=np.float32)
        t0 = time.perf_counter()
        g = graph(compiled)
        print(f"compiled over 2 nodes in {time.perf_counter() - t0:.2f} s")
        for block in range(args.blocks):
            out = ray.get(g.execute((theta, -1, 0.0)), timeout=TIMEOUT_S)
            nodes = len({node for node, _ in out})
            cw, cc = per_step(lambda s: ray.get(g.execute((theta, s, 0.0)), timeout=TIMEOUT_S))
            pw, pc = per_step(lambda s: ray.get([a.step.remote((theta, s, 0.0)) for a in plain]))
            print(
                f"block {block}: {nodes} nodes; compiled {1e3 * cw:.2f} ms wall, "
                f"{1e3 * cc:.2f} ms driver CPU per step; ordinary calls {1e3 * pw:.2f} ms wall, "
                f"{1e3 * pc:.2f} ms driver CPU"
            )
        ref = g.execute((theta, 0, 1.0))
        time.sleep(0.3)
        t0 = time.perf_counter()
        os.kill(pids[3], signal.SIGKILL)  # an actor on the second node
        try:
            ray.get(ref, timeout=TIMEOUT_S)
            seen = "no error"
        except Exception as exc:
            seen = type(exc).__name__
        print(f"actor process killed mid-execution: {seen} after {time.perf_counter() - t0:.2f} s")
        t0 = time.perf_counter()
        try:
            ray.get(g.execute((theta, 1, 0.0)), timeout=TIMEOUT_S)
            seen = "no error"
        except Exception as exc:
            seen = type(exc).__name__
        print(f"next execute: {seen} after {time.perf_counter() - t0:.2f} s")
        t0 = time.perf_counter()
        g.teardown()
        print(f"teardown {time.perf_counter() - t0:.2f} s")
        alive = []
        for a in compiled:
            try:
                ray.get(a.pid.remote(), timeout=TIMEOUT_S)
                alive.append("alive")
            except Exception as exc:
                alive.append(type(exc).__name__)
        print(f"ordinary calls to the graph's actors afterwards: {alive}")
        t0 = time.perf_counter()
        g = graph(compiled[:3])
        out = ray.get(g.execute((theta, 2, 0.0)), timeout=TIMEOUT_S)
        took = time.perf_counter() - t0
        print(f"rebuilt without the dead actor: {len(out)} results in {took:.2f} s")
        g.teardown()
    finally:
        ray.shutdown()
        cluster.shutdown()


if __name__ == "__main__":
    main()
