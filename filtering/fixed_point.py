"""Fixed points of the learning rate σ²_post: Eq. 21, the exact fixed point, limits and validity range.

All functions broadcast over NumPy arrays and return float64. ``g2`` is the mean squared gradient ⟨g²⟩
of the *summed* minibatch objective, ``eta`` the OU process-noise s.d. η and ``sigma2`` the prior variance σ².

The exact fixed point solves Alg. 1's precision recursion with g² replaced by ⟨g²⟩,

    λ = 1 / (f / λ + q) + ⟨g²⟩,            (Eqs. 17b + 18a, f and q from :mod:`filtering.ou`)

which rearranges to ``q λ² - c λ - f ⟨g²⟩ = 0`` with ``c = 1 - f + q ⟨g²⟩ >= 0`` (f <= 1 for a stable OU
step, which is checked); the positive root is ``λ = (c + sqrt(c² + 4 q f ⟨g²⟩)) / (2 q)``, a sum of non-negative
terms (no cancellation).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import brentq

from .ou import variance_predict_coefficients
from .validation import check_array, check_ou_stable, check_positive

__all__ = [
    "adam_limit",
    "approx_precision",
    "eq21_relative_error",
    "eq21_validity_range",
    "exact_precision",
    "fading_memory_process_noise",
    "fading_memory_variance",
    "sgd_limit",
]


def _g2(g2: ArrayLike) -> np.ndarray:
    return check_array("g2", g2, lower=0.0, allow_equal=True)


def _eta(eta: ArrayLike) -> np.ndarray:
    return check_array("eta", eta, lower=0.0)


def _sigma2(sigma2: ArrayLike) -> np.ndarray:
    return check_array("sigma2", sigma2, lower=0.0, allow_inf=True)


def _forget(forget: ArrayLike) -> np.ndarray:
    return check_array("forget", forget, lower=0.0, upper=1.0)


def approx_precision(g2: ArrayLike, eta: ArrayLike, sigma2: ArrayLike) -> np.ndarray:
    """Eq. 21: ``1/σ²_post ≈ (1/(2σ²)) (1 + sqrt(1 + 4 (σ² sqrt(⟨g²⟩)/η)²))``.

    Written as ``1/(2σ²) + sqrt(1/(4σ⁴) + ⟨g²⟩/η²)`` (the precision of Alg. 2, line 11), which is finite
    for ``sigma2 = inf`` and gives Eq. 27 there.

    Parameters
    ----------
    g2 : array_like, shape (...)
        Mean squared gradient ⟨g²⟩ >= 0.
    eta, sigma2 : array_like, broadcastable to ``g2``
        η > 0 and σ² in (0, inf].

    Returns
    -------
    ndarray, shape (...)
        The approximate fixed-point precision 1/σ²_post.
    """
    g2, eta, sigma2 = _g2(g2), _eta(eta), _sigma2(sigma2)
    half_prior_precision = 0.5 / sigma2
    return half_prior_precision + np.hypot(half_prior_precision, np.sqrt(g2) / eta)  # Eq. 21 (hypot: no overflow)


def exact_precision(g2: ArrayLike, eta: float, sigma2: float, predict: str = "paper") -> np.ndarray:
    """Exact fixed point of Alg. 1's precision recursion (Eqs. 17b, 18a) with g² -> ⟨g²⟩, no Taylor step.

    Parameters
    ----------
    g2 : array_like, shape (...)
        Mean squared gradient ⟨g²⟩ >= 0.
    eta : float
        η > 0.
    sigma2 : float
        σ² in (0, inf].
    predict : {"paper", "exponential"}
        Which variance prediction the recursion uses (see :func:`filtering.ou.variance_predict_coefficients`).

    Returns
    -------
    ndarray, shape (...)
        The fixed-point precision λ = 1/σ²_post.
    """
    check_positive("eta", eta)
    check_positive("sigma2", sigma2, allow_inf=True)
    if predict == "paper":
        check_ou_stable(eta, sigma2, names=("eta", "sigma2"))  # else the root below is not the fixed point
    g2 = _g2(g2)
    factor, noise = variance_predict_coefficients(eta, sigma2, predict)
    # 1 - factor computed without cancellation
    if math.isinf(sigma2):
        one_minus_factor = 0.0
    elif predict == "paper":
        r = eta * eta / sigma2
        one_minus_factor = r * (1.0 - r / 4.0)
    else:
        one_minus_factor = -math.expm1(-eta * eta / sigma2)
    c = one_minus_factor + noise * g2
    return (c + np.hypot(c, 2.0 * np.sqrt(noise * factor * g2))) / (2.0 * noise)


def sgd_limit(sigma2: ArrayLike) -> np.ndarray:
    """Eq. 22: ``σ²_post -> σ²`` as ⟨g²⟩ -> 0 (the SGD learning rate η_SGD / B of Eq. 23)."""
    return _sigma2(sigma2)


def adam_limit(g2: ArrayLike, eta: ArrayLike) -> np.ndarray:
    """Eq. 24 (and Eq. 27 for σ² -> inf): ``σ²_post -> η / sqrt(⟨g²⟩)``, the Adam learning rate."""
    g2, eta = _g2(g2), _eta(eta)
    with np.errstate(divide="ignore"):
        return eta / np.sqrt(g2)


def fading_memory_variance(g2: ArrayLike, forget: ArrayLike) -> np.ndarray:
    """Eq. 31: fixed point ``σ²_post = λ / ⟨g²⟩`` of the fading-memory recursion of Eq. 30.

    ``forget`` is Ollivier's forgetting factor λ in (0, 1). The fixed point of Eq. 30 with g² -> ⟨g²⟩ is
    exact here: ``1/σ²_post = (1 - λ)/σ²_post + ⟨g²⟩`` has the single solution ``λ / ⟨g²⟩``.
    """
    forget = _forget(forget)
    with np.errstate(divide="ignore"):
        return forget / _g2(g2)


def fading_memory_process_noise(var_post: ArrayLike, forget: ArrayLike) -> np.ndarray:
    """Process noise equivalent to a forgetting factor (the correct form of Eq. 29).

    Eq. 28 gives ``σ²_prior = σ²_post / (1 - λ)``, i.e. ``σ²_prior = σ²_post + Q`` with
    ``Q = λ / (1 - λ) σ²_post`` -- a *variance* (the paper prints it as η rather than η²).

    Parameters
    ----------
    var_post : array_like, shape (...)
        σ²_post in [0, inf].
    forget : array_like, broadcastable to ``var_post``
        Forgetting factor λ in (0, 1) (at λ = 1 the prior forgets everything and Q is infinite).
    """
    forget = _forget(forget)
    var_post = check_array("var_post", var_post, lower=0.0, allow_equal=True, allow_inf=True)
    return forget / (1.0 - forget) * var_post  # Eq. 29 (as a variance)


def eq21_relative_error(g2: ArrayLike, eta: float, sigma2: float, predict: str = "paper") -> np.ndarray:
    """Relative error of Eq. 21's learning rate against the exact one: ``σ²_21 / σ²_exact - 1``.

    Equal to ``exact_precision / approx_precision - 1`` (the learning rate is the inverse precision).
    """
    return exact_precision(g2, eta, sigma2, predict) / approx_precision(g2, eta, sigma2) - 1.0


def eq21_validity_range(
    eta: float,
    sigma2: float,
    rtol: float,
    predict: str = "paper",
    g2_bounds: tuple[float, float] = (1e-300, 1e300),
) -> tuple[float, float] | None:
    """Range of ⟨g²⟩ on which Eq. 21 is within ``rtol`` (relative) of the exact fixed point.

    The relative error ``|σ²_21 / σ²_exact - 1|`` starts at ``≈ η²/(4σ²)`` for ⟨g²⟩ -> 0 (paper predict) and
    grows like ``η sqrt(⟨g²⟩) / 2`` once η² ⟨g²⟩ is no longer small, where the exact learning rate bends
    from the Adam line η/sqrt(⟨g²⟩) towards the single-observation value 1/⟨g²⟩. The error is scanned on a
    log grid and each crossing of ``rtol`` is refined with Brent's method.

    Parameters
    ----------
    eta, sigma2 : float
        η > 0, σ² in (0, inf].
    rtol : float
        Relative tolerance > 0.
    predict : {"paper", "exponential"}
    g2_bounds : (float, float)
        Search interval for ⟨g²⟩.

    Returns
    -------
    (g2_low, g2_high) or None
        The interval, with ``g2_low = g2_bounds[0]`` when Eq. 21 already holds as ⟨g²⟩ -> 0;
        ``None`` if Eq. 21 is nowhere within ``rtol``.
    """
    check_positive("rtol", rtol)  # eta, sigma2 and predict are checked by exact_precision at the first ⟨g²⟩
    lo, hi = g2_bounds
    if not 0.0 < lo < hi:
        raise ValueError(f"g2_bounds must satisfy 0 < low < high, got {g2_bounds!r}")

    def excess(log_g2: float) -> float:
        return float(abs(eq21_relative_error(10.0**log_g2, eta, sigma2, predict)) - rtol)

    grid = np.linspace(math.log10(lo), math.log10(hi), 2001)
    inside = np.array([excess(x) <= 0.0 for x in grid])
    if not inside.any():
        return None
    idx = np.flatnonzero(inside)
    first, last = idx[0], idx[-1]
    low = lo if first == 0 else 10.0 ** brentq(excess, grid[first - 1], grid[first], xtol=1e-12)
    high = hi if last == len(grid) - 1 else 10.0 ** brentq(excess, grid[last], grid[last + 1], xtol=1e-12)
    return low, high
