"""Marginal log-likelihood of gradient streams under the paper's state-space model (Eqs. 12, 14), by Kalman filter.

Model (one scalar latent per parameter, N of them side by side): the optimal weight follows the OU step of
Eq. 14, ``w*(t+1) = a w*(t) + N(0, q)``, and a gradient evaluated at μ(t) is ``g(t) ~ N(h (w*(t) - μ(t)), r h)``
(Eq. 12; the paper has ``r = 1``, the *observation-noise scale* ``r`` is the one extra parameter a fit may free).
Given the past, the filter's prior (Eq. 16a) ``w*(t) ~ N(μ_prior, σ²_prior)`` makes the gradient Gaussian,

    g(t) | g(0..t-1) ~ N(h (μ_prior(t) - μ(t)), S(t)),    S(t) = h² σ²_prior(t) + r h,          (Eqs. 12, 16a)

so the log-likelihood of the whole stream is ``Σ_t log N(e(t); 0, S(t))`` with the innovation
``e = g + h (μ - μ_prior)`` (Eq. 41's bracket; ``e = g`` when g was taken at μ_prior, the paper's setting). The
same filter steps (Eqs. 17a, 17b, 18a, 41) produce μ_prior and σ²_prior; with ``r != 1`` the update uses h/r
(``σ²_post = 1/(1/σ²_prior + h/r)``) and the innovation e/r. The kernel computes Eq. 18a as
``σ²_prior h / S'`` (:func:`posterior_variance`), which shares its one division with the likelihood term; the
moments equal :func:`filtering.state_space.kalman_filter`'s to rounding (tested to 1e-13).

Which form to use: the paper-setting form ``e = g`` holds only if the gradients were really evaluated at *this*
filter's μ_prior. To compare parameter values (fitting, evidence), pass the points μ(t) at which the gradients
were actually taken (``mu=``): the likelihood then treats them as known, which is exact whenever μ(t) is a
function of earlier gradients (any optimiser).

The compiled kernel is a sibling of :mod:`filtering._scalar_kernel` (same cache blocks of parameters, time
inside, blocks in parallel). One ``log`` per filter-step would double its cost, so the factors ``S/r`` are
multiplied over windows of :data:`WINDOW` steps and one log is taken per window; a factor outside
``[2**-120, 2**120]`` (where a product of eight could leave the float64 range) is logged on its own instead.
Each column's arithmetic depends only on its own data and on the global step index, so results are identical
whatever the split of the parameters into blocks or chunks, and whatever the split of time into chunks.

A first step whose prior variance is infinite (``var0 = inf``, e.g. the random walk σ² = ∞ started from
Alg. 1's σ²_post = σ²) is *exact diffuse*: the update is the limit (``σ²_post = r/h``) and the step contributes
``-½ log(2π h²)`` instead of a term in ``log S = ∞`` -- the convention of Durbin & Koopman and of statsmodels'
``initialization="diffuse"`` (its ``F_∞ = Z P_∞ Zᵀ = h²``).
"""

from __future__ import annotations

import hashlib
import math
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numba
import numpy as np
from numpy.typing import ArrayLike

from . import kalman_step
from .joint_filter import JointKalmanResult, joint_kalman_filter
from .ou import broadcast_transition
from .state_space import KalmanResult
from .validation import check_array, check_choice, check_int

__all__ = [
    "BLOCK",
    "WINDOW",
    "FilterState",
    "LikelihoodResult",
    "advance",
    "ar1_loglik",
    "ar2_loglik",
    "ar2_run",
    "joint_loglik",
    "kalman_loglik",
    "loglik_from_moments",
    "posterior_variance",
    "start_state",
]

BLOCK = 4096  # parameters per cache block (as in filtering._scalar_kernel)
WINDOW = 8  # innovation-variance factors multiplied before one log
_SAFE_LO, _SAFE_HI = 2.0**-120, 2.0**120  # a product of WINDOW such factors stays inside 2**±960
_LOG_2PI = math.log(2.0 * math.pi)
KEEP_OPTIONS = ("none", "float64", "float32")

_inline = numba.njit(inline="always")
_predict_mean = _inline(kalman_step.predict_mean)
_predict_variance = _inline(kalman_step.predict_variance)
_update_variance = _inline(kalman_step.update_variance)
_pseudo_innovation = _inline(kalman_step.pseudo_innovation)
_update_mean = _inline(kalman_step.update_mean)


# --------------------------------------------------------------------------------------------------------------
# compiled loops (numba); every helper is inlined into the kernel, so the flags below are compile-time constants


@_inline
def _innovation(obs, h, mean_prior, has_mu):  # pragma: no cover
    # Eq. 41's bracket: g itself (taken at μ_prior) or y - h μ_prior for a pseudo-observation y = g + h μ
    return _pseudo_innovation(obs, h, mean_prior) if has_mu else obs


def posterior_variance(var_prior: Any, h: Any, inv_s: Any) -> Any:
    """Eq. 18a as ``σ²_post = σ²_prior h / S'`` with ``S' = h (σ²_prior h/r + 1)`` (= S/r) and ``inv_s = 1/S'``.

    The same number as :func:`filtering.kalman_step.update_variance` ``(σ²_prior, h/r)`` up to rounding
    (``σ²_prior / (1 + σ²_prior h/r)``), but it reuses the one division the likelihood needs anyway, so the
    kernel divides once per filter-step instead of three times. A test compares the two.
    Valid for finite ``σ²_prior`` and ``S' < 1e308``.
    """
    return var_prior * h * inv_s  # Eq. 18a


