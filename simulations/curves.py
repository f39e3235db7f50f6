"""Theory curves saved beside the measurements, for the figures: fixed points over a ⟨g²⟩ grid and Eq. 21's error map.

Figures draw these arrays and compute nothing (:mod:`figures` reads the saved npz). A new theoretical curve is one
more entry of :data:`FIXED_POINT_CURVES`: every experiment that saves fixed-point curves then saves it, under its
key. The stochastic curve -- the stationary mean of Alg. 1's σ²_post when g ~ N(0, ⟨g²⟩) is drawn afresh every step
(:mod:`filtering.stochastic`, issue 9) -- and its 10-90 % band are three such entries; they share one solve per node
(:func:`stochastic_nodes`, 4 nodes per decade of ⟨g²⟩, interpolated in log-log by a cubic spline: within 1e-3 of
solving at every grid point, the size of the solver's own tolerance), so that a 200-point curve costs ~50 solves.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache

import numpy as np
from numpy.typing import ArrayLike
from scipy.interpolate import CubicSpline

from filtering.fixed_point import approx_precision, eq21_relative_error, exact_precision
from filtering.stochastic import GaussianGradients, stationary_law

from .jensen import jensen_rate

__all__ = [
    "FIXED_POINT_CURVES",
    "STOCHASTIC_BAND",
    "error_map",
    "fixed_point_curves",
    "stochastic_nodes",
    "stochastic_rate",
]

STOCHASTIC_BAND = (0.1, 0.9)  # quantiles of the per-step σ²_post drawn as the band
STOCHASTIC_RTOL = 1e-3  # accuracy target of each solve (filtering.stochastic.stationary_law)
NODES_PER_DECADE = 4


@lru_cache(maxsize=16)
def _nodes(k_lo: int, k_hi: int, eta: float, sigma2: float) -> tuple[np.ndarray, np.ndarray]:
    g2 = 10.0 ** (np.arange(k_lo, k_hi + 1) / NODES_PER_DECADE)
    values = np.empty((g2.size, 1 + len(STOCHASTIC_BAND)))
    for k, x in enumerate(g2):
        law = stationary_law(GaussianGradients(float(x)), eta, sigma2, rtol=STOCHASTIC_RTOL)  # Eqs. 17b + 18a
        values[k, 0] = law.mean()
        values[k, 1:] = law.quantile(np.array(STOCHASTIC_BAND))
    g2.setflags(write=False)
    values.setflags(write=False)
    return g2, values


def stochastic_nodes(g2_min: float, g2_max: float, eta: float, sigma2: float) -> tuple[np.ndarray, np.ndarray]:
    """Stationary law of Alg. 1's σ²_post for g ~ N(0, ⟨g²⟩) at nodes covering [g2_min, g2_max].

    The nodes are the powers ``10^(k/4)`` from the one at or below ``g2_min`` to the one at or above ``g2_max``
    (at least 6), so that nearby ranges share the cached solves.

    Returns
    -------
    g2 : ndarray, shape (K,)
        Nodes, read-only.
    values : ndarray, shape (K, 3)
        E[σ²_post] and its :data:`STOCHASTIC_BAND` quantiles per node, read-only (cached per node range, η, σ²).
    """
    if not 0.0 < g2_min <= g2_max < math.inf:
        raise ValueError(f"need 0 < g2_min <= g2_max < inf, got g2_min={g2_min!r}, g2_max={g2_max!r}")
    k_lo = math.floor(NODES_PER_DECADE * math.log10(g2_min) + 1e-9)
    k_hi = max(math.ceil(NODES_PER_DECADE * math.log10(g2_max) - 1e-9), k_lo + 5)
    return _nodes(k_lo, k_hi, float(eta), float(sigma2))


def stochastic_rate(
    g2: ArrayLike, eta: float, sigma2: float, column: int = 0, span: tuple[float, float] | None = None
) -> np.ndarray:
    """E[σ²_post] (``column`` 0) or a band quantile (1, 2) of the stationary law at ``g2``, g ~ N(0, ⟨g²⟩).

    Interpolated (cubic spline in log-log) between the nodes of :func:`stochastic_nodes` over ``span``
    (default: the range of ``g2``).

    Returns
    -------
    ndarray, shape of ``g2``
    """
    g2 = np.asarray(g2, dtype=np.float64)
    lo, hi = span if span is not None else (float(g2.min()), float(g2.max()))
    nodes, values = stochastic_nodes(lo, hi, eta, sigma2)
    spline = CubicSpline(np.log(nodes), np.log(values[:, column]))
    return np.exp(spline(np.log(g2)))


def _stochastic_column(column: int) -> Callable[[np.ndarray, float, float], np.ndarray]:
    def curve(g2: np.ndarray, eta: float, sigma2: float) -> np.ndarray:
        return stochastic_rate(g2, eta, sigma2, column, (float(g2[0]), float(g2[-1])))

    return curve


# saved key -> learning rate σ²_post as a function of (⟨g²⟩ grid, η, σ²)
FIXED_POINT_CURVES: dict[str, Callable[[np.ndarray, float, float], np.ndarray]] = {
    "grid_eq21": lambda g2, eta, s2: 1.0 / approx_precision(g2, eta, s2),  # Eq. 21
    "grid_exact": lambda g2, eta, s2: 1.0 / exact_precision(g2, eta, s2),  # Eqs. 17b + 18a at ⟨g²⟩
    # second-order Jensen term about the exact fixed point: valid only while η sqrt(⟨g²⟩) << 1 (it turns the wrong
    # way past ⟨g²⟩ ~ 1e6 at η = 1e-3); saved for the Jensen check, no longer drawn (superseded by the next three)
    "grid_jensen": jensen_rate,
    "grid_stochastic": _stochastic_column(0),  # E[σ²_post], stationary law of Eqs. 17b + 18a, g ~ N(0, ⟨g²⟩)
    "grid_stochastic_lo": _stochastic_column(1),  # its 10 % quantile (per step)
    "grid_stochastic_hi": _stochastic_column(2),  # its 90 % quantile
}


def fixed_point_curves(g2_min: float, g2_max: float, eta: float, sigma2: float, points: int = 200) -> dict:
    """Every curve of :data:`FIXED_POINT_CURVES` on ``points`` log-spaced ⟨g²⟩ in [g2_min, g2_max].

    Returns
    -------
    dict of ndarray, each shape (points,)
        ``grid_g2`` and one array per curve.
    """
    grid = np.logspace(np.log10(g2_min), np.log10(g2_max), points)
    return {"grid_g2": grid} | {key: curve(grid, eta, sigma2) for key, curve in FIXED_POINT_CURVES.items()}


def error_map(eta: float, n_g2: int = 400, n_sigma2: int = 160) -> dict[str, np.ndarray]:
    """Relative error of Eq. 21 against the exact fixed point over (⟨g²⟩, σ²) at fixed η, for the error-map figure.

    Returns ``map_g2`` (n_g2,), ``map_sigma2`` (n_sigma2,) and ``map_err`` (n_sigma2, n_g2) =
    σ²_21/σ²_exact - 1; σ² runs from η² (just above the OU stability limit η² < 2σ²) to 10⁴ η.
    """
    g2 = np.logspace(-6, 10, n_g2)
    sigma2 = np.logspace(np.log10(eta**2), np.log10(1e4 * eta), n_sigma2)
    err = np.array([eq21_relative_error(g2, eta, s) for s in sigma2])
    return {"map_g2": g2, "map_sigma2": sigma2, "map_err": err, "map_eta": np.array(eta)}
