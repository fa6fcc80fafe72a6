"""GymObjective and the batched policies: equality with plain Gymnasium loops, common random
numbers, the observation normaliser and its hooks, the output-sampling protocol, bad input,
and a short optimisation."""

from __future__ import annotations

import copy
import math
import pickle

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from torch import nn

import zoopt
from zoopt.checkpoint import load_checkpoint, save_checkpoint
from zoopt.objectives import GymObjective
from zoopt.objectives.gym import ObservationStatistics, episode_seeds
from zoopt.policies import LinearPolicy, MLPPolicy, ModulePolicy


def assert_close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    """Elementwise closeness at the precision of the dtype (torch.testing is slow to import)."""
    tol = 1e-5 if actual.dtype == torch.float32 else 1e-9
    np.testing.assert_allclose(
        actual.detach().numpy(), expected.detach().numpy(), rtol=tol, atol=tol
    )


def plain_returns(
    env_id: str, objective: GymObjective, X: torch.Tensor, seed: int, episodes: int
) -> np.ndarray:
    """Returns (K, E) from one plain ``gym.make`` environment per episode, stepped alone."""
    out = np.zeros((len(X), episodes))
    for k in range(len(X)):
        for e, s in enumerate(episode_seeds(seed, episodes)):
            env = gym.make(env_id)
            obs, _ = env.reset(seed=s)
            done = False
            while not done:
                obs, r, terminated, truncated, _ = env.step(objective.act(X[k], obs))
                out[k, e] += r
                done = terminated or truncated
            env.close()
    return out


# -- equality with a plain loop ---------------------------------------------------------------
@pytest.mark.parametrize("vectorization", ["native", "sync"])
def test_cartpole_batched_equals_plain_loop(vectorization):
    obj = GymObjective("CartPole-v1", episodes=3, vectorization=vectorization)
    assert obj.vectorization == vectorization
    X = torch.randn(6, obj.dim, generator=torch.Generator().manual_seed(1))
    batched = obj.episode_returns(X, seed=7).numpy()
    assert len(set(batched.ravel().tolist())) > 2  # the policies really differ
    np.testing.assert_array_equal(batched, plain_returns("CartPole-v1", obj, X, 7, 3))
    # evaluate is minus the mean of the same returns, and counts every step played
    before = obj.env_steps
    np.testing.assert_allclose(obj.evaluate(X, seed=7).numpy(), -batched.mean(1), rtol=1e-6)
    assert obj.env_steps - before == int(batched.sum())  # CartPole pays 1 per step


@pytest.mark.parametrize("env_id", ["CartPole-v1", "MountainCar-v0"])
def test_torch_environments_equal_gymnasium(env_id):
    """vectorization='torch' (zoopt_envs' batched tensors) plays the same episodes."""
    gymnasium_backend = GymObjective(env_id, episodes=3)
    torch_backend = GymObjective(env_id, episodes=3, vectorization="torch")
    assert torch_backend.vectorization == "torch"
    X = 3 * torch.randn(8, gymnasium_backend.dim, generator=torch.Generator().manual_seed(0))
    if env_id == "MountainCar-v0":
        X[:4, [1, 5]] = torch.tensor([-100.0, 100.0])  # push along the velocity: reaches the flag
    ref = gymnasium_backend.episode_returns(X, seed=5)
    assert len(set(ref.ravel().tolist())) > 2
    assert torch.equal(torch_backend.episode_returns(X, seed=5), ref)
    assert torch_backend.env_steps == gymnasium_backend.env_steps
    x = gymnasium_backend.initial_parameters(0).requires_grad_(True)
    a = gymnasium_backend.sample_outputs(x, 4, torch.Generator().manual_seed(1), seed=3)
    b = torch_backend.sample_outputs(x, 4, torch.Generator().manual_seed(1), seed=3)
    assert torch.equal(a.losses, b.losses)
    assert_close(b.log_probs, a.log_probs)
    with pytest.raises(ValueError, match="vectorization='torch' supports"):
        GymObjective("Pendulum-v1", vectorization="torch")
    with pytest.raises(ValueError, match="needs vectorization='torch'"):
        GymObjective("CartPole-v1", device="cuda")


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_torch_environments_on_cuda_equal_cpu():
    cpu = GymObjective("CartPole-v1", episodes=2, vectorization="torch")
    gpu = GymObjective("CartPole-v1", episodes=2, vectorization="torch", device="cuda")
    X = torch.randn(16, cpu.dim, generator=torch.Generator().manual_seed(0))
    assert torch.equal(gpu.evaluate(X, seed=1), cpu.evaluate(X, seed=1))


