"""Running observation statistics for observation normalisation.

Counts, means and sums of squared deviations M2 are merged with the parallel formula of
Chan, Golub & LeVeque (1979), "Updating formulae and a pairwise algorithm for computing
sample variances":

    n = n_a + n_b,  δ = μ_b − μ_a,  μ = μ_a + δ·n_b/n,  M2 = M2_a + M2_b + δ²·n_a·n_b/n

The statistics are frozen during one evaluation (every candidate sees the same
normaliser) and updated with that evaluation's observations afterwards, as in Salimans
et al. (2017), "Evolution Strategies as a Scalable Alternative to Reinforcement Learning".
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ["ObservationStatistics", "ObservationSums"]


class ObservationStatistics:
    """Running count, mean and M2 (sum of squared deviations) of observations ``(obs_dim,)``.

    Merges are exact (Chan et al.): merging the statistics of two data sets gives those of
    their concatenation, so workers' increments can be combined in any grouping.
    """

    def __init__(self, dim: int):
        self.count = 0.0
        self.mean = torch.zeros(dim, dtype=torch.float64)
        self.m2 = torch.zeros(dim, dtype=torch.float64)

    @classmethod
    def from_data(cls, x: Tensor) -> ObservationStatistics:
        """Statistics of ``x`` ``(n, obs_dim)``."""
        x = torch.as_tensor(x, dtype=torch.float64)
        s = cls(x.shape[1])
        s.count = float(x.shape[0])
        if x.shape[0]:
            s.mean = x.mean(0)
            s.m2 = (x - s.mean).square().sum(0)
        return s

    def merge(self, other: ObservationStatistics) -> None:
        """Add the data summarised by ``other`` (in place)."""
        if other.count == 0:
            return
        n = self.count + other.count
        delta = other.mean - self.mean
        self.mean = self.mean + delta * (other.count / n)
        self.m2 = self.m2 + other.m2 + delta.square() * (self.count * other.count / n)
        self.count = n

    @property
    def var(self) -> Tensor:
        """Population variance ``(obs_dim,)`` (ones before any data)."""
        if self.count < 2:
            return torch.ones_like(self.mean)
        return self.m2 / self.count

    def normalizer(
        self, clip: float, dtype: torch.dtype, device: torch.device
    ) -> tuple[Tensor, Tensor, float]:
        """``(mean, 1/std, clip)`` frozen for one evaluation, as ``dtype`` on ``device``."""
        mean = self.mean.to(device, dtype)
        inv_std = 1.0 / torch.sqrt(self.var.to(device, dtype) + 1e-8)
        return mean, inv_std, clip

    def state_dict(self) -> dict:
        """Plain values and tensors."""
        return {"count": self.count, "mean": self.mean.clone(), "m2": self.m2.clone()}

    @classmethod
    def from_state(cls, state: dict) -> ObservationStatistics:
        """Inverse of :meth:`state_dict`."""
        s = cls(len(state["mean"]))
        s.count = float(state["count"])
        s.mean = torch.as_tensor(state["mean"], dtype=torch.float64).clone()
        s.m2 = torch.as_tensor(state["m2"], dtype=torch.float64).clone()
        return s

    def copy(self) -> ObservationStatistics:
        """An independent copy."""
        return ObservationStatistics.from_state(self.state_dict())

    def __repr__(self) -> str:
        return f"ObservationStatistics(count={self.count:.0f}, dim={len(self.mean)})"


class ObservationSums:
    """Σ(x−c) and Σ(x−c)² of the live slots' observations, accumulated on their device.

    Shifting by c (the frozen mean) keeps the one-pass variance numerically sound; the sums
    stay on the rollout's device so that a GPU rollout never waits for the host. On the
    CPU, observations are copied into a block of :data:`BLOCK_STEPS` steps and summed a
    block at a time: one copy per step instead of half a dozen numpy calls.
    """

    #: time steps per block of the CPU's batched update
    BLOCK_STEPS = 64

    def __init__(self, shift: Tensor, device: torch.device):
        self.shift = shift.to(device, torch.float64)
        self.n = torch.zeros((), dtype=torch.float64, device=device)
        self.s1 = torch.zeros_like(self.shift)
        self.s2 = torch.zeros_like(self.shift)
        self._block: np.ndarray | None = None  # (BLOCK_STEPS, S, obs_dim) observations
        self._live: np.ndarray | None = None  # (BLOCK_STEPS, S) bool
        self._filled = 0

    def add(self, obs: Tensor, live: Tensor | None) -> None:
        """Count the rows of ``obs`` ``(S, obs_dim)`` where ``live`` ``(S,)`` is true
        (every row when ``live`` is None: no mask to build or multiply by)."""
        if self.shift.device.type == "cpu":
            self.add_host(obs.numpy(), None if live is None else live.numpy())
            return
        d = obs.to(torch.float64) - self.shift
        if live is None:
            self.n += d.shape[0]
        else:
            d = d * live[:, None]
            self.n += live.sum()
        self.s1 += d.sum(0)
        self.s2 += (d * d).sum(0)

    def add_host(self, obs: np.ndarray, live: np.ndarray | None) -> None:
        """:meth:`add` on the CPU's arrays: ``obs`` ``(S, obs_dim)``, ``live`` ``(S,)`` or
        None (every row)."""
        if self._block is None or self._block.shape[1:] != obs.shape:
            self.host_block(*obs.shape, obs.dtype)
        i = self._filled
        self._block[i] = obs
        self._live[i] = True if live is None else live
        self._filled = i + 1
        if self._filled == self.BLOCK_STEPS:
            self._flush()

    def host_block(self, num_slots: int, obs_dim: int, dtype) -> tuple[np.ndarray, np.ndarray]:
        """A fresh CPU block for a loop that writes its observations itself: step i of the
        block writes ``block[i]`` ``(S, obs_dim)`` and, once a slot idles, ``live[i]``
        ``(S,)`` (all true as returned); :meth:`add_block_host` adds the steps written. What
        an earlier block held is added first."""
        self._flush()
        self._block = np.empty((self.BLOCK_STEPS, num_slots, obs_dim), dtype=dtype)
        self._live = np.ones((self.BLOCK_STEPS, num_slots), dtype=bool)
        return self._block, self._live

    def add_block_host(self, steps: int) -> None:
        """Add the first ``steps`` steps of the :meth:`host_block` block to the sums."""
        self._filled = steps
        self._flush()

    def _flush(self) -> None:
        """Add the CPU block's live rows to the sums (numpy on views of the same memory)."""
        if not self._filled:
            return
        k = self._filled
        self._filled = 0
        rows = self._block[:k].reshape(-1, self._block.shape[-1])
        live = self._live[:k].reshape(-1)
        d = rows[live].astype(np.float64) - self.shift.numpy()
        n, s1, s2 = (t.numpy() for t in (self.n, self.s1, self.s2))
        n += d.shape[0]
        s1 += d.sum(0)
        s2 += (d * d).sum(0)

    def statistics(self) -> ObservationStatistics:
        """The increment as :class:`ObservationStatistics` (on the CPU)."""
        self._flush()
        s = ObservationStatistics(len(self.shift))
        n = float(self.n)
        if n:
            m = self.s1.cpu() / n
            s.count = n
            s.mean = self.shift.cpu() + m
            s.m2 = torch.clamp(self.s2.cpu() - n * m * m, min=0.0)
        return s
