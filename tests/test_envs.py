"""Tests of the ``zoopt/`` Gymnasium environments and the batched torch environments."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.envs.classic_control.cartpole import CartPoleVectorEnv
from gymnasium.utils.env_checker import check_env

import zoopt_envs
from zoopt_envs import DeepSeaEnv, DelayedReward
from zoopt_envs.torch_envs import BatchedCartPole, BatchedMountainCar

torch.set_num_threads(1)

# a linear controller that balances CartPole-v1 for 500 steps from every start state tried
BALANCE = np.array([0.1, 0.5, 10.0, 2.0])

# the CUDA cases carry the `cuda` marker, so that `pytest -m cuda` (scripts/gpu-check) runs them
DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=[
            pytest.mark.cuda,
            pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
        ],
    ),
]


def balance(obs: np.ndarray) -> np.ndarray:
    """Push towards the side the pole is falling to: (..., 4) observations → actions."""
    return (obs @ BALANCE > 0).astype(np.int64)


def pump(obs: np.ndarray) -> np.ndarray:
    """Accelerate along the velocity, pumping energy into MountainCar: (..., 2) → actions."""
    return np.where(obs[..., 1] >= 0, 2, 0)


def run_episode(env: gym.Env, policy, seed: int = 0) -> tuple[list[float], bool, bool]:
    """Roll out one episode; returns the rewards and the final terminated/truncated."""
    obs, _ = env.reset(seed=seed)
    rewards = []
    while True:
        obs, reward, terminated, truncated, _ = env.step(int(policy(obs)))
        rewards.append(float(reward))
        if terminated or truncated:
            return rewards, terminated, truncated


# ---------------------------------------------------------------------------------------
# registration and the environment checker
# ---------------------------------------------------------------------------------------
# warnings check_env may give that do not concern these environments: it is handed the
# made (wrapped) env on purpose, and CartPole's own observation space is unbounded.
EXPECTED_WARNINGS = ("different from the unwrapped version", "infinity")


@pytest.mark.parametrize("env_id", zoopt_envs.ENV_IDS)
def test_registered_env_passes_env_checker(env_id: str) -> None:
    env = gym.make(env_id)
    # the classic-control renderers need pygame, which is not a dependency of zoopt
    skip_render = env_id != "zoopt/DeepSea-v0" and importlib.util.find_spec("pygame") is None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env, skip_render_check=skip_render)
        check_env(env.unwrapped, skip_render_check=skip_render)
    unexpected = [
        str(w.message) for w in caught if not any(s in str(w.message) for s in EXPECTED_WARNINGS)
    ]
    assert unexpected == []
    assert env.unwrapped.__doc__ and "Reward" in (env.unwrapped.__doc__ + DelayedReward.__doc__)


def test_deep_sea_ansi_render_passes_env_checker() -> None:
    env = gym.make("zoopt/DeepSea-v0", size=4, render_mode="ansi")
    check_env(env.unwrapped)
    env.reset()
    env.step(1)
    picture = env.render()
    assert picture.splitlines()[1] == ". A . ."  # row 1, column 1
    assert picture.splitlines()[3].endswith("$")


def test_register_envs_is_idempotent() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "Overriding environment ..." would fail here
        zoopt_envs.register_envs()
        zoopt_envs.register_envs()
    assert set(zoopt_envs.ENV_IDS) <= set(gym.registry)


def test_make_without_import_and_via_zoopt_in_a_fresh_process() -> None:
    # "module:id" imports zoopt_envs on the fly (and not torch); then, with the package
    # forgotten again, `import zoopt` registers the environments too
    code = """
import sys
import gymnasium as gym
assert "zoopt/DeepSea-v0" not in gym.registry
env = gym.make("zoopt_envs:zoopt/DeepSea-v0", size=5)
assert env.observation_space.shape == (5, 5)
assert "torch" not in sys.modules
for env_id in [i for i in gym.registry if i.startswith("zoopt/")]:
    del gym.registry[env_id]
for name in [m for m in sys.modules if m.split(".")[0] == "zoopt_envs"]:
    del sys.modules[name]
import zoopt
for env_id in ("zoopt/SparseCartPole-v0", "zoopt/DeepSea-v0", "zoopt/DelayedCartPole-v0"):
    gym.make(env_id).reset(seed=0)
