"""Batched classic-control environments as torch tensors, on CPU or CUDA.

:class:`BatchedCartPole` and :class:`BatchedMountainCar` step ``N`` independent copies of
Gymnasium's ``CartPole-v1`` (Barto, Sutton & Anderson, 1983) and ``MountainCar-v0``
(Moore, 1990) with one tensor operation per term of the equations of motion, so a whole
population of policies can be rolled out without a Python loop over environments.

The transitions are Gymnasium's, term for term and in the same order
(``gymnasium/envs/classic_control/cartpole.py`` and ``mountain_car.py``): Gymnasium keeps
the physical state in float64 and hands out float32 observations, and so do these classes
by default (``dtype=torch.float64``). Starting from the same state and fed the same
actions, both produce the same observations, rewards and flags up to the last-bit
differences of ``sin``/``cos`` between libm and torch. ``dtype=torch.float32`` halves the
memory traffic for very large batches, at the price of that bit-level agreement.

Two ways of ending an episode, chosen with ``autoreset``:

* ``autoreset=False`` (default, *done masks*): an environment whose episode has ended is
  frozen: its observation stays the final one, its reward is 0 and its ``terminated`` /
  ``truncated`` flags stay as they were on the final step, until :meth:`reset`. This is
  what an episodic objective needs: step until ``env.done.all()`` and sum the rewards.
* ``autoreset=True`` (Gymnasium's ``AutoresetMode.NEXT_STEP``, as in
  ``CartPoleVectorEnv``): on the call *after* an episode ended, that environment ignores
  its action and starts a new episode from a fresh random state, returning its first
  observation with reward 0 and both flags ``False``.

``step`` returns ``(obs, reward, terminated, truncated)`` with shapes ``(N, obs_dim)``
float32, ``(N,)`` float32, ``(N,)`` bool and ``(N,)`` bool; later steps never modify them.
Like ``CartPoleVectorEnv``'s, the observation is column-major (the transpose of a fresh
``(obs_dim, N)`` buffer), which matmuls take as is; call ``.contiguous()`` before ``.view``.

Speed: in eager mode each step costs a few dozen tensor operations whatever ``N``, so on a
CPU these classes pay off for thousands of environments and more (see
``benchmarks/bench_torch_envs.py``); for a few hundred, Gymnasium's NumPy
``CartPoleVectorEnv`` has less overhead per call.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
import torch

__all__ = ["BatchedCartPole", "BatchedMountainCar"]

_FLOAT_DTYPES = (torch.float32, torch.float64)


class _BatchedClassicControl:
    """Bookkeeping shared by the batched environments: seeding, time limits, episode ends.

    Subclasses define ``state_dim``, ``num_actions``, the single-environment spaces, and
    ``_layout``, the shape of one environment's state internally: the state is held as a
    ``(*_layout, N)`` tensor whose ``(state_dim, N)`` reshape lists the variables in
    observation order, environments on the last axis so that ``(N,)`` masks broadcast.
    Hooks: ``_initial_state(num)`` (in that layout), ``_dynamics(state, actions)`` →
    ``(next_state, terminated)`` and ``_reward(terminated, truncated)`` → ``(N,)`` float32.
    """

    state_dim: int
    _layout: tuple[int, ...]
    num_actions: int
    default_max_episode_steps: int
    single_observation_space: gym.spaces.Box
    single_action_space: gym.spaces.Discrete

    def __init__(
        self,
        num_envs: int,
        *,
        sparse: bool = False,
        max_episode_steps: int | None = None,
        autoreset: bool = False,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float64,
        seed: int | None = None,
        validate_actions: bool = True,
    ) -> None:
        name = type(self).__name__
        if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"{name}: num_envs must be a positive int, got {num_envs!r}")
        if max_episode_steps is None:
            max_episode_steps = self.default_max_episode_steps
        if (
            isinstance(max_episode_steps, bool)
            or not isinstance(max_episode_steps, int)
            or max_episode_steps < 1
        ):
            raise ValueError(
                f"{name}: max_episode_steps must be a positive int, got {max_episode_steps!r}"
            )
        if dtype not in _FLOAT_DTYPES:
            raise ValueError(
                f"{name}: dtype must be torch.float64 (bit-level agreement with Gymnasium) "
                f"or torch.float32, got {dtype!r}"
            )
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(f"{name}: seed must be an int or None, got {seed!r}")
        self.num_envs = num_envs
        self.sparse = bool(sparse)
        self.max_episode_steps = max_episode_steps
        self.autoreset = bool(autoreset)
        self.device = torch.device(device)
        self.dtype = dtype
        self.validate_actions = bool(validate_actions)
        self._generator = torch.Generator(device=self.device)
        if seed is None:
            self._generator.seed()
        else:
            self._generator.manual_seed(seed)
        # internal layout, environments on the last axis: each physical variable is one
        # contiguous row, so the equations of motion run on contiguous memory
        self._state: torch.Tensor | None = None
        self._steps = torch.zeros(num_envs, dtype=torch.int64, device=self.device)
        self._terminated = torch.zeros(num_envs, dtype=torch.bool, device=self.device)
        self._truncated = torch.zeros(num_envs, dtype=torch.bool, device=self.device)
        self._done = torch.zeros(num_envs, dtype=torch.bool, device=self.device)

    # -- public API ------------------------------------------------------------------------
    def reset(self, seed: int | None = None, state: torch.Tensor | None = None) -> torch.Tensor:
        """Start a new episode in every environment.

        Args:
            seed: reseeds the environment's generator first (later resets and autoresets
                continue that stream), as ``gymnasium.Env.reset(seed=...)`` does.
            state: ``(N, state_dim)`` states to start from instead of drawing them from the
                start distribution (for example the states of Gymnasium environments).

        Returns:
            ``(N, obs_dim)`` float32 first observations.
        """
        if seed is not None:
            if isinstance(seed, bool) or not isinstance(seed, int):
                raise ValueError(f"seed must be an int or None, got {seed!r}")
            self._generator.manual_seed(seed)
        if state is None:
            self._state = self._initial_state(self.num_envs)
        else:
            self._state = self._pack(self._check_state(state))
        self._steps = torch.zeros_like(self._steps)
        self._terminated = torch.zeros_like(self._terminated)
        self._truncated = torch.zeros_like(self._truncated)
        self._done = torch.zeros_like(self._done)
        return self._observation()

    def step(
        self, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Advance every environment by one step.

        Args:
            actions: ``(N,)`` integer or bool tensor (or array-like) of actions in
                ``{0, …, num_actions − 1}``.

        Returns:
            ``obs (N, obs_dim)`` float32, ``reward (N,)`` float32, ``terminated (N,)`` bool,
            ``truncated (N,)`` bool; see the module docstring for what ended episodes do.
        """
        if self._state is None:
            raise RuntimeError(f"{type(self).__name__}: call reset() before step()")
        actions = self._check_actions(actions)
        finished = self._done  # episodes that ended on the previous call
        next_state, terminated = self._dynamics(self._state, actions)
        steps = self._steps + 1
        # Gymnasium's TimeLimit: the limit truncates even on a step that also terminates.
        truncated = steps >= self.max_episode_steps
        reward = self._reward(terminated, truncated)

        # On CPU a cheap look saves the masking work while no episode has ended; on an
        # accelerator the look would wait for the device, so the masks are always applied.
        if self.device.type != "cpu" or bool(finished.any()):
            if self.autoreset:
                # NEXT_STEP autoreset: an env that finished on the previous call restarts.
                # (next_state, steps and the flags were allocated by this step: in place.)
                if self.device.type == "cpu":
                    # draw start states for the finished envs only
                    index = finished.nonzero().squeeze(1)
                    next_state[..., index] = self._initial_state(index.numel())
                else:
                    # fixed shapes, no wait for the device: draw for all, keep what is needed
                    fresh = self._initial_state(self.num_envs)
                    next_state = torch.where(finished, fresh, next_state)
                steps.masked_fill_(finished, 0)
                reward = reward.masked_fill(finished, 0.0)
                terminated.masked_fill_(finished, False)
                truncated.masked_fill_(finished, False)
            else:
                # done masks: a finished env keeps its final state, earns nothing and keeps
                # its flags
                next_state = torch.where(finished, self._state, next_state)
                steps = torch.where(finished, self._steps, steps)
                reward = reward.masked_fill(finished, 0.0)
                terminated = torch.where(finished, self._terminated, terminated)
                truncated = torch.where(finished, self._truncated, truncated)

        self._state = next_state
        self._steps = steps
        self._terminated = terminated
        self._truncated = truncated
        self._done = terminated | truncated
        return self._observation(), reward, terminated.clone(), truncated.clone()

    def restart(self, mask: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """Start a new episode in the environments selected by ``mask``, from ``state``.

        The others are left as they are. Masked writes only, so on an accelerator this
        never waits for the device (an episode scheduler refills ended slots this way).

        Args:
            mask: ``(N,)`` bool, the environments to restart.
            state: ``(N, state_dim)`` start states (rows outside ``mask`` are ignored).

        Returns:
            ``(N, obs_dim)`` float32 observations of every environment.
        """
        if self._state is None:
            raise RuntimeError(f"{type(self).__name__}: call reset() before restart()")
        mask = torch.as_tensor(mask, device=self.device)
        if mask.dtype != torch.bool or tuple(mask.shape) != (self.num_envs,):
            raise ValueError(
                f"mask must be a bool tensor of shape ({self.num_envs},), got dtype "
                f"{mask.dtype} and shape {tuple(mask.shape)}"
            )
        self._state = torch.where(mask, self._pack(self._check_state(state)), self._state)
        self._steps = self._steps.masked_fill(mask, 0)
        self._terminated = self._terminated & ~mask
        self._truncated = self._truncated & ~mask
        self._done = self._done & ~mask
        return self._observation()

    @property
    def state(self) -> torch.Tensor:
        """``(N, state_dim)`` copy of the physical state, in ``dtype``."""
        if self._state is None:
            raise RuntimeError(f"{type(self).__name__}: call reset() before reading state")
        return self._state.reshape(self.state_dim, -1).T.clone()

    def set_state(self, state: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        """Overwrite the physical state of the environments selected by ``mask``.

        Step counters and episode flags are left alone, so this can mirror another simulator
        mid-episode. ``state`` is ``(N, state_dim)``; ``mask`` an optional ``(N,)`` bool
        tensor (default: all environments).
        """
        if self._state is None:
            raise RuntimeError(f"{type(self).__name__}: call reset() before set_state()")
        new = self._pack(self._check_state(state))
        if mask is None:
            self._state = new
            return
        mask = torch.as_tensor(mask, device=self.device)
        if mask.dtype != torch.bool or tuple(mask.shape) != (self.num_envs,):
            raise ValueError(
                f"mask must be a bool tensor of shape ({self.num_envs},), got dtype "
                f"{mask.dtype} and shape {tuple(mask.shape)}"
            )
        self._state = torch.where(mask, new, self._state)

    @property
    def done(self) -> torch.Tensor:
        """``(N,)`` bool: with done masks, whether each environment's episode has ended;
        with autoreset, whether the latest step ended it (it restarts on the next)."""
        return self._done.clone()

    @property
    def elapsed_steps(self) -> torch.Tensor:
        """``(N,)`` int64: steps taken in each environment's current episode."""
        return self._steps.clone()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(num_envs={self.num_envs}, sparse={self.sparse}, "
            f"autoreset={self.autoreset}, device={self.device}, dtype={self.dtype})"
        )

    # -- helpers ---------------------------------------------------------------------------
    def _observation(self) -> torch.Tensor:
        # A transposed view of a fresh (obs_dim, N) buffer, as Gymnasium's
        # CartPoleVectorEnv returns: the cast is the only copy, and no later step can show
        # through an earlier observation.
        return self._state.reshape(self.state_dim, -1).to(torch.float32, copy=True).T

    def _uniform(self, low: float, high: float, size: tuple[int, ...]) -> torch.Tensor:
        u = torch.rand(size, generator=self._generator, device=self.device, dtype=self.dtype)
        return u * (high - low) + low

    def _check_actions(self, actions: torch.Tensor) -> torch.Tensor:
        if not isinstance(actions, torch.Tensor):
            actions = torch.as_tensor(np.asarray(actions))
        if tuple(actions.shape) != (self.num_envs,):
            raise ValueError(
                f"actions must have shape (num_envs,) = ({self.num_envs},), "
                f"got {tuple(actions.shape)}"
            )
        if actions.dtype.is_floating_point or actions.dtype.is_complex:
            raise ValueError(
                f"actions must be an integer or bool tensor with values in "
                f"{{0, …, {self.num_actions - 1}}}, got dtype {actions.dtype}"
            )
        # int64 indices into the per-action tables of the subclasses
        actions = actions.to(device=self.device, dtype=torch.int64)
        # on CUDA this check waits for the device; validate_actions=False skips it
        if self.validate_actions:
            low, high = torch.aminmax(actions)
            if int(low) < 0 or int(high) >= self.num_actions:
                bad = (actions < 0) | (actions >= self.num_actions)
                index = int(bad.nonzero()[0, 0])
                raise ValueError(
                    f"actions must lie in {{0, …, {self.num_actions - 1}}}, got "
                    f"{int(actions[index])} at index {index}"
                )
        return actions

    def _check_state(self, state: torch.Tensor) -> torch.Tensor:
        state = torch.as_tensor(state)
        if tuple(state.shape) != (self.num_envs, self.state_dim):
            raise ValueError(
                f"state must have shape (num_envs, state_dim) = "
                f"({self.num_envs}, {self.state_dim}), got {tuple(state.shape)}"
            )
        if not state.dtype.is_floating_point:
            raise ValueError(f"state must be a floating-point tensor, got dtype {state.dtype}")
        return state.to(device=self.device, dtype=self.dtype)

    def _pack(self, state: torch.Tensor) -> torch.Tensor:
        # (N, state_dim) -> (*_layout, N)
        return state.T.reshape(*self._layout, -1).contiguous()

    def _initial_state(self, num: int) -> torch.Tensor:
        raise NotImplementedError

    def _dynamics(
        self, state: torch.Tensor, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def _reward(self, terminated: torch.Tensor, truncated: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class BatchedCartPole(_BatchedClassicControl):
    """``N`` copies of Gymnasium's ``CartPole-v1`` stepped as tensors.

    A pole is hinged on a cart on a frictionless track (Barto, Sutton & Anderson, 1983,
    "Neuronlike adaptive elements that can solve difficult learning control problems").
    State and observation ``(x, ẋ, θ, θ̇)``; action 0 pushes the cart left with 10 N, 1
    pushes it right; explicit Euler with τ = 0.02 s. An episode terminates when
    ``|x| > 2.4`` or ``|θ| > 12°`` and is truncated after ``max_episode_steps`` (500).
    Start states are uniform in ``[-0.05, 0.05]^4``.

    Reward:
        * ``sparse=False``: 1 for every step of the episode, the terminating one included
          (as Gymnasium), so the return is the episode length.
        * ``sparse=True`` (as ``zoopt/SparseCartPole-v0``): 1 on the step that reaches the
          time limit if that step did not also terminate, 0 on every other step; the return
          is 1 exactly when the pole was balanced for the whole episode.

    Args:
        num_envs: ``N``, the number of environments.
        sparse: use the sparse reward above.
        max_episode_steps: time limit (default 500, as ``CartPole-v1``).
        autoreset: ``False`` for done masks, ``True`` for next-step autoreset (module docs).
        device: where the tensors live (``"cpu"``, ``"cuda"``, …).
        dtype: dtype of the physical state; float64 (default) agrees with Gymnasium to the
            last bits, float32 is faster for very large ``N``.
        seed: seed of the start-state generator (``None``: nondeterministic).
        validate_actions: check that actions lie in ``{0, 1}`` on every step (on CUDA this
            waits for the device).
    """

    state_dim = 4
    # [[x, ẋ], [θ, θ̇]]: Euler's update of both positions, and of both velocities, is one
    # operation each
    _layout = (2, 2)
    num_actions = 2
    default_max_episode_steps = 500

    # Gymnasium's constants (cartpole.py)
    gravity = 9.8
    masscart = 1.0
    masspole = 0.1
    total_mass = masspole + masscart
    length = 0.5  # half the pole's length
    polemass_length = masspole * length
    force_mag = 10.0
    tau = 0.02
    theta_threshold_radians = 12 * 2 * math.pi / 360
    x_threshold = 2.4

    _high = np.array(
        [x_threshold * 2, np.inf, theta_threshold_radians * 2, np.inf], dtype=np.float32
    )
    single_observation_space = gym.spaces.Box(-_high, _high, dtype=np.float32)
    single_action_space = gym.spaces.Discrete(2)

    def __init__(self, num_envs: int, **kwargs: Any) -> None:
        super().__init__(num_envs, **kwargs)
        # per-action force (action 0 pushes left), and the termination bounds of (x, θ)
        self._force = torch.tensor(
            [-self.force_mag, self.force_mag], dtype=self.dtype, device=self.device
        )
        self._bounds = torch.tensor(
            [[self.x_threshold], [self.theta_threshold_radians]],
            dtype=self.dtype,
            device=self.device,
        )

    def _initial_state(self, num: int) -> torch.Tensor:
        return self._uniform(-0.05, 0.05, (2, 2, num))

    def _dynamics(
        self, state: torch.Tensor, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        position, velocity = state[:, 0], state[:, 1]  # (x, θ), (ẋ, θ̇)
        theta, theta_dot = position[1], velocity[1]
        force = self._force[actions]
        costheta = torch.cos(theta)
        sintheta = torch.sin(theta)
        # Florian (2007), "Correct equations for the dynamics of the cart-pole system";
        # the operations are grouped as in Gymnasium so that float64 results agree bitwise.
        temp = (force + self.polemass_length * theta_dot.square() * sintheta) / self.total_mass
        thetaacc = (self.gravity * sintheta - costheta * temp) / (
            self.length * (4.0 / 3.0 - self.masspole * costheta.square() / self.total_mass)
        )
        xacc = temp - self.polemass_length * thetaacc * costheta / self.total_mass
        # explicit Euler, every update from the old state
        new_position = position + self.tau * velocity
        new_velocity = velocity + self.tau * torch.stack((xacc, thetaacc))
        terminated = (new_position.abs() > self._bounds).any(dim=0)
        return torch.stack((new_position, new_velocity), dim=1), terminated

    def _reward(self, terminated: torch.Tensor, truncated: torch.Tensor) -> torch.Tensor:
        if self.sparse:
            return (truncated & ~terminated).to(torch.float32)
        # a fresh tensor each step: the caller may accumulate into the reward in place
        return torch.ones_like(terminated, dtype=torch.float32)


class BatchedMountainCar(_BatchedClassicControl):
    """``N`` copies of Gymnasium's ``MountainCar-v0`` stepped as tensors.

    An under-powered car in a valley of height ``sin(3x)`` must rock back and forth to reach
    the flag at ``x ≥ 0.5`` (Moore, 1990, "Efficient memory-based learning for robot
    control"). State and observation ``(position, velocity)``; actions 0/1/2 accelerate
    left / not at all / right:

        v' = clip(v + (a − 1)·0.001 − 0.0025·cos(3x), −0.07, 0.07)
        x' = clip(x + v', −1.2, 0.6),   v' = 0 if x' = −1.2 and v' < 0

    An episode terminates when ``x' ≥ 0.5`` (and ``v' ≥ goal_velocity = 0``) and is
    truncated after ``max_episode_steps`` (200). Start positions are uniform in
    ``[-0.6, -0.4]`` with zero velocity.

    Reward:
        * ``sparse=False``: −1 on every step (as Gymnasium).
        * ``sparse=True`` (as ``zoopt/SparseMountainCar-v0``): 1 on the step that reaches
          the flag, 0 otherwise; the return is 1 exactly when the car got there in time.

    Args:
        num_envs: ``N``, the number of environments.
        sparse: use the sparse reward above.
        max_episode_steps: time limit (default 200, as ``MountainCar-v0``).
        autoreset: ``False`` for done masks, ``True`` for next-step autoreset (module docs).
        device: where the tensors live (``"cpu"``, ``"cuda"``, …).
        dtype: dtype of the physical state; float64 (default) agrees with Gymnasium to the
            last bits, float32 is faster for very large ``N``.
        seed: seed of the start-state generator (``None``: nondeterministic).
        validate_actions: check that actions lie in ``{0, 1, 2}`` on every step.
    """

    state_dim = 2
    _layout = (2,)  # [position, velocity]
    num_actions = 3
    default_max_episode_steps = 200

    # Gymnasium's constants (mountain_car.py)
    min_position = -1.2
    max_position = 0.6
    max_speed = 0.07
    goal_position = 0.5
    goal_velocity = 0.0
    force = 0.001
    gravity = 0.0025

    single_observation_space = gym.spaces.Box(
        np.array([min_position, -max_speed], dtype=np.float32),
        np.array([max_position, max_speed], dtype=np.float32),
        dtype=np.float32,
    )
    single_action_space = gym.spaces.Discrete(3)

    def __init__(self, num_envs: int, **kwargs: Any) -> None:
        super().__init__(num_envs, **kwargs)
        # (a − 1)·force per action; −1·0.001 is exactly −0.001, as in Gymnasium
        self._push = torch.tensor(
            [-self.force, 0.0, self.force], dtype=self.dtype, device=self.device
        )

    def _initial_state(self, num: int) -> torch.Tensor:
        position = self._uniform(-0.6, -0.4, (1, num))
        return torch.cat((position, torch.zeros_like(position)))

    def _dynamics(
        self, state: torch.Tensor, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        position, velocity = state
        # Gymnasium writes `velocity += (a - 1) * force + cos(3 x) * (-gravity)`: the
        # right-hand side is summed first, which matters for bitwise agreement.
        velocity = velocity + (self._push[actions] + torch.cos(3 * position) * (-self.gravity))
        velocity = velocity.clamp(-self.max_speed, self.max_speed)
        position = (position + velocity).clamp(self.min_position, self.max_position)
        # inelastic collision with the left wall
        velocity = velocity.masked_fill((position == self.min_position) & (velocity < 0), 0.0)
        terminated = (position >= self.goal_position) & (velocity >= self.goal_velocity)
        return torch.stack((position, velocity)), terminated

    def _reward(self, terminated: torch.Tensor, truncated: torch.Tensor) -> torch.Tensor:
        if self.sparse:
            return terminated.to(torch.float32)
        # a fresh tensor each step: the caller may accumulate into the reward in place
        return torch.full_like(terminated, -1.0, dtype=torch.float32)
