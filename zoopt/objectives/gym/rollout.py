"""One rollout loop: an episode scheduler feeding a fixed number of env slots.

A population evaluation is a queue of K×E episodes, episode j = k·E + e being candidate k
on episode seed e. S slots play them: each starts with the next pending episode, and a
slot whose episode ends takes the next pending one at once (its policy row is the
candidate's), so only the last S episodes leave slots idle. With S = K×E every episode
starts at once and the loop is the classic one (step all until the longest ends).

Per step: ONE batched policy forward over the S slots (row s uses the parameters of the
candidate its episode belongs to), one vector-env step, and tensor bookkeeping. An
episode's return is summed over its own steps in time order, so it does not depend on
which slot played it or on S.

Two loops, the same episodes. On the CPU the host looks at every step anyway, so the loop
runs on numpy arrays (the adapters' ``*_host`` methods, the numpy policy, buffers allocated
once per evaluation) and touches only the slots that ended: at a few slots, each call per
time step is a measurable share of a cheap environment's step. On an accelerator the
scheduler state is written with masks and cumulative sums only, so the loop never waits
for the device except for a look at "all done?" every ``check_every`` steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from zoopt.objectives.gym.adapters import SlotEnv
from zoopt.objectives.gym.normalizer import ObservationSums

__all__ = ["Rollout", "play_episodes"]

#: an ``Actor`` maps candidate indices ``(S,)`` to ``obs (S, 1, obs_dim) -> actions (S, 1, …)``
ActorFactory = Callable[[Tensor], Callable[[Tensor], Tensor]]
#: the same in numpy, for the CPU's host loop: indices ``(S,)`` to
#: ``obs (S, 1, obs_dim) -> actions (S, 1, …)`` arrays
NumpyActorFactory = Callable[[np.ndarray], Callable[[np.ndarray], np.ndarray]]


@dataclass
class Rollout:
    """What :func:`play_episodes` played.

    Attributes:
        returns: ``(K, E)`` float64 episodic returns (on the CPU).
        lengths: ``(K, E)`` int64 episode lengths.
        slot_steps: slots × loop steps simulated (useful steps / slot_steps = occupancy).
        obs, actions, mask: with ``record``, per-step normalised observations
            ``(T, K·E, obs_dim)``, actions ``(T, K·E, …)`` and live masks ``(T, K·E)``.
        behaviours: with ``behaviour``, ``(K, E, obs_dim)`` float64 raw observations: the
            last one of each episode (``"final"``) or their element-wise maximum over the
            episode (``"visited"``: the cells visited, for one-hot observations).
    """

    returns: Tensor
    lengths: Tensor
    slot_steps: int
    obs: Tensor | None = None
    actions: Tensor | None = None
    mask: Tensor | None = None
    behaviours: Tensor | None = None


#: what :func:`play_episodes` can keep of each episode as its behaviour
BEHAVIOURS = ("final", "visited")


def play_episodes(
    env: SlotEnv,
    actor_for: ActorFactory,
    num_candidates: int,
    seeds: list[int],
    *,
    max_episode_steps: int,
    normalizer: tuple[Tensor, Tensor, float] | None = None,
    sums: ObservationSums | None = None,
    squash: Callable[[Tensor], Tensor] | None = None,
    record: bool = False,
    dtype: torch.dtype = torch.float32,
    host_refill: bool | None = None,
    behaviour: str | None = None,
    episode_cap: int | None = None,
    numpy_actor_for: NumpyActorFactory | None = None,
) -> Rollout:
    """Play E = ``len(seeds)`` episodes for each of K candidates on ``env``'s S slots.

    Args:
        env: the adapter; its ``num_slots`` S ≤ K·E (``env.prepare(seeds)`` is called here).
        actor_for: candidate indices ``(S,)`` → a batched actor (see :data:`ActorFactory`).
        num_candidates: K.
        seeds: the E episode seeds shared by all candidates.
        max_episode_steps: the adapter's time limit (bounds the loop).
        normalizer: frozen ``(mean, 1/std, clip)`` applied to observations, or None.
        sums: accumulates the live slots' raw observations (normaliser statistics).
        squash: applied to actions before the environment (not to recorded actions).
        record: keep per-step observations, actions and masks (needs S = K·E).
        dtype: the policy's dtype.
        host_refill: refill ended slots on the host, looking at every step (default on
            the CPU), or with masks only, never waiting for the device (default elsewhere).
        behaviour: keep each episode's ``"final"`` raw observation or the maximum over its
            ``"visited"`` ones (see :attr:`Rollout.behaviours`); None keeps nothing.
        episode_cap: end every episode after at most this many steps (below the
            adapter's time limit; a straggler cap), or None.
        numpy_actor_for: the actor factory in numpy (:data:`NumpyActorFactory`) for the
            host loop; None: ``actor_for`` on views of the same memory.
    """
    if behaviour not in (None, *BEHAVIOURS):
        raise ValueError(f"behaviour must be None or one of {BEHAVIOURS}, got {behaviour!r}")
    k, e = num_candidates, len(seeds)
    n, s, dev = k * e, env.num_slots, env.device
    if record and s != n:
        raise ValueError(f"record needs one slot per episode ({n}), got {s}")
    # the host looks at the scheduler state every step on the CPU, rarely on an accelerator
    host = dev.type == "cpu" if host_refill is None else bool(host_refill)
    if host and dev.type != "cpu":
        raise ValueError(f"host_refill needs a rollout on the CPU, not {dev}")
    env.prepare(seeds)
    if host:
        return _play_on_host(
            env, actor_for, numpy_actor_for, k, seeds, max_episode_steps, normalizer, sums,
            squash, record, dtype, behaviour, episode_cap,
        )  # fmt: skip
    check_every = 16
    episode = torch.arange(s, device=dev)  # the episode each slot plays
    pending = torch.tensor(s, device=dev)  # the queue's head, on the device
    returns = torch.zeros(n + 1, dtype=torch.float64, device=dev)  # [n]: a write-off slot
    lengths = torch.zeros(n + 1, dtype=torch.int64, device=dev)
    ret = torch.zeros(s, dtype=torch.float64, device=dev)  # running return of each slot
    started = torch.zeros(s, dtype=torch.int64, device=dev)  # loop step of the slot's start
    live = torch.ones(s, dtype=torch.bool, device=dev)
    if normalizer is not None:
        mean, inv_std, clip = normalizer
    obs = env.reset(episode % e)
    actor = actor_for(episode // e)
    # row n of the behaviours is a write-off row, as for the returns
    seen = None if behaviour is None else torch.zeros(n + 1, obs.shape[1], device=dev)
    visited = behaviour == "visited"
    rec_obs, rec_act, rec_mask = [], [], []
    # every window of max_episode_steps ends an episode in each live slot (the adapters
    # truncate at max_episode_steps)
    max_loop_steps = math.ceil(n / s) * max_episode_steps + check_every
    steps = 0
    with torch.no_grad():
        while steps < max_loop_steps:
            if sums is not None:
                sums.add(obs, live)
            o = obs if obs.dtype == dtype else obs.to(dtype)
            if normalizer is not None:
                o = ((o - mean) * inv_std).clamp_(-clip, clip)
            a = actor(o.view(s, 1, -1))  # ONE batched forward pass for all slots
            a = a.reshape(s, *a.shape[2:])
            if record:
                rec_obs.append(o)
                rec_act.append(a)
                rec_mask.append(live.clone())
            if visited:  # the observation the slot acts on (its episode's first included)
                _keep_max(seen, obs, torch.where(live, episode, n))
            obs, reward, done = env.step(squash(a) if squash is not None else a)
            steps += 1
            ret += reward
            if episode_cap is not None:
                done = done | (steps - started >= episode_cap)
            ended = done & live
            # with masks and cumulative sums: no look at the device. Ended episodes are
            # written out (the others go to write-off slot n)
            index = torch.where(ended, episode, n)
            returns.scatter_(0, index, ret)
            lengths.scatter_(0, index, steps - started)
            if seen is not None:
                if visited:
                    _keep_max(seen, obs, index)
                else:
                    seen.index_copy_(0, index, obs.to(seen.dtype))
            # the ended slots take the next pending episodes, in queue order
            fresh = pending + ended.cumsum(0) - 1
            refill = ended & (fresh < n)
            pending = pending + ended.sum()
            episode = torch.where(refill, fresh, episode)
            live = (live & ~ended) | refill
            ret.masked_fill_(ended, 0.0)
            started.masked_fill_(ended, steps)
            obs = env.restart(refill, episode % e, obs)
            actor = actor_for(episode // e)
            if steps % check_every == 0 and not bool(live.any()):
                break
    out = Rollout(
        returns=returns[:n].reshape(k, e).cpu(),
        lengths=lengths[:n].reshape(k, e).cpu(),
        slot_steps=steps * s,
    )
    if seen is not None:
        out.behaviours = seen[:n].reshape(k, e, -1).to("cpu", torch.float64)
    if record:
        out.obs, out.actions, out.mask = (
            torch.stack(rec_obs),
            torch.stack(rec_act),
            torch.stack(rec_mask),
        )
    return out


def _play_on_host(
    env: SlotEnv,
    actor_for: ActorFactory,
    numpy_actor_for: NumpyActorFactory | None,
    k: int,
    seeds: list[int],
    max_episode_steps: int,
    normalizer: tuple[Tensor, Tensor, float] | None,
    sums: ObservationSums | None,
    squash: Callable[[Tensor], Tensor] | None,
    record: bool,
    dtype: torch.dtype,
    behaviour: str | None,
    episode_cap: int | None,
) -> Rollout:
    """:func:`play_episodes` on the CPU with the host looking at every step: numpy arrays
    throughout (the adapters' ``*_host`` methods), buffers allocated once per evaluation,
    and only the slots that ended touched. At a few slots the loop's own calls per time
    step are what it costs on top of the environments, so they are kept to a handful."""
    e = len(seeds)
    n, s = k * e, env.num_slots
    np_dtype = torch.empty((), dtype=dtype).numpy().dtype
    episode = np.arange(s)  # the episode each slot plays
    next_episode = s  # the queue's head
    seed_index, candidate = episode % e, episode // e
    returns = np.zeros(n + 1)  # [n]: a write-off slot
    lengths = np.zeros(n + 1, dtype=np.int64)
    ret = np.zeros(s)  # running return of each slot
    started = np.zeros(s, dtype=np.int64)  # loop step of the slot's start
    live = np.ones(s, dtype=bool)
    # until the queue runs dry every slot is live: no mask to apply
    all_live = True
    if numpy_actor_for is None:  # a torch actor, on views of the same memory

        def numpy_actor_for(c: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
            actor = actor_for(torch.from_numpy(c))
            return lambda o: actor(torch.from_numpy(o)).numpy()

    obs = env.reset_host(seed_index)
    obs_dim = obs.shape[1]
    if normalizer is not None:
        mean, inv_std, clip = (
            normalizer[0].numpy(),
            normalizer[1].numpy(),
            normalizer[2],
        )
        normed = np.empty((s, obs_dim), dtype=np_dtype)  # (S, obs_dim), reused every step
        normed_3d = normed.reshape(s, 1, obs_dim)
        lo, hi = np.asarray(-clip, dtype=np_dtype), np.asarray(clip, dtype=np_dtype)
    actor = numpy_actor_for(candidate)
    # row n of the behaviours is a write-off row, as for the returns
    seen = None if behaviour is None else torch.zeros(n + 1, obs_dim).numpy()
    visited = behaviour == "visited"
    rec_obs, rec_act, rec_mask = [], [], []
    # every window of max_episode_steps ends an episode in each live slot (the adapters
    # truncate at max_episode_steps)
    max_loop_steps = math.ceil(n / s) * max_episode_steps + 1
    steps = 0
    with torch.no_grad():
        while steps < max_loop_steps:
            if sums is not None:
                sums.add_host(obs, None if all_live else live)
            o = obs if obs.dtype == np_dtype else obs.astype(np_dtype)
            if normalizer is not None:
                # (o − mean)·(1/std) clipped to ±clip, the float ops of the masked path
                np.subtract(o, mean, out=normed)
                np.multiply(normed, inv_std, out=normed)
                np.minimum(np.maximum(normed, lo, out=normed), hi, out=normed)
                o, o_3d = normed, normed_3d
            else:
                o_3d = o.reshape(s, 1, obs_dim)
            a = actor(o_3d)  # ONE batched forward pass for all slots
            a = a.reshape(s, *a.shape[2:])
            if record:
                rec_obs.append(o.copy())
                rec_act.append(a.copy())
                rec_mask.append(live.copy())
            if visited:  # the observation the slot acts on (its episode's first included)
                rows = episode if all_live else np.where(live, episode, n)
                seen[rows] = np.maximum(seen[rows], obs)
            if squash is not None:
                a = squash(torch.from_numpy(a)).numpy()
            obs, reward, done = env.step_host(a)
            steps += 1
            ret += reward
            if episode_cap is not None:
                done = done | (steps - started >= episode_cap)
            ended = done if all_live else done & live
            if not np.count_nonzero(ended):  # a tenth of ndarray.any()'s call cost
                continue
            slots = np.flatnonzero(ended)
            finished = episode[slots]
            if seen is not None:  # the observation the episode ended in
                last = obs[slots]
                seen[finished] = np.maximum(seen[finished], last) if visited else last
            returns[finished] = ret[slots]
            lengths[finished] = steps - started[slots]
            take = min(len(slots), n - next_episode)
            if take:  # the first ended slots take the next pending episodes
                refill = slots[:take]
                fresh = np.arange(next_episode, next_episode + take)
                episode[refill] = fresh
                next_episode += take
                ret[refill] = 0.0
                started[refill] = steps
                seed_index[refill] = fresh % e
                candidate[refill] = fresh // e
                obs = env.restart_host(refill, seed_index, obs)
                actor = numpy_actor_for(candidate)
            if take < len(slots):  # the queue is dry: the others idle
                live[slots[take:]] = False
                all_live = False
                if not np.count_nonzero(live):
                    break
    out = Rollout(
        returns=torch.from_numpy(returns[:n].reshape(k, e)),
        lengths=torch.from_numpy(lengths[:n].reshape(k, e)),
        slot_steps=steps * s,
    )
    if seen is not None:
        out.behaviours = torch.from_numpy(seen[:n].reshape(k, e, -1).astype(np.float64))
    if record:
        out.obs, out.actions, out.mask = (
            torch.from_numpy(np.stack(rec_obs)),
            torch.from_numpy(np.stack(rec_act)),
            torch.from_numpy(np.stack(rec_mask)),
        )
    return out


def _keep_max(seen: Tensor, obs: Tensor, index: Tensor) -> None:
    """``seen[index[s]] = max(seen[index[s]], obs[s])`` for each slot s (distinct episodes;
    repeated indices only at the write-off row)."""
    obs = obs.to(seen.dtype)
    if seen.device.type == "cpu":  # numpy on views: a tenth of scatter_reduce's cost here
        s, i = seen.numpy(), index.numpy()
        s[i] = np.maximum(s[i], obs.numpy())
        return
    seen.scatter_reduce_(0, index[:, None].expand_as(obs), obs, "amax")