_posterior_variance = _inline(posterior_variance)


@_inline
def _row(
    obs, ht, ab, a2b, qb, rinv, m, v, quad, prod, sbuf, m_out, v_out, s_mean, s_var, s_obs2, has_mu, store, accumulate
):  # pragma: no cover
    """One time step for one block of parameters; returns (bad inputs, factors outside the safe range)."""
    bad = np.int64(0)
    outside = np.int64(0)
    for j in range(m.shape[0]):
        hj = ht[j]
        bad += 1 - np.int64(hj > 0.0) + 1 - np.int64(abs(obs[j]) < np.inf)
        h_over_r = hj * rinv[j]
        m_prior = _predict_mean(m[j], ab[j])  # Eq. 17a
        v_prior = _predict_variance(v[j], a2b[j], qb[j])  # Eq. 17b
        s = hj * (h_over_r * v_prior + 1.0)  # S / r = (h² σ²_prior + r h) / r  (Eqs. 12, 16a)
        inv_s = 1.0 / s
        v_new = _posterior_variance(v_prior, hj, inv_s)  # Eq. 18a (precision h/r), sharing the division
        e = _innovation(obs[j], hj, m_prior, has_mu)  # Eq. 41
        quad[j] += e * e * inv_s
        inside = np.int64(s > _SAFE_LO) * np.int64(s < _SAFE_HI)
        prod[j] *= s if inside else 1.0
        sbuf[j] = s
        outside += 1 - inside
        m_new = _update_mean(m_prior, v_new, e * rinv[j])  # Eqs. 18b, 41 (gain σ²_post / r)
        m[j], v[j] = m_new, v_new
        if store:
            m_out[j], v_out[j] = m_new, v_new
        if accumulate:
            s_mean[j] += m_new
            s_var[j] += v_new
            s_obs2[j] += obs[j] * obs[j]
    return bad, outside


@_inline
def _first_row(
    obs, ht, ab, a2b, qb, rinv, m, v, quad, logdet, m_out, v_out, s_mean, s_var, s_obs2, has_mu, store, accumulate
):  # pragma: no cover
    """The step from the t = -1 posterior: logged factor by factor, exact diffuse where σ²_prior is infinite."""
    bad = np.int64(0)
    for j in range(m.shape[0]):
        hj = ht[j]
        bad += 1 - np.int64(hj > 0.0) + 1 - np.int64(abs(obs[j]) < np.inf)
        h_over_r = hj * rinv[j]
        m_prior = _predict_mean(m[j], ab[j])  # Eq. 17a
        v_prior = _predict_variance(v[j], a2b[j], qb[j])  # Eq. 17b
        v_new = _update_variance(v_prior, h_over_r)  # Eq. 18a; r/h when σ²_prior = inf
        e = _innovation(obs[j], hj, m_prior, has_mu)  # Eq. 41
        if v_prior == np.inf:  # exact diffuse: -½ log(2π F_∞), F_∞ = h² = r · (h · h/r)
            logdet[j] += math.log(hj * h_over_r)
        else:
            s = hj * (h_over_r * v_prior + 1.0)  # S / r (Eqs. 12, 16a)
            quad[j] += e * e / s
            logdet[j] += math.log(s)
        m_new = _update_mean(m_prior, v_new, e * rinv[j])  # Eqs. 18b, 41
        m[j], v[j] = m_new, v_new
        if store:
            m_out[j], v_out[j] = m_new, v_new
        if accumulate:
            s_mean[j] += m_new
            s_var[j] += v_new
            s_obs2[j] += obs[j] * obs[j]
    return bad


@_inline
def _log_outside(sbuf, logdet):  # pragma: no cover
    for j in range(sbuf.shape[0]):
        s = sbuf[j]
        if not (s > _SAFE_LO and s < _SAFE_HI):
            logdet[j] += math.log(s)


@_inline
def _flush(prod, logdet):  # pragma: no cover
    for j in range(prod.shape[0]):
        logdet[j] += math.log(prod[j])
        prod[j] = 1.0


@_inline
def _block(
    obs, h, lo, hi, a, q, rinv, t0, m, v, quad, logdet, prod, m_out, v_out, sums, has_mu, store, accumulate
):  # pragma: no cover
    """All time steps of the parameters lo:hi; returns the number of bad inputs."""
    ab, qb, rb = a[lo:hi], q[lo:hi], rinv[lo:hi]
    a2b = ab * ab
    mb, vb, qd, ld, pr = m[lo:hi], v[lo:hi], quad[lo:hi], logdet[lo:hi], prod[lo:hi]
    s_mean, s_var, s_obs2 = sums[0, lo:hi], sums[1, lo:hi], sums[2, lo:hi]  # (3, 1) placeholder when unused
    sbuf = np.empty(hi - lo)
    h_rows = h.shape[0]
    bad = np.int64(0)
    start = 0
    if t0 == 0:
        bad += _first_row(
            obs[0, lo:hi], h[0, lo:hi], ab, a2b, qb, rb, mb, vb, qd, ld, m_out[0, lo:hi], v_out[0, lo:hi],
            s_mean, s_var, s_obs2, has_mu, store, accumulate,
        )  # fmt: skip
        start = 1
    for t in range(start, obs.shape[0]):
        th = t if h_rows > 1 else 0
        to = t if store else 0
        nbad, outside = _row(
            obs[t, lo:hi], h[th, lo:hi], ab, a2b, qb, rb, mb, vb, qd, pr, sbuf, m_out[to, lo:hi], v_out[to, lo:hi],
            s_mean, s_var, s_obs2, has_mu, store, accumulate,
        )  # fmt: skip
        bad += nbad
        if outside:
            _log_outside(sbuf, ld)
        if (t0 + t) % WINDOW == WINDOW - 1:
            _flush(pr, ld)
    return bad


