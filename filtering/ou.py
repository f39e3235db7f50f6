"""Coefficients of the discretised Ornstein-Uhlenbeck prior on the optimal weight w*.

The paper's OU step (Eq. 14) is ``w*(t+1) = a w*(t) + N(0, eta**2)`` with ``a = 1 - eta**2 / (2 sigma2)``,
so the variance prediction (Eq. 17b) is ``sigma2_prior = a**2 sigma2_post + eta**2``.
The author's public code uses the exact exponential discretisation instead: factor ``exp(-eta**2 / sigma2)``
and noise ``sigma2 (1 - exp(-eta**2 / sigma2))``, which keeps the stationary variance at exactly ``sigma2``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from .validation import check_array, check_ou_stable, check_predict

__all__ = ["broadcast_transition", "stationary_variance", "transition", "variance_predict_coefficients"]


def transition(eta: ArrayLike, sigma2: ArrayLike, predict: str = "paper") -> tuple[np.ndarray, np.ndarray]:
    """Return ``(a, q)``: the OU step ``w*(t+1) = a w*(t) + N(0, q)`` of Eq. 14 for the chosen discretisation.

    ``"paper"``: ``a = 1 - eta**2/(2 sigma2)`` and ``q = eta**2`` (Eq. 14). ``"exponential"``:
    ``a = exp(-eta**2/(2 sigma2))`` and ``q = sigma2 (1 - exp(-eta**2/sigma2))``. ``sigma2 = inf`` gives
    ``(1, eta**2)`` (a random walk). Broadcasts over arrays; scalars in give NumPy scalars out.
    """
    check_predict(predict)
    eta = np.asarray(eta, dtype=np.float64)
    sigma2 = np.asarray(sigma2, dtype=np.float64)
    ratio = eta**2 / sigma2
    if predict == "paper":
        a, q = 1.0 - 0.5 * ratio, np.broadcast_to(eta**2, ratio.shape).copy()  # Eq. 14
    else:
        with np.errstate(invalid="ignore"):
            q = np.where(np.isinf(sigma2), eta**2, -sigma2 * np.expm1(-ratio))
        a = np.exp(-0.5 * ratio)
    return a[()], q[()]


def broadcast_transition(
    eta: ArrayLike, sigma2: ArrayLike, shape: tuple[int, ...], predict: str = "paper", *, check_stable: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validated per-parameter OU coefficients ``(a, q, sigma2)``, each a new float64 array of shape ``shape``.

    The filters' entry point to :func:`transition`: ``eta`` must be finite and > 0, ``sigma2`` in (0, inf], both
    broadcastable to ``shape``, and with ``predict="paper"`` the OU step must be stable (η² < 2σ², Eq. 14) unless
    ``check_stable=False`` (for a caller that replaces ``a`` by its own transition). ``predict`` is checked by
    :func:`transition`.

    Raises
    ------
    ArgumentTypeError
        ``eta`` or ``sigma2`` is not real (bool, complex, str), or ``predict`` is not a string.
    ValueError
        A value out of range, an unstable OU step, or an unknown ``predict``.
    """
    eta_b = np.broadcast_to(check_array("eta", eta, lower=0.0), shape)
    sigma2_b = np.broadcast_to(check_array("sigma2", sigma2, lower=0.0, allow_inf=True), shape)
    if check_stable and predict == "paper":
        check_ou_stable(eta_b, sigma2_b, names=("eta", "sigma2"))
    a, q = transition(eta_b, sigma2_b, predict)
    return np.array(a), np.array(q), np.array(sigma2_b)


def variance_predict_coefficients(eta: float, sigma2: float, predict: str = "paper") -> tuple[float, float]:
    """Return ``(factor, noise)`` such that ``sigma2_prior = factor * sigma2_post + noise``.

    Parameters
    ----------
    eta : float
        OU process-noise standard deviation η (= ``lr``).
    sigma2 : float
        Prior variance σ² (= ``lr_sgd / batch_size``, Eq. 23); ``inf`` gives factor 1 and noise η².
    predict : {"paper", "exponential"}
        ``"paper"``: Eq. 17b, factor ``(1 - eta**2/(2 sigma2))**2`` and noise ``eta**2``.
        ``"exponential"``: factor ``exp(-eta**2/sigma2)`` and noise ``sigma2 (1 - exp(-eta**2/sigma2))``.

    Returns
    -------
    factor, noise : float
    """
    a, noise = transition(eta, sigma2, predict)
    return float(a * a), float(noise)  # Eq. 17b


def stationary_variance(eta: ArrayLike, sigma2: ArrayLike, predict: str = "paper") -> np.ndarray:
    """Stationary variance of the OU process of Eq. 14: ``noise / (1 - factor)``.

    For the paper's discretisation this is ``sigma2 / (1 - eta**2 / (4 sigma2))``, slightly above σ²;
    for the exponential one it is exactly σ².
    """
    check_predict(predict)
    eta = np.asarray(eta, dtype=np.float64)
    sigma2 = np.asarray(sigma2, dtype=np.float64)
    if predict == "exponential":
        return np.array(sigma2, dtype=np.float64)
    # noise / (1 - a**2) with 1 - a**2 = (eta**2 / sigma2) (1 - eta**2 / (4 sigma2))
    return sigma2 / (1.0 - eta**2 / (4.0 * sigma2))