def test_pendulum_continuous_equals_plain_loop():
    obj = GymObjective("Pendulum-v1", episodes=2, max_episode_steps=40)
    assert obj.vectorization == "sync" and isinstance(obj.policy, LinearPolicy)
    X = torch.randn(3, obj.dim, generator=torch.Generator().manual_seed(2))
    batched = obj.episode_returns(X, seed=3).numpy()
    env_id = "Pendulum-v1"
    # the same cap as the objective: a plain TimeLimit of 40 steps
    ref = np.zeros((3, 2))
    for k in range(3):
        for e, s in enumerate(episode_seeds(3, 2)):
            env = gym.make(env_id, max_episode_steps=40)
            o, _ = env.reset(seed=s)
            done = False
            while not done:
                a = obj.act(X[k], o)
                assert a.shape == (1,) and -2.0 <= a[0] <= 2.0
                o, r, te, tr, _ = env.step(a)
                ref[k, e] += r
                done = te or tr
    np.testing.assert_allclose(batched, ref, rtol=1e-10)


def test_mountaincar_continuous_tanh_squash_and_mlp():
    obj = GymObjective(
        "MountainCarContinuous-v0",
        policy="mlp",
        hidden=(8,),
        action_squash="tanh",
        max_episode_steps=30,
    )
    assert isinstance(obj.policy, MLPPolicy) and obj.dim == 2 * 8 + 8 + 8 * 1 + 1
    X = 5 * torch.randn(4, obj.dim, generator=torch.Generator().manual_seed(0))
    obs = torch.randn(4, 3, 2)
    a = obj.policy.act(X, obs)
    assert a.shape == (4, 3, 1) and bool((a.abs() <= 1.0).all())
    losses = obj.evaluate(X, seed=0)
    assert losses.shape == (4,) and bool(torch.isfinite(losses).all())
    assert obj.env_steps == 4 * 30  # no episode reaches the flag in 30 steps


# -- common random numbers --------------------------------------------------------------------
def test_common_random_numbers():
    obj = GymObjective("CartPole-v1", episodes=2)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(obj.dim, generator=g)
    same = obj.evaluate(x.repeat(5, 1), seed=11)
    assert bool((same == same[0]).all())
    # both members of an antithetic pair play the same episodes as the centre's copies
    pop = zoopt.GaussianPopulation(x, 0.5, seed=4, size=8, antithetic=True)
    X = pop.materialize()
    X[2] = x  # a candidate equal to another step's centre
    assert float(obj.evaluate(X, seed=11)[2]) == float(same[0])
    # different step seeds → different episodes (random initial states)
    lengths = {float(obj.evaluate(x[None], seed=s)[0]) for s in range(8)}
    assert len(lengths) > 1
    assert episode_seeds(1, 4) != episode_seeds(2, 4)
    assert episode_seeds(1, 4)[:2] == episode_seeds(1, 2)  # E grows by adding episodes


# -- the observation normaliser ---------------------------------------------------------------
def test_statistics_merge_equals_concatenation():
    g = torch.Generator().manual_seed(0)
    data = torch.randn(97, 3, generator=g, dtype=torch.float64) * 4 + 2
    whole = ObservationStatistics.from_data(data)
    parts = [data[:10], data[10:11], data[11:60], data[60:]]
    merged = ObservationStatistics(3)
    for p in parts:
        merged.merge(ObservationStatistics.from_data(p))
    assert merged.count == whole.count == 97
    assert_close(merged.mean, data.mean(0))
    assert_close(merged.var, data.var(0, unbiased=False))
    assert_close(merged.m2, whole.m2)


def _zero_policy_observations(seed: int, k: int, episodes: int) -> np.ndarray:
    """Observations an all-zero linear CartPole policy (always action 0) visits."""
    rows = []
    for _ in range(k):
        for s in episode_seeds(seed, episodes):
            env = gym.make("CartPole-v1")
            o, _ = env.reset(seed=s)
            done = False
            while not done:
                rows.append(o)
                o, _, te, tr, _ = env.step(0)
                done = te or tr
    return np.array(rows, dtype=np.float64)


