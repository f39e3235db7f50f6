"""The paper's linear-Gaussian state-space model and its exact Kalman filters.

Latent: the optimal weight w* follows the discretised OU process of Eq. 14,
``w*(t+1) = a w*(t) + N(0, q)`` (``a = 1 - η²/(2σ²)``, ``q = η²``; see :func:`filtering.ou.transition`).
Observation: the gradient of the summed log-likelihood evaluated at μ(t), Eq. 12,
``g(t) ~ N(h (w*(t) - μ(t)), h)`` with ``h = H_ii``.

Adding ``h μ(t)`` to Eq. 12 gives the pseudo-observation ``y(t) = g(t) + h μ(t) ~ N(h w*(t), h)``, which does not
depend on where the gradient was evaluated. So the filter is an ordinary Kalman filter on ``y`` and
:func:`simulate` can draw ``y`` once and hand any optimiser ``g = y - h μ`` for its own μ.

Both filters run predict (Eq. 17) then update (Eq. 18a with the exact ``h``, Eq. 41) at every step, starting
from the posterior ``(mean0, var0)`` -- by default ``(0, σ²)``, as Alg. 1 starts -- at t = -1.

:func:`kalman_filter` treats every entry of the parameter array as an independent scalar filter (Eqs. 16-18,
41), compiled (:mod:`filtering._scalar_kernel`) or, while a process has filtered too little to repay loading the
compiled code, as a NumPy loop with the same bits (:mod:`filtering._filter_choice`);
:func:`kalman_filter_reference` is the same filter as a plain NumPy loop; :func:`joint_kalman_filter`
(:mod:`filtering.joint_filter`, re-exported here) tracks an n-dimensional w* with a full covariance, for small n,
with the same interface. Every step of every filter is
computed by the primitives of :mod:`filtering.kalman_step`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from . import _filter_choice
from . import kalman_step as ks
from .joint_filter import JointKalmanResult, joint_kalman_filter
from .ou import broadcast_transition, transition
from .validation import check_array, check_int, check_ou_stable, check_positive, check_rng

__all__ = [
    "JointKalmanResult",
    "KalmanResult",
    "Simulation",
    "gradient",
    "joint_kalman_filter",
    "kalman_filter",
    "kalman_filter_reference",
    "simulate",
    "simulate_latent",
]


# --------------------------------------------------------------------------------------------------------------
# results


@dataclass(frozen=True)
class KalmanResult:
    """Posterior moments of independent scalar filters, and the priors they imply.

    Attributes
    ----------
    mean_post, var_post : ndarray, shape (T, ...)
        μ_post(t), σ²_post(t) after the update with g(t) (Eqs. 18a, 41).
    mean0, var0 : ndarray, shape (...)
        The posterior at t = -1 that the first prediction starts from.
    a, q : ndarray, shape (...)
        OU transition factor and process-noise variance (Eq. 14).
    """

    mean_post: np.ndarray
    var_post: np.ndarray
    mean0: np.ndarray
    var0: np.ndarray
    a: np.ndarray
    q: np.ndarray

    @property
    def mean_prior(self) -> np.ndarray:
        """μ_prior(t) = a μ_post(t-1) (Eq. 17a), shape (T, ...)."""
        previous = np.concatenate([self.mean0[None], self.mean_post[:-1]])
        return ks.predict_mean(previous, self.a)  # Eq. 17a

    @property
    def var_prior(self) -> np.ndarray:
        """σ²_prior(t) = a² σ²_post(t-1) + q (Eq. 17b), shape (T, ...)."""
        previous = np.concatenate([self.var0[None], self.var_post[:-1]])
        return ks.predict_variance(previous, self.a**2, self.q)  # Eq. 17b


@dataclass(frozen=True)
class Simulation:
    """A simulated run of the generative model (Eqs. 12, 14).

    Attributes
    ----------
    w_star : ndarray, shape (T, ...)
        Optimal weight w*(t).
    y : ndarray, shape (T, ...)
        Pseudo-observations ``h w* + sqrt(h) ε`` (independent of μ).
    h : ndarray, shape (T, ...)
        Curvature H_ii(t) used at each step.
    mu : ndarray, shape (T, ...)
        Where each gradient was evaluated.
    g : ndarray, shape (T, ...)
        Gradients ``y - h μ`` (Eq. 12).
    filtered : KalmanResult or None
        The exact filter's output when ``mu`` was the filter's own μ_prior.
    """

    w_star: np.ndarray
    y: np.ndarray
    h: np.ndarray
    mu: np.ndarray
    g: np.ndarray
    filtered: KalmanResult | None


# --------------------------------------------------------------------------------------------------------------
# simulation


def simulate_latent(
    shape: tuple[int, ...],
    steps: int,
    eta: float,
    sigma2: float,
    rng: int | np.random.Generator,
    predict: str = "paper",
    w0: ArrayLike | None = None,
) -> np.ndarray:
    """Draw w*(0..T-1) from the OU process of Eq. 14.

    Parameters
    ----------
    shape : tuple of int
        Parameter shape (N independent latents).
    steps : int
        T >= 1.
    eta, sigma2 : float
        η > 0 and finite σ² > 0.
    rng : int or np.random.Generator
    predict : {"paper", "exponential"}
        Discretisation of the OU step.
    w0 : array_like, shape ``shape``, optional
        w*(0). By default one OU step (Eq. 14) from w*(-1) ~ N(0, σ²), the posterior at t = -1 that the filters
        and Alg. 1 start from, so :func:`kalman_filter` with its defaults is the exact posterior from the first
        step on (σ² is the OU stationary variance up to a factor 1 + O(η²/σ²)).

    Returns
    -------
    ndarray, shape (T, *shape)
    """
    steps = check_int("steps", steps, lower=1)
    eta = check_positive("eta", eta)
    sigma2 = check_positive("sigma2", sigma2)
    if predict == "paper":
        check_ou_stable(eta, sigma2, names=("eta", "sigma2"))
    rng = check_rng(rng)
    a, q = transition(eta, sigma2, predict)
    w = np.empty((steps, *shape))
    if w0 is None:  # one OU step from w*(-1) ~ N(0, σ²), the posterior every filter here starts from
        w[0] = a * rng.standard_normal(shape) * np.sqrt(sigma2) + rng.standard_normal(shape) * np.sqrt(q)
    else:
        w[0] = np.broadcast_to(check_array("w0", w0), shape)
    noise = rng.standard_normal((steps - 1, *shape)) * np.sqrt(q)
    for t in range(1, steps):
        w[t] = a * w[t - 1] + noise[t - 1]  # Eq. 14
    return w


def gradient(y: ArrayLike, h: ArrayLike, mu: ArrayLike) -> np.ndarray:
    """Gradient of Eq. 12 at μ from a pseudo-observation: ``g = y - h μ`` (mean ``h (w* - μ)``, variance h)."""
    return np.asarray(y, dtype=np.float64) - np.asarray(h, dtype=np.float64) * np.asarray(mu, dtype=np.float64)


def simulate(
    h: ArrayLike,
    steps: int,
    eta: float,
    sigma2: float,
    rng: int | np.random.Generator,
    *,
    mu: ArrayLike | None = None,
    predict: str = "paper",
    time_varying_h: bool = False,
) -> Simulation:
    """Simulate the generative model: OU latent (Eq. 14) and gradient observations (Eq. 12).

    Parameters
    ----------
    h : array_like, shape (...), or (T, ...) with ``time_varying_h=True``
        Curvature H_ii > 0 per parameter; its shape (without the time axis) is the parameter shape.
    steps : int
        T >= 1.
    eta, sigma2 : float
        OU parameters η > 0, σ² > 0.
    rng : int or np.random.Generator
    mu : array_like, shape (...) or (T, ...), optional
        Fixed evaluation points. ``None`` (the paper's setting) evaluates each gradient at the exact filter's
        own μ_prior(t), and the filter's output is returned in ``filtered``.
    predict : {"paper", "exponential"}
    time_varying_h : bool
        Read the leading axis of ``h`` as time.

    Returns
    -------
    Simulation
    """
    steps = check_int("steps", steps, lower=1)
    h = check_array("h", h, lower=0.0)
    if time_varying_h and (h.ndim < 1 or h.shape[0] != steps):
        raise ValueError(f"time_varying_h=True needs h of shape (steps, ...), got {h.shape}")
    shape = h.shape[1:] if time_varying_h else h.shape
    rng = check_rng(rng)
    h_t = np.broadcast_to(h, (steps, *shape))
    w_star = simulate_latent(shape, steps, eta, sigma2, rng, predict)
    y = h_t * w_star + np.sqrt(h_t) * rng.standard_normal((steps, *shape))  # Eq. 12 plus h μ
    if mu is None:
        a, q, sigma2_b = broadcast_transition(eta, sigma2, shape, predict)
        filtered = _run_scalar_kernel(y, h_t, a, q, np.zeros(shape), sigma2_b, has_mu=True)
        mu_t = filtered.mean_prior
    else:
        filtered = None
        mu_t = np.broadcast_to(check_array("mu", mu), (steps, *shape))
    return Simulation(w_star, y, np.array(h_t), np.array(mu_t), gradient(y, h_t, mu_t), filtered)


# --------------------------------------------------------------------------------------------------------------
# independent scalar filters


def _initial(
    name: str, value: ArrayLike | None, default: np.ndarray, shape: tuple[int, ...], **bounds: Any
) -> np.ndarray:
    """A new float64 array of ``shape`` from ``value`` (checked against ``bounds``) or ``default``."""
    chosen = default if value is None else check_array(name, value, **bounds)
    return np.array(np.broadcast_to(chosen, shape))


def _filter_inputs(
    g: ArrayLike,
    h: ArrayLike,
    eta: ArrayLike,
    sigma2: ArrayLike,
    mean0: ArrayLike | None,
    var0: ArrayLike | None,
    predict: str,
) -> tuple[np.ndarray, ...]:
    """Checked ``(g, h_t, a, q, mean0, var0)`` for the scalar filters; values of g and h are checked later."""
    g = check_array("g", g, allow_inf=True, allow_nan=True)  # type only: the loops count bad values
    if g.ndim < 1 or g.shape[0] < 1:
        raise ValueError("g must have shape (T, ...) with T >= 1")
    shape = g.shape[1:]
    h_t = np.broadcast_to(check_array("h", h, allow_inf=True, allow_nan=True), g.shape)
    a, q, sigma2_b = broadcast_transition(eta, sigma2, shape, predict)
    mean0 = _initial("mean0", mean0, np.zeros(shape), shape, allow_inf=True)
    var0 = _initial("var0", var0, sigma2_b, shape, lower=0.0, allow_equal=True, allow_inf=True)
    return g, h_t, a, q, mean0, var0


def _check_out(
    out: tuple[np.ndarray, np.ndarray] | None, shape: tuple[int, ...], inputs: tuple[np.ndarray, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """The output pair: new arrays, or ``out`` after checking it is writable memory of its own."""
    if out is None:
        return np.empty(shape), np.empty(shape)
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise ValueError("out must be a pair (mean_post, var_post) of float64 ndarrays")
    for name, arr in zip(("out[0]", "out[1]"), out, strict=True):
        if not isinstance(arr, np.ndarray) or arr.shape != shape or arr.dtype != np.float64:
            raise ValueError(f"{name} must be a float64 ndarray of shape {shape}")
        if not arr.flags.c_contiguous or not arr.flags.writeable:
            raise ValueError(f"{name} must be C-contiguous and writeable")
        if any(np.may_share_memory(arr, x) for x in inputs):
            raise ValueError(f"{name} must not share memory with the inputs (g, h, mu, mean0, var0)")
    if np.may_share_memory(out[0], out[1]):
        raise ValueError("out[0] and out[1] must not share memory")
    return out[0], out[1]


def kalman_filter(
    g: ArrayLike,
    h: ArrayLike,
    eta: ArrayLike,
    sigma2: ArrayLike,
    *,
    mu: ArrayLike | None = None,
    mean0: ArrayLike | None = None,
    var0: ArrayLike | None = None,
    predict: str = "paper",
    out: tuple[np.ndarray, np.ndarray] | None = None,
) -> KalmanResult:
    """Exact Kalman filter for independent scalar latents with known h (Eqs. 16-18, 41).

    Each step: ``μ_prior = a μ_post`` (Eq. 17a), ``σ²_prior = a² σ²_post + q`` (Eq. 17b),
    ``σ²_post = 1 / (1/σ²_prior + h)`` (Eq. 18a), ``μ_post = μ_prior + σ²_post (g + h (μ - μ_prior))`` (Eq. 41;
    the bracket is g itself when the gradient was evaluated at μ = μ_prior, the paper's setting).
    Compiled with numba (time runs inside cache-sized blocks of parameters, blocks in parallel) once the
    process has spent about 0.8 s in the bit-identical NumPy loop that small calls use first
    (:mod:`filtering._filter_choice`).

    Parameters
    ----------
    g : array_like, shape (T, ...)
        Gradients of the summed log-likelihood, finite.
    h : array_like, broadcastable to (T, ...)
        Known curvature H_ii(t) >= 0 (time-varying allowed).
    eta, sigma2 : array_like, broadcastable to (...)
        η > 0 and σ² in (0, inf]; with ``predict="paper"`` also η² < 2σ² (a stable OU step, Eq. 14).
    mu : array_like, broadcastable to (T, ...), optional
        Where each gradient was evaluated (finite); ``None`` means at the filter's own μ_prior(t).
    mean0, var0 : array_like, broadcastable to (...), optional
        Posterior at t = -1; default 0 and σ² (Alg. 1's initial state). var0 >= 0.
    predict : {"paper", "exponential"}
    out : (ndarray, ndarray), optional
        Preallocated C-contiguous writeable float64 arrays of shape (T, ...) for the posterior means and
        variances (saves the page faults of fresh allocations when filters are run repeatedly); two distinct
        buffers that share no memory with the inputs.

    Returns
    -------
    KalmanResult
        Posterior means and variances, shape (T, ...); priors via its properties.

    Raises
    ------
    ArgumentTypeError
        A non-real input (bool, complex, str).
    ValueError
        Any value out of its range, an unstable OU step, a bad ``out``.
    """
    g, h_t, a, q, mean0, var0 = _filter_inputs(g, h, eta, sigma2, mean0, var0, predict)
    if mu is None:
        mu_arr, observations = None, g
    else:
        mu_arr = check_array("mu", mu)
        observations = g + h_t * np.broadcast_to(mu_arr, g.shape)  # y = g + h μ
    inputs = tuple(x for x in (g, h_t, mu_arr, mean0, var0) if x is not None)
    return _run_scalar_kernel(observations, h_t, a, q, mean0, var0, has_mu=mu is not None, out=out, inputs=inputs)


def _run_scalar_kernel(
    observations: np.ndarray,
    h_t: np.ndarray,
    a: np.ndarray,
    q: np.ndarray,
    mean0: np.ndarray,
    var0: np.ndarray,
    *,
    has_mu: bool,
    out: tuple[np.ndarray, np.ndarray] | None = None,
    inputs: tuple[np.ndarray, ...] = (),
) -> KalmanResult:
    mean_out, var_out = _check_out(out, observations.shape, inputs)
    bad = _filter_choice.run(observations, h_t, a, q, mean0, var0, has_mu=has_mu, mean_out=mean_out, var_out=var_out)
    if bad:
        raise ValueError(f"h must be >= 0 and g finite everywhere ({bad} entries are not)")
    return KalmanResult(mean_out, var_out, mean0, var0, a, q)


def kalman_filter_reference(
    g: ArrayLike,
    h: ArrayLike,
    eta: ArrayLike,
    sigma2: ArrayLike,
    *,
    mean0: ArrayLike = 0.0,
    var0: ArrayLike | None = None,
    predict: str = "paper",
    out: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Plain NumPy loop over time, vectorised over parameters, for g evaluated at μ_prior (Eqs. 17, 18a, 41).

    The straightforward implementation, kept as the readable reference and as the benchmark anchor. Inputs are
    validated as in :func:`kalman_filter` (here in passes over g and h before the loop).
    Returns ``(mean_post, var_post)``, each of shape (T, ...), written into ``out`` when given.
    """
    g, h_t, a, q, m, v = _filter_inputs(g, h, eta, sigma2, mean0, var0, predict)
    check_array("g", g)
    check_array("h", h_t, lower=0.0, allow_equal=True)
    mean_post, var_post = _check_out(out, g.shape, (g, h_t, m, v))
    factor = a * a
    for t in range(g.shape[0]):
        m = ks.predict_mean(m, a)  # Eq. 17a
        v = ks.predict_variance(v, factor, q)  # Eq. 17b
        v = ks.update_variance(v, h_t[t])  # Eq. 18a
        m = ks.update_mean(m, v, g[t])  # Eq. 41
        mean_post[t] = m
        var_post[t] = v
    return mean_post, var_post
