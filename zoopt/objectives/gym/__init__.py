"""Gymnasium policy objectives (see :mod:`zoopt.objectives.gym.objective`).

Modules: ``objective`` (:class:`GymObjective`), ``rollout`` (the episode scheduler, one
loop for every backend), ``adapters`` (native, sync and torch vector envs as S slots),
``envs`` (env construction), ``normalizer`` (observation statistics).
"""

from zoopt.objectives.gym.envs import episode_seeds
from zoopt.objectives.gym.normalizer import ObservationStatistics
from zoopt.objectives.gym.objective import GymObjective, default_slots

__all__ = ["GymObjective", "ObservationStatistics", "default_slots", "episode_seeds"]
