"""Learning the prior's parameters from gradient streams: maximum marginal likelihood and EM, with standard errors.

The data are N independent streams ``g(t)`` with known curvature ``h(t)`` and the points ``μ(t)`` at which the
gradients were taken (Eq. 12; see :mod:`filtering.likelihood` for why μ must be given). The parameters are
those of the OU prior of Eq. 14 -- η² (process noise per step) and σ² (prior variance), so that
``a = 1 - η²/(2σ²)`` and ``q = η²`` -- or of a random walk (σ² = ∞, only η²), and optionally the
observation-noise scale r in ``Var[g | w*] = r h`` (Eq. 12 has r = 1).

:func:`fit` maximises the log-likelihood of every stream at once: each evaluation is one pass of the compiled
filter over all N streams, each with its own parameters, so a set of independent problems (streams, or seeds of
a simulation) costs one kernel call per evaluation. The optimiser is Newton's method with a Levenberg-Marquardt
safeguard, per column, in the transformed space ``θ = log(parameter)``; gradient and Hessian are central
differences of the log-likelihood. Standard errors come from the observed information: ``Cov(θ) = (-∇²ℓ)⁻¹``
at the maximum, carried back by the delta method (``se(p) = p · se(log p)``); the 95 % intervals are taken in
θ and mapped back (``p · exp(±1.96 se(log p))``), which keeps them positive.

:func:`em` is the expectation-maximisation alternative where its M-step is closed-form: the AR(1) form
``(a, q, r)`` of the same model (η² = q, σ² = q / (2 (1 - a))) with a fixed initial state, from the RTS
smoother's moments (:mod:`filtering.smoother`). Each iteration cannot lower the likelihood, which the tests
check; it converges more slowly than :func:`fit`, to the same maximum.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from .likelihood import advance, ar1_loglik, ar2_run, start_state
from .ou import transition
from .smoother import rts_smoother
from .validation import check_array, check_choice, check_int

__all__ = ["MODELS", "EmResult", "FitResult", "Optimum", "Streams", "em", "fit", "maximise", "observations"]

MODELS = ("ou", "random_walk", "iar", "ar2")
Z95 = 1.959963984540054
STARTS = 2  # runs of the optimiser per stream, from the best points of a grid
STALL = 10  # iterations without progress after which a problem stops (unconverged)
TILE_BYTES = 64 * 2**20  # data copied side by side so that one kernel call evaluates many parameter columns
TILED_KEPT = 3  # tilings of the data kept between likelihood calls (each at most TILE_BYTES per array)
_DEBUG = False  # two-sided 95 % normal quantile


# --------------------------------------------------------------------------------------------------------------
# data and models


@dataclass(frozen=True)
class Streams:
    """N gradient streams prepared for repeated likelihood evaluations.

    Attributes
    ----------
    obs : ndarray, shape (T, N)
        Pseudo-observations ``y = g + h μ`` (or g itself when no μ was given: evaluated at μ = 0).
    h : ndarray, shape (T, N) or (1, N)
        Curvature > 0.
    shape : tuple of int
        The parameter shape the N streams came from.
    """

    obs: np.ndarray
    h: np.ndarray
    shape: tuple[int, ...]

    @property
    def n(self) -> int:
        """Number of streams N."""
        return int(self.obs.shape[1])


def observations(g: ArrayLike, h: ArrayLike, mu: ArrayLike | None = None) -> Streams:
    """Check and flatten gradient streams: ``y = g + h μ`` of shape (T, N) (Eq. 41's pseudo-observation).

    Parameters
    ----------
    g : array_like, shape (T, ...)
        Gradients, finite.
    h : array_like, broadcastable to (T, ...)
        Curvature > 0.
    mu : array_like, broadcastable to (T, ...), optional
        Evaluation points; ``None`` treats the gradients as taken at μ = 0 (``y = g``).
    """
    g_arr = check_array("g", g)
    if g_arr.ndim < 1 or g_arr.shape[0] < 2:
        raise ValueError(f"g must have shape (T, ...) with T >= 2, got {g_arr.shape}")
    h_arr = check_array("h", h, lower=0.0)
    steps, shape = g_arr.shape[0], g_arr.shape[1:]
    n = int(np.prod(shape, dtype=np.int64))
    if h_arr.ndim <= len(shape) or (h_arr.ndim == g_arr.ndim and h_arr.shape[0] == 1):
        h_rows = np.ascontiguousarray(np.broadcast_to(h_arr, (1, *shape))).reshape(1, n)
    else:
        h_rows = np.ascontiguousarray(np.broadcast_to(h_arr, g_arr.shape)).reshape(steps, n)
    obs = g_arr.reshape(steps, n)
    if mu is not None:
        obs = obs + h_rows * np.broadcast_to(check_array("mu", mu), g_arr.shape).reshape(steps, n)  # y = g + h μ
    return Streams(np.ascontiguousarray(obs, dtype=np.float64), h_rows, shape)


# how each parameter is fitted: ρ in (-1, 1) as atanh ρ, the AR(2) coefficients as they are, the rest as logs
_TRANSFORM = {"rho": "tanh", "phi1": "identity", "phi2": "identity"}


def _forward(name: str, theta: np.ndarray) -> np.ndarray:
    """Parameter from its unconstrained θ."""
    kind = _TRANSFORM.get(name, "log")
    if kind == "tanh":
        return np.tanh(theta)
    if kind == "identity":
        return theta
    with np.errstate(over="ignore"):  # a trial step far out gives inf, whose likelihood is then -inf (rejected)
        return np.exp(theta)


def _derivative(name: str, p: np.ndarray) -> np.ndarray:
    """dp/dθ at the parameter value p (for the delta method)."""
    kind = _TRANSFORM.get(name, "log")
    return 1.0 - p**2 if kind == "tanh" else (np.ones_like(p) if kind == "identity" else p)


def _inverse(name: str, p: ArrayLike) -> np.ndarray:
    """θ from a parameter value, checked against the parameter's range."""
    kind = _TRANSFORM.get(name, "log")
    if kind == "tanh":
        return np.arctanh(check_array(f"start[{name!r}]", p, lower=-1.0, upper=1.0))
    if kind == "identity":
        return check_array(f"start[{name!r}]", p)
    return np.log(check_array(f"start[{name!r}]", p, lower=0.0))


@dataclass(frozen=True)
class _Model:
    """Map between the fitted parameters and the filter's coefficients.

    ``ou`` (η², σ²: ``a = 1 - η²/(2σ²)``, ``q = η²``, Eq. 14) and ``random_walk`` (η²; σ² = ∞) are first
    order; ``iar`` (η², ρ: ``w(t+1) - w(t) = ρ (w(t) - w(t-1)) + N(0, η²)``) and ``ar2`` (η², φ1, φ2:
    ``w(t+1) = φ1 w(t) + φ2 w(t-1) + N(0, η²)``, unconstrained, so that it contains OU (φ2 = 0), the random walk
    and the integrated AR(1) (φ1 + φ2 = 1)) are second order. ``noise_scale`` r is appended when fitted.
    """

    kind: str
    predict: str
    noise_scale: float | None  # None: fitted

    @property
    def names(self) -> tuple[str, ...]:
        base = {
            "ou": ("eta2", "sigma2"),
            "random_walk": ("eta2",),
            "iar": ("eta2", "rho"),
            "ar2": ("eta2", "phi1", "phi2"),
        }
        return base[self.kind] + (("noise_scale",) if self.noise_scale is None else ())

    @property
    def second_order(self) -> bool:
        """Whether the latent state is (w(t), w(t-1))."""
        return self.kind in ("iar", "ar2")

    def natural(self, theta: np.ndarray) -> np.ndarray:
        """Parameters from the unconstrained θ (k, M)."""
        return np.stack([_forward(name, row) for name, row in zip(self.names, theta, strict=True)])

    def slope(self, p: np.ndarray) -> np.ndarray:
        """dp/dθ for the delta method, shape (k, M)."""
        return np.stack([_derivative(name, row) for name, row in zip(self.names, p, strict=True)])

    def noise(self, p: np.ndarray) -> np.ndarray:
        """The observation-noise scale r of every column."""
        return p[-1] if self.noise_scale is None else np.full_like(p[0], self.noise_scale)

    def coefficients(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(a, q, r)`` of a first-order model from parameters ``p`` of shape (k, M) (Eq. 14)."""
        if self.kind == "ou":
            a, q = transition(np.sqrt(p[0]), p[1], self.predict)  # Eq. 14
        else:
            a, q = np.ones_like(p[0]), p[0]
        return np.asarray(a), np.asarray(q), self.noise(p)

    def ar2_coefficients(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(φ1, φ2, q, r)`` of a second-order model."""
        if self.kind == "iar":
            return 1.0 + p[1], -p[1], p[0], self.noise(p)
        return p[1], p[2], p[0], self.noise(p)


def _initial_state(init: str | tuple[np.ndarray, np.ndarray], kind: str, sigma2: np.ndarray | None, cols: np.ndarray):
    """``(mean0, var0)`` of shape (M,) for the chosen initialisation (fixed values: per stream, shape (N,))."""
    n = cols.size
    if isinstance(init, tuple):
        return init[0][cols], init[1][cols]
    if init == "paper" and kind == "ou" and sigma2 is not None:
        return np.zeros(n), sigma2  # Alg. 1's start: posterior N(0, σ²) at t = -1
    return np.zeros(n), np.full(n, np.inf)  # exact diffuse (also "paper" for a random walk, σ² = ∞)


class _Tilings:
    """Streams repeated side by side (C-contiguous), the last :data:`TILED_KEPT` tilings kept between calls.

    A Newton iteration alternates between the derivative batch and the line search, and rebuilding a tiling
    costs more than the filter pass it feeds.
    """

    def __init__(self, streams: Streams) -> None:
        self.streams = streams
        self.kept: OrderedDict[tuple[bytes, int], tuple[np.ndarray, np.ndarray, np.ndarray]] = OrderedDict()

    def get(self, cols: np.ndarray, copies: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(tiled cols (M·C,), obs (T, M·C), h (T or 1, M·C))`` for the streams ``cols`` repeated ``copies`` times."""
        key = (cols.tobytes(), copies)
        if key in self.kept:
            self.kept.move_to_end(key)
            return self.kept[key]
        while len(self.kept) >= TILED_KEPT:
            self.kept.popitem(last=False)
        tiled = np.tile(cols, copies)
        # np.take along an axis gathers the (C-contiguous) streams about 6x faster than fancy indexing obs[:, tiled]
        obs, h = (np.take(x, tiled, axis=1) for x in (self.streams.obs, self.streams.h))
        self.kept[key] = (tiled, obs, h)
        return self.kept[key]


def _loglik_function(
    streams: Streams, model: _Model, init: str | tuple[np.ndarray, np.ndarray], burn: int
) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """ℓ(θ, cols): θ of shape (k, M·C) (unconstrained) for the C streams ``cols``, tiled M times -> shape (M·C,).

    The M copies are M passes of the kernel over the same (T, C) data, each with its own parameters.
    """
    tilings = _Tilings(streams)

    def one_pass(theta: np.ndarray, obs: np.ndarray, h: np.ndarray, cols: np.ndarray) -> np.ndarray:
        p = model.natural(theta)
        if model.second_order:
            assert isinstance(init, tuple)
            phi1, phi2, q2, r2 = model.ar2_coefficients(p)
            out2 = ar2_run(
                np.ascontiguousarray(obs),
                np.ascontiguousarray(h),
                phi1,
                phi2,
                q2,
                r2,
                init[0][cols],
                init[1][cols],
                burn,
            )
            return np.where(np.isfinite(out2), out2, -np.inf)
        a, q, r = model.coefficients(p)
        mean0, var0 = _initial_state(init, model.kind, p[1] if model.kind == "ou" else None, cols)
        degenerate = (a == 0.0) & np.isinf(var0)  # a diffuse start needs a != 0: such a point is excluded
        state = start_state(np.where(degenerate, 1.0, a), q, mean0, var0, noise_scale=r, n=cols.size)
        if burn:
            advance(state, np.ascontiguousarray(obs[:burn]), _rows(h, 0, burn), has_mu=True)
            state.reset_loglik()
        advance(state, np.ascontiguousarray(obs[burn:]), _rows(h, burn, obs.shape[0]), has_mu=True)
        out = state.loglik
        return np.where(np.isfinite(out) & ~degenerate, out, -np.inf)

    def loglik(theta: np.ndarray, cols: np.ndarray) -> np.ndarray:
        c = cols.size
        if theta.shape[1] % c:
            raise ValueError(f"theta must have a multiple of {c} columns, got {theta.shape[1]}")
        # copies of the data side by side, as many as fit in TILE_BYTES, so that one kernel call does many
        # evaluations (a call costs more than a small problem's filter); the M copies go in equal parts (the
        # last one padded with copies of the first), so that every part reuses one tiled array
        m = theta.shape[1] // c
        largest = max(1, TILE_BYTES // max(streams.obs.shape[0] * c * 8, 1))
        n_parts = -(-m // largest)
        copies = -(-m // n_parts)
        tiled, obs, h = tilings.get(cols, copies)
        parts = []
        for i in range(0, m, copies):
            part = theta[:, i * c : (i + copies) * c]
            width = part.shape[1]
            if width < copies * c:
                part = np.concatenate([part, theta[:, : copies * c - width]], axis=1)
            parts.append(one_pass(part, obs, h, tiled)[:width])
        return np.concatenate(parts)

    return loglik


def _rows(h: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Rows lo:hi of a (T, C) curvature, or the single row of a constant one."""
    return h if h.shape[0] == 1 else np.ascontiguousarray(h[lo:hi])


# --------------------------------------------------------------------------------------------------------------
# the vectorised maximiser


def _derivatives(fun: Callable[[np.ndarray], np.ndarray], theta: np.ndarray, f0: np.ndarray, step: float):
    """Central-difference gradient (k, C) and Hessian (C, k, k) of ``fun`` at ``theta`` (k, C), in one call."""
    k, n = theta.shape
    shifts = []
    for i in range(k):
        for sign in (1.0, -1.0):
            d = np.zeros((k, 1))
            d[i] = sign * step
            shifts.append(d)
    for i in range(k):
        for j in range(i + 1, k):
            for si, sj in ((1, 1), (1, -1), (-1, 1), (-1, -1)):
                d = np.zeros((k, 1))
                d[i], d[j] = si * step, sj * step
                shifts.append(d)
    values = fun(np.concatenate([theta + d for d in shifts], axis=1)).reshape(len(shifts), n)
    grad = np.empty((k, n))
    hess = np.empty((n, k, k))
    for i in range(k):
        fp, fm = values[2 * i], values[2 * i + 1]
        grad[i] = (fp - fm) / (2 * step)
        hess[:, i, i] = (fp - 2 * f0 + fm) / step**2
    idx = 2 * k
    for i in range(k):
        for j in range(i + 1, k):
            pp, pm, mp, mm = values[idx : idx + 4]
            hess[:, i, j] = hess[:, j, i] = (pp - pm - mp + mm) / (4 * step**2)
            idx += 4
    return grad, hess


@dataclass(frozen=True)
class Optimum:
    """Result of :func:`maximise`: θ (k, N), the maxima (N,), the Hessian there (N, k, k), flags, iterations."""

    theta: np.ndarray
    value: np.ndarray
    hessian: np.ndarray
    converged: np.ndarray
    iterations: int


def maximise(
    fun: Callable[[np.ndarray, np.ndarray], np.ndarray],
    theta0: np.ndarray,
    *,
    step: float = 1e-4,
    max_iter: int = 100,
    tol: float = 1e-9,
    bound: float = 40.0,
) -> Optimum:
    """Maximise N independent smooth functions of k variables at once (Newton, Levenberg-Marquardt fallback).

    Parameters
    ----------
    fun : callable
        ``fun(theta, cols)``: ``theta`` of shape (k, M·C) for the C problems ``cols`` (indices into 0..N-1),
        tiled M times; returns the M·C values. A batch of perturbed copies is thus one call.
    theta0 : ndarray, shape (k, N)
        Starting points.
    step : float
        Central-difference step in θ.
    max_iter : int
    tol : float
        A problem has converged when its Newton decrement ``½ gᵀ (-H)⁻¹ g`` is below ``tol`` with ``H``
        negative definite; only unconverged problems are evaluated further.
    bound : float
        A problem whose ``|θ|`` exceeds this (a maximum at the edge of the space) stops, unconverged; so does
        one whose value has not risen by more than ``tol`` for :data:`STALL` iterations in a row.

    Returns
    -------
    Optimum
    """
    theta = np.array(theta0, dtype=np.float64)
    n = theta.shape[1]
    every = np.arange(n)
    value = fun(theta, every)
    damping = np.zeros(n)
    done = np.zeros(n, dtype=bool)
    stopped = ~np.isfinite(value)
    stalled = np.zeros(n, dtype=np.int64)  # consecutive iterations without a gain above tol
    iterations = 0
    while iterations < max_iter:
        cols = np.flatnonzero(~done & ~stopped)
        if cols.size == 0:
            break
        iterations += 1
        sub = _restrict(fun, cols)
        grad, hess = _derivatives(sub, theta[:, cols], value[cols], step)
        newly = _converged(grad, hess, tol)
        done[cols[newly]] = True
        move = ~newly
        if move.any():
            c = cols[move]
            before = value[c].copy()
            theta[:, c], value[c], damping[c] = _damped_step(
                _restrict(fun, c), theta[:, c], value[c], grad[:, move], hess[move], damping[c]
            )
            stalled[c] = np.where(value[c] - before > tol, 0, stalled[c] + 1)
        stopped |= np.any(np.abs(theta) > bound, axis=0) | (stalled >= STALL)
    _, hess = _derivatives(_restrict(fun, every), theta, value, step)
    return Optimum(theta, value, hess, done, iterations)


def _restrict(fun: Callable[[np.ndarray, np.ndarray], np.ndarray], cols: np.ndarray):
    return lambda theta: fun(theta, cols)


def _solve_each(mat: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Batched ``solve(mat[i], rhs[i])``; NaN for a singular or non-finite system instead of an exception."""
    bad = ~np.all(np.isfinite(mat), axis=(1, 2)) | ~np.all(np.isfinite(rhs), axis=(1, 2))
    safe = np.where(bad[:, None, None], np.eye(mat.shape[1]), mat)
    try:
        out = np.linalg.solve(safe, np.where(bad[:, None, None], 0.0, rhs))
    except np.linalg.LinAlgError:
        out = np.empty(rhs.shape)
        for i in range(mat.shape[0]):
            try:
                out[i] = np.linalg.solve(safe[i], rhs[i])
            except np.linalg.LinAlgError:
                out[i] = np.nan
    out[bad] = np.nan
    return out


def _converged(grad: np.ndarray, hess: np.ndarray, tol: float) -> np.ndarray:
    """Newton decrement below ``tol`` at a negative-definite Hessian, per column."""
    sym = 0.5 * (hess + np.swapaxes(hess, 1, 2))
    nd = np.all(np.linalg.eigvalsh(sym) < 0, axis=1)
    with np.errstate(all="ignore"):
        newton = _solve_each(np.where(nd[:, None, None], -sym, np.eye(sym.shape[1])), grad.T[..., None])
    decrement = 0.5 * np.einsum("nk,nk->n", grad.T, newton[..., 0])
    return nd & np.isfinite(decrement) & (decrement < tol)


def _damped_step(fun, theta, value, grad, hess, damping, tries: int = 10):
    """``δ = (-H + λ (|diag H| + 1) I)⁻¹ g``: the Newton step when λ = 0 works, λ raised until ℓ rises."""
    k, n = theta.shape
    neg = -0.5 * (hess + np.swapaxes(hess, 1, 2))
    scale = np.einsum("nk,kj->nkj", np.abs(np.diagonal(neg, axis1=1, axis2=2)) + 1.0, np.eye(k))
    # start undamped where -H is positive definite, else with just enough damping to make it so (in the metric
    # of the diagonal scale: -H + λ D is positive definite iff λ > -λ_min(D^-½ (-H) D^-½))
    d = 1.0 / np.sqrt(np.abs(np.diagonal(neg, axis1=1, axis2=2)) + 1.0)
    lowest = np.linalg.eigvalsh(neg * d[:, :, None] * d[:, None, :])[:, 0]
    lam = np.where(lowest > 0, damping, np.maximum(damping, 1.5 * -lowest + 1e-6))
    pending = np.ones(n, dtype=bool)
    for _ in range(tries):
        mat = neg + lam[:, None, None] * scale
        with np.errstate(all="ignore"):
            delta = _solve_each(mat, grad.T[..., None])[..., 0].T
        delta = np.clip(np.where(np.isfinite(delta), delta, 0.0), -3.0, 3.0)
        trial = theta + delta
        f_trial = fun(trial)
        better = pending & (f_trial > value)
        theta = np.where(better, trial, theta)
        value = np.where(better, f_trial, value)
        pending &= ~better
        lam = np.where(better, lam / 10, np.where(pending, np.maximum(lam * 10, 1e-3), lam))
        if not pending.any():
            break
    return theta, value, lam


# --------------------------------------------------------------------------------------------------------------
# maximum likelihood


@dataclass(frozen=True)
class FitResult:
    """Maximum-likelihood fit of N independent streams.

    Attributes
    ----------
    names : tuple of str
        Parameter names, from ``("eta2", "sigma2", "noise_scale")``.
    params, stderr, ci_low, ci_high : dict of str -> ndarray, shape (...)
        Estimates, delta-method standard errors and 95 % intervals (taken in log space and mapped back).
    loglik : ndarray, shape (...)
        The maximised log-likelihood.
    cov_log : ndarray, shape (..., k, k)
        Covariance of the log-parameters from the observed information, ``(-∇²ℓ)⁻¹``.
    converged : ndarray of bool, shape (...)
        Newton decrement below tolerance with a negative-definite Hessian.
    iterations : int
    model : str
    init : str
    """

    names: tuple[str, ...]
    params: dict[str, np.ndarray]
    stderr: dict[str, np.ndarray]
    ci_low: dict[str, np.ndarray]
    ci_high: dict[str, np.ndarray]
    loglik: np.ndarray
    cov_log: np.ndarray
    converged: np.ndarray
    iterations: int
    model: str
    init: str

    @property
    def n_params(self) -> int:
        """Number of free parameters k."""
        return len(self.names)


def fit(
    g: ArrayLike,
    h: ArrayLike,
    *,
    mu: ArrayLike | None = None,
    model: str = "ou",
    noise_scale: float | None = None,
    init: str | tuple[ArrayLike, ArrayLike] = "diffuse",
    predict: str = "paper",
    burn: int = 0,
    start: dict[str, ArrayLike] | None = None,
    extra_starts: list[dict[str, ArrayLike]] | None = None,
    max_iter: int = 200,
) -> FitResult:
    """Maximum marginal likelihood of a prior's parameters (and r) for every stream at once.

    Models (see :data:`MODELS`): ``ou`` (η², σ²; Eq. 14), ``random_walk`` (η²), ``iar`` (η², ρ) and ``ar2``
    (η², φ1, φ2), the last two second order (:func:`filtering.likelihood.ar2_loglik`).

    Parameters
    ----------
    g : array_like, shape (T, ...)
        Gradients (finite), T >= 2.
    h : array_like, broadcastable to (T, ...)
        Known curvature > 0.
    mu : array_like, broadcastable to (T, ...), optional
        Points where the gradients were taken (``None``: μ = 0, i.e. the streams are the pseudo-observations).
    model : {"ou", "random_walk"}
    noise_scale : float, optional
        Fix r (Eq. 12: 1.0); ``None`` fits it.
    init : {"diffuse", "paper"} or (mean0, var0)
        The t = -1 posterior: exact diffuse; the paper's ``N(0, σ²)`` (Alg. 1; diffuse for a random walk); or
        fixed values broadcastable to (...).
    predict : {"paper", "exponential"}
        Discretisation of the OU step (Eq. 14).
    burn : int
        Leave the first ``burn`` steps out of the likelihood.
    start : dict, optional
        Starting values per parameter name (broadcastable to (...)); by default the best of a small grid.
    extra_starts : list of dict, optional
        More starting points, each run as well (e.g. the optimum of a nested model); the best maximum is kept.
    max_iter : int

    Returns
    -------
    FitResult
    """
    kind = check_choice("model", model, MODELS)
    check_choice("predict", predict, ("paper", "exponential"))
    if noise_scale is not None:
        noise_scale = float(check_array("noise_scale", noise_scale, lower=0.0))
    streams = observations(g, h, mu)
    init_spec: str | tuple[np.ndarray, np.ndarray]
    if isinstance(init, str):
        init_spec = check_choice("init", init, ("diffuse", "paper"))
    else:
        if len(init) != 2:
            raise ValueError("init must be 'diffuse', 'paper' or a pair (mean0, var0)")
        init_spec = tuple(  # type: ignore[assignment]
            np.array(
                np.broadcast_to(
                    check_array(name, x, lower=lower, allow_equal=True, allow_inf=name == "var0"), streams.shape
                ).reshape(streams.n)
            )
            for name, x, lower in (("init[0] (mean0)", init[0], None), ("var0", init[1], 0.0))
        )
    burn = check_int("burn", burn, lower=0, upper=streams.obs.shape[0] - 1)
    spec = _Model(kind, predict, noise_scale)
    if spec.second_order and not isinstance(init_spec, tuple):
        raise ValueError(f"model {kind!r} needs a fixed initialisation: init=(mean0, var0) with var0 finite")
    if spec.second_order and not np.isfinite(init_spec[1]).all():
        raise ValueError("var0 must be finite for a second-order model")
    fun = _loglik_function(streams, spec, init_spec, burn)
    theta0 = _starting_points(fun, streams, spec, start)
    n = streams.n
    for extra in extra_starts or []:
        theta0 = np.concatenate([theta0, _starting_points(fun, streams, spec, extra)], axis=1)

    def per_start(theta: np.ndarray, cols: np.ndarray) -> np.ndarray:
        return fun(theta, cols % n)  # problem p starts stream p mod N from its (p // N)-th starting point

    opt = maximise(per_start, theta0, max_iter=check_int("max_iter", max_iter, lower=1))
    return _fit_result(_best_start(opt, n), spec, streams.shape, init if isinstance(init, str) else "fixed")


def _best_start(opt: Optimum, n: int) -> Optimum:
    """Keep, per stream, the run (one per starting point) with the highest maximum."""
    runs = opt.value.size // n
    values = np.where(np.isfinite(opt.value), opt.value, -np.inf).reshape(runs, n)
    best = np.argmax(values, axis=0) * n + np.arange(n)
    return Optimum(opt.theta[:, best], opt.value[best], opt.hessian[best], opt.converged[best], opt.iterations)


def _starting_points(fun, streams: Streams, spec: _Model, start: dict[str, ArrayLike] | None) -> np.ndarray:
    """θ0 of shape (k, S·N): S starting points per stream (the given start, else the best S of a grid)."""
    n = streams.n
    if start is not None:
        missing = set(spec.names) - set(start)
        if missing:
            raise ValueError(f"start must give every parameter of {spec.names}, missing {sorted(missing)}")
        return np.stack([np.broadcast_to(_inverse(name, start[name]), streams.shape).reshape(n) for name in spec.names])
    candidates = _grid(streams, spec)
    values = fun(np.concatenate(candidates, axis=1), np.arange(n)).reshape(len(candidates), n)
    order = np.argsort(-np.where(np.isfinite(values), values, -np.inf), axis=0)
    stacked = np.stack(candidates)  # (G, k, N)
    chosen = [stacked[order[i], :, np.arange(n)].T for i in range(min(STARTS, len(candidates)))]
    return np.concatenate(chosen, axis=1)


def _grid(streams: Streams, spec: _Model) -> list[np.ndarray]:
    """Candidate θ (k, N) from moments of z = y/h ≈ w* + noise of variance r/h (Eqs. 12, 14).

    With ``Var Δz ≈ q + 2 r / h``, the noise scale r is tried at 1 (the paper's value) and at fractions of
    ``r_max = median(h) Var(Δz) / 2``; the process noise at fractions of ``Var Δz``; persistence parameters
    (a, ρ, partial autocorrelations) over their range.
    """
    z = streams.obs / streams.h
    scale_z = np.maximum(np.var(z, axis=0) + np.mean(z, axis=0) ** 2, 1e-300)
    scale_dz = np.maximum(np.var(np.diff(z, axis=0), axis=0), 1e-300)
    base = _BASE_GRIDS[spec.kind](scale_z, scale_dz)
    if spec.noise_scale is not None:
        return base
    r_max = 0.5 * np.median(np.broadcast_to(streams.h, streams.obs.shape), axis=0) * scale_dz
    noises = [np.ones(streams.n), *(f * r_max for f in (0.05, 0.3, 0.7, 0.95))]
    return [np.concatenate([theta, np.log(r)[None]]) for r in noises for theta in base]


def _grid_ou(scale_z: np.ndarray, _scale_dz: np.ndarray) -> list[np.ndarray]:
    out = []
    for a in (0.2, 0.5, 0.9, 0.97, 0.99, 0.997, 0.999):
        for frac in (0.03, 0.3, 1.0):
            q = frac * scale_z * (1 - a * a)  # stationary variance frac · E[z²]
            out.append(np.log(np.stack([q, q / (2 * (1 - a))])))  # σ² from a = 1 - η²/(2σ²), Eq. 14
    return out


def _grid_random_walk(_scale_z: np.ndarray, scale_dz: np.ndarray) -> list[np.ndarray]:
    return [np.log(frac * scale_dz)[None] for frac in (1e-4, 1e-3, 1e-2, 1e-1, 0.5)]


def _grid_iar(_scale_z: np.ndarray, scale_dz: np.ndarray) -> list[np.ndarray]:
    ones = np.ones_like(scale_dz)
    return [
        np.stack([np.log(frac * scale_dz * (1 - rho**2)), np.arctanh(rho) * ones])
        for rho in (0.0, 0.5, 0.9, 0.99)
        for frac in (1e-4, 1e-2, 0.3)
    ]


def _grid_ar2(_scale_z: np.ndarray, scale_dz: np.ndarray) -> list[np.ndarray]:
    ones = np.ones_like(scale_dz)
    coefficients = [(a, 0.0) for a in (0.5, 0.9, 0.99)] + [(1.0 + rho, -rho) for rho in (0.3, 0.7, 0.95)]
    return [
        np.stack([np.log(frac * scale_dz), phi1 * ones, phi2 * ones])
        for phi1, phi2 in coefficients
        for frac in (1e-4, 1e-2, 0.3)
    ]


_BASE_GRIDS = {"ou": _grid_ou, "random_walk": _grid_random_walk, "iar": _grid_iar, "ar2": _grid_ar2}


def _fit_result(opt: Optimum, spec: _Model, shape: tuple[int, ...], init: str) -> FitResult:
    k = len(spec.names)
    with np.errstate(invalid="ignore"):
        try:
            cov = np.linalg.inv(-opt.hessian)
        except np.linalg.LinAlgError:
            cov = np.full_like(opt.hessian, np.nan)
        var_theta = np.diagonal(cov, axis1=1, axis2=2).T  # (k, N); < 0 where the Hessian is not negative definite
        se_theta = np.sqrt(np.where(var_theta >= 0, var_theta, np.nan))
    p = spec.natural(opt.theta)
    slope = np.abs(spec.slope(p))
    low_all, high_all = spec.natural(opt.theta - Z95 * se_theta), spec.natural(opt.theta + Z95 * se_theta)
    params, stderr, low, high = {}, {}, {}, {}
    for i, name in enumerate(spec.names):
        params[name] = p[i].reshape(shape)
        stderr[name] = (slope[i] * se_theta[i]).reshape(shape)  # delta method: se(p) = |dp/dθ| se(θ)
        low[name] = low_all[i].reshape(shape)
        high[name] = high_all[i].reshape(shape)
    return FitResult(
        names=spec.names,
        params=params,
        stderr=stderr,
        ci_low=low,
        ci_high=high,
        loglik=opt.value.reshape(shape),
        cov_log=cov.reshape(*shape, k, k),
        converged=opt.converged.reshape(shape),
        iterations=opt.iterations,
        model=spec.kind,
        init=init,
    )


# --------------------------------------------------------------------------------------------------------------
# EM (closed-form M-step)


@dataclass(frozen=True)
class EmResult:
    """EM estimates of the AR(1) form of the model, with the log-likelihood after every iteration.

    Attributes
    ----------
    a, q, noise_scale : ndarray, shape (...)
        Transition factor, process noise and observation-noise scale (η² = q, σ² = q / (2 (1 - a)), Eq. 14).
    loglik_trace : ndarray, shape (iterations + 1, ...)
        Log-likelihood at the start and after each iteration (non-decreasing up to rounding).
    """

    a: np.ndarray
    q: np.ndarray
    noise_scale: np.ndarray
    loglik_trace: np.ndarray

    @property
    def eta2(self) -> np.ndarray:
        """η² = q (Eq. 14)."""
        return self.q

    @property
    def sigma2(self) -> np.ndarray:
        """σ² = η² / (2 (1 - a)) (Eq. 14, paper discretisation); inf for a = 1."""
        with np.errstate(divide="ignore"):
            return self.q / (2.0 * (1.0 - self.a))


def em(
    g: ArrayLike,
    h: ArrayLike,
    *,
    mu: ArrayLike | None = None,
    mean0: ArrayLike = 0.0,
    var0: ArrayLike = 1.0,
    a: ArrayLike = 0.9,
    q: ArrayLike = 0.1,
    noise_scale: ArrayLike = 1.0,
    fit_a: bool = True,
    fit_noise_scale: bool = True,
    iterations: int = 50,
) -> EmResult:
    """EM for ``(a, q, r)`` with a fixed, finite t = -1 posterior ``N(mean0, var0)``, vectorised over streams.

    M-step (closed form, from the smoothed moments E[w], E[w²], E[w(t) w(t-1)] of :func:`rts_smoother`):
    ``a = Σ E[w(t) w(t-1)] / Σ E[w(t-1)²]``, ``q = (1/T) Σ (E[w(t)²] - a E[w(t) w(t-1)])`` (the joint
    update of the AR(1) step of Eq. 14) and ``r = (1/T) Σ E[(y - h w)²] / h`` (Eq. 12).

    Parameters
    ----------
    g, h, mu : as :func:`fit`
    mean0, var0 : array_like
        Fixed t = -1 posterior (var0 finite and > 0).
    a, q, noise_scale : array_like
        Starting values.
    fit_a, fit_noise_scale : bool
        Update a (False: keep the start, e.g. a = 1 for a random walk) and r.
    iterations : int

    Returns
    -------
    EmResult
    """
    streams = observations(g, h, mu)
    n, shape = streams.n, streams.shape
    iterations = check_int("iterations", iterations, lower=1)
    m0 = np.broadcast_to(check_array("mean0", mean0), shape).reshape(n).astype(np.float64)
    v0 = np.broadcast_to(check_array("var0", var0, lower=0.0), shape).reshape(n).astype(np.float64)
    a_c = np.array(np.broadcast_to(check_array("a", a), shape).reshape(n), dtype=np.float64)
    q_c = np.array(np.broadcast_to(check_array("q", q, lower=0.0), shape).reshape(n), dtype=np.float64)
    r_c = np.array(np.broadcast_to(check_array("noise_scale", noise_scale, lower=0.0), shape).reshape(n))
    y, h_t = streams.obs, np.broadcast_to(streams.h, streams.obs.shape)
    trace = []
    for _ in range(iterations):
        res = ar1_loglik(y, h_t, a_c, q_c, mu=np.zeros(1), noise_scale=r_c, mean0=m0, var0=v0, keep="float64")
        trace.append(res.loglik)
        a_c, q_c, r_c = _m_step(res, y, h_t, a_c, r_c, fit_a, fit_noise_scale)
    trace.append(ar1_loglik(y, h_t, a_c, q_c, mu=np.zeros(1), noise_scale=r_c, mean0=m0, var0=v0).loglik)
    return EmResult(
        a_c.reshape(shape), q_c.reshape(shape), r_c.reshape(shape), np.stack(trace).reshape(len(trace), *shape)
    )


def _m_step(res, y, h_t, a_c, r_c, fit_a: bool, fit_noise_scale: bool):
    """One closed-form M-step from the smoothed moments."""
    assert res.filtered is not None
    sm = rts_smoother(res.filtered)
    steps = y.shape[0]
    m_prev = np.concatenate([sm.mean_initial[None], sm.mean[:-1]])
    v_prev = np.concatenate([sm.var_initial[None], sm.var[:-1]])
    e_cross = (sm.lag_cov + sm.mean * m_prev).sum(axis=0)  # Σ E[w(t) w(t-1)]
    e_prev2 = (v_prev + m_prev**2).sum(axis=0)  # Σ E[w(t-1)²]
    e_now2 = (sm.var + sm.mean**2).sum(axis=0)  # Σ E[w(t)²]
    a_new = e_cross / e_prev2 if fit_a else a_c
    q_new = (e_now2 - 2 * a_new * e_cross + a_new**2 * e_prev2) / steps  # E[(w(t) - a w(t-1))²], Eq. 14
    if fit_noise_scale:
        r_new = (((y - h_t * sm.mean) ** 2 + h_t**2 * sm.var) / h_t).mean(axis=0)  # E[(y - h w)²] / h, Eq. 12
    else:
        r_new = r_c
    return a_new, np.maximum(q_new, 0.0), r_new
