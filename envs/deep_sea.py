"""The Deep Sea exploration task as a Gymnasium environment.

Osband, Van Roy, Russo & Wen (2019), "Deep exploration via randomized value functions"
(JMLR), and the ``deep_sea`` experiment of the Behaviour Suite for Reinforcement Learning
(Osband et al., 2020, bsuite). An agent that explores by dithering reaches the one
rewarding cell with probability ``2^-N``; one that commits to a direction finds it at once.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

__all__ = ["DeepSeaEnv"]


class DeepSeaEnv(gym.Env[np.ndarray, np.int64]):
    """An ``N × N`` grid that the agent falls through, one row per step.

    The agent starts in the top-left cell ``(row 0, column 0)``. Each step it moves down one
    row and, depending on its action, one column left or right (clipped to the grid). After
    ``N`` steps it has fallen out of the bottom row and the episode terminates; there is no
    truncation.

    Observation: ``Box(0, 1, (N, N), float32)``, a one-hot image with 1 at
    ``[row, column]``; after the last step (``row = N``) it is all zeros, as in bsuite. Use
    ``gymnasium.wrappers.FlattenObservation`` for an ``N²`` vector.

    Actions: ``Discrete(2)``. By default 1 means *right* and 0 *left* in every cell. With
    ``randomize_actions=True`` the meaning is drawn per cell, as in bsuite: action
    ``mapping[row, column]`` means right, the other left, where ``mapping`` is an ``(N, N)``
    0/1 array drawn once from ``mapping_seed`` (so it is part of the task, not of a reset).

    Reward (bsuite's definition), per step:
        * ``−unscaled_move_cost / N`` (default ``−0.01/N``) for every move to the right;
        * ``+1`` for moving right from the bottom-right cell ``(N − 1, N − 1)``;
        * 0 otherwise.

    The only way to the bottom-right cell is to move right on every step, so the optimal
    return is ``1 − unscaled_move_cost`` (0.99), always moving left returns exactly 0, and
    every other policy returns a negative amount.

    Args:
        size: ``N ≥ 2``, the side of the grid (default 10).
        randomize_actions: draw a per-cell action mapping (default ``False``: 1 is right).
        mapping_seed: seed of that mapping (default 0).
        unscaled_move_cost: cost of a right move times ``N`` (default 0.01).
        render_mode: ``None`` or ``"ansi"`` (a text picture of the grid).
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(
        self,
        size: int = 10,
        randomize_actions: bool = False,
        mapping_seed: int = 0,
        unscaled_move_cost: float = 0.01,
        render_mode: str | None = None,
    ) -> None:
        if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 2:
            raise ValueError(f"size must be an int N >= 2 (the grid is N x N), got {size!r}")
        if (
            isinstance(unscaled_move_cost, bool)
            or not isinstance(unscaled_move_cost, (int, float, np.integer, np.floating))
            or not np.isfinite(unscaled_move_cost)
            or unscaled_move_cost < 0
        ):
            raise ValueError(
                f"unscaled_move_cost must be a finite number >= 0, got {unscaled_move_cost!r}"
            )
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode must be None or one of {self.metadata['render_modes']}, "
                f"got {render_mode!r}"
            )
        self.size = int(size)
        self.move_cost = float(unscaled_move_cost) / self.size
        self.render_mode = render_mode
        if randomize_actions:
            rng = np.random.default_rng(mapping_seed)
            self.action_mapping = rng.integers(0, 2, size=(self.size, self.size))
        else:
            self.action_mapping = np.ones((self.size, self.size), dtype=np.int64)
        self.observation_space = gym.spaces.Box(
            0.0, 1.0, shape=(self.size, self.size), dtype=np.float32
        )
        self.action_space = gym.spaces.Discrete(2)
        self._row = 0
        self._column = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Put the agent in the top-left cell. The task is deterministic; ``seed`` only
        seeds ``np_random`` and the spaces, as Gymnasium requires."""
        super().reset(seed=seed)
        self._row = 0
        self._column = 0
        return self._observation(), self._info()

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Fall one row, moving one column left or right; see the class docs for rewards."""
        if not self.action_space.contains(action):
            raise ValueError(f"action must be 0 or 1 (Discrete(2)), got {action!r}")
        if self._row >= self.size:
            raise RuntimeError("the episode has terminated; call reset() before step()")
        n = self.size
        right = int(action) == self.action_mapping[self._row, self._column]
        reward = 0.0
        if right:
            if self._column == n - 1:
                reward += 1.0  # only reachable on the last row: the treasure
            reward -= self.move_cost
            self._column = min(self._column + 1, n - 1)
        else:
            self._column = max(self._column - 1, 0)
        self._row += 1
        terminated = self._row == n
        return self._observation(), reward, terminated, False, self._info()

    def render(self) -> str | None:
        """``"ansi"``: the grid as text, ``A`` for the agent and ``$`` for the treasure."""
        if self.render_mode is None:
            gym.logger.warn(
                "render() called without a render_mode; create the environment with "
                'render_mode="ansi"'
            )
            return None
        lines = []
        for r in range(self.size):
            row = ["."] * self.size
            if r == self.size - 1:
                row[-1] = "$"
            if r == self._row:
                row[self._column] = "A"
            lines.append(" ".join(row))
        return "\n".join(lines) + "\n"

    def _observation(self) -> np.ndarray:
        obs = np.zeros((self.size, self.size), dtype=np.float32)
        if self._row < self.size:
            obs[self._row, self._column] = 1.0
        return obs

    def _info(self) -> dict[str, Any]:
        return {"row": self._row, "column": self._column}
