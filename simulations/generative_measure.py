"""Measure step of the generative-model experiment: from the simulated time averages to the numbers checked.

:func:`measure` compares the measured learning rates with Eq. 21, the exact fixed point, the Jensen estimates and
Eq. 31, and returns every number and mask the checks (:mod:`simulations.generative_checks`), the per-decade tables
and the figures' curves (:mod:`simulations.curves`) need. Nothing here decides pass or fail.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from filtering.fixed_point import (
    approx_precision,
    eq21_relative_error,
    eq21_validity_range,
    exact_precision,
    fading_memory_variance,
)
from filtering.ou import variance_predict_coefficients

from .common import decade_of, decade_table, rel_err
from .jensen import iid_chi2_rate, jensen_rate

__all__ = [
    "MIN_REGION",
    "REGIMES",
    "calibration_measure",
    "decade_medians",
    "first_exceed",
    "measure",
    "regime_masks",
    "region_median",
    "tables",
]

# ⟨g²⟩ / (η/σ²)² boundaries of the three regimes (η/sqrt(⟨g²⟩) >= 10 σ²: SGD; <= σ²/10: Adam)
REGIMES = {"sgd": (0.0, 1e-2), "crossover": (1e-2, 1e2), "adam": (1e2, np.inf)}
MIN_REGION = 5  # a regional median over fewer parameters is NaN (and its check fails)
COVER95_Z = 1.959963984540054
# pooled z statistics of the posterior rules and their targets for a calibrated filter
CALIBRATION_TARGETS = {"z_mean": 0.0, "z_var": 1.0, "cover68": 0.682689492, "cover95": 0.95}


def region_median(err: np.ndarray, mask: np.ndarray, min_count: int = MIN_REGION) -> float:
    """Median of |err| over ``mask``; NaN (a failing check) when fewer than ``min_count`` parameters."""
    return float(np.median(np.abs(err[mask]))) if mask.sum() >= min_count else math.nan


def regime_masks(g2: np.ndarray, eta: float, sigma2: float) -> dict[str, np.ndarray]:
    """Boolean masks of :data:`REGIMES` on ``g2`` (boundaries in units of the crossover ⟨g²⟩ = (η/σ²)²)."""
    c = (eta / sigma2) ** 2
    return {k: (g2 >= lo * c) & (g2 < hi * c) for k, (lo, hi) in REGIMES.items()}


def decade_medians(g2: np.ndarray, err: np.ndarray, mask: np.ndarray) -> dict[int, float]:
    """Median |err| per decade of ⟨g²⟩ within ``mask`` (decades with >= MIN_REGION parameters only)."""
    dec = decade_of(g2)
    out = {}
    for d in np.unique(dec[mask]):
        sel = mask & (dec == d)
        if sel.sum() >= MIN_REGION:
            out[int(d)] = float(np.median(np.abs(err[sel])))
    return out


def first_exceed(g2: np.ndarray, err: np.ndarray, level: float, above: float, window: int = 15) -> float:
    """Smallest ⟨g²⟩ > ``above`` from which the running median of |err| stays above ``level``.

    The running median (``window`` points, sorted by ⟨g²⟩) counts as within tolerance where it is <= ``level``
    or where ⟨g²⟩ <= ``above``. The answer is the ⟨g²⟩ at (last index within tolerance) + 1: ``inf`` when the
    series ends within tolerance, the smallest ⟨g²⟩ when no point is within tolerance.
    """
    order = np.argsort(g2)
    x, e = g2[order], np.abs(err[order])
    med = np.array([np.median(e[max(0, i - window // 2) : i + window // 2 + 1]) for i in range(e.size)])
    ok = (med <= level) | (x <= above)
    good = np.flatnonzero(ok)
    first_bad = good[-1] + 1 if good.size else 0
    return float(x[first_bad]) if first_bad < x.size else math.inf


def _regional(prefix: str, g2: np.ndarray, err: np.ndarray, region: np.ndarray, eta: float, sigma2: float) -> dict:
    """Per regime of :data:`REGIMES` within ``region``: median |err|, count and ⟨g²⟩ range; worst decade."""
    out: dict[str, Any] = {}
    for key, mask in regime_masks(g2, eta, sigma2).items():
        sel = mask & region
        lo, hi = (g2[sel].min(), g2[sel].max()) if sel.any() else (math.nan, math.nan)
        out |= {f"{prefix}_{key}": region_median(err, sel), f"{prefix}_{key}_n": int(sel.sum())}
        out |= {f"{prefix}_{key}_lo": lo, f"{prefix}_{key}_hi": hi}
    per_dec = decade_medians(g2, err, region)
    worst = max(per_dec, key=per_dec.__getitem__) if per_dec else None
    out |= {f"{prefix}_decade_max": per_dec[worst] if worst is not None else math.nan}
    out |= {f"{prefix}_decades": len(per_dec), f"{prefix}_worst": worst}
    return out


def _adabayes(data: dict[str, np.ndarray], eta: float, s2: float) -> dict[str, Any]:
    """Alg. 1's time-averaged σ²_post against Eq. 21, the exact fixed point and the Jensen estimate."""
    g2, rate = data["adabayes_g2"], data["adabayes_rate"]
    exact = 1.0 / exact_precision(g2, eta, s2)
    jensen = jensen_rate(g2, eta, s2)
    taylor_err = eq21_relative_error(g2, eta, s2)  # Eq. 21 vs exact (Taylor step of Eq. 47)
    jensen_gap = jensen / exact - 1.0
    # Eq. 21's two assumptions: the Taylor step of Eq. 47 and g² -> ⟨g²⟩ (Eq. 45), each costing <= 1 %
    valid = (np.abs(taylor_err) <= 0.01) & (np.abs(jensen_gap) <= 0.01)
    return {
        "g2": g2,
        "err_eq21": rel_err(rate, 1.0 / approx_precision(g2, eta, s2)),  # Eq. 21
        "err_exact": rel_err(rate, exact),
        "err_jensen": rel_err(rate, jensen),
        "gap_measured": rel_err(rate, exact),
        "gap_predicted": jensen_gap,
        "valid": valid,
        "jensen_region": eta * np.sqrt(g2) <= 0.1,
    }


