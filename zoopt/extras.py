"""Optional dependencies: one import helper whose error names the extra that provides it.

A base ``pip install zoopt-torch`` runs every estimator on tensors and Gymnasium objectives;
scikit-learn (data sets), sacrebleu (BLEU), matplotlib (plots), TensorBoard and Ray come with
the extras ``metrics``, ``viz`` and ``ray``. Code that needs one imports it through
:func:`require`, so that a missing package reads "install zoopt-torch[metrics]", not a bare
``No module named 'sklearn'``.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["MissingExtraError", "require", "EXTRAS"]

#: importable module → (extra that installs it, the package pip names)
EXTRAS = {
    "sklearn": ("metrics", "scikit-learn"),
    "sacrebleu": ("metrics", "sacrebleu"),
    "matplotlib": ("viz", "matplotlib"),
    "tensorboard": ("viz", "tensorboard"),
    "ray": ("ray", "ray"),
}


class MissingExtraError(ImportError):
    """An optional dependency is not installed; the message names the extra to install."""

    def __init__(self, module: str, purpose: str):
        extra, package = EXTRAS[module]
        super().__init__(
            f"{purpose} needs {package}, which is not installed; "
            f"install it with: pip install 'zoopt-torch[{extra}]'",
            name=module,
        )
        self.extra = extra


def require(module: str, purpose: str) -> ModuleType:
    """Import ``module`` (a key of :data:`EXTRAS`), or raise :class:`MissingExtraError`.

    Args:
        module: the top-level module, e.g. ``"sklearn"``.
        purpose: what needs it, for the message, e.g. ``"objective.kind = 'classification'"``.
    """
    try:
        return importlib.import_module(module)
    except ImportError as e:
        # only the package itself missing is "install the extra"; a broken install
        # (a missing shared library inside it) keeps its own message
        if e.name is not None and e.name.split(".")[0] != module:
            raise
        raise MissingExtraError(module, purpose) from e
