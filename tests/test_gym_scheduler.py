"""The episode scheduler of GymObjective: the same episodes and returns as the rollouts that
stepped all K×E episodes together (reference values in data/gym_reference.json, written by
data/make_gym_reference.py with that code), for every slot count and backend; no episode
counted for another candidate; truncation; the normaliser; Ray; bad input; CUDA."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import zoopt
from zoopt.objectives import GymObjective
from zoopt.objectives.gym import default_slots

REFERENCE = json.loads((Path(__file__).parent / "data" / "gym_reference.json").read_text())
# a linear CartPole controller that balances for 500 steps (as in data/make_gym_reference.py)
BALANCING = torch.tensor([0.0, 0.0, 0.0, 0.0, 0.1, 0.5, 10.0, 2.0, 0.0, 0.0])

cuda = pytest.mark.cuda
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def play(case: dict, slots: int, host_refill: bool | None = None, device: str = "cpu"):
    """Run the reference case with ``slots`` slots; returns what the reference recorded."""
    env_id, vectorization, _, e, _, max_steps, normalize = case["case"]
    obj = GymObjective(
        env_id,
        episodes=e,
        vectorization=vectorization,
        max_episode_steps=max_steps,
        normalize_observations=normalize,
        slots=slots,
        device=device,
    )
    obj._host_refill = host_refill
    X = torch.tensor(case["X"])
    losses, returns = [], []
    for seed in (3, 11):
        losses.append(obj.evaluate(X, seed=seed).tolist())
        returns.append(obj.episode_returns(X, seed=seed).tolist())
    return obj, losses, returns


def slot_counts(n: int) -> list[int]:
    """A few slot counts from 1 to n (every count is covered on a smaller case below)."""
    return sorted({2, n // 2 + 1, n})


@pytest.mark.parametrize("host_refill", [None, False], ids=["host", "masked"])
@pytest.mark.parametrize(
    "case", REFERENCE, ids=lambda c: "-".join(str(v) for v in c["case"][:4] + c["case"][5:])
)
def test_same_returns_steps_and_statistics_as_before(case, host_refill):
    """Returns, losses and step counts bit for bit; normaliser statistics to float64
    rounding (the scheduler sums the same observations in another order)."""
    k, e = case["case"][2], case["case"][3]
    counts = slot_counts(k * e) if host_refill is None else [3, k * e]
    for slots in counts:
        obj, losses, returns = play(case, slots, host_refill)
        assert returns == case["returns"], slots
        assert losses == case["losses"], slots
        assert obj.env_steps == case["env_steps"] and obj.episodes_played == case["episodes"]
        stats = obj.observation_statistics
        assert stats.count == case["stats"]["count"]
        np.testing.assert_allclose(stats.mean, case["stats"]["mean"], rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(stats.m2, case["stats"]["m2"], rtol=1e-12)
        assert obj.env_steps <= obj.slot_steps  # idle slot-steps are not counted as played


@pytest.mark.parametrize("vectorization", ["native", "sync", "torch"])
def test_every_slot_count_plays_the_same_episodes(vectorization):
    """S = 1 … K×E: the same returns, and each row's returns are those of that row alone
    (an episode never counts for another candidate)."""
    g = torch.Generator().manual_seed(4)
    X = torch.cat([BALANCING + 0.5 * torch.randn(2, 10, generator=g), torch.randn(2, 10)])
    X = X[[0, 2, 1, 3]]  # long and short episodes interleaved in the queue
    k, e = 4, 2
    alone = GymObjective("CartPole-v1", episodes=e, vectorization=vectorization)
    expected = torch.cat([alone.episode_returns(X[i : i + 1], seed=9) for i in range(k)])
    assert len(set(expected.ravel().tolist())) > 3  # lengths really differ
    for slots in range(1, k * e + 1):
        obj = GymObjective("CartPole-v1", episodes=e, vectorization=vectorization, slots=slots)
        assert torch.equal(obj.episode_returns(X, seed=9), expected), slots
        assert obj.env_steps == int(expected.sum())
        assert torch.equal(obj.evaluate(X, seed=9), -expected.mean(1).float())


def test_fewer_slots_than_episodes_fill_idle_slots():
    """With S < K×E, slots that finish early take pending episodes: occupancy rises."""
    X = torch.cat([BALANCING[None], torch.randn(15, 10, generator=torch.Generator())])
    full = GymObjective("CartPole-v1", episodes=2, slots=32)
    few = GymObjective("CartPole-v1", episodes=2, slots=4)
    assert torch.equal(full.evaluate(X, seed=1), few.evaluate(X, seed=1))
    assert full.env_steps == few.env_steps
    assert few.env_steps / few.slot_steps > full.env_steps / full.slot_steps


@pytest.mark.parametrize("slots", [1, 3, 8])
def test_truncation_at_max_episode_steps_is_counted(slots):
    """Episodes cut at max_episode_steps earn exactly that many steps, ids and factories."""
    X = BALANCING.repeat(4, 1)
    by_id = GymObjective("CartPole-v1", episodes=2, max_episode_steps=37, slots=slots)
    # a factory whose own limit (500) is longer: the objective's cap still applies
    by_factory = GymObjective(
        lambda: gym.make("CartPole-v1"), episodes=2, max_episode_steps=37, slots=slots
    )
    for obj in (by_id, by_factory):
        returns = obj.episode_returns(X, seed=2)
        assert torch.equal(returns, torch.full((4, 2), 37.0, dtype=torch.float64))
        assert obj.env_steps == 4 * 2 * 37


@pytest.mark.parametrize("bad", [0, -2, 1.5, True, "4"])
def test_bad_slot_counts_are_named(bad):
    with pytest.raises(ValueError, match="slots must be a positive int"):
        GymObjective("CartPole-v1", slots=bad)


def test_default_slot_count_depends_on_the_backend():
    assert default_slots(256, "sync") < 256  # each SyncVectorEnv slot is a Python step
    assert default_slots(256, "native") == default_slots(256, "torch") == 256
    assert default_slots(10**6, "torch") < default_slots(10**6, "torch", torch.device("cuda"))
    assert GymObjective("CartPole-v1", vectorization="sync").num_slots(256) == 8
    assert GymObjective("CartPole-v1", slots=500).num_slots(6) == 6  # never more than K×E


def test_stochastic_rollouts_ignore_the_slot_count():
    """Sampled episodes (reinforce) draw actions in the same order whatever the slots."""
    a = GymObjective("CartPole-v1", slots=1)
    b = GymObjective("CartPole-v1")
    x = a.initial_parameters(0)
    sa = a.sample_outputs(x, 6, torch.Generator().manual_seed(3), seed=1)
    sb = b.sample_outputs(x, 6, torch.Generator().manual_seed(3), seed=1)
    assert torch.equal(sa.losses, sb.losses) and torch.equal(sa.log_probs, sb.log_probs)


def test_torch_env_restart_equals_reset_from_the_same_states():
    from zoopt_envs.torch_envs import BatchedCartPole

    env = BatchedCartPole(4, seed=0)
    env.reset()
    for _ in range(3):
        env.step(torch.tensor([0, 1, 1, 0]))
    start = torch.full((4, 4), 0.01, dtype=torch.float64)
    mask = torch.tensor([True, False, True, False])
    before = env.state
    obs = env.restart(mask, start)
    assert torch.equal(env.state[mask], start[mask]) and torch.equal(
        env.state[~mask], before[~mask]
    )
    assert env.elapsed_steps.tolist() == [0, 3, 0, 3]
    assert torch.equal(obs[mask], start[mask].float())
    with pytest.raises(ValueError, match="mask must be a bool tensor"):
        env.restart(torch.ones(3, dtype=torch.bool), start)


def test_ray_equals_local(ray_address):
    """Workers schedule their share of the episodes: the run is the local run."""
    from zoopt.evaluators.ray import RayEvaluator

    def run(evaluator):
        obj = GymObjective("CartPole-v1", episodes=2, slots=3, normalize_observations=True)
        kw = dict(estimator="es", population=6, sigma=0.3, steps=2, seed=5, progress=False)
        x0 = obj.initial_parameters(0)
        result = zoopt.minimize(obj, x0, evaluator=evaluator, **kw)
        return result, obj

    local, local_obj = run("local")
    evaluator = RayEvaluator(num_workers=2, num_cpus_per_worker=0.5)
    try:
        remote, remote_obj = run(evaluator)
    finally:
        evaluator.close()
    assert torch.equal(local.x, remote.x)
    assert local.history["loss"] == remote.history["loss"]
    assert local_obj.env_steps == remote_obj.env_steps
    assert local_obj.observation_statistics.count == remote_obj.observation_statistics.count
    np.testing.assert_allclose(
        local_obj.observation_statistics.mean, remote_obj.observation_statistics.mean, 1e-12
    )


# -- CUDA (skipped without a device) -----------------------------------------------------------
@cuda
@needs_cuda
@pytest.mark.parametrize(
    "case",
    [c for c in REFERENCE if c["case"][1] == "torch"],
    ids=lambda c: "-".join(str(v) for v in c["case"][:4]),
)
def test_cuda_rollouts_equal_the_reference(case):
    k, e = case["case"][2], case["case"][3]
    for slots in slot_counts(k * e):
        obj, losses, returns = play(case, slots, device="cuda")
        assert returns == case["returns"], slots
        assert obj.env_steps == case["env_steps"]


@cuda
@needs_cuda
def test_cuda_rollout_never_copies_to_the_host_per_step(monkeypatch):
    """The loop looks at the device once every 16 steps at most: count Tensor.__bool__."""
    obj = GymObjective("CartPole-v1", episodes=4, vectorization="torch", device="cuda", slots=8)
    X = torch.cat([BALANCING.repeat(4, 1), torch.randn(4, 10)])
    expected = GymObjective("CartPole-v1", episodes=4).episode_returns(X, seed=1)
    looks = []
    original = torch.Tensor.__bool__

    def counting(self):
        looks.append(self.device.type)
        return original(self)

    monkeypatch.setattr(torch.Tensor, "__bool__", counting)
    returns = obj.episode_returns(X, seed=1)
    monkeypatch.undo()
    assert torch.equal(returns, expected)
    loop_steps = obj.slot_steps // 8
    assert looks.count("cuda") <= loop_steps // 16 + 2


@pytest.mark.parametrize("slots", [1, 3, 6])
def test_host_loop_on_arrays_equals_the_masked_loop(slots):
    """The CPU's numpy loop (adapters' arrays reused every step) plays what the masked loop
    plays: a Box task with clipped actions, the normaliser and the straggler cap, and a
    Discrete-observation task; with the numpy policy and with torch's."""
    cases = [
        ("Pendulum-v1", dict(normalize_observations=True, episode_cap=0.6)),
        ("FrozenLake-v1", dict(env_kwargs={"is_slippery": True})),
    ]
    for env_id, kw in cases:
        for numpy_policy in (True, False):  # (numpy and torch round the matmul apart)
            runs = []
            for host in (True, False):
                obj = GymObjective(env_id, episodes=2, slots=slots, max_episode_steps=25, **kw)
                obj._host_refill, obj.numpy_policy = host, numpy_policy
                X = torch.randn(3, obj.dim, generator=torch.Generator().manual_seed(4))
                losses = torch.stack([obj.evaluate(X, seed=s) for s in (1, 2, 3)])
                returns = obj.episode_returns(X, seed=9, update_stats=True)
                _, behaviours = obj.evaluate_with_behaviour(X, seed=5)
                s = obj.observation_statistics
                cap = obj.current_episode_cap
                runs.append((losses, returns, behaviours, obj.env_steps, s, cap))
            (l0, r0, b0, n0, s0, c0), (l1, r1, b1, n1, s1, c1) = runs
            # the policies play different episodes (FrozenLake's returns are mostly 0)
            assert len(set(r0.flatten().tolist()) | set(b0.sum(1).tolist())) > 2, env_id
            assert torch.equal(l0, l1) and torch.equal(r0, r1), env_id
            assert torch.equal(b0, b1) and n0 == n1 and c0 == c1, env_id
            assert s0.count == s1.count and torch.equal(s0.mean, s1.mean), env_id
            assert torch.equal(s0.m2, s1.m2), env_id
            if "episode_cap" in kw:
                assert c0 < 25  # the cap was in force


