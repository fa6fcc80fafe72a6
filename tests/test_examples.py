"""Every script in ``examples/`` runs to the end on a tiny budget and prints its report.

Each runs in a subprocess, as a user would start it, from a temporary directory; they run
two at a time. The Ray example joins the session's Ray instance instead of starting one of
its own.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from zoopt.cli import main

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
NUMBER = r"-?\d[\d,]*(?:\.\d+)?"

#: script -> (tiny arguments, patterns its output must contain, files it must write)
CASES: dict[str, tuple[list[str], list[str], list[str]]] = {
    "ask_tell.py": (
        ["--steps", "2", "--population", "4", "--episodes", "1"],
        [
            rf"step\s+1\s+best return\s+{NUMBER}\s+population mean\s+{NUMBER}",
            rf"held-out return of the best weights over 5 episodes: {NUMBER}",
        ],
        [],
    ),
    "binary_digits.py": (
        ["--widths", "4", "--steps", "2", "--out", "tradeoff.png"],
        [
            r"method\s+width\s+binary weights\s+test acc",
            rf"\nste\s+4\s+296\s+{NUMBER}",
            rf"\nes\s+4\s+296\s+{NUMBER}",
            rf"\nsampling\s+4\s+296\s+{NUMBER}",
            r"trade-off plot saved to tradeoff\.png",
        ],
        ["tradeoff.png"],
    ),
    "cartpole.py": (
        ["--steps", "2", "--seeds", "1", "--estimators", "es", "gradient"],
        [
            r"estimator\s+solved\s+episodes\s+env-steps",
            r"\nes\s+(?:0/1\s+not solved within 2 steps|1/1\s+\d+)",
            r"\ngradient\s+n/a\s+'gradient' needs a differentiable objective",
        ],
        [],
    ),
    "countdown_verifier.py": (
        [
            *["--train-size", "60", "--prompts", "30", "--dim", "16", "--mle-steps", "4"],
            *["--check-every", "2", "--sequences", "64"],
        ],
        [
            r"MLE step\s+2: valid solved\s+[\d.]+%",
            r"method\s+test solved %\s+commonest answer shape",
            rf"\nMLE checkpoint\s+{NUMBER}",
            rf"\nreinforce, verifier\s+{NUMBER}",
            rf"\nmore MLE \(control\)\s+{NUMBER}",
        ],
        [],
    ),
    "digits.py": (
        # budget 130 = 2 steps of 64 candidates and θ at step 1; then θ once more for the
        # report
        ["--estimators", "es", "--budget", "130", "--batch-size", "32"],
        [
            r"estimator\s+optimises\s+steps\s+evals\s+train acc\s+test acc",
            r"\nes\s+accuracy\s+2\s+130\s+[01]\.\d{4}\s+[01]\.\d{4}\s+[01]\.\d{4}",
        ],
        [],
    ),
    "imbalanced_f1.py": (
        ["--seeds", "2", "--ce-steps", "20", "--steps", "4", "--check-every", "2", "--hidden"],
        [
            r"task: make_imbalanced\('synthetic'\), 3000/1500/1500 train/valid/test",
            r"\nseed 1: ce 0\.\d{4}  ce-weighted",
            r"method\s+macro-F1\s+sd\s+vs ce\s+wall s",
            rf"\nce\s+{NUMBER}\s+{NUMBER}\s+\+0\.0000",
            rf"\nes\s+{NUMBER}\s+{NUMBER}\s+[+-]{NUMBER}",
            rf"\nreinforce\s+{NUMBER}\s+{NUMBER}\s+[+-]{NUMBER}",
        ],
        [],
    ),
    "mountaincar.py": (
        ["--steps", "1", "--check-every", "1"],
        [
            rf"step\s+1\s+env-steps\s+{NUMBER}\s+train\s+{NUMBER}\s+held-out\s+{NUMBER}",
            r"not solved: [\d,]+ env steps, 1 steps|solved at step 1",
        ],
        [],
    ),
    "mujoco_swimmer.py": (
        ["--steps", "1", "--population", "2", "--out", "swimmer.png"],
        [
            rf"step\s+1\s+env-steps\s+{NUMBER}\s+return\s+{NUMBER}",
            rf"mean return over 5 held-out episodes {NUMBER} \(start\) -> {NUMBER} "
            r"\(after 1 steps",
        ],
        ["swimmer.png"],
    ),
    "sparse_deepsea.py": (
        ["--steps", "2", "--sizes", "3", "--estimators", "es", "gradient"],
        [
            r"DeepSea N=3 .* probability 1/8 per episode",
            r"\n  es\s+(?:solved at step \d|not solved in 2 steps).*greedy return [\d.]+",
            r"\n  gradient\s+n/a \('gradient' needs a differentiable objective",
        ],
        [],
    ),
    "sparse_exploration.py": (
        [
            "--tasks",
            "deepsea-10",
            "mountaincar",
            "--methods",
            "es",
            "es+novelty",
            "--seeds",
            "1",
            "--budget",
            "400",
        ],
        [
            r"(?m)^deepsea-10\s+es\s+seed 0: .*env steps \(budget 400; best return",
            r"(?m)^mountaincar\s+es\+novelty\s+seed 0: .*held-out return of θ -?\d",
            r"\| task \| es \| es\+novelty \|",
            r"\| deepsea-10 \| [01]/1",
        ],
        [],
    ),
    "translation_bleu.py": (
        # --patience 1 with --check-every 5: each MLE stage stops after two or more checks; each
        # fine-tuning run stops after its first step
        [
            *["--train-size", "60", "--check-every", "5", "--patience", "1"],
            *["--seeds", "2", "--seconds", "0.01"],
        ],
        [
            r"MLE step\s+5 \(lr 0\.02\): valid BLEU",
            r"MLE stopped at step \d+ \(no gain in 1 checks at lr 0\.002\); best valid BLEU",
            r"held-out corpus BLEU \(test split, sacrebleu\), mean ± sd over seeds",
            rf"\nMLE, converged\s+{NUMBER}\s+{NUMBER}\s+\+0\.00",
            rf"\nreinforce \(alpha=inf\)\s+{NUMBER}\s+{NUMBER}\s+[+-]{NUMBER}",
            rf"\nreinforce \(alpha=auto\)\s+{NUMBER}\s+{NUMBER}\s+[+-]{NUMBER}",
            rf"\nsampling \(guided\)\s+{NUMBER}\s+{NUMBER}\s+[+-]{NUMBER}",
            rf"\ngradient \(MLE, control\)\s+{NUMBER}\s+{NUMBER}\s+[+-]{NUMBER}",
        ],
        [],
    ),
    "quickstart.py": (
        ["--steps", "3", "--out", "curves.png"],
        [
            r"estimator\s+objective\s+steps\s+evaluations\s+final loss\s+seconds",
            rf"\nes\s+rosenbrock-10\s+3\s+98\s+{NUMBER}",  # 3 × 32, θ at step 1 and at the end
            rf"\ngradient\s+rosenbrock-10\s+3\s+7\s+{NUMBER}",
            r"\nreinforce\s+bandit-5\s+3\s+\d+\s+0\.\d+",
            r"learning curves saved to curves\.png",
        ],
        ["curves.png"],
    ),
    "ray_cartpole.py": (
        # one actor with two processes; --address: the session's instance, below
        ["--workers", "1", "--processes-per-worker", "2", "--steps", "2"],
        [
            rf"step\s+1\s+return\s+{NUMBER}",
            rf"held-out return {NUMBER} \(20 episodes\) after 2 steps, 66 evaluations",
        ],
        [],
    ),
}


def test_every_example_has_a_smoke_test():
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(CASES)


def run_example(script: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", MPLBACKEND="Agg")
    return subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def skip_reason(script: str) -> str | None:
    if script == "mujoco_swimmer.py" and importlib.util.find_spec("mujoco") is None:
        return "mujoco is not installed (pip install 'zoopt-torch[mujoco]')"
    if script == "ray_cartpole.py" and importlib.util.find_spec("ray") is None:
        return "ray is not installed (pip install 'zoopt-torch[ray]')"
    return None


@pytest.fixture(scope="module")
def runs(request, tmp_path_factory):
    """The selected examples, started together and run two at a time (one thread each).

    Yields ``script -> (future of the CompletedProcess, its working directory)``.
    """
    selected = {
        params["script"]
        for item in request.session.items
        if item.module is request.module
        and "script" in (params := getattr(getattr(item, "callspec", None), "params", {}))
    }
    pool = ThreadPoolExecutor(max_workers=2)
    started = {}
    for script in sorted(selected, key=lambda s: s != "ray_cartpole.py"):  # the slowest first
        if skip_reason(script):
            continue
        args, _, _ = CASES[script]
        if script == "ray_cartpole.py":  # join the session's instance instead of starting one
            args = [*args, "--address", request.getfixturevalue("ray_address")]
        cwd = tmp_path_factory.mktemp(script.removesuffix(".py"))
        started[script] = (pool.submit(run_example, script, args, cwd), cwd)
    yield started
    pool.shutdown(wait=True, cancel_futures=True)


@pytest.mark.parametrize("script", sorted(CASES))
def test_example_runs_with_a_tiny_budget(script, runs):
    if reason := skip_reason(script):
        pytest.skip(reason)
    _, patterns, files = CASES[script]
    future, cwd = runs[script]
    out = future.result()
    assert out.returncode == 0, out.stderr[-3000:]
    for pattern in patterns:
        assert re.search(pattern, out.stdout), (pattern, out.stdout)
    for name in files:
        assert (cwd / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


def test_quickstart_config_runs(tmp_path, capsys):
    config = EXAMPLES / "configs" / "quickstart.toml"
    args = ["run", str(config), "--out", str(tmp_path / "run"), "--set", "budget.steps=3"]
    assert main([*args, "--set", "output.progress='none'"]) == 0
    assert "final loss" in capsys.readouterr().out
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["estimator"] == "sampling" and summary["steps"] == 3
