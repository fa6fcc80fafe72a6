"""Objective and evaluator kinds declare their config schema by their builders' signatures."""

from __future__ import annotations

import inspect
import subprocess
import sys
from typing import Annotated, Literal

import pytest
import torch

from zoopt.config import (
    OBJECTIVE_RECIPES,
    OBJECTIVE_SCHEMAS,
    ConfigError,
    at_least,
    objective_recipes,
    register_objective,
    validate,
)
from zoopt.experiment import _describe_objective, build_objective
from zoopt.objectives.recipes import BuiltObjective


def error_of(objective: dict) -> str:
    with pytest.raises(ConfigError) as e:
        validate({"objective": objective})
    return str(e.value)


@pytest.fixture
def shifted_sphere():
    """A kind registered by the test only, removed afterwards."""

    @register_objective("shifted_sphere", label="{centre} in D={dim}")
    def build(
        seed: int,
        /,
        *,
        dim: Annotated[int, at_least(2)] = 4,
        centre: float = 1.5,
        norm: Literal["l1", "l2"] = "l2",
        tag: str | None = None,
    ) -> BuiltObjective:
        """A sphere whose minimum sits at ``centre`` in every coordinate.

        Args:
            dim: number of parameters D.
            centre: where the minimum is.
            norm: the distance measured.
            tag: a label.
        """
        from zoopt.objectives.base import FunctionObjective

        def loss(x: torch.Tensor) -> torch.Tensor:
            d = x - centre
            return d.abs().sum(-1) if norm == "l1" else (d * d).sum(-1)

        return BuiltObjective(FunctionObjective(loss, dim=dim), torch.zeros(dim))

    yield build
    OBJECTIVE_RECIPES.pop("shifted_sphere")


def test_a_registered_kind_appears_in_the_schema_and_validates(shifted_sphere):
    assert "shifted_sphere" in objective_recipes()
    schema = OBJECTIVE_SCHEMAS["shifted_sphere"]
    assert list(schema) == ["kind", "dim", "centre", "norm", "tag"]
    assert schema["centre"].doc == "where the minimum is."
    assert objective_recipes()["shifted_sphere"].doc.startswith("A sphere whose minimum")
    cfg = validate({"objective": {"kind": "shifted_sphere", "dim": 3}})
    assert cfg["objective"] == {"kind": "shifted_sphere", "dim": 3, "centre": 1.5, "norm": "l2"}
    built = build_objective(cfg["objective"])
    assert built.x0.shape == (3,)
    assert float(built.objective.evaluate(torch.full((1, 3), 1.5))[0]) == 0.0
    assert _describe_objective(cfg["objective"]) == "1.5 in D=3"


def test_a_registered_kind_gets_the_same_messages(shifted_sphere):
    msg = error_of({"kind": "shifted_sphere", "centr": 1.0})
    assert "objective.centr: unknown key" in msg and "Did you mean 'centre'?" in msg
    assert "objective.dim: must be an int >= 2, got 1" in error_of(
        {"kind": "shifted_sphere", "dim": 1}
    )
    assert "objective.centre: must be a number, got 'x'" in error_of(
        {"kind": "shifted_sphere", "centre": "x"}
    )
    assert "objective.tag: must be a string" in error_of({"kind": "shifted_sphere", "tag": 3})
    assert "'shifted_sphere'" in error_of({"kind": "shifted_spher"})


def test_literal_choices_are_enforced(shifted_sphere):
    msg = error_of({"kind": "shifted_sphere", "norm": "linf"})
    assert "objective.norm: must be one of 'l1', 'l2', got 'linf'" in msg
    cfg = validate({"objective": {"kind": "shifted_sphere", "norm": "l1"}})
    assert cfg["objective"]["norm"] == "l1"
    # the built-in kinds' choices come from their Literal hints too
    msg = error_of({"kind": "gym", "env": "CartPole-v1", "vectorization": "async"})
    assert "objective.vectorization: must be one of 'auto', 'native', 'sync', 'torch'" in msg


def test_a_kind_without_a_config_type_is_refused_at_registration():
    with pytest.raises(TypeError, match=r"bad\(x\).*not a config type"):

        @register_objective("bad_kind")
        def bad(seed: int, /, *, x: torch.Tensor | None = None) -> BuiltObjective:
            """Not configurable from a file."""
            raise AssertionError

    assert "bad_kind" not in OBJECTIVE_RECIPES


REQUIRED = {"gym": {"env": "CartPole-v1"}}


