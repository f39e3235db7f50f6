"""The learning rate the filter really has: the stationary law of Alg. 1's σ²_post under random gradients.

Alg. 1 iterates the posterior precision λ = 1/σ²_post (Eqs. 17b and 18a composed, :func:`filtering.kalman_step.
precision_step`)::

    λ(t) = φ(λ(t-1)) + g²(t),   φ(λ) = 1 / (f/λ + q),

with ``f``, ``q`` from :func:`filtering.ou.variance_predict_coefficients`. Eq. 21 and the exact fixed point of
:mod:`filtering.fixed_point` replace g² by its mean ⟨g²⟩ (Eq. 45). Here g is random, i.i.d. from a gradient law
(zero-mean Gaussian by default), and the learning rate σ²_post is a stationary random variable; this module
computes its law to numerical precision -- not by Monte Carlo.

Method
------
Write ``y = φ(λ(t-1))`` for the prior precision 1/σ²_prior (Eq. 17b). It is a Markov chain on the bounded interval
``[λ0, 1/q)`` (``λ0 = (1 - f)/q``, the fixed point at g² = 0, is the lowest value it can take),
``y' = φ(y + ξ)`` with ``ξ = g²``, and since φ is increasing with inverse ``ψ(b) = f b / (1 - q b)``,

    P(y' <= b | y) = F(ψ(b) - y),                                      F = CDF of g²,

so the stationary CDF solves a linear integral equation. It is discretised on a grid of cells in y, with the
density uniform inside each cell and the kernel integrated exactly over each cell through the partial moments
``E[(t - g²)+]`` and ``E[(g² - t)+]`` of the gradient law (a finite-volume scheme that conserves probability
to rounding). The cell masses are the null vector of ``P - I``. σ²_post = 1/(y + ξ) then has mean
``Σ_j p_j avg_j E[1/(y + ξ)]`` and an exact CDF ``P(σ²_post <= a) = Σ_j p_j avg_j P(ξ >= 1/a - y)``.

The grid is a logit grid covering the whole support (geometric near both ends, where the law lives when η²⟨g²⟩
is large) plus, when the chain has a long memory (``φ'(λ*) > 1/2``: the SGD and Adam regimes), a uniform window
around the deterministic fixed point ±(8, 12) linearised standard deviations. The scheme is second order in the
cell size. Accuracy control: the grid is refined (every cell split in two) until the change of the mean in the
last refinement is below ``rtol`` of the mean; the reported mean is the Richardson extrapolation of the last two
levels and :attr:`StationaryLaw.error_estimate` is that last change (a bound on the error of the finer level
for a second-order scheme, far above the error of the extrapolation).

AdaBayes-FP (Alg. 2) sets σ²_post from Eq. 21 at the β2-EMA ``V`` of g²; at stationarity (debiasing factor 1)
``V' = β2 V + (1 - β2) ξ`` is a chain of the same kind and is solved by the same scheme
(:func:`fixed_point_law`).

Regimes (``ε = η sqrt(⟨g²⟩)``, ``x = σ² sqrt(⟨g²⟩)/η``; derivations in :mod:`derivations.stochastic`): for
x << 1 the mean is σ² (Eq. 22); for 1 << x and ε << 1 it is η/sqrt(⟨g²⟩) (1 + ε/4) -- Eq. 21 is closer than the
exact deterministic fixed point, which is η/sqrt(⟨g²⟩) (1 - ε/2); for ε >> 1 it tends to ``π η p_g(0)``
(``sqrt(π/2) η/sqrt(⟨g²⟩)`` for Gaussian g, 1.2533× Eq. 21), set by the density of g at zero.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from functools import lru_cache

import numba
import numpy as np
from numpy.typing import ArrayLike
from scipy import linalg, special, stats

from .fixed_point import approx_precision
from .ou import variance_predict_coefficients
from .validation import check_array, check_int, check_ou_stable, check_positive, check_predict, check_scalar

__all__ = [
    "EmpiricalGradients",
    "FixedPointLaw",
    "GaussianGradients",
    "GradientLaw",
    "StationaryLaw",
    "StudentTGradients",
    "fixed_point_law",
    "fixed_point_mean_learning_rate",
    "learning_rate_quantiles",
    "mean_learning_rate",
    "stationary_law",
]

_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(4)  # small cells: kernel by 4-point Gauss-Legendre
_GL8_NODES, _GL8_WEIGHTS = np.polynomial.legendre.leggauss(8)  # cell averages of E[1/(y + g²)]
_TAIL = 1e-16  # g² beyond its (1 - _TAIL) quantile is treated as never drawn (mass error <= 1e-16 per step)
_SMALL_CELL = 0.1  # a cell is "small" for the kernel when its width is <= this fraction of its distance to 0
_LOW = 1e-2  # a cell is "low" when it ends below this fraction of ⟨g²⟩: integrated in u = sqrt(t), no partial moments
_MAX_LEVEL = 3


@lru_cache(maxsize=1)
def _threadpool_controller() -> object | None:
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - optional (installed with scikit-learn)
        return None
    return ThreadpoolController()


def _blas_single_thread() -> AbstractContextManager[object]:
    """One BLAS thread for the dense solves (a multithreaded BLAS is far slower on these small, shared-CPU solves)."""
    controller = _threadpool_controller()
    return nullcontext() if controller is None else controller.limit(limits=1, user_api="blas")  # type: ignore[attr-defined]


# --------------------------------------------------------------------------------------------------------------
# gradient laws: what the chain needs to know about ξ = g²


class GradientLaw(ABC):
    """The law of one gradient g; the chain is driven by i.i.d. ξ = g².

    Subclasses give the CDF of g², its partial moments and E[1/(y + g²)]; everything is vectorised.
    """

    @property
    @abstractmethod
    def mean_g2(self) -> float:
        """⟨g²⟩ = E[g²]."""

    @property
    @abstractmethod
    def var_g2(self) -> float:
        """Var[g²] (``inf`` for heavy tails)."""

    @abstractmethod
    def cdf_g2(self, t: np.ndarray) -> np.ndarray:
        """P(g² <= t) (0 for t < 0)."""

    @abstractmethod
    def sf_g2(self, t: np.ndarray) -> np.ndarray:
        """P(g² > t), accurate in the tail."""

    @abstractmethod
    def below_g2(self, t: np.ndarray) -> np.ndarray:
        """E[(t - g²)+] = ∫_0^t P(g² <= τ) dτ (0 for t <= 0)."""

    @abstractmethod
    def above_g2(self, t: np.ndarray) -> np.ndarray:
        """E[(g² - t)+] for t >= 0, accurate in the tail."""

    @abstractmethod
    def quantile_g2(self, p: float) -> float:
        """The p-quantile of g²."""

    @property
    def density_at_zero(self) -> float:
        """p_g(0), the density of g at zero (sets σ²_post when η²⟨g²⟩ >> 1: ``E σ²_post -> π η p_g(0)``)."""
        raise NotImplementedError(f"{type(self).__name__} has no density at zero")

    def robust_var_g2(self) -> float:
        """Var[g²] when finite, else the squared interdecile range of g² (sizes the grid's window)."""
        v = self.var_g2
        return v if math.isfinite(v) else (self.quantile_g2(0.9) - self.quantile_g2(0.1)) ** 2

    def inverse_mean(self, y: np.ndarray) -> np.ndarray:
        """E[1/(y + g²)] for y > 0.

        Generic form: with ``t = y e^u`` and integration by parts, ``E[1/(y + g²)] = (1/y) E_U[F(y e^U)]``
        with U standard logistic; the trapezoidal rule in u (step 1/4 on [-60, 60]) is exact to rounding for
        a CDF analytic in log t. Subclasses override it with closed forms.
        """
        y = np.asarray(y, dtype=np.float64)
        u = np.arange(-60.0, 60.0 + 1e-9, 0.25)
        weight = 0.25 / (4.0 * np.cosh(0.5 * u) ** 2)  # logistic density e^u/(1+e^u)² times the step
        total = np.zeros_like(y)
        for ui, wi in zip(u, weight, strict=True):
            total += wi * self.cdf_g2(y * math.exp(ui))
        return total / y

    def small_cell_cdf(self, t_lo: np.ndarray, width: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(G, 1 - G)``, G the mean of P(g² <= τ) over ``τ in [t_lo, t_lo + width]`` for a cell narrow against t_lo.

        4-point Gauss-Legendre on the CDF and on its complement (no difference of partial moments is formed).
        """
        nodes = (t_lo + 0.5 * width)[:, None] + (0.5 * width)[:, None] * _GL_NODES[None, :]
        return 0.5 * (self.cdf_g2(nodes) * _GL_WEIGHTS).sum(axis=1), 0.5 * (self.sf_g2(nodes) * _GL_WEIGHTS).sum(axis=1)

    def low_cell_cdf(self, t_lo: np.ndarray, t_hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(G, 1 - G)`` for a cell ending far below ⟨g²⟩ (t_lo may be <= 0): 8-point Gauss-Legendre in u = sqrt(t).

        ``∫ F(t) dt = ∫ F(u²) 2u du`` is smooth in u (F(u²) = P(|g| <= u)), so no cancellation and no sqrt kink.
        """
        u_lo, u_hi = np.sqrt(np.maximum(t_lo, 0.0)), np.sqrt(t_hi)
        mid, half = 0.5 * (u_lo + u_hi), 0.5 * (u_hi - u_lo)
        u = mid[:, None] + half[:, None] * _GL8_NODES[None, :]
        integral = half * (self.cdf_g2(u * u) * 2.0 * u * _GL8_WEIGHTS).sum(axis=1)
        G = integral / (t_hi - t_lo)
        return G, 1.0 - G

    def inverse_mean_cell(self, lo: np.ndarray, width: np.ndarray) -> np.ndarray:
        """Average over y uniform in ``[lo, lo + width]`` of E[1/(y + g²)] (8-point Gauss-Legendre)."""
        y = (lo + 0.5 * width)[:, None] + (0.5 * width)[:, None] * _GL8_NODES[None, :]
        return 0.5 * (self.inverse_mean(y) * _GL8_WEIGHTS).sum(axis=1)

    def sample(self, rng: np.random.Generator, size: int | tuple[int, ...]) -> np.ndarray:
        """Draw gradients g (for Monte Carlo checks)."""
        raise NotImplementedError(f"{type(self).__name__} cannot be sampled")


class GaussianGradients(GradientLaw):
    """g ~ N(mean, variance): ⟨g²⟩ = variance + mean² (the generative model's g at a fixed w* - μ, Eq. 12).

    Parameters
    ----------
    variance : float
        Var[g] > 0.
    mean : float
        E[g] (default 0, the paper's stationary assumption).
    """

    def __init__(self, variance: float, mean: float = 0.0) -> None:
        self.variance = check_positive("variance", variance)
        self.mean = abs(check_scalar("mean", mean))  # g² depends on |mean| only
        self.sd = math.sqrt(self.variance)

    def __repr__(self) -> str:
        return f"GaussianGradients(variance={self.variance!r}, mean={self.mean!r})"

    @property
    def mean_g2(self) -> float:
        return self.variance + self.mean**2

    @property
    def var_g2(self) -> float:
        return 2.0 * self.variance**2 + 4.0 * self.mean**2 * self.variance

    @property
    def density_at_zero(self) -> float:
        return math.exp(-0.5 * (self.mean / self.sd) ** 2) / (self.sd * math.sqrt(2.0 * math.pi))

    def _bounds(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Standardised ends ``(α, β)`` of ``|g| <= sqrt(t)``: α = (-sqrt t - m)/sd <= 0, β = (sqrt t - m)/sd."""
        r = np.sqrt(np.maximum(t, 0.0))
        return (-r - self.mean) / self.sd, (r - self.mean) / self.sd

    def cdf_g2(self, t: np.ndarray) -> np.ndarray:
        a, b = self._bounds(t)
        return np.where(np.asarray(t) > 0, special.ndtr(b) - special.ndtr(a), 0.0)  # both small when b < 0

    def sf_g2(self, t: np.ndarray) -> np.ndarray:
        a, b = self._bounds(t)
        return np.where(np.asarray(t) > 0, special.ndtr(-b) + special.ndtr(a), 1.0)

    def _second_moment_between(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """E[g² ; a < z < b] with z = (g - m)/sd (b may be +inf, a may be -inf)."""
        m, s = self.mean, self.sd
        mass = special.ndtr(b) - special.ndtr(a)
        pa, pb = _normal_pdf(a), _normal_pdf(b)
        with np.errstate(invalid="ignore"):
            apa = np.where(np.isinf(a), 0.0, a * pa)
            bpb = np.where(np.isinf(b), 0.0, b * pb)
        return m * m * mass + 2.0 * m * s * (pa - pb) + s * s * (mass + apa - bpb)

    def below_g2(self, t: np.ndarray) -> np.ndarray:
        t = np.maximum(np.asarray(t, dtype=np.float64), 0.0)
        a, b = self._bounds(t)
        return np.maximum(t * self.cdf_g2(t) - self._second_moment_between(a, b), 0.0)

    def above_g2(self, t: np.ndarray) -> np.ndarray:
        t = np.maximum(np.asarray(t, dtype=np.float64), 0.0)
        a, b = self._bounds(t)
        upper = self._second_moment_between(b, np.full_like(b, np.inf))
        lower = self._second_moment_between(np.full_like(a, -np.inf), a)
        return np.maximum(upper + lower - t * self.sf_g2(t), 0.0)

    def quantile_g2(self, p: float) -> float:
        nc = (self.mean / self.sd) ** 2
        dist = stats.chi2(1) if nc == 0.0 else stats.ncx2(1, nc)
        return float(self.variance * (dist.isf(1.0 - p) if p > 0.5 else dist.ppf(p)))

    def inverse_mean(self, y: np.ndarray) -> np.ndarray:
        """Closed form (a Voigt profile at 0): ``sqrt(π/2)/(sd sqrt y) Re w((m + i sqrt y)/(sd sqrt 2))``.

        ``w`` is the Faddeeva function; for m = 0 it is ``sqrt(π/(2 y sd²)) erfcx(sqrt(y/(2 sd²)))``.
        """
        root = np.sqrt(np.asarray(y, dtype=np.float64))
        z = (self.mean + 1j * root) / (self.sd * math.sqrt(2.0))
        return math.sqrt(0.5 * math.pi) / (self.sd * root) * special.wofz(z).real

    def sample(self, rng: np.random.Generator, size: int | tuple[int, ...]) -> np.ndarray:
        return self.mean + self.sd * rng.standard_normal(size)


def _normal_pdf(z: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return np.exp(-0.5 * np.asarray(z, dtype=np.float64) ** 2) / math.sqrt(2.0 * math.pi)


class StudentTGradients(GradientLaw):
    """g = scale · T with T Student-t with ``df`` > 2 degrees of freedom (heavy-tailed gradient noise).

    ⟨g²⟩ = scale² df/(df - 2); Var[g²] is infinite for df <= 4 (the grid then uses the interdecile range).
    """

    def __init__(self, df: float, scale: float) -> None:
        self.df = check_scalar("df", df, lower=2.0)
        self.scale = check_positive("scale", scale)

    def __repr__(self) -> str:
        return f"StudentTGradients(df={self.df!r}, scale={self.scale!r})"

    @property
    def mean_g2(self) -> float:
        return self.scale**2 * self.df / (self.df - 2.0)

    @property
    def var_g2(self) -> float:
        nu = self.df
        if nu <= 4.0:
            return math.inf
        return self.scale**4 * (3.0 * nu * nu / ((nu - 2.0) * (nu - 4.0)) - (nu / (nu - 2.0)) ** 2)

    @property
    def density_at_zero(self) -> float:
        return float(stats.t.pdf(0.0, self.df)) / self.scale

    def _two_sided_sf(self, t: np.ndarray) -> np.ndarray:
        """``P(|T| > a)`` at ``a = sqrt(t)/scale``."""
        a = np.sqrt(np.maximum(t, 0.0)) / self.scale
        return 2.0 * special.stdtr(self.df, -a)

    def cdf_g2(self, t: np.ndarray) -> np.ndarray:
        return np.where(np.asarray(t) > 0, 1.0 - self._two_sided_sf(t), 0.0)

    def sf_g2(self, t: np.ndarray) -> np.ndarray:
        return np.where(np.asarray(t) > 0, self._two_sided_sf(t), 1.0)

    def _second_moment_above(self, t: np.ndarray) -> np.ndarray:
        """E[g² ; g² > t] by ``x² p_ν(x) = ν(ν-1)/(ν-2) p_{ν-2}(x sqrt((ν-2)/ν)) sqrt((ν-2)/ν) - ν p_ν(x)``."""
        nu = self.df
        a = np.sqrt(np.maximum(t, 0.0)) / self.scale
        lighter = 2.0 * special.stdtr(nu - 2.0, -a * math.sqrt((nu - 2.0) / nu))
        return self.scale**2 * (nu * (nu - 1.0) / (nu - 2.0) * lighter - nu * 2.0 * special.stdtr(nu, -a))

    def below_g2(self, t: np.ndarray) -> np.ndarray:
        t = np.maximum(np.asarray(t, dtype=np.float64), 0.0)
        inside = self.mean_g2 - self._second_moment_above(t)  # E[g² ; g² <= t]
        return np.maximum(t * self.cdf_g2(t) - inside, 0.0)

    def above_g2(self, t: np.ndarray) -> np.ndarray:
        t = np.maximum(np.asarray(t, dtype=np.float64), 0.0)
        return np.maximum(self._second_moment_above(t) - t * self.sf_g2(t), 0.0)

    def quantile_g2(self, p: float) -> float:
        upper_tail = 0.5 * (1.0 - p)  # P(T > a) for the p-quantile of T²
        return float((self.scale * stats.t.isf(upper_tail, self.df)) ** 2)

    def sample(self, rng: np.random.Generator, size: int | tuple[int, ...]) -> np.ndarray:
        return self.scale * rng.standard_t(self.df, size)


class EmpiricalGradients(GradientLaw):
    """The empirical law of a sample of gradients (each drawn with probability 1/n), e.g. a recorded buffer.

    Parameters
    ----------
    samples : array_like, shape (n,)
        Finite gradients, n >= 2, not all zero.
    """

    def __init__(self, samples: ArrayLike) -> None:
        g = check_array("samples", samples).ravel()
        if g.size < 2:
            raise ValueError(f"samples must hold at least 2 gradients, got {g.size}")
        self.g2 = np.sort(g * g)
        if self.g2[-1] <= 0.0:
            raise ValueError("samples must not all be zero")
        self.n = self.g2.size
        self._below_sum = np.concatenate([[0.0], np.cumsum(self.g2)])  # sum of the k smallest
        self._above_sum = np.concatenate([np.cumsum(self.g2[::-1])[::-1], [0.0]])  # sum from index k on

    def __repr__(self) -> str:
        return f"EmpiricalGradients(<{self.n} samples>)"

    @property
    def mean_g2(self) -> float:
        return float(self._below_sum[-1] / self.n)

    @property
    def var_g2(self) -> float:
        return float(np.var(self.g2))

    def _count(self, t: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.g2, t, side="right")

    def cdf_g2(self, t: np.ndarray) -> np.ndarray:
        return np.where(np.asarray(t) >= 0, self._count(t) / self.n, 0.0)

    def sf_g2(self, t: np.ndarray) -> np.ndarray:
        return np.where(np.asarray(t) >= 0, (self.n - self._count(t)) / self.n, 1.0)

    def below_g2(self, t: np.ndarray) -> np.ndarray:
        t = np.maximum(np.asarray(t, dtype=np.float64), 0.0)
        k = self._count(t)
        return np.maximum(k * t - self._below_sum[k], 0.0) / self.n

    def above_g2(self, t: np.ndarray) -> np.ndarray:
        t = np.maximum(np.asarray(t, dtype=np.float64), 0.0)
        k = self._count(t)
        return np.maximum(self._above_sum[k] - (self.n - k) * t, 0.0) / self.n

    def quantile_g2(self, p: float) -> float:
        return float(np.quantile(self.g2, p))

    def small_cell_cdf(self, t_lo: np.ndarray, width: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact for the step CDF: ``F(t_lo) + Σ_{t_lo < g_k² <= t_hi} (t_hi - g_k²)/(n width)``.

        The sum over the few samples inside the cell is formed from prefix sums; it lies in ``[0, m/n]`` (m samples
        inside) and is kept there against rounding.
        """
        t_hi = t_lo + width
        k_lo, k_hi = self._count(t_lo), self._count(t_hi)
        inside = k_hi - k_lo
        within = (inside * t_hi - (self._below_sum[k_hi] - self._below_sum[k_lo])) / (self.n * width)
        within = np.minimum(np.maximum(within, 0.0), inside / self.n)  # rounding only: the exact value is in range
        return k_lo / self.n + within, (self.n - k_hi) / self.n + (inside / self.n - within)

    def low_cell_cdf(self, t_lo: np.ndarray, t_hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact (see :meth:`small_cell_cdf`); the mass below 0 is none."""
        lo = np.maximum(t_lo, 0.0)
        G, _ = self.small_cell_cdf(lo, t_hi - lo)
        G = G * (t_hi - lo) / (t_hi - t_lo)  # F = 0 on [t_lo, 0]
        return G, 1.0 - G

    def inverse_mean(self, y: np.ndarray) -> np.ndarray:
        y = np.asarray(y, dtype=np.float64)
        return (1.0 / (y[..., None] + self.g2)).mean(axis=-1)

    def inverse_mean_cell(self, lo: np.ndarray, width: np.ndarray) -> np.ndarray:
        """Exact: ``mean_k log(1 + width/(lo + g_k²)) / width``."""
        base = lo[:, None] + self.g2[None, :]
        return np.log1p(width[:, None] / base).mean(axis=1) / width

    def sample(self, rng: np.random.Generator, size: int | tuple[int, ...]) -> np.ndarray:
        return np.sqrt(rng.choice(self.g2, size=size))


# --------------------------------------------------------------------------------------------------------------
# the finite-volume kernel


_SQRT2 = math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


@numba.njit(cache=True)
def _gauss_g2_parts(t: float, m: float, s: float) -> tuple[float, float, float, float]:  # pragma: no cover
    """For g ~ N(m, s²), m >= 0, t > 0: P(g² <= t), P(g² > t), E[(t - g²)+], E[(g² - t)+]."""
    r = math.sqrt(t)
    b = (r - m) / s
    pb = math.exp(-0.5 * b * b) * _INV_SQRT_2PI
    if m == 0.0:  # symmetric: one erfc and one exp
        sf = math.erfc(b / _SQRT2)
        cdf = 1.0 - sf if b > 1.0 else math.erf(b / _SQRT2)
        inside = s * s * (cdf - 2.0 * b * pb)  # E[g²; |g| <= sqrt t]
        outside = s * s * (sf + 2.0 * b * pb)
        return cdf, sf, max(t * cdf - inside, 0.0), max(outside - t * sf, 0.0)
    a = (-r - m) / s
    lo = 0.5 * math.erfc(-a / _SQRT2)  # Φ(a), a <= 0
    mid = 0.5 * math.erfc(-b / _SQRT2) - lo  # Φ(b) - Φ(a), accurate also when b < 0
    hi = 0.5 * math.erfc(b / _SQRT2)  # 1 - Φ(b)
    pa = math.exp(-0.5 * a * a) * _INV_SQRT_2PI
    inside = m * m * mid + 2.0 * m * s * (pa - pb) + s * s * (mid + a * pa - b * pb)
    outside = m * m * (hi + lo) + 2.0 * m * s * (pb - pa) + s * s * (hi + b * pb + lo - a * pa)
    return mid, hi + lo, max(t * mid - inside, 0.0), max(outside - t * (hi + lo), 0.0)


@numba.njit(cache=True)
def _gauss_low_cell(th, tl, m, s, nodes8, weights8):  # pragma: no cover
    """:meth:`GradientLaw.low_cell_cdf` for one cell: Gauss-Legendre in u = sqrt(t)."""
    u_lo = math.sqrt(tl) if tl > 0.0 else 0.0
    u_hi = math.sqrt(th)
    mid, half = 0.5 * (u_lo + u_hi), 0.5 * (u_hi - u_lo)
    total = 0.0
    for i in range(nodes8.size):
        u = mid + half * nodes8[i]
        total += weights8[i] * _gauss_g2_parts(u * u, m, s)[0] * 2.0 * u
    g = half * total / (th - tl)
    return g, 1.0 - g


@numba.njit(cache=True)
def _gauss_landing(th, tl, w, top, m, s, scale, small_cell, low, nodes, weights, nodes8, weights8):  # pragma: no cover
    """One entry of :func:`_cell_cdf` for Gaussian gradients: ``(G, 1 - G)``."""
    if tl >= top:
        return 1.0, 0.0
    if th <= 0.0:
        return 0.0, 1.0
    if tl > 0.0 and w <= small_cell * min(tl, scale):
        g, gc = 0.0, 0.0
        for i in range(nodes.size):
            cdf, sf, _, _ = _gauss_g2_parts(0.5 * (th + tl) + 0.5 * w * nodes[i], m, s)
            g += 0.5 * weights[i] * cdf
            gc += 0.5 * weights[i] * sf
        return g, gc
    if th <= low * scale:
        return _gauss_low_cell(th, tl, m, s, nodes8, weights8)
    if tl >= scale:
        gc = (_gauss_g2_parts(tl, m, s)[3] - _gauss_g2_parts(th, m, s)[3]) / w
        return 1.0 - gc, gc
    below_lo = _gauss_g2_parts(tl, m, s)[2] if tl > 0.0 else 0.0
    g = (_gauss_g2_parts(th, m, s)[2] - below_lo) / w
    return g, 1.0 - g


@numba.njit(cache=True)
def _landing_from_parts(th, tl, w, top, scale, hi_below, hi_above, lo_below, lo_above):  # pragma: no cover
    """:func:`_gauss_landing` for a cell that is not small, from the partial moments at its two ends."""
    if tl >= top:
        return 1.0, 0.0
    if th <= 0.0:
        return 0.0, 1.0
    if tl >= scale:
        gc = (lo_above - hi_above) / w
        return 1.0 - gc, gc
    g = (hi_below - (lo_below if tl > 0.0 else 0.0)) / w
    return g, 1.0 - g


@numba.njit(cache=True)
def _edge_arguments(d, e, half, gap, edge, j):  # pragma: no cover
    """``(t_hi, t_lo) = ψ(b_edge) - (d_j, d_{j+1})``, each difference taken where it does not cancel."""
    x = gap[edge]
    t_hi = x + (e[j] - e[edge]) if d[edge] > half and d[j] > half else x + (d[edge] - d[j])
    t_lo = x + (e[j + 1] - e[edge]) if d[edge] > half and d[j + 1] > half else x + (d[edge] - d[j + 1])
    return t_hi, t_lo


@numba.njit(cache=True)
def _gaussian_precision_band(
    d, e, span, gap, width, below, above, top, m, s, small_cell, low, nodes, weights, nodes8, weights8
):  # pragma: no cover
    """Compiled :func:`_precision_band` for Gaussian gradients: the band ``values[k, j] = P[j - below + k, j]``.

    ``t = ψ(b_edge) - d_j`` at a source edge j is the upper end of cell j and the lower end of cell j - 1, so the
    partial moments there are computed once (cached per target edge) and used for both cells.
    """
    n = width.size
    values = np.zeros((below + above + 1, n))
    scale = m * m + s * s
    cached_at = np.full(n + 1, -1)  # source edge at which the cache of a target edge was filled
    cache = np.zeros((n + 1, 2))  # E[(t - g²)+], E[(g² - t)+] there
    for j in range(n):
        g_prev, gc_prev = 0.0, 1.0
        for k in range(below + above + 2):
            edge = j - below + k
            g, gc = (0.0, 1.0) if edge <= 0 else (1.0, 0.0)
            if 0 < edge < n:
                t_hi, t_lo = _edge_arguments(d, e, 0.5 * span, gap, edge, j)
                w = width[j]
                plain = t_hi > 0.0 and t_lo < top and t_hi > low * scale
                if plain and not (t_lo > 0.0 and w <= small_cell * min(t_lo, scale)):
                    if cached_at[edge] != j:
                        cache[edge, 0], cache[edge, 1] = _gauss_g2_parts(t_hi, m, s)[2:]
                    hb, ha = cache[edge, 0], cache[edge, 1]
                    lb, la = (_gauss_g2_parts(t_lo, m, s)[2:]) if t_lo > 0.0 else (0.0, 0.0)
                    cache[edge, 0], cache[edge, 1], cached_at[edge] = lb, la, j + 1
                    g, gc = _landing_from_parts(t_hi, t_lo, w, top, scale, hb, ha, lb, la)
                else:
                    g, gc = _gauss_landing(
                        t_hi, t_lo, w, top, m, s, scale, small_cell, low, nodes, weights, nodes8, weights8
                    )
            if k > 0:
                values[k - 1, j] = g - g_prev if g < 0.5 else gc_prev - gc
            g_prev, gc_prev = g, gc
    return values


@numba.njit(cache=True)
def _gaussian_cell_cdf(
    t_hi, t_lo, width, top, m, s, scale, small_cell, low, nodes, weights, nodes8, weights8
):  # pragma: no cover
    """Compiled :func:`_cell_cdf` for Gaussian gradients (same branches, flat float64 arrays)."""
    n = t_hi.size
    G = np.empty(n)
    Gc = np.empty(n)
    for k in range(n):
        G[k], Gc[k] = _gauss_landing(
            t_hi[k], t_lo[k], width[k], top, m, s, scale, small_cell, low, nodes, weights, nodes8, weights8
        )
    return G, Gc


def _cell_cdf(
    law: GradientLaw, t_hi: np.ndarray, t_lo: np.ndarray, width: np.ndarray, top: float
) -> tuple[np.ndarray, np.ndarray]:
    """``(G, 1 - G)`` with ``G = (1/width) ∫_{t_lo}^{t_hi} P(g² <= τ) dτ`` (``width = t_hi - t_lo`` > 0).

    G is the probability that a point uniform in a source cell lands below a target edge. Each entry is computed
    in the form that avoids cancellation: 0 / 1 outright below 0 / above the g² cut ``top``; Gauss-Legendre on the
    CDF for a cell that is small against its distance to 0 and against ⟨g²⟩; the tail partial moment
    E[(g² - t)+] when the cell lies above ⟨g²⟩; the partial moment E[(t - g²)+] otherwise.
    """
    if isinstance(law, GaussianGradients):
        shape = np.broadcast_shapes(t_hi.shape, t_lo.shape, width.shape)
        hi, lo, w = (
            np.ascontiguousarray(np.broadcast_to(x, shape), dtype=np.float64).ravel() for x in (t_hi, t_lo, width)
        )
        G, Gc = _gaussian_cell_cdf(
            hi,
            lo,
            w,
            top,
            law.mean,
            law.sd,
            law.mean_g2,
            _SMALL_CELL,
            _LOW,
            _GL_NODES,
            _GL_WEIGHTS,
            _GL8_NODES,
            _GL8_WEIGHTS,
        )
        return G.reshape(shape), Gc.reshape(shape)
    return _cell_cdf_generic(law, t_hi, t_lo, width, top)


def _cell_cdf_generic(
    law: GradientLaw, t_hi: np.ndarray, t_lo: np.ndarray, width: np.ndarray, top: float
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_cell_cdf` through the law's vectorised methods (any :class:`GradientLaw`)."""
    G = np.zeros(t_hi.shape)
    Gc = np.ones(t_hi.shape)
    one = t_lo >= top
    G[one], Gc[one] = 1.0, 0.0
    scale = law.mean_g2
    live = (t_hi > 0.0) & ~one
    small = live & (t_lo > 0.0) & (width <= _SMALL_CELL * np.minimum(t_lo, scale))
    low = live & ~small & (t_hi <= _LOW * scale)
    tail = live & ~small & ~low & (t_lo >= scale)
    direct = live & ~small & ~low & ~tail
    if small.any():
        G[small], Gc[small] = law.small_cell_cdf(t_lo[small], width[small])
    if low.any():
        G[low], Gc[low] = law.low_cell_cdf(t_lo[low], t_hi[low])
    if tail.any():
        Gc[tail] = (law.above_g2(t_lo[tail]) - law.above_g2(t_hi[tail])) / width[tail]
        G[tail] = 1.0 - Gc[tail]
    if direct.any():
        G[direct] = (law.below_g2(t_hi[direct]) - law.below_g2(t_lo[direct])) / width[direct]
        Gc[direct] = 1.0 - G[direct]
    return G, Gc


@dataclass(frozen=True)
class _Band:
    """Transition probabilities ``P[i, j]`` (cell j -> cell i) stored for ``j - below <= i <= j + above``.

    ``values[k, j] = P[j - below + k, j]`` (entries outside the matrix are 0). This is LAPACK's banded layout with
    ``below`` upper and ``above`` lower diagonals.
    """

    values: np.ndarray  # shape (below + above + 1, N)
    below: int
    above: int

    @property
    def size(self) -> int:
        return int(self.values.shape[1])

    def dense(self) -> np.ndarray:
        n = self.size
        out = np.zeros((n, n))
        cols = np.arange(n)
        for k in range(self.values.shape[0]):
            rows = cols - self.below + k
            inside = (rows >= 0) & (rows < n)
            out[rows[inside], cols[inside]] = self.values[k, inside]
        return out


def _band_from_landing(G: np.ndarray, Gc: np.ndarray, edge: np.ndarray, n: int, below: int) -> _Band:
    """Cell probabilities ``P[i, j] = G_{i+1}(j) - G_i(j)`` from the landing CDF ``G`` at the edges ``edge``.

    ``edge[k, j] = j - below + k`` runs over ``below + above + 2`` consecutive edges; edges <= 0 have G = 0 and
    edges >= n have G = 1, so the end cells collect all the mass beyond them. Differences are taken between G's
    where G < 1/2 and between complements otherwise (no cancellation in either tail).
    """
    G = np.where(edge <= 0, 0.0, np.where(edge >= n, 1.0, G))
    Gc = np.where(edge <= 0, 1.0, np.where(edge >= n, 0.0, Gc))
    values = np.where(G[1:] < 0.5, G[1:] - G[:-1], Gc[:-1] - Gc[1:])
    return _Band(values, below, values.shape[0] - 1 - below)


def _stationary_masses(band: _Band, anchor: int) -> np.ndarray:
    """Null vector of ``P - I`` with unit sum.

    The balance equation of cell ``anchor`` (implied by the others, since every column of P sums to 1) is
    replaced by ``p[anchor] = 1`` and the system is solved by LAPACK's banded LU (``gbsv``; the band is narrow
    below the diagonal, where the chain only drifts down by ``y - φ(y)``).
    """
    n = band.size
    rhs = np.zeros(n)
    rhs[anchor] = 1.0
    ab = band.values.copy()
    ab[band.below] -= 1.0  # the diagonal: P - I
    cols = np.arange(max(0, anchor - band.above), min(n, anchor + band.below + 1))
    ab[band.below + anchor - cols, cols] = 0.0  # row `anchor` -> unit row
    ab[band.below, anchor] = 1.0
    with _blas_single_thread():
        p = linalg.solve_banded((band.above, band.below), ab, rhs, check_finite=False)
    total = p.sum()
    if not np.isfinite(total) or total <= 0.0 or p.min() < -1e-9 * total:
        raise RuntimeError(f"stationary masses lost accuracy (min {p.min() / total:.3g}); please report this case")
    p = np.maximum(p / total, 0.0)  # rounding-level negatives (<= 1e-9) only
    return p / p.sum()


# --------------------------------------------------------------------------------------------------------------
# Alg. 1: the prior-precision chain y' = φ(y + ξ)


@dataclass(frozen=True)
class _PrecisionChain:
    """Coefficients of Alg. 1's recursion; offsets from λ0 keep the SGD regime free of cancellation."""

    factor: float  # f
    noise: float  # q
    lam0: float  # (1 - f)/q: lowest prior precision, σ²_post at g² = 0 is 1/λ0
    span: float  # 1/q - λ0 = f/q: length of the support of y

    @classmethod
    def make(cls, eta: float, sigma2: float, predict: str) -> _PrecisionChain:
        f, q = variance_predict_coefficients(eta, sigma2, predict)
        if math.isinf(sigma2):
            one_minus_f = 0.0
        elif predict == "paper":
            r = eta * eta / sigma2
            one_minus_f = r * (1.0 - r / 4.0)  # 1 - (1 - r/2)², Eq. 17b
        else:
            one_minus_f = -math.expm1(-eta * eta / sigma2)
        return cls(f, q, one_minus_f / q, f / q)

    def derivative(self, lam: float) -> float:
        """φ'(λ) = f/(f + qλ)²."""
        return self.factor / (self.factor + self.noise * lam) ** 2

    def deterministic_precision(self, g2: float) -> float:
        """Fixed point of λ = φ(λ) + ⟨g²⟩ (as :func:`filtering.fixed_point.exact_precision`)."""
        return self.lam0 + self.fixed_point_offsets(g2)[0]

    def fixed_point_offsets(self, g2: float) -> tuple[float, float, float]:
        """``(λ* - λ0, y* - λ0, 1/q - y*)`` at the deterministic fixed point, each without cancellation.

        With δ = λ - λ0 the fixed-point quadratic is ``q δ² + (1 - f - q⟨g²⟩) δ - ⟨g²⟩ = 0`` (using
        ``q λ0 = 1 - f``); the prior precision ``y* = φ(λ*)`` has ``y* - λ0 = δ f/(f + qλ*)`` and
        ``1/q - y* = f/(q (f + qλ*))``.
        """
        q, f = self.noise, self.factor
        b = self.lam0 * q - q * g2
        root = math.sqrt(b * b + 4.0 * q * g2)
        delta = 2.0 * g2 / (b + root) if b >= 0.0 else (root - b) / (2.0 * q)
        lam = self.lam0 + delta
        return delta, delta * f / (f + q * lam), f / (q * (f + q * lam))


@dataclass(frozen=True)
class _Grid:
    """Cell edges ``d`` (N + 1, increasing) as offsets from λ0, with ``e = span - d`` kept exactly.

    The end cells collect all the mass beyond them (exact when the edges are 0 and ``span``, the ends of the
    support; a window grid relies on the mass beyond its ends being negligible, which is checked).
    """

    d: np.ndarray
    e: np.ndarray
    span: float

    @property
    def width(self) -> np.ndarray:
        upper_half = self.d[1:] > 0.5 * self.span
        return np.where(upper_half, self.e[:-1] - self.e[1:], self.d[1:] - self.d[:-1])

    def refined(self) -> _Grid:
        """Every cell split in two."""
        w = 0.5 * self.width
        d = np.empty(2 * self.d.size - 1)
        e = np.empty_like(d)
        d[0::2], e[0::2] = self.d, self.e
        d[1::2], e[1::2] = self.d[:-1] + w, self.e[:-1] - w
        return _Grid(d, e, self.span)

    def coarsened(self) -> _Grid:
        """Every other edge removed (pairs of cells merged; the ends kept)."""
        keep = np.arange(0, self.d.size, 2)
        if keep[-1] != self.d.size - 1:
            keep = np.append(keep, self.d.size - 1)
        return _Grid(self.d[keep], self.e[keep], self.span)

    def differences(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """``d[i] - d[j]`` computed from whichever of d, e is smaller (no cancellation near either end)."""
        upper = (self.d[i] > 0.5 * self.span) & (self.d[j] > 0.5 * self.span)
        return np.where(upper, self.e[j] - self.e[i], self.d[i] - self.d[j])


#: Long memory: φ'(λ*) above this means the law is a sum over >= 100 gradients, nearly Gaussian, and a window of
#: -8 .. +12 linearised standard deviations around the fixed point holds all its mass (checked after solving).
_LONG_MEMORY = 0.99
_EDGE_MASS = 1e-12  # largest mass allowed in an end cell of a window-only grid
#: Numerical diffusion of the scheme when cells are wider than half a jump ⟨g²⟩: the stationary variance comes out
#: too large by about DIFFUSION × (cell width / ⟨g²⟩) of itself (0.18 measured; tests check this bound).
DIFFUSION = 0.25


def _window(center: float, sd: float, spacing: float, lo_clip: float, hi_clip: float) -> np.ndarray:
    """Uniform edges over ``center - 8 sd .. center + 12 sd`` (clipped), about ``spacing`` apart (<= 16384)."""
    lo = max(center - 8.0 * sd, lo_clip)
    hi = min(center + 12.0 * sd, hi_clip)
    if not hi > lo:
        return np.empty(0)
    return np.linspace(lo, hi, min(math.ceil((hi - lo) / spacing) + 1, 16385))


@dataclass(frozen=True)
class _Design:
    """A grid, and the bound on the relative error of E[σ²_post] from numerical diffusion on it."""

    grid: _Grid
    diffusion: float


def _window_spacing(sd: float, jump: float, jensen: float, rtol: float) -> float:
    """Cell width of the window: sd/8, or narrower so that numerical diffusion costs at most rtol/4.

    Cells wider than half a jump make the scheme diffuse; the stationary variance then moves E[σ²_post] by
    ``DIFFUSION (h/⟨g²⟩)`` of the Jensen term ``J = Var λ / λ*²`` (at most). Cells of ``⟨g²⟩/2`` resolve the jump.
    """
    allowed = max(0.5 * jump, 0.25 * rtol * jump / (DIFFUSION * max(jensen, 1e-300)))
    return min(sd / 8.0, allowed)


def _diffusion_bound(spacing: float, jump: float, jensen: float) -> float:
    return DIFFUSION * jensen * spacing / jump if spacing > 0.5 * jump else 0.0


def _precision_grid(chain: _PrecisionChain, law: GradientLaw, n_coarse: int, rtol: float, full: bool) -> _Design:
    """The grid for Alg. 1's prior precision.

    Short memory (or ``full``): a logit grid over the whole support [λ0, 1/q) -- geometric towards both ends --
    with, when φ'(λ*) > 1/2, a uniform window around the deterministic fixed point. Long memory: the window alone.
    """
    g2 = law.mean_g2
    lam_star = chain.deterministic_precision(g2)
    _, d_star, e_star = chain.fixed_point_offsets(g2)  # prior precision at the fixed point, as offsets
    d_star, e_star = max(d_star, 1e-300), max(e_star, 1e-300)
    slope = chain.derivative(lam_star)
    win, diffusion = np.empty(0), 0.0
    if slope > 0.5:
        var_lam = law.robust_var_g2() / (1.0 - slope * slope)  # linearised stationary variance of λ
        sd, jensen = slope * math.sqrt(var_lam), var_lam / lam_star**2
        spacing = _window_spacing(sd, g2, jensen, rtol)
        win = _window(d_star, sd, spacing, 0.0, d_star + 0.5 * e_star)
        diffusion = _diffusion_bound(win[1] - win[0], g2, jensen) if win.size > 1 else 0.0
    if slope >= _LONG_MEMORY and win.size > 16 and not full:
        return _Design(_Grid(win, chain.span - win, chain.span), diffusion)
    t_star = math.log(d_star / e_star)
    top = law.quantile_g2(1.0 - _TAIL)
    t_lo = min(math.log(1e-6 * min(d_star, g2) / chain.span), t_star - 6.0)
    t_hi = max(math.log(max(10.0 * chain.noise * top, 1e-300)), t_star + 6.0)
    t = np.linspace(t_lo, t_hi, n_coarse)
    d = chain.span * special.expit(t)
    e = chain.span * special.expit(-t)
    if win.size > 1:
        keep = (d < win[0]) | (d > win[-1])
        d, e = np.concatenate([d[keep], win]), np.concatenate([e[keep], chain.span - win])
        order = np.argsort(d)
        d, e = d[order], e[order]
    d, e = np.concatenate([[0.0], d[d > 0.0], [chain.span]]), np.concatenate([[chain.span], e[d > 0.0], [0.0]])
    return _Design(_Grid(d, e, chain.span), diffusion)


def _precision_band(chain: _PrecisionChain, law: GradientLaw, grid: _Grid, top: float) -> _Band:
    """Transition probabilities of the prior precision between the cells of ``grid``.

    From y uniform in cell j, ``P(y' <= b) = avg F(ψ(b) - y)`` (F the CDF of g²); with
    ``ψ(b) - y = (ψ(b) - b) + (b - y)`` and ``ψ(b) - b = q b d / (q e)`` (b = λ0 + d) no difference of large
    numbers is formed. Only the band of edges where 0 < G < 1 is evaluated.
    """
    n = grid.d.size - 1
    gap = (chain.lam0 + grid.d) * grid.d / np.where(grid.e > 0.0, grid.e, np.inf)  # ψ(b) - b at every edge
    reach = (grid.d + gap)[1:-1]  # ψ(b) of the internal edges 1..n-1, as offsets
    cols = np.arange(n)
    zero_upto = np.searchsorted(reach, grid.d[:-1], side="right")  # edges 1..this have G = 0 for cell j
    one_from = np.searchsorted(reach, grid.d[1:] + top, side="left") + 1  # edges from this on have G = 1
    below = int(max(0, np.max(cols - zero_upto)))
    above = int(max(0, np.max(one_from - cols - 1)))
    if isinstance(law, GaussianGradients):
        values = _gaussian_precision_band(
            grid.d,
            grid.e,
            grid.span,
            gap,
            grid.width,
            below,
            above,
            top,
            law.mean,
            law.sd,
            _SMALL_CELL,
            _LOW,
            _GL_NODES,
            _GL_WEIGHTS,
            _GL8_NODES,
            _GL8_WEIGHTS,
        )
        return _Band(values, below, above)
    edge = cols[None, :] - below + np.arange(below + above + 2)[:, None]
    inner = np.clip(edge, 1, n - 1)
    width = np.broadcast_to(grid.width[None, :], edge.shape)
    t_hi = gap[inner] + grid.differences(inner, cols[None, :])
    t_lo = gap[inner] + grid.differences(inner, cols[None, :] + 1)
    G, Gc = _cell_cdf(law, t_hi, t_lo, width, top)
    return _band_from_landing(G, Gc, edge, n, below)


@dataclass(frozen=True)
class StationaryLaw:
    """The stationary law of Alg. 1's learning rate σ²_post = 1/(y + g²) under i.i.d. gradients.

    Attributes
    ----------
    gradients : GradientLaw
    eta, sigma2 : float
    predict : str
    lam0 : float
        Lowest prior precision (1/σ²_post at g² = 0: the OU stationary precision, Eq. 22's 1/σ² up to O(η²/σ²)).
    edges : ndarray, shape (N + 1,)
        Cell edges of the prior precision y = 1/σ²_prior, as offsets from ``lam0``.
    widths : ndarray, shape (N,)
        Cell widths (computed without cancellation near either end of the support).
    masses : ndarray, shape (N,)
        Stationary probability of each cell (density uniform inside a cell).
    mean_extrapolated : float
        Richardson extrapolation of E[σ²_post] over the last two grid levels.
    error_estimate : float
        |change of E[σ²_post]| in the last refinement (absolute).
    """

    gradients: GradientLaw
    eta: float
    sigma2: float
    predict: str
    lam0: float
    edges: np.ndarray
    widths: np.ndarray
    masses: np.ndarray
    mean_extrapolated: float
    error_estimate: float

    def mean(self) -> float:
        """E[σ²_post] (the extrapolated value; see :attr:`error_estimate`)."""
        return self.mean_extrapolated

    def mean_on_grid(self) -> float:
        """E[σ²_post] from the masses of the finest grid (no extrapolation)."""
        return _mean_on_cells(self.gradients, self.lam0, self.edges, self.widths, self.masses)

    def cdf(self, a: ArrayLike) -> np.ndarray:
        """P(σ²_post <= a) for ``a`` > 0: ``Σ_j p_j avg_j P(g² >= 1/a - y)``."""
        a = check_array("a", a, lower=0.0)
        return 1.0 - self._precision_cdf(1.0 / a - self.lam0)

    def _precision_cdf(self, x_offset: np.ndarray) -> np.ndarray:
        """P(λ - λ0 <= x_offset) for the posterior precision λ = y + g²."""
        x = np.asarray(x_offset, dtype=np.float64)
        flat = x.ravel()
        lower = self.edges[:-1][None, :]
        t_hi = flat[:, None] - lower
        width = np.broadcast_to(self.widths[None, :], t_hi.shape)
        G, _ = _cell_cdf(self.gradients, t_hi, t_hi - width, width, math.inf)
        return (G @ self.masses).reshape(x.shape)

    def pdf(self, a: ArrayLike) -> np.ndarray:
        """Density of σ²_post at ``a`` > 0: ``(1/a²) Σ_j p_j [F(1/a - y_lo) - F(1/a - y_hi)] / width_j``."""
        a = check_array("a", a, lower=0.0)
        x = (1.0 / a - self.lam0).ravel()
        lower, upper = self.edges[:-1][None, :], self.edges[1:][None, :]
        law = self.gradients
        dens = (law.cdf_g2(x[:, None] - lower) - law.cdf_g2(x[:, None] - upper)) / self.widths[None, :]
        return (dens @ self.masses).reshape(a.shape) / a**2

    def quantile(self, p: ArrayLike) -> np.ndarray:
        """The p-quantile of σ²_post, from the exact CDF: a scan of 256 points in log of the precision offset
        brackets each quantile, then 40 bisections (relative precision ~1e-12 in the offset)."""
        p = check_array("p", p, lower=0.0, upper=1.0)
        if (p <= 0.0).any():
            raise ValueError("p must be in (0, 1)")
        flat = p.ravel()
        scan = np.linspace(
            math.log(max(self.edges[1], 1e-300)) - 40.0,
            math.log(self.edges[-1] + self.gradients.quantile_g2(1.0 - _TAIL)) + 1.0,
            256,
        )
        cdf = np.maximum.accumulate(self._precision_cdf(np.exp(scan)))  # monotone up to rounding
        idx = np.clip(np.searchsorted(cdf, 1.0 - flat), 1, scan.size - 1)  # σ² quantile p <-> precision 1 - p
        lo, hi = scan[idx - 1], scan[idx]
        for _ in range(40):
            mid = 0.5 * (lo + hi)
            below = self._precision_cdf(np.exp(mid)) < 1.0 - flat
            lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
        return (1.0 / (self.lam0 + np.exp(0.5 * (lo + hi)))).reshape(p.shape)


def _mean_on_cells(law: GradientLaw, lam0: float, edges: np.ndarray, widths: np.ndarray, masses: np.ndarray) -> float:
    """``Σ_j p_j avg_j E[1/(y + g²)]`` with y uniform in each cell."""
    return float(masses @ law.inverse_mean_cell(lam0 + edges[:-1], widths))


@dataclass(frozen=True)
class _Solution:
    grid: _Grid
    masses: np.ndarray
    mean: float


def _solve_precision(chain: _PrecisionChain, law: GradientLaw, grid: _Grid, top: float) -> _Solution:
    anchor = int(np.argmin(np.abs(grid.d[:-1] - chain.fixed_point_offsets(law.mean_g2)[1])))
    masses = _stationary_masses(_precision_band(chain, law, grid, top), anchor)
    return _Solution(grid, masses, _mean_on_cells(law, chain.lam0, grid.d, grid.width, masses))


def _solve_checked(chain: _PrecisionChain, law: GradientLaw, grid: _Grid, top: float) -> _Solution | None:
    """Solve; ``None`` when a window-only grid left more than ``_EDGE_MASS`` in an end cell (mass beyond it)."""
    sol = _solve_precision(chain, law, grid, top)
    window_only = grid.d[0] > 0.0 or grid.e[-1] > 0.0
    if window_only and max(sol.masses[0], sol.masses[-1]) > _EDGE_MASS:
        return None
    return sol


def _converged(
    chain: _PrecisionChain, law: GradientLaw, design: _Design, rtol: float
) -> tuple[_Solution, float, float]:
    """Solve on the design's grid and on its coarsening, refining until the error estimate is below ``rtol``.

    Returns the finest solution, the Richardson-extrapolated mean and the error estimate: the change of the mean
    between the last two levels plus the numerical-diffusion bound. Raises ``_WindowTooNarrow``.
    """
    top = law.quantile_g2(1.0 - _TAIL)
    grid, diffusion = design.grid, design.diffusion
    coarse = _solve_checked(chain, law, grid.coarsened(), top)
    fine = _solve_checked(chain, law, grid, top)
    level = 0
    while True:
        if coarse is None or fine is None:
            raise _WindowTooNarrow
        error = abs(fine.mean - coarse.mean) + diffusion * fine.mean
        if error <= rtol * fine.mean or level == _MAX_LEVEL:
            return fine, fine.mean + (fine.mean - coarse.mean) / 3.0, error  # second-order Richardson
        grid, diffusion, level = grid.refined(), 0.5 * diffusion, level + 1
        coarse, fine = fine, _solve_checked(chain, law, grid, top)


class _WindowTooNarrow(Exception):
    """The window-only grid does not hold the whole law; solve on the full support instead."""


def stationary_law(
    gradients: GradientLaw,
    eta: float,
    sigma2: float,
    predict: str = "paper",
    *,
    rtol: float = 1e-4,
    size: int = 96,
) -> StationaryLaw:
    """Stationary law of Alg. 1's σ²_post when the gradients are i.i.d. draws from ``gradients``.

    Parameters
    ----------
    gradients : GradientLaw
        :class:`GaussianGradients`, :class:`StudentTGradients`, :class:`EmpiricalGradients` or a subclass.
    eta : float
        η > 0 (= lr).
    sigma2 : float
        σ² in (0, inf] (= lr_sgd / B), with η² < 2σ² for ``predict="paper"``.
    predict : {"paper", "exponential"}
    rtol : float
        Target relative accuracy of E[σ²_post]. The grid is solved at two levels (the grid and every other edge
        removed); while their means differ by more than ``rtol`` × E[σ²_post] every cell is split in two (at most
        3 times). :attr:`StationaryLaw.error_estimate` is the last difference, returned either way.
    size : int
        Cells of the logit grid over the whole support (>= 16); the window's cells follow from the law.

    Returns
    -------
    StationaryLaw
    """
    if not isinstance(gradients, GradientLaw):
        raise TypeError(f"gradients must be a GradientLaw, got {type(gradients).__name__}")
    eta, sigma2, predict = _check_hyper(eta, sigma2, predict)
    rtol = check_positive("rtol", rtol)
    size = check_int("size", size, lower=16)
    chain = _PrecisionChain.make(eta, sigma2, predict)
    try:
        sol, mean, error = _converged(chain, gradients, _precision_grid(chain, gradients, size, rtol, False), rtol)
    except _WindowTooNarrow:
        sol, mean, error = _converged(chain, gradients, _precision_grid(chain, gradients, size, rtol, True), rtol)
    widths = sol.grid.width
    return StationaryLaw(gradients, eta, sigma2, predict, chain.lam0, sol.grid.d, widths, sol.masses, mean, error)


def _check_hyper(eta: float, sigma2: float, predict: str) -> tuple[float, float, str]:
    eta = check_positive("eta", eta)
    sigma2 = check_positive("sigma2", sigma2, allow_inf=True)
    predict = check_predict(predict)
    if predict == "paper":
        check_ou_stable(eta, sigma2, names=("eta", "sigma2"))
    return eta, sigma2, predict


# --------------------------------------------------------------------------------------------------------------
# vectorised entry points for zero-mean Gaussian gradients


def _broadcast_g2(g2: ArrayLike, eta: ArrayLike, sigma2: ArrayLike) -> tuple[np.ndarray, ...]:
    g2 = check_array("g2", g2, lower=0.0, allow_equal=True)
    eta = check_array("eta", eta, lower=0.0)
    sigma2 = check_array("sigma2", sigma2, lower=0.0, allow_inf=True)
    check_ou_stable(eta, sigma2, names=("eta", "sigma2"))
    return np.broadcast_arrays(g2, eta, sigma2)


def _map_points(
    func: Callable[[float, float, float], np.ndarray], g2: ArrayLike, eta: ArrayLike, sigma2: ArrayLike, width: int
) -> np.ndarray:
    """Apply ``func(g2, eta, sigma2) -> (width,)`` at every broadcast point; returns shape (..., width)."""
    g2, eta, sigma2 = _broadcast_g2(g2, eta, sigma2)
    out = np.empty((*g2.shape, width))
    for idx in np.ndindex(g2.shape):
        out[idx] = func(float(g2[idx]), float(eta[idx]), float(sigma2[idx]))
    return out


def _noiseless_rate(eta: float, sigma2: float, predict: str) -> float:
    """σ²_post at g² = 0: the OU stationary variance 1/λ0 (``inf`` for σ² = inf, where the prior never settles)."""
    lam0 = _PrecisionChain.make(eta, sigma2, predict).lam0
    return math.inf if lam0 == 0.0 else 1.0 / lam0


def mean_learning_rate(
    g2: ArrayLike, eta: ArrayLike, sigma2: ArrayLike, predict: str = "paper", *, rtol: float = 1e-4
) -> np.ndarray:
    """E[σ²_post] of Alg. 1 at stationarity when g ~ N(0, ⟨g²⟩) i.i.d.: the learning rate the filter really has.

    Parameters
    ----------
    g2 : array_like, shape (...)
        ⟨g²⟩ >= 0 of the summed objective (g2 = 0: σ²_post = 1/λ0, the OU stationary variance).
    eta, sigma2 : array_like, broadcastable to ``g2``
        η > 0, σ² in (0, inf], with η² < 2σ² for ``predict="paper"``.
    predict : {"paper", "exponential"}
    rtol : float
        Accuracy target of the grid refinement (see :func:`stationary_law`).

    Returns
    -------
    ndarray, float64, shape (...)
    """
    predict = check_predict(predict)
    rtol = check_positive("rtol", rtol)

    def one(g2_: float, eta_: float, sigma2_: float) -> np.ndarray:
        if g2_ == 0.0:
            return np.array([_noiseless_rate(eta_, sigma2_, predict)])
        return np.array([stationary_law(GaussianGradients(g2_), eta_, sigma2_, predict, rtol=rtol).mean()])

    return _map_points(one, g2, eta, sigma2, 1)[..., 0]


def learning_rate_quantiles(
    g2: ArrayLike,
    eta: ArrayLike,
    sigma2: ArrayLike,
    p: ArrayLike = (0.1, 0.5, 0.9),
    predict: str = "paper",
    *,
    rtol: float = 1e-4,
) -> np.ndarray:
    """Quantiles of the stationary σ²_post for g ~ N(0, ⟨g²⟩); shape ``(*broadcast shape, len(p))``."""
    predict = check_predict(predict)
    rtol = check_positive("rtol", rtol)
    probs = check_array("p", p, lower=0.0, upper=1.0).ravel()

    def one(g2_: float, eta_: float, sigma2_: float) -> np.ndarray:
        if g2_ == 0.0:
            return np.full(probs.shape, _noiseless_rate(eta_, sigma2_, predict))
        return stationary_law(GaussianGradients(g2_), eta_, sigma2_, predict, rtol=rtol).quantile(probs)

    return _map_points(one, g2, eta, sigma2, probs.size)


# --------------------------------------------------------------------------------------------------------------
# Alg. 2 (AdaBayes-FP): Eq. 21 at the β2-EMA of g²


@dataclass(frozen=True)
class FixedPointLaw:
    """Stationary law of AdaBayes-FP's σ²_post = 1/Eq. 21(V) with V the β2-EMA of i.i.d. g² (Alg. 2, Eq. 4).

    Attributes
    ----------
    edges : ndarray, shape (N + 1,)
        Cell edges of V; ``masses`` (N,) their stationary probabilities (uniform density inside a cell).
    mean_extrapolated, error_estimate : float
        As for :class:`StationaryLaw`.
    """

    gradients: GradientLaw
    eta: float
    sigma2: float
    beta2: float
    edges: np.ndarray
    masses: np.ndarray
    mean_extrapolated: float
    error_estimate: float

    def mean(self) -> float:
        """E[σ²_post] (extrapolated)."""
        return self.mean_extrapolated

    def ema_mean(self) -> float:
        """E[V] from the grid (equals ⟨g²⟩ exactly for the true law: a check of the discretisation)."""
        return float(self.masses @ (0.5 * (self.edges[:-1] + self.edges[1:])))

    def ema_var(self) -> float:
        """Var[V] from the grid (true value ``Var[g²] (1 - β2)/(1 + β2)``)."""
        lo, hi = self.edges[:-1], self.edges[1:]
        second = self.masses @ ((lo * lo + lo * hi + hi * hi) / 3.0)
        return float(second - self.ema_mean() ** 2)

    def quantile(self, p: ArrayLike) -> np.ndarray:
        """The p-quantile of σ²_post: Eq. 21 at the (1 - p)-quantile of V (σ²_post decreases with V)."""
        p = check_array("p", p, lower=0.0, upper=1.0)
        cdf = np.concatenate([[0.0], np.cumsum(self.masses)])
        v = np.interp(1.0 - p, cdf / cdf[-1], self.edges)
        return 1.0 / approx_precision(v, self.eta, self.sigma2)  # Eq. 21


def _ema_grid(law: GradientLaw, beta2: float, n_coarse: int, top: float) -> np.ndarray:
    """Edges for V: geometric from 1e-8 ⟨g²⟩ to the g² cut, plus a window around ⟨g²⟩ whose cells resolve both
    the law (sd/8) and the jump (1 - β2)⟨g²⟩/2, so that the scheme does not diffuse."""
    mean = law.mean_g2
    sd = math.sqrt(law.robust_var_g2() * (1.0 - beta2) / (1.0 + beta2))  # exact Var[V] for finite Var[g²]
    edges = np.geomspace(1e-8 * mean, top, n_coarse)
    win = _window(mean, sd, min(sd / 8.0, 0.5 * (1.0 - beta2) * mean), 0.0, top)
    if win.size > 1:
        edges = np.concatenate([edges[(edges < win[0]) | (edges > win[-1])], win])
    return np.concatenate([[0.0], np.sort(edges[edges > 0.0])])


def _ema_band(law: GradientLaw, beta2: float, edges: np.ndarray, top: float) -> _Band:
    """Transition probabilities of ``V' = β2 V + (1 - β2) g²`` between the cells ``edges``.

    From V uniform in cell j, ``P(V' <= b) = avg F((b - β2 V)/(1 - β2))``: the kernel of the precision chain with
    ``t = κ (b/β2 - V)``, ``κ = β2/(1 - β2)``.
    """
    n = edges.size - 1
    kappa = beta2 / (1.0 - beta2)
    reach = edges[1:-1] / beta2  # V below which a draw can land below the internal edge
    cols = np.arange(n)
    zero_upto = np.searchsorted(reach, edges[:-1], side="right")
    one_from = np.searchsorted(reach, edges[1:] + top / kappa, side="left") + 1
    below = int(max(0, np.max(cols - zero_upto)))
    above = int(max(0, np.max(one_from - cols - 1)))
    edge = cols[None, :] - below + np.arange(below + above + 2)[:, None]
    inner = np.clip(edge, 1, n - 1)
    t_hi = kappa * (reach[inner - 1] - edges[None, :-1])
    t_lo = kappa * (reach[inner - 1] - edges[None, 1:])
    width = np.broadcast_to(kappa * np.diff(edges)[None, :], edge.shape)
    G, Gc = _cell_cdf(law, t_hi, t_lo, width, top)
    return _band_from_landing(G, Gc, edge, n, below)


def _solve_ema(law: GradientLaw, eta: float, sigma2: float, beta2: float, edges: np.ndarray, top: float):
    anchor = int(np.clip(np.searchsorted(edges, law.mean_g2) - 1, 0, edges.size - 2))
    masses = _stationary_masses(_ema_band(law, beta2, edges, top), anchor)
    width = np.diff(edges)
    v = (edges[:-1] + 0.5 * width)[:, None] + (0.5 * width)[:, None] * _GL8_NODES[None, :]
    rate = 1.0 / approx_precision(v, eta, sigma2)  # Eq. 21 (Alg. 2, line 11)
    return masses, float(masses @ (0.5 * (rate * _GL8_WEIGHTS).sum(axis=1)))


def fixed_point_law(
    gradients: GradientLaw,
    eta: float,
    sigma2: float,
    beta2: float = 0.999,
    *,
    rtol: float = 1e-4,
    size: int = 96,
) -> FixedPointLaw:
    """Stationary law of AdaBayes-FP's σ²_post (Alg. 2) under i.i.d. gradients.

    ``V = (1 - β2) Σ_k β2^k g²(t - k)`` (Eq. 4 at t -> ∞, where the debiasing factor is 1) is the stationary
    chain ``V' = β2 V + (1 - β2) g²``, solved by the finite-volume scheme of this module; σ²_post is Eq. 21 at V.
    Parameters as in :func:`stationary_law`; ``beta2`` in (0, 1).
    """
    if not isinstance(gradients, GradientLaw):
        raise TypeError(f"gradients must be a GradientLaw, got {type(gradients).__name__}")
    eta = check_positive("eta", eta)
    sigma2 = check_positive("sigma2", sigma2, allow_inf=True)
    beta2 = check_scalar("beta2", beta2, lower=0.0, upper=1.0)
    rtol = check_positive("rtol", rtol)
    size = check_int("size", size, lower=16)
    top = gradients.quantile_g2(1.0 - _TAIL)
    edges = _ema_grid(gradients, beta2, size, top)
    coarse = np.append(edges[:-1:2], edges[-1])
    _, mean = _solve_ema(gradients, eta, sigma2, beta2, coarse, top)
    for level in range(_MAX_LEVEL + 1):
        masses, mean_fine = _solve_ema(gradients, eta, sigma2, beta2, edges, top)
        change = abs(mean_fine - mean)
        extrapolated = mean_fine + (mean_fine - mean) / 3.0  # second-order Richardson
        if change <= rtol * mean_fine or level == _MAX_LEVEL:
            break
        edges, mean = np.sort(np.concatenate([edges, 0.5 * (edges[:-1] + edges[1:])])), mean_fine
    return FixedPointLaw(gradients, eta, sigma2, beta2, edges, masses, extrapolated, change)


def fixed_point_mean_learning_rate(
    g2: ArrayLike, eta: ArrayLike, sigma2: ArrayLike, beta2: float = 0.999, *, rtol: float = 1e-4
) -> np.ndarray:
    """E[σ²_post] of AdaBayes-FP at stationarity for g ~ N(0, ⟨g²⟩) i.i.d. (broadcasting like Eq. 21)."""
    beta2 = check_scalar("beta2", beta2, lower=0.0, upper=1.0)

    def one(g2_: float, eta_: float, sigma2_: float) -> np.ndarray:
        if g2_ == 0.0:
            return np.array([sigma2_])
        return np.array([fixed_point_law(GaussianGradients(g2_), eta_, sigma2_, beta2, rtol=rtol).mean()])

    return _map_points(one, g2, eta, sigma2, 1)[..., 0]
