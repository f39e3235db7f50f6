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
41); :func:`joint_kalman_filter` tracks an n-dimensional w* with a full covariance, for small n, with the
same interface.
"""

from __future__ import annotations

import types
from dataclasses import dataclass

import numba
import numpy as np
from numpy.typing import ArrayLike

from .ou import transition
from .validation import check_ou_stable, check_positive

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

BLOCK = 4096  # parameters per cache block in the compiled filter (4 KiB of float64 per state array)


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
        return self.a * previous  # Eq. 17a

    @property
    def var_prior(self) -> np.ndarray:
        """σ²_prior(t) = a² σ²_post(t-1) + q (Eq. 17b), shape (T, ...)."""
        previous = np.concatenate([self.var0[None], self.var_post[:-1]])
        return self.a**2 * previous + self.q  # Eq. 17b


@dataclass(frozen=True)
class JointKalmanResult:
    """Moments of the joint filter; means have shape (T, n), covariances (T, n, n)."""

    mean_prior: np.ndarray
    cov_prior: np.ndarray
    mean_post: np.ndarray
    cov_post: np.ndarray


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


def _generator(rng: int | np.random.Generator | None) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None:
        raise ValueError("rng must be a seed or np.random.Generator (simulations are reproducible by design)")
    return np.random.default_rng(rng)


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
    steps = _check_steps(steps)
    eta = check_positive("eta", eta)
    sigma2 = check_positive("sigma2", sigma2)
    if predict == "paper":
        check_ou_stable(eta, sigma2, names=("eta", "sigma2"))
    rng = _generator(rng)
    a, q = transition(eta, sigma2, predict)
    w = np.empty((steps, *shape))
    if w0 is None:  # one OU step from w*(-1) ~ N(0, σ²), the posterior every filter here starts from
        w[0] = a * rng.standard_normal(shape) * np.sqrt(sigma2) + rng.standard_normal(shape) * np.sqrt(q)
    else:
        w[0] = np.broadcast_to(np.asarray(w0, dtype=np.float64), shape)
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
    steps = _check_steps(steps)
    h = np.asarray(h, dtype=np.float64)
    if time_varying_h and (h.ndim < 1 or h.shape[0] != steps):
        raise ValueError(f"time_varying_h=True needs h of shape (steps, ...), got {h.shape}")
    shape = h.shape[1:] if time_varying_h else h.shape
    if not (h > 0).all() or not np.isfinite(h).all():
        raise ValueError("h must be finite and > 0 everywhere")
    rng = _generator(rng)
    h_t = np.broadcast_to(h, (steps, *shape))
    w_star = simulate_latent(shape, steps, eta, sigma2, rng, predict)
    y = h_t * w_star + np.sqrt(h_t) * rng.standard_normal((steps, *shape))  # Eq. 12 plus h μ
    if mu is None:
        filtered = _filter_on_pseudo_observations(y, h_t, eta, sigma2, predict)
        mu_t = filtered.mean_prior
    else:
        filtered = None
        mu_t = np.broadcast_to(np.asarray(mu, dtype=np.float64), (steps, *shape))
    return Simulation(w_star, y, np.array(h_t), np.array(mu_t), gradient(y, h_t, mu_t), filtered)


def _check_steps(steps: int) -> int:
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    return int(steps)


# --------------------------------------------------------------------------------------------------------------
# independent scalar filters


def _scalar_filter_loops(innov_or_y, h, a, q, mean0, var0, has_mu, mean_post, var_post):  # pragma: no cover
    # innov_or_y: (T, N) gradients g (paper setting) or pseudo-observations y = g + h mu (fixed mu)
    # h: (T, N); a, q, mean0, var0: (N,); outputs (T, N). Returns the number of bad inputs (h < 0 or NaN,
    # g or y not finite), counted in the loop instead of in extra passes over the data.
    # Rows are sliced once per step and the h check is branch-free, so LLVM vectorises the inner loop.
    steps, n = innov_or_y.shape
    n_blocks = (n + BLOCK - 1) // BLOCK
    bad_h = np.zeros(n_blocks, dtype=np.int64)
    for b in numba.prange(n_blocks):
        lo = b * BLOCK
        hi = min(lo + BLOCK, n)
        m = mean0[lo:hi].copy()
        v = var0[lo:hi].copy()
        ab = a[lo:hi]
        a2b = ab * ab
        qb = q[lo:hi]
        bad = 0
        for t in range(steps):
            obs, ht = innov_or_y[t, lo:hi], h[t, lo:hi]
            m_out, v_out = mean_post[t, lo:hi], var_post[t, lo:hi]
            for j in range(hi - lo):
                hk = ht[j]
                bad += 1 - np.int64(hk >= 0.0) + 1 - np.int64(abs(obs[j]) < np.inf)
                m_prior = ab[j] * m[j]  # Eq. 17a
                v_prior = a2b[j] * v[j] + qb[j]  # Eq. 17b
                v_new = 1.0 / (1.0 / v_prior + hk)  # Eq. 18a (this form also holds for σ²_prior = inf)
                # Eq. 41: the innovation is g itself when g was taken at μ_prior, else y - h μ_prior
                innovation = obs[j] - hk * m_prior if has_mu else obs[j]
                m_new = m_prior + v_new * innovation
                m[j], v[j] = m_new, v_new
                m_out[j], v_out[j] = m_new, v_new
        bad_h[b] = bad
    return bad_h.sum()


# one body, two compilations: threads pay off only with more than one block (thread start-up costs ~10 ms)
def _named_copy(fn, name: str):
    """The same function under another name: numba's on-disk cache is keyed by the qualified name, so two
    compilations of one function would otherwise overwrite each other (the parallel one then ran serially)."""
    clone = types.FunctionType(fn.__code__, fn.__globals__, name, fn.__defaults__, fn.__closure__)
    clone.__qualname__ = name
    return clone


# error_model="numpy": 1/0 gives inf (σ²_prior = inf with h = 0), as in NumPy, instead of raising
_scalar_filter_parallel = numba.njit(parallel=True, cache=True, error_model="numpy")(
    _named_copy(_scalar_filter_loops, "_scalar_filter_parallel")
)
_scalar_filter_serial = numba.njit(cache=True, error_model="numpy")(
    _named_copy(_scalar_filter_loops, "_scalar_filter_serial")
)


def _broadcast_params(eta: ArrayLike, sigma2: ArrayLike, shape: tuple[int, ...], predict: str):
    eta_b = np.broadcast_to(np.asarray(eta, dtype=np.float64), shape)
    sigma2_b = np.broadcast_to(np.asarray(sigma2, dtype=np.float64), shape)
    if not (np.isfinite(eta_b).all() and (eta_b > 0).all()):
        raise ValueError("eta must be finite and > 0")
    if np.isnan(sigma2_b).any() or not (sigma2_b > 0).all():
        raise ValueError("sigma2 must be in (0, inf]")
    a, q = transition(eta_b, sigma2_b, predict)
    return np.array(a), np.array(q), np.array(sigma2_b)


def _initial(value: ArrayLike | None, default: np.ndarray, shape: tuple[int, ...], name: str) -> np.ndarray:
    out = np.array(np.broadcast_to(default if value is None else np.asarray(value, dtype=np.float64), shape))
    if np.isnan(out).any():
        raise ValueError(f"{name} must not contain NaN")
    return out


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
    Compiled with numba; time runs inside cache-sized blocks of parameters, blocks in parallel.

    Parameters
    ----------
    g : array_like, shape (T, ...)
        Gradients of the summed log-likelihood.
    h : array_like, broadcastable to (T, ...)
        Known curvature H_ii(t) >= 0 (time-varying allowed).
    eta, sigma2 : array_like, broadcastable to (...)
        η > 0 and σ² in (0, inf].
    mu : array_like, broadcastable to (T, ...), optional
        Where each gradient was evaluated; ``None`` means at the filter's own μ_prior(t).
    mean0, var0 : array_like, broadcastable to (...), optional
        Posterior at t = -1; default 0 and σ² (Alg. 1's initial state).
    predict : {"paper", "exponential"}
    out : (ndarray, ndarray), optional
        Preallocated C-contiguous float64 arrays of shape (T, ...) for the posterior means and variances
        (saves the page faults of fresh allocations when filters are run repeatedly).

    Returns
    -------
    KalmanResult
        Posterior means and variances, shape (T, ...); priors via its properties.
    """
    g = np.asarray(g, dtype=np.float64)
    if g.ndim < 1 or g.shape[0] < 1:
        raise ValueError("g must have shape (T, ...) with T >= 1")
    shape = g.shape[1:]
    h_t = np.broadcast_to(np.asarray(h, dtype=np.float64), g.shape)
    a, q, sigma2_b = _broadcast_params(eta, sigma2, shape, predict)
    mean0 = _initial(mean0, np.zeros(shape), shape, "mean0")
    var0 = _initial(var0, sigma2_b, shape, "var0")
    if (var0 < 0).any():
        raise ValueError("var0 must be >= 0")
    if mu is None:
        observations = g
    else:
        observations = g + h_t * np.broadcast_to(np.asarray(mu, dtype=np.float64), g.shape)  # y = g + h μ
    return _run_scalar_kernel(observations, h_t, a, q, mean0, var0, has_mu=mu is not None, out=out)


