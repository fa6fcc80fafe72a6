"""What periodic checkpoints cost a long run, against the same run without them.

A quickstart-like run (importance-weighted sampling on the 10-D Rosenbrock function, K = 32)
of ``--steps`` steps (default 20,000) is run twice per repeat, interleaved in one process:
with ``output.checkpoint_every = 100`` and with ``checkpoint_every = 0`` (one checkpoint at
the end). The ratio of their wall times is the overhead of checkpointing; the target is at
most 1.1×. The size of the last checkpoint shows whether it grows with the history.

Run: ``python benchmarks/bench_checkpoint.py [--steps 20000] [--repeats 2]``
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from zoopt.config import validate
from zoopt.experiment import run_experiment


def config(steps: int, every: int) -> dict:
    """The quickstart run with ``steps`` steps and a checkpoint every ``every`` steps."""
    return validate(
        {
            "name": "bench-checkpoint",
            "seed": 0,
            "estimator": "sampling",
            "objective": {"kind": "function", "function": "rosenbrock", "dim": 10, "x0": 0.0},
            "estimators": {"sampling": {"sigma": 0.01, "population": 32, "alpha": "auto"}},
            "optimizer": {"name": "adam", "lr": 0.05, "schedule": "cosine"},
            "budget": {"steps": steps},
            "output": {
                "checkpoint_every": every,
                "tensorboard": False,
                "plot": False,
                "progress": "none",
            },
        }
    )


def timed_run(steps: int, every: int) -> tuple[float, int]:
    """Wall seconds of one run and the size in bytes of its last checkpoint."""
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        run_experiment(config(steps, every), Path(d) / "run")
        seconds = time.perf_counter() - t0
        return seconds, (Path(d) / "run" / "checkpoint.pt").stat().st_size


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=20_000)
    p.add_argument("--every", type=int, default=100)
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(1)
    ratios = []
    for r in range(args.repeats):
        order = [0, args.every] if r % 2 == 0 else [args.every, 0]
        times, sizes = {}, {}
        for every in order:
            times[every], sizes[every] = timed_run(args.steps, every)
        ratios.append(times[args.every] / times[0])
        print(
            f"repeat {r + 1}: checkpoint_every={args.every}: {times[args.every]:.2f} s, "
            f"without: {times[0]:.2f} s, ratio {ratios[-1]:.3f}; last checkpoint "
            f"{sizes[args.every]} bytes"
        )
    print(
        f"{args.steps} steps, checkpoint every {args.every}: median ratio "
        f"{statistics.median(ratios):.3f} (target <= 1.10)"
    )


if __name__ == "__main__":
    main()
