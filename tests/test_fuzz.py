"""Fuzzing the command line with malformed configs and damaged checkpoints.

Generated cases (Hypothesis, derandomised so CI sees the same ones): configs with a key set
to a wrong type, NaN/Inf, a huge or negative number, unicode, a nested table or an unknown
key, given in the file or through ``--set``; checkpoints truncated, overwritten with random
bytes, replaced by pickle payloads, or with one entry of the state replaced by a value of
another type, dtype or shape. Every case runs ``zoopt.cli.main`` in this process and must
end with exit 0 (the input was valid after all) or exit 2 and one ``zoopt: error:`` line
naming the key or the file: never a traceback, never a side effect. The counts of cases
tried and handled are printed (``pytest -s``); ``ZOOPT_FUZZ_EXAMPLES=N`` sets the number of
cases per test (default 120).
"""

from __future__ import annotations

import copy
import io
import math
import os
import pickle
import shutil
from pathlib import Path

import pytest
import torch

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import zoopt.resources  # noqa: E402
from zoopt.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from zoopt.cli import main  # noqa: E402
from zoopt.config import dumps_toml  # noqa: E402

SETTINGS = settings(
    max_examples=int(os.environ.get("ZOOPT_FUZZ_EXAMPLES", "120")),
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
    database=None,
)
COUNTS: dict[str, list[int]] = {"configs": [0, 0], "checkpoints": [0, 0]}

BASE = {
    "seed": 1,
    "estimator": "sampling",
    "objective": {"kind": "function", "function": "sphere", "dim": 3, "x0": 0.5},
    "estimators": {"sampling": {"population": 6, "sigma": 0.1}, "es": {"population": 6}},
    "optimizer": {"name": "adam", "lr": 0.05},
    "budget": {"steps": 2},
    "evaluator": {"kind": "local"},
    "output": {"checkpoint_every": 1},
    "compare": {"seeds": [0]},
}
QUIET = ["output.plot=false", "output.tensorboard=false", "output.progress='none'"]

#: keys the fuzzer sets; budget values stay small (a valid case runs), Ray is not started
KEYS = [
    "seed",
    "estimator",
    "name",
    "objective",
    "objective.kind",
    "objective.function",
    "objective.dim",
    "objective.x0",
    "objective.hidden",
    "objective.env",
    "estimators",
    "estimators.sampling",
    "estimators.sampling.population",
    "estimators.sampling.sigma",
    "estimators.sampling.alpha",
    "estimators.es.antithetic",
    "estimators.nosuch",
    "estimators.cmaes.options",
    "optimizer",
    "optimizer.name",
    "optimizer.lr",
    "optimizer.options",
    "optimizer.schedule",
    "optimizer.max_grad_norm",
    "budget",
    "budget.max_evaluations",
    "evaluator",
    "evaluator.device",
    "evaluator.max_batch",
    "evaluator.options",
    "evaluator.options.runtime_env",
    "evaluator.num_workers",
    "output.checkpoint_every",
    "output.progress_every",
    "output.progress",
    "compare",
    "compare.seeds",
    "unknown_top",
    "objective.unknown",
    "ünïcödé.κλειδί",
]