def _adabayes_fp(data: dict[str, np.ndarray], eta: float, s2: float) -> dict[str, Any]:
    """Alg. 2's σ²_post against Eq. 21 where Eq. 21 is within 2 % of the exact fixed point."""
    fp_g2 = data["adabayes_fp_g2"]
    return {
        "fp_g2": fp_g2,
        "fp_err": rel_err(data["adabayes_fp_rate"], 1.0 / approx_precision(fp_g2, eta, s2)),  # Eq. 21
        "fp_valid": np.abs(eq21_relative_error(fp_g2, eta, s2)) <= 0.02,
    }


def _kalman(data: dict[str, np.ndarray], eta: float, s2: float, steps: int) -> dict[str, Any]:
    """The exact filter's final σ²_post against its fixed point, with the linearised convergence bound."""
    kal_star = 1.0 / exact_precision(data["h"], eta, s2)
    # linearised geometric convergence from σ²_post = σ² at t = -1: |error(T)| <= |σ²/σ²* - 1| φ'(λ*)^T
    f, q = variance_predict_coefficients(eta, s2)
    lam_star = 1.0 / kal_star
    contraction = f / (f + q * lam_star) ** 2
    return {
        "kal_exact_err": rel_err(data["kalman_final_rate"], kal_star),
        "kal_tol": float(np.max(2.0 * np.abs(s2 / kal_star - 1.0) * contraction**steps)) + 1e-12,
        "kal_eq21_err": rel_err(data["kalman_rate"], 1.0 / approx_precision(data["h"], eta, s2)),  # Eq. 21 at h
        "kal_valid": np.abs(eq21_relative_error(data["h"], eta, s2)) <= 0.01,
    }


