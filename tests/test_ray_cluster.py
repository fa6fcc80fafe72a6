"""The Ray evaluator on a real two-node cluster on this machine (``ray_two_nodes.py``).

Each scenario runs in a subprocess with a hard timeout, so that a hang fails the test
instead of stalling the suite. Slow (a cluster start each): marked ``slow``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("ray")
pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).with_name("ray_two_nodes.py")

#: far above the scenarios' ~10 s of work: only a hang reaches it
TIMEOUT_S = 400

#: float32 unit roundoff; the reduction's bound is a few of them relative to Σ|cᵢ||zᵢ|
U32 = 2.0**-24


def _run(scenario: str) -> dict:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), scenario],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_rows_on_every_node_reduction_right_and_a_lost_node_loses_nothing():
    out = _run("lose_node")
    assert out["nodes"] == 2 and out["worker_nodes"] == 2
    assert out["call_nodes"] == 2  # rows were evaluated on both nodes
    assert out["spread_same_x"]
    assert out["reduce_err"] < 16 * U32 and out["reduce_err2"] < 16 * U32
    # the second node died mid-run with no spare capacity: its replacement was given up and
    # the survivor re-ran its rows, with the undisturbed result
    assert out["finished"] and out["same_x"] and out["same_loss"]
    assert out["restarts"] == 1 and out["workers_left"] == 1
    assert any("not placed within replace_timeout" in w for w in out["warnings"])


def test_losing_every_worker_stops_with_a_clear_error():
    out = _run("lose_all")
    assert "finished" not in out
    assert "every worker was lost" in out["workers_lost"]
    assert "replace_timeout=3s" in out["workers_lost"]
    assert out["workers_left"] == 0
