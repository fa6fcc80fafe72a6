"""zoopt's own Gymnasium environments, registered under the ``zoopt/`` namespace.

Importing this package (or ``zoopt``, which imports it) registers the environments, after
which ``gymnasium.make("zoopt/DeepSea-v0")`` works. Without importing anything first, use
Gymnasium's ``"module:id"`` form: ``gymnasium.make("zoopt_envs:zoopt/DeepSea-v0")``.
(Gymnasium 1.x dropped plugin entry points, so there is no automatic discovery.)

==============================  =====================================================
id                              reward
==============================  =====================================================
``zoopt/SparseCartPole-v0``     1 at step 500 if the pole never fell, else 0
``zoopt/SparseMountainCar-v0``  1 on reaching the flag within 200 steps, else 0
``zoopt/DeepSea-v0``            −0.01/N per right move, +1 for right at the bottom-right
``zoopt/DelayedCartPole-v0``    CartPole-v1's return, paid in full on the final step
==============================  =====================================================

Batched torch versions of CartPole and MountainCar (many environments as tensors, CPU or
CUDA) are in :mod:`zoopt_envs.torch_envs`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from zoopt_envs.classic_control import SparseCartPoleEnv, SparseMountainCarEnv
from zoopt_envs.deep_sea import DeepSeaEnv
from zoopt_envs.registration import ENV_IDS, register_envs
from zoopt_envs.wrappers import DelayedReward

if TYPE_CHECKING:
    from zoopt_envs.torch_envs import BatchedCartPole, BatchedMountainCar

__all__ = [
    "ENV_IDS",
    "register_envs",
    "SparseCartPoleEnv",
    "SparseMountainCarEnv",
    "DeepSeaEnv",
    "DelayedReward",
    "BatchedCartPole",
    "BatchedMountainCar",
]

register_envs()


def __getattr__(name: str) -> Any:
    # the torch versions import torch; `make("zoopt_envs:...")` should not have to
    if name in ("BatchedCartPole", "BatchedMountainCar"):
        from zoopt_envs import torch_envs

        return getattr(torch_envs, name)
    raise AttributeError(f"module 'zoopt_envs' has no attribute {name!r}")