scalars = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.sampled_from([0, -1, 2**31, 10**9, 10**18, 2**62]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -0.0, 5e-324]),
    st.booleans(),
    st.text(max_size=20),
    st.sampled_from(["", "cuda:99", "meta", "sampling", "ray", "nosuch:Env-v0", "\x00", "💥"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


def _set(cfg: dict, dotted: str, value) -> None:
    node = cfg
    *parents, last = dotted.split(".")
    for p in parents:
        if not isinstance(node.get(p), dict):
            node[p] = {}
        node = node[p]
    node[last] = value


def _runs_long(key: str, value) -> bool:
    """A valid value that would start Ray or run long: not what this test is about."""
    if value == "ray" or (isinstance(value, dict) and value.get("kind") == "ray"):
        return True
    if key in ("budget", "budget.max_evaluations"):
        return True
    return False


def _toml_scalar(value) -> str:
    text = dumps_toml({"v": value})
    return text.strip().partition("=")[2].strip()


def _outcome(rc: int, err: str, names: list[str]) -> str | None:
    """None when the outcome is acceptable, else what was wrong."""
    if "Traceback" in err:
        return "traceback"
    if rc == 0:
        return None
    if rc != 2:
        return f"exit {rc}"
    lines = [line for line in err.splitlines() if line.startswith("zoopt: error:")]
    if len(lines) != 1:
        return f"{len(lines)} error lines"
    if not any(n in lines[0] for n in names):
        return f"names none of {names}: {lines[0][:200]}"
    return None


@pytest.fixture
def small_machine(monkeypatch):
    """Pretend 256 MiB are free, so that an oversized valid config is refused, not run."""
    monkeypatch.setattr(zoopt.resources, "available_memory", lambda: 256 * 2**20)


@SETTINGS
@given(key=st.sampled_from(KEYS), value=values, via_set=st.booleans())
def test_malformed_configs_are_refused_by_key(
    tmp_path_factory, capsys, small_machine, key, value, via_set
):
    hypothesis.assume(not _runs_long(key, value))
    tmp = tmp_path_factory.mktemp("cfg")
    cfg = copy.deepcopy(BASE)
    argv = ["run", str(tmp / "c.toml"), "--out", str(tmp / "run")]
    for q in QUIET:
        argv += ["--set", q]
    if via_set:
        argv += ["--set", f"{key}={_toml_scalar(value)}"]
    else:
        _set(cfg, key, value)
    (tmp / "c.toml").write_text(dumps_toml(cfg), encoding="utf-8")
    COUNTS["configs"][0] += 1
    rc = main(argv)
    err = capsys.readouterr().err
    parts = key.split(".")
    names = [".".join(parts[: i + 1]) for i in range(len(parts))] + ["c.toml", "--set"]
    problem = _outcome(rc, err, names)
    assert problem is None, (key, value, via_set, problem, err)
    COUNTS["configs"][1] += 1
    shutil.rmtree(tmp, ignore_errors=True)


# -- checkpoints --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def run_template(tmp_path_factory) -> Path:
    """A run directory checkpointed after 2 of 4 steps."""
    from zoopt.config import validate
    from zoopt.experiment import run_experiment

    cfg = validate({**copy.deepcopy(BASE), "budget": {"steps": 4}})
    cfg["output"].update(plot=False, tensorboard=False, progress="none")
    run_dir = tmp_path_factory.mktemp("template") / "run"
    run_experiment(cfg, run_dir, until=2)
    return run_dir


class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _paths(node, prefix=()):
    """Every path into a nested checkpoint state."""
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(node, (list, tuple)):
        for i, v in enumerate(node):
            yield from _paths(v, (*prefix, i))


def _replace(node, path, value):
    for p in path[:-1]:
        node = node[p]
    if isinstance(node, tuple):
        return
    node[path[-1]] = value


tensor_values = st.one_of(
    st.sampled_from(
        [
            torch.zeros(1),
            torch.zeros(5, dtype=torch.float64),
            torch.zeros(3, dtype=torch.int64),
            torch.ones(3, dtype=torch.bool),
            torch.zeros(3, dtype=torch.complex128),
            torch.full((3,), math.nan, dtype=torch.float64),
            torch.zeros(3, 3, dtype=torch.float64),
            torch.zeros(0),
        ]
    ),
)
damage = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0, 0.999)),
    st.tuples(st.just("random"), st.binary(min_size=0, max_size=256)),
    st.tuples(st.just("flip"), st.integers(0, 10**6)),
    st.tuples(st.just("pickle"), st.booleans()),
    st.tuples(st.just("entry"), st.tuples(st.integers(0, 10**6), st.one_of(values, tensor_values))),
    st.tuples(st.just("drop"), st.integers(0, 10**6)),
)


@SETTINGS
@given(case=damage)
def test_damaged_checkpoints_are_refused_by_file(tmp_path_factory, capsys, run_template, case):
    kind, arg = case
    run_dir = tmp_path_factory.mktemp("ck") / "run"
    shutil.copytree(run_template, run_dir)
    path = run_dir / "checkpoint.pt"
    marker = run_dir.parent / "MARKER"
    data = path.read_bytes()
    if kind == "truncate":
        path.write_bytes(data[: int(arg * len(data))])
    elif kind == "random":
        path.write_bytes(arg)
    elif kind == "flip":
        i = arg % len(data)
        path.write_bytes(data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1 :])
    elif kind == "pickle":
        buf = io.BytesIO()
        torch.save({"format": "zoopt-checkpoint", "version": 1, "state": _Payload(marker)}, buf)
        path.write_bytes(buf.getvalue() if arg else pickle.dumps(_Payload(marker)))
    else:
        state = load_checkpoint(path)
        paths = [p for p in _paths(state) if p]
        target = paths[(arg[0] if kind == "entry" else arg) % len(paths)]
        if kind == "entry":
            _replace(state, target, arg[1])
        else:
            node = state
            for p in target[:-1]:
                node = node[p]
            if isinstance(node, tuple):
                return
            del node[target[-1]]
        save_checkpoint(path, state)
    COUNTS["checkpoints"][0] += 1
    rc = main(["resume", str(run_dir)])
    err = capsys.readouterr().err
    problem = _outcome(rc, err, ["checkpoint.pt", "metrics.jsonl"])
    assert problem is None, (case, problem, err)
    assert not marker.exists()
    COUNTS["checkpoints"][1] += 1
    shutil.rmtree(run_dir.parent, ignore_errors=True)


def test_report_fuzz_counts():
    """Print the counts (this test runs after the two above, in file order)."""
    for what, (tried, handled) in COUNTS.items():
        print(f"fuzz {what}: {tried} cases tried, {handled} handled")
    assert all(tried == handled for tried, handled in COUNTS.values())