def _kernel_factory(has_mu: bool, store: bool, accumulate: bool, parallel: bool) -> Callable[..., Any]:
    """Compile the loop over blocks for one combination of flags (constants in the compiled code)."""

    def loops(obs, h, a, q, rinv, t0, m, v, quad, logdet, prod, m_out, v_out, sums):  # pragma: no cover
        n = obs.shape[1]
        n_blocks = (n + BLOCK - 1) // BLOCK
        bad = np.zeros(n_blocks, dtype=np.int64)
        for b in numba.prange(n_blocks):
            lo = b * BLOCK
            hi = min(lo + BLOCK, n)
            bad[b] = _block(
                obs, h, lo, hi, a, q, rinv, t0, m, v, quad, logdet, prod, m_out, v_out, sums, has_mu, store, accumulate
            )
        return bad.sum()

    name = f"_loglik_{int(has_mu)}{int(store)}{int(accumulate)}{'p' if parallel else 's'}_{_SOURCE_HASH}"
    clone = types.FunctionType(loops.__code__, loops.__globals__, name, None, loops.__closure__)
    clone.__qualname__ = name
    # error_model="numpy": 1/0 gives inf (σ²_prior = inf), as in NumPy, instead of raising
    # nogil: dask (filtering.distributed) runs the serial kernel from several threads at once
    return numba.njit(parallel=parallel, cache=True, nogil=True, error_model="numpy")(clone)


# a new cache name whenever this file or the inlined primitives change
_SOURCE_HASH = hashlib.sha256(Path(__file__).read_bytes() + Path(kalman_step.__file__).read_bytes()).hexdigest()[:12]
_KERNELS: dict[tuple[bool, bool, bool, bool], Callable[..., Any]] = {}


def _kernel(has_mu: bool, store: bool, accumulate: bool, parallel: bool) -> Callable[..., Any]:
    key = (has_mu, store, accumulate, parallel)
    if key not in _KERNELS:
        _KERNELS[key] = _kernel_factory(*key)
    return _KERNELS[key]


# --------------------------------------------------------------------------------------------------------------
# state carried between chunks of time


@dataclass
class FilterState:
    """Running state of N independent scalar filters and of their log-likelihood, between chunks of time.

    Attributes
    ----------
    mean, var : ndarray, shape (N,)
        μ_post and σ²_post after the last step (the t = -1 posterior before the first).
    a, q, noise_scale : ndarray, shape (N,)
        Transition factor and process noise of Eq. 14, observation-noise scale r (Eq. 12 has r = 1).
    quad : ndarray, shape (N,)
        ``Σ e² / (S/r)`` over the counted steps.
    logdet : ndarray, shape (N,)
        ``Σ log(S/r)`` over the counted steps, except the factors still in ``prod``.
    prod : ndarray, shape (N,)
        Product of the factors ``S/r`` of the current window (see :data:`WINDOW`).
    steps : int
        Time steps processed so far (the global index of the next step).
    counted : int
        Steps whose terms are in the log-likelihood (``steps`` minus a burn-in).
    sums : ndarray, shape (3, N) or None
        Running sums of μ_post, σ²_post and the observation squared (``g²`` in the paper's setting), kept
        when the state was started with ``accumulate=True``.
    """

    mean: np.ndarray
    var: np.ndarray
    a: np.ndarray
    q: np.ndarray
    noise_scale: np.ndarray
    quad: np.ndarray
    logdet: np.ndarray
    prod: np.ndarray
    steps: int = 0
    counted: int = 0
    sums: np.ndarray | None = field(default=None)

    @property
    def loglik(self) -> np.ndarray:
        """Log-likelihood of the counted steps, shape (N,): ``-½ Σ (log 2π + log S + e²/S)``."""
        r = self.noise_scale
        with np.errstate(divide="ignore"):
            logdet = self.logdet + np.log(self.prod)
        return -0.5 * (self.counted * (_LOG_2PI + np.log(r)) + logdet + self.quad / r)

    def reset_loglik(self) -> None:
        """Forget the log-likelihood terms so far (a burn-in); the filter's state is kept."""
        self.quad[:] = 0.0
        self.logdet[:] = 0.0
        self.prod[:] = 1.0
        self.counted = 0


