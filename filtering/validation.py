"""Argument checks shared by every package: scalars, arrays, choices, seeds and the OU stability condition.

Every public entry point validates its inputs here, so bad input fails at the call with a message that names
the argument and the allowed range, instead of producing NaN later. Two exception types:

- :class:`ArgumentTypeError` for a value of the wrong *type* (``bool``, ``str``, ``complex``, ``None``, a
  non-sequence where a sequence is needed, an array of booleans or strings). It subclasses both ``TypeError``
  and ``ValueError``, so callers that catch either keep working (as NumPy's ``AxisError`` does).
- ``ValueError`` for a value of the right type outside its range (NaN is outside every range).

Ranges are written in interval notation in the messages: ``lr must be in (0, inf), got -1.0``. A lower bound
is open unless ``allow_equal``; an upper bound is always open; ``allow_inf`` admits ±inf wherever the bounds
allow it, and the interval is then printed closed at infinity (``(0, inf]``).
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "PREDICT_OPTIONS",
    "ArgumentTypeError",
    "check_array",
    "check_batch_size",
    "check_betas",
    "check_choice",
    "check_flag",
    "check_int",
    "check_open_unit_interval",
    "check_ou_stable",
    "check_positive",
    "check_predict",
    "check_real",
    "check_rng",
    "check_scalar",
    "check_unit_interval",
]

PREDICT_OPTIONS = ("paper", "exponential")

# dtype kinds that hold real numbers: signed and unsigned integers, floats
_REAL_KINDS = frozenset("iuf")


class ArgumentTypeError(TypeError, ValueError):
    """An argument of the wrong type; a ``TypeError`` that ``except ValueError`` also catches."""


# --------------------------------------------------------------------------------------------------------------
# ranges


def _interval_text(lower: float | None, upper: float | None, *, allow_equal: bool, allow_inf: bool) -> str:
    """The allowed range in interval notation, e.g. ``"[0, inf)"`` or ``"(0, 1)"``."""
    if lower is None:
        left = "[-inf" if allow_inf else "(-inf"
    else:
        left = f"{'[' if allow_equal else '('}{lower:g}"
    if upper is None:
        right = "inf]" if allow_inf else "inf)"
    else:
        right = f"{upper:g})"
    return f"{left}, {right}"


def _in_range(
    arr: np.ndarray,
    lower: float | None,
    upper: float | None,
    *,
    allow_equal: bool,
    allow_inf: bool,
    allow_nan: bool = False,
) -> np.ndarray:
    """Boolean mask of the entries inside the range (NaN only with ``allow_nan``)."""
    ok = np.isfinite(arr) if not allow_inf else ~np.isnan(arr)
    if lower is not None:
        ok &= (arr >= lower) if allow_equal else (arr > lower)
    if upper is not None:
        ok &= arr < upper
    if allow_nan:
        ok |= np.isnan(arr)
    return ok


# --------------------------------------------------------------------------------------------------------------
# scalars


def check_real(name: str, value: object) -> float:
    """Return ``value`` as a Python float if it is a real number (any range, NaN included).

    Raises
    ------
    ArgumentTypeError
        For ``bool``, complex numbers, strings, ``None`` and anything ``float()`` cannot convert.
    """
    if isinstance(value, (bool, np.bool_, complex, np.complexfloating, str, bytes)) or value is None:
        raise ArgumentTypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    if isinstance(value, numbers.Real):
        return float(value)
    try:  # 0-d arrays and CPU tensors; a complex, boolean or string one is refused below
        arr = np.asarray(value)
    except (TypeError, ValueError, RuntimeError):  # e.g. a CUDA tensor: float() reads it
        return _float_or_type_error(name, value)
    if arr.shape != () or arr.dtype.kind not in _REAL_KINDS:
        raise ArgumentTypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    return float(arr)


def _float_or_type_error(name: str, value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ArgumentTypeError(f"{name} must be a real number, got {type(value).__name__}") from exc


def check_scalar(
    name: str,
    value: object,
    *,
    lower: float | None = None,
    upper: float | None = None,
    allow_equal: bool = False,
    allow_inf: bool = False,
) -> float:
    """Return ``value`` as float if it is a real number in the range (see the module docstring).

    Parameters
    ----------
    name : str
        Argument name used in the message.
    value : object
        A real scalar (Python or NumPy number, 0-d array or tensor).
    lower, upper : float, optional
        Bounds; ``None`` leaves that side unbounded. ``upper`` is exclusive.
    allow_equal : bool
        Admit ``value == lower``.
    allow_inf : bool
        Admit ±inf where the bounds allow it.

    Raises
    ------
    ArgumentTypeError
        ``value`` is not a real number.
    ValueError
        ``value`` is NaN or outside the range.
    """
    x = check_real(name, value)
    if not _in_range(np.asarray(x), lower, upper, allow_equal=allow_equal, allow_inf=allow_inf):
        text = _interval_text(lower, upper, allow_equal=allow_equal, allow_inf=allow_inf)
        raise ValueError(f"{name} must be in {text}, got {value!r}")
    return x


def check_positive(name: str, value: object, *, allow_inf: bool = False, allow_zero: bool = False) -> float:
    """Return ``value`` as float if it is > 0 (>= 0 with ``allow_zero``), finite unless ``allow_inf``."""
    return check_scalar(name, value, lower=0.0, allow_equal=allow_zero, allow_inf=allow_inf)


def check_unit_interval(name: str, value: object) -> float:
    """Return ``value`` as float if it lies in [0, 1) (EMA coefficients, per-step weight decay)."""
    return check_scalar(name, value, lower=0.0, upper=1.0, allow_equal=True)


def check_open_unit_interval(name: str, value: object) -> float:
    """Return ``value`` as float if it lies in (0, 1) (forgetting factors)."""
    return check_scalar(name, value, lower=0.0, upper=1.0)


def check_int(name: str, value: object, *, lower: int | None = None, upper: int | None = None) -> int:
    """Return ``value`` as int if it is an integer (not bool, not float) with ``lower <= value < upper``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ArgumentTypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    n = int(value)
    if (lower is not None and n < lower) or (upper is not None and n >= upper):
        left = "(-inf" if lower is None else f"[{lower}"
        right = "inf)" if upper is None else f"{upper})"
        raise ValueError(f"{name} must be an integer in {left}, {right}, got {value!r}")
    return n


