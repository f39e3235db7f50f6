"""The gap between Alg. 1's noisy precision recursion and its deterministic fixed point (Jensen gap).

Alg. 1 iterates ``λ(t+1) = φ(λ(t)) + g²(t)`` with ``φ(λ) = 1 / (f/λ + q)`` (Eqs. 17b, 18a; ``f``, ``q`` from
:func:`filtering.ou.variance_predict_coefficients`). Eq. 21 and :func:`filtering.fixed_point.exact_precision`
replace g² by its mean ⟨g²⟩ (Eq. 45). With random g² the time average of σ²_post = 1/λ differs: φ is concave
and 1/λ convex. For ``g² = ⟨g²⟩ χ²₁`` (Gaussian gradients with zero mean) two estimates are given here:

* :func:`jensen_rate` -- a second-order (small-noise) expansion about the fixed point λ*:
  ``Var δ ≈ 2⟨g²⟩² / (1 - φ'²)``, ``E δ ≈ φ'' Var δ / (2 (1 - φ'))``,
  ``E[1/λ] ≈ (1/λ*) (1 - E δ / λ* + Var δ / λ*²)``; in the Adam regime the relative gap is ``≈ 0.75 η sqrt(⟨g²⟩)``.
  **A second-order approximation, valid only while η sqrt(⟨g²⟩) << 1** (within 1 % of the stationary mean up to
  η sqrt(⟨g²⟩) ≈ 0.18, 4 % at 0.56); beyond it turns the wrong way (0.66x the filter at ⟨g²⟩ = 1e7, 0.02x at 1e10 for
  η = σ² = 1e-3, issue 9). The stationary law itself, to numerical precision and at every ⟨g²⟩, is
  :func:`filtering.stochastic.mean_learning_rate`, which the figures draw instead; this estimate is kept for the
  generative experiment's check of the small-noise regime.
* :func:`iid_chi2_rate` -- the time average of the recursion itself driven by i.i.d. ``⟨g²⟩ χ²₁`` draws.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from filtering.fixed_point import exact_precision
from filtering.ou import variance_predict_coefficients

__all__ = ["iid_chi2_rate", "jensen_rate"]


def jensen_rate(g2: ArrayLike, eta: float, sigma2: float, predict: str = "paper") -> np.ndarray:
    """Second-order estimate of the mean of σ²_post = 1/λ under i.i.d. ``g² = ⟨g²⟩ χ²₁``.

    Parameters
    ----------
    g2 : array_like, shape (...)
        ⟨g²⟩ > 0.
    eta, sigma2 : float
        η > 0, σ² > 0.

    Returns
    -------
    ndarray, shape (...)
        Estimated ``E[σ²_post]``; valid while ``sqrt(Var δ)/λ*`` is small (η sqrt(⟨g²⟩) << 1).
    """
    g2 = np.asarray(g2, dtype=np.float64)
    if not (g2 > 0).all():
        raise ValueError("g2 must be > 0")
    f, q = variance_predict_coefficients(eta, sigma2, predict)
    lam = exact_precision(g2, eta, sigma2, predict)  # λ* (Eqs. 17b + 18a at ⟨g²⟩)
    den = f + q * lam
    d1 = f / den**2  # φ'(λ*)
    d2 = -2.0 * f * q / den**3  # φ''(λ*)
    var = 2.0 * g2**2 / (1.0 - d1**2)  # Var χ²₁ = 2, AR(1) with coefficient φ'
    mean_shift = 0.5 * d2 * var / (1.0 - d1)
    return (1.0 / lam) * (1.0 - mean_shift / lam + var / lam**2)


def iid_chi2_rate(
    g2: ArrayLike,
    eta: float,
    sigma2: float,
    steps: int,
    burn_in: int,
    rng: np.random.Generator,
    replicas: int = 16,
    predict: str = "paper",
) -> np.ndarray:
    """Time-and-replica average of σ²_post from Alg. 1's recursion driven by i.i.d. ``⟨g²⟩ χ²₁``.

    Parameters
    ----------
    g2 : array_like, shape (K,)
        ⟨g²⟩ > 0 values.
    eta, sigma2 : float
    steps, burn_in : int
        Total steps and the number discarded, ``0 <= burn_in < steps``.
    rng : np.random.Generator
    replicas : int
        Independent chains per value.

    Returns
    -------
    ndarray, shape (K,)
    """
    g2 = np.asarray(g2, dtype=np.float64).ravel()
    if not (g2 > 0).all():
        raise ValueError("g2 must be > 0")
    if not 0 <= burn_in < steps:
        raise ValueError(f"burn_in must be in [0, steps), got burn_in={burn_in}, steps={steps}")
    if replicas < 1:
        raise ValueError(f"replicas must be >= 1, got {replicas}")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be an np.random.Generator, got {type(rng).__name__}")
    f, q = variance_predict_coefficients(eta, sigma2, predict)
    scale = np.repeat(g2[:, None], replicas, axis=1)
    var = np.full_like(scale, sigma2)
    total = np.zeros_like(scale)
    chunk = 1000
    for start in range(0, steps, chunk):
        z = rng.standard_normal((min(chunk, steps - start), *scale.shape))
        for k in range(z.shape[0]):
            var = 1.0 / (1.0 / (f * var + q) + scale * z[k] ** 2)  # Eqs. 17b, 18a with g² = ⟨g²⟩ χ²₁
            if start + k >= burn_in:
                total += var
    return (total / (steps - burn_in)).mean(axis=1)
