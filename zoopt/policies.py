"""Batched policies: K parameter vectors act on K×B observations in one forward pass.

A :class:`Policy` maps a population of flat parameter vectors ``params (K, P)`` and
observations ``obs (K, B, obs_dim)`` (B environments per candidate) to actions, with no
Python loop over candidates: linear and MLP policies use batched matrix products
(``torch.baddbmm``), a user ``nn.Module`` runs under ``torch.func.vmap`` of
``torch.func.functional_call``.

The flat layout of ``params`` is ``parameters_to_vector`` of the equivalent unbatched
``nn.Module`` (:meth:`Policy.to_module`), followed, for a continuous policy with a learned
standard deviation, by ``log_std (A,)``.

Action heads:

* ``Discrete(n)``: the network outputs n logits. Deterministic action: argmax; stochastic:
  categorical.
* ``Box`` of shape ``(A,)``: the network outputs the mean u of a Gaussian
  N(u, diag(exp(log_std))²), ``log_std`` fixed or learned. The environment receives
  ``squash(u)``: ``"clip"`` to the bounds or ``"tanh"`` into them. Deterministic action:
  ``squash(mean)``. log π is that of the unsquashed draw u — the squash is a fixed map of
  the draw, so the score function ∇log π(u) stays an unbiased policy-gradient term.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor, nn

from zoopt.datasets import ACTIVATIONS as MODULE_ACTIVATIONS

__all__ = ["Policy", "LinearPolicy", "MLPPolicy", "ModulePolicy", "make_policy"]

ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "elu": nn.functional.elu,
}
SQUASHES = ("clip", "tanh")

#: the same non-linearities in numpy, for :meth:`MLPPolicy.numpy_actor`
NUMPY_ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "tanh": np.tanh,
    "relu": lambda h: np.maximum(h, 0.0),
    "elu": lambda h: np.where(h > 0, h, np.expm1(np.minimum(h, 0.0))),
}


class Policy:
    """Base class: a batched network plus an action head for one Gymnasium action space.

    Subclasses implement :meth:`network` and :meth:`to_module` and set
    ``network_parameters``.

    Args:
        observation_dim: length of a (flattened) observation.
        action_space: ``gymnasium.spaces.Discrete`` or a 1-D ``gymnasium.spaces.Box``.
        log_std: for ``Box`` actions, the fixed log standard deviation of the Gaussian
            (a float), or ``"learned"`` to append ``A`` parameters initialised at 0.
        squash: ``"clip"`` or ``"tanh"``; how a Gaussian draw becomes an action within the
            ``Box`` bounds (``"tanh"`` needs finite bounds).
    """

    network_parameters: int = 0

    def __init__(
        self,
        observation_dim: int,
        action_space: spaces.Space,
        log_std: float | str = -0.5,
        squash: str = "clip",
    ):
        if not isinstance(observation_dim, int) or observation_dim < 1:
            raise ValueError(f"observation_dim must be a positive int, got {observation_dim!r}")
        self.observation_dim = observation_dim
        self.action_space = action_space
        if isinstance(action_space, spaces.Discrete):
            self.discrete = True
            self.output_dim = int(action_space.n)
            self.action_start = int(action_space.start)
        elif isinstance(action_space, spaces.Box) and len(action_space.shape) == 1:
            self.discrete = False
            self.output_dim = int(action_space.shape[0])
            if squash not in SQUASHES:
                raise ValueError(f"squash must be one of {SQUASHES}, got {squash!r}")
            low = torch.as_tensor(action_space.low, dtype=torch.float64)
            high = torch.as_tensor(action_space.high, dtype=torch.float64)
            finite = bool(torch.isfinite(low).all() & torch.isfinite(high).all())
            if squash == "tanh" and not finite:
                raise ValueError(
                    "squash='tanh' needs finite Box bounds; the action space is "
                    f"{action_space}; use squash='clip'"
                )
            self.squash_mode = squash
            self.low, self.high = low, high
        else:
            raise TypeError(
                "action_space must be gymnasium.spaces.Discrete or a 1-D gymnasium.spaces.Box; "
                f"got {action_space}"
            )
        self.learned_log_std = False
        if not self.discrete:
            if log_std == "learned":
                self.learned_log_std = True
                self.fixed_log_std = 0.0
            elif (
                isinstance(log_std, (int, float))
                and not isinstance(log_std, bool)
                and math.isfinite(log_std)
            ):
                self.fixed_log_std = float(log_std)
            else:
                raise ValueError(f"log_std must be a finite float or 'learned', got {log_std!r}")

    # -- sizes -------------------------------------------------------------------------------
    @property
    def num_parameters(self) -> int:
        """P, the length of one flat parameter vector."""
        return self.network_parameters + (self.output_dim if self.learned_log_std else 0)

    # -- to be implemented -------------------------------------------------------------------
    def bind(self, params: Tensor) -> Callable[[Tensor], Tensor]:
        """The network with its K parameter sets fixed: ``obs (K, B, obs_dim) -> (K, B, out)``.

        Slicing ``params`` into weights happens once here, not at every time step of a
        rollout. ``params`` is ``(K, network_parameters)``.
        """
        raise NotImplementedError

    def to_module(self, x: Tensor | None = None) -> nn.Module:
        """The unbatched network as an ``nn.Module`` (weights from ``x`` ``(P,)`` if given)."""
        raise NotImplementedError

    def network(self, params: Tensor, obs: Tensor) -> Tensor:
        """Raw outputs (logits or Gaussian means) ``(K, B, output_dim)``.

        Args:
            params: ``(K, network_parameters)``.
            obs: ``(K, B, observation_dim)``.
        """
        return self.bind(params)(obs)

    # -- shared ------------------------------------------------------------------------------
    def initial_parameters(self, seed: int = 0) -> Tensor:
        """A starting flat vector ``(P,)``: PyTorch's default initialisation of
        :meth:`to_module` under ``seed``, with the last layer scaled by 0.1 so that the first
        policy is nearly uniform (discrete) or nearly zero-mean (continuous).
        """
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            module = self.to_module()
        params = [p.detach().clone() for p in module.parameters()]
        linears = [m for m in module.modules() if isinstance(m, nn.Linear)]
        if linears:
            last = linears[-1]
            ids = {id(last.weight), id(last.bias) if last.bias is not None else None}
            params = [
                p * 0.1 if id(q) in ids else p
                for p, q in zip(params, module.parameters(), strict=True)
            ]
        flat = torch.cat([p.reshape(-1) for p in params]).to(torch.get_default_dtype())
        if self.learned_log_std:
            flat = torch.cat([flat, torch.zeros(self.output_dim, dtype=flat.dtype)])
        return flat

    def _split(self, params: Tensor) -> tuple[Tensor, Tensor | None]:
        if params.ndim != 2 or params.shape[1] != self.num_parameters:
            raise ValueError(
                f"params must have shape (K, {self.num_parameters}), got {tuple(params.shape)}"
            )
        if self.learned_log_std:
            return params[:, : self.network_parameters], params[:, self.network_parameters :]
        return params, None

    def _log_std(self, log_std: Tensor | None, like: Tensor) -> Tensor:
        """``(K, 1, A)`` log standard deviations."""
        if log_std is not None:
            return log_std.unsqueeze(1)
        return torch.full(
            (1, 1, self.output_dim), self.fixed_log_std, dtype=like.dtype, device=like.device
        )

    def squash(self, u: Tensor) -> Tensor:
        """Map Gaussian draws or means ``(..., A)`` into the ``Box`` bounds."""
        low, high = self.low.to(u), self.high.to(u)
        if self.squash_mode == "tanh":
            return low + (torch.tanh(u) + 1.0) * (0.5 * (high - low))
        return torch.clamp(u, low, high)

    def act(self, params: Tensor, obs: Tensor) -> Tensor:
        """Deterministic actions: argmax ``(K, B)`` (long) or squashed means ``(K, B, A)``."""
        return self.actor(params)(obs)

    def actor(
        self, params: Tensor, stochastic: bool = False, generator: torch.Generator | None = None
    ) -> Callable[[Tensor], Tensor]:
        """``obs (K, B, obs_dim) -> actions`` with ``params`` ``(K, P)`` bound once.

        Deterministic: as :meth:`act`; stochastic: as :meth:`sample` (unsquashed draws).
        """
        net, log_std = self._split(params)
        forward = self.bind(net)
        start = self.action_start if self.discrete else 0
        if not stochastic:
            if self.discrete:
                if start == 0:
                    return lambda obs: forward(obs).argmax(-1)
                return lambda obs: forward(obs).argmax(-1) + start
            return lambda obs: self.squash(forward(obs))

        def draw(obs: Tensor) -> Tensor:
            out = forward(obs)
            if self.discrete:
                # Gumbel-max: argmax(logits + Gumbel noise) is an exact categorical draw
                # drawn on the CPU generator, then moved: the same draws on every device
                u = torch.rand(out.shape, generator=generator, dtype=out.dtype).to(out.device)
                return (out - torch.log(-torch.log(u.clamp_min(1e-20)))).argmax(-1) + start
            noise = torch.randn(out.shape, generator=generator, dtype=out.dtype).to(out.device)
            return out + torch.exp(self._log_std(log_std, out)) * noise

        return draw

    def sample(
        self, params: Tensor, obs: Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        """Stochastic draws: categorical ``(K, B)`` or unsquashed Gaussian ``(K, B, A)``.

        Pass a continuous draw through :meth:`squash` before giving it to the environment.
        """
        return self.actor(params, stochastic=True, generator=generator)(obs)

    def log_prob(self, params: Tensor, obs: Tensor, actions: Tensor) -> Tensor:
        """log π(a|s) ``(K, B)``, differentiable with respect to ``params``.

        Args:
            params: ``(K, P)``.
            obs: ``(K, B, observation_dim)``.
            actions: ``(K, B)`` discrete actions or ``(K, B, A)`` unsquashed draws.
        """
        net, log_std = self._split(params)
        out = self.network(net, obs)
        if self.discrete:
            logp = torch.log_softmax(out, -1)
            return logp.gather(-1, (actions.long() - self.action_start).unsqueeze(-1)).squeeze(-1)
        ls = self._log_std(log_std, out)
        z = (actions.to(out) - out) * torch.exp(-ls)
        return (-0.5 * z.square() - ls - 0.5 * math.log(2 * math.pi)).sum(-1)

    def entropy(self, params: Tensor, obs: Tensor) -> Tensor:
        """Entropy of π(·|s) ``(K, B)``, differentiable with respect to ``params``."""
        net, log_std = self._split(params)
        if self.discrete:
            logp = torch.log_softmax(self.network(net, obs), -1)
            return -(logp.exp() * logp).sum(-1)
        k, b = obs.shape[0], obs.shape[1]
        ls = self._log_std(log_std, params)
        h = (ls + 0.5 * math.log(2 * math.pi * math.e)).sum(-1)  # (K or 1, 1)
        return h.expand(k, b)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(P={self.num_parameters}, actions={self.action_space})"


class MLPPolicy(Policy):
    """A tanh (or relu/elu) MLP ``obs_dim → hidden… → output_dim``, evaluated with
    ``torch.baddbmm`` over the K parameter sets. ``hidden=()`` is the linear policy.

    Layout per layer: ``weight (out, in)`` then ``bias (out,)``, as in ``nn.Linear``.
    """

    def __init__(
        self,
        observation_dim: int,
        action_space: spaces.Space,
        hidden: tuple[int, ...] | list[int] = (32, 32),
        activation: str = "tanh",
        bias: bool = True,
        **head: object,
    ):
        super().__init__(observation_dim, action_space, **head)
        hidden = tuple(hidden)
        if not all(isinstance(h, int) and h > 0 for h in hidden):
            raise ValueError(f"hidden must be a tuple of positive ints, got {hidden!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        self.hidden, self.activation, self.bias = hidden, activation, bool(bias)
        sizes = (observation_dim, *hidden, self.output_dim)
        self.layers: list[tuple[int, int, int, int]] = []  # (in, out, weight offset, bias offset)
        offset = 0
        for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=False):
            w_off = offset
            offset += n_in * n_out
            b_off = offset
            offset += n_out if self.bias else 0
            self.layers.append((n_in, n_out, w_off, b_off))
        self.network_parameters = offset

    def bind(self, params: Tensor) -> Callable[[Tensor], Tensor]:
        act = ACTIVATIONS[self.activation]
        k = params.shape[0]
        layers = []
        for n_in, n_out, w_off, b_off in self.layers:
            w = params[:, w_off : w_off + n_in * n_out].reshape(k, n_out, n_in)
            w = w.transpose(1, 2).contiguous()  # (K, in, out), laid out once per rollout
            b = params[:, b_off : b_off + n_out].unsqueeze(1) if self.bias else None
            layers.append((w, b))
        last = len(layers) - 1
        dtype = params.dtype

        def forward(obs: Tensor) -> Tensor:
            h = obs if obs.dtype == dtype else obs.to(dtype)
            for i, (w, b) in enumerate(layers):
                # (K, B, out) = b + h @ Wᵀ: one batched call for all K candidates
                h = torch.bmm(h, w) if b is None else torch.baddbmm(b, h, w)
                if i < last:
                    h = act(h)
            return h

        return forward

    def numpy_actor(self, params: Tensor) -> Callable[[np.ndarray], np.ndarray]:
        """Greedy actions in numpy: ``obs (K, B, obs_dim) -> actions``, as
        ``actor(params)`` computes them (argmax ``(K, B)``, or clipped / tanh-squashed means
        ``(K, B, A)``) up to float rounding of the matmul, for CPU rollouts.

        Torch's per-call cost (~10 µs) is most of a small policy's forward pass; numpy's is
        a fraction of it, and a rollout calls the policy once per time step.
        """
        return self.numpy_actors(params)(np.arange(params.shape[0]))

    def numpy_actors(self, params: Tensor) -> Callable[[np.ndarray], Callable]:
        """:meth:`numpy_actor` for any rows of ``params`` ``(K, P)``, laid out once: maps
        indices ``(S,)`` to the actor of rows ``params[indices]`` (one gather per layer,
        what a rollout pays whenever slots take new episodes)."""
        net, _ = self._split(params.detach().cpu())
        k = net.shape[0]
        every = []
        for n_in, n_out, w_off, b_off in self.layers:
            w = net[:, w_off : w_off + n_in * n_out].reshape(k, n_out, n_in).transpose(1, 2)
            w = np.ascontiguousarray(w.numpy())  # (K, in, out)
            b = net[:, b_off : b_off + n_out].unsqueeze(1).numpy() if self.bias else None
            every.append((w, b))
        dtype = every[0][0].dtype
        low = high = half = None
        if not self.discrete:
            low, high = self.low.numpy().astype(dtype), self.high.numpy().astype(dtype)
            half = 0.5 * (high - low)

        def for_rows(rows: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
            layers = [(w[rows], None if b is None else b[rows]) for w, b in every]
            return self._numpy_forward(layers, dtype, low, high, half)

        return for_rows

    def _numpy_forward(self, layers: list, dtype, low, high, half) -> Callable:
        act = NUMPY_ACTIVATIONS[self.activation]
        last = len(layers) - 1
        start = self.action_start if self.discrete else 0
        discrete = self.discrete
        tanh = not discrete and self.squash_mode == "tanh"
        # the output's shape -> the bounds repeated to it: a ufunc on equal shapes costs
        # half of a broadcasting one, and a rollout clips at every time step
        bounds: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}

        def forward(obs: np.ndarray) -> np.ndarray:
            h = obs.astype(dtype, copy=False)
            for i, (w, b) in enumerate(layers):
                h = np.matmul(h, w)
                if b is not None:
                    h += b
                if i < last:
                    h = act(h)
            if discrete:
                return h.argmax(-1) + start
            if tanh:
                return low + (np.tanh(h) + 1.0) * half
            lh = bounds.get(h.shape)
            if lh is None:
                lh = bounds[h.shape] = (np.empty_like(h), np.empty_like(h))
                lh[0][...], lh[1][...] = low, high
            # np.clip's values, without its Python wrapper (h is this call's own array)
            return np.minimum(np.maximum(h, lh[0], out=h), lh[1], out=h)

        return forward

    def to_module(self, x: Tensor | None = None) -> nn.Module:
        mods: list[nn.Module] = []
        for i, (n_in, n_out, _, _) in enumerate(self.layers):
            mods.append(nn.Linear(n_in, n_out, bias=self.bias))
            if i < len(self.layers) - 1:
                mods.append(MODULE_ACTIVATIONS[self.activation]())
        module = nn.Sequential(*mods)
        if x is not None:
            net = x[: self.network_parameters] if x.ndim == 1 else x
            nn.utils.vector_to_parameters(
                net.detach().to(torch.float32).clone(), list(module.parameters())
            )
        return module


class LinearPolicy(MLPPolicy):
    """The linear policy ``W s + b`` (argmax for discrete, squashed mean for continuous)."""

    def __init__(
        self, observation_dim: int, action_space: spaces.Space, bias: bool = True, **head: object
    ):
        super().__init__(observation_dim, action_space, hidden=(), bias=bias, **head)


class ModulePolicy(Policy):
    """A user ``nn.Module`` mapping ``(B, obs_dim)`` to ``(B, output_dim)``.

    The K parameter sets run through ``torch.func.vmap`` of ``torch.func.functional_call``:
    one batched call, no loop over candidates. Buffers are shared (not optimised).
    """

    def __init__(
        self, module: nn.Module, observation_dim: int, action_space: spaces.Space, **head: object
    ):
        if not isinstance(module, nn.Module):
            raise TypeError(
                f"policy must be 'linear', 'mlp' or an nn.Module, got {type(module).__name__}"
            )
        super().__init__(observation_dim, action_space, **head)
        self.module = module
        self.names = [n for n, _ in module.named_parameters()]
        self.shapes = [p.shape for _, p in module.named_parameters()]
        if not self.names:
            raise ValueError("policy: the nn.Module has no parameters to optimise")
        self.network_parameters = int(sum(int(np.prod(s)) for s in self.shapes))
        with torch.no_grad():
            out = module(torch.zeros(2, observation_dim))
        if tuple(out.shape) != (2, self.output_dim):
            raise ValueError(
                f"policy: the nn.Module must map (B, {observation_dim}) observations to "
                f"(B, {self.output_dim}) outputs for {action_space}; got {tuple(out.shape)}"
            )

    def bind(self, params: Tensor) -> Callable[[Tensor], Tensor]:
        k = params.shape[0]
        dtype = next(self.module.parameters()).dtype
        tensors, offset = {}, 0
        for name, shape in zip(self.names, self.shapes, strict=True):
            n = int(np.prod(shape))
            tensors[name] = params[:, offset : offset + n].reshape(k, *shape).to(dtype)
            offset += n
        buffers = dict(self.module.named_buffers())

        def one(p: dict[str, Tensor], o: Tensor) -> Tensor:
            return torch.func.functional_call(self.module, (p, buffers), (o,))

        batched = torch.func.vmap(one)  # K parameter sets, one call

        def forward(obs: Tensor) -> Tensor:
            return batched(tensors, obs.to(dtype)).to(params.dtype)

        return forward

    def initial_parameters(self, seed: int = 0) -> Tensor:
        """The module's current parameters (its own initialisation; ``seed`` is unused)."""
        flat = nn.utils.parameters_to_vector(self.module.parameters()).detach().clone()
        flat = flat.to(torch.get_default_dtype())
        if self.learned_log_std:
            flat = torch.cat([flat, torch.zeros(self.output_dim, dtype=flat.dtype)])
        return flat

    def to_module(self, x: Tensor | None = None) -> nn.Module:
        import copy

        module = copy.deepcopy(self.module)
        if x is not None:
            p = list(module.parameters())
            nn.utils.vector_to_parameters(x[: self.network_parameters].detach().to(p[0]).clone(), p)
        return module


def make_policy(
    policy: str | nn.Module | Policy,
    observation_dim: int,
    action_space: spaces.Space,
    *,
    hidden: tuple[int, ...] = (32, 32),
    activation: str = "tanh",
    log_std: float | str = -0.5,
    squash: str = "clip",
) -> Policy:
    """Build a policy from ``"linear"``, ``"mlp"``, an ``nn.Module`` or a :class:`Policy`."""
    head = {"log_std": log_std, "squash": squash}
    if isinstance(policy, Policy):
        return policy
    if isinstance(policy, nn.Module):
        return ModulePolicy(policy, observation_dim, action_space, **head)
    if policy == "linear":
        return LinearPolicy(observation_dim, action_space, **head)
    if policy == "mlp":
        return MLPPolicy(
            observation_dim, action_space, hidden=hidden, activation=activation, **head
        )
    raise ValueError(
        f"policy must be 'linear', 'mlp', an nn.Module or a zoopt Policy, got {policy!r}"
    )