def _check_out(out: tuple[np.ndarray, np.ndarray] | None, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    if out is None:
        return np.empty(shape), np.empty(shape)
    for name, arr in zip(("out[0]", "out[1]"), out, strict=True):
        if not isinstance(arr, np.ndarray) or arr.shape != shape or arr.dtype != np.float64:
            raise ValueError(f"{name} must be a float64 ndarray of shape {shape}")
        if not arr.flags.c_contiguous:
            raise ValueError(f"{name} must be C-contiguous")
    return out


def _run_scalar_kernel(observations, h_t, a, q, mean0, var0, *, has_mu: bool, out=None) -> KalmanResult:
    steps = observations.shape[0]
    shape = observations.shape[1:]
    n = int(np.prod(shape, dtype=np.int64))
    flat = (steps, n)
    mean_out, var_out = _check_out(out, observations.shape)
    mean_post, var_post = mean_out.reshape(flat), var_out.reshape(flat)
    kernel = _scalar_filter_parallel if n > BLOCK else _scalar_filter_serial
    bad_h = kernel(
        np.ascontiguousarray(observations).reshape(flat),
        np.ascontiguousarray(h_t).reshape(flat),
        a.reshape(n),
        q.reshape(n),
        mean0.reshape(n),
        var0.reshape(n),
        has_mu,
        mean_post,
        var_post,
    )
    if bad_h:
        raise ValueError(f"h must be >= 0 and g finite everywhere ({bad_h} entries are not)")
    return KalmanResult(mean_out, var_out, mean0, var0, a, q)


def _filter_on_pseudo_observations(y, h_t, eta, sigma2, predict) -> KalmanResult:
    shape = y.shape[1:]
    a, q, sigma2_b = _broadcast_params(eta, sigma2, shape, predict)
    return _run_scalar_kernel(y, h_t, a, q, np.zeros(shape), np.array(sigma2_b), has_mu=True)


def kalman_filter_reference(
    g: ArrayLike,
    h: ArrayLike,
    eta: float,
    sigma2: float,
    *,
    mean0: ArrayLike = 0.0,
    var0: ArrayLike | None = None,
    predict: str = "paper",
    out: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Plain NumPy loop over time, vectorised over parameters, for g evaluated at μ_prior (Eqs. 17, 18a, 41).

    The straightforward implementation, kept as the readable reference and as the benchmark anchor.
    Returns ``(mean_post, var_post)``, each of shape (T, ...), written into ``out`` when given.
    """
    g = np.asarray(g, dtype=np.float64)
    h_t = np.broadcast_to(np.asarray(h, dtype=np.float64), g.shape)
    a, q = transition(eta, sigma2, predict)
    m = np.broadcast_to(np.asarray(mean0, dtype=np.float64), g.shape[1:]).copy()
    v = np.broadcast_to(np.asarray(sigma2 if var0 is None else var0, dtype=np.float64), g.shape[1:]).copy()
    mean_post, var_post = _check_out(out, g.shape)
    for t in range(g.shape[0]):
        m = a * m  # Eq. 17a
        v = a * a * v + q  # Eq. 17b
        v = 1.0 / (1.0 / v + h_t[t])  # Eq. 18a
        m = m + v * g[t]  # Eq. 41
        mean_post[t] = m
        var_post[t] = v
    return mean_post, var_post


# --------------------------------------------------------------------------------------------------------------
# joint full-covariance filter


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
    Hessian, as Eqs. 6-8 give for a summed quadratic objective). The update is the matrix form of Eqs. 18a, 41:
    ``Σ_post = (Σ_prior⁻¹ + H)⁻¹ = (I + Σ_prior H)⁻¹ Σ_prior`` and ``μ_post = μ_prior + Σ_post (g + H (μ - μ_prior))``,
    which needs no inverse of H (H may be singular).

    Parameters
    ----------
    g : array_like, shape (T, n)
    h : array_like, shape (n, n) or (T, n, n)
        Symmetric positive semi-definite curvature matrices.
    eta, sigma2 : array_like, scalar or shape (n,)
        Per-coordinate OU parameters giving the default diagonal ``A`` and ``Q`` (Eq. 14).
    mu : array_like, shape (n,) or (T, n), optional
        Evaluation points; ``None`` = the filter's own μ_prior.
    mean0 : array_like, shape (n,), optional
        Default zeros.
    var0 : array_like, shape (n,) or (n, n), optional
        Default ``diag(σ²)``.
    predict : {"paper", "exponential"}
    transition_matrix, process_noise : array_like, shape (n, n), optional
        Override A and Q.

    Returns
    -------
    JointKalmanResult
    """
    g = np.asarray(g, dtype=np.float64)
    if g.ndim != 2:
        raise ValueError(f"g must have shape (T, n), got {g.shape}")
    steps, n = g.shape
    h = np.asarray(h, dtype=np.float64)
    if h.shape not in ((n, n), (steps, n, n)):
        raise ValueError(f"h must have shape ({n}, {n}) or ({steps}, {n}, {n}), got {h.shape}")
    h_t = np.broadcast_to(h, (steps, n, n))
    a, q, sigma2_b = _broadcast_params(eta, sigma2, (n,), predict)
    a_mat = np.diag(a) if transition_matrix is None else np.asarray(transition_matrix, dtype=np.float64)
    q_mat = np.diag(q) if process_noise is None else np.asarray(process_noise, dtype=np.float64)
    for name, mat in (("transition_matrix", a_mat), ("process_noise", q_mat)):
        if mat.shape != (n, n):
            raise ValueError(f"{name} must have shape ({n}, {n}), got {mat.shape}")
    m = _initial(mean0, np.zeros(n), (n,), "mean0")
    if var0 is None:
        cov = np.diag(sigma2_b)
    else:
        var0 = np.asarray(var0, dtype=np.float64)
        if var0.ndim == 2 and var0.shape != (n, n):
            raise ValueError(f"var0 must have shape ({n},) or ({n}, {n}), got {var0.shape}")
        cov = var0.copy() if var0.ndim == 2 else np.diag(np.broadcast_to(var0, (n,)))
    if not np.isfinite(cov).all():
        raise ValueError("the joint filter needs a finite initial covariance: pass a finite var0 when sigma2 = inf")
    mu_t = None if mu is None else np.broadcast_to(np.asarray(mu, dtype=np.float64), (steps, n))
    eye = np.eye(n)
    means, covs = np.empty((2, steps, n)), np.empty((2, steps, n, n))
    out = JointKalmanResult(means[0], covs[0], means[1], covs[1])
    for t in range(steps):
        m_prior = a_mat @ m  # Eq. 17a
        cov_prior = a_mat @ cov @ a_mat.T + q_mat  # Eq. 17b
        cov = np.linalg.solve(eye + cov_prior @ h_t[t], cov_prior)  # Eq. 18a (matrix form)
        cov = 0.5 * (cov + cov.T)
        innovation = g[t] if mu_t is None else g[t] + h_t[t] @ (mu_t[t] - m_prior)
        m = m_prior + cov @ innovation  # Eq. 41 (matrix form)
        out.mean_prior[t], out.cov_prior[t], out.mean_post[t], out.cov_post[t] = m_prior, cov_prior, m, cov
    return out
