"""Rauch-Tung-Striebel smoothers for the paper's state-space model: w*(t) given the *whole* gradient stream.

The filters of :mod:`filtering.state_space` and :mod:`filtering.likelihood` give the posterior of w*(t) given the
gradients up to t (Eq. 16b). The backward pass turns it into the posterior given all T gradients:

    J(t)      = σ²_post(t) a / σ²_prior(t+1)                                (smoother gain)
    μ_s(t)    = μ_post(t) + J(t) (μ_s(t+1) - μ_prior(t+1))
    σ²_s(t)   = σ²_post(t) + J(t)² (σ²_s(t+1) - σ²_prior(t+1))
    Cov(w*(t+1), w*(t) | all) = J(t) σ²_s(t+1)

with μ_prior, σ²_prior from Eq. 17 (:attr:`~filtering.state_space.KalmanResult.mean_prior`,
``var_prior``) and the last step ``μ_s(T-1) = μ_post(T-1)``. The joint version is the matrix form with
``J = Σ_post Aᵀ Σ_prior(t+1)⁻¹``. Neither depends on the observation model, so the same smoother serves the
paper's r = 1 and a fitted observation-noise scale. The pass also smooths the t = -1 state the filter started
from (needed by EM, :mod:`filtering.estimation`), except for a diffuse start (``var0 = inf``), where it is NaN.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
from numpy.typing import ArrayLike

from .joint_filter import JointKalmanResult
from .state_space import KalmanResult

__all__ = ["JointSmoothedResult", "SmoothedResult", "joint_rts_smoother", "rts_smoother"]


@dataclass(frozen=True)
class SmoothedResult:
    """Smoothed moments of independent scalar latents.

    Attributes
    ----------
    mean, var : ndarray, shape (T, ...)
        E[w*(t) | all gradients] and Var[w*(t) | all gradients].
    lag_cov : ndarray, shape (T, ...)
        Cov(w*(t), w*(t-1) | all); entry 0 pairs w*(0) with the t = -1 state.
    mean_initial, var_initial : ndarray, shape (...)
        Smoothed moments of the t = -1 state (NaN for a diffuse start).
    """

    mean: np.ndarray
    var: np.ndarray
    lag_cov: np.ndarray
    mean_initial: np.ndarray
    var_initial: np.ndarray


@dataclass(frozen=True)
class JointSmoothedResult:
    """Smoothed moments of an n-dimensional latent: ``mean`` (T, n), ``cov`` (T, n, n), ``lag_cov`` (T, n, n)
    with ``lag_cov[t] = Cov(w*(t), w*(t-1) | all)`` (entry 0 pairs with the t = -1 state)."""

    mean: np.ndarray
    cov: np.ndarray
    lag_cov: np.ndarray


def rts_smoother(filtered: KalmanResult) -> SmoothedResult:
    """RTS smoother for N independent scalar filters, vectorised over parameters.

    Parameters
    ----------
    filtered : KalmanResult
        Output of :func:`filtering.state_space.kalman_filter` or of
        :func:`filtering.likelihood.kalman_loglik` / ``ar1_loglik`` with ``keep`` (float32 moments are
        smoothed in float64).

    Returns
    -------
    SmoothedResult
    """
    m_post = np.asarray(filtered.mean_post, dtype=np.float64)
    v_post = np.asarray(filtered.var_post, dtype=np.float64)
    a = np.asarray(filtered.a, dtype=np.float64)
    m_prior, v_prior = _prior_moments(filtered, m_post, v_post)
    steps = m_post.shape[0]
    shape = m_post.shape[1:]
    flat = (steps, int(np.prod(shape, dtype=np.int64)))
    mean, var, lag = np.empty(m_post.shape), np.empty(m_post.shape), np.empty(m_post.shape)
    mp, vp, mpr, vpr = (np.ascontiguousarray(x).reshape(flat) for x in (m_post, v_post, m_prior, v_prior))
    a_flat = np.ascontiguousarray(np.broadcast_to(a, shape)).reshape(flat[1])
    _backward(mp, vp, mpr, vpr, a_flat, mean.reshape(flat), var.reshape(flat), lag.reshape(flat))
    var0 = np.asarray(filtered.var0, dtype=np.float64)
    mean0 = np.asarray(filtered.mean0, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        gain0 = np.where(np.isinf(var0), np.nan, var0 * a / v_prior[0])
        mean_initial = mean0 + gain0 * (mean[0] - m_prior[0])
        var_initial = var0 + gain0 * gain0 * (var[0] - v_prior[0])
    lag[0] = gain0 * var[0]
    return SmoothedResult(mean, var, lag, np.asarray(mean_initial), np.asarray(var_initial))


@numba.njit(cache=True)
def _backward(m_post, v_post, m_prior, v_prior, a, mean, var, lag):  # pragma: no cover
    """The backward recursion over time, vectorised over parameters (rows are time steps)."""
    steps = m_post.shape[0]
    mean[steps - 1] = m_post[steps - 1]
    var[steps - 1] = v_post[steps - 1]
    for t in range(steps - 2, -1, -1):
        for j in range(m_post.shape[1]):
            gain = v_post[t, j] * a[j] / v_prior[t + 1, j]  # J(t)
            mean[t, j] = m_post[t, j] + gain * (mean[t + 1, j] - m_prior[t + 1, j])
            var[t, j] = v_post[t, j] + gain * gain * (var[t + 1, j] - v_prior[t + 1, j])
            lag[t + 1, j] = gain * var[t + 1, j]


def _prior_moments(filtered: KalmanResult, m_post: np.ndarray, v_post: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """μ_prior and σ²_prior of every step (Eq. 17) in float64."""
    a = np.asarray(filtered.a, dtype=np.float64)
    q = np.asarray(filtered.q, dtype=np.float64)
    m_prev = np.concatenate([np.asarray(filtered.mean0, dtype=np.float64)[None], m_post[:-1]])
    v_prev = np.concatenate([np.asarray(filtered.var0, dtype=np.float64)[None], v_post[:-1]])
    return a * m_prev, a * a * v_prev + q  # Eqs. 17a, 17b


def joint_rts_smoother(
    filtered: JointKalmanResult, transition_matrix: ArrayLike, *, cov0: ArrayLike | None = None
) -> JointSmoothedResult:
    """RTS smoother for the joint full-covariance filter (matrix form of the scalar recursion).

    Parameters
    ----------
    filtered : JointKalmanResult
        Output of :func:`filtering.state_space.joint_kalman_filter`.
    transition_matrix : array_like, shape (n, n)
        The A the filter predicted with (``diag(a)`` for its default OU dynamics, see
        :func:`filtering.ou.transition`).
    cov0 : array_like, shape (n, n), optional
        The filter's t = -1 covariance; with it, ``lag_cov[0]`` is filled (NaN otherwise).

    Returns
    -------
    JointSmoothedResult
    """
    a_mat = np.asarray(transition_matrix, dtype=np.float64)
    m_post, c_post = filtered.mean_post, filtered.cov_post
    steps, n = m_post.shape
    if a_mat.shape != (n, n):
        raise ValueError(f"transition_matrix must have shape ({n}, {n}), got {a_mat.shape}")
    mean, cov, lag = np.empty_like(m_post), np.empty_like(c_post), np.full_like(c_post, np.nan)
    mean[-1], cov[-1] = m_post[-1], c_post[-1]
    for t in range(steps - 2, -1, -1):
        # J = Σ_post Aᵀ Σ_prior(t+1)⁻¹, by a solve with the symmetric Σ_prior
        gain = np.linalg.solve(filtered.cov_prior[t + 1], a_mat @ c_post[t]).T
        mean[t] = m_post[t] + gain @ (mean[t + 1] - filtered.mean_prior[t + 1])
        c = c_post[t] + gain @ (cov[t + 1] - filtered.cov_prior[t + 1]) @ gain.T
        cov[t] = 0.5 * (c + c.T)
        lag[t + 1] = cov[t + 1] @ gain.T
    if cov0 is not None:
        c0 = np.asarray(cov0, dtype=np.float64)
        gain0 = np.linalg.solve(filtered.cov_prior[0], a_mat @ c0).T
        lag[0] = cov[0] @ gain0.T
    return JointSmoothedResult(mean, cov, lag)