def start_state(
    a: ArrayLike,
    q: ArrayLike,
    mean0: ArrayLike,
    var0: ArrayLike,
    *,
    noise_scale: ArrayLike = 1.0,
    n: int | None = None,
    accumulate: bool = False,
) -> FilterState:
    """A :class:`FilterState` at t = -1 for N filters (parameters broadcast to shape (N,)).

    Parameters
    ----------
    a : array_like
        Transition factor of Eq. 14, finite (``a = 1``: random walk).
    q : array_like
        Process-noise variance >= 0.
    mean0, var0 : array_like
        Posterior at t = -1; ``var0`` in [0, inf] (inf: exact diffuse first step; needs ``a != 0``).
    noise_scale : array_like
        r > 0 (finite).
    n : int, optional
        Number of filters; by default the broadcast size of the arguments.
    accumulate : bool
        Keep running sums of μ_post, σ²_post and of the squared observations.
    """
    a_arr = check_array("a", a)
    q_arr = check_array("q", q, lower=0.0, allow_equal=True)
    m0 = check_array("mean0", mean0)
    v0 = check_array("var0", var0, lower=0.0, allow_equal=True, allow_inf=True)
    r = check_array("noise_scale", noise_scale, lower=0.0)
    size = int(np.broadcast(a_arr, q_arr, m0, v0, r).size) if n is None else check_int("n", n, lower=1)
    arrays = [np.array(np.broadcast_to(x, (size,)), dtype=np.float64) for x in (a_arr, q_arr, m0, v0, r)]
    a_b, q_b, m_b, v_b, r_b = arrays
    if np.any(np.isinf(v_b) & (a_b == 0.0)):
        raise ValueError("var0 = inf (a diffuse start) needs a != 0")
    return FilterState(
        mean=m_b,
        var=v_b,
        a=a_b,
        q=q_b,
        noise_scale=r_b,
        quad=np.zeros(size),
        logdet=np.zeros(size),
        prod=np.ones(size),
        sums=np.zeros((3, size)) if accumulate else None,
    )


def advance(
    state: FilterState,
    obs: np.ndarray,
    h: np.ndarray,
    *,
    has_mu: bool,
    out: tuple[np.ndarray, np.ndarray] | None = None,
    parallel: bool | None = None,
) -> None:
    """Run the filters of ``state`` through a chunk of time steps, in place.

    Parameters
    ----------
    state : FilterState
        Updated in place (moments, log-likelihood terms, step counters, running sums).
    obs : ndarray, shape (Tc, N), C-contiguous float64
        Gradients taken at the filter's own μ_prior (``has_mu=False``) or pseudo-observations
        ``y = g + h μ`` (``has_mu=True``).
    h : ndarray, shape (Tc, N) or (1, N), C-contiguous float64
        Curvature > 0 per step (one row: the same for every step of the chunk).
    has_mu : bool
        Whether ``obs`` are pseudo-observations.
    out : (ndarray, ndarray), optional
        C-contiguous float64 or float32 arrays of shape (Tc, N) that receive μ_post and σ²_post.
    parallel : bool, optional
        Use the threaded kernel; by default when there is more than one block of parameters.

    Raises
    ------
    ValueError
        Shapes that do not match, ``h <= 0`` or NaN, or a non-finite observation (the state is then invalid).
    """
    steps, n = _check_chunk(state, obs, h)
    store = out is not None
    if out is None:
        m_out = v_out = np.empty((1, 1))
    else:
        m_out, v_out = out
        for name, arr in (("out[0]", m_out), ("out[1]", v_out)):
            if arr.shape != (steps, n) or arr.dtype not in (np.float64, np.float32) or not arr.flags.c_contiguous:
                raise ValueError(f"{name} must be a C-contiguous float64 or float32 array of shape {(steps, n)}")
    accumulate = state.sums is not None
    sums = state.sums if state.sums is not None else np.zeros((3, 1))
    threaded = n > BLOCK if parallel is None else bool(parallel)
    kernel = _kernel(has_mu, store, accumulate, threaded)
    rinv = 1.0 / state.noise_scale
    bad = kernel(
        obs,
        h,
        state.a,
        state.q,
        rinv,
        state.steps,
        state.mean,
        state.var,
        state.quad,
        state.logdet,
        state.prod,
        m_out,
        v_out,
        sums,
    )
    if bad:
        raise ValueError(f"h must be > 0 and g finite everywhere ({int(bad)} entries are not)")
    state.steps += steps
    state.counted += steps


def _check_chunk(state: FilterState, obs: np.ndarray, h: np.ndarray) -> tuple[int, int]:
    n = state.mean.shape[0]
    for name, arr in (("obs", obs), ("h", h)):
        if not isinstance(arr, np.ndarray) or arr.dtype != np.float64 or not arr.flags.c_contiguous or arr.ndim != 2:
            raise ValueError(f"{name} must be a C-contiguous 2-D float64 ndarray")
    if obs.shape[1] != n or obs.shape[0] < 1:
        raise ValueError(f"obs must have shape (T, {n}) with T >= 1, got {obs.shape}")
    if h.shape not in (obs.shape, (1, n)):
        raise ValueError(f"h must have shape {obs.shape} or (1, {n}), got {h.shape}")
    return obs.shape[0], n


# --------------------------------------------------------------------------------------------------------------
# public entry points