class DriftingPoint(gym.Env):
    """A point on a line pushed by its action: observation (x, v) float64, action in
    [−1, 1], episode over once |x| > 1 (after a policy-dependent number of steps)."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float64)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.state = self.np_random.uniform(-0.5, 0.5, 2)
        return self.state.copy(), {}

    def step(self, action):
        x, v = self.state
        v = 0.9 * v + 0.05 * float(action[0]) + 0.01
        self.state = np.array([x + v, v])
        return self.state.copy(), -x * x, abs(x + v) > 1.0, False, {}


@pytest.mark.parametrize("slots", [1, 2, 3])
def test_the_last_live_slot_stepping_alone_plays_what_all_slots_play(monkeypatch, slots):
    """Once one slot is left live and no episode is pending, the CPU loop steps that slot
    alone: the same returns, behaviours, slot-steps, straggler caps and normaliser
    statistics (over several blocks of the normaliser's sums) as the loop stepping every
    slot to the end; also for an evaluation of a single episode (ARS's centre)."""
    from zoopt.objectives.gym import rollout
    from zoopt.objectives.gym.adapters import SyncSlots

    alone = []  # the loop step at which a slot went on alone
    real = rollout._play_last_slot
    monkeypatch.setattr(rollout, "_play_last_slot", lambda *a: alone.append(a[4]) or real(*a))
    runs = []
    for one_slot_steps in (True, False):
        monkeypatch.setattr(SyncSlots, "steps_one_slot", one_slot_steps)
        for kw in (dict(), dict(episode_cap=1.5), dict(behaviour="visited")):
            obj = GymObjective(
                DriftingPoint, episodes=2, slots=slots, max_episode_steps=300,
                normalize_observations=True, **kw,
            )  # fmt: skip
            X = torch.randn(3, obj.dim, generator=torch.Generator().manual_seed(1))
            losses = torch.stack([obj.evaluate(X, seed=s) for s in (1, 2, 3)])
            center = obj.episode_returns(X[0], seed=4, episodes=1, update_stats=True)
            _, behaviours = obj.evaluate_with_behaviour(X, seed=5)
            s = obj.observation_statistics
            runs.append(
                (losses, center, behaviours, obj.env_steps, obj.slot_steps, s.count,
                 s.mean, s.m2, obj.current_episode_cap)
            )  # fmt: skip
        if one_slot_steps:
            assert max(alone) > 0  # a slot went on alone mid-evaluation
            assert alone.count(0) == 3  # and from the start for the single episode
    half = len(runs) // 2
    for a, b in zip(runs[:half], runs[half:], strict=True):
        for u, v in zip(a, b, strict=True):
            assert torch.equal(u, v) if isinstance(u, torch.Tensor) else u == v
    assert runs[0][3] > 3 * 64  # the sums span several blocks of the normaliser


def test_sampled_episodes_on_the_host_equal_the_masked_loop():
    """Recorded stochastic rollouts (reinforce) on the numpy host loop: the same episodes,
    log-probabilities and squashed actions as the masked loop."""
    out = []
    for host in (True, False):
        obj = GymObjective("Pendulum-v1", max_episode_steps=20, action_squash="tanh")
        obj._host_refill = host
        x = obj.initial_parameters(0)
        out.append(obj.sample_outputs(x, 3, torch.Generator().manual_seed(2), seed=1))
    assert torch.equal(out[0].losses, out[1].losses)
    assert torch.equal(out[0].log_probs, out[1].log_probs)
    assert_close_entropy = torch.allclose(out[0].entropy, out[1].entropy, rtol=1e-6)
    assert assert_close_entropy  # summed over the masked loop's extra idle steps too
