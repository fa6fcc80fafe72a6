"""Config parsing and validation: one clear error naming the key for every kind of mistake."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from zoopt.config import (
    ConfigError,
    apply_overrides,
    dumps_toml,
    estimator_settings,
    load_config,
    parse_config,
    parse_override,
    validate,
)

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "configs"

BASE = {
    "objective": {"kind": "function", "function": "sphere", "dim": 3},
    "budget": {"steps": 5},
}


def check(raw: dict) -> dict:
    return validate(copy.deepcopy(raw))


def error_of(raw: dict) -> str:
    with pytest.raises(ConfigError) as info:
        validate(raw)
    return str(info.value)


def with_(path: str, value) -> dict:
    raw = copy.deepcopy(BASE)
    node = raw
    parts = path.split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = value
    return raw


def test_defaults_are_filled_in():
    cfg = check(BASE)
    assert cfg["seed"] == 0 and cfg["estimator"] == "auto"
    assert cfg["optimizer"]["name"] == "adam" and cfg["optimizer"]["lr"] == 0.02
    assert cfg["budget"] == {"steps": 5}
    assert cfg["evaluator"]["kind"] == "local"
    assert cfg["objective"]["dim"] == 3 and "x0" not in cfg["objective"]


@pytest.mark.parametrize(
    "path, value, expected",
    [
        ("sed", 1, ["sed: unknown key", "Did you mean 'seed'?"]),
        ("budget.step", 10, ["budget.step: unknown key", "Did you mean 'steps'?"]),
        ("optimizer.learning_rate", 0.1, ["optimizer.learning_rate: unknown key"]),
        ("objective.dimm", 3, ["objective.dimm: unknown key", "Did you mean 'dim'?"]),
        ("output.chekpoint_every", 3, ["Did you mean 'checkpoint_every'?"]),
    ],
)
def test_unknown_keys_are_named_with_a_suggestion(path, value, expected):
    msg = error_of(with_(path, value))
    for part in expected:
        assert part in msg


@pytest.mark.parametrize(
    "path, value, expected",
    [
        ("budget.steps", "100", "budget.steps: must be an int, got '100'"),
        ("budget.steps", 1.5, "budget.steps: must be an int"),
        ("seed", True, "seed: must be an int, got True"),
        ("optimizer.lr", "fast", "optimizer.lr: must be a number"),
        ("output.tensorboard", 1, "output.tensorboard: must be true or false"),
        ("objective.x0", "zero", "objective.x0: must be"),
        ("budget", 5, "budget: must be a table"),
    ],
)
def test_wrong_types_are_named(path, value, expected):
    assert expected in error_of(with_(path, value))


@pytest.mark.parametrize(
    "path, value, expected",
    [
        ("budget.steps", 0, "budget.steps: must be an int >= 1, got 0"),
        ("budget.max_evaluations", -5, "budget.max_evaluations: must be an int >= 1"),
        ("optimizer.lr", -0.1, "optimizer.lr: must be a number > 0, got -0.1"),
        ("optimizer.schedule", "cosin", "optimizer.schedule: must be one of"),
        ("optimizer.name", "adamm", "optimizer.name: must be a torch.optim optimizer"),
        ("evaluator.kind", "cluster", "evaluator.kind: must be one of 'local', 'processes', 'ray'"),
        (
            "evaluator.num_workers",
            2,
            "evaluator.num_workers: only for evaluator.kind = 'processes' or 'ray'",
        ),
        ("evaluator.address", "auto", "evaluator.address: only for evaluator.kind = 'ray'"),
        ("objective.function", "ackley", "objective.function: must be one of 'sphere'"),
        ("objective.x0", [1.0, 2.0], "objective.x0: a list must have dim = 3 numbers, got 2"),
        ("output.progress", "fancy", "output.progress: must be one of 'auto'"),
        ("compare.seeds", [], "compare.seeds: must be a non-empty list of ints"),
    ],
)
def test_impossible_values_are_named(path, value, expected):
    assert expected in error_of(with_(path, value))


def test_objective_kind_and_required_keys():
    assert "objective: required table [objective] is missing" in error_of({})
    raw = {"objective": {"kind": "functon"}}
    assert "Did you mean 'function'?" in error_of(raw)
    assert "objective.kind: required key is missing" in error_of({"objective": {"dim": 3}})
    assert "objective.env: required key is missing" in error_of({"objective": {"kind": "gym"}})
    raw = {"objective": {"kind": "function", "function": "rosenbrock", "dim": 1}}
    assert "objective.dim: rosenbrock needs an int >= 2" in error_of(raw)
    raw = {"objective": {"kind": "classification", "metric": "auc"}}
    assert "objective.metric: must be one of 'accuracy', 'f1'" in error_of(raw)


def test_estimator_names_and_options_are_checked():
    assert "estimator: must be a registered estimator" in error_of(with_("estimator", "ess"))
    assert "Did you mean 'es'?" in error_of(with_("estimator", "ess"))
    msg = error_of(with_("estimators.es", {"sigmaa": 0.1}))
    assert "estimators.es.sigmaa: unknown key" in msg and "Did you mean 'sigma'?" in msg
    msg = error_of(with_("estimators.es", {"sigma": -1.0}))
    assert msg.startswith("config: estimators.es: sigma must be")
    # population's default is "auto": the estimator's own check names the option
    msg = error_of(with_("estimators.es", {"population": "many"}))
    assert msg.startswith("config: estimators.es:")
    assert "population must be an int, got 'many'" in msg
    assert "estimators.samplng: unknown key" in error_of(with_("estimators.samplng", {}))
    msg = error_of(with_("compare.estimators", ["es", "grad"]))
    assert "compare.estimators[1]" in msg and "Did you mean 'gradient'?" in msg


def test_an_option_that_takes_a_bool_or_a_string():
    """cmaes's surrogate is true, false or "adaptive": the string passes the light type
    check, a wrong string gets the estimator's own message, a number the type error."""
    cfg = check(with_("estimators.cmaes", {"surrogate": "adaptive"}))
    assert cfg["estimators"]["cmaes"]["surrogate"] == "adaptive"
    msg = error_of(with_("estimators.cmaes", {"surrogate": "adaptiv"}))
    assert msg.startswith("config: estimators.cmaes:")
    assert "surrogate must be True, False or 'adaptive', got 'adaptiv'" in msg
    assert "estimators.cmaes.surrogate: must be true or false, got 1" in error_of(
        with_("estimators.cmaes", {"surrogate": 1})
    )


