"""The stalled-search watch: a population whose losses are all equal gives a zero estimate.

On a plateau (a sparse reward no draw has found yet) every candidate scores the same, the
centred weights vanish and the step is zero: the search sees nothing to follow. The loop
records each step's :func:`signal_fraction` in its history, and :class:`StallWatch` says
once per run, as a note, when every loss has been equal for ``stall_steps`` steps, suggesting
novelty search (Conti et al. 2018, :mod:`zoopt.novelty`) or a wider proposal.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
from torch import Tensor

__all__ = ["StalledSearchWarning", "StallWatch", "signal_fraction", "STALL"]


#: how the stalled-search note starts (it is said once per run)
STALL = "stalled search"


class StalledSearchWarning(UserWarning):
    """Every loss of the population has been equal for ``Minimizer.stall_steps`` steps."""


def signal_fraction(losses: Tensor | np.ndarray) -> float:
    """The share of finite losses that differ from the most common one (0: the population
    sees a plateau, so the estimate is zero; e.g. no draw found a sparse reward)."""
    values = _host_values(losses)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return math.nan
    if len(set(values.tolist())) == values.size:  # no two alike: no plateau (no sort)
        return 1.0
    levels, counts = np.unique(values, return_counts=True)
    return float(np.mean(values != levels[np.argmax(counts)]))


def _host_values(losses: Tensor | np.ndarray) -> np.ndarray:
    """``(K,)`` losses as float64 numpy (exact for every float dtype)."""
    if isinstance(losses, Tensor):
        return losses.detach().to("cpu", torch.float64).numpy()
    return np.asarray(losses, dtype=np.float64)


def _all_equal(values: np.ndarray) -> bool:
    """Whether the finite entries of ``values`` are more than one and all equal."""
    finite = values[np.isfinite(values)]
    return finite.size > 1 and bool((finite == finite[0]).all())


class StallWatch:
    """The watch as part of the loop (:class:`zoopt.Minimizer`): reads its ``history``,
    ``notes``, ``best_loss``, ``novelty``, ``step_count`` and progress display, and keeps the
    count of flat steps in ``_flat_steps`` (checkpointed with the loop's state)."""

    #: steps with every population loss equal (a zero estimate) before the run says so
    stall_steps: int = 10

    def _watch_stall(self, losses: Tensor | np.ndarray, raw: Tensor | np.ndarray) -> None:
        """Say once when every loss the estimator saw (``losses`` ``(K,)``; ``raw`` before
        novelty) has been equal for ``stall_steps`` steps, unless all reach the best loss
        seen."""
        flat = _all_equal(_host_values(losses))
        self._flat_steps = self._flat_steps + 1 if flat else 0
        if self._flat_steps != self.stall_steps or any(n.startswith(STALL) for n in self.notes):
            return
        raw = _host_values(raw)
        raw = raw[np.isfinite(raw)]
        # some earlier population's losses differed (this step's are all equal)
        seen_signal = any(f > 0 for f in self.history.get("signal_fraction", []))
        if seen_signal and bool((raw == raw[0]).all()) and float(raw[0]) <= self.best_loss:
            return  # converged: the whole population reaches the best loss seen
        note = (
            f"{STALL} at step {self.step_count + 1}: every loss of the population has been "
            f"equal for {self.stall_steps} steps, so the estimate is zero and the search "
            "sees nothing to follow. Try "
            + (
                "novelty search (novelty=0.5; [novelty] weight = 0.5 in a config), "
                if self.novelty is None
                else "a larger novelty weight, "
            )
            + "a wider sigma, or more episodes per candidate."
        )
        self.notes.append(note)
        if self._display is not None and hasattr(self._display, "note"):
            self._display.note(note)
        else:
            warnings.warn(note, StalledSearchWarning, stacklevel=4)
