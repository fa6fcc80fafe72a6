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
time step is a measurable share of a cheap environment's step; once one slot is left live
and no episode is pending, that slot steps alone (at K = 2 the longer of the two
episodes, on ``sync`` environments with the numpy policy). On an accelerator the
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
    step are what it costs on top of the environments, so they are kept to a handful, and
    the last live slot steps alone (:func:`_play_last_slot`)."""
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
    # a greedy numpy policy acts on each row alone, so the last live slot can step alone
    # with the same float operations (a sampling actor draws for every row, a recording
    # loop keeps every row)
    alone = numpy_actor_for is not None and env.steps_one_slot and not record and squash is None
    if numpy_actor_for is None:  # a torch actor, on views of the same memory

        def numpy_actor_for(c: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
            actor = actor_for(torch.from_numpy(c))
            return lambda o: actor(torch.from_numpy(o)).numpy()

    obs = env.reset_host(seed_index)
    obs_dim = obs.shape[1]
    norm = None
    if normalizer is not None:
        # the frozen statistics repeated per slot: ufuncs on equal shapes cost half of
        # broadcasting ones
        mean, inv_std = (np.empty((s, obs_dim), dtype=t.numpy().dtype) for t in normalizer[:2])
        mean[...], inv_std[...] = normalizer[0].numpy(), normalizer[1].numpy()
        clip = normalizer[2]
        normed = np.empty((s, obs_dim), dtype=np_dtype)  # (S, obs_dim), reused every step
        normed_3d = normed.reshape(s, 1, obs_dim)
        lo, hi = np.asarray(-clip, dtype=np_dtype), np.asarray(clip, dtype=np_dtype)
        norm = (mean, inv_std, lo, hi, normed)
    # the normaliser's block of observations, written here: one copy per step
    block = live_block = None
    filled = 0
    if sums is not None:
        block, live_block = sums.host_block(s, obs_dim, obs.dtype)
        block_steps = len(block)
    actor = numpy_actor_for(candidate)
    # row n of the behaviours is a write-off row, as for the returns
    seen = None if behaviour is None else torch.zeros(n + 1, obs_dim).numpy()
    visited = behaviour == "visited"
    rec_obs, rec_act, rec_mask = [], [], []
    # every window of max_episode_steps ends an episode in each live slot (the adapters
    # truncate at max_episode_steps)
    max_loop_steps = math.ceil(n / s) * max_episode_steps + 1
    steps = 0
    # the slot left to step alone, once there is one (a single episode: from the start)
    last = 0 if alone and n == 1 else -1
    with torch.no_grad():
        while last < 0 and steps < max_loop_steps:
            if block is not None:
                block[filled] = obs
                if not all_live:
                    live_block[filled] = live
                filled += 1
                if filled == block_steps:
                    sums.add_block_host(filled)
                    filled = 0
            o = obs if obs.dtype == np_dtype else obs.astype(np_dtype)
            if norm is not None:
                _normalize(o, mean, inv_std, lo, hi, normed)
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
                ends = obs[slots]
                seen[finished] = np.maximum(seen[finished], ends) if visited else ends
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
            if next_episode == n:  # no episode pending: one live slot steps alone
                left = s if all_live else np.count_nonzero(live)
                if left == 1 and alone:
                    last = int(np.flatnonzero(live)[0])
                    break
                if not left:
                    break
        if last >= 0:  # one live slot and no pending episode
            if block is not None:
                live_block[filled:] = live
            blocks = None if block is None else (sums, block, live_block, filled)
            steps, total, ended, row, filled = _play_last_slot(
                env, last, numpy_actor_for(candidate[last : last + 1]), obs, steps,
                max_loop_steps, int(started[last]), float(ret[last]),
                norm, np_dtype, blocks, None if not visited else seen[episode[last]],
                episode_cap,
            )  # fmt: skip
            if ended:
                j = episode[last]
                returns[j] = total
                lengths[j] = steps - started[last]
                if seen is not None:
                    seen[j] = np.maximum(seen[j], row) if visited else row
    if block is not None:
        sums.add_block_host(filled)
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


def _normalize(
    o: np.ndarray,
    mean: np.ndarray,
    inv_std: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    out: np.ndarray,
) -> None:
    """``out = clip((o − mean)·(1/std), lo, hi)`` in place, the float ops of the masked
    path: observations ``(S, obs_dim)`` or one slot's row ``(obs_dim,)``."""
    np.subtract(o, mean, out=out)
    np.multiply(out, inv_std, out=out)
    np.minimum(np.maximum(out, lo, out=out), hi, out=out)