def test_per_estimator_optimizer_overrides():
    cfg = check(with_("estimators.es", {"sigma": 0.2, "optimizer": {"lr": 0.5}}))
    options, opt = estimator_settings(cfg, "es")
    assert options == {"sigma": 0.2}
    assert opt["lr"] == 0.5 and opt["name"] == "adam"
    _, opt = estimator_settings(cfg, "sampling")
    assert opt["lr"] == 0.02
    msg = error_of(with_("estimators.es", {"optimizer": {"lr": 0}}))
    assert "estimators.es.optimizer.lr: must be a number > 0" in msg


def test_overrides_parse_toml_scalars():
    assert parse_override("budget.steps=200") == (["budget", "steps"], 200)
    assert parse_override("optimizer.lr=1e-3") == (["optimizer", "lr"], 0.001)
    assert parse_override("output.plot=false") == (["output", "plot"], False)
    assert parse_override("compare.seeds=[0, 1]") == (["compare", "seeds"], [0, 1])
    assert parse_override('name="a b"') == (["name"], "a b")
    # not TOML: kept as a plain string, never evaluated
    assert parse_override("objective.env=zoopt/DeepSea-v0") == (
        ["objective", "env"],
        "zoopt/DeepSea-v0",
    )
    assert parse_override("name=__import__('os')") == (["name"], "__import__('os')")
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_override("budget.steps")
    with pytest.raises(ConfigError, match="dotted name"):
        parse_override("budget..steps=1")
    with pytest.raises(ConfigError, match="seed is a value, not a table"):
        apply_overrides({"seed": 1}, ["seed.x=2"])
    raw = apply_overrides(BASE, ["budget.steps=7", "estimators.es.sigma=0.3"])
    assert raw["budget"]["steps"] == 7 and raw["estimators"]["es"]["sigma"] == 0.3
    assert BASE["budget"]["steps"] == 5  # the input is not modified


def test_toml_syntax_errors_name_the_file(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[budget\nsteps = 3\n")
    with pytest.raises(ConfigError, match="bad.toml: not valid TOML"):
        load_config(path)
    with pytest.raises(ConfigError, match="cannot read the config"):
        load_config(tmp_path / "missing.toml")


def test_written_config_reads_back_the_same(tmp_path):
    raw = with_("estimators.sampling", {"alpha": float("inf"), "sigma": 0.3})
    raw["name"] = 'quote " and \\ backslash'
    raw["objective"]["x0"] = [0.5, -1e-7, 3.0]
    raw["estimators"]["es"] = {"sigma": 0.1, "optimizer": {"lr": 0.3}}
    cfg = check(raw)
    text = dumps_toml(cfg, header="resolved\nsecond line")
    assert text.startswith("# resolved\n# second line\n")
    again = validate(parse_config(text))
    assert again == cfg
    path = tmp_path / "c.toml"
    path.write_text(text)
    assert load_config(path) == cfg


def test_load_config_applies_overrides_and_names_the_run(tmp_path):
    path = tmp_path / "exp.toml"
    path.write_text('[objective]\nkind = "function"\ndim = 4\n')
    cfg = load_config(path, ["budget.steps=9", "estimator=es"])
    assert cfg["name"] == "exp" and cfg["budget"]["steps"] == 9 and cfg["estimator"] == "es"
    with pytest.raises(ConfigError, match=r"exp.toml: budget.steps: must be an int >= 1"):
        load_config(path, ["budget.steps=0"])


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.toml")), ids=lambda p: p.name)
def test_example_configs_are_valid(path):
    cfg = load_config(path)
    assert cfg["objective"]["kind"] in ("function", "gym", "classification", "translation")


def test_gym_keys_are_options_of_the_gym_objective():
    """The [objective] keys of kind "gym" stay in step with GymObjective's constructor."""
    import inspect

    from zoopt.config import OBJECTIVE_SCHEMAS
    from zoopt.objectives.gym import GymObjective

    params = set(inspect.signature(GymObjective).parameters)
    assert set(OBJECTIVE_SCHEMAS["gym"]) - {"kind", "env"} <= params
