"""What ``sampling`` and ``es`` share: options left at ``"auto"``, resolved for D at setup.

With their defaults both estimators adapt a diagonal Gaussian proposal and take the
natural-gradient mean step themselves for D ≤ :data:`zoopt.proposal.ADAPT_MAX_DIM` (the
SNES rule: Schaul, Glasmachers & Schmidhuber, 2011); above that, or when an option excludes
it, the options not given take the fixed proposal's values (``covariance="none"``,
``eta_mean=None``: the optimizer's step on the pseudo-gradient, K =
:data:`zoopt.proposal.FIXED_POPULATION`). A checkpoint written under one choice resumes
under it (:meth:`AdaptedProposalEstimator.match_checkpoint`).
"""

from __future__ import annotations

from torch import Tensor

from zoopt.estimators.base import PopulationEstimator
from zoopt.lowrank import module_structure
from zoopt.metamodel import check_metamodel, load_model_state, make_metamodel, model_state
from zoopt.mixing import load_mixing_state, mixing_state
from zoopt.objectives.base import Objective
from zoopt.proposal import (
    FIXED_POPULATION,
    GaussianProposal,
    adapts_by_default,
    default_population,
)

__all__ = ["AdaptedProposalEstimator"]


class AdaptedProposalEstimator(PopulationEstimator):
    """Base of ``sampling`` and ``es``: resolves ``covariance``, ``eta_mean`` and
    ``population`` given as ``"auto"`` (kept in ``self._given``) for D = ``x0.numel()``.

    A subclass sets ``_given``, ``_proposal``, ``_mixing``, ``metamodel``, ``rank``,
    ``antithetic`` and the proposal's rates in its constructor, and says which of its
    options exclude the adapted proposal (:meth:`_excludes_adaptation`).
    """

    @property
    def owns_mean(self) -> bool:  # type: ignore[override]
        """True when the estimator takes the natural-gradient mean step itself."""
        return self.eta_mean not in (None, "auto")

    def _excludes_adaptation(self) -> bool:
        """Whether an option given rules the adapted proposal out."""
        raise NotImplementedError

    def state_dict(self) -> dict:
        """The proposal's state, with the mixing archive's and the model's when present."""
        state = mixing_state(self._proposal.state_dict(), self._mixing)
        return model_state(state, self._model)

    def load_state_dict(self, state: dict) -> None:
        self._proposal.load_state_dict(state)
        load_mixing_state(state, self._mixing)
        load_model_state(state, self._model)

    def match_checkpoint(self, state: dict) -> None:
        """A state without an adapted shape, loaded where the defaults chose one, comes from
        a run of the fixed proposal: the options left at ``"auto"`` take its values again."""
        if self._adapted and state.get("scale") is None:
            self._prepare(self._like, adapted=False)

    def _setup_structure(self, objective: Objective, x0: Tensor) -> None:
        """Resolve for ``x0`` and, with ``rank``, find the module's low-rank structure."""
        self._prepare(x0)
        if self.rank is not None:
            module = getattr(self, "_module", None)
            self._proposal.structure = module_structure(self.rank, module, objective, x0.numel())

    def _prepare(self, x0: Tensor, adapted: bool | None = None) -> None:
        """Resolve the ``"auto"`` options for D = ``x0.numel()`` (``adapted``: force the
        choice) and start the proposal, the population size, mixing and the model."""
        if adapted is None:
            g = self._given
            adapted = adapts_by_default(
                g["covariance"], g["eta_mean"], x0.numel(), self._excludes_adaptation()
            )
        self._adapted = adapted
        self._like = x0.detach().new_zeros(x0.numel()) if adapted else None
        self._resolve(adapted)
        self._proposal.setup(x0)
        self._size = self.population or default_population(x0.numel(), self.antithetic)
        if self._mixing is not None:
            self._mixing.load_state_dict(None)
        self._model = make_metamodel(self.metamodel, self.owns_mean, x0.numel())

    def _resolve(self, adapted: bool) -> None:
        """Set the options left at ``"auto"``: the adapted proposal's values when
        ``adapted``, the fixed proposal's otherwise; a resolved ``covariance`` rebuilds the
        proposal."""
        g = self._given
        if g["covariance"] == "auto":
            self.covariance = "diagonal" if adapted else "none"
            self._proposal = GaussianProposal(
                self.sigma, self.covariance, self.eta_sigma, self.eta_cov
            )
        if g["eta_mean"] == "auto":
            self.eta_mean = 1.0 if adapted else None
        if g["population"] == "auto":
            self.population = None if adapted else FIXED_POPULATION
        check_metamodel(self.metamodel, self.owns_mean)