@dataclass(frozen=True)
class LikelihoodResult:
    """Log-likelihood of N gradient streams and, when kept, the filter's moments.

    Attributes
    ----------
    loglik : ndarray, shape (...)
        Log-likelihood of each stream (steps from ``burn`` on), conditional on the t = -1 posterior.
    filtered : KalmanResult or None
        μ_post, σ²_post of shape (T, ...) (in the kept dtype) with the priors they imply; None with ``keep="none"``.
    noise_scale : ndarray, shape (...)
        The observation-noise scale r used.
    steps : int
        Number of terms in ``loglik`` (T minus ``burn``).
    """

    loglik: np.ndarray
    filtered: KalmanResult | None
    noise_scale: np.ndarray
    steps: int


def ar1_loglik(
    g: ArrayLike,
    h: ArrayLike,
    a: ArrayLike,
    q: ArrayLike,
    *,
    mu: ArrayLike | None = None,
    noise_scale: ArrayLike = 1.0,
    mean0: ArrayLike = 0.0,
    var0: ArrayLike,
    keep: str = "none",
    burn: int = 0,
) -> LikelihoodResult:
    """Log-likelihood of gradient streams with the latent step given directly as ``w*(t+1) = a w*(t) + N(0, q)``.

    The OU prior of Eq. 14 is ``a = 1 - η²/(2σ²)``, ``q = η²``; any finite ``a`` is accepted here (``a = 1``
    is the random walk), which is what parameter fits need. See :func:`kalman_loglik` for the rest.

    Parameters
    ----------
    g : array_like, shape (T, ...)
        Gradients (finite).
    h : array_like, broadcastable to (T, ...)
        Curvature > 0.
    a, q : array_like, broadcastable to (...)
        Transition factor (finite) and process noise (>= 0).
    mu : array_like, broadcastable to (T, ...), optional
        Points where the gradients were evaluated; ``None``: at this filter's own μ_prior.
    noise_scale : array_like, broadcastable to (...)
        r > 0: the gradient noise variance is ``r h`` (Eq. 12: r = 1).
    mean0, var0 : array_like, broadcastable to (...)
        Posterior at t = -1 (``var0 = inf``: exact diffuse first step).
    keep : {"none", "float64", "float32"}
        Keep μ_post and σ²_post of every step in this dtype (``"none"``: log-likelihood only, no (T, ...) output).
    burn : int
        Leave the first ``burn`` steps out of the log-likelihood (they still update the filter).

    Returns
    -------
    LikelihoodResult
    """
    g_arr = check_array("g", g, allow_inf=True)
    if g_arr.ndim < 1 or g_arr.shape[0] < 1:
        raise ValueError("g must have shape (T, ...) with T >= 1")
    steps, shape = g_arr.shape[0], g_arr.shape[1:]
    n = int(np.prod(shape, dtype=np.int64))
    keep = check_choice("keep", keep, KEEP_OPTIONS)
    burn = check_int("burn", burn, lower=0, upper=steps)
    h_arr = check_array("h", h, allow_inf=True)
    obs, h_rows = _observations(g_arr, h_arr, mu)
    flat = [np.broadcast_to(np.asarray(x, dtype=np.float64), shape).reshape(n) for x in (a, q, mean0, var0)]
    r_flat = np.broadcast_to(np.asarray(noise_scale, dtype=np.float64), shape).reshape(n)
    state = start_state(*flat, noise_scale=r_flat, n=n)
    outputs = None if keep == "none" else (np.empty((steps, n), dtype=keep), np.empty((steps, n), dtype=keep))
    mean0_b, var0_b = state.mean.copy(), state.var.copy()
    flat_obs, flat_h = obs.reshape(steps, n), h_rows.reshape(h_rows.shape[0], n)
    if burn:
        head = None if outputs is None else (outputs[0][:burn], outputs[1][:burn])
        advance(
            state, flat_obs[:burn], flat_h[:burn] if flat_h.shape[0] > 1 else flat_h, has_mu=mu is not None, out=head
        )
        state.reset_loglik()
    if burn < steps:
        tail = None if outputs is None else (outputs[0][burn:], outputs[1][burn:])
        advance(
            state,
            np.ascontiguousarray(flat_obs[burn:]),
            np.ascontiguousarray(flat_h[burn:]) if flat_h.shape[0] > 1 else flat_h,
            has_mu=mu is not None,
            out=tail,
        )
    filtered = None
    if outputs is not None:
        filtered = KalmanResult(
            outputs[0].reshape(steps, *shape),
            outputs[1].reshape(steps, *shape),
            mean0_b.reshape(shape),
            var0_b.reshape(shape),
            state.a.reshape(shape),
            state.q.reshape(shape),
        )
    return LikelihoodResult(state.loglik.reshape(shape), filtered, state.noise_scale.reshape(shape), state.counted)


def _observations(g: np.ndarray, h: np.ndarray, mu: ArrayLike | None) -> tuple[np.ndarray, np.ndarray]:
    """``(obs, h_rows)``: g or y = g + h μ, C-contiguous; h as (T, ...) or, when constant in time, (1, ...)."""
    shape = g.shape[1:]
    if h.ndim <= len(shape) or (h.ndim == g.ndim and h.shape[0] == 1):
        h_rows = np.ascontiguousarray(np.broadcast_to(h, (1, *shape)))
    else:
        h_rows = np.ascontiguousarray(np.broadcast_to(h, g.shape))
    if mu is None:
        return np.ascontiguousarray(g), h_rows
    mu_arr = np.broadcast_to(check_array("mu", mu), g.shape)
    return np.ascontiguousarray(g + h_rows * mu_arr), h_rows  # y = g + h μ (Eq. 41's pseudo-observation)


