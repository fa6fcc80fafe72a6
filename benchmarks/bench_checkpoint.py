"""What periodic checkpoints cost a long run, against the same run without them.

A quickstart-like run (importance-weighted sampling on the 10-D Rosenbrock function, K = 32)
of ``--steps`` steps (default 20,000) is run twice per repeat, interleaved in one process:
with ``output.checkpoint_every = 100`` and with ``checkpoint_every = 0`` (one checkpoint at
the end). The ratio of their wall times is the overhead of checkpointing; the target is at
most 1.1×. On a loaded machine the two runs of a pair see different loads, so the run with
checkpoints also times its own checkpoints (building the state and writing the file): the
ratio wall / (wall − checkpoint time) is the same overhead measured inside one run, and the
times of the first and the last ten checkpoints show whether a checkpoint's cost grows with
the history. The size of the last checkpoint shows the same for the file.

Run: ``python benchmarks/bench_checkpoint.py [--steps 20000] [--repeats 2] [--pairs 1]``
(``--pairs 0``: only the run with checkpoints and its inside measurement).
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


def timed_run(steps: int, every: int) -> tuple[float, int, list[float]]:
    """Wall seconds of one run, the size of its last checkpoint, the seconds of each one."""
    import zoopt.experiment.run as experiment

    spent: list[float] = []
    state, save = experiment._state, experiment.save_checkpoint

    def timed_state(*args, **kwargs):
        t = time.perf_counter()
        out = state(*args, **kwargs)
        spent.append(time.perf_counter() - t)
        return out

    def timed_save(*args, **kwargs):
        t = time.perf_counter()
        out = save(*args, **kwargs)
        spent[-1] += time.perf_counter() - t
        return out

    experiment._state, experiment.save_checkpoint = timed_state, timed_save
    try:
        with tempfile.TemporaryDirectory() as d:
            t0 = time.perf_counter()
            run_experiment(config(steps, every), Path(d) / "run")
            seconds = time.perf_counter() - t0
            size = (Path(d) / "run" / "checkpoint.pt").stat().st_size
    finally:
        experiment._state, experiment.save_checkpoint = state, save
    return seconds, size, spent


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=20_000)
    p.add_argument("--every", type=int, default=100)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--pairs", type=int, default=1, help="0: no run without checkpoints")
    args = p.parse_args()
    torch.set_num_threads(1)
    ratios, inside = [], []
    for r in range(args.repeats):
        order = [0, args.every] if r % 2 == 0 else [args.every, 0]
        if not args.pairs:
            order = [args.every]
        times = {}
        for every in order:
            times[every], size, spent = timed_run(args.steps, every)
            if every:
                wall, ckpt = times[every], sum(spent)
                inside.append(wall / (wall - ckpt))
                first, last = spent[:10], spent[-11:-1]  # the end-of-run one excluded
                print(
                    f"repeat {r + 1}: checkpoint_every={every}: {wall:.2f} s, of which "
                    f"{len(spent)} checkpoints {ckpt:.2f} s (ratio inside the run "
                    f"{inside[-1]:.3f}); median checkpoint at steps 100-1000: "
                    f"{1e3 * statistics.median(first):.2f} ms, at the last ten: "
                    f"{1e3 * statistics.median(last):.2f} ms; last checkpoint {size} bytes"
                )
        if 0 in times:
            ratios.append(times[args.every] / times[0])
            print(f"repeat {r + 1}: without checkpoints {times[0]:.2f} s, ratio {ratios[-1]:.3f}")
    summary = f"{args.steps} steps, checkpoint every {args.every}: "
    if ratios:
        summary += f"median ratio to the run without: {statistics.median(ratios):.3f}; "
    summary += f"median ratio inside the run: {statistics.median(inside):.3f} (target <= 1.10)"
    print(summary)


if __name__ == "__main__":
    main()
