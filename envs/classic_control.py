"""Sparse-reward versions of Gymnasium's CartPole and MountainCar.

The dynamics, spaces, start states and rendering are Gymnasium's own (the classes subclass
``CartPoleEnv`` and ``MountainCarEnv``); only the reward changes, so that an episode pays
out only if the task was solved. Such returns are flat almost everywhere in parameter
space, which is exactly where gradient-free estimators are needed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.envs.classic_control.cartpole import CartPoleEnv
from gymnasium.envs.classic_control.mountain_car import MountainCarEnv

__all__ = ["SparseCartPoleEnv", "SparseMountainCarEnv"]


class SparseCartPoleEnv(CartPoleEnv):
    """CartPole that pays only for balancing the pole until the time limit.

    Dynamics, observation ``Box(4,)`` float32 ``(x, ẋ, θ, θ̇)``, actions ``Discrete(2)``
    (0 push left, 1 push right), start states and termination (``|x| > 2.4`` or
    ``|θ| > 12°``) are those of Gymnasium's ``CartPole-v1`` (Barto, Sutton & Anderson,
    1983).

    Reward: 1.0 on the ``time_limit``-th step if that step did not terminate the episode,
    0.0 on every other step. The episode's return is therefore 1 if the pole stayed up for
    all ``time_limit`` steps and 0 if it fell (or the cart left the track) at any point.

    The environment keeps its own step count and returns ``truncated=True`` at
    ``time_limit`` (default 500), which is why it is registered without a ``TimeLimit``
    wrapper: change the horizon with ``gymnasium.make("zoopt/SparseCartPole-v0",
    time_limit=200)``. A shorter ``max_episode_steps=`` given to ``make`` would cut every
    episode before the reward is paid.
    """

    def __init__(self, time_limit: int = 500, render_mode: str | None = None) -> None:
        if isinstance(time_limit, bool) or not isinstance(time_limit, int) or time_limit < 1:
            raise ValueError(f"time_limit must be a positive int, got {time_limit!r}")
        super().__init__(render_mode=render_mode)
        self.time_limit = time_limit
        self._elapsed_steps = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Draw a start state uniformly in ``[-0.05, 0.05]^4`` (or ``options`` low/high)."""
        obs, info = super().reset(seed=seed, options=options)
        self._elapsed_steps = 0
        return obs, info

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """One CartPole step; reward 1.0 only when the time limit is reached upright."""
        obs, _, terminated, _, info = super().step(action)
        self._elapsed_steps += 1
        truncated = self._elapsed_steps >= self.time_limit
        reward = 1.0 if truncated and not terminated else 0.0
        return obs, reward, terminated, truncated, info


class SparseMountainCarEnv(MountainCarEnv):
    """MountainCar that pays only for reaching the flag.

    Dynamics, observation ``Box(2,)`` float32 ``(position, velocity)``, actions
    ``Discrete(3)`` (accelerate left, none, right), start states and termination
    (``position ≥ 0.5`` and ``velocity ≥ goal_velocity``) are those of Gymnasium's
    ``MountainCar-v0`` (Moore, 1990). Registered with a 200-step time limit, as the
    original.

    Reward: 1.0 on the step that reaches the flag (the terminating step), 0.0 on every
    other step; the return is 1 if the car got there within the time limit, else 0.
    """

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """One MountainCar step; reward 1.0 only on reaching the flag."""
        obs, _, terminated, truncated, info = super().step(action)
        return obs, 1.0 if terminated else 0.0, terminated, truncated, info