@pytest.mark.parametrize("kind", ["function", "gym", "classification", "translation"])
def test_defaults_come_from_the_builders_signature(kind):
    """One source: the resolved table holds the builder's defaults and nothing else."""
    recipe = objective_recipes()[kind]
    cfg = validate({"objective": {"kind": kind, **REQUIRED.get(kind, {})}})["objective"]
    params = inspect.signature(recipe.build).parameters
    for name, p in params.items():
        if p.kind is p.POSITIONAL_ONLY:
            assert name not in cfg  # supplied by the runner, never by a file
        elif p.default is p.empty:
            assert cfg[name] == REQUIRED[kind][name]
        elif p.default is None:
            assert name not in cfg
        else:
            expected = list(p.default) if isinstance(p.default, tuple) else p.default
            assert cfg[name] == expected, name
    assert set(cfg) - {"kind"} <= set(params)


def test_gym_slots_is_a_key_and_reaches_the_objective():
    assert "slots" in OBJECTIVE_SCHEMAS["gym"]
    base = {"kind": "gym", "env": "CartPole-v1"}
    assert "objective.slots: must be an int >= 1, got 0" in error_of({**base, "slots": 0})
    assert "objective.slots: must be an int, got 2.5" in error_of({**base, "slots": 2.5})
    cfg = validate({"objective": {**base, "slots": 3}})
    built = build_objective(cfg["objective"])
    assert built.objective.slots == 3
    assert built.objective.num_slots(episodes=8) == 3


def test_zoopt_list_shows_each_kinds_docstring():
    out = subprocess.run(
        [sys.executable, "-m", "zoopt", "list"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    for recipe in objective_recipes().values():
        assert recipe.doc and recipe.doc in out.stdout
        assert ", ".join(recipe.schema) in out.stdout


def test_validating_a_config_imports_no_kinds_library():
    """Validation reads signatures: the libraries the builders import stay unloaded."""
    code = (
        "import sys, zoopt; before = set(sys.modules); from zoopt.config import validate\n"
        "for kind in ('function', 'classification', 'translation'):\n"
        "    validate({'objective': {'kind': kind}})\n"
        "validate({'objective': {'kind': 'gym', 'env': 'CartPole-v1'}})\n"
        "print(sorted({m.split('.')[0] for m in set(sys.modules) - before} & {'sklearn', "
        "'sacrebleu'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_evaluator_kinds_declare_their_keys_by_signature():
    from zoopt.config import RAY_OPTIONS_SCHEMA, evaluator_recipes

    recipes = evaluator_recipes()
    assert list(recipes) == ["local", "processes", "ray"]
    assert list(recipes["local"].schema) == ["device", "max_batch"]
    assert {"num_workers", "address"} <= set(recipes["ray"].schema)
    # the Ray options a file may set stay the explicit allow-list; code-running ones are not
    assert recipes["ray"].options is RAY_OPTIONS_SCHEMA and recipes["local"].options is None
    assert not {"runtime_env", "ray_init_options"} & set(recipes["ray"].schema)
    ev = validate({"objective": {"kind": "function"}, "evaluator": {"max_batch": 4}})["evaluator"]
    assert ev == {"kind": "local", "max_batch": 4, "options": {}}
    with pytest.raises(ConfigError, match=r"evaluator.max_batch: must be an int >= 1, got 0"):
        validate({"objective": {"kind": "function"}, "evaluator": {"max_batch": 0}})
    with pytest.raises(ConfigError, match=r"evaluator.num_worker: unknown key.*'num_workers'"):
        validate({"objective": {"kind": "function"}, "evaluator": {"num_worker": 2}})
    raw = {"objective": {"kind": "function"}, "evaluator": {"kind": "ray", "runtime_env": {}}}
    with pytest.raises(ConfigError, match=r"evaluator.runtime_env: unknown key"):
        validate(raw)
    relay = {"kind": "ray", "options": {"relay_from": 8}}
    ev = validate({"objective": {"kind": "function"}, "evaluator": relay})["evaluator"]
    assert ev["options"] == {"relay_from": 8}
    relay["options"]["relay_from"] = 1
    with pytest.raises(ConfigError, match=r"evaluator.options.relay_from: must be an int >= 2"):
        validate({"objective": {"kind": "function"}, "evaluator": relay})


def test_the_local_evaluator_is_built_from_its_table():
    from zoopt.evaluators import LocalEvaluator
    from zoopt.experiment import build_evaluator

    cfg = validate({"objective": {"kind": "function"}, "evaluator": {"max_batch": 3}})
    evaluator = build_evaluator(cfg)
    assert isinstance(evaluator, LocalEvaluator) and evaluator.max_batch == 3
