"""Registration of this package's environments under Gymnasium's ``zoopt/`` namespace.

Gymnasium 1.x no longer loads environments from package entry points, so registration is
explicit: :func:`register_envs` runs when ``zoopt_envs`` (or ``zoopt``) is imported, and
``gymnasium.make("zoopt_envs:zoopt/DeepSea-v0")`` imports the package on the fly through
Gymnasium's ``"module:id"`` syntax.
"""

from __future__ import annotations

import gymnasium as gym
from gymnasium.envs.registration import WrapperSpec

__all__ = ["ENV_IDS", "register_envs"]

_DELAYED = WrapperSpec(
    name="DelayedReward", entry_point="zoopt_envs.wrappers:DelayedReward", kwargs={}
)

# id -> keyword arguments of gymnasium.register
_SPECS: dict[str, dict] = {
    "zoopt/SparseCartPole-v0": {
        "entry_point": "zoopt_envs.classic_control:SparseCartPoleEnv",
        # the env truncates itself at `time_limit` (it must know when to pay the reward)
        "max_episode_steps": None,
        "reward_threshold": 1.0,
    },
    "zoopt/SparseMountainCar-v0": {
        "entry_point": "zoopt_envs.classic_control:SparseMountainCarEnv",
        "max_episode_steps": 200,
        "reward_threshold": 1.0,
    },
    "zoopt/DeepSea-v0": {
        "entry_point": "zoopt_envs.deep_sea:DeepSeaEnv",
        "max_episode_steps": None,  # every episode lasts exactly `size` steps
        # any positive return means the treasure was reached (optimal: 1 − 0.01 = 0.99)
        "reward_threshold": 0.5,
    },
    "zoopt/DelayedCartPole-v0": {
        # Gymnasium applies additional wrappers after TimeLimit, so DelayedReward sees
        # the truncation at step 500 (or at `make(..., max_episode_steps=K)`).
        "entry_point": "gymnasium.envs.classic_control.cartpole:CartPoleEnv",
        "max_episode_steps": 500,
        "reward_threshold": 475.0,
        "additional_wrappers": (_DELAYED,),
    },
}

ENV_IDS: tuple[str, ...] = tuple(_SPECS)
"""The ids that :func:`register_envs` registers."""


def register_envs() -> None:
    """Register every ``zoopt/`` environment with Gymnasium; calling it again does nothing."""
    for env_id, kwargs in _SPECS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, **kwargs)