def _play_last_slot(
    env: SlotEnv,
    slot: int,
    actor: Callable[[np.ndarray], np.ndarray],
    obs: np.ndarray,
    steps: int,
    max_loop_steps: int,
    started: int,
    total: float,
    norm: tuple | None,
    np_dtype: np.dtype,
    blocks: tuple | None,
    seen: np.ndarray | None,
    episode_cap: int | None,
) -> tuple[int, float, bool, np.ndarray, int]:
    """The host loop once ``slot`` is the only live slot and no episode is pending: that
    slot steps alone (``env.step_slot_host``), so each loop step's calls serve its one
    environment step instead of S rows of which one counts. Its row goes through the same
    float operations as in the batched step (normalisation, the policy's matmul of that
    row with ``actor``, the actor of ``slot``'s candidate alone, and clip), and the
    normaliser's block and the loop-step count advance as there, so returns, statistics
    and slot-steps are bit for bit the batched loop's.

    ``obs`` ``(S, obs_dim)``: the observations; ``norm``: the host loop's
    ``(mean, 1/std, lo, hi, normed)`` arrays or None; ``blocks``: ``(sums, block, live,
    filled)`` or None; ``seen``: the episode's ``"visited"`` behaviour row, or None.
    Returns the loop steps, the episode's return, whether it ended, its last observation
    ``(obs_dim,)`` and the steps written into the block.
    """
    row = obs[slot]
    if norm is not None:
        mean, inv_std, lo, hi, normed = norm
        mean, inv_std, x = mean[slot], inv_std[slot], normed[slot]
        x_3d = x.reshape(1, 1, -1)
    if blocks is not None:
        sums, block, live_block, filled = blocks
        block_steps, mask = len(block), live_block[filled].copy()  # slot alone
    end = max_loop_steps if episode_cap is None else min(max_loop_steps, started + episode_cap)
    step = env.step_slot_host
    while steps < end:
        if blocks is not None:
            block[filled, slot] = row
            filled += 1
            if filled == block_steps:
                sums.add_block_host(filled)
                filled = 0
                live_block[:] = mask
        o = row if row.dtype == np_dtype else row.astype(np_dtype)
        if norm is not None:
            _normalize(o, mean, inv_std, lo, hi, x)
            o_3d = x_3d
        else:
            o_3d = o.reshape(1, 1, -1)
        a = actor(o_3d)  # (1, 1, …)
        if seen is not None:
            np.maximum(seen, row, out=seen)
        row, reward, done = step(slot, a[0, 0])
        steps += 1
        total += reward
        if done:
            return steps, total, True, row, (filled if blocks is not None else 0)
    # the straggler cap ends the episode; the loop's bound leaves it live
    capped = episode_cap is not None and steps - started >= episode_cap
    return steps, total, capped, row, (filled if blocks is not None else 0)


def _keep_max(seen: Tensor, obs: Tensor, index: Tensor) -> None:
    """``seen[index[s]] = max(seen[index[s]], obs[s])`` for each slot s (distinct episodes;
    repeated indices only at the write-off row)."""
    obs = obs.to(seen.dtype)
    if seen.device.type == "cpu":  # numpy on views: a tenth of scatter_reduce's cost here
        s, i = seen.numpy(), index.numpy()
        s[i] = np.maximum(s[i], obs.numpy())
        return
    seen.scatter_reduce_(0, index[:, None].expand_as(obs), obs, "amax")
