"""Env adapters: a fixed number S of env slots behind one tensor interface.

The rollout loop (:mod:`zoopt.objectives.gym.rollout`) sees every backend the same way:

* ``reset(seed_index)`` starts an episode in every slot and returns observations
  ``(S, obs_dim)`` float32;
* ``step(actions)`` advances every slot and returns ``obs (S, obs_dim)`` float32,
  ``reward (S,)`` and ``done (S,)`` bool (terminated, or truncated at the objective's
  ``max_episode_steps``, on this step);
* ``restart(mask, seed_index, obs)`` starts a new episode in the slots where ``mask``
  ``(S,)`` is true and returns the observations with those rows replaced.

``seed_index (S,)`` indexes the evaluation's E episode seeds: slot s plays the episode that
``gym.make(id).reset(seed=seeds[seed_index[s]])`` starts. What a slot does after its
episode ended and before a restart does not matter: the loop no longer counts it.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from zoopt.objectives.gym.envs import EnvSpec, flat_observations, start_states

__all__ = ["SlotEnv", "NativeCartPoleSlots", "SyncSlots", "TorchSlots", "make_slot_env"]


class SlotEnv:
    """Base class of the adapters; ``prepare(seeds)`` is called before each ``reset``."""

    num_slots: int
    device: torch.device = torch.device("cpu")

    def prepare(self, seeds: list[int]) -> None:
        """Take the episode seeds ``(E,)`` of the evaluation about to start."""
        self.seeds = seeds

    def reset(self, seed_index: Tensor) -> Tensor:
        """Start every slot on the seed ``seeds[seed_index[s]]``; the observations ``(S, obs)``."""
        raise NotImplementedError

    def step(self, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Step every slot: observations ``(S, obs)``, rewards ``(S,)``, episode ends ``(S,)``."""
        raise NotImplementedError

    def restart(self, mask: Tensor, seed_index: Tensor, obs: Tensor) -> Tensor:
        """Start the slots of ``mask`` ``(S,)`` on new seeds; ``obs`` with their rows replaced."""
        raise NotImplementedError

    # the CPU's host loop speaks numpy; an adapter may keep its arrays and overwrite them
    # at the next call (the loop reads them before stepping again)
    def reset_host(self, seed_index: np.ndarray) -> np.ndarray:
        """:meth:`reset` on arrays: ``seed_index`` ``(S,)`` → observations ``(S, obs)``."""
        return self.reset(torch.from_numpy(seed_index)).numpy()

    def step_host(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`step` on arrays: observations ``(S, obs)``, rewards ``(S,)``, ends ``(S,)``."""
        obs, reward, done = self.step(torch.from_numpy(actions))
        return obs.numpy(), reward.numpy(), done.numpy()

    def restart_host(self, rows: np.ndarray, seed_index: np.ndarray, obs: np.ndarray) -> np.ndarray:
        """:meth:`restart` of the slots ``rows`` (indices) on arrays; the observations."""
        mask = np.zeros(self.num_slots, dtype=bool)
        mask[rows] = True
        out = self.restart(
            torch.from_numpy(mask), torch.from_numpy(seed_index), torch.from_numpy(obs)
        )
        return out.numpy()

    #: whether :meth:`step_slot_host` steps one slot alone (the host loop's last live slot)
    steps_one_slot = False

    def step_slot_host(self, slot: int, action) -> tuple[np.ndarray, float, bool]:
        """Step slot ``slot`` alone with its ``action`` (a row of :meth:`step_host`'s
        actions): its observation ``(obs_dim,)`` (a row of the observations
        :meth:`step_host` returns), reward and episode end. Adapters with
        :attr:`steps_one_slot` only."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the environments."""


class NativeCartPoleSlots(SlotEnv):
    """Gymnasium's ``CartPoleVectorEnv``: a slot restarts by writing the start state of its
    seed into the vector env's state and clearing its step counter and done flag, so the
    restarted episode's first step is the next call (no autoreset step is spent)."""

    def __init__(self, spec: EnvSpec, num_slots: int, max_episode_steps: int):
        self.spec, self.num_slots = spec, num_slots
        self.venv = gym.make_vec(
            spec.env_id,
            num_envs=num_slots,
            vectorization_mode="vector_entry_point",
            max_episode_steps=max_episode_steps,
            **spec.env_kwargs,
        )
        self.core = self.venv.unwrapped

    def prepare(self, seeds: list[int]) -> None:
        self.seeds = seeds
        self.starts = start_states(self.spec, seeds)  # (E, 4) float64

    def reset(self, seed_index: Tensor) -> Tensor:
        self.venv.reset(seed=self.seeds[0])  # clears step counters and episode flags
        state = np.ascontiguousarray(self.starts[seed_index.numpy()].T)
        self.core.state = state  # the vector env keeps its state as (4, S)
        return torch.from_numpy(state.T.astype(np.float32))

    def step(self, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        obs, reward, terminated, truncated, _ = self.venv.step(actions.numpy())
        return (
            torch.from_numpy(obs),
            torch.from_numpy(reward),
            torch.from_numpy(terminated | truncated),
        )

    def restart(self, mask: Tensor, seed_index: Tensor, obs: Tensor) -> Tensor:
        self.restart_host(np.flatnonzero(mask.numpy()), seed_index.numpy(), obs.numpy())
        return obs

    def reset_host(self, seed_index: np.ndarray) -> np.ndarray:
        return self.reset(torch.from_numpy(seed_index)).numpy()

    def step_host(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        obs, reward, terminated, truncated, _ = self.venv.step(actions)
        return obs, reward, terminated | truncated

    def restart_host(self, rows: np.ndarray, seed_index: np.ndarray, obs: np.ndarray) -> np.ndarray:
        start = self.starts[seed_index[rows]]  # (m, 4)
        self.core.state[:, rows] = start.T
        self.core.steps[rows] = 0
        self.core.prev_done[rows] = False  # no autoreset on the next call
        obs[rows] = start  # cast to float32 on assignment, as the env's own obs
        return obs

    def close(self) -> None:
        self.venv.close()


class SyncSlots(SlotEnv):
    """S plain environments (any id or factory) stepped one after the other in this
    process, as Gymnasium's ``SyncVectorEnv`` does but without its per-step work that the
    rollout does not read (merging the S info dicts, autoreset bookkeeping): on MuJoCo
    tasks that work cost a fifth of the loop. A slot whose episode ended is not stepped
    again until it restarts (its row repeats the last observation, done, reward 0); a slot
    restarts through ``reset(seed=…)`` of its own environment."""

    def __init__(self, spec: EnvSpec, num_slots: int, max_episode_steps: int):
        self.spec, self.num_slots = spec, num_slots
        if spec.env_id is not None:

            def make() -> gym.Env:
                return gym.make(spec.env_id, max_episode_steps=max_episode_steps, **spec.env_kwargs)
        else:
            # the objective's step cap as a time limit (a shorter one of the env still ends
            # its episodes first): every adapter truncates at max_episode_steps

            def make() -> gym.Env:
                return gym.wrappers.TimeLimit(spec.factory(), max_episode_steps)

        self.envs = [make() for _ in range(num_slots)]
        space = spec.action_space
        self.action_dtype = None if isinstance(space, gym.spaces.Discrete) else space.dtype
        self.ended = np.zeros(num_slots, dtype=bool)
        self.reward = np.zeros(num_slots)
        # a Box observation is written into its slot's row of one array, reused every step
        # (no per-step allocation); other spaces are flattened from the raw observations
        obs_space = spec.observation_space
        self.obs = np.zeros((num_slots, spec.observation_dim), dtype=np.float32)
        self._rows = None
        if isinstance(obs_space, gym.spaces.Box):
            self._rows = self.obs.reshape(num_slots, *obs_space.shape)
        self.raw: list = [None] * num_slots  # each slot's last raw observation (other spaces)

    def _put(self, i: int, raw) -> None:
        if self._rows is not None:
            self._rows[i] = raw  # cast to float32, as flat_observations does
        else:
            self.raw[i] = raw

    def _observations(self) -> np.ndarray:
        if self._rows is None:
            raw = np.asarray(self.raw)
            self.obs = flat_observations(self.spec.observation_space, raw, self.num_slots)
        return self.obs

    def reset(self, seed_index: Tensor) -> Tensor:
        return torch.from_numpy(self.reset_host(seed_index.numpy()).copy())

    def step(self, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        obs, reward, done = self.step_host(actions.numpy())
        return (
            torch.from_numpy(obs.copy()),
            torch.from_numpy(reward.copy()),
            torch.from_numpy(done.copy()),
        )

    def restart(self, mask: Tensor, seed_index: Tensor, obs: Tensor) -> Tensor:
        rows = np.flatnonzero(mask.numpy())
        if not len(rows):
            return obs
        return torch.from_numpy(self.restart_host(rows, seed_index.numpy(), obs.numpy()).copy())

    def reset_host(self, seed_index: np.ndarray) -> np.ndarray:
        for i, j in enumerate(seed_index.tolist()):
            self._put(i, self.envs[i].reset(seed=self.seeds[j])[0])
        self.ended[:] = False
        return self._observations()

    def step_host(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        a = actions
        if self.action_dtype is not None:
            a = a.astype(self.action_dtype, copy=False)
        reward, ended, rows = self.reward, self.ended, self._rows
        for i, env in enumerate(self.envs):
            if ended[i]:  # not stepped until it restarts: its last observation, reward 0
                reward[i] = 0.0
                continue
            raw, reward[i], terminated, truncated, _ = env.step(a[i])
            if rows is not None:  # _put, inline: a call per slot and step is measurable
                rows[i] = raw
            else:
                self.raw[i] = raw
            if terminated or truncated:
                ended[i] = True
        return self._observations(), reward, ended

    steps_one_slot = True

    def step_slot_host(self, slot: int, action) -> tuple[np.ndarray, float, bool]:
        if self.action_dtype is not None:
            action = action.astype(self.action_dtype, copy=False)
        raw, reward, terminated, truncated, _ = self.envs[slot].step(action)
        self._put(slot, raw)
        obs = self._observations()[slot]
        done = bool(terminated or truncated)
        if done:
            self.ended[slot] = True
        # float64, as step_host's reward array holds it
        return obs, float(reward), done

    def restart_host(self, rows: np.ndarray, seed_index: np.ndarray, obs: np.ndarray) -> np.ndarray:
        for i in rows.tolist():
            self._put(i, self.envs[i].reset(seed=self.seeds[int(seed_index[i])])[0])
        self.ended[rows] = False
        return self._observations()

    def close(self) -> None:
        for env in self.envs:
            env.close()


class TorchSlots(SlotEnv):
    """A batched torch environment with done masks, on its device; a slot restarts from
    its seed's start state by a masked write, so refilling needs no host round-trip."""

    def __init__(self, spec: EnvSpec, num_slots: int, max_episode_steps: int, device: torch.device):
        self.spec, self.num_slots, self.device = spec, num_slots, device
        # actions come from the policy's argmax, valid by construction: no per-step check
        # (on a GPU it would wait for the device)
        self.venv = spec.torch_class(
            num_slots,
            max_episode_steps=max_episode_steps,
            device=device,
            seed=0,
            validate_actions=False,
        )

    def prepare(self, seeds: list[int]) -> None:
        self.seeds = seeds
        self.starts = torch.from_numpy(start_states(self.spec, seeds)).to(self.device)

    def reset(self, seed_index: Tensor) -> Tensor:
        return self.venv.reset(state=self.starts[seed_index])

    def step(self, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        obs, reward, terminated, truncated = self.venv.step(actions)
        return obs, reward, terminated | truncated

    def restart(self, mask: Tensor, seed_index: Tensor, obs: Tensor) -> Tensor:
        return self.venv.restart(mask, self.starts[seed_index])


def make_slot_env(spec: EnvSpec, num_slots: int, max_episode_steps: int, device) -> SlotEnv:
    """The adapter of ``spec.backend`` with ``num_slots`` slots."""
    if spec.backend == "torch":
        return TorchSlots(spec, num_slots, max_episode_steps, device)
    if spec.backend == "native":
        return NativeCartPoleSlots(spec, num_slots, max_episode_steps)
    return SyncSlots(spec, num_slots, max_episode_steps)
