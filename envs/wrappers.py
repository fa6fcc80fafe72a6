"""Reward wrappers that make a dense task sparse."""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym

__all__ = ["DelayedReward"]


class DelayedReward(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Withhold every reward and pay the episode's sum on its final step.

    Reward: 0.0 on every step except the one on which the wrapped environment reports
    ``terminated`` or ``truncated``; that step pays the sum of all rewards of the episode,
    its own included. The episode's return is unchanged; only its timing moves to the end,
    which removes every intermediate learning signal (the classic "delayed reward" test of
    credit assignment, cf. Arjona-Medina et al., 2019, "RUDDER").

    Put it *outside* any ``TimeLimit`` so that it sees truncation; the registered
    ``zoopt/DelayedCartPole-v0`` does so (``CartPole-v1`` with its 500-step limit, then this
    wrapper), and ``gymnasium.make(..., max_episode_steps=K)`` keeps that order.
    """

    def __init__(self, env: gym.Env) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.Wrapper.__init__(self, env)
        self._pending = 0.0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Reset the wrapped environment and forget any unpaid reward."""
        self._pending = 0.0
        return super().reset(seed=seed, options=options)

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        """Step the wrapped environment; reward 0.0 until the episode ends."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._pending += float(reward)
        if terminated or truncated:
            paid, self._pending = self._pending, 0.0
            return obs, paid, terminated, truncated, info
        return obs, 0.0, terminated, truncated, info