def check_flag(name: str, value: object, *, allow_none: bool = False) -> bool | None:
    """Return ``value`` if it is ``True`` or ``False`` (or ``None`` with ``allow_none``)."""
    if value is None and allow_none:
        return None
    if not isinstance(value, (bool, np.bool_)):
        allowed = "None, True or False" if allow_none else "True or False"
        raise ArgumentTypeError(f"{name} must be {allowed}, got {type(value).__name__} {value!r}")
    return bool(value)


def check_choice(name: str, value: object, options: Sequence[str]) -> str:
    """Return ``value`` if it is one of the strings in ``options``."""
    if not isinstance(value, str):
        raise ArgumentTypeError(f"{name} must be one of {tuple(options)}, got {type(value).__name__} {value!r}")
    if value not in options:
        raise ValueError(f"{name} must be one of {tuple(options)}, got {value!r}")
    return value


def check_predict(predict: object) -> str:
    """Validate the name of the variance-prediction discretisation (:data:`PREDICT_OPTIONS`)."""
    return check_choice("predict", predict, PREDICT_OPTIONS)


def check_betas(betas: object, n: int = 2) -> tuple[float, ...]:
    """Validate a sequence of ``n`` EMA coefficients, each in [0, 1); return them as a tuple of floats."""
    if isinstance(betas, (str, bytes)) or not isinstance(betas, Sequence):
        raise ArgumentTypeError(f"betas must be a sequence of {n} numbers in [0, 1), got {betas!r}")
    if len(betas) != n:
        raise ValueError(f"betas must have {n} entries, got {len(betas)}")
    return tuple(check_unit_interval(f"betas[{i}]", b) for i, b in enumerate(betas))


def check_batch_size(batch_size: object) -> float:
    """Validate the minibatch size B in [1, inf) (a real number: under DDP it is the global batch)."""
    return check_scalar("batch_size", batch_size, lower=1.0, allow_equal=True)


