"""The ``zoopt`` command line end to end, on tiny budgets (subprocesses and in-process)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from zoopt.checkpoint import load_checkpoint
from zoopt.cli import build_parser, main

FUNCTION_CONFIG = """
name = "tiny"
seed = 1
estimator = "sampling"

[objective]
kind = "function"
function = "rosenbrock"
dim = 5

[estimators.sampling]
population = 8

[budget]
steps = 6

[output]
checkpoint_every = 2
progress = "lines"
progress_every = 0.0
"""

SPARSE_CONFIG = """
name = "sparse"

[objective]
kind = "gym"
env = "zoopt/DeepSea-v0"
env_kwargs = { size = 4 }
max_episode_steps = 4

[estimators.sampling]
population = 8
sigma = 0.5

[budget]
steps = 50
max_evaluations = 40

[output]
tensorboard = false
progress = "none"
"""


def zoopt(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return subprocess.run(
        [sys.executable, "-m", "zoopt", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_list_names_estimators_objectives_envs_optimizers(tmp_path):
    exe = shutil.which("zoopt", path=str(Path(sys.executable).parent))
    cmd = [exe, "list"] if exe else [sys.executable, "-m", "zoopt", "list"]
    out = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    for word in (
        "sampling",
        "es",
        "gradient",
        "function",
        "gym",
        "classification",
        "zoopt/DeepSea-v0",
        "adam",
        "cosine",
    ):
        assert word in out.stdout
    assert "  auto " in out.stdout  # the default, though not a registered estimator


def test_run_resume_plot_end_to_end(tmp_path, capsys):
    (tmp_path / "tiny.toml").write_text(FUNCTION_CONFIG)
    out = zoopt("run", "tiny.toml", "--out", "run1", "--set", "budget.steps=4", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    run = tmp_path / "run1"
    for name in (
        "config.toml",
        "resolved.json",
        "metrics.jsonl",
        "best.pt",
        "last.pt",
        "checkpoint.pt",
        "summary.json",
        "curve.png",
    ):
        assert (run / name).is_file(), name
    assert (run / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [r["step"] for r in lines(run / "metrics.jsonl")] == [1, 2, 3, 4]
    assert "sampling step 4/4" in out.stderr  # plain progress lines off a terminal
    assert "final loss" in out.stdout
    resolved = json.loads((run / "resolved.json").read_text())
    assert resolved["config"]["budget"]["steps"] == 4 and resolved["dim"] == 5
    if _has_tensorboard():
        assert any((run / "tensorboard").glob("events.out.tfevents.*"))
    # the written config runs again as it is
    assert "steps = 4" in (run / "config.toml").read_text()

    # in-process from here on (the same entry point, without another interpreter start;
    # resume in a subprocess is covered by the Ctrl-C test)
    assert main(["resume", str(run), "--steps", "7"]) == 0
    assert "finished after 7 steps" in capsys.readouterr().out
    assert [r["step"] for r in lines(run / "metrics.jsonl")] == list(range(1, 8))
    assert load_checkpoint(run / "checkpoint.pt")["minimizer"]["step_count"] == 7
    assert main(["resume", str(run)]) == 0
    assert "already complete" in capsys.readouterr().out
    assert (
        main(
            [
                "run",
                str(tmp_path / "tiny.toml"),
                "--out",
                str(tmp_path / "run2"),
                "--estimator",
                "es",
                "--set",
                "output.progress='none'",
            ]
        )
        == 0
    )
    assert json.loads((tmp_path / "run2" / "summary.json").read_text())["estimator"] == "es"
    out = zoopt("plot", "run1", "run2", "--out", "both.png", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "both.png").read_bytes()[:4] == b"\x89PNG"


def _has_tensorboard() -> bool:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return False
    return True


def test_compare_reports_estimators_that_cannot_apply(tmp_path):
    (tmp_path / "sparse.toml").write_text(SPARSE_CONFIG)
    out = zoopt(
        "compare",
        "sparse.toml",
        "--estimators",
        "sampling,gradient",
        "--seeds",
        "0,1",
        "--out",
        "cmp",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    table = out.stdout
    assert "| sampling" in table and "| gradient" in table
    assert "not applicable" in table and "differentiable" in table
    data = json.loads((tmp_path / "cmp" / "comparison.json").read_text())
    rows = {r["estimator"]: r for r in data["rows"]}
    assert rows["sampling"]["runs"] == 2 and rows["gradient"]["runs"] == 0
    assert rows["sampling"]["evaluations"] >= 40  # the same evaluation budget for each seed
    assert data["metric_name"] == "return"
    assert (tmp_path / "cmp" / "comparison.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "cmp" / "comparison.md").is_file()
    assert (tmp_path / "cmp" / "sampling" / "seed1" / "metrics.jsonl").is_file()
    for seed in (0, 1):  # every run of a comparison draws its own curve
        assert (tmp_path / "cmp" / "sampling" / f"seed{seed}" / "curve.png").is_file()
    # the reason is a footnote under the table, not a column as wide as the reason
    row = next(line for line in table.splitlines() if line.startswith("| gradient"))
    assert row.split("|")[-2].strip() == "[1]" and "differentiable" not in row
    assert any(line.startswith("[1] gradient: not applicable") for line in table.splitlines())


def test_compare_runs_the_default_estimator_by_its_name(tmp_path):
    (tmp_path / "tiny.toml").write_text(FUNCTION_CONFIG)
    out = zoopt(
        "compare", "tiny.toml", "--estimators", "auto,snes", "--seeds", "0", "--out", "cmp",
        cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    rows = {
        r["estimator"]: r
        for r in json.loads((tmp_path / "cmp" / "comparison.json").read_text())["rows"]
    }
    assert rows["auto"]["runs"] == 1 and rows["snes"]["runs"] == 1, out.stdout
    assert "not registered" not in out.stdout


def test_compare_without_estimators_runs_the_default_and_every_registered_one(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(FUNCTION_CONFIG.replace('progress = "lines"', 'progress = "none"'))
    quiet = ["--set", "output.tensorboard=false", "--set", "output.plot=false"]
    assert main(["compare", str(path), "--seeds", "0", "--out", str(tmp_path / "c"), *quiet]) == 0
    rows = json.loads((tmp_path / "c" / "comparison.json").read_text())["rows"]
    from zoopt.estimators import available_estimators

    assert [r["estimator"] for r in rows] == ["auto", *available_estimators()]
    assert rows[0]["runs"] == 1


def test_ctrl_c_saves_a_checkpoint_and_resume_completes(tmp_path):
    config = (
        FUNCTION_CONFIG.replace("steps = 6", "steps = 20000")
        .replace("dim = 5", "dim = 200")
        .replace("checkpoint_every = 2", "checkpoint_every = 0\nplot = false\ntensorboard = false")
    )
    (tmp_path / "long.toml").write_text(config)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "zoopt", "run", "long.toml", "--out", "r"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    metrics = tmp_path / "r" / "metrics.jsonl"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and proc.poll() is None:
        if metrics.is_file() and metrics.stat().st_size > 0:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "zoopt resume" in stderr
    state = load_checkpoint(tmp_path / "r" / "checkpoint.pt")
    done = state["minimizer"]["step_count"]
    assert state["status"] == "interrupted" and 1 <= done < 20000
    assert len(lines(metrics)) == done
    out = zoopt("resume", "r", "--steps", str(done + 3), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "finished after" in out.stdout
    assert [r["step"] for r in lines(metrics)] == list(range(1, done + 4))


def test_bad_config_is_one_clear_error(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text(FUNCTION_CONFIG.replace("steps = 6", "step = 6"))
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("zoopt: error: ")
    assert "budget.step: unknown key. Did you mean 'steps'?" in err
    assert main(["run", str(path), "--set", "budget={steps=0}"]) == 2
    assert "budget.steps: must be an int >= 1, got 0" in capsys.readouterr().err
    path.write_text(FUNCTION_CONFIG)
    assert main(["compare", str(path), "--estimators", "sampling,cma"]) == 2
    assert "Did you mean 'cmaes'?" in capsys.readouterr().err


def test_resume_and_plot_of_a_non_run_directory(tmp_path, capsys):
    assert main(["resume", str(tmp_path)]) == 2
    assert "checkpoint.pt: no checkpoint here" in capsys.readouterr().err
    assert main(["plot", str(tmp_path)]) == 2
    assert "not a run directory" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["resume", str(tmp_path), "--steps", "0"])


def test_an_estimator_that_does_not_apply_is_a_clear_error(tmp_path, capsys):
    path = tmp_path / "sparse.toml"
    path.write_text(SPARSE_CONFIG)
    code = main(["run", str(path), "--estimator", "gradient", "--out", str(tmp_path / "r")])
    assert code == 2
    err = capsys.readouterr().err
    assert "estimator 'gradient' does not apply here" in err and "surrogate" in err


def test_compare_reports_an_objective_that_cannot_sample(tmp_path, capsys):
    path = tmp_path / "tiny.toml"
    path.write_text(FUNCTION_CONFIG.replace('progress = "lines"', 'progress = "none"'))
    out = tmp_path / "cmp"
    code = main(
        [
            "compare",
            str(path),
            "--estimators",
            "es,reinforce",
            "--out",
            str(out),
            "--set",
            "output.tensorboard=false",
        ]
    )
    assert code == 0
    table = capsys.readouterr().out
    assert "| reinforce" in table and "not applicable" in table and "sample_outputs" in table
    rows = {r["estimator"]: r for r in json.loads((out / "comparison.json").read_text())["rows"]}
    assert rows["es"]["runs"] == 1 and rows["reinforce"]["runs"] == 0
    assert "sample_outputs" in rows["reinforce"]["reasons"][0]


def test_run_and_compare_refuse_a_directory_with_results(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("tiny.toml").write_text(FUNCTION_CONFIG.replace('progress = "lines"', 'progress = "none"'))
    fast = ["--set", "output.tensorboard=false", "--set", "output.plot=false"]
    assert main(["run", "tiny.toml", *fast]) == 0
    run = tmp_path / "runs" / "tiny"  # the default directory, runs/NAME
    resolved = json.loads((run / "resolved.json").read_text())
    assert resolved["config"]["output"]["dir"] == str(Path("runs") / "tiny")
    capsys.readouterr()
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}

    assert main(["run", "tiny.toml", *fast, "--set", "budget.steps=2"]) == 2
    err = capsys.readouterr().err
    assert "already holds results" in err and "--force" in err
    assert f"zoopt resume {Path('runs') / 'tiny'}" in err
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before
    # compare's default directory is the same runs/NAME: refused as well
    assert main(["compare", "tiny.toml", "--estimators", "es", *fast]) == 2
    assert "already holds results" in capsys.readouterr().err
    assert not (run / "es").exists()

    assert main(["run", "tiny.toml", *fast, "--set", "budget.steps=2", "--force"]) == 0
    assert [r["step"] for r in lines(run / "metrics.jsonl")] == [1, 2]
    # a comparison's runs count as results too
    assert main(["compare", "tiny.toml", "--estimators", "es", "--out", "c", *fast]) == 0
    (tmp_path / "c" / "comparison.json").unlink()
    assert main(["compare", "tiny.toml", "--estimators", "es", "--out", "c", *fast]) == 2
    assert "es/seed0/checkpoint.pt" in capsys.readouterr().err


def test_init_writes_example_configs_that_run(tmp_path, capsys, monkeypatch):
    from zoopt.config import load_config
    from zoopt.example_configs import example_configs

    monkeypatch.chdir(tmp_path)
    names = list(example_configs())
    assert "quickstart" in names
    assert main(["init"]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in names)
    for name in names:
        assert main(["init", name]) == 0
        assert load_config(tmp_path / f"{name}.toml")["name"]  # each one validates
    assert main(["init", "quickstart"]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["init", "quickstart", "--force"]) == 0
    assert main(["init", "nope"]) == 2
    assert "choose one of: " + ", ".join(names) in capsys.readouterr().err
    assert "zoopt init" in build_parser()._subparsers._group_actions[0].choices["run"].format_help()


def test_init_into_a_directory_it_cannot_write_is_a_clean_error(tmp_path, capsys, monkeypatch):
    # a removed working directory refuses new files even to root (chmod would not)
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    assert main(["init", "quickstart"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("zoopt: error: init: cannot write ") and "Traceback" not in err
    assert "No such file or directory" in err and "directory you can write to" in err
    if os.geteuid() != 0:  # a read-only directory (root writes there anyway)
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o555)
        monkeypatch.chdir(ro)
        assert main(["init", "quickstart"]) == 2
        err = capsys.readouterr().err
        assert f"cannot write {ro / 'quickstart.toml'} (Permission denied)" in err


def test_run_with_a_table_for_a_misspelt_estimator_suggests_the_name(tmp_path, capsys):
    config = tmp_path / "c.toml"
    config.write_text(
        "[objective]\nkind = 'function'\nfunction = 'sphere'\ndim = 2\n"
        "[estimators.smapling]\nsigma = 0.1\n",
        encoding="utf-8",
    )
    assert main(["run", str(config), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "estimators.smapling: unknown key. Did you mean 'sampling'?" in err
    assert not (tmp_path / "r").exists()  # nothing ran


def test_version(capsys):
    import zoopt

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"zoopt {zoopt.__version__}"


def test_plot_labels_runs_by_what_tells_them_apart(tmp_path, capsys):
    from zoopt.runlog import _figure, _set_yscale, run_labels

    (tmp_path / "tiny.toml").write_text(
        FUNCTION_CONFIG.replace('progress = "lines"', 'progress = "none"')
    )
    fast = ["--set", "output.tensorboard=false", "--set", "budget.steps=3"]
    for est, seed, out in (("sampling", 1, "a"), ("es", 1, "b"), ("es", 2, "c")):
        cfg = [str(tmp_path / "tiny.toml"), "--estimator", est, "--set", f"seed={seed}"]
        assert main(["run", *cfg, "--out", str(tmp_path / out), *fast]) == 0
    a, b, c = (tmp_path / d for d in "abc")
    assert run_labels([a, b]) == ["sampling", "es"]
    assert run_labels([b, c]) == ["seed 1", "seed 2"]
    assert run_labels([a, b, c]) == ["sampling seed 1", "es seed 1", "es seed 2"]
    assert run_labels([a]) == ["tiny sampling seed 1"]
    assert run_labels([a, a]) == [str(a), str(a)]  # nothing tells them apart: the paths
    capsys.readouterr()

    png = tmp_path / "ab.png"
    args = ["plot", str(a), str(b), "--out", str(png), "--yscale", "log"]
    assert main([*args, "--label", "mine", "--label", "theirs"]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert main([*args, "--label", "only one"]) == 2
    assert "one label per run directory (2), got 1" in capsys.readouterr().err

    fig, (ax,) = _figure(1)
    ax.plot([0, 1, 2], [-1.0, 10.0, 1000.0])
    _set_yscale(ax, "log")
    assert ax.get_yscale() == "symlog"  # log of a negative value: symmetric log
    fig, (ax,) = _figure(1)
    ax.plot([0, 1, 2], [1.0, 10.0, 1000.0])
    _set_yscale(ax, "linear")
    assert ax.get_yscale() == "linear"
    _set_yscale(ax, "auto")
    assert ax.get_yscale() == "log"


def test_resume_keeps_the_fixed_proposal_a_checkpoint_was_written_with(tmp_path, capsys):
    """A run written when `sampling`'s defaults were the fixed proposal (its config.toml
    names none of covariance, eta_mean, population) resumes with that proposal and ends
    where the uninterrupted run ends."""
    # covariance given: eta_mean (not given) takes the fixed proposal's value too
    fixed = "covariance = 'none'\npopulation = 8\nmetamodel = false\n"
    text = FUNCTION_CONFIG.replace("population = 8\n", fixed).replace(
        'progress = "lines"', 'progress = "none"'
    )
    (tmp_path / "fixed.toml").write_text(text)
    assert main(["run", str(tmp_path / "fixed.toml"), "--out", str(tmp_path / "whole")]) == 0
    assert main(["run", str(tmp_path / "fixed.toml"), "--out", str(tmp_path / "cut"),
                 "--set", "budget.steps=4"]) == 0  # fmt: skip
    cut = tmp_path / "cut"
    # as an older version wrote it: the proposal's keys were the defaults, so not written
    old = (cut / "config.toml").read_text()
    for key in ("covariance", "metamodel"):
        old = "\n".join(line for line in old.splitlines() if not line.startswith(key))
    (cut / "config.toml").write_text(old + "\n")
    assert main(["resume", str(cut), "--steps", "6"]) == 0
    capsys.readouterr()
    whole, resumed = lines(tmp_path / "whole" / "metrics.jsonl"), lines(cut / "metrics.jsonl")
    assert [r["step"] for r in resumed] == [1, 2, 3, 4, 5, 6]
    assert [r["loss"] for r in resumed] == [r["loss"] for r in whole]
