"""Small classification data sets and models for examples, tests and benchmarks.

The data are scikit-learn's bundled sets (no download): ``digits`` (8×8 images, 10 classes),
``breast_cancer`` (2 classes), ``wine`` (3 classes) and ``iris`` (3 classes), split once with a
fixed stratified split and standardised with statistics of the training part only.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["DATASETS", "load_classification", "make_imbalanced", "mlp", "ACTIVATIONS"]

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


#: sources accepted by :func:`make_imbalanced`
IMBALANCED_SOURCES = ("digits", "synthetic")


def make_imbalanced(
    source: str = "digits",
    seed: int = 0,
    rare_classes: int | None = None,
    rare_fraction: float = 0.08,
    splits: tuple[float, float, float] = (0.5, 0.25, 0.25),
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """A classification task with rare classes, split train/validation/test with the
    imbalance kept (each split is stratified by class).

    ``"digits"``: scikit-learn's 8×8 digits (10 classes, ~180 images each) with
    ``rare_classes`` classes, chosen from ``seed``, subsampled to ``rare_fraction`` of their
    images. ``"synthetic"``: ``sklearn.datasets.make_classification`` with 6 classes,
    2,400 samples, 20 features (8 informative, ``class_sep=1``, 2% flipped labels), with
    ``rare_classes`` of the 6 classes given ``rare_fraction`` of the weight of a common one.
    Features are standardised with the training part's statistics. Everything derives from
    ``seed``: the same seed gives the same tensors.

    Args:
        source: ``"digits"`` or ``"synthetic"``.
        seed: draws the rare classes, the subsample, the synthetic data and the split.
        rare_classes: how many classes are made rare, in ``[1, C − 1]``; None: half of them.
        rare_fraction: the size of a rare class relative to a common one, in (0, 1].
        splits: fractions (train, validation, test), positive and summing to 1.

    Returns:
        ``(X_train (N, F) float32, y_train (N,) int64, X_valid, y_valid, X_test, y_test)``.
    """
    if source not in IMBALANCED_SOURCES:
        raise ValueError(f"source must be one of {IMBALANCED_SOURCES}, got {source!r}")
    classes = 10 if source == "digits" else 6
    if rare_classes is None:
        rare_classes = classes // 2
    if isinstance(rare_classes, bool) or not isinstance(rare_classes, int):
        raise ValueError(f"rare_classes must be an int in [1, {classes - 1}], got {rare_classes!r}")
    if not 1 <= rare_classes <= classes - 1:
        raise ValueError(f"rare_classes must be an int in [1, {classes - 1}], got {rare_classes!r}")
    if (
        not isinstance(rare_fraction, (int, float))
        or isinstance(rare_fraction, bool)
        or not 0 < rare_fraction <= 1
    ):
        raise ValueError(f"rare_fraction must be a fraction in (0, 1], got {rare_fraction!r}")
    if (
        len(splits) != 3
        or any(not isinstance(s, (int, float)) or s <= 0 for s in splits)
        or abs(sum(splits) - 1) > 1e-9
    ):
        raise ValueError(
            f"splits must be three positive fractions (train, valid, test) summing to 1, "
            f"got {splits!r}"
        )
    import numpy as np
    import sklearn.datasets
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(seed)
    rare = rng.choice(classes, size=rare_classes, replace=False)
    if source == "digits":
        X, y = sklearn.datasets.load_digits(return_X_y=True)
        keep = np.ones(len(y), dtype=bool)
        for c in rare:
            idx = np.flatnonzero(y == c)
            n = max(3, round(rare_fraction * len(idx)))  # ≥ 1 per split
            drop = rng.choice(idx, size=len(idx) - n, replace=False)
            keep[drop] = False
        X, y = X[keep], y[keep]
    else:
        weights = np.ones(classes)
        weights[rare] = rare_fraction
        X, y = sklearn.datasets.make_classification(
            n_samples=6000,
            n_features=10,
            n_informative=6,
            n_redundant=2,
            n_classes=classes,
            n_clusters_per_class=2,
            weights=list(weights / weights.sum()),
            class_sep=1.5,
            flip_y=0.02,
            random_state=int(rng.integers(2**31)),
        )
    split_seed = int(rng.integers(2**31))
    X_tr, X_rest, y_tr, y_rest = train_test_split(
        X, y, train_size=splits[0], random_state=split_seed, stratify=y
    )
    X_va, X_te, y_va, y_te = train_test_split(
        X_rest,
        y_rest,
        train_size=splits[1] / (splits[1] + splits[2]),
        random_state=split_seed,
        stratify=y_rest,
    )
    scaler = StandardScaler().fit(X_tr)
    xs = [torch.as_tensor(scaler.transform(a), dtype=torch.float32) for a in (X_tr, X_va, X_te)]
    ys = [torch.as_tensor(a, dtype=torch.int64) for a in (y_tr, y_va, y_te)]
    return xs[0], ys[0], xs[1], ys[1], xs[2], ys[2]
