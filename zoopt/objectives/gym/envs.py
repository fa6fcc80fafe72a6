"""Environment construction for :class:`GymObjective`: ids and factories, time limits,
observation layouts, start states, and which vector backend simulates an id.

Backends: Gymnasium's native ``CartPoleVectorEnv`` (whose slots zoopt can start from a
chosen state), ``SyncVectorEnv`` for any id or factory, and this project's batched torch
environments (``zoopt_envs.torch_envs``). All three play, for the same episode seeds, the
episodes of a plain ``gym.make(id)`` loop.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

__all__ = [
    "EnvSpec",
    "VECTORIZATIONS",
    "episode_seeds",
    "make_env_spec",
    "observation_dim",
    "flat_observations",
    "start_states",
]

VECTORIZATIONS = ("auto", "native", "sync", "torch")

#: registered ids that ``zoopt_envs.torch_envs`` simulates, and the class that does
TORCH_ENVS = {
    "CartPole-v0": "BatchedCartPole",
    "CartPole-v1": "BatchedCartPole",
    "MountainCar-v0": "BatchedMountainCar",
}


def episode_seeds(seed: int, episodes: int) -> list[int]:
    """The E episode seeds of a step seeded ``seed`` (shared by all of its candidates)."""
    ss = np.random.SeedSequence([int(seed) & (2**63 - 1), 0x6E5])
    return [int(s) for s in ss.generate_state(episodes, np.uint32)]


class EnvSpec:
    """What an objective knows about its environment: id or factory, spaces, time limit,
    the backend, and a probe environment used to read start states.

    Pickles without the probe (simulator handles do not pickle); it is rebuilt on demand.
    """

    def __init__(
        self,
        env_id: str | None,
        factory: Callable[[], gym.Env] | None,
        env_kwargs: dict,
        name: str,
        probe: gym.Env,
    ):
        self.env_id, self.factory, self.env_kwargs, self.name = env_id, factory, env_kwargs, name
        self._probe: gym.Env | None = probe
        self.observation_space = probe.observation_space
        self.action_space = probe.action_space
        self.observation_dim = observation_dim(self.observation_space)
        self.time_limit = time_limit(probe)
        self.backend = "sync"
        self.native_class: type | None = None
        self.torch_class: type | None = None

    def single_env(self) -> gym.Env:
        """A fresh ``gym.make(id)`` (or factory) environment."""
        if self.env_id is not None:
            return gym.make(self.env_id, **self.env_kwargs)
        return self.factory()

    @property
    def probe(self) -> gym.Env:
        """One environment of the spec, made on first use, for its spaces and metadata."""
        if self._probe is None:  # dropped when pickled
            self._probe = self.single_env()
        return self._probe

    def choose_backend(self, vectorization: str) -> None:
        """Resolve ``vectorization`` to ``"native"``, ``"sync"`` or ``"torch"``."""
        if vectorization == "torch":
            self.torch_class = _torch_class(self)
            self.backend = "torch"
        elif self.env_id is not None:
            self.native_class = _native_class(self.env_id, vectorization)
            self.backend = "sync" if self.native_class is None else "native"
        elif vectorization == "native":
            raise ValueError(
                "vectorization='native' needs a registered env id with a native "
                "vector environment; a factory runs on SyncVectorEnv"
            )

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_probe"] = None  # e.g. MuJoCo models do not pickle
        return state


def make_env_spec(env: Any, env_kwargs: dict) -> EnvSpec:
    """An :class:`EnvSpec` for a registered id or a factory ``() -> gymnasium.Env``."""
    if isinstance(env, str):
        if env.startswith("zoopt/"):
            try:  # this project's environments register themselves on import
                import zoopt_envs  # noqa: F401
            except ModuleNotFoundError:
                pass
        try:
            probe = gym.make(env, **env_kwargs)
        except gym.error.Error as e:
            raise _unknown_env_error(env, e) from None
        return EnvSpec(env, None, env_kwargs, env, probe)
    if callable(env):
        made = env()
        if not isinstance(made, gym.Env):
            raise TypeError(
                f"env: the factory must return a gymnasium.Env, got {type(made).__name__}"
            )
        name = made.spec.id if made.spec is not None else type(made.unwrapped).__name__
        return EnvSpec(None, env, env_kwargs, name, made)
    raise TypeError(
        f"env must be a registered Gymnasium id (str) or a factory "
        f"() -> gymnasium.Env, got {type(env).__name__}"
    )


def time_limit(env: gym.Env) -> int | None:
    """The episode step limit of ``env``: its spec's, else that of a ``TimeLimit`` wrapper."""
    if env.spec is not None and env.spec.max_episode_steps is not None:
        return int(env.spec.max_episode_steps)
    while isinstance(env, gym.Wrapper):
        if isinstance(env, gym.wrappers.TimeLimit):
            return int(env._max_episode_steps)
        env = env.env
    return None