def _fading(data: dict[str, np.ndarray], s2: float, forget: float, burn_in: int) -> dict[str, Any]:
    """Fading memory's σ²_post against Eq. 31 and the region where Eq. 31's assumptions hold.

    σ²_post = 1/P with P an exponential average of g² over ~1/λ_f steps; the time average of 1/P equals
    λ_f/⟨g²⟩ only when (a) the start 1/σ² has been forgotten by burn-in and (b) g² is dominated by the
    observation noise h ε² (independent from step to step), so that P has small relative fluctuations. Where the
    tracking error h²(w* - μ)² dominates g² (⟨g²⟩/h well above 1), g² is correlated over longer than 1/λ_f
    steps, P fluctuates by O(1) and E[1/P] > 1/E[P] (Jensen). Region: (a) and ⟨g²⟩/h <= 1.1 (the tracking-error
    term at most 10 % of ⟨g²⟩), stated before looking at the errors.
    """
    fade_g2 = data["fading_g2"]
    fade_star = fading_memory_variance(fade_g2, forget)  # Eq. 31
    converged = (1.0 - forget) ** burn_in / s2 <= 1e-3 / fade_star
    region = converged & (fade_g2 / data["h"] <= 1.1)
    return {"fade_g2": fade_g2, "fade_err": rel_err(data["fading_rate"], fade_star), "fade_region": region}


def measure(data: dict[str, np.ndarray], cfg: Any, rng: np.random.Generator) -> dict[str, Any]:
    """Every array and number the generative checks, tables and curves use.

    Parameters
    ----------
    data : dict of ndarray
        Output of :func:`simulations.generative.simulate_generative`.
    cfg : GenerativeConfig
    rng : np.random.Generator
        Drives the i.i.d. χ²₁ Monte Carlo of :func:`simulations.jensen.iid_chi2_rate` (40 ⟨g²⟩ values).

    Returns
    -------
    dict
        Arrays (``err_eq21``, ``valid``, ...) and scalars keyed by the names the check specs use.
    """
    eta, s2 = cfg.eta, cfg.sigma2
    m: dict[str, Any] = {"eta": eta, "sigma2": s2, "h": data["h"]}
    m |= _adabayes(data, eta, s2) | _adabayes_fp(data, eta, s2) | _kalman(data, eta, s2, cfg.steps)
    m |= _fading(data, s2, cfg.forget, cfg.burn_in)
    g2 = m["g2"]
    m["mc_g2"] = np.logspace(np.log10(g2.min()), np.log10(g2.max()), 40)
    m["mc_rate"] = iid_chi2_rate(m["mc_g2"], eta, s2, cfg.steps, cfg.burn_in, rng, replicas=8)
    m["err_mc"] = rel_err(
        data["adabayes_rate"], np.exp(np.interp(np.log(g2), np.log(m["mc_g2"]), np.log(m["mc_rate"])))
    )
    m["crossover"] = (eta / s2) ** 2  # η/sqrt(⟨g²⟩) = σ²
    m["validity"] = eq21_validity_range(eta, s2, 0.02) or (math.nan, math.nan)
    m |= _regional("eq21", g2, m["err_eq21"], m["valid"], eta, s2)
    m |= _regional("fp", m["fp_g2"], m["fp_err"], m["fp_valid"], eta, s2)
    return m | _scalars(m, data, cfg)


def _scalars(m: dict[str, Any], data: dict[str, np.ndarray], cfg: Any) -> dict[str, Any]:
    """The single numbers the check specs read (every one computed here, none in the specs)."""
    g2, valid, fade_region = m["g2"], m["valid"], m["fade_region"]
    outside = ~fade_region
    adam_valid = regime_masks(g2, cfg.eta, cfg.sigma2)["adam"] & valid
    fade_decades = decade_medians(m["fade_g2"], m["fade_err"], fade_region)
    return {
        "g2_decades": float(np.log10(data["kalman_g2"].max() / data["kalman_g2"].min())),
        "h_decades": cfg.log10_h[1] - cfg.log10_h[0],
        "n_valid": int(valid.sum()),
        "eq21_median_valid": region_median(m["err_eq21"], valid),
        "jensen_median": region_median(m["err_jensen"], m["jensen_region"]),
        "fp_median": region_median(m["fp_err"], m["fp_valid"]),
        "kal_exact_max": float(np.max(np.abs(m["kal_exact_err"]))),
        "fade_median": region_median(m["fade_err"], fade_region),
        "fade_n": int(fade_region.sum()),
        "fade_size": fade_region.size,
        "fade_decade_max": max(fade_decades.values(), default=math.nan),
        "fade_outside_median": float(np.median(np.abs(m["fade_err"][outside]))) if outside.any() else math.nan,
        "fade_outside_what": (
            f"median of the same ratio over the {int(outside.sum())} parameters outside that region "
            f"(⟨g²⟩/h > 1.1: the tracking error dominates g²; ⟨g²⟩ from {m['fade_g2'][outside].min():.3g})"
            if outside.any()
            else "no parameter outside the region"
        ),
        "fade_break_10": first_exceed(m["fade_g2"], m["fade_err"], 0.10, 0.0),
        "kal_eq21_median_valid": region_median(m["kal_eq21_err"], m["kal_valid"]),
        "eq21_max_valid": float(np.max(np.abs(m["err_eq21"][valid]))) if valid.any() else math.nan,
        "adam_valid_upper_g2": float(g2[adam_valid].max()) if adam_valid.any() else math.nan,
        "mc_median": float(np.median(np.abs(m["err_mc"]))),
        "break_2": first_exceed(g2, m["err_eq21"], 0.02, m["crossover"]),
        "break_10": first_exceed(g2, m["err_eq21"], 0.10, m["crossover"]),
        "validity_upper": m["validity"][1],
        "kal_g2_over_h_max": float(np.max(data["kalman_g2"] / data["h"])),
    }


