"""The progress display: the bar fits its width, fields drop least useful first, lines mode."""

from __future__ import annotations

import io
import math

import pytest
import torch

import zoopt
from zoopt.progress import (
    FIELD_ORDER,
    MIN_BAR,
    Progress,
    fit_fields,
    make_progress,
    row_fields,
    startup_note,
)


def _row(step: int) -> dict:
    return {
        "metric": 0.9556123,
        "best_loss": -0.96,
        "seconds": 10.0 + step,
        "evaluations": 12345 * (step + 1),
        "alpha": 0.1234,
        "ess": 12.34,
    }


def _bar_at(ncols: int, metric_name: str = "accuracy") -> str:
    p = Progress(
        1000, 0, "sampling", metric_name, lambda loss: -loss, ncols=ncols, file=io.StringIO()
    )
    for step in range(450):
        p.update(_row(step))
    line = p.line()
    p.close()
    return line


@pytest.mark.parametrize("ncols", [60, 80, 100, 160])
def test_the_bar_fits_its_width_and_keeps_room_for_the_bar(ncols):
    line = _bar_at(ncols)
    assert len(line) <= ncols
    assert "450/1000" in line
    bar = line.split("|")[1]
    assert len(bar) >= MIN_BAR


def test_fields_drop_least_useful_first():
    wide, narrow = _bar_at(200), _bar_at(80)
    for field in ("accuracy=0.9556", "best=0.96", "ev/s=", "α=0.12", "ess=12.3"):
        assert field in wide
    # at 80 columns the metric and the best value stay, α and ESS go: what is shown is
    # always the most useful part of FIELD_ORDER
    names = ["accuracy", *FIELD_ORDER[1:]]
    shown = [name for name in names if f" {name}=" in narrow or f", {name}=" in narrow]
    assert shown == names[: len(shown)]
    assert "accuracy" in shown and "best" in shown and "α" not in shown


def test_fit_fields_and_row_fields():
    fields = row_fields(_row(0), "a_very_long_metric_name", lambda loss: -loss)
    assert [k for k, _ in fields][1:] == list(FIELD_ORDER[1:])
    assert fields[0][0] == "a_very_l"  # names are short
    assert fit_fields(fields, 1000).count("=") == 5
    assert fit_fields(fields, len("a_very_l=0.9556 best=0.96")) == "a_very_l=0.9556 best=0.96"
    assert fit_fields(fields, 3) == ""
    no_alpha = dict(_row(0), alpha=math.nan, ess=math.nan)
    assert [k for k, _ in row_fields(no_alpha, "loss", float)] == ["loss", "best", "ev/s"]


def test_the_last_evaluated_metric_is_held_between_centre_evaluations(capsys):
    no_centre = dict(_row(0), metric=math.nan)
    assert row_fields(no_centre, "loss", float)[0][0] == "best"  # nothing evaluated yet
    assert row_fields(no_centre, "loss", float, held=0.5)[0] == ("loss", "0.5")
    assert row_fields(_row(0), "loss", float, held=0.5)[0] == ("loss", "0.9556")

    def sphere(X):
        return (X**2).sum(dim=1)

    # θ is evaluated at steps 1 and 11 only; the lines of every step show its last loss
    m = zoopt.Minimizer(sphere, torch.ones(3), estimator="snes", population=4, progress="lines")
    m.progress_every = 0.0  # a line every step
    m.run(12)
    lines = [ln for ln in capsys.readouterr().err.splitlines() if " step " in ln]
    assert len(lines) == 12
    shown = [ln.split(" loss=")[1].split()[0] for ln in lines]
    assert len(set(shown[:10])) == 1 and shown[10] == shown[11] != shown[0]


def test_minimize_shows_plain_lines_and_a_bar(capsys):
    def sphere(X):
        return (X**2).sum(dim=1)

    opts = dict(estimator="snes", steps=3, population=4)
    zoopt.minimize(sphere, torch.ones(3), progress="lines", **opts)
    err = capsys.readouterr().err
    assert "step 3/3" in err and "best=" in err
    assert "loss=nan" not in err  # θ's loss is never shown as NaN
    zoopt.minimize(sphere, torch.ones(3), progress=True, **opts)
    assert "/3 |" in capsys.readouterr().err  # the bar was drawn (and cleared at the end)
    zoopt.minimize(sphere, torch.ones(3), progress=False, **opts)
    assert capsys.readouterr().err == ""


def test_a_line_is_printed_while_ray_starts(capsys):
    pytest.importorskip("ray")
    from zoopt.evaluators.local import LocalEvaluator
    from zoopt.evaluators.ray import RayEvaluator

    ev = RayEvaluator(num_workers=1)  # not started: constructing it starts nothing
    try:
        assert "starting Ray" in startup_note(ev)
        m = zoopt.Minimizer(lambda X: X.sum(1), torch.ones(2), evaluator=ev, progress="lines")
        display = make_progress(m, 5)
        assert display is not None
        assert f"{m.estimator.name}: starting Ray" in capsys.readouterr().err
    finally:
        ev.close()
    assert startup_note(LocalEvaluator()) is None


def test_a_note_is_printed_above_the_bar():
    out = io.StringIO()
    p = Progress(10, 0, "es", "return", lambda loss: -loss, ncols=80, file=out)
    p.update(_row(1))
    p.note("stalled search at step 10: every loss ...")
    p.update(_row(2))
    p.close()
    text = out.getvalue()
    assert "\rstalled search at step 10: every loss ...\n" in text
    assert "es 1/10 |" in text.split("stalled search")[1]  # the bar is drawn again below it
