"""Gymnasium policy objectives: loss = −(mean episodic return) of a policy's parameters.

:class:`GymObjective` evaluates a population of K policies on E episodes each by stepping
all K×E episodes together on one Gymnasium vector environment, with ONE batched policy
forward pass per time step (see :mod:`zoopt.policies`). Episodes that have ended are masked
out; the loop stops when every episode has ended or the step cap is reached.

Vector environments: Gymnasium's native ``CartPoleVectorEnv`` where one exists and zoopt
can start each of its episodes from a chosen state, else ``SyncVectorEnv`` seeded episode
by episode; both in ``AutoresetMode.NEXT_STEP``, whose restarted episodes are masked out
like the finished ones. ``vectorization="torch"`` uses this project's batched tensor
environments (``zoopt_envs.torch_envs``) with done masks, on the CPU or a GPU. All three
play, for the same seeds, the episodes of a plain ``gym.make(id)`` loop.

Common random numbers: the step's ``seed`` fixes E episode seeds; every candidate (and
both members of an antithetic pair) plays episode e from the same seed, so their return
difference measures the parameters, not the luck of the draw (Kleinman et al., 1999).

Observation normalisation (optional) keeps running counts, means and sums of squared
deviations M2 and merges them with the parallel formula of Chan, Golub & LeVeque (1979):

    n = n_a + n_b,  δ = μ_b − μ_a,  μ = μ_a + δ·n_b/n,  M2 = M2_a + M2_b + δ²·n_a·n_b/n

The statistics are frozen during one evaluation (every candidate sees the same
normaliser) and updated with that evaluation's observations afterwards, as in Salimans
et al. (2017), "Evolution Strategies as a Scalable Alternative to Reinforcement Learning".
"""

from __future__ import annotations

import difflib
import uuid
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode
from torch import Tensor, nn

from zoopt.objectives.base import Objective, OutputSamples, seeded_generator
from zoopt.policies import Policy, make_policy

__all__ = ["GymObjective", "ObservationStatistics", "episode_seeds"]

#: vector environments kept per objective (one per batch size: centre K=1, population K)
_MAX_CACHED_ENVS = 4


def episode_seeds(seed: int, episodes: int) -> list[int]:
    """The E episode seeds of a step seeded ``seed`` (shared by all of its candidates)."""
    ss = np.random.SeedSequence([int(seed) & (2**63 - 1), 0x6E5])
    return [int(s) for s in ss.generate_state(episodes, np.uint32)]


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


class _ShiftedSums:
    """Accumulates Σ(x−c) and Σ(x−c)² of masked observations cheaply per time step.

    Shifting by c (the frozen mean) keeps the one-pass variance numerically sound.
    """

    def __init__(self, shift: np.ndarray):
        self.shift = shift
        self.n = 0.0
        self.s1 = np.zeros_like(shift)
        self.s2 = np.zeros_like(shift)

    def add(self, obs: np.ndarray, mask: np.ndarray) -> None:
        d = (obs - self.shift) * mask[:, None]
        self.n += float(mask.sum())
        self.s1 += d.sum(0)
        self.s2 += (d * d).sum(0)

    def statistics(self) -> ObservationStatistics:
        s = ObservationStatistics(len(self.shift))
        if self.n:
            m = self.s1 / self.n
            s.count = self.n
            s.mean = torch.from_numpy(self.shift + m)
            s.m2 = torch.from_numpy(np.maximum(self.s2 - self.n * m * m, 0.0))
        return s


def _time_limit(env: gym.Env) -> int | None:
    """The episode step limit of ``env``: its spec's, else that of a ``TimeLimit`` wrapper."""
    if env.spec is not None and env.spec.max_episode_steps is not None:
        return int(env.spec.max_episode_steps)
    while isinstance(env, gym.Wrapper):
        if isinstance(env, gym.wrappers.TimeLimit):
            return int(env._max_episode_steps)
        env = env.env
    return None


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


