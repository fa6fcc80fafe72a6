"""One rollout loop: an episode scheduler feeding a fixed number of env slots.

A population evaluation is a queue of K×E episodes, episode j = k·E + e being candidate k
on episode seed e. S slots play them: each starts with the next pending episode, and a
slot whose episode ends takes the next pending one at once (its policy row is the
candidate's), so only the last S episodes leave slots idle. With S = K×E every episode
starts at once and the loop is the classic one (step all until the longest ends).

Per step: ONE batched policy forward over the S slots (row s uses the parameters of the
candidate its episode belongs to), one vector-env step, and tensor bookkeeping. An
episode's return is summed over its own steps in time order, so it does not depend on
which slot played it or on S. Refilling is written with masks and cumulative sums only,
so on a GPU the loop never waits for the device except for a look at "all done?" every
``check_every`` steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

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
    """

    returns: Tensor
    lengths: Tensor
    slot_steps: int
    obs: Tensor | None = None
    actions: Tensor | None = None
    mask: Tensor | None = None


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
    """
    k, e = num_candidates, len(seeds)
    n, s, dev = k * e, env.num_slots, env.device
    if record and s != n:
        raise ValueError(f"record needs one slot per episode ({n}), got {s}")
    # the host looks at the scheduler state every step on the CPU, rarely on an accelerator
    on_cpu = dev.type == "cpu"
    check_every = 1 if on_cpu else 16
    env.prepare(seeds)
    episode = torch.arange(s, device=dev)  # the episode each slot plays
    next_episode = s  # the queue's head (on an accelerator: `pending`, on the device)
    pending = torch.tensor(s, device=dev)
    returns = torch.zeros(n + 1, dtype=torch.float64, device=dev)  # [n]: a write-off slot
    lengths = torch.zeros(n + 1, dtype=torch.int64, device=dev)
    ret = torch.zeros(s, dtype=torch.float64, device=dev)  # running return of each slot
    started = torch.zeros(s, dtype=torch.int64, device=dev)  # loop step of the slot's start
    live = torch.ones(s, dtype=torch.bool, device=dev)
    all_live = True  # until the queue runs dry, every slot is live: no mask to apply
    obs = env.reset(episode % e)
    actor = actor_for(episode // e)
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
                mean, inv_std, clip = normalizer
                o = ((o - mean) * inv_std).clamp_(-clip, clip)
            a = actor(o.view(s, 1, -1))  # ONE batched forward pass for all slots
            a = a.reshape(s, *a.shape[2:])
            if record:
                rec_obs.append(o)
                rec_act.append(a)
                rec_mask.append(live.clone())
            obs, reward, done = env.step(squash(a) if squash is not None else a)
            steps += 1
            ret += reward
            ended = done if all_live else done & live
            if on_cpu:
                # the host looks at every step anyway: touch only the slots that ended
                if not bool(ended.any()):
                    continue
                slots = ended.nonzero().squeeze(1)
                finished = episode[slots]
                returns[finished] = ret[slots]
                lengths[finished] = steps - started[slots]
                take = min(slots.numel(), n - next_episode)
                if take:  # the first ended slots take the next pending episodes
                    refill = slots[:take]
                    episode[refill] = torch.arange(next_episode, next_episode + take)
                    next_episode += take
                    ret[refill] = 0.0
                    started[refill] = steps
                    mask = torch.zeros(s, dtype=torch.bool)
                    mask[refill] = True
                    obs = env.restart(mask, episode % e, obs)
                    actor = actor_for(episode // e)
                if take < slots.numel():  # the queue is dry: the others idle
                    live[slots[take:]] = False
                    all_live = False
                    if not bool(live.any()):
                        break
                continue
            # on an accelerator, the same with masks and cumulative sums: no look at the
            # device. Ended episodes are written out (the others go to write-off slot n)
            index = torch.where(ended, episode, n)
            returns.scatter_(0, index, ret)
            lengths.scatter_(0, index, steps - started)
            # the ended slots take the next pending episodes, in queue order
            fresh = pending + ended.cumsum(0) - 1
            refill = ended & (fresh < n)
            pending = pending + ended.sum()
            episode = torch.where(refill, fresh, episode)
            live = (live & ~ended) | refill
            all_live = False
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
    if record:
        out.obs, out.actions, out.mask = (
            torch.stack(rec_obs),
            torch.stack(rec_act),
            torch.stack(rec_mask),
        )
    return out