def test_normaliser_hooks_merge_worker_statistics():
    driver = GymObjective("CartPole-v1", episodes=2, normalize_observations=True)
    # a zero policy acts the same under any normaliser, so the data is known in advance
    zeros = torch.zeros(3, driver.dim)
    w1, w2 = pickle.loads(pickle.dumps(driver)), copy.deepcopy(driver)
    w1.load_shared_state(driver.shared_state())
    w2.load_shared_state(driver.shared_state())
    w1.evaluate(zeros, seed=1)
    w2.evaluate(zeros[:2], seed=2)
    s1, s2 = w1.pop_stats(), w2.pop_stats()
    assert w1.pop_stats()["env_steps"] == 0  # popped increments are cleared
    driver.absorb_stats(s1)
    driver.absorb_stats(s2)
    data = np.concatenate([_zero_policy_observations(1, 3, 2), _zero_policy_observations(2, 2, 2)])
    st = driver.observation_statistics
    assert st.count == len(data) and driver.env_steps == len(data)
    np.testing.assert_allclose(st.mean.numpy(), data.mean(0), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(st.var.numpy(), data.var(0), rtol=1e-9, atol=1e-12)
    # the driver's own increments are already in its statistics: absorbing them is a no-op
    driver.evaluate(zeros, seed=3)
    count = driver.observation_statistics.count
    driver.absorb_stats(driver.pop_stats())
    assert driver.observation_statistics.count == count
    # checkpoints carry the statistics and the step count
    fresh = GymObjective("CartPole-v1", episodes=2, normalize_observations=True)
    fresh.load_state_dict(driver.state_dict())
    assert_close(fresh.observation_statistics.m2, driver.observation_statistics.m2)
    assert fresh.env_steps == driver.env_steps


def test_normaliser_frozen_within_an_evaluation_and_used():
    obj = GymObjective("CartPole-v1", episodes=2, normalize_observations=True)
    x = torch.randn(obj.dim, generator=torch.Generator().manual_seed(3))
    # frozen: every candidate sees the same statistics, so copies get identical losses
    losses = obj.evaluate(x.repeat(4, 1), seed=5)
    assert bool((losses == losses[0]).all())
    assert obj.observation_statistics.count == obj.env_steps > 0
    # the statistics change what the policy sees: a shifted mean changes the actions
    st = obj.shared_state()
    o = np.array([0.01, 0.0, 0.02, 0.0], dtype=np.float32)
    a_now = obj.act(x, o)
    st["mean"] = st["mean"] + torch.tensor([0.0, 0.0, 1.0, 0.0], dtype=torch.float64)
    obj.load_shared_state(st)
    shifted = o + np.array([0, 0, 1, 0], np.float32)
    assert obj.act(x, shifted) == a_now  # the same normalised input, the same action
    w = obj.unflatten(x)
    inv = 1 / np.sqrt(obj.observation_statistics.var.numpy() + 1e-8)
    z = torch.as_tensor((o - obj.observation_statistics.mean.numpy()) * inv, dtype=torch.float32)
    assert int(w(z).argmax()) == obj.act(x, o)


# -- policies ---------------------------------------------------------------------------------
def test_module_policy_matches_mlp_and_unflatten():
    mlp = MLPPolicy(4, spaces.Discrete(3), hidden=(5,))
    X = torch.randn(6, mlp.num_parameters, generator=torch.Generator().manual_seed(0))
    obs = torch.randn(6, 7, 4)
    module = mlp.to_module()
    mod = ModulePolicy(module, 4, spaces.Discrete(3))
    assert mod.num_parameters == mlp.num_parameters
    assert_close(mod.network(X, obs), mlp.network(X, obs))
    for k in (0, 5):  # the unbatched module at row k gives row k of the batched outputs
        assert_close(mlp.to_module(X[k])(obs[k]), mlp.network(X, obs)[k])
    obj = GymObjective(
        "CartPole-v1", policy=nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))
    )
    assert obj.dim == 4 * 8 + 8 + 8 * 2 + 2
    x = obj.initial_parameters()
    assert isinstance(obj.unflatten(x), nn.Module)
    assert obj.evaluate(x.repeat(3, 1), seed=0).shape == (3,)


