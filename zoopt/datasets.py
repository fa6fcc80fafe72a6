"""Small classification data sets and models for examples, tests and benchmarks.

The data are scikit-learn's bundled sets (no download): ``digits`` (8×8 images, 10 classes),
``breast_cancer`` (2 classes), ``wine`` (3 classes) and ``iris`` (3 classes), split once with a
fixed stratified split and standardised with statistics of the training part only.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["DATASETS", "load_classification", "mlp", "ACTIVATIONS"]

#: names accepted by :func:`load_classification` → the scikit-learn loader's name
DATASETS = {
    "digits": "load_digits",
    "breast_cancer": "load_breast_cancer",
    "wine": "load_wine",
    "iris": "load_iris",
}


def load_classification(
    name: str, test_size: float = 0.25, seed: int = 0, standardize: bool = True
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """A bundled scikit-learn classification set, split into train and test.

    Args:
        name: one of :data:`DATASETS` (``"digits"``, ``"breast_cancer"``, ``"wine"``,
            ``"iris"``).
        test_size: fraction of the samples held out, in (0, 1).
        seed: the split's random state; the split is stratified by class.
        standardize: scale features to zero mean and unit variance using the training
            part's statistics (constant features are left centred, not divided by 0).

    Returns:
        ``(X_train (N, F) float32, y_train (N,) int64, X_test (M, F), y_test (M,))``.
    """
    if name not in DATASETS:
        raise ValueError(f"name must be one of {sorted(DATASETS)}, got {name!r}")
    if (
        not isinstance(test_size, (int, float))
        or isinstance(test_size, bool)
        or not (0 < test_size < 1)
    ):
        raise ValueError(f"test_size must be a fraction in (0, 1), got {test_size!r}")
    from zoopt.extras import require

    require("sklearn", f"the {name!r} data set")
    import sklearn.datasets
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    X, y = getattr(sklearn.datasets, DATASETS[name])(return_X_y=True)
    X_tr, X_te, y_tr, y_te = train_test_split(
        X, y, test_size=test_size, random_state=seed, stratify=y
    )
    if standardize:
        scaler = StandardScaler().fit(X_tr)
        X_tr, X_te = scaler.transform(X_tr), scaler.transform(X_te)

    def as_x(a) -> Tensor:
        return torch.as_tensor(a, dtype=torch.float32)

    def as_y(a) -> Tensor:
        return torch.as_tensor(a, dtype=torch.int64)

    return as_x(X_tr), as_y(y_tr), as_x(X_te), as_y(y_te)


#: activation names accepted by :func:`mlp`
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
}


def mlp(
    in_features: int,
    hidden: int | Sequence[int],
    out_features: int,
    activation: str = "tanh",
    seed: int | None = 0,
) -> nn.Sequential:
    """A multilayer perceptron ``Linear → act → … → Linear`` (logits out).

    Args:
        in_features: F, the input width.
        hidden: one hidden width or a sequence of them (empty: a linear model).
        out_features: C, the number of logits.
        activation: one of :data:`ACTIVATIONS`.
        seed: seeds PyTorch's default initialisation (without touching the global RNG);
            ``None`` uses the global RNG.

    Returns:
        an ``nn.Sequential`` mapping ``(N, F)`` to ``(N, C)``.
    """
    widths = [hidden] if isinstance(hidden, int) else list(hidden)
    for name, val in [("in_features", in_features), ("out_features", out_features)] + [
        (f"hidden[{i}]", w) for i, w in enumerate(widths)
    ]:
        if isinstance(val, bool) or not isinstance(val, int) or val < 1:
            raise ValueError(f"{name} must be a positive int, got {val!r}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")

    def build() -> nn.Sequential:
        layers: list[nn.Module] = []
        sizes = [in_features, *widths]
        for a, b in zip(sizes[:-1], sizes[1:], strict=True):
            layers += [nn.Linear(a, b), ACTIVATIONS[activation]()]
        layers.append(nn.Linear(sizes[-1], out_features))
        return nn.Sequential(*layers)

    if seed is None:
        return build()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()