def check_rng(rng: object) -> np.random.Generator:
    """Return a ``np.random.Generator``: ``rng`` itself, or one seeded with it. ``None`` is refused.

    Every entry point that draws random numbers is reproducible by design, so it needs a seed.
    """
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None:
        raise ValueError("rng must be a seed or np.random.Generator (simulations are reproducible by design)")
    if isinstance(rng, np.random.SeedSequence):
        return np.random.default_rng(rng)
    return np.random.default_rng(check_int("rng", rng, lower=0))


# --------------------------------------------------------------------------------------------------------------
# arrays


def check_array(
    name: str,
    x: ArrayLike,
    *,
    lower: float | None = None,
    upper: float | None = None,
    allow_equal: bool = False,
    allow_inf: bool = False,
    allow_nan: bool = False,
    shape: tuple[int, ...] | None = None,
) -> np.ndarray:
    """Return ``x`` as a float64 ndarray after checking its type, shape and that every entry is in range.

    Parameters
    ----------
    name : str
        Argument name used in the message.
    x : array_like
        Real numbers: integer or float dtype (or objects that convert to float).
    lower, upper, allow_equal, allow_inf
        The range, as in :func:`check_scalar`; by default any finite number.
    allow_nan : bool
        Admit NaN. With ``allow_inf`` and no bounds this checks only the dtype and shape (no pass over the data),
        for callers that check the values later in their own loop.
    shape : tuple of int, optional
        Required shape.

    Returns
    -------
    ndarray, float64
        A new array only when ``x`` was not float64 already (no copy otherwise).

    Raises
    ------
    ArgumentTypeError
        Boolean, complex, string or other non-real dtype.
    ValueError
        Wrong shape, or an entry NaN or outside the range.
    """
    arr = np.asarray(x)
    if arr.dtype.kind == "O":  # e.g. a list mixing ints and Fractions: each entry must be a real number
        if not all(isinstance(e, numbers.Real) and not isinstance(e, (bool, np.bool_)) for e in arr.flat):
            raise ArgumentTypeError(f"{name} must hold real numbers, got an object array with other entries")
        arr = arr.astype(np.float64)
    if arr.dtype.kind not in _REAL_KINDS:
        raise ArgumentTypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if shape is not None and arr.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {arr.shape}")
    arr = arr.astype(np.float64, copy=False)
    if allow_nan and allow_inf and lower is None and upper is None:
        return arr
    ok = _in_range(arr, lower, upper, allow_equal=allow_equal, allow_inf=allow_inf, allow_nan=allow_nan)
    if not ok.all():
        text = _interval_text(lower, upper, allow_equal=allow_equal, allow_inf=allow_inf)
        bad = arr[~ok]
        raise ValueError(
            f"{name} must be in {text} everywhere; {bad.size} of {arr.size} entries are not, e.g. {float(bad[0])}"
        )
    return arr


def check_ou_stable(eta: ArrayLike, sigma2: ArrayLike, names: tuple[str, str] = ("lr", "lr_sgd / batch_size")) -> None:
    """Require the OU decay factor ``1 - eta**2 / (2 sigma2)`` (Eq. 14) to lie in (0, 1], elementwise.

    Beyond that the discretised OU process of Eq. 14 oscillates in sign and the prior of Eq. 17b no longer
    describes a slowly drifting optimum. ``sigma2 = inf`` (a random walk) always passes.

    Raises
    ------
    ValueError
        Where ``eta**2 >= 2 sigma2``; the message names both arguments and the first offending pair.
    """
    eta_arr, sigma2_arr = np.broadcast_arrays(np.asarray(eta, dtype=np.float64), np.asarray(sigma2, dtype=np.float64))
    unstable = ~np.isinf(sigma2_arr) & (eta_arr * eta_arr >= 2.0 * sigma2_arr)
    if unstable.any():
        first = np.flatnonzero(unstable)[0]
        e, s = float(eta_arr.flat[first]), float(sigma2_arr.flat[first])
        raise ValueError(
            f"{names[0]} and {names[1]} must satisfy {names[0]}**2 < 2 * sigma2 (OU decay factor of Eq. 14 in "
            f"(0, 1]); got {names[0]}={e!r}, sigma2={s!r}"
        )
