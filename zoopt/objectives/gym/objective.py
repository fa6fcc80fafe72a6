"""Gymnasium policy objectives: loss = −(mean episodic return) of a policy's parameters.

:class:`GymObjective` evaluates a population of K policies on E episodes each: the K×E
episodes form a queue that an episode scheduler (:mod:`zoopt.objectives.gym.rollout`)
plays on S env slots of one vector environment, with ONE batched policy forward pass per
time step (see :mod:`zoopt.policies`); a slot whose episode ends takes the next pending
episode at once.

Vector environments (:mod:`zoopt.objectives.gym.adapters`): Gymnasium's native
``CartPoleVectorEnv`` where zoopt can start each slot from a chosen state, else
``SyncVectorEnv`` reseeded slot by slot; ``vectorization="torch"`` uses this project's
batched tensor environments (``zoopt_envs.torch_envs``), on the CPU or a GPU. All three
play, for the same seeds, the episodes of a plain ``gym.make(id)`` loop, whatever S.

Common random numbers: the step's ``seed`` fixes E episode seeds; every candidate (and
both members of an antithetic pair) plays episode e from the same seed, so their return
difference measures the parameters, not the luck of the draw (Kleinman et al., 1999).

Observation normalisation (optional, :mod:`zoopt.objectives.gym.normalizer`) follows
Salimans et al. (2017): statistics frozen during an evaluation, updated after it. So does the
optional straggler cap (``episode_cap``): an evaluation's episodes end after at most c times
the mean length of the previous evaluation's episodes (c = 2 in the paper), so that one
long episode does not hold a whole generation back.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor, nn

from zoopt.objectives.base import Objective, OutputSamples, seeded_generator
from zoopt.objectives.gym.adapters import SlotEnv, make_slot_env
from zoopt.objectives.gym.envs import (
    VECTORIZATIONS,
    episode_seeds,
    flat_observations,
    make_env_spec,
)
from zoopt.objectives.gym.normalizer import ObservationStatistics, ObservationSums
from zoopt.objectives.gym.rollout import BEHAVIOURS, Rollout, play_episodes
from zoopt.policies import MLPPolicy, Policy, make_policy

__all__ = ["GymObjective", "default_slots"]

#: slot environments kept per objective (one per slot count: centre K=1, population K)
_MAX_CACHED_ENVS = 4

#: per backend, about the slot count at which the per-slot work of a step catches up with
#: its fixed cost (Python calls, kernel launches). Below it an idle slot costs next to
#: nothing and more slots mean fewer loop steps; above it idle slots cost real work.
#: Measured on CartPole: SyncVectorEnv steps each slot in Python (S = 8 played a mixed
#: population 2× faster than S = 64); Gymnasium's native vector env costs 76 µs per step
#: at 16 envs and 169 µs at 1,024, and with the rollout loop's own cost per step down to
#: one policy forward and numpy bookkeeping, the env step is most of a loop step: on 256
#: CartPole episodes 256 slots beat 64, 32, 16 and 8 in an es run although occupancy rises
#: from 0.25 to 0.96 (benchmarks/bench_cartpole.py --slots). The torch envs cost a few
#: dozen kernel calls per step whatever S: on a CPU they overtake the native env in the
#: thousands of envs (benchmarks/bench_torch_envs.py); the accelerator's value is a bound
#: on memory, not a measurement.
SLOTS_AT_FIXED_COST = {"sync": 8, "native": 1024, "torch": 4096, "torch-accelerator": 1 << 20}


def default_slots(episodes: int, backend: str, device: torch.device | None = None) -> int:
    """The default slot count S for ``episodes`` = K×E episodes on ``backend``.

    ``min(K×E, SLOTS_AT_FIXED_COST[backend])``: slots are free up to the point where a
    step's per-slot work matches its fixed cost, and past it idle slots waste work.
    """
    key = backend
    if backend == "torch" and device is not None and torch.device(device).type != "cpu":
        key = "torch-accelerator"
    return max(1, min(episodes, SLOTS_AT_FIXED_COST[key]))


def _default_behaviour(space: Any) -> str:
    """``"visited"`` for one-hot (``Discrete``) and grid (``Box`` within [0, 1])
    observations, where the last one says little (DeepSea's is empty); else ``"final"``."""
    if isinstance(space, gym.spaces.Discrete):
        return "visited"
    if isinstance(space, gym.spaces.Box):
        low, high = np.asarray(space.low), np.asarray(space.high)
        if bool((low == 0).all()) and bool((high == 1).all()):
            return "visited"
    return "final"


def _check_slots(slots: Any) -> int | None:
    if slots is None:
        return None
    if isinstance(slots, bool) or not isinstance(slots, int) or slots < 1:
        raise ValueError(f"slots must be a positive int or None (the default), got {slots!r}")
    return slots


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
        slots: S, the env slots that play an evaluation's K×E greedy episodes; a slot
            whose episode ends takes the next pending episode at once, so only the last
            S episodes leave slots idle. Default (``None``): :func:`default_slots`, which
            depends on the backend. Results do not depend on S.
        behaviour: what characterises a candidate's behaviour for novelty search
            (:meth:`evaluate_with_behaviour`), averaged over its episodes: ``"final"``, the
            raw observation each episode ended in; ``"visited"``, the element-wise maximum
            of its raw observations (the set of cells visited, for one-hot or grid
            observations); ``"auto"``: ``"visited"`` for ``Discrete`` observations and
            ``Box`` observations within [0, 1] (grids), else ``"final"``.
        episode_cap: a factor c > 0, or None (no cap): the episodes of each evaluation
            (:meth:`evaluate`, one per step of a run) end after at most
            ``ceil(c × mean length of the previous evaluation's episodes)`` steps, and never
            beyond ``max_episode_steps``; Salimans et al. (2017) use c = 2. It changes the
            objective: a capped episode's return is its partial sum, so a policy that
            suddenly survives much longer is credited only up to the cap for one step. The
            cap in force is reported by :meth:`history_info` (the history's
            ``episode_cap``) and kept in :meth:`state_dict` (checkpoints).

    Attributes:
        dim: number of policy parameters P.
        env_steps: environment steps played so far (sum of episode lengths), over every
            evaluation, :meth:`sample_outputs` and :meth:`episode_returns` call.
        episodes_played: episodes played so far, counted the same way.
        slot_steps: slot-steps simulated so far (``env_steps / slot_steps`` is the share
            of slots that played a live episode: the occupancy).
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
        slots: int | None = None,
        behaviour: str = "auto",
        episode_cap: float | None = None,
    ):
        if episode_cap is not None and (
            isinstance(episode_cap, bool)
            or not isinstance(episode_cap, (int, float))
            or not episode_cap > 0
        ):
            raise ValueError(
                f"episode_cap must be a positive number (2.0: twice the previous mean episode "
                f"length) or None, got {episode_cap!r}"
            )
        if behaviour not in ("auto", *BEHAVIOURS):
            raise ValueError(f"behaviour must be 'auto', 'final' or 'visited', got {behaviour!r}")
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
        if vectorization not in VECTORIZATIONS:
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

        self.spec = make_env_spec(env, self.env_kwargs)
        self.env_id, self.env_factory, self.name = (
            self.spec.env_id,
            self.spec.factory,
            self.spec.name,
        )
        self.observation_space = self.spec.observation_space
        self.action_space = self.spec.action_space
        self.observation_dim = self.spec.observation_dim
        self.behaviour = (
            _default_behaviour(self.observation_space) if behaviour == "auto" else behaviour
        )
        self.policy = make_policy(
            policy,
            self.observation_dim,
            self.action_space,
            hidden=tuple(hidden),
            activation=activation,
            log_std=log_std,
            squash=action_squash,
        )
        self.max_episode_steps = max_episode_steps or self.spec.time_limit
        if self.max_episode_steps is None:
            raise ValueError(
                f"max_episode_steps: {self.name} has no time limit; pass max_episode_steps=N "
                "so that every episode ends"
            )
        self.spec.choose_backend(vectorization)
        self.slots = _check_slots(slots)
        self.dim = self.policy.num_parameters
        self.env_steps = 0
        self.episodes_played = 0
        self.slot_steps = 0
        self._pending_episodes = 0
        self._stats = ObservationStatistics(self.observation_dim)
        self._pending_stats = ObservationStatistics(self.observation_dim)
        self._pending_steps = 0
        self.episode_cap = None if episode_cap is None else float(episode_cap)
        self._cap: int | None = None  # the straggler cap in force (None: the time limit)
        # [seed, steps, episodes] of the generation being played: the evaluations of one
        # step share its seed (also when split into chunks on workers)
        self._generation: list = [None, 0, 0]
        self._pending_generation: dict[int, list[int]] = {}  # seed -> [steps, episodes]
        #: greedy CPU rollouts of MLP and linear policies run the policy in numpy
        #: (:meth:`zoopt.policies.MLPPolicy.numpy_actor`); False: in torch
        self.numpy_policy = True
        self._token = uuid.uuid4().hex
        self._slot_envs: dict[int, SlotEnv] = {}
        self._host_refill: bool | None = None  # False: the accelerator's refill, on the CPU

    @property
    def vectorization(self) -> str:
        """``"native"``, ``"sync"`` or ``"torch"``: the vector environment used."""
        return self.spec.backend

    def num_slots(self, episodes: int) -> int:
        """S, the env slots that play ``episodes`` episodes of one evaluation."""
        if self.slots is None:
            return default_slots(episodes, self.spec.backend, self.device)
        s = self.slots
        return max(1, min(s, episodes))

    def _slot_env(self, s: int) -> SlotEnv:
        env = self._slot_envs.get(s)
        if env is None:
            if len(self._slot_envs) >= _MAX_CACHED_ENVS:
                self._slot_envs.pop(next(iter(self._slot_envs))).close()
            env = make_slot_env(self.spec, s, self.max_episode_steps, self.device)
            self._slot_envs[s] = env
        return env

    # -- rollouts ----------------------------------------------------------------------------
    def _rollout(
        self,
        params: Tensor,
        seeds: list[int],
        *,
        stochastic: bool = False,
        generator: torch.Generator | None = None,
        record: bool = False,
        update_stats: bool = True,
        behaviour: str | None = None,
        capped: bool = False,
    ) -> Rollout:
        """Play ``len(seeds)`` episodes for each of the K rows of ``params`` ``(K, P)``.

        Greedy evaluations share S slots (:meth:`num_slots`); stochastic or recorded
        rollouts give every episode its own slot, so that the policy's random draws come
        in the same order whatever the slot count. ``capped``: an evaluation under the
        straggler cap (see ``episode_cap``), whose lengths set the next evaluation's cap.
        """
        k, e = params.shape[0], len(seeds)
        n = k * e
        if n == 0:
            empty = torch.zeros(k, e, dtype=torch.float64)
            return Rollout(returns=empty, lengths=empty.long(), slot_steps=0)
        s = n if (stochastic or record) else self.num_slots(n)
        env = self._slot_env(s)
        params = params.to(env.device)
        norm = self.normalize_observations
        policy = self.policy

        # greedy CPU rollouts of an MLP (or linear) policy run it in numpy: a fraction of
        # torch's per-call cost, paid at every time step
        fast = (
            self.numpy_policy
            and isinstance(policy, MLPPolicy)
            and not stochastic
            and env.device.type == "cpu"
        )

        def actor_for(candidates: Tensor):
            rows = params.index_select(0, candidates)  # slot s acts with its candidate's row
            if fast:
                forward = policy.numpy_actor(rows)
                return lambda obs: torch.from_numpy(np.asarray(forward(obs.numpy())))
            return policy.actor(rows, stochastic=stochastic, generator=generator)

        sums = ObservationSums(self._stats.mean, env.device) if norm and update_stats else None
        out = play_episodes(
            env,
            actor_for,
            k,
            seeds,
            max_episode_steps=self.max_episode_steps,
            # frozen for this evaluation: every candidate sees the same normaliser
            normalizer=(
                self._stats.normalizer(self.observation_clip, params.dtype, env.device)
                if norm
                else None
            ),
            sums=sums,
            squash=policy.squash if stochastic and not policy.discrete else None,
            record=record,
            dtype=params.dtype,
            host_refill=self._host_refill,
            behaviour=behaviour,
            episode_cap=self._cap if capped and self.episode_cap is not None else None,
            # every candidate's layers laid out once; slots taking new episodes gather rows
            numpy_actor_for=policy.numpy_actors(params) if fast else None,
        )
        steps = int(out.lengths.sum())
        if capped and self.episode_cap is not None:
            self._generation[1] += steps
            self._generation[2] += n
            pending = self._pending_generation.setdefault(self._generation[0], [0, 0])
            pending[0] += steps
            pending[1] += n
        self.env_steps += steps
        self._pending_steps += steps
        self.episodes_played += n
        self._pending_episodes += n
        self.slot_steps += out.slot_steps
        if sums is not None:
            inc = sums.statistics()
            self._pending_stats.merge(inc)
            self._stats.merge(inc)  # the next evaluation uses what this one saw
        return out

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

    # -- the straggler cap --------------------------------------------------------------------
    def _begin_generation(self, seed: int) -> None:
        """An evaluation with a new step seed starts a generation: the cap becomes c × the
        mean length of the previous generation's episodes (Salimans et al. 2017)."""
        if self.episode_cap is None or seed == self._generation[0]:
            return
        _, steps, episodes = self._generation
        if episodes:
            mean = steps / episodes
            self._cap = min(self.max_episode_steps, max(1, math.ceil(self.episode_cap * mean)))
        self._generation = [seed, 0, 0]

    @property
    def current_episode_cap(self) -> int:
        """The step limit of the episodes of an evaluation now: the straggler cap in force,
        else ``max_episode_steps``."""
        return self.max_episode_steps if self._cap is None else self._cap

    def history_info(self) -> dict:
        """Per-step numbers for a run's history: ``episode_cap``, the step limit the step's
        evaluation played under (only with ``episode_cap``)."""
        if self.episode_cap is None:
            return {}
        return {"episode_cap": self.current_episode_cap}

    # -- the objective -----------------------------------------------------------------------
    def evaluate(self, X: Tensor, seed: int = 0) -> Tensor:
        """Losses ``(K,)`` = −(mean return over E greedy episodes seeded from ``seed``).

        Args:
            X: ``(K, P)`` policy parameters.
            seed: the step's seed; all K candidates play the same E episode seeds.
        """
        X = self._check_params(X)
        self._begin_generation(seed)
        returns = self._rollout(X, episode_seeds(seed, self.episodes), capped=True).returns
        return torch.from_numpy(-returns.numpy().mean(1)).to(X.dtype)

    def evaluate_with_behaviour(self, X: Tensor, seed: int = 0) -> tuple[Tensor, Tensor]:
        """:meth:`evaluate`'s losses ``(K,)`` and behaviours ``(K, obs_dim)``: each
        candidate's per-episode behaviour (see ``behaviour``) averaged over its episodes."""
        X = self._check_params(X)
        self._begin_generation(seed)
        out = self._rollout(
            X, episode_seeds(seed, self.episodes), behaviour=self.behaviour, capped=True
        )
        losses = torch.from_numpy(-out.returns.numpy().mean(1)).to(X.dtype)
        return losses, out.behaviours.mean(1)

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
        return out.returns

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
        obs, actions, mask = (t.to(x.device) for t in (out.obs, out.actions, out.mask))
        t, m = mask.shape
        flat_obs = obs.reshape(1, t * m, self.observation_dim).to(x)
        flat_act = actions.reshape(1, t * m, *actions.shape[2:])
        logp = self.policy.log_prob(params, flat_obs, flat_act).reshape(t, m)
        maskf = mask.to(logp.dtype)
        log_probs = (logp * maskf).sum(0)[None]  # (1, M)
        ent = self.policy.entropy(params, flat_obs).reshape(t, m)
        entropy = ((ent * maskf).sum() / maskf.sum().clamp_min(1.0)).reshape(1)
        losses = (-out.returns).to(x.dtype)  # (1, M)
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
        flat = flat_observations(self.observation_space, np.asarray(observation)[None], 1)
        o = torch.from_numpy(flat).to(x.dtype)
        if self.normalize_observations:
            o = (o - self._stats.mean.to(x.dtype)) / torch.sqrt(self._stats.var.to(x.dtype) + 1e-8)
            o = o.clamp(-self.observation_clip, self.observation_clip)
        if self.numpy_policy and isinstance(self.policy, MLPPolicy):  # as in evaluations
            a = torch.from_numpy(np.asarray(self.policy.numpy_actor(x[None])(o[None].numpy())))
            a = a[0, 0]
        else:
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
            "generation": self._pending_generation,
        }
        self._pending_generation = {}
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
        for seed, (steps, episodes) in stats.get("generation", {}).items():
            self._begin_generation(seed)  # the step's first chunk closes the previous one
            self._generation[1] += int(steps)
            self._generation[2] += int(episodes)
        if self.normalize_observations:
            self._stats.merge(ObservationStatistics.from_state(stats["observations"]))

    def shared_state(self) -> dict | None:
        """What evaluation copies must use this step: the normaliser statistics (``count``,
        ``mean``, ``m2``) and, with ``episode_cap``, the cap and the generation it closes
        (``straggler``), so that a copy sets the step's cap exactly as this object would."""
        state = self._stats.state_dict() if self.normalize_observations else {}
        if self.episode_cap is not None:
            state["straggler"] = {"cap": self._cap, "generation": list(self._generation)}
        return state or None

    def load_shared_state(self, state: Any) -> None:
        """Install :meth:`shared_state` of the driver."""
        if state is None:
            return
        if "mean" in state:
            self._stats = ObservationStatistics.from_state(state)
        if "straggler" in state:
            self._cap = state["straggler"]["cap"]
            self._generation = list(state["straggler"]["generation"])

    def state_dict(self) -> dict:
        """Normaliser statistics, the env-step count and the straggler cap, for
        checkpoints."""
        return {
            "observations": self._stats.state_dict(),
            "env_steps": self.env_steps,
            "episodes": self.episodes_played,
            "episode_cap": self._cap,
            "generation": list(self._generation),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`."""
        self._stats = ObservationStatistics.from_state(state["observations"])
        self.env_steps = int(state["env_steps"])
        self.episodes_played = int(state["episodes"])
        self._cap = state.get("episode_cap")
        self._generation = list(state.get("generation", (None, 0, 0)))

    @property
    def observation_statistics(self) -> ObservationStatistics:
        """The running observation statistics (used when ``normalize_observations``)."""
        return self._stats

    # -- housekeeping ------------------------------------------------------------------------
    def close(self) -> None:
        """Close the cached vector environments."""
        for env in self._slot_envs.values():
            env.close()
        self._slot_envs.clear()

    def __getstate__(self) -> dict:
        # environments hold simulator handles that do not pickle; copies rebuild them lazily
        state = self.__dict__.copy()
        state["_slot_envs"] = {}
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
