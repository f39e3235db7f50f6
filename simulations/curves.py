"""Theory curves saved beside the measurements, for the figures: fixed points over a ⟨g²⟩ grid and Eq. 21's error map.

Figures draw these arrays and compute nothing (:mod:`figures` reads the saved npz). A new theoretical curve (for
example the stationary mean of σ²_post under noisy g², :mod:`filtering.stochastic`) is one more entry of
:data:`FIXED_POINT_CURVES`: every experiment that saves fixed-point curves then saves it, under its key.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from filtering.fixed_point import approx_precision, eq21_relative_error, exact_precision

from .jensen import jensen_rate

__all__ = ["FIXED_POINT_CURVES", "error_map", "fixed_point_curves"]

# saved key -> learning rate σ²_post as a function of (⟨g²⟩ grid, η, σ²)
FIXED_POINT_CURVES: dict[str, Callable[[np.ndarray, float, float], np.ndarray]] = {
    "grid_eq21": lambda g2, eta, s2: 1.0 / approx_precision(g2, eta, s2),  # Eq. 21
    "grid_exact": lambda g2, eta, s2: 1.0 / exact_precision(g2, eta, s2),  # Eqs. 17b + 18a at ⟨g²⟩
    "grid_jensen": jensen_rate,  # exact + second-order Jensen term for i.i.d. χ²₁ g²
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
