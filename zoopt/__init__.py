"""zoopt: optimise what you measure.

Every estimator here estimates one step: a draw from p(Δθ|θ) ∝ π(Δθ)·exp(−ΔL/α).
Importance-weighted sampling, antithetic ES, CMA-ES, REINFORCE and plain gradient descent
sit side by side behind :func:`minimize`.
"""

import zoopt_envs  # noqa: F401  (registers the zoopt/ Gymnasium environments)
from zoopt.estimators import available_estimators, get_estimator, register
from zoopt.evaluators import LocalEvaluator, ObjectiveFactory, make_evaluator
from zoopt.lowrank import LowRankError, LowRankMembers, LowRankPopulation
from zoopt.minimize import Minimizer, NonFiniteError, StalledSearchWarning, minimize, step_seed
from zoopt.modules import batched_forward
from zoopt.novelty import Novelty
from zoopt.objectives import FunctionObjective, Objective, OutputSamples
from zoopt.population import ExplicitPopulation, GaussianPopulation
from zoopt.population_forward import inplace_forward, population_forward
from zoopt.result import Result
from zoopt.weights import (
    NonFiniteLossError,
    centered_ranks,
    effective_sample_size,
    linear_weights,
    solve_alpha,
    tilt_weights,
)

__version__ = "0.1.0"

__all__ = [
    "minimize",
    "Minimizer",
    "batched_forward",
    "population_forward",
    "inplace_forward",
    "LowRankError",
    "LowRankMembers",
    "LowRankPopulation",
    "Result",
    "NonFiniteError",
    "NonFiniteLossError",
    "StalledSearchWarning",
    "Novelty",
    "step_seed",
    "tilt_weights",
    "effective_sample_size",
    "solve_alpha",
    "linear_weights",
    "centered_ranks",
    "get_estimator",
    "available_estimators",
    "register",
    "Objective",
    "FunctionObjective",
    "OutputSamples",
    "ExplicitPopulation",
    "GaussianPopulation",
    "LocalEvaluator",
    "ObjectiveFactory",
    "make_evaluator",
]
