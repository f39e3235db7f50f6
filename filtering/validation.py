"""Argument checks shared by the NumPy core and the torch adapter.

Every public entry point validates its hyperparameters here, so a bad value raises a ``ValueError``
that names the argument and the allowed range instead of silently producing NaN later.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = [
    "check_batch_size",
    "check_betas",
    "check_ou_stable",
    "check_positive",
    "check_predict",
    "check_unit_interval",
]

PREDICT_OPTIONS = ("paper", "exponential")


def _as_float(name: str, value: object) -> float:
    if isinstance(value, bool) or (not isinstance(value, (int, float)) and not hasattr(value, "__float__")):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    return float(value)  # type: ignore[arg-type]


def check_positive(name: str, value: object, *, allow_inf: bool = False, allow_zero: bool = False) -> float:
    """Return ``value`` as float if it is > 0 (or >= 0 with ``allow_zero``); raise ``ValueError`` otherwise."""
    x = _as_float(name, value)
    lower_ok = x >= 0.0 if allow_zero else x > 0.0
    if math.isnan(x) or not lower_ok or (math.isinf(x) and not allow_inf):
        bound = "[0, " if allow_zero else "(0, "
        upper = "inf]" if allow_inf else "inf)"
        raise ValueError(f"{name} must be in {bound}{upper}, got {value!r}")
    return x


def check_unit_interval(name: str, value: object) -> float:
    """Return ``value`` as float if it lies in [0, 1); raise ``ValueError`` otherwise."""
    x = _as_float(name, value)
    if not 0.0 <= x < 1.0:  # also rejects NaN
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")
    return x


def check_betas(betas: Sequence[float], n: int = 2) -> tuple[float, ...]:
    """Validate a tuple of EMA coefficients, each in [0, 1)."""
    if isinstance(betas, (str, bytes)) or not isinstance(betas, Sequence):
        raise ValueError(f"betas must be a sequence of {n} numbers in [0, 1), got {betas!r}")
    if len(betas) != n:
        raise ValueError(f"betas must have {n} entries, got {len(betas)}")
    return tuple(check_unit_interval(f"betas[{i}]", b) for i, b in enumerate(betas))


def check_batch_size(batch_size: object) -> float:
    """Validate the minibatch size B >= 1 (a real number: under DDP it is the global batch)."""
    x = _as_float("batch_size", batch_size)
    if math.isnan(x) or math.isinf(x) or x < 1.0:
        raise ValueError(f"batch_size must be a finite number >= 1, got {batch_size!r}")
    return x


def check_predict(predict: str) -> str:
    """Validate the name of the variance-prediction discretisation."""
    if predict not in PREDICT_OPTIONS:
        raise ValueError(f"predict must be one of {PREDICT_OPTIONS}, got {predict!r}")
    return predict


def check_ou_stable(eta: float, sigma2: float, names: tuple[str, str] = ("lr", "lr_sgd / batch_size")) -> None:
    """Require the OU decay factor ``1 - eta**2 / (2 sigma2)`` (Eq. 14) to lie in (0, 1].

    Beyond that the discretised OU process of Eq. 14 oscillates in sign and the prior of
    Eq. 17b no longer describes a slowly drifting optimum.
    """
    if not math.isinf(sigma2) and eta * eta >= 2.0 * sigma2:
        raise ValueError(
            f"{names[0]} and {names[1]} must satisfy {names[0]}**2 < 2 * sigma2 (OU decay factor of Eq. 14 in "
            f"(0, 1]); got {names[0]}={eta!r}, sigma2={sigma2!r}"
        )
