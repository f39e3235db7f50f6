"""Kalman filter for an n-dimensional optimal weight w* with a full covariance (small n).

The matrix form of the scalar filters of :mod:`filtering.state_space`, with the same interface: predict with
Eq. 17 and update with Eqs. 18a and 41, each through the matrix-form primitives of :mod:`filtering.kalman_step`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from . import kalman_step as ks
from .ou import broadcast_transition
from .validation import check_array

__all__ = ["JointKalmanResult", "joint_kalman_filter"]


@dataclass(frozen=True)
class JointKalmanResult:
    """Moments of the joint filter; means have shape (T, n), covariances (T, n, n)."""

    mean_prior: np.ndarray
    cov_prior: np.ndarray
    mean_post: np.ndarray
    cov_post: np.ndarray


def _square(name: str, value: ArrayLike | None, default: np.ndarray) -> np.ndarray:
    n = default.shape[0]
    if value is None:
        return default
    mat = check_array(name, value)
    if mat.shape != (n, n):
        raise ValueError(f"{name} must have shape ({n}, {n}), got {mat.shape}")
    return mat


def _initial_covariance(var0: ArrayLike | None, sigma2: np.ndarray) -> np.ndarray:
    n = sigma2.shape[0]
    if var0 is None:
        cov = np.diag(sigma2)
    else:
        v0 = check_array("var0", var0)
        if v0.ndim == 2 and v0.shape != (n, n):
            raise ValueError(f"var0 must have shape ({n},) or ({n}, {n}), got {v0.shape}")
        cov = v0.copy() if v0.ndim == 2 else np.diag(np.broadcast_to(v0, (n,)))
    if not np.isfinite(cov).all():
        raise ValueError("the joint filter needs a finite initial covariance: pass a finite var0 when sigma2 = inf")
    return cov


def joint_kalman_filter(
    g: ArrayLike,
    h: ArrayLike,
    eta: ArrayLike,
    sigma2: ArrayLike,
    *,
    mu: ArrayLike | None = None,
    mean0: ArrayLike | None = None,
    var0: ArrayLike | None = None,
    predict: str = "paper",
    transition_matrix: ArrayLike | None = None,
    process_noise: ArrayLike | None = None,
) -> JointKalmanResult:
    """Kalman filter for an n-dimensional w* with full covariance (small n), same interface as the scalar one.

    Model: ``w*(t+1) = A w*(t) + N(0, Q)``; ``g(t) ~ N(H(t) (w*(t) - μ(t)), H(t))`` (Eq. 12 with the full
    Hessian, as Eqs. 6-8 give for a summed quadratic objective). Each step: ``μ_prior = A μ_post`` (Eq. 17a),
    ``Σ_prior = A Σ_post Aᵀ + Q`` (Eq. 17b), ``Σ_post = (I + Σ_prior H)⁻¹ Σ_prior`` (Eq. 18a; no inverse of H,
    which may be singular) and ``μ_post = μ_prior + Σ_post (g + H (μ - μ_prior))`` (Eq. 41).

    Parameters
    ----------
    g : array_like, shape (T, n)
    h : array_like, shape (n, n) or (T, n, n)
        Symmetric positive semi-definite curvature matrices.
    eta, sigma2 : array_like, scalar or shape (n,)
        Per-coordinate OU parameters giving the default diagonal ``A`` and ``Q`` (Eq. 14), and the default
        ``var0``; η² < 2σ² (a stable OU step) unless ``transition_matrix`` is given.
    mu : array_like, shape (n,) or (T, n), optional
        Evaluation points; ``None`` = the filter's own μ_prior.
    mean0 : array_like, shape (n,), optional
        Default zeros.
    var0 : array_like, shape (n,) or (n, n), optional
        Default ``diag(σ²)``.
    predict : {"paper", "exponential"}
    transition_matrix, process_noise : array_like, shape (n, n), optional
        Override A (need not be symmetric) and Q.

    Returns
    -------
    JointKalmanResult
    """
    g = check_array("g", g)
    if g.ndim != 2:
        raise ValueError(f"g must have shape (T, n), got {g.shape}")
    steps, n = g.shape
    h = check_array("h", h)
    if h.shape not in ((n, n), (steps, n, n)):
        raise ValueError(f"h must have shape ({n}, {n}) or ({steps}, {n}, {n}), got {h.shape}")
    h_t = np.broadcast_to(h, (steps, n, n))
    # the OU decay a must be stable only where it is used: a transition_matrix of the caller's replaces it
    a, q, sigma2_b = broadcast_transition(eta, sigma2, (n,), predict, check_stable=transition_matrix is None)
    a_mat = _square("transition_matrix", transition_matrix, np.diag(a))
    q_mat = _square("process_noise", process_noise, np.diag(q))
    m = np.array(np.broadcast_to(np.zeros(n) if mean0 is None else check_array("mean0", mean0), (n,)))
    cov = _initial_covariance(var0, sigma2_b)
    mu_t = None if mu is None else np.broadcast_to(check_array("mu", mu), (steps, n))
    means, covs = np.empty((2, steps, n)), np.empty((2, steps, n, n))
    out = JointKalmanResult(means[0], covs[0], means[1], covs[1])
    for t in range(steps):
        m_prior = ks.predict_mean_vector(m, a_mat)  # Eq. 17a
        cov_prior = ks.predict_covariance(cov, a_mat, q_mat)  # Eq. 17b
        cov = ks.update_covariance(cov_prior, h_t[t])  # Eq. 18a
        innovation = g[t] if mu_t is None else g[t] + h_t[t] @ (mu_t[t] - m_prior)  # Eq. 41
        m = ks.update_mean_vector(m_prior, cov, innovation)  # Eqs. 18b, 41
        out.mean_prior[t], out.cov_prior[t], out.mean_post[t], out.cov_post[t] = m_prior, cov_prior, m, cov
    return out
