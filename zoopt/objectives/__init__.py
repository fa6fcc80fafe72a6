"""Batched objectives: a population of K parameter vectors in, K losses out."""

from zoopt.objectives.bandit import CategoricalBandit
from zoopt.objectives.base import FunctionObjective, Objective, OutputSamples, as_objective
from zoopt.objectives.functions import FUNCTIONS, rastrigin, rosenbrock, sphere
from zoopt.objectives.gym import GymObjective
from zoopt.objectives.supervised import SupervisedObjective
from zoopt.objectives.translation import TranslationObjective

__all__ = [
    "Objective",
    "FunctionObjective",
    "OutputSamples",
    "CategoricalBandit",
    "as_objective",
    "sphere",
    "rosenbrock",
    "rastrigin",
    "FUNCTIONS",
    "GymObjective",
    "SupervisedObjective",
    "TranslationObjective",
]