def tables(m: dict[str, Any]) -> dict[str, dict[str, np.ndarray]]:
    """Per-decade median and max of |measured/predicted - 1| for the report (one table per comparison)."""
    return {
        "adabayes_vs_eq21": decade_table(m["g2"], m["err_eq21"]),
        "adabayes_vs_exact": decade_table(m["g2"], m["err_exact"]),
        "adabayes_vs_jensen": decade_table(m["g2"], m["err_jensen"]),
        "adabayes_fp_vs_eq21": decade_table(m["fp_g2"], m["fp_err"]),
        "kalman_vs_eq21_at_h": decade_table(m["h"], m["kal_eq21_err"]),
        "fading_vs_eq31": decade_table(m["fade_g2"], m["fade_err"]),
    }


def calibration_measure(data: dict[str, np.ndarray], cfg: Any) -> dict[str, Any]:
    """Experiment 4: pooled z statistics per posterior rule, the exact filter's standard errors and tolerances.

    Returns ``stats`` (per rule: ``z_mean``, ``z_var``, ``cover68``, ``cover95``, ``mean_z2_by_decade``; the exact
    filter also ``standard_errors``) and the flat numbers the calibration check specs read.
    """
    stats: dict[str, dict[str, Any]] = {}
    for name in ("kalman", "adabayes", "adabayes_fp"):
        zmean, z2 = data[f"{name}_zmean"], data[f"{name}_z2"]
        stats[name] = {
            "z_mean": float(np.mean(zmean)),
            "z_var": float(np.mean(z2) - np.mean(zmean) ** 2),
            "cover68": float(np.mean(data[f"{name}_in68"])),
            "cover95": float(np.mean(data[f"{name}_in95"])),
        }
        dec = decade_of(data[f"{name}_g2"])
        stats[name]["mean_z2_by_decade"] = {int(d): float(np.mean(z2[dec == d])) for d in np.unique(dec)}
    n = data["kalman_zmean"].size

    def se(x: np.ndarray) -> float:  # parameters are independent; time samples within one are not
        return float(np.std(x, ddof=1) / np.sqrt(n))

    k_se = {key: se(data[f"kalman_{src}"]) for key, src in _SE_SOURCE.items()}
    stats["kalman"]["standard_errors"] = k_se
    valid = np.abs(eq21_relative_error(data["adabayes_g2"], cfg.eta, cfg.sigma2)) <= 0.02
    flat: dict[str, Any] = {"stats": stats}
    for key, target in CALIBRATION_TARGETS.items():
        flat |= {f"kalman_{key}": stats["kalman"][key], f"kalman_{key}_target": target}
        flat[f"kalman_{key}_tol"] = 4.0 * k_se[key]
    a = stats["adabayes"]
    flat |= {f"adabayes_{key}": a[key] for key in ("z_var", "cover68", "cover95")}
    flat["adabayes_z_var_eq21_valid"] = float(np.mean(data["adabayes_z2"][valid]))
    return flat


_SE_SOURCE = {"z_mean": "zmean", "z_var": "z2", "cover68": "in68", "cover95": "in95"}