def observation_dim(space: spaces.Space) -> int:
    """Length of a flattened (``Box``) or one-hot (``Discrete``) observation."""
    if isinstance(space, spaces.Box):
        return int(np.prod(space.shape))
    if isinstance(space, spaces.Discrete):
        return int(space.n)
    raise TypeError(
        f"observation space {space} is not supported: GymObjective needs a Box "
        "(flattened) or Discrete (one-hot) observation space; wrap the environment with "
        "gymnasium.wrappers.FlattenObservation"
    )


def flat_observations(space: spaces.Space, obs: Any, n: int) -> np.ndarray:
    """``(n, obs_dim)`` float32: ``Box`` observations flattened, ``Discrete`` one-hot."""
    if isinstance(space, spaces.Discrete):
        out = np.zeros((n, int(space.n)), dtype=np.float32)
        out[np.arange(n), np.asarray(obs, dtype=np.int64) - space.start] = 1
        return out
    return np.asarray(obs, dtype=np.float32).reshape(n, -1)


def start_states(spec: EnvSpec, seeds: list[int]) -> np.ndarray:
    """``(len(seeds), state_dim)`` float64 states where ``gym.make(id).reset(seed=s)`` starts."""
    single = spec.probe.unwrapped
    starts = {}
    for s in dict.fromkeys(seeds):  # each distinct seed reset once
        single.reset(seed=s)
        starts[s] = np.array(single.state, dtype=np.float64)
    return np.stack([starts[s] for s in seeds])


def _unknown_env_error(env_id: str, cause: Exception) -> ValueError:
    ids = list(gym.registry.keys())
    close = difflib.get_close_matches(env_id, ids, n=5, cutoff=0.5)
    if not close:  # fall back to case-insensitive matches on the name alone
        lowered = {i.lower(): i for i in ids}
        close = [
            lowered[c] for c in difflib.get_close_matches(env_id.lower(), lowered, n=5, cutoff=0.4)
        ]
    hint = f" Closest registered ids: {close}." if close else ""
    return ValueError(
        f"env: {env_id!r} is not a registered Gymnasium id ({cause}).{hint} "
        "Pass a registered id or a factory callable returning a gymnasium.Env."
    )


def _native_classes() -> tuple[type, ...]:
    """Native vector classes whose slots can be started from a chosen state."""
    from gymnasium.envs.classic_control.cartpole import CartPoleVectorEnv

    return (CartPoleVectorEnv,)


def _native_class(env_id: str, vectorization: str) -> type | None:
    """The native vector class to use, or None for SyncVectorEnv."""
    if vectorization == "sync":
        return None
    entry = gym.spec(env_id).vector_entry_point
    cls = None
    if entry is not None:
        try:
            cls = gym.envs.registration.load_env_creator(entry) if isinstance(entry, str) else entry
        except Exception:  # e.g. a jax-based vector env whose dependency is missing
            cls = None
    if cls is not None and cls in _native_classes():
        return cls
    if vectorization == "native":
        raise ValueError(
            f"vectorization='native': {env_id} has no native vector environment whose "
            f"episodes zoopt can seed one by one (supported: "
            f"{[c.__name__ for c in _native_classes()]}); use 'auto' or 'sync'"
        )
    return None


def _torch_class(spec: EnvSpec) -> type:
    """The ``zoopt_envs.torch_envs`` class simulating ``spec.env_id``."""
    if spec.env_id not in TORCH_ENVS or spec.env_kwargs:
        raise ValueError(
            f"vectorization='torch' supports {sorted(TORCH_ENVS)} without env_kwargs; got "
            f"{spec.name!r}" + (f" with env_kwargs {spec.env_kwargs}" if spec.env_kwargs else "")
        )
    from zoopt_envs import torch_envs

    return getattr(torch_envs, TORCH_ENVS[spec.env_id])
