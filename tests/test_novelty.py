"""Novelty search (zoopt.novelty), behaviours from Gymnasium rollouts, the stalled-search note."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

import zoopt
from zoopt import Objective
from zoopt.checkpoint import CheckpointError, load_checkpoint, load_tensor, save_checkpoint
from zoopt.config import ConfigError, validate
from zoopt.estimators import PopulationEstimator, get_estimator
from zoopt.experiment import resume_experiment, run_experiment
from zoopt.novelty import BehaviourTap, Novelty, knn_novelty, make_novelty
from zoopt.objectives.gym import GymObjective
from zoopt.runlog import read_metrics
from zoopt.weights import centered_ranks


class SphereWithPlace(Objective):
    """Sphere losses; the behaviour is where the candidate stands (its first two coordinates)."""

    name = "sphere-with-place"

    def evaluate(self, X, seed=0):
        return (X**2).sum(1)

    def evaluate_with_behaviour(self, X, seed=0):
        return self.evaluate(X, seed), X[:, :2].clone()


def deep_sea(size: int = 5, **kw) -> GymObjective:
    return GymObjective(
        "zoopt/DeepSea-v0",
        max_episode_steps=size,
        env_kwargs={"size": size, "randomize_actions": True},
        **kw,
    )


# -- the novelty of a behaviour -----------------------------------------------------------
def test_novelty_is_zero_on_the_archive_and_grows_with_distance():
    archive = torch.zeros(5, 3, dtype=torch.float64)
    points = torch.tensor([[0.0, 0, 0], [1.0, 0, 0], [2.0, 0, 0], [0, 3.0, 4.0]])
    nov = knn_novelty(points, archive, k=3)
    assert nov[0] == 0.0
    assert nov.tolist() == pytest.approx([0.0, 1.0, 2.0, 5.0])
    assert bool((nov[1:] > nov[:-1]).all())


@pytest.mark.parametrize("k", [1, 3, 10, 50])
def test_knn_novelty_matches_a_brute_force_reference(k):
    g = torch.Generator().manual_seed(k)
    behaviours, archive = torch.randn(17, 4, generator=g), torch.randn(23, 4, generator=g)
    expected = []
    for b in behaviours:
        dists = sorted(math.dist(b.tolist(), a.tolist()) for a in archive)
        expected.append(sum(dists[:k]) / len(dists[:k]))
    assert knn_novelty(behaviours, archive, k).tolist() == pytest.approx(expected, rel=1e-12)
    # against each other: a row's own zero distance is left out
    own = knn_novelty(behaviours, behaviours, k, exclude_self=True)
    ref = []
    for i, b in enumerate(behaviours):
        d = sorted(math.dist(b.tolist(), c.tolist()) for j, c in enumerate(behaviours) if j != i)
        ref.append(sum(d[:k]) / len(d[:k]))
    assert own.tolist() == pytest.approx(ref, rel=1e-12)


def test_combined_loss_is_the_rank_mixture_and_its_limits():
    losses = torch.tensor([3.0, 1.0, 2.0, 4.0])
    behaviours = torch.tensor([[0.0], [1.0], [5.0], [2.0]])
    nov = Novelty(0.3, k=1)
    nov.add(torch.tensor([0.0]))
    combined, info = nov.combine(losses, behaviours)
    n = knn_novelty(behaviours, torch.zeros(1, 1), 1)
    expected = 0.7 * centered_ranks(losses.double()) - 0.3 * centered_ranks(n)
    assert torch.allclose(combined.double(), expected)
    assert info["mean_novelty"] == pytest.approx(float(n.mean()))
    # λ = 1: pure novelty search ranks by novelty alone (the most novel first)
    pure, _ = Novelty(1.0, k=1).combine(losses, behaviours)
    assert int(torch.argmin(pure)) == 2
    # equal losses: the novelty alone orders the draws, whatever λ
    flat, _ = Novelty(0.05, k=1).combine(torch.zeros(4), behaviours)
    assert torch.equal(
        torch.argsort(flat), torch.argsort(-knn_novelty(behaviours, behaviours, 1, True))
    )


def test_archive_keeps_the_newest_and_refuses_another_size():
    nov = Novelty(0.5, archive_size=3)
    for i in range(5):
        nov.add(torch.tensor([float(i), 0.0]))
    assert nov.archive[:, 0].tolist() == [2.0, 3.0, 4.0]
    with pytest.raises(ValueError, match="B = 2, got 3"):
        nov.add(torch.zeros(3))


def test_adaptive_weight_moves_as_documented():
    """NSRA-ES: λ falls on improvement, rises after `patience` steps without."""
    nov = Novelty("adaptive", initial_weight=0.5, weight_step=0.1, patience=3)
    b = torch.randn(4, 2, generator=torch.Generator().manual_seed(0))
    lams = []
    # best losses per step: improve, improve, stall ×3, stall ×3, improve
    for best in [5.0, 4.0, 4.0, 4.5, 4.0, 4.2, 4.1, 4.3, 1.0]:
        nov.combine(torch.tensor([best, 9.0, 9.0, 9.0]), b)
        lams.append(round(nov.lam, 10))
    assert lams == [0.4, 0.3, 0.3, 0.3, 0.4, 0.4, 0.4, 0.5, 0.4]
    fixed = Novelty(0.5)
    fixed.combine(torch.tensor([1.0, 2.0]), torch.zeros(2, 1))
    assert fixed.lam == 0.5


@pytest.mark.parametrize(
    "value, message",
    [
        (0.0, "weight must be a number in \\(0.0, 1.0\\]"),
        (1.5, "weight must be"),
        ("more", "'adaptive'"),
        ({"k": 0}, "k must be a positive int"),
        ({"archive_size": 2.5}, "archive_size must be a positive int"),
        ([0.5], "novelty must be None, True"),
    ],
)
def test_bad_novelty_options_name_the_argument(value, message):
    with pytest.raises(ValueError, match=message):
        make_novelty(value)


# -- through the loop ---------------------------------------------------------------------
def population_estimators() -> list[str]:
    return [
        n for n in zoopt.available_estimators() if isinstance(get_estimator(n), PopulationEstimator)
    ]


@pytest.mark.parametrize("name", population_estimators())
def test_every_population_estimator_takes_novelty(name):
    result = zoopt.minimize(
        SphereWithPlace(),
        torch.ones(4),
        estimator=name,
        steps=4,
        seed=0,
        novelty=0.5,
        progress=False,
    )
    h = result.history
    assert h["archive_size"] == [1.0, 2.0, 3.0, 4.0]  # θ's behaviour joins each step
    assert all(w == 0.5 for w in h["novelty_weight"])
    assert all(n >= 0 for n in h["mean_novelty"])
    assert math.isfinite(result.best_loss)


def test_novelty_changes_the_step_and_the_reported_losses_stay_raw():
    kw = dict(estimator="es", steps=3, seed=1, sigma=0.3, population=8, progress=False)
    plain = zoopt.minimize(SphereWithPlace(), torch.ones(4), **kw)
    novel = zoopt.minimize(SphereWithPlace(), torch.ones(4), novelty=1.0, **kw)
    assert not torch.equal(plain.x, novel.x)
    # the history's losses are the objective's, not the combined ranks
    assert novel.history["loss"][0] == pytest.approx(4.0)
    assert novel.history["population_loss"][0] > 1.0


def test_novelty_refuses_estimators_and_objectives_it_cannot_use():
    with pytest.raises(ValueError, match="novelty: estimator 'gradient'"):
        zoopt.Minimizer(lambda X: (X**2).sum(1), torch.ones(2), estimator="gradient", novelty=0.5)
    with pytest.raises(ValueError, match="returns no behaviours"):
        zoopt.Minimizer(lambda X: (X**2).sum(1), torch.ones(2), estimator="es", novelty=0.5)


def test_ask_tell_takes_behaviours():
    m = zoopt.Minimizer(None, np.ones(3), estimator="es", population=6, seed=0, novelty=0.5)
    X = m.ask()
    with pytest.raises(ValueError, match=r"behaviours must be \(6, B\)"):
        m.tell((X**2).sum(1))
    row = m.tell((X**2).sum(1), behaviours=X[:, :1])
    assert row["step"] == 1 and m.history["archive_size"] == [1.0]
    plain = zoopt.Minimizer(None, np.ones(3), estimator="es", population=6, seed=0)
    X = plain.ask()
    with pytest.raises(ValueError, match="needs a Minimizer built with novelty"):
        plain.tell((X**2).sum(1), behaviours=X)


def test_archive_survives_state_dict_round_trip():
    """A run continued from its state equals the uninterrupted run, archive and λ included."""
    kw = dict(estimator="snes", steps=8, seed=2, novelty="adaptive", progress=False)
    full = zoopt.Minimizer(SphereWithPlace(), torch.ones(4), **kw)
    full.run(8)
    half = zoopt.Minimizer(SphereWithPlace(), torch.ones(4), **kw)
    half.run(4)
    state = half.state_dict()
    resumed = zoopt.Minimizer(SphereWithPlace(), torch.ones(4), **kw)
    resumed.load_state_dict(state)
    resumed.run(8)
    assert torch.equal(full.x, resumed.x)
    assert torch.equal(full.novelty.archive, resumed.novelty.archive)
    assert full.novelty.lam == resumed.novelty.lam
    assert full.history["mean_novelty"] == resumed.history["mean_novelty"]


# -- Gymnasium behaviours -------------------------------------------------------------------
def test_deep_sea_behaviour_is_the_set_of_cells_visited():
    obj = deep_sea(5)
    assert obj.behaviour == "visited"  # grid observations: the final one is empty
    X = torch.randn(6, obj.dim, generator=torch.Generator().manual_seed(0))
    losses, b = obj.evaluate_with_behaviour(X, seed=4)
    assert torch.equal(losses, obj.evaluate(X, seed=4))
    cells = b.reshape(6, 5, 5)
    assert torch.equal(cells.sum((1, 2)), torch.full((6,), 5.0, dtype=torch.float64))
    assert torch.equal(cells.sum(2), torch.ones(6, 5, dtype=torch.float64))  # one per row
    # the path replayed by hand: the greedy policy's moves on a single environment
    import gymnasium as gym

    env = gym.make("zoopt/DeepSea-v0", size=5, randomize_actions=True)
    obs, _ = env.reset(seed=0)
    seen = np.zeros((5, 5))
    for _ in range(5):
        seen = np.maximum(seen, obs)
        obs, *_ = env.step(int(obj.act(X[0], obs)))
    assert np.array_equal(seen, cells[0].numpy())


@pytest.mark.parametrize("slots, host", [(1, True), (3, True), (4, False)])
def test_behaviours_do_not_depend_on_slots_or_refill(slots, host):
    for env, kw in [("CartPole-v1", {}), ("FrozenLake-v1", {"env_kwargs": {"is_slippery": False}})]:
        ref = GymObjective(env, episodes=2, **kw)
        X = torch.randn(5, ref.dim, generator=torch.Generator().manual_seed(1))
        l0, b0 = ref.evaluate_with_behaviour(X, seed=3)
        obj = GymObjective(env, episodes=2, slots=slots, **kw)
        obj._host_refill = host
        l1, b1 = obj.evaluate_with_behaviour(X, seed=3)
        assert torch.equal(l0, l1) and torch.equal(b0, b1), env


def test_cartpole_final_observation_ends_the_episode():
    obj = GymObjective("CartPole-v1", behaviour="final")
    X = torch.zeros(1, obj.dim)  # always the same action: the pole falls within a few steps
    _, b = obj.evaluate_with_behaviour(X, seed=0)
    x, theta = float(b[0, 0]), float(b[0, 2])
    assert abs(theta) > 0.2095 or abs(x) > 2.4  # the terminal state, not a reset one


def test_bad_behaviour_option_is_named():
    with pytest.raises(ValueError, match="behaviour must be 'auto', 'final' or 'visited'"):
        GymObjective("CartPole-v1", behaviour="last")


# -- on Ray --------------------------------------------------------------------------------
def test_ray_gives_the_local_run(ray_address):
    from zoopt.evaluators.ray import RayEvaluator

    kw = dict(
        estimator="es", steps=4, seed=0, sigma=1.0, population=12, novelty=0.5, progress=False
    )
    local = zoopt.minimize(deep_sea(5), torch.zeros(deep_sea(5).dim), **kw)
    with RayEvaluator(num_workers=2, num_cpus_per_worker=0.5, chunks_per_worker=3) as ev:
        remote = zoopt.minimize(deep_sea(5), torch.zeros(deep_sea(5).dim), evaluator=ev, **kw)
    assert torch.equal(local.x, remote.x)
    assert local.history["mean_novelty"] == remote.history["mean_novelty"]
    assert local.history["archive_size"] == remote.history["archive_size"]


# -- the stalled search -----------------------------------------------------------------------
def test_stalled_search_warns_once_on_a_constant_objective():
    with pytest.warns(zoopt.StalledSearchWarning, match="equal for 10 steps") as caught:
        result = zoopt.minimize(
            lambda X: torch.zeros(len(X)), torch.zeros(3), estimator="es", steps=30, progress=False
        )
    assert len([w for w in caught if w.category is zoopt.StalledSearchWarning]) == 1
    assert len(result.notes) == 1 and "novelty" in result.notes[0]
    assert result.history["signal_fraction"] == [0.0] * 30


def test_no_stall_warning_on_a_sphere_or_at_a_reached_plateau():
    with warnings.catch_warnings():
        warnings.simplefilter("error", zoopt.StalledSearchWarning)
        r = zoopt.minimize(
            lambda X: (X**2).sum(1), torch.ones(3), estimator="es", steps=30, progress=False
        )
        assert r.notes == [] and r.history["signal_fraction"][0] == 1.0
        # a step function every candidate soon reaches: converged, not stalled
        zoopt.minimize(
            lambda X: torch.clamp((X**2).sum(1).floor(), max=3.0),
            torch.full((3,), 0.9),
            estimator="es",
            steps=60,
            progress=False,
        )


def test_stall_note_goes_to_the_progress_lines_and_the_summary(tmp_path, capsys):
    cfg = validate(
        {
            "seed": 0,
            "estimator": "es",
            "objective": {
                "kind": "gym",
                "env": "zoopt/DeepSea-v0",
                "max_episode_steps": 8,
                # no move cost: every return is 0 until the treasure is found
                "env_kwargs": {"size": 8, "randomize_actions": True, "unscaled_move_cost": 0.0},
            },
            "estimators": {"es": {"population": 4, "sigma": 0.01}},
            "budget": {"steps": 14},
            "output": {"tensorboard": False, "plot": False, "progress": "lines"},
        }
    )
    summary = run_experiment(cfg, tmp_path / "r")
    assert "stalled search" in capsys.readouterr().err
    assert summary.notes and summary.notes[0].startswith("stalled search at step 10")


# -- configs and checkpoints -------------------------------------------------------------------
def novelty_config(**novelty) -> dict:
    return validate(
        {
            "seed": 1,
            "estimator": "es",
            "objective": {
                "kind": "gym",
                "env": "zoopt/DeepSea-v0",
                "max_episode_steps": 5,
                "env_kwargs": {"size": 5, "randomize_actions": True},
            },
            "estimators": {"es": {"population": 8, "sigma": 1.0}},
            "novelty": {"weight": "adaptive", **novelty},
            "budget": {"steps": 8},
            "output": {"tensorboard": False, "plot": False, "progress": "none"},
        }
    )


def test_config_runs_novelty_and_resume_restores_the_archive(tmp_path):
    cfg = novelty_config(patience=2)
    run_experiment(cfg, tmp_path / "full")
    run_experiment(cfg, tmp_path / "half", until=4)
    state = load_checkpoint(tmp_path / "half" / "checkpoint.pt")["minimizer"]["novelty"]
    assert state["archive"].shape == (4, 25)
    resume_experiment(tmp_path / "half")
    assert torch.equal(
        load_tensor(tmp_path / "full" / "last.pt"), load_tensor(tmp_path / "half" / "last.pt")
    )
    a, b = read_metrics(tmp_path / "full"), read_metrics(tmp_path / "half")
    for key in ("archive_size", "mean_novelty", "novelty_weight", "signal_fraction"):
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    full = load_checkpoint(tmp_path / "full" / "checkpoint.pt")["minimizer"]["novelty"]
    half = load_checkpoint(tmp_path / "half" / "checkpoint.pt")["minimizer"]["novelty"]
    assert torch.equal(full["archive"], half["archive"]) and full["lam"] == half["lam"]


@pytest.mark.parametrize(
    "table, key",
    [
        ({"weight": 2}, "novelty.weight"),
        ({"weight": "more"}, "novelty.weight"),
        ({"k": 0}, "novelty.k"),
    ],
)
def test_config_names_a_bad_novelty_key(table, key):
    with pytest.raises(ConfigError, match=key):
        novelty_config(**table)


@pytest.mark.parametrize(
    "damage, entry",
    [
        (lambda s: s.update(archive=s["archive"].float()), "novelty.archive"),
        (lambda s: s["archive"].__setitem__((0, 0), math.nan), "novelty.archive"),
        (lambda s: s.update(lam=1.5), "novelty lam"),
        (lambda s: s.pop("stalled"), "novelty: expected a table"),
    ],
)
def test_a_damaged_archive_is_refused_by_name(tmp_path, damage, entry):
    cfg = novelty_config()
    run_experiment(cfg, tmp_path / "r", until=3)
    path = tmp_path / "r" / "checkpoint.pt"
    state = load_checkpoint(path)
    damage(state["minimizer"]["novelty"])
    save_checkpoint(path, state)
    with pytest.raises(CheckpointError, match=entry):
        resume_experiment(tmp_path / "r")


def test_tap_needs_behaviours():
    with pytest.raises(TypeError, match="returns no behaviours"):
        BehaviourTap(zoopt.FunctionObjective(lambda X: X.sum(1)))
    tap = BehaviourTap(SphereWithPlace())
    tap.evaluate(torch.ones(3, 4))
    with pytest.raises(RuntimeError, match="3 behaviours came back for 2 rows"):
        tap.take(2)


def test_compare_footnotes_name_the_stalled_seeds(tmp_path):
    from zoopt.experiment import compare

    cfg = validate(
        {
            "seed": 0,
            "estimator": "es",
            "objective": {
                "kind": "gym",
                "env": "FrozenLake-v1",
                "env_kwargs": {"map_name": "8x8", "is_slippery": False},
            },
            "budget": {"steps": 12},
            "compare": {"estimators": ["es", "sampling"], "seeds": [0, 1]},
            "output": {"tensorboard": False, "plot": False, "progress": "none"},
        }
    )
    with warnings.catch_warnings():
        # no progress display: the notes go to the summaries, not to Python warnings
        warnings.simplefilter("error", zoopt.StalledSearchWarning)
        rows, _ = compare(cfg, tmp_path / "cmp")
    assert [r.runs for r in rows] == [2, 2]  # every estimator ran every seed
    for r in rows:
        assert "stalled search (every loss equal for 10 steps) in seed(s) 0, 1" in r.note


@pytest.mark.parametrize("env", ["CartPole-v1", "MountainCar-v0"])
def test_torch_environments_give_gymnasiums_behaviours(env):
    ref = GymObjective(env, episodes=2)
    X = torch.randn(6, ref.dim, generator=torch.Generator().manual_seed(0))
    l0, b0 = ref.evaluate_with_behaviour(X, seed=1)
    l1, b1 = GymObjective(env, episodes=2, vectorization="torch", slots=5).evaluate_with_behaviour(
        X, seed=1
    )
    assert torch.equal(l0, l1) and torch.equal(b0, b1)