class GymObjective(Objective):
    """Loss = −(mean return over ``episodes`` episodes) of a policy on a Gymnasium task.

    Args:
        env: a registered id (``"CartPole-v1"``) or a factory ``() -> gymnasium.Env``.
        policy: ``"linear"``, ``"mlp"``, an ``nn.Module`` mapping ``(B, obs_dim)`` to
            ``(B, n_actions)`` logits or ``(B, action_dim)`` means, or a
            :class:`zoopt.policies.Policy`.
        episodes: E ≥ 1 episodes per candidate; the loss averages their returns.
        max_episode_steps: step cap per episode (default: the environment's time limit;
            required when it has none).
        normalize_observations: normalise observations by running statistics.
        hidden, activation: sizes and non-linearity of the ``"mlp"`` policy.
        log_std: Gaussian log standard deviation for ``Box`` actions (used by
            :meth:`sample_outputs`): a float, or ``"learned"`` to append it to the parameters.
        action_squash: ``"clip"`` or ``"tanh"``: how means and draws become ``Box`` actions.
        vectorization: ``"auto"`` (Gymnasium's native vector environment where zoopt can
            seed its episodes individually, e.g. CartPole, else ``SyncVectorEnv``),
            ``"native"``, ``"sync"``, or ``"torch"``: this project's batched torch
            environments (``zoopt_envs.torch_envs``, for ``CartPole-v0/v1`` and
            ``MountainCar-v0``), where observations, policy and dynamics stay tensors on
            ``device`` — worth it for thousands of episodes at once or on a GPU.
        device: where ``"torch"`` rollouts run (``"cpu"``, ``"cuda"``); other modes run
            on the CPU (parameters on any device are accepted and moved).
        observation_clip: normalised observations are clipped to ±this.
        env_kwargs: keyword arguments for the environment constructor.

    Attributes:
        dim: number of policy parameters P.
        env_steps: environment steps played so far (sum of episode lengths), over every
            evaluation, :meth:`sample_outputs` and :meth:`episode_returns` call.
        episodes_played: episodes played so far, counted the same way.
        policy: the :class:`zoopt.policies.Policy`.
    """

    metric_name = "return"
    metric_sign = -1.0

    def __init__(
        self,
        env: str | Callable[[], gym.Env],
        policy: str | nn.Module | Policy = "linear",
        *,
        episodes: int = 1,
        max_episode_steps: int | None = None,
        normalize_observations: bool = False,
        hidden: tuple[int, ...] = (32, 32),
        activation: str = "tanh",
        log_std: float | str = -0.5,
        action_squash: str = "clip",
        vectorization: str = "auto",
        device: str | torch.device = "cpu",
        observation_clip: float = 10.0,
        env_kwargs: dict | None = None,
    ):
        if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
            raise ValueError(f"episodes must be a positive int, got {episodes!r}")
        if max_episode_steps is not None and (
            isinstance(max_episode_steps, bool)
            or not isinstance(max_episode_steps, int)
            or max_episode_steps < 1
        ):
            raise ValueError(
                f"max_episode_steps must be a positive int or None, got {max_episode_steps!r}"
            )
        if vectorization not in ("auto", "native", "sync", "torch"):
            raise ValueError(
                f"vectorization must be 'auto', 'native', 'sync' or 'torch', got {vectorization!r}"
            )
        self.device = torch.device(device)
        if self.device.type != "cpu" and vectorization != "torch":
            raise ValueError(
                f"device={str(device)!r} needs vectorization='torch' (Gymnasium's vector "
                "environments run on the CPU)"
            )
        if not (isinstance(observation_clip, (int, float)) and observation_clip > 0):
            raise ValueError(
                f"observation_clip must be a positive number, got {observation_clip!r}"
            )
        if env_kwargs is not None and not isinstance(env_kwargs, dict):
            raise TypeError(f"env_kwargs must be a dict or None, got {type(env_kwargs).__name__}")
        self.env_kwargs = dict(env_kwargs or {})
        self.episodes = episodes
        self.normalize_observations = bool(normalize_observations)
        self.observation_clip = float(observation_clip)

        probe = self._make_probe(env)
        self.observation_space = probe.observation_space
        self.action_space = probe.action_space
        self.observation_dim = self._observation_dim(self.observation_space)
        self.policy = make_policy(
            policy,
            self.observation_dim,
            self.action_space,
            hidden=tuple(hidden),
            activation=activation,
            log_std=log_std,
            squash=action_squash,
        )
        self.max_episode_steps = max_episode_steps or _time_limit(probe)
        if self.max_episode_steps is None:
            raise ValueError(
                f"max_episode_steps: {self.name} has no time limit; pass max_episode_steps=N "
                "so that every episode ends"
            )
        self._native_cls = None
        self._torch_cls = None
        if vectorization == "torch":
            self._torch_cls = self._torch_class()
        elif self.env_id is not None:
            self._native_cls = self._native_class(vectorization)
        elif vectorization == "native":
            raise ValueError(
                "vectorization='native' needs a registered env id with a native "
                "vector environment; a factory runs on SyncVectorEnv"
            )
        self._probe = probe
        self.dim = self.policy.num_parameters
        self.env_steps = 0
        self.episodes_played = 0
        self._pending_episodes = 0
        self._stats = ObservationStatistics(self.observation_dim)
        self._pending_stats = ObservationStatistics(self.observation_dim)
        self._pending_steps = 0
        self._token = uuid.uuid4().hex
        self._venvs: dict[int, gym.vector.VectorEnv] = {}

    # -- construction helpers ----------------------------------------------------------------
    def _build_single_env(self) -> gym.Env:
        if self.env_id is not None:
            return gym.make(self.env_id, **self.env_kwargs)
        return self.env_factory()

    def _make_probe(self, env: Any) -> gym.Env:
        if isinstance(env, str):
            self.env_id, self.env_factory = env, None
            self.name = env
            if env.startswith("zoopt/"):
                try:  # this project's environments register themselves on import
                    import zoopt_envs  # noqa: F401
                except ModuleNotFoundError:
                    pass
            try:
                return gym.make(env, **self.env_kwargs)
            except gym.error.Error as e:
                raise _unknown_env_error(env, e) from None
        if callable(env):
            self.env_id, self.env_factory = None, env
            made = env()
            if not isinstance(made, gym.Env):
                raise TypeError(
                    f"env: the factory must return a gymnasium.Env, got {type(made).__name__}"
                )
            self.name = made.spec.id if made.spec is not None else type(made.unwrapped).__name__
            return made
        raise TypeError(
            f"env must be a registered Gymnasium id (str) or a factory "
            f"() -> gymnasium.Env, got {type(env).__name__}"
        )

    @staticmethod
    def _observation_dim(space: spaces.Space) -> int:
        if isinstance(space, spaces.Box):
            return int(np.prod(space.shape))
        if isinstance(space, spaces.Discrete):
            return int(space.n)  # one-hot
        raise TypeError(
            f"observation space {space} is not supported: GymObjective needs a Box "
            "(flattened) or Discrete (one-hot) observation space; wrap the environment with "
            "gymnasium.wrappers.FlattenObservation"
        )

    def _native_class(self, vectorization: str) -> type | None:
        """The native vector class to use, or None for SyncVectorEnv."""
        if vectorization == "sync":
            return None
        spec = gym.spec(self.env_id)
        entry = spec.vector_entry_point
        cls = None
        if entry is not None:
            try:
                cls = (
                    gym.envs.registration.load_env_creator(entry)
                    if isinstance(entry, str)
                    else entry
                )
            except Exception:  # e.g. a jax-based vector env whose dependency is missing
                cls = None
        if cls is not None and cls in _native_seeders():
            return cls
        if vectorization == "native":
            raise ValueError(
                f"vectorization='native': {self.env_id} has no native vector environment whose "
                f"episodes zoopt can seed one by one (supported: "
                f"{[c.__name__ for c in _native_seeders()]}); use 'auto' or 'sync'"
            )
        return None

    def _torch_class(self) -> type:
        """The ``zoopt_envs.torch_envs`` class simulating ``env_id``."""
        names = {
            "CartPole-v0": "BatchedCartPole",
            "CartPole-v1": "BatchedCartPole",
            "MountainCar-v0": "BatchedMountainCar",
        }
        if self.env_id not in names or self.env_kwargs:
            raise ValueError(
                f"vectorization='torch' supports {sorted(names)} without env_kwargs; got "
                f"{self.name!r}"
                + (f" with env_kwargs {self.env_kwargs}" if self.env_kwargs else "")
            )
        from zoopt_envs import torch_envs

        return getattr(torch_envs, names[self.env_id])

    @property
    def vectorization(self) -> str:
        """``"native"``, ``"sync"`` or ``"torch"``: the vector environment used."""
        if self._torch_cls is not None:
            return "torch"
        return "sync" if self._native_cls is None else "native"

    def _vector_env(self, n: int) -> gym.vector.VectorEnv:
        venv = self._venvs.get(n)
        if venv is not None:
            return venv
        if len(self._venvs) >= _MAX_CACHED_ENVS:
            old = self._venvs.pop(next(iter(self._venvs)))
            if hasattr(old, "close"):
                old.close()
        if self._torch_cls is not None:
            # done masks (no autoreset): an ended episode stays frozen with reward 0
            venv = self._torch_cls(
                n, max_episode_steps=self.max_episode_steps, device=self.device, seed=0
            )
        elif self._native_cls is not None:
            venv = gym.make_vec(
                self.env_id,
                num_envs=n,
                vectorization_mode="vector_entry_point",
                max_episode_steps=self.max_episode_steps,
                **self.env_kwargs,
            )
        elif self.env_id is not None:
            venv = gym.make_vec(
                self.env_id,
                num_envs=n,
                vectorization_mode="sync",
                vector_kwargs={"autoreset_mode": AutoresetMode.NEXT_STEP},
                max_episode_steps=self.max_episode_steps,
                **self.env_kwargs,
            )
        else:
            venv = gym.vector.SyncVectorEnv(
                [self.env_factory] * n, autoreset_mode=AutoresetMode.NEXT_STEP
            )
        self._venvs[n] = venv
        return venv

    # -- rollouts ----------------------------------------------------------------------------
    def _flat_obs(self, obs: np.ndarray, n: int) -> np.ndarray:
        if isinstance(self.observation_space, spaces.Discrete):
            out = np.zeros((n, self.observation_dim), dtype=np.float32)
            out[np.arange(n), np.asarray(obs, dtype=np.int64) - self.observation_space.start] = 1
            return out
        return np.asarray(obs, dtype=np.float32).reshape(n, self.observation_dim)

    def _start_states(self, seeds: list[int]) -> np.ndarray:
        """``(len(seeds), state_dim)`` states where ``gym.make(id).reset(seed=s)`` starts."""
        if self._probe is None:  # dropped when the objective was pickled
            self._probe = self._build_single_env()
        single = self._probe.unwrapped
        starts = {}
        for s in dict.fromkeys(seeds):  # E distinct seeds, each reset once
            single.reset(seed=s)
            starts[s] = np.array(single.state, dtype=np.float64)
        return np.stack([starts[s] for s in seeds])

    def _reset(self, venv: gym.vector.VectorEnv, seeds: list[int]) -> np.ndarray:
        if self._native_cls is not None:
            # env j starts exactly where gym.make(id).reset(seed=seeds[j]) starts
            return _native_seeders()[self._native_cls](venv, self._start_states(seeds), seeds[0])
        obs, _ = venv.reset(seed=seeds)
        return obs

    def _rollout(
        self,
        params: Tensor,
        seeds: list[int],
        *,
        stochastic: bool = False,
        generator: torch.Generator | None = None,
        record: bool = False,
        update_stats: bool = True,
    ) -> dict[str, Any]:
        """Play ``len(seeds)`` episodes for each of the K rows of ``params`` ``(K, P)``.

        Returns ``returns`` ``(K, E)`` float64 numpy and, with ``record``, the per-step
        normalised observations ``(T, K·E, obs_dim)``, actions and active masks ``(T, K·E)``.
        """
        k, e = params.shape[0], len(seeds)
        n = k * e
        if n == 0:
            return {"returns": np.zeros((k, e)), "lengths": np.zeros((k, e), dtype=np.int64)}
        if self._torch_cls is not None:
            return self._rollout_torch(
                params,
                seeds,
                stochastic=stochastic,
                generator=generator,
                record=record,
                update_stats=update_stats,
            )
        venv = self._vector_env(n)
        obs = self._flat_obs(self._reset(venv, seeds * k), n)  # env (k, e) plays seeds[e]
        returns = np.zeros(n, dtype=np.float64)
        active = np.ones(n, dtype=bool)
        lengths = np.zeros(n, dtype=np.int64)
        dtype = params.dtype
        norm = self.normalize_observations
        if norm:
            # frozen for this evaluation: every candidate sees the same normaliser
            mean = self._stats.mean.to(dtype)
            inv_std = 1.0 / torch.sqrt(self._stats.var.to(dtype) + 1e-8)
            sums = _ShiftedSums(self._stats.mean.numpy().copy())
        rec_obs, rec_act, rec_mask = [], [], []
        policy = self.policy
        actor = policy.actor(params, stochastic=stochastic, generator=generator)
        squash = stochastic and not policy.discrete
        act_dtype = None if policy.discrete else self.action_space.dtype
        shape = (k, e, self.observation_dim)
        with torch.no_grad():
            for _ in range(self.max_episode_steps):
                if norm and update_stats:
                    sums.add(obs, active)
                o = torch.from_numpy(obs)
                o = (o if o.dtype == dtype else o.to(dtype)).view(shape)
                if norm:
                    o = ((o - mean) * inv_std).clamp_(-self.observation_clip, self.observation_clip)
                a = actor(o)  # ONE batched forward pass for all K×E episodes
                if record:
                    rec_obs.append(o.reshape(n, self.observation_dim))
                    rec_act.append(a.reshape(n, *a.shape[2:]))
                    rec_mask.append(torch.from_numpy(active.copy()))
                if squash:
                    a = policy.squash(a)
                a_np = a.reshape(n, *a.shape[2:]).numpy()
                if act_dtype is not None:
                    a_np = a_np.astype(act_dtype, copy=False)
                obs, reward, terminated, truncated, _ = venv.step(a_np)
                obs = self._flat_obs(obs, n)
                returns += np.where(active, reward, 0.0)
                lengths += active
                active &= ~(terminated | truncated)
                if not active.any():
                    break
        return self._finish_rollout(
            returns,
            lengths,
            k,
            e,
            n,
            sums if norm and update_stats else None,
            (rec_obs, rec_act, rec_mask) if record else None,
        )

    def _finish_rollout(
        self,
        returns: np.ndarray,
        lengths: np.ndarray,
        k: int,
        e: int,
        n: int,
        sums: _ShiftedSums | None,
        recorded: tuple | None,
    ) -> dict[str, Any]:
        """Count the steps, fold the observation increments in, package the outputs."""
        steps = int(lengths.sum())
        self.env_steps += steps
        self._pending_steps += steps
        self.episodes_played += n
        self._pending_episodes += n
        if sums is not None:
            inc = sums.statistics()
            self._pending_stats.merge(inc)
            self._stats.merge(inc)  # the next evaluation uses what this one saw
        out: dict[str, Any] = {"returns": returns.reshape(k, e), "lengths": lengths.reshape(k, e)}
        if recorded is not None:
            rec_obs, rec_act, rec_mask = recorded
            out["obs"] = torch.stack(rec_obs)
            out["actions"] = torch.stack(rec_act)
            out["mask"] = torch.stack(rec_mask)
        return out

    def _rollout_torch(
        self,
        params: Tensor,
        seeds: list[int],
        *,
        stochastic: bool,
        generator: torch.Generator | None,
        record: bool,
        update_stats: bool,
    ) -> dict[str, Any]:
        """:meth:`_rollout` on a batched torch environment: everything stays on ``device``."""
        k, e = params.shape[0], len(seeds)
        n = k * e
        dev = self.device
        params = params.to(dev)
        venv = self._vector_env(n)
        start = torch.from_numpy(self._start_states(seeds * k))
        obs = venv.reset(state=start)  # env (k, e) starts where seeds[e] starts
        returns = torch.zeros(n, dtype=torch.float64, device=dev)
        lengths = torch.zeros(n, dtype=torch.int64, device=dev)
        active = torch.ones(n, dtype=torch.bool, device=dev)
        dtype = params.dtype
        norm = self.normalize_observations
        if norm:
            mean = self._stats.mean.to(dev, dtype)
            inv_std = 1.0 / torch.sqrt(self._stats.var.to(dev, dtype) + 1e-8)
            sums = _ShiftedSums(self._stats.mean.numpy().copy())
        rec_obs, rec_act, rec_mask = [], [], []
        actor = self.policy.actor(params, stochastic=stochastic, generator=generator)
        shape = (k, e, self.observation_dim)
        with torch.no_grad():
            for t in range(self.max_episode_steps):
                if norm and update_stats:
                    sums.add(obs.double().cpu().numpy(), active.cpu().numpy())
                o = obs.to(dtype).reshape(shape)
                if norm:
                    o = ((o - mean) * inv_std).clamp_(-self.observation_clip, self.observation_clip)
                a = actor(o)  # ONE batched forward pass for all K×E episodes
                if record:
                    rec_obs.append(o.reshape(n, self.observation_dim))
                    rec_act.append(a.reshape(n))
                    rec_mask.append(active.clone())
                obs, reward, terminated, truncated = venv.step(a.reshape(n))
                returns += reward.to(torch.float64) * active
                lengths += active
                active &= ~(terminated | truncated)
                # on an accelerator every look at `active` waits for the device: look rarely
                if (dev.type == "cpu" or t % 16 == 15) and not bool(active.any()):
                    break
        return self._finish_rollout(
            returns.cpu().numpy(),
            lengths.cpu().numpy(),
            k,
            e,
            n,
            sums if norm and update_stats else None,
            (rec_obs, rec_act, rec_mask) if record else None,
        )

    def _check_params(self, X: Tensor, name: str = "X") -> Tensor:
        if not isinstance(X, Tensor):
            raise TypeError(
                f"{name} must be a Tensor of shape (K, {self.dim}), got {type(X).__name__}"
            )
        if X.ndim != 2 or X.shape[1] != self.dim:
            raise ValueError(
                f"{name} must have shape (K, {self.dim}) (K policies of "
                f"{self.dim} parameters), got {tuple(X.shape)}"
            )
        X = X.detach().cpu()
        return X if X.is_floating_point() else X.to(torch.get_default_dtype())

    def _check_vector(self, x: Any) -> None:
        """A clear error unless ``x`` is one flat parameter vector ``(P,)``."""
        if not isinstance(x, Tensor) or x.shape != (self.dim,):
            raise ValueError(
                f"x must be a Tensor of shape ({self.dim},), got "
                f"{getattr(x, 'shape', type(x).__name__)}"
            )

    # -- the objective -----------------------------------------------------------------------
    def evaluate(self, X: Tensor, seed: int = 0) -> Tensor:
        """Losses ``(K,)`` = −(mean return over E greedy episodes seeded from ``seed``).

        Args:
            X: ``(K, P)`` policy parameters.
            seed: the step's seed; all K candidates play the same E episode seeds.
        """
        X = self._check_params(X)
        returns = self._rollout(X, episode_seeds(seed, self.episodes))["returns"]
        return torch.from_numpy(-returns.mean(1)).to(X.dtype)

    def episode_returns(
        self,
        X: Tensor,
        seed: int = 0,
        episodes: int | None = None,
        *,
        deterministic: bool = True,
        update_stats: bool = False,
    ) -> Tensor:
        """Returns ``(K, E)`` of each policy on each episode (e.g. for held-out testing).

        Args:
            X: ``(K, P)`` or ``(P,)`` parameters.
            seed: episode seeds derive from it as in :meth:`evaluate`.
            episodes: E (default: the objective's ``episodes``).
            deterministic: greedy actions (as :meth:`evaluate`) or stochastic draws.
            update_stats: let these episodes update the observation normaliser.
        """
        if isinstance(X, Tensor) and X.ndim == 1:
            X = X[None]
        X = self._check_params(X)
        e = self.episodes if episodes is None else episodes
        if isinstance(e, bool) or not isinstance(e, int) or e < 1:
            raise ValueError(f"episodes must be a positive int, got {episodes!r}")
        g = seeded_generator(seed)
        out = self._rollout(
            X,
            episode_seeds(seed, e),
            stochastic=not deterministic,
            generator=g,
            update_stats=update_stats,
        )
        return torch.from_numpy(out["returns"])

    def sample_outputs(
        self, x: Tensor, num_samples: int, generator: torch.Generator | None, seed: int = 0
    ) -> OutputSamples:
        """``num_samples`` stochastic episodes at ``x`` ``(P,)`` for ``"reinforce"``.

        The episodes are played without autograd; log π of every visited (state, action)
        is then recomputed in one batched forward pass that is differentiable in ``x``.

        Returns:
            :class:`OutputSamples` with ``log_probs`` ``(1, M)`` = Σ_t log π(a_t|s_t) per
            episode, ``losses`` ``(1, M)`` = −return, ``entropy`` ``(1,)`` = mean policy
            entropy over the visited states.
        """
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
            raise ValueError(f"num_samples must be a positive int, got {num_samples!r}")
        self._check_vector(x)
        if generator is None:
            generator = seeded_generator(seed)
        params = x[None]
        out = self._rollout(
            params.detach().cpu(),
            episode_seeds(seed, num_samples),
            stochastic=True,
            generator=generator,
            record=True,
        )
        # (T, M, ...), brought back from a "torch" rollout's device to x's
        obs, actions, mask = (out[key].to(x.device) for key in ("obs", "actions", "mask"))
        t, m = mask.shape
        flat_obs = obs.reshape(1, t * m, self.observation_dim).to(x)
        flat_act = actions.reshape(1, t * m, *actions.shape[2:])
        logp = self.policy.log_prob(params, flat_obs, flat_act).reshape(t, m)
        maskf = mask.to(logp.dtype)
        log_probs = (logp * maskf).sum(0)[None]  # (1, M)
        ent = self.policy.entropy(params, flat_obs).reshape(t, m)
        entropy = ((ent * maskf).sum() / maskf.sum().clamp_min(1.0)).reshape(1)
        losses = torch.from_numpy(-out["returns"]).to(x.dtype)  # (1, M)
        return OutputSamples(log_probs=log_probs, losses=losses.detach(), entropy=entropy)

    # -- parameters and policies for users ---------------------------------------------------
    def initial_parameters(self, seed: int = 0) -> Tensor:
        """A starting flat parameter vector ``(P,)`` (see :meth:`Policy.initial_parameters`)."""
        return self.policy.initial_parameters(seed)

    def unflatten(self, x: Tensor) -> nn.Module:
        """The policy network at ``x`` ``(P,)`` as an ``nn.Module`` (logits or means out;
        inputs are normalised observations when ``normalize_observations``)."""
        self._check_vector(x)
        return self.policy.to_module(x)

    def act(self, x: Tensor, observation: Any) -> Any:
        """The greedy action of the policy ``x`` ``(P,)`` for one raw observation, in the
        environment's own format (an int or a numpy array) — for rendering and deployment."""
        self._check_vector(x)
        o = torch.from_numpy(self._flat_obs(np.asarray(observation)[None], 1)).to(x.dtype)
        if self.normalize_observations:
            o = (o - self._stats.mean.to(x.dtype)) / torch.sqrt(self._stats.var.to(x.dtype) + 1e-8)
            o = o.clamp(-self.observation_clip, self.observation_clip)
        with torch.no_grad():
            a = self.policy.act(x.detach()[None], o[None])[0, 0]
        if self.policy.discrete:
            return int(a)
        return a.numpy().astype(self.action_space.dtype)

    # -- statistics hooks --------------------------------------------------------------------
    def pop_stats(self) -> dict:
        """This copy's increments since the last call: observation statistics and env steps.

        Tagged with this object's identity, so that :meth:`absorb_stats` on the same object
        (whose own evaluations already updated it) does not count them twice.
        """
        stats = {
            "source": self._token,
            "env_steps": self._pending_steps,
            "episodes": self._pending_episodes,
            "observations": self._pending_stats.state_dict(),
        }
        self._pending_stats = ObservationStatistics(self.observation_dim)
        self._pending_steps = 0
        self._pending_episodes = 0
        return stats

    def absorb_stats(self, stats: Any) -> None:
        """Merge :meth:`pop_stats` of an evaluation copy (a Ray worker) into this object."""
        if stats is None or stats.get("source") == self._token:
            return
        self.env_steps += int(stats["env_steps"])
        self.episodes_played += int(stats["episodes"])
        if self.normalize_observations:
            self._stats.merge(ObservationStatistics.from_state(stats["observations"]))

    def shared_state(self) -> dict | None:
        """The normaliser statistics that evaluation copies must use this step."""
        return self._stats.state_dict() if self.normalize_observations else None

    def load_shared_state(self, state: Any) -> None:
        """Install :meth:`shared_state` of the driver."""
        if state is not None:
            self._stats = ObservationStatistics.from_state(state)

    def state_dict(self) -> dict:
        """Normaliser statistics and the env-step count, for checkpoints."""
        return {
            "observations": self._stats.state_dict(),
            "env_steps": self.env_steps,
            "episodes": self.episodes_played,
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`."""
        self._stats = ObservationStatistics.from_state(state["observations"])
        self.env_steps = int(state["env_steps"])
        self.episodes_played = int(state["episodes"])

    @property
    def observation_statistics(self) -> ObservationStatistics:
        """The running observation statistics (used when ``normalize_observations``)."""
        return self._stats

    # -- housekeeping ------------------------------------------------------------------------
    def close(self) -> None:
        """Close the cached vector environments."""
        for venv in self._venvs.values():
            if hasattr(venv, "close"):
                venv.close()
        self._venvs.clear()

    def __getstate__(self) -> dict:
        # environments hold simulator handles that do not pickle; copies rebuild them lazily
        state = self.__dict__.copy()
        state["_venvs"] = {}
        state["_probe"] = None  # e.g. MuJoCo models do not pickle; rebuilt when needed
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._token = uuid.uuid4().hex  # a copy is a different source of statistics

    def __repr__(self) -> str:
        return (
            f"GymObjective({self.name!r}, policy={getattr(self, 'policy', None)}, "
            f"episodes={self.episodes}, "
            f"vectorization={self.vectorization!r})"
        )


# -- native vector environments ------------------------------------------------------------
def _seed_cartpole(venv: gym.vector.VectorEnv, starts: np.ndarray, seed: int) -> np.ndarray:
    """Reset Gymnasium's native ``CartPoleVectorEnv`` and put env j in state ``starts[j]``
    (``(N, 4)``); returns the first observations ``(N, 4)``."""
    venv.reset(seed=seed)  # clears step counters and episode flags, seeds later autoresets
    state = np.ascontiguousarray(starts.T)  # the vector env keeps its state as (4, N)
    venv.unwrapped.state = state
    return state.T.astype(np.float32)


_NATIVE_SEEDERS: dict[type, Callable] | None = None


def _native_seeders() -> dict[type, Callable]:
    """Native vector classes whose episodes can be seeded one by one, with their seeders."""
    global _NATIVE_SEEDERS
    if _NATIVE_SEEDERS is None:
        from gymnasium.envs.classic_control.cartpole import CartPoleVectorEnv

        _NATIVE_SEEDERS = {CartPoleVectorEnv: _seed_cartpole}
    return _NATIVE_SEEDERS
