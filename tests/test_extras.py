"""A base install without the extras: the CLI finishes a run and names the missing extra.

The optional packages are hidden from a subprocess (as if they were not installed), so the
test runs on a machine that has every extra.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from zoopt.extras import EXTRAS, MissingExtraError, require

#: every optional package a base install lacks
OPTIONAL = ("matplotlib", "sklearn", "tensorboard", "ray", "sacrebleu")

# a None entry in sys.modules makes `import NAME` raise ModuleNotFoundError and
# importlib.util.find_spec(NAME) return None: exactly what an absent package does
WITHOUT_EXTRAS = """
import sys

for name in sys.argv[1].split(","):
    sys.modules[name] = None
from zoopt.cli import main
sys.exit(main(sys.argv[2:]))
"""

FUNCTION = """
name = "base"
[objective]
kind = "function"
function = "sphere"
dim = 4
[budget]
steps = 3
[output]
progress = "none"
"""

CLASSIFICATION = """
name = "digits"
[objective]
kind = "classification"
dataset = "digits"
hidden = [8]
[budget]
steps = 2
[output]
progress = "none"
"""


def zoopt_without(hidden: tuple[str, ...], *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_EXTRAS, ",".join(hidden), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_without_matplotlib_a_run_finishes_and_says_once_the_plot_was_skipped(tmp_path):
    (tmp_path / "base.toml").write_text(FUNCTION)
    out = zoopt_without(OPTIONAL, "run", "base.toml", "--out", "r", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["status"] == "finished" and "curve" not in summary["files"]
    assert not (tmp_path / "r" / "curve.png").exists()
    assert out.stderr.count("plot skipped") == 1
    assert "pip install 'zoopt-torch[viz]'" in out.stderr
    assert "Traceback" not in out.stderr

    # a comparison draws one curve per run and one comparison plot: still one note
    out = zoopt_without(
        OPTIONAL, "compare", "base.toml", "--estimators", "es,sampling", "--out", "c", cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    assert out.stderr.count("plot skipped") == 1
    assert (tmp_path / "c" / "comparison.md").is_file()
    assert not (tmp_path / "c" / "comparison.png").exists()

    # plotting itself is the one thing that cannot go on: a clear error, exit 2
    out = zoopt_without(OPTIONAL, "plot", "r", cwd=tmp_path)
    assert out.returncode == 2
    assert "zoopt-torch[viz]" in out.stderr and "Traceback" not in out.stderr


def test_without_scikit_learn_a_classification_config_names_the_metrics_extra(tmp_path):
    out = zoopt_without(OPTIONAL, "list", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    kinds = {line.split()[0]: line for line in out.stdout.splitlines() if line.startswith("  ")}
    assert kinds["classification"].endswith("(needs zoopt-torch[metrics])")
    assert kinds["translation"].endswith("(needs zoopt-torch[metrics])")
    assert "needs" not in kinds["function"] and "needs" not in kinds["gym"]

    (tmp_path / "digits.toml").write_text(CLASSIFICATION)
    out = zoopt_without(OPTIONAL, "run", "digits.toml", "--out", "r", cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith("zoopt: error: ")
    assert "pip install 'zoopt-torch[metrics]'" in out.stderr and "scikit-learn" in out.stderr
    assert "Traceback" not in out.stderr


def test_require_names_the_extra_and_keeps_other_import_errors():
    pytest.importorskip("sklearn")
    assert require("sklearn", "x").__name__ == "sklearn"
    with pytest.raises(KeyError):
        require("not_an_extra", "x")
    for module, (extra, package) in EXTRAS.items():
        e = MissingExtraError(module, "drawing")
        assert f"zoopt-torch[{extra}]" in str(e) and package in str(e) and e.name == module


def test_without_sacrebleu_bleu_names_the_metrics_extra(monkeypatch):
    from zoopt import metrics

    metrics._bleu.cache_clear()  # a BLEU object made earlier would hide the missing package
    monkeypatch.setitem(sys.modules, "sacrebleu", None)
    try:
        with pytest.raises(MissingExtraError, match=r"zoopt-torch\[metrics\]"):
            metrics.corpus_bleu(["a cat"], ["a cat"])
    finally:
        metrics._bleu.cache_clear()