def kalman_loglik(
    g: ArrayLike,
    h: ArrayLike,
    eta: ArrayLike,
    sigma2: ArrayLike,
    *,
    mu: ArrayLike | None = None,
    noise_scale: ArrayLike = 1.0,
    mean0: ArrayLike | None = None,
    var0: ArrayLike | None = None,
    predict: str = "paper",
    keep: str = "none",
    burn: int = 0,
) -> LikelihoodResult:
    """Marginal log-likelihood of gradient streams under Eqs. 12 and 14, with the filter of Eqs. 17, 18a, 41.

    ``log p(g(0..T-1)) = Σ_t -½ (log 2π S(t) + e(t)²/S(t))``, ``S = h² σ²_prior + r h``, ``e = g + h (μ - μ_prior)``
    (Eqs. 12, 16a); every entry of the parameter array is an independent stream.

    Parameters
    ----------
    g : array_like, shape (T, ...)
        Gradients of the summed log-likelihood (finite).
    h : array_like, broadcastable to (T, ...)
        Known curvature H_ii(t) > 0 (time-varying allowed).
    eta, sigma2 : array_like, broadcastable to (...)
        OU parameters: η > 0, σ² in (0, inf] (inf: random walk); ``predict="paper"`` needs η² < 2σ².
    mu : array_like, broadcastable to (T, ...), optional
        Where each gradient was evaluated; ``None``: at this filter's own μ_prior (the paper's setting, valid
        only for the parameters that generated the evaluation points -- pass ``mu`` to compare parameters).
    noise_scale : array_like, broadcastable to (...)
        r > 0 in ``Var[g | w*] = r h`` (Eq. 12: r = 1).
    mean0, var0 : array_like, optional
        Posterior at t = -1; default 0 and σ² (Alg. 1's start; σ² = inf gives an exact diffuse first step).
    predict : {"paper", "exponential"}
    keep : {"none", "float64", "float32"}
        Also return μ_post and σ²_post of every step, in this dtype.
    burn : int
        Leave the first ``burn`` steps out of the sum.

    Returns
    -------
    LikelihoodResult
    """
    g_arr = check_array("g", g, allow_inf=True)
    if g_arr.ndim < 1:
        raise ValueError("g must have shape (T, ...) with T >= 1")
    shape = g_arr.shape[1:]
    a, q, sigma2_b = broadcast_transition(eta, sigma2, shape, predict)
    return ar1_loglik(
        g_arr,
        h,
        a,
        q,
        mu=mu,
        noise_scale=noise_scale,
        mean0=0.0 if mean0 is None else mean0,
        var0=sigma2_b if var0 is None else var0,
        keep=keep,
        burn=burn,
    )


def loglik_from_moments(
    g: ArrayLike,
    h: ArrayLike,
    mean_prior: ArrayLike,
    var_prior: ArrayLike,
    *,
    mu: ArrayLike | None = None,
    noise_scale: ArrayLike = 1.0,
) -> np.ndarray:
    """Per-step log-likelihood terms from a filter's prior moments, plain NumPy (the readable reference).

    ``-½ (log 2π S + e²/S)`` with ``S = h² σ²_prior + r h`` and ``e = g + h (μ - μ_prior)`` (Eqs. 12, 16a, 41).
    A step with ``σ²_prior = inf`` gets the exact diffuse term ``-½ log(2π h²)``.

    Parameters
    ----------
    g, h, mean_prior, var_prior : array_like, shape (T, ...) (h broadcastable)
    mu : array_like, optional
        Evaluation points; ``None``: the gradients were taken at ``mean_prior``.
    noise_scale : array_like
        r > 0.

    Returns
    -------
    ndarray, shape (T, ...)
    """
    g_arr = np.asarray(g, dtype=np.float64)
    h_arr = np.broadcast_to(np.asarray(h, dtype=np.float64), g_arr.shape)
    m_prior = np.asarray(mean_prior, dtype=np.float64)
    v_prior = np.asarray(var_prior, dtype=np.float64)
    r = np.asarray(noise_scale, dtype=np.float64)
    e = g_arr if mu is None else g_arr + h_arr * (np.asarray(mu, dtype=np.float64) - m_prior)  # Eq. 41
    diffuse = np.isinf(v_prior)
    with np.errstate(invalid="ignore"):
        s = h_arr * h_arr * v_prior + r * h_arr  # Eqs. 12, 16a
        terms = -0.5 * (_LOG_2PI + np.log(s) + e * e / s)
    return np.where(diffuse, -0.5 * (_LOG_2PI + np.log(h_arr * h_arr)), terms)