def test_gaussian_log_prob_and_learned_log_std():
    box = spaces.Box(-1.0, 1.0, (2,), dtype=np.float32)
    pol = LinearPolicy(3, box, log_std="learned")
    assert pol.num_parameters == 3 * 2 + 2 + 2
    X = torch.randn(4, pol.num_parameters, generator=torch.Generator().manual_seed(0))
    obs = torch.randn(4, 5, 3)
    a = pol.sample(X, obs, torch.Generator().manual_seed(1))
    mean = pol.network(X[:, :8], obs)
    dist = torch.distributions.Normal(mean, X[:, None, 8:].exp())
    assert_close(pol.log_prob(X, obs, a), dist.log_prob(a).sum(-1))
    assert_close(pol.entropy(X, obs), dist.entropy().sum(-1))


# -- the output-sampling protocol -------------------------------------------------------------
def test_sample_outputs_matches_direct_computation():
    obj = GymObjective("CartPole-v1")
    x = 0.3 * torch.randn(obj.dim, generator=torch.Generator().manual_seed(0))
    x.requires_grad_(True)
    m, seed = 4, 9
    out = obj.sample_outputs(x, m, torch.Generator().manual_seed(5), seed)
    assert out.log_probs.shape == (1, m) and out.losses.shape == (1, m)
    assert out.log_probs.requires_grad and out.entropy.shape == (1,)
    (grad,) = torch.autograd.grad(out.log_probs.sum(), x)

    # direct: M plain environments in lockstep, the same Gumbel draws, log π step by step
    g = torch.Generator().manual_seed(5)
    envs = [gym.make("CartPole-v1") for _ in range(m)]
    obs = [env.reset(seed=s)[0] for env, s in zip(envs, episode_seeds(seed, m), strict=True)]
    active = [True] * m
    logp = [torch.zeros(()) for _ in range(m)]
    ret = [0.0] * m
    weight, bias = x[:8].reshape(2, 4), x[8:]
    while any(active):
        u = torch.rand(1, m, 2, generator=g)
        for j in range(m):
            if not active[j]:
                continue
            logits = weight @ torch.as_tensor(obs[j]) + bias
            a = int((logits.detach() - torch.log(-torch.log(u[0, j].clamp_min(1e-20)))).argmax())
            logp[j] = logp[j] + torch.log_softmax(logits, -1)[a]
            obs[j], r, te, tr, _ = envs[j].step(a)
            ret[j] += r
            active[j] = not (te or tr)
    direct = torch.stack(logp)
    assert out.losses[0].tolist() == [-r for r in ret]
    assert_close(out.log_probs[0], direct.to(out.log_probs.dtype))
    (direct_grad,) = torch.autograd.grad(direct.sum(), x)
    assert_close(grad, direct_grad)


def test_continuous_sample_outputs_learn_log_std():
    obj = GymObjective("Pendulum-v1", log_std="learned", max_episode_steps=15)
    assert obj.dim == 3 + 1 + 1  # weight (1, 3), bias (1,), log_std (1,)
    x0, x1 = obj.initial_parameters(0), obj.initial_parameters(1)
    assert x0.shape == (obj.dim,) and not torch.equal(x0, x1)
    assert float(x0[-1]) == 0.0  # log_std starts at 0 (std 1)
    x = x0.clone().requires_grad_(True)
    out = obj.sample_outputs(x, 3, torch.Generator().manual_seed(0), seed=2)
    assert out.log_probs.shape == out.losses.shape == (1, 3)
    (grad,) = torch.autograd.grad(out.log_probs.sum() + out.entropy.sum(), x)
    assert float(grad[-1].abs()) > 0  # the standard deviation is learned
    assert obj.env_steps == 3 * 15 and obj.episodes_played == 3


# -- bad input --------------------------------------------------------------------------------
def test_bad_input_messages():
    with pytest.raises(ValueError, match="CartPole-v1"):
        GymObjective("CartPol-v1")
    with pytest.raises(TypeError, match="observation space.*Tuple"):
        GymObjective("Blackjack-v1")
    with pytest.raises(TypeError, match="MultiDiscrete"):
        GymObjective(lambda: gym.wrappers.TimeLimit(_MultiDiscreteEnv(), 10))
    with pytest.raises(ValueError, match="max_episode_steps"):
        GymObjective(lambda: _MultiDiscreteEnv(action=spaces.Discrete(2)))
    with pytest.raises(TypeError, match="gymnasium.Env"):
        GymObjective(lambda: 3)
    with pytest.raises(TypeError, match="registered Gymnasium id"):
        GymObjective(3)
    with pytest.raises(ValueError, match="episodes"):
        GymObjective("CartPole-v1", episodes=0)
    with pytest.raises(ValueError, match="policy"):
        GymObjective("CartPole-v1", policy="cnn")
    with pytest.raises(ValueError, match="vectorization"):
        GymObjective("Pendulum-v1", vectorization="native")
    obj = GymObjective("CartPole-v1")
    with pytest.raises(ValueError, match=r"X must have shape \(K, 10\)"):
        obj.evaluate(torch.zeros(3, 4))
    with pytest.raises(ValueError, match="num_samples"):
        obj.sample_outputs(torch.zeros(10), 0, None)
    with pytest.raises(TypeError, match="'gradient' needs a differentiable"):
        zoopt.minimize(obj, obj.initial_parameters(), estimator="gradient", steps=1)


