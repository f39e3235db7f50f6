"""The one place where a step of the scalar Kalman filter is written: predict (Eq. 17) and update (Eqs. 18, 41).

Every filter and rule in the project (the NumPy reference and the numba kernel in :mod:`filtering.state_space`,
:func:`filtering.rules.adabayes`, the torch kernels, :mod:`filtering.stochastic`) computes its variance and mean
through these functions, or keeps an inlined copy for speed that a test compares with them.

The functions use arithmetic operators only, so the same code runs on Python floats, NumPy arrays (broadcasting),
torch tensors and inside numba kernels (``numba.njit`` compiles them as they are). They never mutate their inputs.

Notation: ``factor`` and ``noise`` are the coefficients of the variance prediction
``σ²_prior = factor σ²_post + noise`` (Eq. 17b; ``factor = a²`` and ``noise = q`` of the OU step of Eq. 14, see
:func:`filtering.ou.variance_predict_coefficients`); ``h`` is the curvature H_ii, or its estimate g² (Eq. 42).
"""

from __future__ import annotations

from typing import Any

__all__ = ["precision_step", "predict_mean", "predict_variance", "update_mean", "update_variance"]

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
