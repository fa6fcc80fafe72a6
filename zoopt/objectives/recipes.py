"""The ``[objective]`` kinds of a config: one builder per kind, whose signature is its schema.

Each builder is registered with :func:`zoopt.config.register_objective`. Its keyword
parameters are the keys of the ``[objective]`` table of that kind: the type hints give the
accepted types, ``Literal[...]`` the choices, ``Annotated[T, check]`` further checks, the
defaults are the values a config gets, and the ``Args:`` of the docstring document the keys
(``zoopt list``). Validating a config reads the signatures only; the libraries behind a kind
(scikit-learn, sacrebleu, the task generators) are imported inside the builder.

To add a kind, write one more builder here or beside its objective:

    @register_objective("mykind", label="{size} items")
    def mykind(seed: int, /, *, size: Annotated[int, at_least(1)] = 10) -> BuiltObjective:
        \"\"\"One line for ``zoopt list``.

        Args:
            size: what it means.
        \"\"\"
        ...
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal

from zoopt.config import (
    ConfigError,
    at_least,
    device_name,
    finite_number_or_list,
    finite_or_learned,
    fraction,
    positive,
    positive_int_list,
    register_objective,
)

if TYPE_CHECKING:
    from torch import Tensor

__all__ = ["BuiltObjective", "function", "gym", "classification", "translation"]


@dataclass
class BuiltObjective:
    """An objective built from a config.

    Attributes:
        objective: the :class:`zoopt.Objective`.
        x0: ``(D,)`` start.
        held_out: ``f(x) -> float``, the metric of ``x`` on held-out data (None if none).
        held_out_name: its name (``"test_accuracy"``, ``"test_bleu"``, ...).
    """

    objective: Any
    x0: Tensor
    held_out: Callable[[Tensor], float] | None = None
    held_out_name: str = ""


def _seeded_init(seed: int, build: Callable[[], Any]) -> Any:
    """Build a model with PyTorch's default initialisation seeded, leaving the global RNG."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


#: the start of each test function when ``x0`` is not given
FUNCTION_STARTS = {"sphere": 1.0, "rosenbrock": -1.0, "rastrigin": 2.5}


def _check_function(obj: dict) -> None:
    if obj["function"] == "rosenbrock" and obj["dim"] < 2:
        raise ConfigError(f"objective.dim: rosenbrock needs an int >= 2, got {obj['dim']}")
    x0 = obj.get("x0")
    if isinstance(x0, list) and len(x0) != obj["dim"]:
        raise ConfigError(
            f"objective.x0: a list must have dim = {obj['dim']} numbers, got {len(x0)}"
        )


@register_objective(
    "function", needs="zoopt.objectives.functions", label="{function} (D={dim})",
    check=_check_function,
)  # fmt: skip
def function(
    seed: int,
    /,
    *,
    function: Literal["sphere", "rosenbrock", "rastrigin"] = "rosenbrock",
    dim: Annotated[int, at_least(1)] = 10,
    x0: Annotated[float | list[float], finite_number_or_list] | None = None,
) -> BuiltObjective:
    """A classic test function of D parameters (sphere, Rosenbrock, Rastrigin).

    Args:
        function: the test function.
        dim: number of parameters D.
        x0: start: one number for every coordinate, or a list of D numbers (default 1.0
            for sphere, -1.0 for rosenbrock, 2.5 for rastrigin).
    """
    import torch

    from zoopt.objectives.base import FunctionObjective
    from zoopt.objectives.functions import FUNCTIONS

    start = FUNCTION_STARTS[function] if x0 is None else x0
    x = (
        torch.tensor(start, dtype=torch.float64)
        if isinstance(start, list)
        else torch.full((dim,), float(start), dtype=torch.float64)
    )
    return BuiltObjective(FunctionObjective(FUNCTIONS[function], dim=dim, name=function), x)


@register_objective(
    "gym", needs="zoopt.objectives.gym", label="{env} ({policy} policy, {episodes} episode(s))"
)
def gym(
    seed: int,
    /,
    *,
    env: str,
    policy: Literal["linear", "mlp"] = "linear",
    episodes: Annotated[int, at_least(1)] = 1,
    max_episode_steps: Annotated[int, at_least(1)] | None = None,
    normalize_observations: bool = False,
    hidden: Annotated[list[int], positive_int_list] = (32, 32),
    activation: str = "tanh",
    log_std: Annotated[float | str, finite_or_learned] = -0.5,
    action_squash: Literal["clip", "tanh"] = "clip",
    vectorization: Literal["auto", "native", "sync", "torch"] = "auto",
    device: Annotated[str, device_name] | None = None,
    observation_clip: Annotated[float, positive] = 10.0,
    env_kwargs: dict | None = None,
    slots: Annotated[int, at_least(1)] | None = None,
    behaviour: Literal["auto", "final", "visited"] = "auto",
    episode_cap: Annotated[float, positive] | None = None,
) -> BuiltObjective:
    """Gymnasium episodes played by a policy network; the loss is minus the mean return.

    Args:
        env: a Gymnasium id (CartPole-v1, zoopt/DeepSea-v0, ...).
        policy: the policy network.
        episodes: episodes per candidate and step.
        max_episode_steps: step cap per episode.
        normalize_observations: running observation normalisation.
        hidden: hidden sizes of the mlp policy.
        activation: non-linearity of the mlp policy.
        log_std: Gaussian log std for Box actions.
        action_squash: how Box actions are bounded.
        vectorization: vector environment: Gymnasium's native or sync one, or zoopt's
            batched torch one.
        device: where 'torch' vectorised rollouts run (cpu, cuda).
        observation_clip: clip normalised observations.
        env_kwargs: keyword arguments of the environment.
        slots: env slots playing an evaluation's episodes (default: chosen per backend;
            results do not depend on it).
        behaviour: what novelty search compares: the final observation, the cells
            visited, or auto (visited for one-hot and grid observations).
        episode_cap: straggler cap: episodes end after this factor times the previous
            evaluation's mean episode length (2.0 as Salimans et al. 2017).
    """
    from zoopt.objectives.gym import GymObjective

    try:
        objective = GymObjective(
            env,
            policy,
            episodes=episodes,
            max_episode_steps=max_episode_steps,
            normalize_observations=normalize_observations,
            hidden=tuple(hidden),
            activation=activation,
            log_std=log_std,
            action_squash=action_squash,
            vectorization=vectorization,
            device=device or "cpu",
            observation_clip=observation_clip,
            env_kwargs=dict(env_kwargs or {}) or None,
            slots=slots,
            behaviour=behaviour,
            episode_cap=episode_cap,
        )
    except ModuleNotFoundError as e:
        raise ConfigError(
            f"objective.env = {env!r}: the part before ':' names a module to "
            f"import, and module {e.name!r} is not installed"
        ) from None
    except (ValueError, TypeError) as e:
        raise ConfigError(f"objective: {e}") from None
    return BuiltObjective(objective, objective.initial_parameters(seed).detach().clone())


