"""The one place where a step of the Kalman filter is written: predict (Eq. 17) and update (Eqs. 18, 41).

Every filter and rule in the project (the NumPy reference, the numba kernel and the joint filter of
:mod:`filtering.state_space`, :func:`filtering.rules.adabayes` and :func:`filtering.rules.fading_memory`, the torch
kernels) computes its variance and mean through these functions, or keeps an inlined copy for speed that a test
compares with them.

The scalar functions use arithmetic operators only, so the same code runs on Python floats, NumPy arrays
(broadcasting), torch tensors and inside numba kernels (the numba kernel compiles them with
``numba.njit(inline="always")``). The matrix-form functions (``*_vector``, ``*_covariance``) are the same
equations for an n-dimensional latent with a full covariance, on NumPy arrays. None of them mutates its inputs.

Notation: ``factor`` and ``noise`` are the coefficients of the variance prediction
``σ²_prior = factor σ²_post + noise`` (Eq. 17b; ``factor = a²`` and ``noise = q`` of the OU step of Eq. 14, see
:func:`filtering.ou.variance_predict_coefficients`); ``h`` is the curvature H_ii, or its estimate g² (Eq. 42).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "precision_step",
    "predict_covariance",
    "predict_mean",
    "predict_mean_vector",
    "predict_variance",
    "pseudo_innovation",
    "update_covariance",
    "update_mean",
    "update_mean_vector",
    "update_precision",
    "update_variance",
]

# float, ndarray or Tensor: each function returns what arithmetic on its inputs returns (no common static type)
X = Any


def predict_mean(mean_post: X, a: X) -> X:
    """Eq. 17a: ``μ_prior(t) = a μ_post(t-1)`` (``a = 1 - η²/(2σ²)``; Eq. 19a replaces ``1 - a`` by λ).

    Parameters
    ----------
    mean_post : float, ndarray or Tensor, shape (...)
        Posterior mean after the previous step.
    a : float or array, broadcastable to ``mean_post``
        OU transition factor of Eq. 14.
    """
    return a * mean_post  # Eq. 17a


def predict_variance(var_post: X, factor: X, noise: X) -> X:
    """Eq. 17b: ``σ²_prior(t) = factor σ²_post(t-1) + noise`` (paper: ``factor = (1 - η²/(2σ²))²``, ``noise = η²``).

    Parameters
    ----------
    var_post : float, ndarray or Tensor, shape (...)
        Posterior variance after the previous step; ``inf`` is allowed (σ² = ∞ before the first step).
    factor, noise : float or array, broadcastable to ``var_post``
    """
    return factor * var_post + noise  # Eq. 17b


def update_variance(var_prior: X, h: X) -> X:
    """Eq. 18a: ``σ²_post = 1 / (1/σ²_prior + h)``: precisions add (Eqs. 37-38; Alg. 1 uses ``h = g²``, Eq. 42).

    This form also holds for ``σ²_prior = inf`` (gives ``1/h``) and for ``h = inf`` (gives 0). For ``h = 0`` and
    ``σ²_prior = inf`` it divides by zero and returns inf (NumPy warns unless the caller silences it).

    Parameters
    ----------
    var_prior : float, ndarray or Tensor, shape (...)
    h : float or array, broadcastable to ``var_prior``
        Curvature H_ii >= 0, or the squared gradient g² that approximates it.
    """
    return 1.0 / (1.0 / var_prior + h)  # Eq. 18a


def update_precision(precision_prior: X, h: X) -> X:
    """Eq. 18a on precisions: ``1/σ²_post = 1/σ²_prior + h`` (Eqs. 37-38; Eq. 30 for the fading-memory filter).

    Parameters
    ----------
    precision_prior : float, ndarray or Tensor, shape (...)
        Prior precision ``1/σ²_prior >= 0``.
    h : float or array, broadcastable to ``precision_prior``
        Curvature H_ii >= 0, or g².
    """
    return precision_prior + h  # Eq. 18a (precision form)


def pseudo_innovation(y: X, h: X, mean_prior: X) -> X:
    """Eq. 41's innovation from a pseudo-observation ``y = g + h μ``: ``y - h μ_prior = g + h (μ - μ_prior)``.

    Filters that read gradients taken at fixed points μ add ``h μ`` once, so the innovation does not depend on
    where each gradient was evaluated (see :mod:`filtering.state_space`).
    """
    return y - h * mean_prior  # Eq. 41


def update_mean(mean_prior: X, var_post: X, innovation: X) -> X:
    """Eqs. 18b / 41: ``μ_post = μ_prior + σ²_post · innovation``.

    ``innovation`` is the gradient g itself when it was evaluated at μ_prior (the paper's setting), or
    ``g + h (μ - μ_prior)`` for a gradient taken at another point μ. Alg. 1 (Eq. 19b) passes the momentum ⟨g⟩.
    """
    return mean_prior + var_post * innovation  # Eqs. 18b, 41


def precision_step(precision: X, factor: X, noise: X, g2: X) -> X:
    """Alg. 1's precision recursion, Eqs. 17b and 18a composed: ``λ(t) = 1 / (factor/λ(t-1) + noise) + g²(t)``.

    The same map as ``1 / update_variance(predict_variance(1/λ, factor, noise), g2)`` (Eq. 44 before its Taylor
    step), written on precisions ``λ = 1/σ²_post`` as Appendix D does. ``λ = 0`` (σ²_post = inf) is allowed.
    """
    return 1.0 / (factor / precision + noise) + g2  # Eqs. 17b, 18a (Eq. 44 without the approximation)


# --------------------------------------------------------------------------------------------------------------
# matrix form: an n-dimensional latent with full covariance (NumPy; shapes (n,) and (n, n))


def predict_mean_vector(mean_post: np.ndarray, transition: np.ndarray) -> np.ndarray:
    """Eq. 17a in matrix form: ``μ_prior = A μ_post``.

    Parameters
    ----------
    mean_post : ndarray, shape (n,)
    transition : ndarray, shape (n, n)
        The transition matrix A (``diag(a)`` for independent OU coordinates, Eq. 14).
    """
    return transition @ mean_post  # Eq. 17a (matrix form)


def predict_covariance(cov_post: np.ndarray, transition: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """Eq. 17b in matrix form: ``Σ_prior = A Σ_post Aᵀ + Q``.

    Parameters
    ----------
    cov_post : ndarray, shape (n, n)
    transition : ndarray, shape (n, n)
        A; need not be symmetric.
    noise : ndarray, shape (n, n)
        Process-noise covariance Q.
    """
    return transition @ cov_post @ transition.T + noise  # Eq. 17b (matrix form)


def update_covariance(cov_prior: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Eq. 18a in matrix form: ``Σ_post = (Σ_prior⁻¹ + H)⁻¹ = (I + Σ_prior H)⁻¹ Σ_prior``, symmetrised.

    The second form needs no inverse of H (H may be singular) nor of Σ_prior. The result is replaced by
    ``(Σ + Σᵀ) / 2`` so that rounding does not accumulate an antisymmetric part over many steps.

    Parameters
    ----------
    cov_prior : ndarray, shape (n, n)
    h : ndarray, shape (n, n)
        Symmetric positive semi-definite curvature (Hessian) H.
    """
    cov = np.linalg.solve(np.eye(cov_prior.shape[0]) + cov_prior @ h, cov_prior)  # Eq. 18a (matrix form)
    return 0.5 * (cov + cov.T)


def update_mean_vector(mean_prior: np.ndarray, cov_post: np.ndarray, innovation: np.ndarray) -> np.ndarray:
    """Eqs. 18b / 41 in matrix form: ``μ_post = μ_prior + Σ_post · innovation``, shapes (n,), (n, n), (n,)."""
    return mean_prior + cov_post @ innovation  # Eqs. 18b, 41 (matrix form)