def joint_loglik(
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
) -> tuple[float, JointKalmanResult]:
    """Log-likelihood of one n-dimensional gradient stream under the joint model, from the joint filter's priors.

    ``g(t) | past ~ N(H (μ_prior - μ), H Σ_prior H + H)`` (Eq. 12 with the full Hessian, Eq. 16a), so
    ``log p = Σ_t -½ (n log 2π + log det S + eᵀ S⁻¹ e)``, ``e = g + H (μ - μ_prior)`` (Eq. 41, matrix form).
    Arguments as :func:`filtering.state_space.joint_kalman_filter`; every ``S(t)`` must be positive definite
    (H(t) non-singular).

    Returns
    -------
    loglik : float
    filtered : JointKalmanResult
    """
    res = joint_kalman_filter(
        g,
        h,
        eta,
        sigma2,
        mu=mu,
        mean0=mean0,
        var0=var0,
        predict=predict,
        transition_matrix=transition_matrix,
        process_noise=process_noise,
    )
    g_arr = np.asarray(g, dtype=np.float64)
    steps, n = g_arr.shape
    h_t = np.broadcast_to(np.asarray(h, dtype=np.float64), (steps, n, n))
    e = g_arr.copy()
    if mu is not None:
        mu_t = np.broadcast_to(np.asarray(mu, dtype=np.float64), (steps, n))
        e += np.einsum("tij,tj->ti", h_t, mu_t - res.mean_prior)  # Eq. 41 (matrix form)
    s = h_t @ res.cov_prior @ h_t + h_t  # Eqs. 12, 16a (matrix form)
    try:
        chol = np.linalg.cholesky(0.5 * (s + np.swapaxes(s, 1, 2)))
    except np.linalg.LinAlgError as exc:
        raise ValueError(
            "the innovation covariance H Σ_prior H + H must be positive definite (H non-singular)"
        ) from exc
    z = np.linalg.solve(chol, e[..., None])[..., 0]
    logdet = 2.0 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum()
    return float(-0.5 * (steps * n * _LOG_2PI + logdet + np.sum(z * z))), res


# --------------------------------------------------------------------------------------------------------------
# a second-order latent: AR(2) / integrated AR(1), the alternatives to Eq. 14 that prior comparisons need


def _ar2_loops(obs, h, phi1, phi2, q, r, mean0, var0, burn, loglik):  # pragma: no cover
    # state (w(t), w(t-1)), transition [[phi1, phi2], [1, 0]], noise diag(q, 0); observation y = h w(t) + N(0, r h)
    n = obs.shape[1]
    n_blocks = (n + BLOCK - 1) // BLOCK
    bad = np.zeros(n_blocks, dtype=np.int64)
    for b in numba.prange(n_blocks):
        lo = b * BLOCK
        hi = min(lo + BLOCK, n)
        bad[b] = _ar2_block(obs, h, lo, hi, phi1, phi2, q, r, mean0, var0, burn, loglik)
    return bad.sum()


@_inline
def _ar2_row(y, ht, f1, f2, qb, rb, m1, m2, p11, p12, p22, quad, prod, sbuf):  # pragma: no cover
    """One step of the second-order filter for a block; returns (bad inputs, factors outside the safe range)."""
    bad = np.int64(0)
    outside = np.int64(0)
    for j in range(m1.shape[0]):
        hj = ht[j]
        bad += 1 - np.int64(hj > 0.0) + 1 - np.int64(abs(y[j]) < np.inf)
        mp1 = f1[j] * m1[j] + f2[j] * m2[j]  # Eq. 17a (matrix form)
        mp2 = m1[j]
        pp11 = f1[j] * f1[j] * p11[j] + 2.0 * f1[j] * f2[j] * p12[j] + f2[j] * f2[j] * p22[j] + qb[j]  # Eq. 17b
        pp12 = f1[j] * p11[j] + f2[j] * p12[j]
        pp22 = p11[j]
        e = y[j] - hj * mp1  # Eq. 41's innovation
        s = hj * hj * pp11 + rb[j] * hj  # Eqs. 12, 16a
        inv_s = 1.0 / s
        k1, k2 = pp11 * hj * inv_s, pp12 * hj * inv_s  # Eqs. 18a, 41 (matrix form): gain Σ_prior Hᵀ S⁻¹
        m1[j], m2[j] = mp1 + k1 * e, mp2 + k2 * e
        keep = 1.0 - k1 * hj
        p11[j], p12[j], p22[j] = pp11 * keep, pp12 * keep, pp22 - k2 * hj * pp12
        quad[j] += e * e * inv_s
        inside = np.int64(s > _SAFE_LO) * np.int64(s < _SAFE_HI)
        prod[j] *= s if inside else 1.0
        sbuf[j] = s
        outside += 1 - inside
    return bad, outside


@_inline
def _ar2_block(obs, h, lo, hi, phi1, phi2, q, r, mean0, var0, burn, loglik):  # pragma: no cover
    width = hi - lo
    f1, f2, qb, rb = phi1[lo:hi], phi2[lo:hi], q[lo:hi], r[lo:hi]
    m1, m2 = mean0[lo:hi].copy(), mean0[lo:hi].copy()
    p11, p12, p22 = var0[lo:hi].copy(), np.zeros(width), var0[lo:hi].copy()
    quad, logdet, prod, sbuf = np.zeros(width), np.zeros(width), np.ones(width), np.empty(width)
    bad = np.int64(0)
    for t in range(obs.shape[0]):
        th = t if h.shape[0] > 1 else 0
        nbad, outside = _ar2_row(obs[t, lo:hi], h[th, lo:hi], f1, f2, qb, rb, m1, m2, p11, p12, p22, quad, prod, sbuf)
        bad += nbad
        if outside:
            _log_outside(sbuf, logdet)
        if t % WINDOW == WINDOW - 1:
            _flush(prod, logdet)
        if t == burn - 1:  # the steps so far only set up the state: forget their terms
            quad[:] = 0.0
            logdet[:] = 0.0
            prod[:] = 1.0
    counted = obs.shape[0] - burn
    for j in range(width):
        loglik[lo + j] = -0.5 * (counted * _LOG_2PI + logdet[j] + math.log(prod[j]) + quad[j])
    return bad