@register_objective(
    "classification", needs="zoopt.objectives.supervised", label="{dataset} {metric} (MLP {hidden})"
)
def classification(
    seed: int,
    /,
    *,
    dataset: Literal["digits", "breast_cancer", "wine", "iris"] = "digits",
    hidden: Annotated[list[int], positive_int_list] = (32,),
    activation: Literal["relu", "tanh", "sigmoid", "gelu", "silu", "elu", "leaky_relu"] = "tanh",
    metric: Literal["accuracy", "f1"] = "accuracy",
    batch_size: Annotated[int, at_least(1)] | None = None,
    test_size: Annotated[float, fraction] = 0.25,
) -> BuiltObjective:
    """An MLP classifier on a scikit-learn data set; the loss is minus the metric.

    Args:
        dataset: a scikit-learn bundled data set.
        hidden: hidden layer sizes of the MLP.
        activation: the MLP's non-linearity.
        metric: the optimised metric.
        batch_size: examples per step (default: all).
        test_size: held-out fraction, scored at the end.
    """
    import torch

    from zoopt.datasets import load_classification, mlp
    from zoopt.objectives.supervised import SupervisedObjective

    try:
        X, y, X_test, y_test = load_classification(dataset, test_size=test_size)
    except ValueError as e:  # scikit-learn: too few examples left on one side
        raise ConfigError(
            f"objective.test_size: {test_size} cannot split {dataset!r} ({e})"
        ) from None
    classes = int(max(int(y.max()), int(y_test.max())) + 1)
    if batch_size is not None and batch_size > len(X):
        raise ConfigError(
            f"objective.batch_size: must be at most {len(X)} (the training examples of "
            f"{dataset!r} with test_size = {test_size}), got {batch_size}"
        )
    model = mlp(X.shape[1], list(hidden), classes, activation, seed=seed)
    objective = SupervisedObjective(model, X, y, metric=metric, batch_size=batch_size)
    test = SupervisedObjective(model, X_test, y_test, metric=metric)

    def held_out(x: Tensor) -> float:
        return float(test.metric(float(test.evaluate(x[None].to(torch.float32))[0])))

    x0 = torch.nn.utils.parameters_to_vector(model.parameters()).detach().clone()
    return BuiltObjective(objective, x0, held_out, f"test_{objective.metric_name}")


@register_objective(
    "translation",
    needs="zoopt.objectives.translation",
    label="synthetic translation BLEU ({size} pairs)",
)
def translation(
    seed: int,
    /,
    *,
    size: Annotated[int, at_least(1)] = 500,
    data_seed: Annotated[int, at_least(0)] = 0,
    language_seed: Annotated[int, at_least(0)] = 0,
    max_clauses: Annotated[int, at_least(1)] = 2,
    embed_dim: Annotated[int, at_least(1)] = 32,
    hidden_dim: Annotated[int, at_least(1)] = 64,
    batch_size: Annotated[int, at_least(1)] = 32,
    max_len: Annotated[int, at_least(1)] | None = None,
) -> BuiltObjective:
    """A GRU seq2seq model on generated sentence pairs; the loss is minus BLEU.

    Args:
        size: training sentence pairs.
        data_seed: seed of the generated sentences.
        language_seed: seed of the target lexicon.
        max_clauses: clauses per sentence, at most.
        embed_dim: embedding width of the seq2seq model.
        hidden_dim: GRU width of the seq2seq model.
        batch_size: sentences per step.
        max_len: longest decoded output.
    """
    import torch

    from zoopt.objectives.translation import TranslationObjective
    from zoopt.tasks import Seq2Seq, make_translation_task

    task = make_translation_task(
        size, data_seed, max_clauses=max_clauses, language_seed=language_seed
    )
    vocab = task.tgt_vocab
    model = _seeded_init(
        seed,
        lambda: Seq2Seq(
            len(task.src_vocab),
            len(vocab),
            embed_dim,
            hidden_dim,
            vocab.pad_id,
            vocab.bos_id,
            vocab.eos_id,
        ),
    )
    objective = TranslationObjective(model, task, batch_size=batch_size, max_len=max_len)

    def held_out_bleu(x: Tensor) -> float:
        return float(objective.bleu(x, split="test"))

    x0 = torch.nn.utils.parameters_to_vector(model.parameters()).detach().clone()
    return BuiltObjective(objective, x0, held_out_bleu, "test_bleu")
