"""A torch classifier on a labelled data set, scored by a non-differentiable metric.

:class:`SupervisedObjective` evaluates a population of K flat parameter vectors
``(K, D)`` — layout ``torch.nn.utils.parameters_to_vector(model.parameters())`` — in
batched forward passes and returns ``−metric`` (accuracy, macro-F1 or any callable on
predicted labels) for each. All K candidates of a step see the same minibatch, drawn from
the step's seed (common random numbers), so their differences are due to the parameters
alone.

The population forward pass is ``torch.func.vmap`` over ``torch.func.functional_call``
for any module. A ``nn.Sequential`` of ``nn.Linear`` layers and elementwise activations
takes a fast path instead: each layer is one batched matrix product over the population
(``torch.baddbmm``) with the shared input broadcast, not copied, over the population.

It also offers what other estimators need from a classifier: a differentiable
cross-entropy surrogate (``"gradient"``, guided ``"sampling"``) and sampled labels with
their log-probabilities (``"reinforce"``; the loss of a sampled label is its 0/1 error).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoopt.lowrank import LowRankMembers
from zoopt.metrics import accuracy, macro_f1
from zoopt.objectives.base import Objective, OutputSamples, seeded_generator
from zoopt.population_forward import inplace_forward, population_forward

__all__ = ["SupervisedObjective", "CLASSIFICATION_METRICS"]

#: metric names accepted by :class:`SupervisedObjective` → (reported name, function)
CLASSIFICATION_METRICS: dict[str, tuple[str, Callable[..., Tensor]]] = {
    "accuracy": ("accuracy", accuracy),
    "f1": ("macro_f1", macro_f1),
    "macro_f1": ("macro_f1", macro_f1),
}

# modules that act elementwise (or as the identity in eval mode): safe to apply to a
# (K, B, H) population activation as they are
_ELEMENTWISE = (
    nn.ReLU,
    nn.ReLU6,
    nn.Tanh,
    nn.Sigmoid,
    nn.GELU,
    nn.SiLU,
    nn.ELU,
    nn.LeakyReLU,
    nn.Softplus,
    nn.Mish,
    nn.Hardtanh,
    nn.Softsign,
    nn.Identity,
    nn.Dropout,
)

# in-place forms of common activations: they spare one (K, B, H) allocation per layer
_INPLACE: dict[type, Callable[[Tensor], Tensor]] = {
    nn.ReLU: torch.relu_,
    nn.Tanh: torch.tanh_,
    nn.Sigmoid: torch.sigmoid_,
}

# activation memory per forward chunk, in elements (64 MiB of float32)
_CHUNK_BUDGET = 2**24


def _flatten_sequential(module: nn.Module) -> list[tuple[str, nn.Module]] | None:
    """``(qualified name, leaf)`` of a (nested) ``nn.Sequential``; None for other modules."""
    if not isinstance(module, nn.Sequential):
        return None
    out: list[tuple[str, nn.Module]] = []
    for name, child in module.named_children():
        if isinstance(child, nn.Sequential):
            inner = _flatten_sequential(child)
            out += [(f"{name}.{n}", m) for n, m in inner]  # type: ignore[union-attr]
        else:
            out.append((name, child))
    return out


class SupervisedObjective(Objective):
    """Loss = −metric of ``model`` at each candidate parameter vector on labelled data.

    Args:
        model: the classifier; maps ``inputs[:B]`` to logits ``(B, C)``. Its parameters give
            the flat layout (``parameters_to_vector(model.parameters())``, D entries); its
            buffers are used as they are. It is evaluated in eval mode (dropout off, batch
            norm on running statistics); its own parameters are never modified.
        inputs: ``(N, ...)`` features (tensor or array).
        targets: ``(N,)`` integer class labels in ``[0, C)``.
        metric: ``"accuracy"``, ``"f1"`` (macro-F1, as scikit-learn's
            ``f1_score(average="macro")``), or a callable
            ``fn(predictions (K, B) int64, targets (B,)) -> (K,)``, higher is better.
        batch_size: B, the minibatch drawn afresh each step from the step's seed and shared
            by all candidates of the step; ``None`` evaluates on all N samples.
        surrogate: the differentiable loss for :meth:`surrogate`: ``"cross_entropy"``, a
            callable ``fn(logits (B, C), targets (B,)) -> scalar``, or ``None`` for none.
        chunk_size: candidates per forward pass; ``None`` picks it so that activations stay
            within about 64 MiB.
        fast_path: allow the batched-matmul path for ``nn.Sequential`` MLPs (same numbers as
            the ``vmap`` path, up to float rounding).
        inplace: low-rank members (an estimator's ``rank``) are evaluated one after another
            in the model's own parameters (they hold θ afterwards, bit for bit) instead of
            one population forward (:mod:`zoopt.population_forward`).

    Attributes:
        dim: D. ``metric_name``: the metric's name. ``metric_sign``: −1 (loss = −metric).
        num_classes: C, the model's number of logits.
        uses_fast_path: whether the batched-matmul path is in use.
    """

    metric_sign = -1.0
    #: low-rank members are evaluated by a population forward, never as rows
    accepts_members = True

    def __init__(
        self,
        model: nn.Module,
        inputs: Any,
        targets: Any,
        metric: str | Callable[[Tensor, Tensor], Tensor] = "accuracy",
        batch_size: int | None = None,
        surrogate: str | Callable[[Tensor, Tensor], Tensor] | None = "cross_entropy",
        chunk_size: int | None = None,
        fast_path: bool = True,
        inplace: bool = False,
    ):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        named = list(model.named_parameters())
        if not named:
            raise ValueError("model has no parameters to optimise")
        self.model = model
        self._dtype = named[0][1].dtype
        # flat layout: the order of model.parameters(), as parameters_to_vector uses
        self._layout: list[tuple[str, torch.Size, int, int]] = []
        offset = 0
        for name, p in named:
            self._layout.append((name, p.shape, offset, p.numel()))
            offset += p.numel()
        self.dim = offset
        self._offsets = {name: (off, n) for name, _, off, n in self._layout}
        self._buffers = dict(model.named_buffers())

        self.inputs, self.targets = self._check_data(inputs, targets, "inputs", "targets")
        self.num_samples = self.inputs.shape[0]
        if batch_size is not None and (
            isinstance(batch_size, bool)
            or not isinstance(batch_size, int)
            or not 1 <= batch_size <= self.num_samples
        ):
            raise ValueError(
                f"batch_size must be None (all {self.num_samples} samples) or an int in "
                f"[1, {self.num_samples}], got {batch_size!r}"
            )
        self.batch_size = batch_size

        if isinstance(metric, str):
            if metric not in CLASSIFICATION_METRICS:
                raise ValueError(
                    f"metric must be one of {sorted(CLASSIFICATION_METRICS)} or a callable "
                    f"fn(predictions (K, B), targets (B,)) -> (K,), got {metric!r}"
                )
            self.metric_name, self._metric_fn = CLASSIFICATION_METRICS[metric]
        elif callable(metric):
            self.metric_name = getattr(metric, "__name__", type(metric).__name__)
            self._metric_fn = metric
        else:
            raise TypeError(
                "metric must be a name ('accuracy', 'f1') or a callable "
                f"fn(predictions (K, B), targets (B,)) -> (K,), got {type(metric).__name__}"
            )
        self._builtin_metric = isinstance(metric, str)

        if surrogate == "cross_entropy":
            self._surrogate_fn: Callable[[Tensor, Tensor], Tensor] | None = F.cross_entropy
        elif surrogate is None or callable(surrogate):
            self._surrogate_fn = surrogate
        else:
            raise ValueError(
                "surrogate must be 'cross_entropy', a callable fn(logits (B, C), targets (B,))"
                f" -> scalar, or None, got {surrogate!r}"
            )

        if chunk_size is not None and (
            isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1
        ):
            raise ValueError(f"chunk_size must be a positive int or None, got {chunk_size!r}")
        self.chunk_size = chunk_size
        if not isinstance(inplace, bool):
            raise TypeError(f"inplace must be True or False, got {inplace!r}")
        self.inplace = inplace
        self._plan = self._fast_plan() if fast_path else None
        self.uses_fast_path = self._plan is not None
        self.num_classes, self._width = self._probe()
        if int(self.targets.max()) >= self.num_classes:
            raise ValueError(
                f"targets must be class labels in [0, C={self.num_classes}) for a model with "
                f"{self.num_classes} logits, found label {int(self.targets.max())}"
            )
        self._device_data: dict[torch.device, tuple[Tensor, Tensor]] = {}
        self._index_cache: tuple[int, Tensor] | None = None
        self.name = f"SupervisedObjective({type(model).__name__}, {self.metric_name})"

    # -- validation -------------------------------------------------------------------------
    def _check_data(self, inputs: Any, targets: Any, xname: str, yname: str):
        try:
            inputs = torch.as_tensor(inputs)
        except Exception:
            raise TypeError(
                f"{xname} must be a tensor or array (N, ...), got {type(inputs).__name__}"
            ) from None
        try:
            targets = torch.as_tensor(targets)
        except Exception:
            raise TypeError(
                f"{yname} must be a tensor or array of integer labels (N,), "
                f"got {type(targets).__name__}"
            ) from None
        if inputs.ndim < 1 or inputs.shape[0] == 0:
            raise ValueError(
                f"{xname} must have shape (N, ...) with N ≥ 1, got {tuple(inputs.shape)}"
            )
        if targets.ndim != 1:
            raise ValueError(f"{yname} must have shape (N,), got {tuple(targets.shape)}")
        if targets.is_floating_point() or targets.is_complex() or targets.dtype == torch.bool:
            raise TypeError(f"{yname} must hold integer class labels, got dtype {targets.dtype}")
        if inputs.shape[0] != targets.shape[0]:
            raise ValueError(
                f"{xname} and {yname} must have the same length N, got {inputs.shape[0]} "
                f"and {targets.shape[0]}"
            )
        if int(targets.min()) < 0:
            raise ValueError(f"{yname} must be class labels ≥ 0, found {int(targets.min())}")
        if inputs.is_floating_point():
            inputs = inputs.to(self._dtype)
        return inputs, targets.long()

    def _check_population(self, X: Any) -> Tensor | LowRankMembers:
        if isinstance(X, LowRankMembers):
            if X.dim != self.dim:
                raise ValueError(f"X: members of D={X.dim} parameters, the model has {self.dim}")
            return X
        if not isinstance(X, Tensor):
            raise TypeError(f"X must be a Tensor of shape (K, {self.dim}), got {type(X).__name__}")
        if X.ndim != 2 or X.shape[1] != self.dim:
            hint = " (use X[None] for one candidate)" if X.ndim == 1 else ""
            raise ValueError(
                f"X must have shape (K, D={self.dim}) with one flat parameter vector per row "
                f"(layout of parameters_to_vector(model.parameters())), got "
                f"{tuple(X.shape)}{hint}"
            )
        return X.to(self._dtype)

    def _check_vector(self, x: Any) -> Tensor:
        if isinstance(x, nn.Module):
            x = nn.utils.parameters_to_vector(x.parameters())
        if not isinstance(x, Tensor) or x.shape != (self.dim,):
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(
                f"x must be a flat parameter vector of shape ({self.dim},), got {shape}"
            )
        return x.to(self._dtype)

    # -- data -------------------------------------------------------------------------------
    def _buffers_on(self, device: torch.device) -> dict[str, Tensor]:
        """The model's buffers on ``device`` (candidates may live elsewhere than the model)."""
        return {name: b.to(device) for name, b in self._buffers.items()}

    def _data(self, device: torch.device) -> tuple[Tensor, Tensor]:
        if device not in self._device_data:
            self._device_data[device] = (self.inputs.to(device), self.targets.to(device))
        return self._device_data[device]

    def minibatch_indices(self, seed: int) -> Tensor | None:
        """The ``(B,)`` sample indices of the step seeded ``seed`` (None: the full set).

        Drawn without replacement from ``seed`` alone, so every candidate and every backend
        evaluating that step uses the same minibatch.
        """
        if self.batch_size is None:
            return None
        if self._index_cache is not None and self._index_cache[0] == seed:
            return self._index_cache[1]
        g = seeded_generator(seed)
        idx = torch.randperm(self.num_samples, generator=g)[: self.batch_size]
        self._index_cache = (seed, idx)
        return idx

    def minibatch(self, seed: int, device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
        """``(inputs (B, ...), targets (B,))`` of the step seeded ``seed`` on ``device``."""
        xs, ys = self._data(torch.device(device))
        idx = self.minibatch_indices(seed)
        if idx is None:
            return xs, ys
        idx = idx.to(xs.device)
        return xs[idx], ys[idx]

    # -- forward passes ---------------------------------------------------------------------
    def _unflatten(self, x: Tensor) -> dict[str, Tensor]:
        """Views of one flat vector ``(D,)`` as the model's named parameters."""
        return {name: x[off : off + n].view(shape) for name, shape, off, n in self._layout}

    @contextlib.contextmanager
    def _eval_mode(self) -> Iterator[None]:
        modes = [(m, m.training) for m in self.model.modules()]
        self.model.eval()
        try:
            yield
        finally:
            for m, training in modes:
                m.training = training

    def _fast_plan(self) -> list[tuple] | None:
        """Layer plan for an ``nn.Sequential`` MLP, or None when the model is anything else."""
        leaves = _flatten_sequential(self.model)
        if not leaves or self._buffers:
            return None
        plan: list[tuple] = []
        for i, (name, m) in enumerate(leaves):
            if isinstance(m, nn.Linear):
                w = self._offsets.get(f"{name}.weight")
                b = self._offsets.get(f"{name}.bias")
                if w is None or (m.bias is not None and b is None):
                    return None  # tied or unusual parameters: leave it to vmap
                plan.append(("linear", w[0], m.out_features, m.in_features, b and b[0]))
            elif isinstance(m, nn.Flatten) and i == 0 and m.start_dim == 1 and m.end_dim == -1:
                plan.append(("flatten",))
            elif type(m) in _ELEMENTWISE:
                if not isinstance(m, (nn.Dropout, nn.Identity)):  # identities in eval mode
                    plan.append(("act", m))
            else:
                return None
        if not any(step[0] == "linear" for step in plan) or plan[-1][0] == "flatten":
            return None
        return plan

    def _probe(self) -> tuple[int, int]:
        """Run the model once on ``inputs[:1]``: the number of classes C, and the activation
        elements per sample and candidate (for choosing the chunk size)."""
        sizes: list[int] = []

        def hook(_module, _inputs, output) -> None:
            if isinstance(output, Tensor):
                sizes.append(output[0].numel() if output.ndim else 1)

        handles = [m.register_forward_hook(hook) for m in self.model.modules()]
        try:
            with torch.no_grad(), self._eval_mode():
                out = self.model(self.inputs[:1])
        except Exception as e:
            raise ValueError(
                f"model could not be applied to inputs[:1] of shape "
                f"{tuple(self.inputs[:1].shape)}: {e}"
            ) from e
        finally:
            for h in handles:
                h.remove()
        if not isinstance(out, Tensor) or out.ndim != 2 or out.shape[0] != 1:
            shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise ValueError(
                f"model must map inputs (B, ...) to logits (B, C); on inputs[:1] it returned "
                f"{shape}"
            )
        if self._plan is not None:
            width = sum(2 * step[2] for step in self._plan if step[0] == "linear")
        else:
            width = sum(sizes)
        return out.shape[1], max(1, width)

    def _chunk(self, k: int, b: int) -> int:
        if self.chunk_size is not None:
            return self.chunk_size
        return max(1, min(k, _CHUNK_BUDGET // max(1, b * self._width)))

    def _fast_forward(self, X: Tensor, xb: Tensor) -> Tensor:
        """Logits ``(K, B, C)`` of an MLP through batched matrix products."""
        k = X.shape[0]
        h: Tensor = xb
        if self._plan[0][0] == "flatten":  # type: ignore[index]
            h = h.flatten(1)
        # the shared input enters as a stride-0 expansion, so no K copies are made; one
        # (K, B, F) × (K, F, H) product per layer keeps activations contiguous, which
        # measured faster than a single (B, F) × (F, K·H) GEMM followed by a transpose
        h = h.expand(k, *h.shape)
        owned = False  # whether h is a fresh product that may be overwritten in place
        for step in self._plan:  # type: ignore[union-attr]
            if step[0] == "act":
                inplace = _INPLACE.get(type(step[1])) if owned else None
                h = inplace(h) if inplace is not None else step[1](h)
            elif step[0] == "linear":
                owned = True
                _, w_off, out_f, in_f, b_off = step
                W = X[:, w_off : w_off + out_f * in_f].view(k, out_f, in_f)
                if b_off is None:
                    h = torch.bmm(h, W.transpose(1, 2))
                else:
                    bias = X[:, b_off : b_off + out_f].unsqueeze(1)
                    h = torch.baddbmm(bias, h, W.transpose(1, 2))
        return h

    def _vmap_forward(self, X: Tensor, xb: Tensor) -> Tensor:
        """Logits ``(K, B, C)`` through ``vmap(functional_call)`` over the population."""
        buffers = self._buffers_on(X.device)

        def one(x: Tensor, inputs: Tensor) -> Tensor:
            return torch.func.functional_call(self.model, (self._unflatten(x), buffers), (inputs,))

        return torch.func.vmap(one, in_dims=(0, None))(X, xb)

    def population_logits(self, X: Tensor, inputs: Tensor) -> Tensor:
        """Logits of every candidate on ``inputs``: ``(K, D)`` × ``(B, ...)`` → ``(K, B, C)``.

        Runs in chunks of candidates (``chunk_size``) and without autograd.
        """
        X = self._check_population(X)
        if isinstance(X, LowRankMembers):
            return self._members_logits(X, inputs)
        inputs = inputs.to(X.device)
        if inputs.is_floating_point():
            inputs = inputs.to(self._dtype)
        forward = self._fast_forward if self._plan is not None else self._vmap_forward
        step = self._chunk(X.shape[0], inputs.shape[0])
        with torch.no_grad(), self._eval_mode():
            parts = [forward(X[i : i + step], inputs) for i in range(0, X.shape[0], step)]
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def _members_logits(self, members: LowRankMembers, inputs: Tensor) -> Tensor:
        """Logits ``(K, B, C)`` of low-rank members: population forwards over chunks of
        members, or one member at a time in the model's parameters (``inplace``)."""
        if self.inplace:
            device = next(self.model.parameters()).device
        else:
            device = members.center.device
        inputs = inputs.to(device)
        if inputs.is_floating_point():
            inputs = inputs.to(self._dtype)
        if self.inplace:
            return inplace_forward(self.model, members, inputs)
        step = self._chunk(len(members), inputs.shape[0])
        with torch.no_grad():
            parts = [population_forward(self.model, m, inputs) for m in members.split(step)]
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def logits(self, x: Tensor, inputs: Tensor) -> Tensor:
        """Differentiable logits ``(B, C)`` of one parameter vector ``x`` ``(D,)``."""
        x = self._check_vector(x)
        inputs = inputs.to(x.device)
        if inputs.is_floating_point():
            inputs = inputs.to(self._dtype)
        with self._eval_mode():
            return torch.func.functional_call(
                self.model, (self._unflatten(x), self._buffers_on(x.device)), (inputs,)
            )

    # -- the objective contract -------------------------------------------------------------
    def _score(self, predictions: Tensor, targets: Tensor, num_classes: int) -> Tensor:
        if self._builtin_metric and self._metric_fn is macro_f1:
            return macro_f1(predictions, targets, max(num_classes, int(targets.max()) + 1))
        if self._builtin_metric:
            return self._metric_fn(predictions, targets)
        out = self._metric_fn(predictions, targets)
        out = torch.as_tensor(out)
        if out.shape != (predictions.shape[0],):
            raise ValueError(
                f"metric {self.metric_name!r} must return one score per candidate, shape "
                f"({predictions.shape[0]},), got {tuple(out.shape)}"
            )
        return out.to(torch.get_default_dtype())

    def evaluate(self, X: Tensor, seed: int = 0) -> Tensor:
        """Losses ``(K,)`` = −metric of each candidate row of ``X`` ``(K, D)`` on the step's
        minibatch (drawn from ``seed``; the full set when ``batch_size`` is None)."""
        X = self._check_population(X)
        device = X.center.device if isinstance(X, LowRankMembers) else X.device
        xb, yb = self.minibatch(seed, device)
        logits = self.population_logits(X, xb)
        scores = self._score(logits.argmax(dim=-1), yb, logits.shape[-1])
        losses = -scores.to(dtype=torch.get_default_dtype())
        # argmax of NaN logits is still a label; mark such candidates failed instead
        finite = torch.isfinite(logits.sum(dim=(1, 2)))
        losses = torch.where(finite.to(losses.device), losses, torch.nan)
        return losses.cpu()

    @property
    def has_surrogate(self) -> bool:
        """Whether a differentiable surrogate is configured (``surrogate`` not None)."""
        return self._surrogate_fn is not None

    def surrogate(self, x: Tensor, seed: int = 0) -> Tensor:
        """The differentiable surrogate (cross-entropy by default) at ``x`` ``(D,)`` on the
        step's minibatch; a scalar with a gradient with respect to ``x``."""
        if self._surrogate_fn is None:
            raise NotImplementedError(f"{self.name} was built with surrogate=None")
        x = self._check_vector(x)
        xb, yb = self.minibatch(seed, x.device)
        return self._surrogate_fn(self.logits(x, xb), yb).reshape(())

    def sample_outputs(
        self, x: Tensor, num_samples: int, generator: torch.Generator, seed: int = 0
    ) -> OutputSamples:
        """Labels drawn from the model's softmax, ``num_samples`` (M) per input.

        For each of the B inputs of the step's minibatch: ``log_probs (B, M)``
        (differentiable with respect to ``x``), ``losses (B, M)`` the 0/1 error of each
        drawn label, ``entropy (B,)`` of the predictive distribution (differentiable).
        """
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
            raise ValueError(f"num_samples must be a positive int, got {num_samples!r}")
        x = self._check_vector(x)
        xb, yb = self.minibatch(seed, x.device)
        log_p = torch.log_softmax(self.logits(x, xb), dim=-1)
        probs = log_p.detach().exp().to(generator.device)
        draws = torch.multinomial(probs, num_samples, replacement=True, generator=generator)
        draws = draws.to(log_p.device)
        log_probs = log_p.gather(1, draws)
        losses = (draws != yb.unsqueeze(1)).to(log_p.dtype)
        entropy = -(log_p.exp() * log_p).sum(dim=-1)
        return OutputSamples(log_probs=log_probs, losses=losses, entropy=entropy)

    # -- reporting --------------------------------------------------------------------------
    def predict(self, x: Tensor | nn.Module, inputs: Any) -> Tensor:
        """Predicted labels ``(N,)`` of one parameter vector ``x`` ``(D,)`` (or a module with
        this layout) on ``inputs`` ``(N, ...)``."""
        x = self._check_vector(x).detach()
        inputs = torch.as_tensor(inputs)
        return self.population_logits(x[None], inputs)[0].argmax(dim=-1)

    def evaluate_split(self, x: Tensor | nn.Module, inputs: Any, targets: Any) -> dict[str, float]:
        """Held-out scores of one parameter vector ``x`` ``(D,)`` (or a module).

        Args:
            x: flat parameters ``(D,)``, e.g. ``result.x``, or an ``nn.Module`` with the
                same parameter layout.
            inputs: ``(N, ...)`` features; targets: ``(N,)`` labels.

        Returns:
            ``{"accuracy", "macro_f1", "cross_entropy"}`` and the objective's own metric
            (under its ``metric_name``), as floats.
        """
        x = self._check_vector(x).detach()
        inputs, targets = self._check_data(inputs, targets, "inputs", "targets")
        logits = self.population_logits(x[None], inputs)[0]
        targets = targets.to(logits.device)
        pred = logits.argmax(dim=-1)
        c = max(logits.shape[-1], int(targets.max()) + 1)
        out = {
            "accuracy": float(accuracy(pred, targets)),
            "macro_f1": float(macro_f1(pred, targets, c)),
            "cross_entropy": float(F.cross_entropy(logits, targets)),
        }
        out[self.metric_name] = float(self._score(pred[None], targets, c)[0])
        return out

    def __repr__(self) -> str:
        batch = "full" if self.batch_size is None else self.batch_size
        return (
            f"SupervisedObjective(model={type(self.model).__name__}, D={self.dim}, "
            f"N={self.num_samples}, metric={self.metric_name!r}, batch_size={batch})"
        )
