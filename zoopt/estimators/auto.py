"""``estimator="auto"``: the estimator chosen from the problem's dimension, budget and kind.

No single estimator of the family wins everywhere. On small smooth problems a
surrogate-assisted CMA-ES needs the fewest evaluations: lq-CMA-ES (Hansen, 2019, "A global
surrogate assisted CMA-ES", GECCO) ranks each generation with a linear-quadratic model and
evaluates only what the model cannot rank; with restarts (IPOP, Auger & Hansen, 2005; BIPOP,
Hansen, 2009, "Benchmarking a BI-population CMA-ES on the BBOB-2009 function testbed") it
also covers multimodal problems when the budget leaves room for several runs. For many
parameters the full covariance (O(D²) per draw) and the quadratic model ((D+1)(D+2)/2
coefficients) do not pay, and separable NES (SNES, Schaul, Glasmachers & Schmidhuber, 2011,
"High dimensions and heavy tails for natural evolution strategies") adapts one scale per
coordinate in O(D). Noisy losses (two evaluations of the same point that differ: episodic
returns, minibatch metrics) break the exact ranks a model and CMA's termination criteria
rely on; SNES's rank weights over a population average the noise out.

The rule (:func:`choose_estimator`), in order:

1. noisy losses, or D > :data:`CMAES_MAX_DIM`, or pycma missing → ``snes``;
2. integer coordinates → ``cmaes`` (pycma's integer handling), no surrogate;
3. D ≤ :data:`SURROGATE_MAX_DIM` → ``cmaes`` with ``surrogate=True`` (lq-CMA-ES; from D = 5 its mean
   also steps to the model's optimum where the model predicts well: ``model_step``);
4. otherwise → ``cmaes``;

and ``cmaes`` restarts (IPOP with the surrogate, as ``cma.fmin_lq_surr2`` ships; BIPOP
without) when the budget is unknown or at least :data:`RESTART_MIN_EVALUATIONS_PER_D`·D
evaluations. With restarts and D ≥ :data:`ADAPTIVE_MIN_DIM` the surrogate is
``"adaptive"``: a run whose model was rarely trusted (a rugged function) hands the later,
larger runs to plain CMA-ES. Options the user gives (``sigma``, ``population``, …) go to the
chosen estimator and take precedence over the rule's.

With the surrogate one step is one evaluator call of 1 to λ candidates, so a budget given
only in steps would end a run after a few hundred evaluations. Such a budget is read as that
many CMA-ES generations: ``steps``·λ evaluations, λ = 4 + ⌊3 ln D⌋ pycma's default
population (:func:`zoopt.proposal.default_population`); the report says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from zoopt.proposal import default_population

__all__ = [
    "ADAPTIVE_MIN_DIM",
    "AutoChoice",
    "CMAES_MAX_DIM",
    "PROBE_DRAWS",
    "PROBE_SIGMA",
    "Probe",
    "RESTART_MIN_EVALUATIONS_PER_D",
    "RESTARTS",
    "SURROGATE_MAX_DIM",
    "choose_estimator",
    "is_noisy",
    "resolve_auto",
]

#: above this many parameters the quadratic model's (D+1)(D+2)/2 coefficients do not pay
SURROGATE_MAX_DIM = 20
#: above this many parameters ``snes`` (O(D) per draw) replaces full-covariance CMA-ES
CMAES_MAX_DIM = 100
#: restarts are chosen when the budget allows this many evaluations per parameter, or more
RESTART_MIN_EVALUATIONS_PER_D = 100
#: the number of restarts chosen (they only happen when a run's termination criteria fire)
RESTARTS = 9
#: from this many parameters on, restarts under the surrogate use ``surrogate="adaptive"``:
#: the model is dropped for the later runs after a run in which it was rarely trusted
ADAPTIVE_MIN_DIM = 5
#: the scale of the noise probe's draws x0 + σ·z when the user gives no ``sigma`` (the
#: Gaussian estimators' default σ)
PROBE_SIGMA = 0.1
#: the noise probe's draws after x0, each evaluated with two seeds while the pairs agree
PROBE_DRAWS = 2


@dataclass(frozen=True)
class Probe:
    """What the noise probe found (:func:`is_noisy`).

    Attributes:
        noisy: whether two evaluations of one point with different seeds differed.
        evaluations: the evaluations spent (2 per point).
        points: the points probed ``(n, D)``, x0 first.
        losses: each point's loss with seed 0 ``(n,)`` (float64).
    """

    noisy: bool
    evaluations: int
    points: Tensor
    losses: Tensor


@dataclass(frozen=True)
class AutoChoice:
    """What ``estimator="auto"`` chose and why.

    Attributes:
        estimator: the registered name chosen (``"cmaes"`` or ``"snes"``).
        options: the options it is built with (the rule's, then the user's).
        label: short name of the choice (``"cmaes+surrogate"``, ``"cmaes+bipop"``, …).
        reason: the sentence reported in the run's notes and summary.
        evaluations: objective evaluations the choice spent (the noise probe).
        max_evaluations: the evaluation budget the run takes instead of a steps-only budget
            (the surrogate's steps evaluate 1 to λ candidates), or None.
        probe: the noise probe's points and losses (:class:`Probe`), which the run reuses
            (:meth:`zoopt.estimators.base.Estimator.reuse`), or None (not probed, or
            probed inside a box, where the loss belongs to the repaired point).
        noisy: the verdict on noise the choice used (the probe's, or the one given), or
            None (not known: ask/tell, or above :data:`CMAES_MAX_DIM`). A checkpoint keeps
            it, so that a resumed run makes the same choice without probing again.
    """

    estimator: str
    options: dict = field(default_factory=dict)
    label: str = ""
    reason: str = ""
    evaluations: int = 0
    max_evaluations: int | None = None
    probe: Probe | None = None
    noisy: bool | None = None

    def __str__(self) -> str:
        return self.reason


def _budget_text(budget: int | None, steps: int | None) -> str:
    if budget is not None:
        return f"budget {budget:,}"
    return f"budget {steps:,} steps" if steps is not None else "budget unknown"


def choose_estimator(
    dim: int,
    budget: int | None = None,
    *,
    steps: int | None = None,
    integer: bool = False,
    bounds: bool = False,
    noisy: bool | None = False,
    options: dict | None = None,
    cmaes_available: bool | None = None,
) -> AutoChoice:
    """The estimator for a problem of ``dim`` parameters (the rule of this module).

    Args:
        dim: D, the number of parameters.
        budget: the evaluations allowed (``max_evaluations``), or None when only ``steps``
            bound the run.
        steps: the steps allowed, for the report when ``budget`` is None.
        integer: whether some coordinates take integer values only.
        bounds: whether a box bounds the search (reported; pycma handles it either way).
        noisy: whether repeated evaluations of one point differ; None when not known
            (ask/tell without an objective), taken as not noisy.
        options: the user's estimator options, which take precedence.
        cmaes_available: whether pycma is installed (None: look it up).
    """
    if not isinstance(dim, int) or dim < 1:
        raise ValueError(f"dim must be a positive int, got {dim!r}")
    if budget is not None and not (isinstance(budget, int) and budget > 0):
        raise ValueError(f"budget must be a positive int or None, got {budget!r}")
    if cmaes_available is None:
        from zoopt.estimators import ESTIMATORS

        cmaes_available = "cmaes" in ESTIMATORS
    facts = [f"D = {dim}", _budget_text(budget, steps)]
    read_budget = None
    if bounds:
        facts.append("bounds")
    if integer:
        facts.append("integer coordinates")
    if noisy:
        facts.append("noisy losses")
    if noisy or dim > CMAES_MAX_DIM or not cmaes_available:
        name, label, rule = "snes", "snes", {}
        if not cmaes_available and not noisy and dim <= CMAES_MAX_DIM:
            facts.append("pycma not installed")
    else:
        name = "cmaes"
        surrogate = not integer and dim <= SURROGATE_MAX_DIM
        if surrogate and budget is None and steps is not None:
            lam = default_population(dim, antithetic=False)
            budget = read_budget = steps * lam
            facts[1] += f" read as {budget:,} evaluations ({steps:,} generations of λ = {lam})"
        rule = {"surrogate": True} if surrogate else {}
        if budget is None or budget >= RESTART_MIN_EVALUATIONS_PER_D * dim:
            rule["restarts"] = RESTARTS
            if not surrogate:
                rule["bipop"] = True
    chosen = {**rule, **(options or {})}
    if (
        "surrogate" not in (options or {})
        and chosen.get("surrogate")
        and chosen.get("restarts")
        and dim >= ADAPTIVE_MIN_DIM
    ):  # later runs exist: a run whose model was rarely trusted hands them to plain CMA-ES
        chosen["surrogate"] = "adaptive"
    if name == "cmaes":  # the label names what is built, the user's options included
        label = _cmaes_label(chosen)
    reason = f"auto chose {label}: " + ", ".join(facts)
    return AutoChoice(name, chosen, label, reason, max_evaluations=read_budget)


def _cmaes_label(options: dict) -> str:
    """``cmaes``, ``+surrogate`` (``+adaptive-surrogate``) when on, ``+ipop``/``+bipop`` when
    restarts are."""
    label = "cmaes+surrogate" if options.get("surrogate") else "cmaes"
    if options.get("surrogate") == "adaptive":
        label = "cmaes+adaptive-surrogate"
    if options.get("restarts"):
        label += "+bipop" if options.get("bipop") else "+ipop"
    return label


def is_noisy(objective: Any, x0: Tensor, sigma: float = PROBE_SIGMA, seed: int = 0) -> Probe:
    """Whether two evaluations with different seeds differ, at ``x0`` ``(D,)`` and, while
    the pairs agree, at up to :data:`PROBE_DRAWS` draws x0 + σ·z: 2 evaluations on most
    noisy problems, 2·(1 + PROBE_DRAWS) on a deterministic one (:class:`Probe`).

    One pair can agree on a noisy task: a zero linear policy plays every CartPole episode
    with one action, and a poor policy's returns are a few small integers, so two episodes
    often tie (x0 = 0 in 41 of 100 seeds of ``bench_peers``'s CartPole, one draw with
    σ = 0.5 in about a third of the rest)."""
    x = x0.detach()
    gen = torch.Generator().manual_seed(int(seed) & (2**63 - 1))
    points, losses, noisy = [], [], False
    for i in range(PROBE_DRAWS + 1):
        point = x
        if i:
            z = torch.randn(x.shape, generator=gen, dtype=torch.float64)
            point = x + (sigma * z).to(x.dtype)
        a, b = (torch.as_tensor(objective.evaluate(point[None], s)).reshape(-1) for s in (0, 1))
        points.append(point)
        losses.append(float(a[0]) if a.numel() else math.nan)
        if a.numel() and b.numel() and not torch.equal(a[:1], b[:1]):
            noisy = True
            break
    return Probe(
        noisy, 2 * len(points), torch.stack(points), torch.tensor(losses, dtype=torch.float64)
    )


def _probe_sigma(options: dict) -> float:
    """The scale of the noise probe's draws: the user's ``sigma`` when it is a positive
    number, else :data:`PROBE_SIGMA`."""
    sigma = options.get("sigma")
    if isinstance(sigma, (int, float)) and not isinstance(sigma, bool) and sigma > 0:
        return float(sigma)
    return PROBE_SIGMA


def resolve_auto(
    objective: Any,
    x0: Tensor,
    *,
    max_evaluations: int | None,
    steps: int,
    options: dict,
    seed: int = 0,
    noisy: bool | None = None,
) -> AutoChoice:
    """:func:`choose_estimator` for a :class:`zoopt.Minimizer`'s problem.

    ``objective`` is the loop's objective (a :class:`~zoopt.objectives.base.BoxObjective`
    when bounds or integer coordinates are set), or None for ask/tell, whose noise is not
    probed. ``noisy``: the verdict on noise when known (given by the user, or kept by a
    checkpoint), which skips the probe; None probes. The probe's evaluations
    (:func:`is_noisy`, its draw from ``seed``) are counted in the returned choice.
    """
    from zoopt.objectives.base import BoxObjective

    box = objective if isinstance(objective, BoxObjective) else None
    integer = box is not None and box.integer.numel() > 0
    bounds = box is not None and bool(
        torch.isfinite(box.lower).any() or torch.isfinite(box.upper).any()
    )
    if noisy is not None and not isinstance(noisy, bool):
        raise TypeError(f"noisy must be True, False or None (probe), got {noisy!r}")
    spent, probe = 0, None
    # above CMAES_MAX_DIM the choice is snes whatever the noise: nothing to probe
    if noisy is None and objective is not None and x0.numel() <= CMAES_MAX_DIM:
        probe = is_noisy(objective, x0, _probe_sigma(options), seed)
        noisy, spent = probe.noisy, probe.evaluations
    choice = choose_estimator(
        int(x0.numel()),
        max_evaluations,
        steps=steps,
        integer=integer,
        bounds=bounds,
        noisy=noisy,
        options=options,
    )
    return AutoChoice(
        choice.estimator, choice.options, choice.label, choice.reason, spent,
        choice.max_evaluations, probe=probe if box is None else None, noisy=noisy,
    )  # fmt: skip