class _MultiDiscreteEnv(gym.Env):
    """A minimal environment whose spaces the objective does not support (or does)."""

    def __init__(self, action: spaces.Space | None = None):
        self.observation_space = spaces.Box(-1.0, 1.0, (2,), dtype=np.float32)
        self.action_space = action or spaces.MultiDiscrete([2, 2])

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(2, np.float32), {}

    def step(self, action):
        return np.zeros(2, np.float32), 0.0, False, False, {}


# -- optimisation -----------------------------------------------------------------------------
def test_es_improves_cartpole_return():
    obj = GymObjective("CartPole-v1", episodes=2)
    x0 = obj.initial_parameters(0)
    start = float(obj.episode_returns(x0, seed=100, episodes=8).mean())
    result = zoopt.minimize(
        obj, x0, estimator="es", steps=6, seed=0, sigma=0.1, population=16, lr=0.1
    )
    assert result.metric_name == "return"
    end = float(obj.episode_returns(result.best_x, seed=100, episodes=8).mean())
    assert end > start + 50, (start, end)


# -- Ray ----------------------------------------------------------------------------------------
def test_local_and_ray_runs_are_equal(ray_address):
    """Same losses, normaliser statistics and step counts on a Ray pool as in-process."""
    from zoopt.evaluators.ray import RayEvaluator

    def run(evaluator):
        obj = GymObjective("CartPole-v1", episodes=2, normalize_observations=True)
        result = zoopt.minimize(
            obj,
            obj.initial_parameters(0),
            estimator="es",
            steps=3,
            seed=4,
            sigma=0.2,
            population=8,
            evaluator=evaluator,
        )
        return obj, result

    local_obj, local = run("local")
    with RayEvaluator(num_workers=2, num_cpus_per_worker=0.5, chunks_per_worker=2) as ev:
        ray_obj, remote = run(ev)
    assert remote.history["population_loss"] == local.history["population_loss"]
    assert remote.history["loss"] == local.history["loss"]
    assert ray_obj.env_steps == local_obj.env_steps
    assert ray_obj.episodes_played == local_obj.episodes_played
    a, b = ray_obj.observation_statistics, local_obj.observation_statistics
    assert a.count == b.count
    np.testing.assert_allclose(a.mean.numpy(), b.mean.numpy(), rtol=1e-9)
    np.testing.assert_allclose(a.m2.numpy(), b.m2.numpy(), rtol=1e-9)


# ---------------------------------------------------------------------------------------
# the straggler cap (Salimans et al. 2017)
# ---------------------------------------------------------------------------------------
def _capped_run(steps, state=None, **kw):
    objective = GymObjective(
        "CartPole-v1", episodes=2, episode_cap=2.0, normalize_observations=True
    )
    m = zoopt.Minimizer(
        objective,
        torch.zeros(objective.dim),
        estimator="es",
        seed=4,
        population=6,
        sigma=0.5,
        steps=steps,
        **kw,
    )
    if state is not None:
        m.load_state_dict(state)
    return m, objective


def test_episode_cap_is_twice_the_previous_mean_and_recorded_in_the_history():
    means = []
    m, objective = _capped_run(4)
    m.callback = lambda row: means.append(objective.env_steps / objective.episodes_played)
    m.run()
    caps = m.history["episode_cap"]
    assert caps[0] == objective.max_episode_steps == 500  # nothing to cap by yet
    # step 2's cap from step 1's episodes (population and centre: one evaluation)
    assert caps[1] == min(500, math.ceil(2.0 * means[0])) < 500
    assert all(1 <= c <= 500 for c in caps)
    # every episode of a capped step ended by the cap at the latest
    out = objective._rollout(torch.zeros(3, objective.dim), [1, 2], capped=True)
    assert int(out.lengths.max()) <= objective.current_episode_cap


