"""SupervisedObjective: batched evaluation, common minibatches, surrogate, sampled outputs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import accuracy_score, f1_score
from torch import nn
from torch.func import functional_call

import zoopt
from zoopt.datasets import load_classification, mlp
from zoopt.objectives import SupervisedObjective


@pytest.fixture(scope="module")
def iris():
    return load_classification("iris", seed=0)


@pytest.fixture(scope="module")
def digits():
    return load_classification("digits", seed=0)


class Residual(nn.Module):
    """Not an nn.Sequential: takes the vmap path."""

    def __init__(self):
        super().__init__()
        self.inp = nn.Linear(4, 6)
        self.mid = nn.Linear(6, 6)
        self.out = nn.Linear(6, 3)

    def forward(self, x):
        h = torch.relu(self.inp(x))
        return self.out(h + torch.tanh(self.mid(h)))


def _population(model: nn.Module, k: int, scale: float, seed: int = 0) -> torch.Tensor:
    x0 = nn.utils.parameters_to_vector(model.parameters()).detach()
    g = torch.Generator().manual_seed(seed)
    return x0 + scale * torch.randn(k, x0.numel(), generator=g)


def _loop_accuracy(model, X, inputs, targets):
    """Reference: one functional_call per candidate on the given samples."""
    out = []
    for x in X:
        params, offset = {}, 0
        for name, p in model.named_parameters():
            params[name] = x[offset : offset + p.numel()].view_as(p)
            offset += p.numel()
        pred = functional_call(model, params, (inputs,)).argmax(-1)
        out.append((pred == targets).float().mean())
    return torch.stack(out)


@pytest.mark.parametrize("fast_path", [True, False])
@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_batched_evaluation_equals_per_candidate_loop(digits, fast_path, activation):
    X_tr, y_tr, _, _ = digits
    model = mlp(64, [16, 12], 10, activation=activation, seed=1)
    obj = SupervisedObjective(model, X_tr, y_tr, fast_path=fast_path)
    assert obj.uses_fast_path == fast_path
    X = _population(model, 9, 0.3)
    losses = obj.evaluate(X, seed=0)
    assert losses.shape == (9,)
    expected = _loop_accuracy(model, X, X_tr, y_tr)
    assert torch.allclose(-losses, expected, atol=1e-6)
    assert len(set(losses.tolist())) > 1  # the candidates really differ


def test_vmap_path_for_a_general_module_and_chunking(iris):
    X_tr, y_tr, _, _ = iris
    model = Residual()
    obj = SupervisedObjective(model, X_tr, y_tr, chunk_size=2)
    assert not obj.uses_fast_path
    X = _population(model, 7, 0.5)
    assert torch.allclose(-obj.evaluate(X), _loop_accuracy(model, X, X_tr, y_tr), atol=1e-6)


def test_model_with_buffers_is_evaluated_in_eval_mode(iris):
    X_tr, y_tr, _, _ = iris
    model = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3))
    with torch.no_grad():  # running statistics that differ from a batch's own
        model[1].running_mean.fill_(0.3)
        model[1].running_var.fill_(2.0)
    obj = SupervisedObjective(model, X_tr, y_tr)
    assert not obj.uses_fast_path  # buffers: the general path
    X = _population(model, 4, 0.3)
    model.eval()
    expected = _loop_accuracy(model, X, X_tr, y_tr)
    model.train()
    assert torch.allclose(-obj.evaluate(X), expected, atol=1e-6)
    assert model.training and model[1].running_mean.eq(0.3).all()  # untouched


def test_objective_survives_pickling(iris):
    import pickle

    X_tr, y_tr, _, _ = iris
    model = mlp(4, 6, 3)
    obj = SupervisedObjective(model, X_tr, y_tr, batch_size=32)
    X = _population(model, 4, 0.3)
    copy = pickle.loads(pickle.dumps(obj))  # what a process-based evaluator sends
    assert torch.equal(copy.evaluate(X, 3), obj.evaluate(X, 3))


def test_fast_and_vmap_paths_agree(digits):
    X_tr, y_tr, _, _ = digits
    model = nn.Sequential(
        nn.Flatten(),
        nn.Linear(64, 20),
        nn.GELU(),
        nn.Dropout(0.5),
        nn.Sequential(nn.Linear(20, 10)),
    )
    fast = SupervisedObjective(model, X_tr, y_tr)
    slow = SupervisedObjective(model, X_tr, y_tr, fast_path=False)
    assert fast.uses_fast_path and not slow.uses_fast_path
    X = _population(model, 5, 0.2)
    a, b = fast.population_logits(X, X_tr[:50]), slow.population_logits(X, X_tr[:50])
    assert a.shape == (5, 50, 10)
    assert torch.allclose(a, b, atol=1e-5)
    assert model.training  # evaluated in eval mode, the module's own mode restored


def test_minibatch_shared_within_a_step_and_fresh_across_steps(digits):
    X_tr, y_tr, _, _ = digits
    model = mlp(64, 8, 10, seed=2)
    obj = SupervisedObjective(model, X_tr, y_tr, batch_size=64)
    X = _population(model, 6, 0.3)
    for seed in (11, 12):
        idx = obj.minibatch_indices(seed)
        assert idx.shape == (64,) and len(set(idx.tolist())) == 64  # without replacement
        batched = obj.evaluate(X, seed)
        # every candidate scored on that step's minibatch, also when evaluated alone
        expected = _loop_accuracy(model, X, X_tr[idx], y_tr[idx])
        assert torch.allclose(-batched, expected, atol=1e-6)
        alone = torch.cat([obj.evaluate(X[i : i + 1], seed) for i in range(len(X))])
        assert torch.equal(alone, batched)
    assert not torch.equal(obj.minibatch_indices(11), obj.minibatch_indices(12))
    # a fresh objective draws the same minibatch from the same seed (other processes agree)
    other = SupervisedObjective(model, X_tr, y_tr, batch_size=64)
    assert torch.equal(other.minibatch_indices(12), obj.minibatch_indices(12))


def test_surrogate_gradient_equals_direct_computation(iris):
    X_tr, y_tr, _, _ = iris
    model = mlp(4, 5, 3, seed=3).double()
    obj = SupervisedObjective(model, X_tr.double(), y_tr, batch_size=40)
    x = nn.utils.parameters_to_vector(model.parameters()).detach().clone().requires_grad_(True)
    value = obj.surrogate(x, seed=5)
    (grad,) = torch.autograd.grad(value, x)
    # direct: the module itself with its own parameters on the same minibatch
    xb, yb = obj.minibatch(5)
    model.zero_grad()
    direct = F.cross_entropy(model(xb), yb)
    direct.backward()
    direct_grad = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
    assert value.item() == pytest.approx(direct.item(), rel=1e-12)
    assert torch.allclose(grad, direct_grad, atol=1e-10)
    # and a central finite difference along a random direction
    v = torch.randn(x.numel(), dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    h = 1e-6
    with torch.no_grad():
        fd = (obj.surrogate(x + h * v, 5) - obj.surrogate(x - h * v, 5)) / (2 * h)
    assert fd.item() == pytest.approx((grad @ v).item(), rel=1e-5)


def test_surrogate_none_disables_gradient(iris):
    X_tr, y_tr, _, _ = iris
    model = mlp(4, 5, 3)
    obj = SupervisedObjective(model, X_tr, y_tr, surrogate=None)
    assert not obj.has_surrogate
    with pytest.raises(TypeError, match="no surrogate"):
        zoopt.minimize(obj, model, estimator="gradient", steps=1)


def test_sample_outputs_shapes_losses_and_gradients(iris):
    X_tr, y_tr, _, _ = iris
    model = mlp(4, 5, 3, seed=4)
    obj = SupervisedObjective(model, X_tr, y_tr, batch_size=16)
    x = nn.utils.parameters_to_vector(model.parameters()).detach().requires_grad_(True)
    out = obj.sample_outputs(x, 5, torch.Generator().manual_seed(0), seed=9)
    assert out.log_probs.shape == out.losses.shape == (16, 5)
    assert out.entropy.shape == (16,)
    assert set(out.losses.unique().tolist()) <= {0.0, 1.0}
    assert not out.losses.requires_grad
    (out.log_probs.sum() + out.entropy.sum()).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    # the losses are the 0/1 errors of labels whose log-probabilities are reported
    _, yb = obj.minibatch(9)
    log_p = torch.log_softmax(obj.logits(x.detach(), obj.minibatch(9)[0]), -1)
    drawn = (out.log_probs.detach()[..., None] - log_p[:, None, :]).abs().argmin(-1)
    assert torch.equal(out.losses, (drawn != yb[:, None]).float())


def test_sample_outputs_follow_the_softmax(iris):
    X_tr, y_tr, _, _ = iris
    model = mlp(4, 5, 3, seed=5)
    obj = SupervisedObjective(model, X_tr[:4], y_tr[:4])
    x = nn.utils.parameters_to_vector(model.parameters()).detach()
    out = obj.sample_outputs(x, 4000, torch.Generator().manual_seed(1))
    p_correct = torch.softmax(obj.logits(x, X_tr[:4]), -1).gather(1, y_tr[:4, None])[:, 0]
    assert torch.allclose(1 - out.losses.mean(1), p_correct.detach(), atol=0.04)


def test_macro_f1_metric_and_evaluate_split_match_sklearn(iris):
    X_tr, y_tr, X_te, y_te = iris
    model = mlp(4, 6, 3, seed=6)
    obj = SupervisedObjective(model, X_tr, y_tr, metric="f1")
    assert obj.metric_name == "macro_f1" and obj.metric_sign == -1
    X = _population(model, 4, 0.5)
    losses = obj.evaluate(X)
    for k in range(4):
        pred = obj.predict(X[k], X_tr).numpy()
        assert -losses[k].item() == pytest.approx(f1_score(y_tr, pred, average="macro"), abs=1e-6)
    scores = obj.evaluate_split(X[0], X_te, y_te)
    pred = obj.predict(X[0], X_te).numpy()
    assert scores["accuracy"] == pytest.approx(accuracy_score(y_te, pred))
    assert scores["macro_f1"] == pytest.approx(f1_score(y_te, pred, average="macro"))
    assert scores["macro_f1"] == scores[obj.metric_name]
    assert scores["cross_entropy"] > 0
    # a module with the same layout is accepted too
    assert obj.evaluate_split(model, X_te, y_te)["accuracy"] == pytest.approx(
        obj.evaluate_split(nn.utils.parameters_to_vector(model.parameters()), X_te, y_te)[
            "accuracy"
        ]
    )


def test_callable_metric(iris):
    X_tr, y_tr, _, _ = iris

    def balanced_hits(predictions, targets):
        return (predictions == targets).float().sum(1)

    model = mlp(4, 6, 3, seed=7)
    obj = SupervisedObjective(model, X_tr, y_tr, metric=balanced_hits)
    assert obj.metric_name == "balanced_hits"
    X = _population(model, 3, 0.5)
    assert torch.allclose(-obj.evaluate(X), len(y_tr) * _loop_accuracy(model, X, X_tr, y_tr))

    bad = SupervisedObjective(model, X_tr, y_tr, metric=lambda p, t: (p == t).float().mean())
    with pytest.raises(ValueError, match="one score per candidate"):
        bad.evaluate(X)


def test_nonfinite_parameters_give_nan_losses(iris):
    X_tr, y_tr, _, _ = iris
    model = mlp(4, 6, 3)
    obj = SupervisedObjective(model, X_tr, y_tr)
    X = _population(model, 3, 0.1)
    X[1, 0] = float("nan")
    losses = obj.evaluate(X)
    assert torch.isnan(losses[1]) and torch.isfinite(losses[[0, 2]]).all()


@pytest.mark.parametrize(
    "name, options",
    [
        ("gradient", dict(lr=0.05)),
        ("es", dict(sigma=0.3, population=32, lr=0.1)),
        ("sampling", dict(sigma=0.3, population=32, lr=0.1)),
        ("sampling", dict(sigma=0.3, population=32, lr=0.1, guided=True)),
        ("cmaes", dict(sigma=0.3, population=16)),
        ("reinforce", dict(lr=0.05)),
    ],
)
def test_each_estimator_improves_accuracy(iris, name, options):
    if name not in zoopt.available_estimators():
        pytest.skip(f"estimator {name!r} is not part of this build")
    X_tr, y_tr, X_te, y_te = iris
    model = mlp(4, 8, 3, seed=0)
    obj = SupervisedObjective(model, X_tr, y_tr)
    before = obj.evaluate_split(model, X_tr, y_tr)["accuracy"]
    result = zoopt.minimize(obj, model, estimator=name, steps=40, seed=0, **options)
    after = obj.evaluate_split(result.x, X_tr, y_tr)["accuracy"]
    assert result.metric_name == "accuracy"
    assert result.best_metric == pytest.approx(-result.best_loss)
    assert after >= before + 0.2, (name, before, after)
    # minimize wrote the final parameters back into the module
    assert torch.equal(nn.utils.parameters_to_vector(model.parameters()), result.x)


def test_bad_input_gives_clear_errors(iris):
    X_tr, y_tr, _, _ = iris
    model = mlp(4, 6, 3)
    with pytest.raises(ValueError, match="inputs and targets must have the same length N"):
        SupervisedObjective(model, X_tr, y_tr[:-1])
    with pytest.raises(ValueError, match="metric must be one of"):
        SupervisedObjective(model, X_tr, y_tr, metric="bleu")
    with pytest.raises(TypeError, match="metric must be a name"):
        SupervisedObjective(model, X_tr, y_tr, metric=3)
    with pytest.raises(TypeError, match="integer class labels"):
        SupervisedObjective(model, X_tr, y_tr.float())
    with pytest.raises(ValueError, match=r"batch_size must be None .* or an int in \[1, 112\]"):
        SupervisedObjective(model, X_tr, y_tr, batch_size=1000)
    with pytest.raises(ValueError, match="surrogate must be"):
        SupervisedObjective(model, X_tr, y_tr, surrogate="hinge")
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        SupervisedObjective(lambda x: x, X_tr, y_tr)
    with pytest.raises(ValueError, match="could not be applied to inputs"):
        SupervisedObjective(Residual(), torch.zeros(10, 7), torch.zeros(10, dtype=torch.long))
    with pytest.raises(ValueError, match=r"targets must be class labels in \[0, C=3\)"):
        SupervisedObjective(model, X_tr, y_tr + 1)
    with pytest.raises(ValueError, match=r"logits \(B, C\)"):
        SupervisedObjective(nn.Sequential(nn.Linear(4, 3), nn.Flatten(0)), X_tr, y_tr)
    obj = SupervisedObjective(model, X_tr, y_tr)
    with pytest.raises(ValueError, match=rf"X must have shape \(K, D={obj.dim}\).*X\[None\]"):
        obj.evaluate(torch.zeros(obj.dim))
    with pytest.raises(ValueError, match=rf"X must have shape \(K, D={obj.dim}\)"):
        obj.evaluate(torch.zeros(2, obj.dim + 1))
    with pytest.raises(
        ValueError, match=rf"x must be a flat parameter vector of shape \({obj.dim},\)"
    ):
        obj.surrogate(torch.zeros(2, obj.dim))
    with pytest.raises(ValueError, match="num_samples must be a positive int"):
        obj.sample_outputs(torch.zeros(obj.dim), 0, torch.Generator())
    with pytest.raises(ValueError, match="x0 has"):
        zoopt.minimize(obj, torch.zeros(obj.dim + 1), estimator="es", steps=1)


def test_load_classification_and_mlp():
    X_tr, y_tr, X_te, y_te = load_classification("wine", test_size=0.25, seed=0)
    assert X_tr.dtype == torch.float32 and y_tr.dtype == torch.int64
    assert X_tr.shape[1] == X_te.shape[1] == 13
    assert len(X_tr) + len(X_te) == 178 and len(X_te) == 45
    # stratified: class proportions agree between the parts
    p_tr = torch.bincount(y_tr) / len(y_tr)
    p_te = torch.bincount(y_te) / len(y_te)
    assert torch.allclose(p_tr, p_te, atol=0.03)
    # standardised with training statistics only
    assert torch.allclose(X_tr.mean(0), torch.zeros(13), atol=1e-5)
    assert not torch.allclose(X_te.mean(0), torch.zeros(13), atol=1e-3)
    again = load_classification("wine", test_size=0.25, seed=0)
    assert torch.equal(again[0], X_tr)
    with pytest.raises(ValueError, match="name must be one of"):
        load_classification("mnist")
    with pytest.raises(ValueError, match="test_size must be a fraction"):
        load_classification("iris", test_size=1.5)

    net = mlp(13, [7, 5], 3, activation="relu", seed=0)
    assert [m.out_features for m in net if isinstance(m, nn.Linear)] == [7, 5, 3]
    assert torch.equal(net[0].weight, mlp(13, [7, 5], 3, activation="relu", seed=0)[0].weight)
    with pytest.raises(ValueError, match="activation must be one of"):
        mlp(4, 3, 2, activation="swish2")
    with pytest.raises(ValueError, match=r"hidden\[1\] must be a positive int"):
        mlp(4, [3, 0], 2)