"""
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_unknown_env_kwarg_is_named() -> None:
    with pytest.raises(TypeError, match="colour"):
        gym.make("zoopt/DeepSea-v0", colour="red")
    with pytest.raises(TypeError, match="colour"):
        gym.make("zoopt/SparseCartPole-v0", colour="red")
    with pytest.raises(TypeError, match="colour"):
        BatchedCartPole(4, colour="red")


# ---------------------------------------------------------------------------------------
# DeepSea
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [2, 5, 10, 20])
def test_deep_sea_optimal_and_always_left_returns(size: int) -> None:
    env = gym.make("zoopt/DeepSea-v0", size=size)
    rewards, terminated, truncated = run_episode(env, lambda obs: 1)
    assert len(rewards) == size and terminated and not truncated
    assert sum(rewards) == pytest.approx(1.0 - 0.01)
    assert rewards[-1] == pytest.approx(1.0 - 0.01 / size)  # the treasure is the last step
    rewards, terminated, _ = run_episode(env, lambda obs: 0)
    assert len(rewards) == size and terminated
    assert sum(rewards) == 0.0


def test_deep_sea_return_of_any_action_sequence() -> None:
    # return = −0.01/N per right move, +1 only if every move went right
    n = 6
    env = DeepSeaEnv(size=n)
    rng = np.random.default_rng(0)
    for _ in range(50):
        actions = rng.integers(0, 2, size=n)
        obs, _ = env.reset()
        total, column = 0.0, 0
        for row, action in enumerate(actions):
            assert obs.sum() == 1.0 and obs[row, column] == 1.0
            obs, reward, terminated, _, info = env.step(int(action))
            total += reward
            column = min(column + 1, n - 1) if action == 1 else max(column - 1, 0)
            assert info == {"row": row + 1, "column": column}
            assert terminated == (row == n - 1)
        assert not obs.any()  # bsuite's all-zero observation after the last step
        expected = -0.01 / n * actions.sum() + (1.0 if actions.all() else 0.0)
        assert total == pytest.approx(expected)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)


def test_deep_sea_randomized_action_mapping() -> None:
    env = DeepSeaEnv(size=8, randomize_actions=True, mapping_seed=3)
    mapping = env.action_mapping
    assert mapping.shape == (8, 8) and set(np.unique(mapping)) == {0, 1}
    assert np.array_equal(mapping, DeepSeaEnv(8, True, mapping_seed=3).action_mapping)
    assert not np.array_equal(mapping, DeepSeaEnv(8, True, mapping_seed=4).action_mapping)
    obs, _ = env.reset(seed=0)
    total = 0.0
    for step in range(8):  # follow the mapping's "right" along the diagonal
        obs, reward, *_ = env.step(int(mapping[step, step]))
        total += reward
    assert total == pytest.approx(0.99)
    # "always 1" is not optimal once some diagonal cell maps 1 to left
    assert (np.diag(mapping) == 0).any()
    assert sum(run_episode(env, lambda obs: 1)[0]) < 0.99


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"size": 1}, "size must be an int N >= 2"),
        ({"size": 4.5}, "size must be an int N >= 2"),
        ({"unscaled_move_cost": -1.0}, "unscaled_move_cost"),
        ({"unscaled_move_cost": "cheap"}, "unscaled_move_cost must be a finite number"),
        ({"render_mode": "human"}, "render_mode"),
    ],
)
def test_deep_sea_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        DeepSeaEnv(**kwargs)


def test_deep_sea_too_small_through_make() -> None:
    with pytest.raises(
        ValueError, match=r"size must be an int N >= 2 \(the grid is N x N\), got 1"
    ):
        gym.make("zoopt/DeepSea-v0", size=1)


def test_deep_sea_bad_action() -> None:
    env = DeepSeaEnv(size=3)
    env.reset()
    with pytest.raises(ValueError, match="action must be 0 or 1"):
        env.step(2)


# ---------------------------------------------------------------------------------------
# sparse classic control and DelayedReward
# ---------------------------------------------------------------------------------------
def test_sparse_cartpole_rewards() -> None:
    env = gym.make("zoopt/SparseCartPole-v0")
    rewards, terminated, _ = run_episode(env, lambda obs: 0)  # always push left: it falls
    assert terminated and len(rewards) < 500 and sum(rewards) == 0.0
    rewards, terminated, truncated = run_episode(env, balance, seed=1)
    assert truncated and not terminated and len(rewards) == 500
    assert rewards[-1] == 1.0 and sum(rewards) == 1.0
    short = gym.make("zoopt/SparseCartPole-v0", time_limit=50)
    rewards, _, truncated = run_episode(short, balance)
    assert truncated and len(rewards) == 50 and rewards == [0.0] * 49 + [1.0]
    with pytest.raises(ValueError, match="time_limit must be a positive int"):
        gym.make("zoopt/SparseCartPole-v0", time_limit=0)


def test_sparse_mountain_car_rewards() -> None:
    env = gym.make("zoopt/SparseMountainCar-v0")
    rewards, terminated, _ = run_episode(env, pump)
    assert terminated and len(rewards) < 200 and rewards[-1] == 1.0 and sum(rewards) == 1.0
    rewards, terminated, truncated = run_episode(env, lambda obs: 1)  # never accelerate
    assert truncated and not terminated and len(rewards) == 200 and sum(rewards) == 0.0


@pytest.mark.parametrize("max_episode_steps", [None, 30])
def test_delayed_cartpole_pays_the_sum_at_the_end(max_episode_steps: int | None) -> None:
    kwargs = {} if max_episode_steps is None else {"max_episode_steps": max_episode_steps}
    delayed = gym.make("zoopt/DelayedCartPole-v0", **kwargs)
    dense = gym.make("CartPole-v1", **kwargs)
    for policy in (lambda obs: 1, balance):
        got, _, _ = run_episode(delayed, policy, seed=7)
        want, _, _ = run_episode(dense, policy, seed=7)
        assert len(got) == len(want) and got[:-1] == [0.0] * (len(got) - 1)
        assert got[-1] == sum(want)
    # the second episode starts from nothing owed
    assert run_episode(delayed, lambda obs: 1)[0][-1] == len(run_episode(dense, lambda o: 1)[0])


def test_delayed_reward_round_trips_through_spec() -> None:
    env = gym.make("zoopt/DelayedCartPole-v0")
    again = gym.make(env.spec)
    assert isinstance(again, DelayedReward)
    assert run_episode(again, lambda obs: 0)[0] == run_episode(env, lambda obs: 0)[0]


# ---------------------------------------------------------------------------------------
# batched torch environments against Gymnasium
# ---------------------------------------------------------------------------------------
def _side_by_side(gym_id: str, batched, policies, num_envs: int, seed: int) -> tuple[int, int]:
    """Step ``num_envs`` Gymnasium envs and ``batched`` with the same actions from the same
    start states until every episode ends; compare everything at every step. Env ``i``
    follows ``policies[i % len(policies)]``. Returns the numbers of terminated and
    truncated episodes."""
    envs = [gym.make(gym_id) for _ in range(num_envs)]
    obs = np.stack([env.reset(seed=seed + i)[0] for i, env in enumerate(envs)])
    states = np.stack([np.asarray(env.unwrapped.state, dtype=np.float64) for env in envs])
    torch_obs = batched.reset(state=torch.from_numpy(states))
    np.testing.assert_array_equal(torch_obs.cpu().numpy(), obs)
    final = np.zeros((num_envs, 4), dtype=bool)  # done flags, terminated, truncated, reward
    final_obs = obs.copy()
    while not final[:, 0].all():
        actions = np.array([policies[i % len(policies)](o) for i, o in enumerate(obs)])
        t_obs, t_rew, t_term, t_trunc = (x.cpu().numpy() for x in batched.step(actions))
        for i, env in enumerate(envs):
            if final[i, 0]:  # done masks: frozen, no reward, flags kept
                np.testing.assert_array_equal(t_obs[i], final_obs[i])
                assert t_rew[i] == 0.0 and (t_term[i], t_trunc[i]) == tuple(final[i, 1:3])
                continue
            o, r, te, tr, _ = env.step(int(actions[i]))
            np.testing.assert_allclose(t_obs[i], o, rtol=1e-5, atol=1e-6)
            assert (t_rew[i], t_term[i], t_trunc[i]) == (r, te, tr)
            obs[i] = o
            if te or tr:
                final[i] = (True, te, tr, r)
                final_obs[i] = t_obs[i]
    assert batched.done.all()
    return int(final[:, 1].sum()), int(final[:, 2].sum())


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("sparse", [False, True])
def test_batched_cartpole_matches_gymnasium(device: str, sparse: bool) -> None:
    # random actions topple the pole within tens of steps; the controller keeps it up
    # until the 500-step truncation
    gym_id = "zoopt/SparseCartPole-v0" if sparse else "CartPole-v1"
    batched = BatchedCartPole(16, sparse=sparse, device=device)
    coin = np.random.default_rng(1)
    policies = [lambda o: coin.integers(0, 2), balance]
    terminated, truncated = _side_by_side(gym_id, batched, policies, 16, seed=10)
    assert terminated > 0 and truncated > 0


def test_batched_cartpole_random_actions_many_envs() -> None:
    coin = np.random.default_rng(2)
    terminated, _ = _side_by_side(
        "CartPole-v1", BatchedCartPole(64), [lambda o: coin.integers(0, 2)], 64, seed=100
    )
    assert terminated == 64


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("sparse", [False, True])
def test_batched_mountain_car_matches_gymnasium(device: str, sparse: bool) -> None:
    gym_id = "zoopt/SparseMountainCar-v0" if sparse else "MountainCar-v0"
    batched = BatchedMountainCar(24, sparse=sparse, device=device)
    coin = np.random.default_rng(3)
    # pumping reaches the flag (termination); random and idle cars hit the left wall
    # (the inelastic collision) or run out of time (truncation)
    policies = [pump, pump, lambda o: coin.integers(0, 3), lambda o: 0]
    terminated, truncated = _side_by_side(gym_id, batched, policies, 24, seed=20)
    assert terminated > 0 and truncated > 0


def test_batched_mountain_car_hits_the_left_wall() -> None:
    env = BatchedMountainCar(1)
    env.reset(state=torch.tensor([[-1.19, -0.05]]))
    obs, *_ = env.step(torch.tensor([0]))
    assert obs[0, 0].item() == pytest.approx(-1.2) and obs[0, 1].item() == 0.0


@pytest.mark.parametrize("device", DEVICES)
def test_batched_cartpole_autoreset_matches_cartpole_vector_env(device: str) -> None:
    # NEXT_STEP autoreset as Gymnasium's CartPoleVectorEnv; a short limit so both
    # termination and truncation occur. Where an env restarts, the two draw different
    # random start states, so ours is copied into Gymnasium's and the next step compared.
    n, limit = 32, 25
    reference = CartPoleVectorEnv(num_envs=n, max_episode_steps=limit)
    batched = BatchedCartPole(n, autoreset=True, max_episode_steps=limit, seed=5, device=device)
    obs, _ = reference.reset(seed=5)
    batched.reset(state=torch.from_numpy(reference.state.T.copy()))
    rng = np.random.default_rng(5)
    restarts = ends = 0
    for _ in range(150):
        actions = rng.integers(0, 2, size=n)
        was_done = reference.prev_done.copy()
        obs, rew, term, trunc, _ = reference.step(actions)
        t_obs, t_rew, t_term, t_trunc = (x.cpu().numpy() for x in batched.step(actions))
        restarted = torch.from_numpy(was_done)
        if was_done.any():
            restarts += int(was_done.sum())
            fresh = t_obs[was_done]
            assert (np.abs(fresh) <= 0.05).all()
            assert (t_rew[was_done] == 0).all() and not (t_term | t_trunc)[was_done].any()
            reference.state[:, was_done] = batched.state.cpu().numpy()[was_done].T
            obs[was_done] = fresh
        ends += int((term | trunc).sum())
        np.testing.assert_allclose(t_obs, obs, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(t_rew, rew)
        np.testing.assert_array_equal(t_term, term)
        np.testing.assert_array_equal(t_trunc, trunc)
        assert (batched.elapsed_steps.cpu()[restarted] == 0).all()
    assert restarts > 0 and ends > 0


# ---------------------------------------------------------------------------------------
# batched torch environments: seeding, dtypes and bad input
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [BatchedCartPole, BatchedMountainCar])
def test_batched_reset_is_seeded_and_in_the_start_distribution(cls) -> None:
    env = cls(16, seed=0)
    first = env.reset(seed=42)
    assert first.shape == (16, cls.state_dim) and first.dtype == torch.float32
    assert torch.equal(first, cls(16).reset(seed=42))
    assert not torch.equal(first, env.reset(seed=43))
    assert all(cls.single_observation_space.contains(o) for o in first.numpy())
    if cls is BatchedCartPole:
        assert first.abs().max() <= 0.05
    else:
        assert (first[:, 0] >= -0.6).all() and (first[:, 0] <= -0.4).all()
        assert (first[:, 1] == 0).all()


def test_batched_float32_state_stays_close_to_float64() -> None:
    start = BatchedCartPole(8, seed=1).reset()
    a = BatchedCartPole(8, dtype=torch.float32)
    b = BatchedCartPole(8)
    a.reset(state=start.double())
    b.reset(state=start.double())
    actions = torch.tensor([0, 1, 0, 1, 1, 0, 1, 0])
    for _ in range(10):
        oa, *_ = a.step(actions)
        ob, *_ = b.step(actions)
    assert a.state.dtype == torch.float32
    torch.testing.assert_close(oa, ob, rtol=1e-4, atol=1e-5)


def test_batched_returned_tensors_are_not_aliased() -> None:
    env = BatchedCartPole(4, seed=0, dtype=torch.float32)
    obs = env.reset()
    saved = obs.clone()
    _, _, terminated, _ = env.step(torch.ones(4, dtype=torch.int64))
    env.step(torch.ones(4, dtype=torch.int64))
    assert torch.equal(obs, saved)
    assert env.state.data_ptr() != env.state.data_ptr()
    terminated.fill_(True)
    assert not env.done.any()
    for cls, reward in ((BatchedCartPole, 1.0), (BatchedMountainCar, -1.0)):
        env = cls(4, seed=0)
        env.reset()
        _, first, _, _ = env.step(torch.ones(4, dtype=torch.int64))
        first += 10.0  # accumulating into a returned reward leaves later rewards alone
        _, second, _, _ = env.step(torch.ones(4, dtype=torch.int64))
        assert torch.equal(second, torch.full((4,), reward))


@pytest.mark.parametrize(
    ("actions", "match"),
    [
        (torch.zeros(5, dtype=torch.int64), r"shape \(num_envs,\) = \(4,\), got \(5,\)"),
        (torch.zeros(4, 1, dtype=torch.int64), r"got \(4, 1\)"),
        (torch.zeros(4), "integer or bool tensor"),
        (torch.tensor([0, 1, 2, 0]), r"lie in \{0, …, 1\}, got 2 at index 2"),
        (torch.tensor([0, -1, 0, 0]), "got -1 at index 1"),
    ],
)
def test_batched_bad_actions(actions: torch.Tensor, match: str) -> None:
    env = BatchedCartPole(4, seed=0)
    env.reset()
    with pytest.raises(ValueError, match=match):
        env.step(actions)


def test_batched_accepts_numpy_and_bool_actions() -> None:
    a, b, c = (BatchedMountainCar(3, seed=0) for _ in range(3))
    for env in (a, b, c):
        env.reset()
    ref = a.step(torch.tensor([0, 1, 1]))
    np_step = b.step(np.array([0, 1, 1]))
    bool_step = c.step(torch.tensor([False, True, True]))
    for x, y, z in zip(ref, np_step, bool_step, strict=True):
        assert torch.equal(x, y) and torch.equal(x, z)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_envs": 0}, "num_envs must be a positive int"),
        ({"num_envs": 2.0}, "num_envs must be a positive int"),
        ({"num_envs": 2, "max_episode_steps": 0}, "max_episode_steps must be a positive int"),
        ({"num_envs": 2, "dtype": torch.int32}, "dtype must be torch.float64"),
        ({"num_envs": 2, "seed": "x"}, "seed must be an int"),
    ],
)
def test_batched_bad_constructor_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        BatchedCartPole(**kwargs)


def test_batched_bad_state_and_order() -> None:
    env = BatchedMountainCar(3)
    with pytest.raises(RuntimeError, match="call reset"):
        env.step(torch.zeros(3, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"state must have shape .* \(3, 2\), got \(3, 4\)"):
        env.reset(state=torch.zeros(3, 4))
    env.reset()
    with pytest.raises(ValueError, match="mask must be a bool tensor of shape"):
        env.set_state(torch.zeros(3, 2), mask=torch.ones(3))
    env.set_state(torch.full((3, 2), -0.5), mask=torch.tensor([True, False, True]))
    assert env.state[0, 0] == -0.5 and env.state[2, 0] == -0.5 and env.state[1, 1] == 0.0


def test_batched_mountain_car_autoreset_counts_successes() -> None:
    # sparse reward under autoreset: the rewards summed over a long rollout count the
    # episodes that reached the flag, and every restart begins in the start distribution
    env = BatchedMountainCar(8, sparse=True, autoreset=True, seed=0)
    obs = env.reset()
    total = torch.zeros(8)
    successes = torch.zeros(8)
    restarts = 0
    previous_done = torch.zeros(8, dtype=torch.bool)
    for _ in range(400):
        obs, reward, terminated, truncated = env.step(torch.from_numpy(pump(obs.numpy())))
        total += reward
        successes += terminated.float()
        if previous_done.any():
            restarts += int(previous_done.sum())
            start = obs[previous_done]
            assert ((start[:, 0] >= -0.6) & (start[:, 0] <= -0.4)).all()
            assert (start[:, 1] == 0).all() and (reward[previous_done] == 0).all()
            assert (env.elapsed_steps[previous_done] == 0).all()
        previous_done = terminated | truncated
    assert restarts >= 8 and torch.equal(total, successes) and (successes >= 2).all()