def _ar2_build(parallel: bool) -> Callable[..., Any]:
    """One compilation of :func:`_ar2_loops` under its own qualified name: numba keys its disk cache by that
    name, and the two builds once shared an entry, so the "parallel" kernel ran the serial code."""
    name = f"_ar2_{'parallel' if parallel else 'serial'}_{_SOURCE_HASH}"
    clone = types.FunctionType(_ar2_loops.__code__, _ar2_loops.__globals__, name)
    clone.__qualname__ = name
    return numba.njit(parallel=parallel, cache=True, nogil=True, error_model="numpy")(clone)


_AR2_PARALLEL = _ar2_build(parallel=True)
_AR2_SERIAL = _ar2_build(parallel=False)


def ar2_run(
    obs: np.ndarray,
    h: np.ndarray,
    phi1: np.ndarray,
    phi2: np.ndarray,
    q: np.ndarray,
    noise_scale: np.ndarray,
    mean0: np.ndarray,
    var0: np.ndarray,
    burn: int,
) -> np.ndarray:
    """The compiled second-order filter on prepared inputs (no argument checks; see :func:`ar2_loglik`).

    ``obs`` (T, N) pseudo-observations and ``h`` (T, N) or (1, N), C-contiguous float64; the six parameter
    arrays of shape (N,); returns the log-likelihood of steps ``burn..T-1``, shape (N,).
    """
    out = np.empty(obs.shape[1])
    f1, f2, qq, r, m0, v0 = (
        np.ascontiguousarray(x, dtype=np.float64) for x in (phi1, phi2, q, noise_scale, mean0, var0)
    )
    kernel = _AR2_PARALLEL if obs.shape[1] > BLOCK else _AR2_SERIAL
    bad = kernel(obs, h, f1, f2, qq, r, m0, v0, int(burn), out)
    if bad:
        raise ValueError(f"h must be > 0 and g finite everywhere ({int(bad)} entries are not)")
    return out


def ar2_loglik(
    g: ArrayLike,
    h: ArrayLike,
    phi1: ArrayLike,
    phi2: ArrayLike,
    q: ArrayLike,
    *,
    mu: ArrayLike | None = None,
    noise_scale: ArrayLike = 1.0,
    mean0: ArrayLike = 0.0,
    var0: ArrayLike,
    burn: int = 0,
) -> np.ndarray:
    """Log-likelihood of gradient streams whose latent is second order: ``w(t+1) = φ1 w(t) + φ2 w(t-1) + N(0, q)``.

    The observation model is Eq. 12's (``g ~ N(h (w - μ), r h)``); the filter is the matrix form of Eqs. 17, 18a,
    41 on the state (w(t), w(t-1)), started from independent ``w(-1), w(-2) ~ N(mean0, var0)``. ``φ2 = 0`` is
    the OU prior (AR(1), Eq. 14, with ``a = φ1``); ``φ1 = 1 + ρ, φ2 = -ρ`` is an integrated AR(1): increments
    that are themselves autocorrelated (a smoothly drifting optimum), with the random walk at ρ = 0.

    Parameters
    ----------
    g : array_like, shape (T, ...)
    h : array_like, broadcastable to (T, ...)
        Curvature > 0.
    phi1, phi2, q : array_like, broadcastable to (...)
        AR coefficients (finite) and innovation variance (>= 0).
    mu : array_like, optional
        Evaluation points (``None``: μ = 0, i.e. ``g`` are the pseudo-observations ``y``).
    noise_scale : array_like
        r > 0.
    mean0, var0 : array_like
        Prior mean and finite variance (> 0) of w(-1) and of w(-2).
    burn : int
        Leave the first ``burn`` steps out of the sum.

    Returns
    -------
    ndarray, shape (...)
    """
    g_arr = check_array("g", g, allow_inf=True)
    if g_arr.ndim < 1 or g_arr.shape[0] < 1:
        raise ValueError("g must have shape (T, ...) with T >= 1")
    steps, shape = g_arr.shape[0], g_arr.shape[1:]
    n = int(np.prod(shape, dtype=np.int64))
    burn = check_int("burn", burn, lower=0, upper=steps)
    obs, h_rows = _observations(g_arr, check_array("h", h, allow_inf=True), 0.0 if mu is None else mu)

    def flat(name: str, x: ArrayLike, lower: float | None = None, allow_equal: bool = False) -> np.ndarray:
        return np.broadcast_to(check_array(name, x, lower=lower, allow_equal=allow_equal), shape).reshape(n)

    out = ar2_run(
        obs.reshape(steps, n),
        h_rows.reshape(h_rows.shape[0], n),
        flat("phi1", phi1),
        flat("phi2", phi2),
        flat("q", q, 0.0, True),
        flat("noise_scale", noise_scale, 0.0),
        flat("mean0", mean0),
        flat("var0", var0, 0.0),
        burn,
    )
    return out.reshape(shape)
