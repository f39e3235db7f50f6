"""What each recorded entry's own gradients predict for its σ²_post on a real network (issue 9, item 4).

``adabayes fig3-network --gradient-steps K`` keeps, beside every sampled σ²_post, the gradients ``g = -B p.grad``
of that entry over the last K optimiser steps (:class:`filtering.recording.LearningRateRecorder`). Here, per
recorded step and entry, that window is the gradient law from which :func:`filtering.stochastic.stationary_law`
gives the stationary law of Alg. 1's σ²_post under i.i.d. draws. A network's ⟨g²⟩ drifts (it falls as the loss
does), so the window's steps are weighted as the filter weighs them: by ``φ'(λ*)^age``, the factor by which Alg. 1
forgets per step (:func:`memory_weights`; equal-mass atoms of the weighted law, exact weighted ⟨g²⟩:
:func:`simulations.stochastic_check.compress_gradients`). The recorded σ²_post is one draw (a snapshot at the
recorded step, not a time average), so it is compared with

* the law's mean and its median (``stochastic``, ``stochastic_median``), and through its PIT ``F(snapshot)`` (the
  law is estimated from the very gradients that set the snapshot, so a right law puts the PIT near 1/2, more
  narrowly than uniform; a median PIT near 0 or 1 says the snapshot lies outside the law);
* Eq. 21 and the exact fixed point at the β2-EMA ⟨g²⟩ of Fig. 3's x-axis (``eq21``, ``exact``), Eq. 21 at the
  window's plain mean g² (``eq21_window``) and at its memory-weighted mean (``eq21_memory``), and the stochastic
  mean for Gaussian g with that weighted mean (``gaussian_memory``) -- they split the offset into the EMA's lag,
  the noise and the shape of g -- and the do-nothing baseline σ²_post ≡ σ² (``none``);
* the same two (``eq21_trajectory``, ``stochastic_trajectory``) with each step weighted by what the filter's own
  trajectory kept of it, ``∂λ_T/∂g²_t`` (:func:`_trajectory`): under a falling ⟨g²⟩ the filter forgot the older,
  larger gradients faster than ``φ'(λ*)^age``, and the memory weights, taken at today's λ*, put σ²_post a few per
  cent low.

The window also gives the filter's own trajectory: Alg. 1 (Eqs. 17b, 18a) run on the window's g² (from Eq. 21 at
its mean g²) ends at the recorded σ²_post when the window is longer than the filter's memory (``recon_end``: a
check that the recorded gradients are the ones the filter squared), and the time average of that trajectory over
the window's second half is a test of the stationary mean free of the snapshot's noise (``time_average``). The
diagnostics of the i.i.d. hypothesis are the lag-1 autocorrelations of g and g², the drift ``log`` of the mean g²
between the window's halves, the ratios of the EMA ⟨g²⟩ to the window's plain and memory-weighted mean g², the
memory in steps, the share of the filter's weight that lies before the window (``tail_weight``; a window shorter
than about three memories leaves out older, under a falling ⟨g²⟩ larger, gradients that the filter still remembers,
and the prediction comes out high), the kurtosis of g and the share of the mean in g².

Points that can test the theory: the stochastic mean departs from σ² by more than :data:`DEPARTURE` (elsewhere
every prediction, and the do-nothing one, is σ²).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from filtering.fixed_point import approx_precision, exact_precision
from filtering.kalman_step import predict_variance, update_variance
from filtering.ou import variance_predict_coefficients
from filtering.stochastic import EmpiricalGradients, stationary_law
from simulations.curves import stochastic_rate
from simulations.stochastic_check import compress_gradients

__all__ = [
    "DEPARTURE",
    "PREDICTORS",
    "add_ratio_panel",
    "add_theory_to_axes",
    "memory_weights",
    "network_theory",
    "step_theory",
]

DEPARTURE = 0.10  # a point tests the theory when its stochastic mean departs from σ² by more than this
PREFILTER = 0.05  # evaluated: Eq. 21 (at the EMA or the window's mean g²) departs from σ² by more than this
RTOL = 1e-3
ATOMS = 256
PREDICTORS = (
    "eq21",
    "exact",
    "eq21_window",
    "eq21_memory",
    "gaussian_memory",
    "eq21_trajectory",
    "stochastic",
    "stochastic_trajectory",
    "stochastic_median",
    "none",
)


def _lag1(x: np.ndarray) -> np.ndarray:
    """Lag-1 autocorrelation of each row of ``x`` (K, T)."""
    c = x - x.mean(axis=1, keepdims=True)
    return (c[:, 1:] * c[:, :-1]).mean(axis=1) / (c * c).mean(axis=1)


def memory_weights(g: np.ndarray, eta: float, sigma2: float) -> tuple[np.ndarray, np.ndarray]:
    """Weights ``φ'(λ*)^age`` of the window's steps (newest 1) and the memory ``1/(1 - φ'(λ*))`` in steps.

    φ'(λ*) = f/(f + qλ*)² is the rate at which Alg. 1 forgets (Eqs. 17b, 18a linearised at the exact fixed point
    λ* of the weighted mean g², found by two passes from the unweighted mean). With the window's gradient law
    weighted so, the prediction follows a slowly drifting ⟨g²⟩ as the filter does. Shapes (K, T) and (K,).
    """
    f, q = variance_predict_coefficients(eta, sigma2)
    sq = g * g
    age = np.arange(g.shape[1])[::-1]
    mean_sq = sq.mean(axis=1)
    for _ in range(2):
        slope = f / (f + q * exact_precision(mean_sq, eta, sigma2)) ** 2  # φ'(λ*)
        w = slope[:, None] ** age[None, :]
        mean_sq = (w * sq).sum(axis=1) / w.sum(axis=1)
    return w, 1.0 / (1.0 - slope)


def _trajectory(g: np.ndarray, eta: float, sigma2: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Alg. 1's σ²_post over the window ``g`` (K, T): its last value, its mean over the second half, and the weight
    the last precision gives each step's g², ``∂λ_T/∂g²_t = Π_{s>t} φ'(λ_{s-1})`` (K, T).

    It starts at Eq. 21 of the window's mean g² (near the stationary mean, so that the unknown start is forgotten
    within a fraction of the filter's memory). The weights are :func:`memory_weights` with φ' taken along the
    trajectory rather than at today's fixed point: under a falling ⟨g²⟩ the filter's precision was higher when the
    older, larger gradients came, so it forgot them faster than φ'(λ*)^age says.
    """
    f, q = variance_predict_coefficients(eta, sigma2)
    var = 1.0 / approx_precision((g * g).mean(axis=1), eta, sigma2)
    steps = g.shape[1]
    total = np.zeros_like(var)
    slope = np.empty(g.shape)
    for t in range(steps):
        slope[:, t] = f / (f + q / var) ** 2  # φ'(λ_{t-1}) = f/(f + qλ)²: the share of λ_{t-1} kept in λ_t
        var = update_variance(predict_variance(var, f, q), g[:, t] ** 2)  # Eqs. 17b, 18a
        if t >= steps // 2:
            total += var
    weights = np.ones(g.shape)
    weights[:, :-1] = np.cumprod(slope[:, :0:-1], axis=1)[:, ::-1]  # Π over s = t+1 .. T-1 of φ'(λ_{s-1})
    return var, total / (steps - steps // 2), weights


def _diagnostics(g: np.ndarray, g2_ema: np.ndarray) -> dict[str, np.ndarray]:
    """Per point: how far the window's gradients are from i.i.d. draws of one law."""
    sq = g * g
    half = g.shape[1] // 2
    mean_sq = sq.mean(axis=1)
    return {
        "lag1_g": _lag1(g),
        "lag1_g2": _lag1(sq),
        "drift": np.log(sq[:, half:].mean(axis=1) / sq[:, :half].mean(axis=1)),
        "ema_over_window": g2_ema / mean_sq,
        "kurtosis": (sq * sq).mean(axis=1) / mean_sq**2,
        "mean_share": g.mean(axis=1) ** 2 / mean_sq,
    }


def _evaluated(arrays: dict[str, np.ndarray], step: int, max_points: int) -> np.ndarray:
    """Rows of ``step`` with a complete window where Eq. 21 departs from σ² by > PREFILTER (<= max_points)."""
    window = arrays["grad_window"]
    rows = (arrays["step"] == step) & np.isfinite(window).all(axis=1) & (arrays["g2"] > 0) & (arrays["var_post"] > 0)
    idx = np.flatnonzero(rows & (window != 0).any(axis=1))
    eta, sigma2 = arrays["eta"][idx], arrays["sigma2"][idx]
    mean_sq = (window[idx].astype(np.float64) ** 2).mean(axis=1)
    far = np.maximum(
        1.0 - 1.0 / (approx_precision(arrays["g2"][idx], eta, sigma2) * sigma2),  # Eq. 21 at the EMA ⟨g²⟩
        1.0 - 1.0 / (approx_precision(mean_sq, eta, sigma2) * sigma2),  # and at the window's mean g²
    )
    idx = idx[far > PREFILTER]
    if idx.size > max_points:  # evenly spread in x = η/sqrt(⟨g²⟩)
        idx = idx[np.argsort(arrays["g2"][idx])][np.linspace(0, idx.size - 1, max_points).round().astype(int)]
    return np.sort(idx)


def _predict(
    g: np.ndarray, weights: np.ndarray, snapshot: np.ndarray, eta: float, sigma2: float
) -> dict[str, np.ndarray]:
    """The stationary law of each window's memory-weighted gradients: its mean, median and the snapshot's PIT."""
    out = {key: np.empty(g.shape[0]) for key in ("stochastic", "stochastic_median", "pit", "solver")}
    for k in range(g.shape[0]):
        atoms = compress_gradients(g[k], ATOMS, weights[k])
        law = stationary_law(EmpiricalGradients(atoms), eta, sigma2, rtol=RTOL)
        out["stochastic"][k] = law.mean()
        out["stochastic_median"][k] = float(law.quantile(np.array([0.5]))[0])
        out["pit"][k] = float(law.cdf(np.array([snapshot[k]]))[0])
        out["solver"][k] = law.error_estimate / law.mean()
    return out


def _stationary_means(g: np.ndarray, weights: np.ndarray, eta: float, sigma2: float) -> np.ndarray:
    """E[σ²_post] of the stationary law of each window's gradients weighted by ``weights`` (K, T)."""
    out = np.empty(g.shape[0])
    for k in range(g.shape[0]):
        atoms = compress_gradients(g[k], ATOMS, weights[k])
        out[k] = stationary_law(EmpiricalGradients(atoms), eta, sigma2, rtol=RTOL).mean()
    return out


def _stats(ratio: np.ndarray) -> dict[str, float]:
    """Median and 90 % of |log10 ratio|, and the median ratio (snapshot / prediction)."""
    if ratio.size == 0:
        return {"median_abs_log10": math.nan, "q90_abs_log10": math.nan, "median_ratio": math.nan}
    err = np.abs(np.log10(ratio))
    return {
        "median_abs_log10": float(np.median(err)),
        "q90_abs_log10": float(np.quantile(err, 0.9)),
        "median_ratio": float(np.median(ratio)),
    }


def step_theory(arrays: dict[str, np.ndarray], step: int, max_points: int = 800) -> dict[str, Any]:
    """Every comparison of the module docstring at one recorded step.

    Parameters
    ----------
    arrays : dict
        Recorder arrays with ``grad_window`` (N, K) (``LearningRateRecorder(gradient_steps=K)``), at constant lr.
    step : int
        A recorded step.
    max_points : int
        Largest number of entries evaluated (one solve each, ~0.1 s), evenly spread in ⟨g²⟩.

    Returns
    -------
    dict
        ``summary`` (JSON-ready numbers: for the testable points, and ``x_le_sigma2`` for the evaluated points on
        the Adam side x = η/sqrt(⟨g²⟩) <= σ²) and ``points`` (per evaluated entry: ``index``, ``g2``, the
        predictions, ``testable``, ...).
    """
    eta, sigma2 = float(arrays["eta"][0]), float(arrays["sigma2"][0])
    idx = _evaluated(arrays, step, max_points)
    g = arrays["grad_window"][idx].astype(np.float64)
    snap, g2_ema = arrays["var_post"][idx], arrays["g2"][idx]
    weights, memory = memory_weights(g, eta, sigma2)
    local_sq = (weights * g * g).sum(axis=1) / weights.sum(axis=1)  # the memory-weighted ⟨g²⟩
    pred = _predict(g, weights, snap, eta, sigma2)
    pred |= {
        "eq21": 1.0 / approx_precision(g2_ema, eta, sigma2),  # Eq. 21 at the β2-EMA ⟨g²⟩ (Fig. 3's x-axis)
        "exact": 1.0 / exact_precision(g2_ema, eta, sigma2),
        "eq21_window": 1.0 / approx_precision((g * g).mean(axis=1), eta, sigma2),  # at the window's mean g²
        "eq21_memory": 1.0 / approx_precision(local_sq, eta, sigma2),  # at the memory-weighted mean g²
        "gaussian_memory": stochastic_rate(local_sq, eta, sigma2) if idx.size else np.empty(0),
        "none": np.full(idx.size, sigma2),
    }
    end, average, along = _trajectory(g, eta, sigma2)
    along_sq = (along * g * g).sum(axis=1) / along.sum(axis=1)  # g² weighted as the trajectory forgot it
    pred["eq21_trajectory"] = 1.0 / approx_precision(along_sq, eta, sigma2)
    pred["stochastic_trajectory"] = _stationary_means(g, along, eta, sigma2)
    pred["ema_over_memory"] = g2_ema / local_sq
    testable = np.abs(pred["stochastic"] / sigma2 - 1.0) > DEPARTURE
    points = {"index": idx, "g2": g2_ema, "snapshot": snap, "testable": testable, "recon_end": end}
    points |= {"memory": memory, "local_g2": local_sq}
    # the share of the filter's weight φ'(λ*)^age that lies before the window (the prediction cannot see it)
    points["tail_weight"] = (1.0 - 1.0 / memory) ** g.shape[1]
    points |= {"time_average": average} | pred | _diagnostics(g, g2_ema)
    return {"summary": _summary(points, step, g.shape[1], eta, sigma2), "points": points}


def _summary(p: dict[str, np.ndarray], step: int, window: int, eta: float, sigma2: float) -> dict[str, Any]:
    t = p["testable"]
    out: dict[str, Any] = {"step": step, "window_steps": window, "n_evaluated": int(t.size), "n_testable": int(t.sum())}
    out["snapshot_vs"] = {key: _stats(p["snapshot"][t] / p[key][t]) for key in PREDICTORS}
    left = eta / np.sqrt(p["g2"]) <= sigma2  # the Adam side of Fig. 3, x <= σ² (the selection)
    out["x_le_sigma2"] = {"n": int(left.sum())}
    out["x_le_sigma2"] |= {key: _stats(p["snapshot"][left] / p[key][left]) for key in PREDICTORS}
    out["time_average_vs"] = {key: _stats(p["time_average"][t] / p[key][t]) for key in ("eq21", "stochastic")}
    out["recon_end_vs_snapshot"] = _stats(p["recon_end"][t] / p["snapshot"][t])
    pit = np.sort(p["pit"][t])
    ks = float(np.max(np.abs(pit - (np.arange(pit.size) + 0.5) / pit.size))) if pit.size else math.nan
    out["pit"] = {"median": float(np.median(pit)) if pit.size else math.nan, "ks_distance": ks}
    keys = ("lag1_g", "lag1_g2", "drift", "ema_over_window", "ema_over_memory", "memory", "kurtosis", "mean_share")
    keys += ("solver", "tail_weight")
    out["diagnostics_median"] = {k: float(np.median(p[k][t])) if t.any() else math.nan for k in keys}
    return out


def network_theory(arrays: dict[str, np.ndarray], max_points: int = 800) -> dict[int, Any]:
    """:func:`step_theory` at every recorded step whose window is complete for some entry."""
    if "grad_window" not in arrays:
        raise ValueError("arrays hold no grad_window: record with LearningRateRecorder(gradient_steps=K > 0)")
    steps = [int(s) for s in np.unique(arrays["step"])]
    complete = np.isfinite(arrays["grad_window"]).all(axis=1)
    return {s: step_theory(arrays, s, max_points) for s in steps if complete[arrays["step"] == s].any()}


def add_theory_to_axes(ax: Any, arrays: dict[str, np.ndarray], theory: dict[int, Any] | None) -> None:
    """Draw the stochastic curve and band (g ~ N(0, ⟨g²⟩)) and, for the last analysed step, each evaluated entry's
    own-gradient prediction (``stochastic_trajectory``) on a Fig. 3 axes whose x is η/sqrt(⟨g²⟩)."""
    from figures.style import COLORS

    eta, sigma2 = float(arrays["eta"][0]), float(arrays["sigma2"][0])
    lo, hi = ax.get_xlim()
    g2 = (eta / np.geomspace(lo, hi, 300)) ** 2
    span = (float(g2.min()), float(g2.max()))
    mean = stochastic_rate(g2, eta, sigma2, 0, span)
    band = [stochastic_rate(g2, eta, sigma2, k, span) for k in (1, 2)]
    color = COLORS["stochastic"]
    x = eta / np.sqrt(g2)
    ax.plot(x, mean, color=color, lw=1.3, label="stochastic: E[σ²_post], g ~ N(0, ⟨g²⟩)", zorder=5)
    ax.fill_between(x, *band, color=color, alpha=0.12, lw=0, label="10–90 % of σ²_post per step", zorder=1)
    if theory:
        step = max(theory)
        last, window = theory[step]["points"], theory[step]["summary"]["window_steps"]
        ax.scatter(
            eta / np.sqrt(last["g2"]),
            last["stochastic_trajectory"],
            s=14,
            marker="D",
            facecolors="none",
            edgecolors=color,
            linewidths=0.6,
            label=f"stochastic, entry's own last {window} g (step {step})",
            zorder=6,
        )
    _split_legend(ax)


def _split_legend(ax: Any) -> None:
    """The recorded steps' legend in the upper left (above the Adam line, where no point lies), the theory's in the
    lower right (under the curves), so that neither hides data."""
    handles, labels = ax.get_legend_handles_labels()
    steps = [i for i, label in enumerate(labels) if label.startswith("step ")]
    rest = [i for i in range(len(labels)) if i not in steps]
    if steps:
        first = ax.legend(
            [handles[i] for i in steps], [labels[i] for i in steps], fontsize=7, loc="upper left", markerscale=3
        )
        first.set_zorder(10)
        ax.add_artist(first)
    ax.legend([handles[i] for i in rest], [labels[i] for i in rest], fontsize=6.5, loc="lower right", markerscale=1.5)


def add_ratio_panel(ax: Any, arrays: dict[str, np.ndarray], theory: dict[int, Any]) -> None:
    """Everything at the last analysed step divided by Eq. 21 at the β2-EMA ⟨g²⟩ (Fig. 3's x-axis), on an axes
    sharing the Fig. 3 x-axis: the recorded σ²_post of every sampled entry, each evaluated entry's own-gradient
    stochastic prediction (``stochastic_trajectory``), Eq. 21 at the entry's memory-weighted mean g² (what the
    filter has seen; its distance from 1 is the EMA's lag), and the exact fixed point and the Gaussian stochastic
    curve as lines."""
    from figures.style import COLORS

    eta, sigma2 = float(arrays["eta"][0]), float(arrays["sigma2"][0])
    step = max(theory)
    p = theory[step]["points"]
    last = (arrays["step"] == step) & (arrays["g2"] > 0) & (arrays["var_post"] > 0)
    g2_all = arrays["g2"][last]
    ratio_all = arrays["var_post"][last] * approx_precision(g2_all, eta, sigma2)  # σ²_post / Eq. 21
    ax.scatter(
        eta / np.sqrt(g2_all), ratio_all, s=3, color="0.6", lw=0, rasterized=True, label=f"σ²_post (step {step})"
    )
    x = eta / np.sqrt(p["g2"])
    ax.scatter(
        x,
        p["eq21_memory"] / p["eq21"],
        s=5,
        marker="^",
        color=COLORS["sgd"],
        lw=0,
        alpha=0.7,
        zorder=4,
        label="Eq. 21 at memory-weighted g²",
    )
    ax.scatter(
        x,
        p["stochastic_trajectory"] / p["eq21"],
        s=12,
        marker="D",
        facecolors="none",
        edgecolors=COLORS["stochastic"],
        linewidths=0.6,
        zorder=6,
        label="stochastic, own gradients",
    )
    lo, hi = ax.get_xlim()
    xs = np.geomspace(lo, hi, 300)
    g2 = (eta / xs) ** 2
    eq21 = 1.0 / approx_precision(g2, eta, sigma2)
    ax.axhline(1.0, color=COLORS["eq21"], lw=2, label="Eq. 21", zorder=3)
    ax.plot(xs, 1.0 / exact_precision(g2, eta, sigma2) / eq21, "k--", lw=1, label="exact fixed point", zorder=5)
    span = (float(g2.min()), float(g2.max()))
    ax.plot(
        xs,
        stochastic_rate(g2, eta, sigma2, 0, span) / eq21,
        color=COLORS["stochastic"],
        lw=1.3,
        zorder=5,
        label="stochastic, Gaussian g",
    )
    ax.axvline(sigma2, color="tab:purple", lw=1, ls=":")
    shown = np.concatenate([ratio_all, p["stochastic_trajectory"] / p["eq21"], p["eq21_memory"] / p["eq21"]])
    lo_y, hi_y = np.quantile(shown[np.isfinite(shown)], [0.002, 0.998])
    ax.set_ylim(min(lo_y, 0.9) / 1.05, max(hi_y, 1.1) * 1.05)
    ax.set_xlim(lo, hi)
    ax.set_xscale("log")
    ax.set_ylabel("ratio to Eq. 21 at EMA ⟨g²⟩", fontsize=8)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=6, loc="upper right", markerscale=1.5)
