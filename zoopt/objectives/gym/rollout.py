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

Refilling: on the CPU, where the host looks at every step anyway, only the slots that ended
are touched (through numpy views of the tensors); on an accelerator it is written with
masks and cumulative sums only, so the loop never waits for the device except for a look
at "all done?" every ``check_every`` steps. Both give the same episodes.
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
    check_every = 1 if host else 16
    env.prepare(seeds)
    episode = torch.arange(s, device=dev)  # the episode each slot plays
    next_episode = s  # the queue's head (on an accelerator: `pending`, on the device)
    pending = torch.tensor(s, device=dev)
    returns = torch.zeros(n + 1, dtype=torch.float64, device=dev)  # [n]: a write-off slot
    lengths = torch.zeros(n + 1, dtype=torch.int64, device=dev)
    ret = torch.zeros(s, dtype=torch.float64, device=dev)  # running return of each slot
    started = torch.zeros(s, dtype=torch.int64, device=dev)  # loop step of the slot's start
    live = torch.ones(s, dtype=torch.bool, device=dev)
    # until the queue runs dry every slot is live: no mask to apply (tracked on the host only)
    all_live = host
    if normalizer is not None:
        mean, inv_std, clip = normalizer
        if host:
            mean_h, inv_std_h = mean.numpy(), inv_std.numpy()
    if host:  # numpy views sharing the tensors' memory
        seed_index, candidate = episode % e, episode // e
        mask = torch.zeros(s, dtype=torch.bool)  # the slots to restart (reused)
        episode_h, ret_h, started_h, live_h, returns_h, lengths_h = (
            t.numpy() for t in (episode, ret, started, live, returns, lengths)
        )
        seed_h, candidate_h, mask_h = seed_index.numpy(), candidate.numpy(), mask.numpy()
    obs = env.reset(episode % e)
    actor = actor_for(episode // e)
    # row n of the behaviours is a write-off row, as for the returns
    seen = None if behaviour is None else torch.zeros(n + 1, obs.shape[1], device=dev)
    visited = behaviour == "visited"
    if seen is not None and host:
        seen_h = seen.numpy()
    rec_obs, rec_act, rec_mask = [], [], []
    # every window of max_episode_steps ends an episode in each live slot (the adapters
    # truncate at max_episode_steps)
    max_loop_steps = math.ceil(n / s) * max_episode_steps + check_every
    steps = 0
    with torch.no_grad():
        while steps < max_loop_steps:
            if sums is not None:
                sums.add(obs, None if all_live else live)
            o = obs if obs.dtype == dtype else obs.to(dtype)
            if normalizer is not None:
                if host:  # the same float ops in numpy, at a fraction of torch's call cost
                    o = torch.from_numpy(np.clip((o.numpy() - mean_h) * inv_std_h, -clip, clip))
                else:
                    o = ((o - mean) * inv_std).clamp_(-clip, clip)
            a = actor(o.view(s, 1, -1))  # ONE batched forward pass for all slots
            a = a.reshape(s, *a.shape[2:])
            if record:
                rec_obs.append(o)
                rec_act.append(a)
                rec_mask.append(live.clone())
            if visited:  # the observation the slot acts on (its episode's first included)
                _keep_max(seen, obs, episode if all_live else torch.where(live, episode, n))
            obs, reward, done = env.step(squash(a) if squash is not None else a)
            steps += 1
            if host:
                # the host looks at every step anyway: numpy on views of the same memory
                # costs a tenth of torch's per-call overhead on these small vectors, and only
                # the slots that ended are touched
                ret_h += reward.numpy()
                done_h = done.numpy()
                if episode_cap is not None:
                    done_h = done_h | (steps - started_h >= episode_cap)
                ended_h = done_h if all_live else done_h & live_h
                if not ended_h.any():
                    continue
                slots = np.flatnonzero(ended_h)
                finished = episode_h[slots]
                if seen is not None:  # the observation the episode ended in
                    last = obs.numpy()[slots]
                    seen_h[finished] = np.maximum(seen_h[finished], last) if visited else last
                returns_h[finished] = ret_h[slots]
                lengths_h[finished] = steps - started_h[slots]
                take = min(len(slots), n - next_episode)
                if take:  # the first ended slots take the next pending episodes
                    refill = slots[:take]
                    fresh = np.arange(next_episode, next_episode + take)
                    episode_h[refill] = fresh
                    next_episode += take
                    ret_h[refill] = 0.0
                    started_h[refill] = steps
                    seed_h[refill] = fresh % e
                    candidate_h[refill] = fresh // e
                    mask_h[:] = False
                    mask_h[refill] = True
                    obs = env.restart(mask, seed_index, obs)
                    actor = actor_for(candidate)
                if take < len(slots):  # the queue is dry: the others idle
                    live_h[slots[take:]] = False
                    all_live = False
                    if not live_h.any():
                        break
                continue
            ret += reward
            if episode_cap is not None:
                done = done | (steps - started >= episode_cap)
            ended = done & live
            # on an accelerator, the same with masks and cumulative sums: no look at the
            # device. Ended episodes are written out (the others go to write-off slot n)
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


def _keep_max(seen: Tensor, obs: Tensor, index: Tensor) -> None:
    """``seen[index[s]] = max(seen[index[s]], obs[s])`` for each slot s (distinct episodes;
    repeated indices only at the write-off row)."""
    obs = obs.to(seen.dtype)
    if seen.device.type == "cpu":  # numpy on views: a tenth of scatter_reduce's cost here
        s, i = seen.numpy(), index.numpy()
        s[i] = np.maximum(s[i], obs.numpy())
        return
    seen.scatter_reduce_(0, index[:, None].expand_as(obs), obs, "amax")
