"""Measure step of the quadratic experiment: Eq. 11 (identity and Monte Carlo), the OU test of w*, tuned losses.

:func:`measure` turns the grid run, the fresh-seed run of the tuned columns and the Monte Carlo of
:func:`eq11_check` into the numbers :mod:`simulations.quadratic_checks` declares checks on. Nothing here decides
pass or fail.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .common import last_fraction_mean

__all__ = ["eq11_check", "eq11_identity_error", "measure", "ou_analysis", "tuned_columns"]


def eq11_check(
    h: np.ndarray, sqrt_h: np.ndarray, mu: np.ndarray, batch_size: int, n_batches: int, rng: np.random.Generator
) -> dict[str, float]:
    """Monte-Carlo check of Eqs. 11-12 from the loss of Eq. 6, with ξ_α drawn per datapoint.

    The gradient of the minibatch-summed loss ``Σ_α L_α(w) = Σ_α (-½ wᵀHw + ξ_αᵀw)`` is taken by central
    differences of its *values* at ``μ ± e_i`` (exact for a quadratic), not from ``-BHμ + Σξ``. Its noise-free part
    is compared with Eq. 11's mean ``B H_ii (w*_i - μ_i)`` (w* from Eq. 10): ``fd_mean_rel_err`` -- an algebraic
    identity, so it only guards the code. The noise is tested statistically over ``n_batches`` minibatches, with
    tolerances that account for the correlation ``C = D^{-1/2} H D^{-1/2}`` of the noise across parameters:

    * ``z_mean``: mean over i of z_i = (ḡ_i - Eq. 11)/sqrt(B H_ii / M); s.d. ``sqrt(1ᵀC1)/n`` (``z_mean_sd``);
    * ``white_var``: sample variance of the whitened residual ``L⁻¹ (ḡ - Eq. 11) sqrt(M/B)`` (i.i.d. N(0, 1) if
      the noise covariance is B H); s.d. ``sqrt(2/(n-1))``;
    * ``var_ratio_mean``: mean over i of the sample variance of g_i over the M minibatches / (B H_ii) (Eq. 12);
      s.d. ``sqrt(2/(M-1) ΣC²)/n`` (``var_ratio_sd``).
    """
    n = h.shape[0]
    diag = np.diag(h)
    b = float(batch_size)
    wstar = mu - (h @ mu) / diag  # Eq. 10
    predicted = b * diag * (wstar - mu)  # Eq. 11 summed over B datapoints
    plus, minus = mu[:, None] + np.eye(n), mu[:, None] - np.eye(n)  # columns μ ± e_i

    def quad(w: np.ndarray) -> np.ndarray:  # -½ wᵀHw per column, summed over B datapoints
        return -0.5 * b * np.einsum("ij,ij->j", w, h @ w)

    fd_det = 0.5 * (quad(plus) - quad(minus))  # noise-free part of the central difference
    g = np.empty((n_batches, n))
    for m in range(n_batches):
        xi_sum = (sqrt_h @ rng.standard_normal((n, batch_size))).sum(axis=1)  # Σ_α ξ_α, ξ_α ~ N(0, H) each
        g[m] = fd_det + 0.5 * (xi_sum @ plus - xi_sum @ minus)  # d/dw_i of Σ_α L_α at μ (Eq. 6)
    resid = g.mean(axis=0) - predicted
    z = resid / np.sqrt(b * diag / n_batches)
    white = np.linalg.solve(sqrt_h, resid) * np.sqrt(n_batches / b)
    corr = h / np.sqrt(np.outer(diag, diag))
    var_ratio = g.var(axis=0, ddof=1) / (b * diag)  # Eq. 12's variance B H_ii
    return {
        "fd_mean_rel_err": float(np.max(np.abs(fd_det - predicted)) / np.max(np.abs(predicted))),
        "z_mean": float(z.mean()),
        "z_mean_sd": float(np.sqrt(corr.sum()) / n),
        "white_var": float(white.var(ddof=1)),
        "white_var_sd": float(np.sqrt(2.0 / (n - 1))),
        "var_ratio_mean": float(var_ratio.mean()),
        "var_ratio_sd": float(np.sqrt(2.0 / (n_batches - 1) * (corr**2).sum()) / n),
        "n": n,
        "n_batches": n_batches,
    }


def eq11_identity_error(res: dict[str, np.ndarray], h: np.ndarray, batch_size: int) -> float:
    """max |g - B H_ii (w* - μ) - noise| / max |g| along the tracked run (Eqs. 9-11; zero up to rounding)."""
    diag = np.diag(h)
    resid = res["g_track"] - batch_size * diag * (res["wstar_track"] - res["mu_track"]) - res["noise_track"]
    return float(np.abs(resid).max() / np.abs(res["g_track"]).max())


def ou_analysis(track: dict[str, np.ndarray], h: np.ndarray, eta: float, sigma2: float) -> dict[str, np.ndarray]:
    """Increments of w*_i(t) along the optimiser's path against the OU model of Eqs. 13-15.

    Returns per-parameter ``implied_eta2`` (Var Δw*_i), ``ac1`` (lag-1 autocorrelation of Δw*_i),
    ``reversion`` (slope of Δw*_i on w*_i; Eq. 14 says -η²/(2σ²)), ``eq15_printed``
    (η_μ² H_{-i,i}ᵀH_{-i,i} with η_μ² the mean Var Δμ_j) and ``eq15_independent``
    (Σ_{j≠i} H_ji² Var Δμ_j / H_ii², the variance Eq. 10 implies for independent increments).
    """
    w, mu = track["wstar_track"], track["mu_track"]
    dw, dmu = np.diff(w, axis=0), np.diff(mu, axis=0)
    implied = dw.var(axis=0, ddof=1)
    dwc = dw - dw.mean(axis=0)
    ac1 = (dwc[1:] * dwc[:-1]).mean(axis=0) / (dwc**2).mean(axis=0)
    wc = w[:-1] - w[:-1].mean(axis=0)
    reversion = (wc * dwc).mean(axis=0) / (wc**2).mean(axis=0)
    var_dmu = dmu.var(axis=0, ddof=1)
    off = h - np.diag(np.diag(h))
    col_norm2 = (off**2).sum(axis=0)
    diag = np.diag(h)
    return {
        "implied_eta2": implied,
        "ac1": ac1,
        "reversion": reversion,
        "eq15_printed": var_dmu.mean() * col_norm2,  # Eq. 15 as printed
        "eq15_independent": (off**2).T @ var_dmu / diag**2,
        "var_dmu": var_dmu,
        "paper_eta2": np.full_like(implied, eta**2),
        "paper_reversion": np.full_like(implied, -(eta**2) / (2 * sigma2)),
    }


def tuned_columns(rules_of_columns: Sequence[str], res: dict) -> dict[str, int]:
    """Index of the best column per rule by final excess loss (mean over the last 10 % of the curve)."""
    final = last_fraction_mean(res["loss"])
    final[res["diverged"]] = np.inf
    best: dict[str, int] = {}
    for j, rule in enumerate(rules_of_columns):
        if rule not in best or final[j] < final[best[rule]]:
            best[rule] = j
    return best


def measure(
    *,
    eigenvalues: np.ndarray,
    res: dict[str, np.ndarray],
    track: int,
    identity_err: float,
    mc: dict[str, float],
    ou: dict[str, np.ndarray],
    eta: float,
    sigma2: float,
    reference_diverged: list[str],
) -> dict[str, Any]:
    """The numbers the quadratic check specs read (every one computed here, none in the specs).

    Parameters
    ----------
    eigenvalues : ndarray, shape (n,)
        eig(H), ascending.
    res : dict
        Grid run of :func:`simulations.quadratic.simulate_quadratic` (``g2`` (n, C), ``diverged`` (C,)).
    track : int
        Column of the AdaBayes reference run.
    identity_err : float
        :func:`eq11_identity_error` of the grid run.
    mc : dict
        :func:`eq11_check` at the reference run's final μ.
    ou : dict
        :func:`ou_analysis` of the tracked run.
    eta, sigma2 : float
        The reference AdaBayes η and σ².
    reference_diverged : list of str
        Reference columns that diverged, as ``"rule {hyper}"``.
    """
    g2_ref = res["g2"][:, track]
    return {
        "eig_decades": float(np.log10(eigenvalues[-1] / eigenvalues[0])),
        "g2_decades": float(np.log10(g2_ref.max() / g2_ref.min())),
        "identity_err": identity_err,
        **{f"mc_{key}": value for key, value in mc.items()},
        "mc_z_mean_tol": 4 * mc["z_mean_sd"],
        "mc_white_var_tol": 4 * mc["white_var_sd"],
        "mc_var_ratio_tol": 4 * mc["var_ratio_sd"],
        "n_reference_diverged": float(len(reference_diverged)),
        "reference_diverged": ", ".join(reference_diverged) or "none",
        "ou_eta2_over_lr2": float(np.median(ou["implied_eta2"] / eta**2)),
        "ou_over_eq15_printed": float(np.median(ou["implied_eta2"] / ou["eq15_printed"])),
        "ou_over_eq15_independent": float(np.median(ou["implied_eta2"] / ou["eq15_independent"])),
        "ou_ac1": float(np.median(ou["ac1"])),
        "ou_reversion": float(np.median(ou["reversion"])),
        "ou_reversion_paper": -(eta**2) / (2 * sigma2),
        "n_diverged": float(res["diverged"].sum()),
    }
