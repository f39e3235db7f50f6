"""adabayes: the paper's theory of optimisation as Bayesian filtering, derived, simulated and run.

The distribution installs five packages: :mod:`filtering` (NumPy core and torch optimisers),
:mod:`derivations` (SymPy), :mod:`simulations` (experiments that write data), :mod:`figures`
(matplotlib from saved data) and this one, which holds the ``adabayes`` command line and the user-facing names:

>>> from adabayes import AdaBayes, AdaBayesFP, LearningRateRecorder  # doctest: +SKIP

Those are loaded on first use (module ``__getattr__``), so ``import adabayes`` works, and stays fast, without
PyTorch; :mod:`adabayes.torch` holds the same names.
"""

from __future__ import annotations


def _version() -> str:
    """The installed distribution's version (pyproject.toml is its one source)."""
    from importlib import metadata

    try:
        return metadata.version("adabayes")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "0+unknown"


__version__ = _version()

_TORCH_NAMES = ("AdaBayes", "AdaBayesFP", "LearningRateRecorder", "Readout", "adabayes_fp_step", "adabayes_step")

__all__ = ["__version__", *_TORCH_NAMES]


def __getattr__(name: str) -> object:
    """The torch-side names, imported from :mod:`adabayes.torch` when first asked for."""
    if name in _TORCH_NAMES:
        from . import torch as torch_api

        return getattr(torch_api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_TORCH_NAMES})