def test_episode_cap_in_checkpoints_and_resume_is_exact(tmp_path):
    whole, _ = _capped_run(6)
    for _ in range(6):
        whole.step()
    first, _ = _capped_run(6)
    for _ in range(3):  # a checkpoint is taken between steps (no final evaluation)
        first.step()
    state = first.state_dict()
    assert state["objective"]["episode_cap"] == first.history["episode_cap"][-1]
    path = save_checkpoint(tmp_path / "c.pt", state)
    resumed, _ = _capped_run(6, state=load_checkpoint(path))
    for _ in range(3):
        resumed.step()
    assert torch.equal(resumed.theta, whole.theta)
    assert resumed.history["episode_cap"] == whole.history["episode_cap"]
    assert len(set(whole.history["episode_cap"])) > 2  # the cap moved
    np.testing.assert_array_equal(resumed.history["loss"], whole.history["loss"])  # NaN = NaN


def test_episode_cap_is_checked():
    with pytest.raises(ValueError, match="episode_cap must be a positive number"):
        GymObjective("CartPole-v1", episode_cap=0)
    assert (
        "episode_cap"
        not in zoopt.minimize(
            GymObjective("CartPole-v1"), torch.zeros(10), estimator="es", steps=1, population=2
        ).history
    )


# ---------------------------------------------------------------------------------------
# the numpy fast path of small policies
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("space", "hidden", "activation", "squash"),
    [
        (spaces.Discrete(3, start=1), (), "tanh", "clip"),
        (spaces.Discrete(2), (8, 8), "relu", "clip"),
        (spaces.Box(-1.0, 2.0, (2,), np.float32), (), "tanh", "clip"),
        (spaces.Box(-1.0, 1.0, (3,), np.float32), (16,), "elu", "tanh"),
    ],
    ids=["linear-discrete", "mlp-discrete", "linear-box", "mlp-box-tanh"],
)
def test_numpy_policy_equals_torch_policy(space, hidden, activation, squash):
    policy = MLPPolicy(5, space, hidden=hidden, activation=activation, squash=squash)
    g = torch.Generator().manual_seed(1)
    params = torch.randn(6, policy.num_parameters, generator=g)
    obs = 3 * torch.randn(6, 4, 5, generator=g)
    ref = policy.actor(params)(obs)
    fast = torch.from_numpy(np.asarray(policy.numpy_actor(params)(obs.numpy())))
    assert fast.shape == ref.shape
    if policy.discrete:
        assert torch.equal(fast, ref)
    else:
        assert_close(fast, ref)
        assert bool((ref != ref.flatten()[0]).any())  # not all at one bound


@pytest.mark.parametrize("hidden", [(), (6,)], ids=["linear", "mlp"])
def test_numpy_actors_of_gathered_rows_equal_the_actor_of_those_rows(hidden):
    """What a rollout calls when slots take new episodes: the rows' actor, bit for bit."""
    for space in (spaces.Discrete(3), spaces.Box(-1.0, 1.0, (2,), np.float32)):
        policy = MLPPolicy(4, space, hidden=hidden)
        g = torch.Generator().manual_seed(2)
        params = torch.randn(5, policy.num_parameters, generator=g)
        rows = np.array([4, 0, 0, 2])
        obs = torch.randn(4, 1, 4, generator=g).numpy()
        gathered = policy.numpy_actors(params)(rows)(obs)
        direct = policy.numpy_actor(params[torch.from_numpy(rows)])(obs)
        assert np.array_equal(gathered, direct) and gathered.shape[0] == 4
        assert len({a.tobytes() for a in np.asarray(direct)}) > 1  # the rows act apart


def test_evaluation_with_numpy_policy_equals_torch_path():
    def losses(numpy_policy):
        obj = GymObjective("CartPole-v1", episodes=2, normalize_observations=True)
        obj.numpy_policy = numpy_policy
        X = torch.randn(8, obj.dim, generator=torch.Generator().manual_seed(5))
        return torch.stack([obj.evaluate(X, seed=s) for s in range(3)])

    fast, ref = losses(True), losses(False)
    assert torch.equal(fast, ref) and bool((ref != ref[0, 0]).any())
