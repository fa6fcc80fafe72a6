"""Nothing from a file runs code; damaged checkpoints and oversized configs are refused by name.

Each test provokes one fault through the command line (``zoopt.cli.main`` in-process) and
checks the outcome: exit status 2, one ``zoopt: error:`` line naming the key, file or entry,
no traceback, and no side effect (a marker file a payload would create never appears).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
from pathlib import Path

import pytest
import torch

from zoopt.checkpoint import load_checkpoint, save_checkpoint
from zoopt.cli import main

QUIET = [
    "--set",
    "output.plot=false",
    "--set",
    "output.tensorboard=false",
    "--set",
    "output.progress='none'",
]

FUNCTION = """
seed = 1
estimator = "{estimator}"
[objective]
kind = "function"
function = "sphere"
dim = 3
[estimators.sampling]
population = 6
[estimators.cmaes]
population = 6
[budget]
steps = 4
"""


def cli(argv: list[str], capsys) -> tuple[int, str]:
    """Exit status and stderr of ``zoopt ARGV`` run in this process."""
    rc = main(argv)
    err = capsys.readouterr().err
    return rc, err


def assert_refused(rc: int, err: str, *names: str) -> None:
    assert rc == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("zoopt: error:")]
    assert len(lines) == 1, err
    for name in names:
        assert name in lines[0], (name, err)


def write_config(tmp_path: Path, text: str, name: str = "c.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def marker_command(marker: Path) -> str:
    return f"{sys.executable} -c \"open('{marker}', 'w')\" && {sys.executable}"


# -- finding 1: code from a config or a checkpoint ----------------------------------------------
@pytest.mark.parametrize(
    "options",
    [
        "runtime_env = {{py_executable = '{cmd}'}}",
        "runtime_env = {{worker_process_setup_hook = 'os.system'}}",
        "ray_init_options = {{runtime_env = {{py_executable = '{cmd}'}}}}",
        "py_executable = '{cmd}'",
    ],
)
def test_config_cannot_make_ray_run_a_command(tmp_path, capsys, options):
    marker = tmp_path / "MARKER"
    text = FUNCTION.format(estimator="sampling") + (
        "[evaluator]\nkind = 'ray'\nnum_workers = 1\n[evaluator.options]\n"
        + options.format(cmd=marker_command(marker).replace("'", '"'))
        + "\n"
    )
    rc, err = cli(
        ["run", str(write_config(tmp_path, text)), "--out", str(tmp_path / "r"), *QUIET], capsys
    )
    assert_refused(rc, err, "evaluator.options.", "refused in a config file", "from Python")
    assert not marker.exists()


def test_evaluator_options_are_an_allow_list(tmp_path, capsys):
    text = FUNCTION.format(estimator="sampling") + "[evaluator.options]\nmax_retries = 2\n"
    rc, err = cli(["run", str(write_config(tmp_path, text)), *QUIET], capsys)
    assert_refused(rc, err, "evaluator.options", "only for evaluator.kind = 'ray'")
    text = FUNCTION.format(estimator="sampling") + (
        "[evaluator]\nkind = 'ray'\n[evaluator.options]\nmax_retry = 2\n"
    )
    rc, err = cli(["run", str(write_config(tmp_path, text)), *QUIET], capsys)
    assert_refused(rc, err, "evaluator.options.max_retry", "Did you mean 'max_retries'")


def finished_run(tmp_path: Path, capsys, estimator: str = "sampling", until: int = 2) -> Path:
    """A run directory whose checkpoint was written after ``until`` of 4 steps."""
    from zoopt.config import load_config
    from zoopt.experiment import run_experiment

    cfg = load_config(write_config(tmp_path, FUNCTION.format(estimator=estimator)), QUIET[1::2])
    run_dir = tmp_path / "run"
    run_experiment(cfg, run_dir, until=until)
    capsys.readouterr()
    return run_dir


def edit_checkpoint(run_dir: Path, edit) -> None:
    path = run_dir / "checkpoint.pt"
    state = load_checkpoint(path)
    edit(state)
    save_checkpoint(path, state)


def test_checkpoint_embedded_config_cannot_make_ray_run_a_command(tmp_path, capsys):
    run_dir = finished_run(tmp_path, capsys)
    marker = tmp_path / "MARKER"

    def payload(state: dict) -> None:
        state["config"]["evaluator"] = {
            "kind": "ray",
            "num_workers": 1,
            "options": {"runtime_env": {"py_executable": marker_command(marker)}},
        }

    edit_checkpoint(run_dir, payload)
    rc, err = cli(["resume", str(run_dir)], capsys)
    assert_refused(rc, err, "checkpoint.pt", "config.evaluator", "config.toml")
    assert not marker.exists()


def test_resume_runs_the_run_directorys_config_and_refuses_code_in_it(tmp_path, capsys):
    run_dir = finished_run(tmp_path, capsys)
    marker = tmp_path / "MARKER"
    text = (run_dir / "config.toml").read_text(encoding="utf-8")
    assert "[evaluator]" in text
    text = text.replace(
        "[evaluator]",
        f"[evaluator.options]\npy_executable = {json.dumps(marker_command(marker))}\n\n[evaluator]",
    )
    (run_dir / "config.toml").write_text(text, encoding="utf-8")
    rc, err = cli(["resume", str(run_dir)], capsys)
    assert_refused(rc, err, "config.toml", "evaluator.options.py_executable")
    assert not marker.exists()


def test_checkpoint_for_another_objective_kind_or_env_is_refused(tmp_path, capsys):
    run_dir = finished_run(tmp_path, capsys)
    edit_checkpoint(
        run_dir, lambda s: s["config"]["objective"].update(kind="gym", env="evil_mod:Env-v0")
    )
    rc, err = cli(["resume", str(run_dir)], capsys)
    assert_refused(rc, err, "checkpoint.pt", "config.objective.kind")


def test_missing_module_of_a_gymnasium_id_is_a_clean_error(tmp_path, capsys):
    text = "[objective]\nkind = 'gym'\nenv = 'zoopt_no_such_module:Env-v0'\n[budget]\nsteps = 1\n"
    rc, err = cli(
        ["run", str(write_config(tmp_path, text)), "--out", str(tmp_path / "r"), *QUIET], capsys
    )
    assert_refused(rc, err, "objective.env", "zoopt_no_such_module", "not installed")


# -- finding 3: damaged but loadable checkpoints ------------------------------------------------
def _set(path: str, value):
    def edit(state: dict) -> None:
        node = state
        *parents, last = path.split(".")
        for p in parents:
            node = node[p]
        node[last] = value(node[last]) if callable(value) else value

    return edit


DAMAGE = {
    "best_x of the wrong length": (
        _set("minimizer.best_x", torch.zeros(5, dtype=torch.float64)),
        "minimizer.best_x",
    ),
    "x of shape (1,)": (_set("minimizer.x", torch.zeros(1, dtype=torch.float64)), "minimizer.x"),
    "int x": (_set("minimizer.x", lambda x: x.to(torch.int64)), "minimizer.x"),
    "bool x": (_set("minimizer.x", lambda x: x > 0), "minimizer.x"),
    "complex x": (_set("minimizer.x", lambda x: x.to(torch.complex128)), "minimizer.x"),
    "NaN in x": (
        _set("minimizer.x", lambda x: x.index_fill(0, torch.tensor([1]), math.nan)),
        "non-finite",
    ),
    "negative evaluations": (_set("minimizer.evaluations", -5), "minimizer.evaluations"),
    "negative step count": (_set("minimizer.step_count", -1), "minimizer.step_count"),
    "missing optimizer": (lambda s: s["minimizer"].pop("optimizer"), "'optimizer'"),
    "optimizer state of another size": (
        _set(
            "minimizer.optimizer.state", {0: {"step": torch.tensor(2.0), "exp_avg": torch.zeros(7)}}
        ),
        "minimizer.optimizer.state.0",
    ),
    "optimizer as a list": (_set("minimizer.optimizer", []), "minimizer.optimizer"),
    "param groups as a list of lists": (
        _set("minimizer.optimizer.param_groups", [[1]]),
        "param_groups",
    ),
    "scheduler junk": (_set("minimizer.scheduler", {"x": 1}), "minimizer.scheduler"),
    "objective state junk": (_set("minimizer.objective", {"count": 3}), "minimizer.objective"),
    "estimator state for a stateless estimator": (
        _set("minimizer.estimator", {"started": True}),
        "minimizer.estimator",
    ),
    "history rows beyond metrics.jsonl": (_set("history.rows", 3), "history.rows"),
    "history as a list": (_set("history", []), "history"),
    "history held inline, truncated": (
        lambda s: s["minimizer"].update(
            history={"step": [1], **{k: [0.0] for k in ("loss", "best_loss")}}
        ),
        "minimizer.history",
    ),
    "unknown top-level entry in the minimizer": (_set("minimizer.code", "x"), "minimizer"),
    "estimator name as a number": (_set("estimator", 3), "estimator"),
    "seed as a float": (_set("minimizer.seed", 1.5), "minimizer.seed"),
    "elapsed negative": (_set("minimizer.elapsed", -1.0), "minimizer.elapsed"),
    "best_loss NaN": (_set("minimizer.best_loss", math.nan), "minimizer.best_loss"),
    "step count of 10**18": (_set("minimizer.step_count", 10**18), "minimizer.step_count"),
    "unknown key in the embedded config": (_set("config.bogus", 1), "config.bogus"),
    "embedded config of another dimension": (
        _set("config.objective.dim", 7),
        "config.objective.dim",
    ),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_checkpoint_is_refused_by_entry(tmp_path, capsys, damage):
    run_dir = finished_run(tmp_path, capsys)
    edit, entry = DAMAGE[damage]
    edit_checkpoint(run_dir, edit)
    before = sorted(p.name for p in run_dir.iterdir())
    rc, err = cli(["resume", str(run_dir)], capsys)
    assert_refused(rc, err, "checkpoint.pt", entry)
    assert not (run_dir / "best.pt").exists() or "best.pt" in before
    assert sorted(p.name for p in run_dir.iterdir()) == before  # nothing written


def test_sampling_checkpoint_relabelled_cmaes_is_refused(tmp_path, capsys):
    run_dir = finished_run(tmp_path, capsys)
    edit_checkpoint(run_dir, _set("estimator", "cmaes"))
    rc, err = cli(["resume", str(run_dir)], capsys)
    assert_refused(rc, err, "checkpoint.pt", "estimator", "'cmaes'")
    # the config relabelled too: the estimator's own state does not fit
    text = (
        (run_dir / "config.toml")
        .read_text()
        .replace('estimator = "sampling"', 'estimator = "cmaes"')
    )
    (run_dir / "config.toml").write_text(text)
    edit_checkpoint(run_dir, _set("config.estimator", "cmaes"))
    rc, err = cli(["resume", str(run_dir)], capsys)
    assert_refused(rc, err, "checkpoint.pt", "minimizer.estimator")


def test_junk_cmaes_state_is_refused_by_the_estimator(tmp_path, capsys):
    run_dir = finished_run(tmp_path, capsys, estimator="cmaes")
    edit_checkpoint(
        run_dir,
        lambda s: s["minimizer"]["estimator"]["pycma"]["attributes"][
            "_stoptolxstagnation.x"
        ].update({"value": torch.zeros(7, dtype=torch.float64)}),
    )
    rc, err = cli(["resume", str(run_dir)], capsys)
    assert_refused(rc, err, "checkpoint.pt", "minimizer.estimator")
    edit_checkpoint(run_dir, _set("minimizer.estimator.x0", "junk"))
    rc, err = cli(["resume", str(run_dir)], capsys)
    assert_refused(rc, err, "checkpoint.pt", "minimizer.estimator")


def test_truncated_metrics_file_is_refused(tmp_path, capsys):
    run_dir = finished_run(tmp_path, capsys)
    lines = (run_dir / "metrics.jsonl").read_text().splitlines(keepends=True)
    (run_dir / "metrics.jsonl").write_text(lines[0])
    rc, err = cli(["resume", str(run_dir)], capsys)
    assert_refused(rc, err, "checkpoint.pt", "metrics.jsonl")


def test_rows_after_the_checkpoint_are_dropped_on_resume(tmp_path, capsys):
    """A kill after step 3 and before its checkpoint: metrics.jsonl holds one extra row."""
    run_dir = finished_run(tmp_path, capsys, until=2)
    with open(run_dir / "metrics.jsonl", "a", encoding="utf-8") as f:
        f.write('{"step": 3, "loss": 1.0}\n{"step": 4, "lo')  # a torn last line
    assert main(["resume", str(run_dir)]) == 0
    from zoopt.runlog import read_metrics

    assert list(read_metrics(run_dir)["step"]) == [1, 2, 3, 4]


def test_leftover_temporary_checkpoints_are_removed_by_the_next_write(tmp_path, capsys):
    run_dir = finished_run(tmp_path, capsys)
    orphans = [run_dir / ".checkpoint.pt.0123456789ab.tmp", run_dir / ".checkpoint.pt.ffffff.tmp"]
    for o in orphans:
        o.write_bytes(b"partial")
    assert main(["resume", str(run_dir)]) == 0
    assert not any(o.exists() for o in orphans)
    assert (run_dir / "checkpoint.pt").is_file()


# -- finding 4: inputs that crashed or never ended ----------------------------------------------
CLASSIFY = "[objective]\nkind = 'classification'\ndataset = 'iris'\n[budget]\nsteps = 1\n"
TRANSLATE = "[objective]\nkind = 'translation'\nsize = 50\n[budget]\nsteps = 1\n"
HUGE = {
    "dim 2**62": (FUNCTION, ["objective.dim=4611686018427387904"], "objective.dim"),
    "dim 10**9": (FUNCTION, ["objective.dim=1000000000"], "objective.dim"),
    "population 10**11": (  # 2.4 TB of candidates: refused on any machine
        FUNCTION,
        ["estimators.sampling.population=100000000000"],
        "estimators.sampling.population",
    ),
    "hidden 10**9": (CLASSIFY, ["objective.hidden=[1000000000]"], "objective.hidden"),
    "max_len 10**9": (TRANSLATE, ["objective.max_len=1000000000"], "objective.max_len"),
    "batch_size 10**9": (CLASSIFY, ["objective.batch_size=1000000000"], "objective.batch_size"),
    "test_size 0.99": (CLASSIFY, ["objective.test_size=0.99"], "objective.test_size"),
    "bogus device": (FUNCTION, ["evaluator.device='warp-drive'"], "evaluator.device"),
    "meta device": (FUNCTION, ["evaluator.device='meta'"], "evaluator.device"),
    "string for pycma": (
        FUNCTION,
        ["estimators.cmaes.options={tolfun='1e-9 * N'}"],
        "estimators.cmaes.options.tolfun",
    ),
    "5000-level key": (FUNCTION, [".".join(["a"] * 5000) + "=1"], "--set"),
    "no such module": (
        "[objective]\nkind = 'gym'\nenv = 'nosuchmod:Env-v0'\n[budget]\nsteps = 1\n",
        [],
        "objective.env",
    ),
    "objective kind a list": ("[objective]\nkind = []\n", [], "objective.kind"),
    "optimizer option typo": (
        FUNCTION,
        ["optimizer.options={betaz=[0.9, 0.99]}"],
        "optimizer.options.betaz",
    ),
    "optimizer option refused": (FUNCTION, ["optimizer.options={eps=-1.0}"], "optimizer.options"),
    "log_std nan": (
        "[objective]\nkind = 'gym'\nenv = 'CartPole-v1'\nlog_std = nan\n",
        [],
        "objective.log_std",
    ),
}


@pytest.mark.parametrize("case", list(HUGE))
def test_oversized_or_bogus_inputs_are_one_line_errors(tmp_path, capsys, case):
    text, sets, key = HUGE[case]
    path = write_config(tmp_path, text.format(estimator="sampling"))
    argv = ["run", str(path), "--out", str(tmp_path / "r"), *QUIET]
    for s in sets:
        argv += ["--set", s]
    rc, err = cli(argv, capsys)
    assert_refused(rc, err, key)


@pytest.mark.parametrize("where", ["/proc/zoopt-run", "/dev/null", "a-file"])
def test_unusable_output_directory_is_refused(tmp_path, capsys, where):
    if not Path(where).parent.exists() and where.startswith("/"):
        pytest.skip(f"{where}: not on this system")
    if where == "a-file":
        where = str(tmp_path / "a-file")
        Path(where).write_text("not a directory")
    path = write_config(tmp_path, FUNCTION.format(estimator="sampling"))
    rc, err = cli(["run", str(path), "--out", where, *QUIET], capsys)
    assert_refused(rc, err, "output.dir", where)


def test_binary_config_file_is_refused(tmp_path, capsys):
    path = tmp_path / "c.toml"
    path.write_bytes(os.urandom(64) + b"\xff\xfe")
    rc, err = cli(["run", str(path)], capsys)
    assert_refused(rc, err, str(path), "UTF-8")


def test_negative_compare_seed_is_refused(tmp_path, capsys):
    path = write_config(tmp_path, FUNCTION.format(estimator="sampling"))
    rc, err = cli(
        ["compare", str(path), "--seeds", "-1", "--out", str(tmp_path / "c"), *QUIET], capsys
    )
    assert_refused(rc, err, "--seeds")
    assert not (tmp_path / "c" / "sampling").exists()


def test_memory_estimate_accepts_the_example_configs(tmp_path):
    from zoopt.config import load_config
    from zoopt.resources import check_step_memory

    configs = sorted(Path(__file__).parent.parent.joinpath("examples", "configs").glob("*.toml"))
    assert configs
    for path in configs:
        assert check_step_memory(load_config(path)) > 0
    with pytest.raises(Exception, match="objective.dim"):
        check_step_memory(load_config(configs[0], ["objective.dim=100000"]), available=10**6)


@pytest.fixture(autouse=True)
def _clean_markers(tmp_path):
    yield
    shutil.rmtree(tmp_path, ignore_errors=True)


@pytest.mark.parametrize("dtype", [torch.bool, torch.complex128])
def test_reinforce_refuses_sampled_losses_that_are_not_real_numbers(dtype):
    import zoopt
    from zoopt.objectives import CategoricalBandit, OutputSamples

    arms = torch.tensor([1.0, 0.5, 0.2], dtype=torch.float64)

    class Odd(CategoricalBandit):
        def sample_outputs(self, x, num_samples, generator, seed=0):
            out = super().sample_outputs(x, num_samples, generator, seed)
            return OutputSamples(out.log_probs, (out.losses > 0.5).to(dtype))

    with pytest.raises(TypeError, match=f"losses must be real numbers, got dtype {dtype}"):
        zoopt.minimize(
            Odd(arms), torch.zeros(3, dtype=torch.float64), estimator="reinforce", steps=1
        )
